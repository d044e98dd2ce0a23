"""The Keras-style facade: compile / fit / evaluate / predict / save / load / summary.

nn.Model is a Module with these methods; nn.Sequential is one, and a custom network
gets them by subclassing nn.Model instead of nn.Module:

    class Net(nn.Model):
        def __init__(self): super().__init__(); self.fc = nn.Linear(4, 2)
        def forward(self, x): return self.fc.forward(x)
        def backward(self, g): return self.fc.backward(g)

    Net().compile("adam", lr=1e-3).fit(x, y)

It sits above the layers, the optimizers and the loop (module <- optim <- training <-
model), so the Module base class imports none of them and nothing imports back.
"""
from __future__ import annotations

import numpy as np

from . import checkpoint
from .module import PRECISIONS, Module
from .optim import Optimizer
from .training import Trainer, predict

__all__ = ["Model"]


class Model(Module):
    """A Module with compile / fit / evaluate / predict / save / load / summary."""

    def compile(self, optimizer="adam", loss="cross_entropy", metrics=("accuracy",), *, flatten: bool = True,
                distributed=False, precision: str = "fp32", **kwargs) -> "Model":
        """Attach an optimizer (instance or name; lr=... and other kwargs build it), a loss
        (instance or name) and metrics for fit/evaluate. flatten=True (the default) puts the
        parameters into one flat buffer ordered by the optimizer's groups, so each step is
        one fused kernel call per group (Module.flatten_parameters). distributed=True (or a
        dict of nnforge.distributed.DataParallel options, e.g. {"shard_optimizer": True})
        trains data-parallel over the MPI ranks: fit's batch_size is per rank. precision
        ("fp32" / "bf16"): Module.set_precision, after flattening (the bf16 copies then share
        the flat layout). Returns self."""
        if precision not in PRECISIONS:  # before anything is built
            raise ValueError(f"precision must be one of {list(PRECISIONS)}, got {precision!r}")
        trainer = Trainer(self, optimizer, loss, metrics, **kwargs)
        if flatten or distributed:
            _flatten_for(self, trainer.optimizer)
        self.set_precision(precision)
        if distributed:
            from ..distributed import DataParallel
            options = distributed if isinstance(distributed, dict) else {}
            trainer.data_parallel = DataParallel(self, optimizer=trainer.optimizer, **options)
        object.__setattr__(self, "trainer", trainer)
        return self

    def _trainer(self) -> Trainer:
        trainer = self.__dict__.get("trainer")
        if trainer is None:
            raise RuntimeError(f"{type(self).__name__}: call compile(optimizer, loss, metrics) before fit/evaluate")
        return trainer

    @property
    def optimizer(self) -> Optimizer:
        return self._trainer().optimizer

    def fit(self, x, y, epochs: int = 1, batch_size: int = 32, **kwargs):
        """Train; returns a History (dict of per-epoch lists). See nnforge.nn.training.Trainer.fit
        (augment= takes a per-batch transform of the training inputs, e.g. data.Augment)."""
        return self._trainer().fit(x, y, epochs=epochs, batch_size=batch_size, **kwargs)

    def evaluate(self, x, y, batch_size: int = 256) -> dict:
        return self._trainer().evaluate(x, y, batch_size=batch_size)

    def predict(self, x, batch_size: int = 256) -> np.ndarray:
        return predict(self, x, batch_size=batch_size)

    def save(self, path, optimizer=None, extra=None, **kwargs) -> str:
        """Atomic .npz checkpoint of this model (and optimizer): nnforge.nn.checkpoint.save."""
        return checkpoint.save(path, self, optimizer, extra, **kwargs)

    def load(self, path, optimizer=None, **kwargs) -> dict:
        """Load a checkpoint written by save(); returns its extra values."""
        return checkpoint.load(path, self, optimizer, **kwargs)

    # --- reporting ---------------------------------------------------------------
    def _summary_layers(self) -> list[tuple[str, Module]]:
        """The rows of summary(): the whole model; chains (Sequential) list their items."""
        return [(type(self).__name__, self)]

    def summary(self, input_shape: tuple[int, ...], print_fn=print) -> str:
        """Table of layers with output shapes and parameter counts.

        input_shape excludes the batch dimension; a forward pass on zeros (batch 2,
        eval mode) discovers the shapes.
        """
        rows = []
        was_training = self.training
        self.eval()
        try:
            x = np.zeros((2, *input_shape), dtype=np.float32)
            for name, mod in self._summary_layers():
                x = mod.forward(*x) if isinstance(x, tuple) else mod.forward(x)
                shapes = [(None, *v.shape[1:]) for v in (x if isinstance(x, tuple) else (x,))]
                n_params = sum(p.size for p in mod.parameters())
                rows.append((f"{name} ({type(mod).__name__})", ", ".join(map(str, shapes)), f"{n_params:,}"))
        finally:
            self.train(was_training)
        headers = ("layer", "output shape", "params")
        widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(headers)]
        fmt = lambda r: "  ".join(c.ljust(w) for c, w in zip(r, widths))
        text = "\n".join([fmt(headers), "-" * (sum(widths) + 4), *map(fmt, rows), "-" * (sum(widths) + 4),
                          f"total parameters: {self.num_parameters():,}"])
        if print_fn is not None:
            print_fn(text)
        return text


def _flatten_for(model: Module, optimizer: Optimizer) -> None:
    """Flatten the model with each of the optimizer's groups as one segment; an optimizer
    over parameters from elsewhere leaves the order to the model."""
    own = {id(p) for p in model.parameters()}
    groups = optimizer.group_parameters()
    if all(id(p) in own for g in groups for p in g):
        model.flatten_parameters(groups)
    else:
        model.flatten_parameters()
