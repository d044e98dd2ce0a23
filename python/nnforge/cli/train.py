"""`nnforge train`: train a model on the bundled 8x8 digits (default) or MNIST IDX files.

Writes into the output folder: checkpoint.npz (model, optimizer, schedule, RNG, epoch;
resumable with --resume), history.json and curves.png (loss and accuracy per epoch).

The models are the library's registry (nnforge.nn.register_model / model_names): a
ModelSpec's build(input_shape, num_classes) -> Module, its layout "flat" (N, features)
or "image" (N, 1, H, W), and default options. --augment (image models) applies
nnforge.data.Augment to the training batches. --precision bf16 trains in mixed precision
(Model.compile(precision=...)); history.json and the summary line record the precision. Models of layout "text" (--model gpt, lstm)
train by steps over token windows instead: cli/train_text.py.
"""
from __future__ import annotations

import argparse
import json
import os
import time
from typing import Optional

import numpy as np

from .. import nn
from ..nn.module import PRECISIONS
from ..nn.registry import ModelSpec
from . import distributed as _distributed
from . import train_text as _text
from .text_jobs import text_models
from .errors import CliError
from .runs import check_resume_precision, saved_int, saved_json

__all__ = ["add_arguments", "run"]

_SCHEDULES = ("none", "cosine", "step", "onecycle")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model", default="mlp", choices=nn.model_names(), help="model to train (default mlp)")
    parser.add_argument("--epochs", type=int, default=None, help="epochs (default: per model, mlp 20)")
    parser.add_argument("--batch-size", type=int, default=None, help="mini-batch size (default: per model)")
    parser.add_argument("--optimizer", default=None, help="sgd | adam | adamw | rmsprop | adagrad (default adam)")
    parser.add_argument("--lr", type=float, default=None, help="learning rate (default: per model/optimizer)")
    parser.add_argument("--schedule", default="none", choices=_SCHEDULES, help="LR schedule (default none)")
    parser.add_argument("--seed", type=int, default=0, help="seed for init, shuffling, dropout and the split")
    parser.add_argument("--data", default=None, help="folder with MNIST IDX files (default: bundled 8x8 digits); "
                        "for --model gpt / lstm a UTF-8 text file (default: pydoc_data.topics)")
    parser.add_argument("--out", default=None, help="output folder (default ./nnforge_runs/<model>-<time>)")
    parser.add_argument("--resume", default=None, help="checkpoint.npz to continue from")
    parser.add_argument("--augment", action="store_true",
                        help="augment training batches with a random 1-pixel crop (image models only)")
    parser.add_argument("--precision", default=None, choices=PRECISIONS,
                        help="fp32, or bf16 mixed precision: GEMMs and convolutions on bf16-rounded operands, "
                        "float32 master weights, gradients and optimizer state (default fp32; --resume: the "
                        "checkpoint's); not for --model lstm")
    parser.add_argument("--verbose", type=int, default=1, choices=(0, 1, 2),
                        help="0 quiet, 1 progress bars, 2 one line per epoch")
    _text.add_arguments(parser)
    _distributed.add_arguments(parser)


# --- data ------------------------------------------------------------------------

def _load_dataset(args):
    """(x_train, y_train), (x_val, y_val), (x_test, y_test), image shape (H, W), name."""
    from .. import data
    if args.data is None:
        try:
            x, y = data.load_digits()
        except ImportError as exc:
            raise CliError(str(exc)) from None
        x = x / np.float32(16.0)
        (xtr, ytr), (xva, yva), (xte, yte) = data.train_val_test_split(
            x, y, val_fraction=0.1, test_fraction=0.2, rng=args.seed, stratify=y)
        return (xtr, ytr), (xva, yva), (xte, yte), (8, 8), "digits"
    try:
        (xtr, ytr), (xte, yte) = data.load_mnist(args.data)
    except (OSError, ValueError) as exc:
        raise CliError(f"--data: {exc}") from None
    xtr = xtr.reshape(len(xtr), -1).astype(np.float32) / np.float32(255.0)
    xte = xte.reshape(len(xte), -1).astype(np.float32) / np.float32(255.0)
    image = (int(np.sqrt(xtr.shape[1])),) * 2
    if image[0] * image[1] != xtr.shape[1]:
        image = (1, xtr.shape[1])
    (xtr, ytr), (xva, yva), _ = data.train_val_test_split(xtr, ytr.astype(np.int64), val_fraction=1 / 12,
                                                          test_fraction=0.0, rng=args.seed)
    return (xtr, ytr), (xva, yva), (xte, yte.astype(np.int64)), image, "mnist"


def _prepare(spec: ModelSpec, splits, image):
    from .. import data
    (xtr, ytr), (xva, yva), (xte, yte) = splits
    if spec.layout == "flat":
        st = data.Standardizer().fit(xtr)
        xtr, xva, xte = (st.transform(a) for a in (xtr, xva, xte))
        return ((xtr, ytr), (xva, yva), (xte, yte)), (xtr.shape[1],)
    mean, std = float(xtr.mean()), float(xtr.std()) or 1.0
    shape = (1, *image)
    fix = lambda a: ((a - mean) / std).astype(np.float32).reshape(len(a), *shape)
    return ((fix(xtr), ytr), (fix(xva), yva), (fix(xte), yte)), shape


# --- options -----------------------------------------------------------------------

def _options(args, spec: ModelSpec) -> dict:
    from ..nn.optim import OPTIMIZERS
    opts = {"epochs": 20, "batch_size": 32, "optimizer": "adam", "lr": None}
    opts.update(spec.defaults)
    for key in ("epochs", "batch_size", "optimizer", "lr"):
        value = getattr(args, key)
        if value is not None:
            opts[key] = value
    if opts["epochs"] < 1:
        raise CliError(f"--epochs must be >= 1, got {opts['epochs']}")
    if opts["batch_size"] < 1:
        raise CliError(f"--batch-size must be >= 1, got {opts['batch_size']}")
    opts["optimizer"] = str(opts["optimizer"]).lower()
    if opts["optimizer"] not in OPTIMIZERS:
        raise CliError(f"--optimizer must be one of {', '.join(sorted(OPTIMIZERS))}; got {opts['optimizer']!r}")
    if args.optimizer is not None and args.lr is None and opts["optimizer"] != spec.defaults.get("optimizer"):
        opts["lr"] = None  # the model's lr was tuned for its own optimizer: use the new one's default
    if opts["lr"] is not None and not (np.isfinite(opts["lr"]) and opts["lr"] > 0):
        raise CliError(f"--lr must be a positive number, got {opts['lr']}")
    if args.seed < 0:
        raise CliError(f"--seed must be >= 0, got {args.seed}")
    return opts


def _schedule(name: str, optimizer, epochs: int, steps_per_epoch: int):
    from ..nn import schedules
    if name == "cosine":
        return schedules.CosineAnnealingLR(optimizer, t_max=epochs)
    if name == "step":
        return schedules.StepLR(optimizer, step_size=max(1, epochs // 3), gamma=0.3)
    if name == "onecycle":
        return schedules.OneCycleLR(optimizer, max_lr=optimizer.lr * 10, total_steps=epochs * steps_per_epoch)
    return None


def _plot(history: dict, path: str) -> Optional[str]:
    """PNG of loss and accuracy curves; returns a note instead when matplotlib is missing."""
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return "matplotlib not installed: skipped the curves plot (pip install nnforge[train])"
    epochs = np.arange(1, len(history.get("loss", [])) + 1)
    fig, axes = plt.subplots(1, 2, figsize=(10, 4))
    for ax, key, title in ((axes[0], "loss", "loss"), (axes[1], "accuracy", "accuracy")):
        for prefix, style in (("", "-"), ("val_", "--")):
            if prefix + key in history:
                ax.plot(epochs, history[prefix + key], style, marker="o", ms=3, label=(prefix or "train_") + key)
        ax.set_xlabel("epoch")
        ax.set_title(title)
        ax.grid(alpha=0.3)
        ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return None


# --- run -----------------------------------------------------------------------------

def run(args) -> int:
    import nnforge
    from .. import data
    from ..nn import checkpoint

    try:
        spec = nn.get_model_spec(args.model)
    except ValueError as exc:
        raise CliError(f"--model: {exc}") from None
    dist = _distributed.start(args)
    if spec.layout == "text":  # language models: steps over token windows (cli/train_text.py)
        return _text.run(args, spec, dist)
    text_only = [f"--{k.replace('_', '-')}" for k in _text.TEXT_OPTIONS if getattr(args, k, None) is not None]
    if text_only:
        raise CliError(f"{', '.join(text_only)}: only for {text_models()}")
    opts = _options(args, spec)
    augment = getattr(args, "augment", False)
    if augment and spec.layout != "image":
        raise CliError(f"--augment needs an image model (e.g. --model cnn); {args.model} takes flat features")
    nnforge.seed(args.seed)
    tr, va, te, image, dataset = _load_dataset(args)
    splits = (tr, va, te)
    (train, val, test), input_shape = _prepare(spec, splits, image)
    model = spec.build(input_shape, 10)
    opt_kwargs = {} if opts["lr"] is None else {"lr": opts["lr"]}
    model.compile(opts["optimizer"], loss="cross_entropy", metrics=["accuracy"], **opt_kwargs,
                  distributed=dist is not None and {"shard_optimizer": args.shard_optimizer},
                  precision=args.precision or "fp32")
    n_train = len(train[0]) if dist is None else data.shard_length(len(train[0]), opts["batch_size"],
                                                                   dist.world_size())
    steps = -(-n_train // opts["batch_size"])
    sched = _schedule(args.schedule, model.optimizer, opts["epochs"], steps)

    out = _distributed.run_folder(args, dist, args.model, dataset)
    try:
        os.makedirs(out, exist_ok=True)
    except OSError as exc:
        raise CliError(f"--out: cannot create {out}: {exc}") from None
    ckpt_path = os.path.join(out, "checkpoint.npz")
    start, history = 0, {}
    if args.resume is not None:
        try:
            entries = checkpoint.read(args.resume)
        except checkpoint.CheckpointError as exc:
            raise CliError(f"--resume: {exc}") from None
        saved_model = entries.get("extra/model")
        if saved_model is not None and str(saved_model) != args.model:
            raise CliError(f"--resume: checkpoint was written for --model {saved_model}, not {args.model}")
        # every extra value checked before the load changes the model
        start = saved_int(args.resume, entries, "extra/epoch") if "extra/epoch" in entries else 0
        history = saved_json(args.resume, entries, "extra/history") if "extra/history" in entries else {}
        if start >= opts["epochs"]:
            raise CliError(f"--resume: checkpoint is already at epoch {start}; pass --epochs > {start}")
        check_resume_precision(args.resume, entries, args.precision)  # checkpoint.load restores it
        try:
            checkpoint.load(args.resume, model, model.optimizer, schedule=sched, entries=entries)
        except checkpoint.CheckpointError as exc:
            raise CliError(f"--resume: {exc}") from None

    verbose = args.verbose
    if verbose:
        print(f"nnforge train: {args.model} on {dataset} ({len(train[0])} train / {len(val[0])} val / "
              f"{len(test[0])} test), {opts['optimizer']} lr {model.optimizer.lr:g}, batch {opts['batch_size']}"
              f"{'' if dist is None else f' x {dist.world_size()} ranks'}, "
              f"{opts['epochs']} epochs, {model.precision}, {nnforge.get_num_threads()} threads -> {out}", flush=True)

    class _SaveEachEpoch(nn.Callback):
        """checkpoint.npz after each epoch with the full history so far (for --resume)."""

        def on_epoch_end(self, epoch, logs):
            for k, v in logs.items():
                history.setdefault(k, []).append(v)
            save = checkpoint.save if dist is None else dist.save_checkpoint  # under MPI rank 0 writes
            save(ckpt_path, model, model.optimizer, schedule=sched,
                 extra={"epoch": epoch + 1, "model": args.model, "history": json.dumps(history)})

    callbacks = ([nn.LRScheduler(sched)] if sched is not None else []) + [_SaveEachEpoch()]
    t0 = time.perf_counter()
    # seeded from --seed, so a run (and a resumed run's fresh process) is reproducible
    # (a 1-pixel random crop only: digits must not be flipped, and 8x8 images allow little more)
    aug = data.Augment(crop_padding=1, seed=args.seed) if augment else None
    h = model.fit(*train, epochs=opts["epochs"], batch_size=opts["batch_size"], validation_data=val,
                  callbacks=callbacks, verbose=verbose, initial_epoch=start, augment=aug)
    elapsed = time.perf_counter() - t0
    del h  # the callback above already appended every epoch to `history`
    result = model.evaluate(*test)
    if dist is not None and not dist.is_main():
        return 0
    with open(os.path.join(out, "history.json"), "w") as f:
        json.dump({"history": history, "test": result, "options": {**opts, "model": args.model, "seed": args.seed,
                                                                   "dataset": dataset,
                                                                   "precision": model.precision},
                   "training_s": elapsed}, f, indent=1)
    note = _plot(history, os.path.join(out, "curves.png"))
    print(f"test accuracy {result['accuracy'] * 100:.2f}% (loss {result['loss']:.4f}) after "
          f"{opts['epochs']} epochs, training {elapsed:.1f}s, {model.precision}", flush=True)
    print(f"checkpoint: {ckpt_path}" + ("" if note else f"\ncurves: {os.path.join(out, 'curves.png')}"))
    if note:
        print(f"note: {note}")
    return 0

