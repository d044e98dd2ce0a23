"""The `nnforge` command: `nnforge train ...`, `nnforge generate ...`, `nnforge launch ...` and
`nnforge bench FAMILY ...`.

cli/__init__.py parses and dispatches; each command is a module with
add_arguments(parser) and run(args) (cli/train.py, cli/generate.py; nnforge.bench.FAMILY), raising
cli/errors.py's CliError for user mistakes. Commands never import this dispatcher.
"""
from __future__ import annotations

import argparse
import importlib
import sys

from . import compress as _compress
from . import generate as _generate
from . import launch as _launch
from . import train as _train
from .errors import CliError

__all__ = ["BENCH_FAMILIES", "CliError", "main"]

# Benchmark families: name -> module under nnforge.bench exposing add_arguments(parser) and run(args).
BENCH_FAMILIES = ("gemm", "optim", "train", "conv", "nn", "attention", "rnn", "distributed", "sparse",
                  "quant", "precision", "mixed")


def _build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="nnforge", description="nnforge kernels: train models, benchmark kernels.")
    parser.add_argument("--threads", type=int, default=None, help="kernel threads (default: all allowed CPUs)")
    sub = parser.add_subparsers(dest="command", required=True)

    bench = sub.add_parser("bench", help="kernel microbenchmarks against NumPy and PyTorch")
    fam = bench.add_subparsers(dest="family", required=True)
    for name in BENCH_FAMILIES:
        try:
            mod = importlib.import_module(f"nnforge.bench.{name}")
        except ModuleNotFoundError:
            continue
        p = fam.add_parser(name, help=(mod.__doc__ or "").strip().splitlines()[0] if mod.__doc__ else None)
        mod.add_arguments(p)
        p.set_defaults(bench_module=mod)

    tp = sub.add_parser("train", help="train a model on the bundled digits (or MNIST IDX files); "
                        "--model gpt / lstm on text")
    _train.add_arguments(tp)
    tp.set_defaults(train_module=_train)

    gp = sub.add_parser("generate",
                        help="sample text from a language model trained by `nnforge train --model gpt / lstm`")
    _generate.add_arguments(gp)

    lp = sub.add_parser("launch", help="run a command as N MPI ranks (nnforge launch -n 2 -- nnforge train "
                        "--distributed)")
    _launch.add_arguments(lp)

    cp = sub.add_parser("compress", help="prune, fine-tune and quantise (int8 / bf16) a model trained by "
                        "`nnforge train` (mlp, cnn)")
    _compress.add_arguments(cp)

    sub.add_parser("config", help="print nnforge.show_config()")
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = _build_parser()
    args = parser.parse_args(argv)
    import nnforge

    try:
        if args.threads is not None:
            if args.threads < 1:
                raise CliError(f"--threads must be >= 1, got {args.threads}")
            nnforge.set_num_threads(args.threads)
        if args.command == "bench":
            return int(args.bench_module.run(args) or 0)
        if args.command == "train":
            return int(args.train_module.run(args) or 0)
        if args.command == "generate":
            return int(_generate.run(args) or 0)
        if args.command == "launch":
            return int(_launch.run(args) or 0)
        if args.command == "compress":
            return int(_compress.run(args) or 0)
        if args.command == "config":
            nnforge.show_config()
            return 0
    except CliError as exc:
        print(f"nnforge: error: {exc}", file=sys.stderr)
        _end_job(args, 2)
        return 2
    except Exception as exc:
        if _in_job(args):  # one rank's error ends every rank (never a hang)
            from ..distributed import report_and_abort
            report_and_abort(exc)
        raise
    except KeyboardInterrupt:
        print("nnforge: interrupted", file=sys.stderr)
        return 130
    return 0


def _in_job(args) -> bool:
    """True under --distributed with several ranks."""
    if not getattr(args, "distributed", False):
        return False
    from ..distributed import world_size
    return world_size() > 1


def _end_job(args, code: int) -> None:
    """Under --distributed with several ranks, an error on this rank aborts the whole job."""
    if _in_job(args):
        from ..distributed import world
        world().abort(code)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
