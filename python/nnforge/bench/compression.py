"""Compression accuracy report (issue 12's targets): `python -m nnforge.bench.compression`.

Per seed (--seeds), trains the digits MLP and CNN exactly as `nnforge train --model NAME
--seed S` does (its defaults: MLP 20 epochs, CNN 12; --epochs overrides) and reads the
run back as `nnforge compress` does, then measures test accuracy of
    fp32                 the trained model
    int8 dynamic         quant.quantize_dynamic (Linear layers; the CNN's convs stay fp32)
    int8 static          static PTQ, min-max ranges on the training split (compress's int8)
    bf16                 weights rounded to bf16, precision "bf16" (compress's bf16)
and for the MLP pruned to --sparsity (global magnitude):
    pruned, no FT        one-shot, right after pruning
    pruned + FT          one-shot, then --finetune-epochs with the masks kept
    gradual + FT         reaching the sparsity during those epochs (Zhu & Gupta)
Printed: mean accuracy over the seeds, the mean and the worst difference to fp32 in
percentage points, and the issue's target (int8 within 0.5 pt, 90%-pruned MLP within
1 pt after fine-tuning). The bundled digits' test split has 359 images: one image is
0.28 pt, so single seeds are noisy; the mean is the figure to quote.

It drives the command line's own train and run readers (not the library alone) so that
the figures are those of `nnforge train` + `nnforge compress`.
"""
from __future__ import annotations

import argparse
import contextlib
import copy
import io
import os
import statistics
import tempfile
import time

from .. import compress, quant
from ._timing import machine_line, print_table

TARGETS = {"int8 dynamic": 0.5, "int8 static": 0.5, "pruned + FT": 1.0, "gradual + FT": 1.0}


def add_arguments(parser) -> None:
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4], help="train seeds (default 0-4)")
    parser.add_argument("--epochs", type=int, default=None, help="training epochs (default: nnforge train's)")
    parser.add_argument("--sparsity", type=float, default=0.9, help="MLP magnitude-pruning sparsity (default 0.9)")
    parser.add_argument("--finetune-epochs", type=int, default=10, help="fine-tune epochs after pruning (default 10)")
    parser.add_argument("--quick", action="store_true", help="one seed, 2 training epochs, 2 fine-tune epochs")


def _trained(name: str, seed: int, epochs, folder: str):
    """(model, train, test, options) of a fresh `nnforge train` run, read like compress."""
    from ..cli import compress as cli_compress, main
    from ..nn import checkpoint
    out = os.path.join(folder, f"{name}-{seed}")
    argv = ["train", "--model", name, "--seed", str(seed), "--out", out, "--verbose", "0"]
    with contextlib.redirect_stdout(io.StringIO()):
        if main(argv + ([] if epochs is None else ["--epochs", str(epochs)])) != 0:
            raise RuntimeError(f"nnforge {' '.join(argv)} failed")
    path = os.path.join(out, "checkpoint.npz")
    entries, name, seed, options = cli_compress._read(path)
    train, _, test, model = cli_compress._data_and_template(name, seed)
    checkpoint.load(path, model, restore_rng=False, entries=entries)
    return model.eval(), train, test, options


def _variants(name: str, seed: int, args, folder: str) -> dict:
    """variant -> test accuracy (%) for one model and seed."""
    from ..cli.compress import _accuracy
    model, train, test, options = _trained(name, seed, args.epochs, folder)
    acc = lambda m: _accuracy(m, *test) * 100
    batches = lambda: (train[0][i:i + 256] for i in range(0, len(train[0]), 256))
    out = {"fp32": acc(model), "int8 dynamic": acc(quant.quantize_dynamic(model)),
           "int8 static": acc(compress.quantize(copy.deepcopy(model), "int8", batches())),
           "bf16": acc(compress.quantize(copy.deepcopy(model), "bf16"))}
    if name == "mlp":
        tune = dict(epochs=args.finetune_epochs, optimizer=options["optimizer"], lr=options["lr"],
                    batch_size=options["batch_size"], seed=seed)
        pruned = compress.prune_model(copy.deepcopy(model), args.sparsity)
        out["pruned, no FT"] = acc(pruned)
        out["pruned + FT"] = acc(compress.finetune(pruned, train, **tune))
        out["gradual + FT"] = acc(compress.finetune(copy.deepcopy(model), train, gradual=args.sparsity, **tune))
    return out


def run(args) -> int:
    if args.quick:
        args.seeds, args.epochs, args.finetune_epochs = args.seeds[:1], 2, 2
    if not 0.0 < args.sparsity < 1.0 or args.finetune_epochs < 0:
        raise SystemExit("--sparsity must be in (0, 1) and --finetune-epochs >= 0")
    t0 = time.perf_counter()
    results: dict[tuple[str, str], list[float]] = {}
    with tempfile.TemporaryDirectory() as folder:
        for seed in args.seeds:
            for name in ("mlp", "cnn"):
                for variant, value in _variants(name, seed, args, folder).items():
                    results.setdefault((name, variant), []).append(value)
    rows = []
    for (name, variant), values in results.items():
        diffs = [v - f for v, f in zip(values, results[(name, "fp32")])]
        target = TARGETS.get(variant)
        label = f"{args.sparsity:.0%} {variant}" if variant.startswith(("pruned", "gradual")) else variant
        rows.append([name, label, f"{statistics.mean(values):.2f}",
                     "" if variant == "fp32" else f"{statistics.mean(diffs):+.2f}",
                     "" if variant == "fp32" else f"{min(diffs):+.2f}",
                     "" if target is None else f"-{target}",
                     "" if target is None else ("yes" if statistics.mean(diffs) >= -target else "NO")])
    fine = f", fine-tune {args.finetune_epochs} epochs" if args.finetune_epochs else ""
    print_table(["model", "variant", "test acc %", "mean diff pt", "worst diff pt", "target pt", "mean meets"],
                rows, title=f"nnforge compression accuracy ({machine_line()})\nbundled digits, seeds "
                            f"{' '.join(map(str, args.seeds))}, training epochs "
                            f"{'nnforge train defaults' if args.epochs is None else args.epochs}{fine}; "
                            f"diff = variant - fp32 of the same seed")
    print(f"total {time.perf_counter() - t0:.0f} s")
    return 0


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m nnforge.bench.compression", description=__doc__.splitlines()[0])
    add_arguments(parser)
    return run(parser.parse_args(argv))


if __name__ == "__main__":
    raise SystemExit(main())
