"""Keras-style training loop: compile / fit / evaluate / predict (nn.Model delegates here).

    model.compile(optimizer="adam", loss="cross_entropy", metrics=["accuracy"], lr=1e-3)
    history = model.fit(x, y, epochs=10, batch_size=64, validation_split=0.1)
    model.evaluate(x_test, y_test)  -> {"loss": ..., "accuracy": ...}
    model.predict(x_test)           -> outputs (batched, eval mode)

One training step: out = model.forward(xb); loss.forward(out, yb); model.backward(
loss.backward()); optimizer.step(zero_grad=True) (the kernel clears the gradients in
the same pass). The first layer's needs_input_grad is switched off during fit, which
saves its dX GEMM. fit(augment=f) replaces each training batch's inputs by f(xb)
(e.g. nnforge.data.Augment); validation and evaluation data are never transformed.

Ctrl-C (KeyboardInterrupt) during fit, as in Keras, propagates to the caller, with the
progress bar closed. A training step (taking the batch, the first of which draws the
epoch's shuffle; augment, forward, backward, optimizer step) is never cut: a SIGINT that
arrives inside one is delivered when it ends (nn/_interrupt.py), so the model,
optimizer and RNG hold the state after the last completed step (optimizer.step_count
counts them; trainer.epoch the completed epochs).
"""
from __future__ import annotations

import time
from typing import Callable, Optional, Sequence

import numpy as np

from .. import data as _data
from ._interrupt import DeferredInterrupt
from .callbacks import Callback, LRScheduler
from .losses import BCEWithLogitsLoss, CrossEntropyLoss, L1Loss, Loss, MSELoss
from .metrics import Metric, get_metric
from .optim import Optimizer, get_optimizer
from .progress import EpochProgress

__all__ = ["History", "Regularizer", "Trainer", "get_loss"]

LOSSES = {"cross_entropy": CrossEntropyLoss, "crossentropy": CrossEntropyLoss,
          "sparse_categorical_crossentropy": CrossEntropyLoss, "mse": MSELoss, "mean_squared_error": MSELoss,
          "l1": L1Loss, "mae": L1Loss, "bce_with_logits": BCEWithLogitsLoss, "bce": BCEWithLogitsLoss}


def get_loss(spec) -> Loss:
    if isinstance(spec, Loss):
        return spec
    if isinstance(spec, str) and spec.lower() in LOSSES:
        return LOSSES[spec.lower()]()
    raise ValueError(f"unknown loss {spec!r}; use a Loss instance or one of {sorted(LOSSES)}")


class Regularizer:
    """L1/L2 penalty on parameters added to the loss: l1 * sum|w| + l2/2 * sum w^2.

    __call__(params) returns the penalty and accumulates its gradient into p.grad.
    (The optimizer's weight_decay / l1 options apply the same gradient terms without
    adding the value to the reported loss.)"""

    def __init__(self, l1: float = 0.0, l2: float = 0.0, include_bias: bool = False):
        self.l1, self.l2, self.include_bias = float(l1), float(l2), include_bias

    def __call__(self, named_params) -> float:
        total = 0.0
        for name, p in named_params:
            if not self.include_bias and (p.data.ndim < 2 or name.endswith("bias")):
                continue
            if self.l1:
                total += self.l1 * float(np.abs(p.data).sum(dtype=np.float64))
                p.grad += np.float32(self.l1) * np.sign(p.data)
            if self.l2:
                total += 0.5 * self.l2 * float(np.dot(p.data.ravel(), p.data.ravel()))
                p.grad += np.float32(self.l2) * p.data
        return total


class History(dict):
    """{"loss": [...], "accuracy": [...], "val_loss": [...], "val_accuracy": [...], "lr": [...]}
    one entry per epoch; .epoch lists the epoch indices; .history is the dict itself (Keras)."""

    def __init__(self):
        super().__init__()
        self.epoch: list[int] = []

    @property
    def history(self) -> "History":
        return self

    def append(self, epoch: int, logs: dict) -> None:
        self.epoch.append(epoch)
        for key, value in logs.items():
            if key != "samples_per_s":
                self.setdefault(key, []).append(value)


def _first_layer(model):
    """The module that receives the raw input (Module._input_layer: chains descend into their
    first item; inside a Residual or a custom module the input is also used elsewhere, so
    its first layer's dX is still needed)."""
    return model._input_layer()


def _as_inputs(x, name: str) -> np.ndarray:
    x = np.asarray(x)
    if x.dtype != np.float32:
        if not np.issubdtype(x.dtype, np.number):
            raise TypeError(f"{name} must be numeric, got dtype {x.dtype}")
        x = x.astype(np.float32)
    return x


def _as_targets(y, loss: Loss) -> np.ndarray:
    y = np.asarray(y)
    if isinstance(loss, CrossEntropyLoss):
        if y.ndim == 1 and not np.issubdtype(y.dtype, np.integer):
            if not np.all(y == np.round(y)):
                raise ValueError("CrossEntropyLoss needs integer class labels")
            y = y.astype(np.int64)
        return y
    return y.astype(np.float32, copy=False)


class Trainer:
    """What compile() sets up: model, optimizer, loss, metrics, optional regularizer."""

    def __init__(self, model, optimizer="adam", loss="cross_entropy", metrics: Sequence = ("accuracy",),
                 lr: Optional[float] = None, regularizer: Optional[Regularizer] = None, **optimizer_kwargs):
        self.model = model
        if isinstance(optimizer, Optimizer):
            if lr is not None:
                optimizer.lr = float(lr)
        else:
            if lr is not None:
                optimizer_kwargs["lr"] = lr
            optimizer = get_optimizer(optimizer, model.parameters(), **optimizer_kwargs)
        self.optimizer: Optimizer = optimizer
        self.loss: Loss = get_loss(loss)
        if self.loss.reduction not in ("mean", "sum"):
            raise ValueError(f"compile() needs a loss with reduction 'mean' or 'sum', got {self.loss.reduction!r}")
        self.metrics: list[Metric] = [get_metric(m) for m in (metrics or ())]
        self.regularizer = regularizer
        self.stop_training = False
        self.schedule = None
        self.epoch = 0  # index of the next epoch (after fit: epochs completed, counting initial_epoch)
        self.data_parallel = None  # a distributed.DataParallel (compile(distributed=True)): sharded batches

    # --- one pass over data ---------------------------------------------------------
    def _train_epoch(self, x, y, batch_size, shuffle, callbacks, progress, guard, augment=None) -> dict:
        model, loss_fn, opt = self.model, self.loss, self.optimizer
        for m in self.metrics:
            m.reset()
        total_loss, seen = 0.0, 0
        named = model.named_parameters() if self.regularizer is not None else None
        t0 = time.perf_counter()
        batch_logs: dict = {}

        def running():
            logs = {"loss": total_loss / max(seen, 1)}
            logs.update((m.name, m.result()) for m in self.metrics)
            logs["samples_per_s"] = seen / max(time.perf_counter() - t0, 1e-9)
            return logs

        per_sample = loss_fn.reduction == "mean"  # "sum" losses already add up over the batch
        shard = self.data_parallel is not None  # each rank its part of every epoch's permutation
        batch_iter = enumerate(_data.batches(x, y, batch_size=batch_size, shuffle=shuffle, shard=shard))
        while True:
            with guard.step():  # all or nothing with respect to Ctrl-C
                item = next(batch_iter, None)  # the first one draws the epoch's shuffle
                if item is None:
                    break
                i, (xb, yb) = item
                if augment is not None:
                    xb = augment(xb)
                out = model.forward(xb)
                loss = loss_fn.forward(out, yb)
                for m in self.metrics:  # before backward: no layer may touch `out` afterwards
                    m.update(out, yb)
                model.backward(loss_fn.backward())
                if self.regularizer is not None:
                    loss += self.regularizer(named)
                opt.step(zero_grad=True)
                n = len(xb)
                total_loss += loss * n if per_sample else loss
                seen += n
            for cb in callbacks:
                cb.on_batch_end(i, batch_logs)
            progress.update(1, running)
        return running()

    def _evaluate(self, x, y, batch_size) -> dict:
        model = self.model
        was_training = model.training
        model.eval()
        metrics = [m.fresh() for m in self.metrics]
        total, seen = 0.0, 0
        try:
            for xb, yb in _data.batches(x, y, batch_size=batch_size):
                out = model.forward(xb)
                loss = self.loss.forward(out, yb)
                total += loss * len(xb) if self.loss.reduction == "mean" else loss
                seen += len(xb)
                for m in metrics:
                    m.update(out, yb)
        finally:
            model.train(was_training)
        logs = {"loss": total / max(seen, 1)}
        logs.update((m.name, m.result()) for m in metrics)
        return logs

    # --- public ---------------------------------------------------------------------
    def fit(self, x, y, epochs: int = 1, batch_size: int = 32, validation_data=None, validation_split: float = 0.0,
            shuffle: bool = True, callbacks: Optional[Sequence[Callback]] = None, verbose: int = 1,
            initial_epoch: Optional[int] = None, augment: Optional[Callable] = None) -> History:
        if isinstance(epochs, bool) or not isinstance(epochs, (int, np.integer)) or epochs < 0:
            raise ValueError(f"epochs must be a non-negative int, got {epochs!r}")
        if verbose not in (0, 1, 2):
            raise ValueError(f"verbose must be 0, 1 or 2, got {verbose!r}")
        if augment is not None and not callable(augment):
            raise TypeError(f"augment must be a callable taking a batch of inputs, got {type(augment).__name__}")
        x, y = _as_inputs(x, "x"), _as_targets(y, self.loss)
        if len(x) != len(y):
            raise ValueError(f"x and y have different numbers of samples: {x.shape} and {y.shape}")
        if validation_data is None and validation_split:
            if not 0.0 < validation_split < 1.0:
                raise ValueError(f"validation_split must be in (0, 1), got {validation_split!r}")
            n_val = int(round(len(x) * validation_split))
            if n_val == 0 or n_val == len(x):
                raise ValueError(f"validation_split={validation_split} leaves no training or validation samples "
                                 f"out of {len(x)}")
            # as Keras: the last samples, taken before any shuffling
            x, x_val, y, y_val = x[:-n_val], x[-n_val:], y[:-n_val], y[-n_val:]
            validation_data = (x_val, y_val)
        if validation_data is not None:
            x_val, y_val = validation_data
            validation_data = (_as_inputs(x_val, "validation x"), _as_targets(y_val, self.loss))
        callbacks = list(callbacks or [])
        for cb in callbacks:
            if not isinstance(cb, Callback):
                raise TypeError(f"callbacks must be Callback instances, got {type(cb).__name__}")
            cb.trainer = self
            if isinstance(cb, LRScheduler) and self.schedule is None:
                self.schedule = cb.schedule
        start = 0 if initial_epoch is None else int(initial_epoch)  # as Keras: each fit() starts at 0
        dp = self.data_parallel
        if dp is not None and self.regularizer is not None:
            raise ValueError("a Regularizer adds gradients after backward, while DataParallel is all-reducing them; "
                             "use the optimizer's weight_decay / l1 instead")
        if dp is not None and dp.world.rank != 0:
            verbose = 0  # only rank 0 prints
        n_batches = _data.num_batches(len(x) if dp is None else _data.shard_length(len(x), batch_size, dp.world.size),
                                      batch_size)

        history = History()
        first = _first_layer(self.model)
        saved_flag = getattr(first, "needs_input_grad", None)
        if saved_flag is not None:
            first.needs_input_grad = False
        self.model.train()
        self.model.zero_grad()
        self.stop_training = False
        for cb in callbacks:
            cb.on_train_begin({})
        try:
            with DeferredInterrupt() as guard:
                for epoch in range(start, epochs):
                    for cb in callbacks:
                        cb.on_epoch_begin(epoch, {})
                    lr = self.optimizer.lr
                    with EpochProgress(epoch, epochs, n_batches, verbose) as progress:
                        logs = self._train_epoch(x, y, batch_size, shuffle, callbacks, progress, guard, augment)
                        if dp is not None:  # equal shards: the mean over ranks is the epoch's value
                            logs = _mean_over_ranks(dp.world, logs)
                        samples_per_s = logs.pop("samples_per_s")
                        if validation_data is not None:
                            val = self._evaluate(*validation_data, batch_size=max(batch_size, 256))
                            logs.update((f"val_{k}", v) for k, v in val.items())
                        logs["lr"] = lr
                        self.epoch = epoch + 1
                        for cb in callbacks:
                            cb.on_epoch_end(epoch, logs)
                        progress.close({**logs, "samples_per_s": samples_per_s})
                    history.append(epoch, logs)
                    if self.stop_training:
                        break
        finally:
            if saved_flag is not None:
                first.needs_input_grad = saved_flag
        if dp is not None:
            dp.verify_identical()
        for cb in callbacks:
            cb.on_train_end({})
        return history

    def evaluate(self, x, y, batch_size: int = 256) -> dict:
        """{"loss": mean loss, metric name: value} over (x, y) in eval mode."""
        x, y = _as_inputs(x, "x"), _as_targets(y, self.loss)
        if len(x) != len(y):
            raise ValueError(f"x and y have different numbers of samples: {x.shape} and {y.shape}")
        return self._evaluate(x, y, batch_size)


def _mean_over_ranks(world, logs: dict) -> dict:
    """Per-rank epoch logs averaged over the ranks (samples/s summed): one small all-reduce."""
    keys = list(logs)
    values = world.all_reduce(np.array([logs[k] for k in keys], dtype=np.float64), op="mean")
    out = dict(zip(keys, values.tolist()))
    out["samples_per_s"] *= world.size
    return out


def predict(model, x, batch_size: int = 256) -> np.ndarray:
    """Model outputs for x, computed in batches in eval mode (training mode restored after)."""
    x = _as_inputs(x, "x")
    was_training = model.training
    model.eval()
    try:
        outs = [np.array(model.forward(xb), copy=True) for (xb,) in _data.batches(x, batch_size=batch_size)]
    finally:
        model.train(was_training)
    if not outs:
        raise ValueError("predict() got no samples")
    return np.concatenate(outs, axis=0)
