"""Data-parallel training across processes and machines on MPI (mpi4py + Open MPI:
pip install "nnforge[mpi]"; launch with `nnforge launch -n N -- ...` or plain mpiexec).

    from nnforge import distributed as dist
    dist.init()                                  # idempotent; rank 0 of 1 without mpiexec
    dp = dist.DataParallel(model, optimizer=opt) # or model.compile(..., distributed=True)
    for xb, yb in data.batches(x, y, batch_size=b, shuffle=True, shard=True): ...
    dp.verify_identical()                        # every rank ends with the same parameters

Collectives work in place on NumPy buffers, each a non-blocking MPI call waited on with a
deadline (NNFORGE_DIST_TIMEOUT seconds, default 300) whose TimeoutError names the ranks
that are missing (_world.py). A rank that raises ends the whole job with its traceback
(MPI Abort; init() installs it as sys.excepthook). The pieces: _world.py (the world,
waits), buckets.py (gradient buckets), data_parallel.py (DataParallel), zero.py (ZeRO-1),
sync_batchnorm.py (global-batch BatchNorm), checkpoints.py (rank 0 writes), launcher.py
(the mpiexec command line).
"""
from __future__ import annotations

import numpy as np

from ._world import init, report_and_abort, world
from .checkpoints import save_checkpoint
from .data_parallel import DataParallel
from .sync_batchnorm import SyncBatchNorm, convert_sync_batchnorm

__all__ = ["DataParallel", "SyncBatchNorm", "all_reduce", "barrier", "broadcast", "broadcast_object",
           "convert_sync_batchnorm", "init", "is_main", "rank", "report_and_abort", "save_checkpoint", "world_size"]


def rank() -> int:
    return world().rank


def world_size() -> int:
    return world().size


def is_main() -> bool:
    """True on rank 0, the rank that prints and writes files."""
    return world().rank == 0


def barrier() -> None:
    world().barrier()


def all_reduce(array: np.ndarray, op: str = "sum") -> np.ndarray:
    """Sum ("sum") or average ("mean") of array over the ranks, in place; returns array."""
    return world().all_reduce(array, op)


def broadcast(array: np.ndarray, root: int = 0) -> np.ndarray:
    """Rank root's array on every rank, in place; returns array."""
    return world().broadcast(array, root)


def broadcast_object(value, root: int = 0):
    """Rank root's value (a small picklable object) on every rank."""
    return world().gather_objects(value)[root]
