"""`nnforge compress RUN_FOLDER_OR_CHECKPOINT --quantize int8 [--out PATH]`: int8 static
quantisation (per-channel weights, input ranges calibrated on the run's training split)
of a digits model trained by `nnforge train` (mlp, cnn), written as a pickle-free
quantised checkpoint (nnforge.quant.checkpoint), with a before/after table: size on
disk (model weights alone), parameters (nonzero), test accuracy and inference time on the validation split.
`nnforge compress --eval PATH` loads a compressed checkpoint and reports its accuracy.
"""
from __future__ import annotations

import argparse
import json
import os
import tempfile
import types

import numpy as np

from .. import nn, quant
from ..bench._timing import median_seconds, print_table
from ..nn import checkpoint
from . import train as _train
from .errors import CliError
from .runs import saved_int

__all__ = ["add_arguments", "run"]

_MODELS = ("mlp", "cnn")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("target", nargs="?", default=None,
                        help="run folder of `nnforge train` or its checkpoint.npz")
    parser.add_argument("--quantize", default="int8", choices=("int8",), help="weight format (default int8)")
    parser.add_argument("--out", default=None, help="output file (default: <run folder>/compressed.npz)")
    parser.add_argument("--eval", default=None, metavar="PATH", help="evaluate a compressed checkpoint")


def _checkpoint_path(target: str) -> str:
    return os.path.join(target, "checkpoint.npz") if os.path.isdir(target) else target


def _run_info(path: str, entries: dict) -> tuple[str, int]:
    """(model name, seed) of the run: the checkpoint's extra/model, and its extra/seed (a
    compressed checkpoint) or else the seed in history.json next to it (a train run)."""
    name = str(entries.get("extra/model", ""))
    if name not in _MODELS:
        raise CliError(f"{path}: compress supports runs of --model {', '.join(_MODELS)} on the digits, "
                       f"got model {name or '(none recorded)'!r}")
    if "extra/seed" in entries:
        return name, saved_int(path, entries, "extra/seed")
    seed = 0
    history = os.path.join(os.path.dirname(os.path.abspath(path)), "history.json")
    if os.path.isfile(history):
        try:
            with open(history) as f:
                options = json.load(f)["options"]
            seed = int(options["seed"])
            if options.get("dataset", "digits") != "digits":
                raise CliError(f"{path}: compress supports digits runs only, this one used {options['dataset']}")
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise CliError(f"{history}: cannot read the run's options ({exc})") from None
    return name, seed


def _data_and_template(name: str, seed: int):
    spec = nn.get_model_spec(name)
    splits = _train._load_dataset(types.SimpleNamespace(data=None, seed=seed))[:3]
    (train, val, test), input_shape = _train._prepare(spec, splits, (8, 8))
    return train, val, test, spec.build(input_shape, 10)


def _accuracy(model, x, y) -> float:
    return float(np.mean(np.argmax(model.eval().forward(x), axis=1) == y))


def _counts(model) -> tuple[int, int]:
    """(stored weights and biases, nonzero ones): float parameters and int8 layers' arrays."""
    arrays = [p.data for p in model.parameters()]
    for _, m in model.named_modules():
        if isinstance(m, (quant.QuantizedLinear, quant.QuantizedConv2d)):
            arrays += [m.weight_q] + ([m.bias] if m.has_bias else [])
    return sum(a.size for a in arrays), sum(int(np.count_nonzero(a)) for a in arrays)


def _evaluate(path: str) -> int:
    try:
        entries = checkpoint.read(path)
        name, seed = _run_info(path, entries)
        _, _, test, template = _data_and_template(name, seed)
        model, _ = quant.checkpoint.load(path, template)
    except checkpoint.CheckpointError as exc:
        raise CliError(str(exc)) from None
    print(f"{path}: {name} int8, test accuracy {_accuracy(model, *test) * 100:.2f}%")
    return 0


def run(args) -> int:
    if args.eval is not None:
        return _evaluate(args.eval)
    if args.target is None:
        raise CliError("compress needs a run folder or checkpoint (or --eval PATH)")
    path = _checkpoint_path(args.target)
    try:
        entries = checkpoint.read(path)
        name, seed = _run_info(path, entries)
        train, val, test, model = _data_and_template(name, seed)
        checkpoint.load(path, model, restore_rng=False, entries=entries)
    except checkpoint.CheckpointError as exc:
        raise CliError(str(exc)) from None
    model.eval()
    prepared = quant.prepare(model)
    quant.calibrate(prepared, (train[0][i:i + 256] for i in range(0, len(train[0]), 256)))
    qmodel = quant.convert(prepared)
    out = args.out or os.path.join(os.path.dirname(os.path.abspath(path)), "compressed.npz")
    quant.checkpoint.save(out, qmodel, extra={"model": name, "seed": seed})

    rows = []
    with tempfile.TemporaryDirectory() as tmp:  # the float model alone (the run's file holds optimizer state too)
        float_file = checkpoint.save(os.path.join(tmp, "float.npz"), model, include_rng=False)
        sizes = {"float32": os.path.getsize(float_file), args.quantize: os.path.getsize(out)}
    for label, m in (("float32", model), (args.quantize, qmodel)):
        total, nonzero = _counts(m)
        seconds = median_seconds(lambda m=m: m.forward(val[0]), repeats=3, warmup=1, min_time=0.02)
        rows.append([label, f"{sizes[label] / 1024:.1f}", str(total), str(nonzero),
                     f"{_accuracy(m, *test) * 100:.2f}", f"{seconds * 1e3:.2f}"])
    print_table(["model", "size KiB", "params", "nonzero", "test acc %", f"val batch ({len(val[0])}) ms"], rows,
                title=f"nnforge compress: {name} ({path} -> {out})")
    return 0
