"""fp32 vs bf16 mixed-precision training: final losses, accuracy and wall time.

Each model is trained twice by `nnforge train` itself (cli/train.py, same seed, same
data split, same options), once with --precision fp32 and once with --precision bf16:
the MLP and the CNN on the bundled digits (their `nnforge train` defaults: 20 / 12
epochs, or --epochs), and the default character GPT on the bundled text for --steps
(default 500, not the 2000 of `nnforge train`). Printed, per model: final train loss (the
last epoch's mean for mlp / cnn; the fixed-window estimate for gpt), val loss, test
accuracy (mlp / cnn), training wall time, and a row bf16 - fp32.

    python -m nnforge.bench.precision [--models mlp,cnn,gpt] [--epochs N] [--steps N]
    nnforge bench precision ...                 (the same)

The default run takes a few minutes on 2 cores (the GPT's 2 x 500 steps most of it);
--models, --epochs and --steps shrink it.
"""
from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import tempfile

from ._timing import fmt, machine_line, print_table

__all__ = ["MODELS", "add_arguments", "run"]

MODELS = ("mlp", "cnn", "gpt")
PRECISIONS = ("fp32", "bf16")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--models", default=",".join(MODELS), help="comma-separated subset of mlp,cnn,gpt")
    parser.add_argument("--epochs", type=int, default=None,
                        help="epochs for mlp and cnn (default: their `nnforge train` defaults, 20 / 12)")
    parser.add_argument("--steps", type=int, default=500, help="gpt optimizer steps (default 500)")
    parser.add_argument("--seed", type=int, default=0, help="--seed of every run (default 0)")


def _train(model: str, precision: str, args, folder: str) -> dict:
    """One `nnforge train` run in this process; its history.json."""
    from ..cli import CliError, main
    out = os.path.join(folder, f"{model}-{precision}")
    argv = ["train", "--model", model, "--precision", precision, "--seed", str(args.seed), "--out", out,
            "--verbose", "0"]
    if model == "gpt":
        argv += ["--steps", str(args.steps), "--eval-every", str(max(1, args.steps // 2))]
    elif args.epochs is not None:
        argv += ["--epochs", str(args.epochs)]
    with contextlib.redirect_stdout(io.StringIO()):  # the table is the output
        code = main(argv)
    if code != 0:
        raise CliError(f"bench precision: `nnforge {' '.join(argv)}` failed (exit {code})")
    with open(os.path.join(out, "history.json")) as f:
        return json.load(f)


def _metrics(model: str, info: dict) -> dict:
    """train loss, val loss, test accuracy (None for gpt), training seconds, length."""
    h = info["history"]
    if model == "gpt":
        return {"train loss": h["train_loss"][-1], "val loss": h["val_loss"][-1], "test acc %": None,
                "train s": info["training_s"], "length": f"{info['options']['steps']} steps"}
    return {"train loss": h["loss"][-1], "val loss": h["val_loss"][-1],
            "test acc %": 100.0 * info["test"]["accuracy"], "train s": info["training_s"],
            "length": f"{info['options']['epochs']} epoch" + ("s" if info["options"]["epochs"] != 1 else "")}


_COLUMNS = (("train loss", ".4f"), ("val loss", ".4f"), ("test acc %", ".2f"), ("train s", ".2f"))


def run(args) -> int:
    from ..cli import CliError
    models = [m.strip() for m in args.models.split(",") if m.strip()]
    unknown = [m for m in models if m not in MODELS]
    if unknown or not models:
        raise CliError(f"--models: choose from {','.join(MODELS)}, got {args.models!r}")
    if args.epochs is not None and args.epochs < 1:
        raise CliError(f"--epochs must be >= 1, got {args.epochs}")
    if args.steps < 1:
        raise CliError(f"--steps must be >= 1, got {args.steps}")
    rows = []
    with tempfile.TemporaryDirectory(prefix="nnforge-precision-") as folder:
        for model in models:
            got = {p: _metrics(model, _train(model, p, args, folder)) for p in PRECISIONS}
            for p in PRECISIONS:
                rows.append([model, got[p]["length"], p, *(fmt(got[p][c], spec) for c, spec in _COLUMNS)])
            diff = [None if got["fp32"][c] is None else got["bf16"][c] - got["fp32"][c] for c, _ in _COLUMNS]
            rows.append([model, "", "bf16 - fp32", *(fmt(d, "+" + spec) for d, (_, spec) in zip(diff, _COLUMNS))])
    print_table(["model", "length", "precision", *(c for c, _ in _COLUMNS)], rows,
                title=f"fp32 vs bf16 mixed-precision training, seed {args.seed} ({machine_line()})")
    return 0


def _main() -> int:
    from ..cli import CliError
    parser = argparse.ArgumentParser(prog="python -m nnforge.bench.precision", description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=None, help="kernel threads (default: all allowed CPUs)")
    add_arguments(parser)
    args = parser.parse_args()
    try:
        if args.threads is not None:
            if args.threads < 1:
                raise CliError(f"--threads must be >= 1, got {args.threads}")
            import nnforge
            nnforge.set_num_threads(args.threads)
        return run(args)
    except CliError as exc:
        parser.exit(2, f"{parser.prog}: error: {exc}\n")


if __name__ == "__main__":
    raise SystemExit(_main())
