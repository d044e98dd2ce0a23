"""`nnforge compress RUN_FOLDER_OR_CHECKPOINT [--quantize int8|bf16|none] [--prune S]
[--structured] [--scope global|layer] [--gradual] [--finetune-epochs N] [--sparse-from S]
[--out PATH]`: compress a digits model trained by `nnforge train` (mlp, cnn).

Steps (nnforge.compress.steps): --prune S masks the fraction S of the Linear / Conv2d
weights with the smallest |w| (--scope global: ranked over all layers together, the
default; layer: per layer), or with --structured removes the fraction S of each layer's
neurons / conv output channels so the layers shrink; then --finetune-epochs N epochs on
the run's training split (its optimizer, lr and batch size) with the masks kept exactly 0
by the fused optimizer step (--gradual: reach S on the cubic schedule during those
epochs instead of at once); then --quantize: int8 static PTQ (per-channel weights, input
ranges calibrated on the training split), bf16 (weights rounded to and stored as bf16,
layers computing with bf16 operands), or none. Pruned Linear layers at least
--sparse-from zeros (default compress.SPARSE_FROM, the measured crossover) are served by
nn.SparseLinear. The result is a pickle-free, validated compressed checkpoint
(nnforge.compress.checkpoint) and a before/after table: size on disk (model weights
alone), parameters (nonzero), test accuracy and inference time on the validation split.
`nnforge compress --eval PATH` loads a compressed checkpoint and reports its accuracy.
"""
from __future__ import annotations

import argparse
import copy
import json
import os
import tempfile
import types

import numpy as np

from .. import compress, nn, prune, quant
from ..bench._timing import median_seconds, print_table
from ..nn import checkpoint
from ..nn.sparse import SparseLinear
from . import train as _train
from .errors import CliError
from .runs import saved_int

__all__ = ["add_arguments", "run"]

_MODELS = ("mlp", "cnn")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("target", nargs="?", default=None,
                        help="run folder of `nnforge train` or its checkpoint.npz")
    parser.add_argument("--quantize", default="int8", choices=compress.QUANTIZE,
                        help="weight format: int8 (static PTQ), bf16 or none (float32); default int8")
    parser.add_argument("--prune", type=float, default=None, metavar="S",
                        help="prune the fraction S in (0, 1) of the weights by magnitude (or of the units with "
                             "--structured)")
    parser.add_argument("--structured", action="store_true",
                        help="remove whole neurons / conv channels (layers shrink) instead of single weights")
    parser.add_argument("--scope", default="global", choices=("global", "layer"),
                        help="magnitude ranking over all layers together (global, default) or per layer")
    parser.add_argument("--gradual", action="store_true",
                        help="reach the --prune sparsity gradually during fine-tuning (Zhu & Gupta schedule)")
    parser.add_argument("--finetune-epochs", type=int, default=0, metavar="N",
                        help="epochs of fine-tuning after pruning (default 0)")
    parser.add_argument("--sparse-from", type=float, default=compress.SPARSE_FROM, metavar="S",
                        help=f"serve Linear layers at least S zeros by SparseLinear (default {compress.SPARSE_FROM}, "
                             f"the measured crossover)")
    parser.add_argument("--out", default=None, help="output file (default: <run folder>/compressed.npz)")
    parser.add_argument("--eval", default=None, metavar="PATH", help="evaluate a compressed checkpoint")


def _checked_options(args) -> None:
    """Every option's value, before anything is read or trained."""
    if args.prune is not None and not 0.0 < args.prune < 1.0:
        raise CliError(f"--prune must be a fraction in (0, 1), got {args.prune}")
    if args.prune is None:
        for flag, given in (("--structured", args.structured), ("--gradual", args.gradual),
                            ("--finetune-epochs", args.finetune_epochs != 0)):
            if given:
                raise CliError(f"{flag} needs --prune S")
    if args.structured and (args.gradual or args.scope != "global"):
        raise CliError("--gradual and --scope apply to magnitude pruning, not --structured")
    if args.finetune_epochs < 0:
        raise CliError(f"--finetune-epochs must be >= 0, got {args.finetune_epochs}")
    if args.gradual and args.finetune_epochs < 1:
        raise CliError("--gradual prunes during fine-tuning: give --finetune-epochs N >= 1")
    if not 0.0 <= args.sparse_from <= 1.0:
        raise CliError(f"--sparse-from must be in [0, 1], got {args.sparse_from}")


def _checkpoint_path(target: str) -> str:
    return os.path.join(target, "checkpoint.npz") if os.path.isdir(target) else target


def _run_info(path: str, entries: dict) -> tuple[str, int, dict]:
    """(model name, seed, training options) of the run: the checkpoint's extra/model, and
    its extra/seed (a compressed checkpoint) or else the seed and options in history.json
    next to it (a train run; options default to the model's)."""
    name = str(entries.get("extra/model", ""))
    if name not in _MODELS:
        raise CliError(f"{path}: compress supports runs of --model {', '.join(_MODELS)} on the digits, "
                       f"got model {name or '(none recorded)'!r}")
    spec_defaults = {"optimizer": "adam", "lr": None, "batch_size": 32, **nn.get_model_spec(name).defaults}
    if "extra/seed" in entries:
        return name, saved_int(path, entries, "extra/seed"), spec_defaults
    seed, options = 0, {}
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
    return name, seed, {k: options.get(k, v) for k, v in spec_defaults.items()}


def _data_and_template(name: str, seed: int):
    spec = nn.get_model_spec(name)
    splits = _train._load_dataset(types.SimpleNamespace(data=None, seed=seed))[:3]
    (train, val, test), input_shape = _train._prepare(spec, splits, (8, 8))
    return train, val, test, spec.build(input_shape, 10)


def _accuracy(model, x, y) -> float:
    return float(np.mean(np.argmax(model.eval().forward(x), axis=1) == y))


def _counts(model) -> tuple[int, int]:
    """(stored weights and biases, nonzero ones): float parameters, int8 layers' arrays and
    SparseLinear's (its weight counted as in * out, nonzero = nnz)."""
    arrays = [p.data for p in model.parameters()]
    total = nonzero = 0
    for _, m in model.named_modules():
        if isinstance(m, (quant.QuantizedLinear, quant.QuantizedConv2d)):
            arrays += [m.weight_q] + ([m.bias] if m.has_bias else [])
        elif isinstance(m, SparseLinear):
            total += m.in_features * m.out_features
            nonzero += int(np.count_nonzero(m.weight.values))
            arrays += [m.bias] if m.bias is not None else []
    return total + sum(a.size for a in arrays), nonzero + sum(int(np.count_nonzero(a)) for a in arrays)


def _read(path: str):
    """(entries, model name, seed, options) of a checkpoint, CliError on any fault."""
    try:
        entries = checkpoint.read(path)
    except checkpoint.CheckpointError as exc:
        raise CliError(str(exc)) from None
    return (entries, *_run_info(path, entries))


def _evaluate(path: str) -> int:
    _, name, seed, _ = _read(path)
    _, _, test, template = _data_and_template(name, seed)
    try:
        model, _ = compress.checkpoint.load(path, template)
    except checkpoint.CheckpointError as exc:
        raise CliError(str(exc)) from None
    print(f"{path}: {name} {_describe(model)}, test accuracy {_accuracy(model, *test) * 100:.2f}%")
    return 0


def _describe(model) -> str:
    """The weight format of a loaded model, one word: int8 / bf16 / float32 (+sparse)."""
    kinds = {type(m) for _, m in model.named_modules()}
    word = ("int8" if kinds & {quant.QuantizedLinear, quant.QuantizedConv2d}
            else "bf16" if getattr(model, "precision", "fp32") == "bf16" else "float32")
    return word + ("+sparse" if SparseLinear in kinds else "")


def _pruned(args, model, train, test, options: dict, seed: int) -> str:
    """Prune and fine-tune `model` (in place when unstructured); returns the summary line."""
    what = (f"{args.prune:.0%} of the units (structured)" if args.structured
            else f"{args.prune:.0%} of the weights ({args.scope} magnitude{', gradual' if args.gradual else ''})")
    if not args.gradual:
        model = compress.prune_model(model, args.prune, structured=args.structured, scope=args.scope)
    before = _accuracy(model, *test) * 100
    compress.finetune(model, train, epochs=args.finetune_epochs, optimizer=options["optimizer"],
                      lr=options["lr"], batch_size=options["batch_size"], seed=seed,
                      gradual=args.prune if args.gradual else None, scope=args.scope)
    after = _accuracy(model, *test) * 100
    line = f"pruned {what}: test accuracy " + ("" if args.gradual else f"{before:.2f}% at once")
    if args.finetune_epochs:
        line += ("" if args.gradual else ", ") + f"{after:.2f}% after {args.finetune_epochs} fine-tune epochs"
    return line


def run(args) -> int:
    if args.eval is not None:
        return _evaluate(args.eval)
    if args.target is None:
        raise CliError("compress needs a run folder or checkpoint (or --eval PATH)")
    _checked_options(args)
    path = _checkpoint_path(args.target)
    entries, name, seed, options = _read(path)
    if f"extra/{compress.checkpoint.LAYOUT_KEY}" in entries:
        raise CliError(f"{path} is already a compressed checkpoint: compress the run's checkpoint.npz")
    train, val, test, template = _data_and_template(name, seed)
    original = template
    try:
        checkpoint.load(path, original, restore_rng=False, entries=entries)
    except checkpoint.CheckpointError as exc:
        raise CliError(str(exc)) from None
    original.eval()

    notes = []
    model = copy.deepcopy(original)
    if args.prune is not None:
        notes.append(_pruned(args, model, train, test, options, seed))
    batches = (train[0][i:i + 256] for i in range(0, len(train[0]), 256))
    model = compress.quantize(model, args.quantize, batches)
    sparse_from = None if args.quantize == "int8" or args.prune is None or args.structured else args.sparse_from
    out = args.out or os.path.join(os.path.dirname(os.path.abspath(path)), "compressed.npz")
    compress.checkpoint.save(out, model, quantize=args.quantize,
                             structured=args.prune if args.structured else None, sparse_from=sparse_from,
                             extra={"model": name, "seed": seed})
    loaded, _ = compress.checkpoint.load(out, original)  # what --eval will serve, not what we hold
    sparse = [n for n, m in loaded.named_modules() if isinstance(m, SparseLinear)]
    if sparse_from is not None:
        notes.append(f"served by SparseLinear (>= {sparse_from:.0%} zeros): {'layers ' + ', '.join(sparse) if sparse else 'no layer'}")

    rows = []
    with tempfile.TemporaryDirectory() as tmp:  # the float model alone (the run's file holds optimizer state too)
        float_file = checkpoint.save(os.path.join(tmp, "float.npz"), original, include_rng=False)
        sizes = {"before": os.path.getsize(float_file), "after": os.path.getsize(out)}
    for label, m in (("before", original), ("after", loaded)):
        total, nonzero = _counts(m)
        seconds = median_seconds(lambda m=m: m.forward(val[0]), repeats=3, warmup=1, min_time=0.02)
        rows.append([label, _describe(m), f"{sizes[label] / 1024:.1f}", str(total), str(nonzero),
                     f"{_accuracy(m, *test) * 100:.2f}", f"{seconds * 1e3:.2f}"])
    print_table(["", "weights", "size KiB", "params", "nonzero", "test acc %", f"val batch ({len(val[0])}) ms"],
                rows, title=f"nnforge compress: {name} ({path} -> {out})")
    for note in notes:
        print(note)
    return 0
