"""`nnforge train --distributed`: what the training commands share under MPI (started by
`nnforge launch -n N -- nnforge train ... --distributed` or plain mpiexec).

Every rank runs the same command; rank 0 alone prints (the others' stdout goes to
os.devnull, their progress bars are off) and writes the run folder, whose name rank 0
picks. An error on any rank ends the job (cli/__init__.py aborts on it).
"""
from __future__ import annotations

import os
import sys

from .runs import out_dir

__all__ = ["add_arguments", "run_folder", "start"]


def add_arguments(parser) -> None:
    g = parser.add_argument_group("distributed (under nnforge launch / mpiexec)")
    g.add_argument("--distributed", action="store_true",
                   help="data-parallel over the MPI ranks: --batch-size is per rank; rank 0 prints and writes")
    g.add_argument("--shard-optimizer", action="store_true",
                   help="with --distributed: ZeRO-1, each rank keeps 1/N of the optimizer state")


def start(args):
    """The nnforge.distributed module when --distributed (the world initialised, non-main
    ranks silenced), else None."""
    if getattr(args, "shard_optimizer", False) and not getattr(args, "distributed", False):
        from .errors import CliError
        raise CliError("--shard-optimizer needs --distributed")
    if not getattr(args, "distributed", False):
        return None
    from .. import distributed as dist
    dist.init()
    if not dist.is_main():
        sys.stdout = open(os.devnull, "w")
        args.verbose = 0
    return dist


def run_folder(args, dist, model_name: str, dataset: str) -> str:
    """out_dir(), the same on every rank (rank 0's choice)."""
    out = out_dir(args, model_name, dataset)
    return out if dist is None else dist.broadcast_object(out)
