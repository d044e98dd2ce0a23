"""Checkpoints under MPI: rank 0 writes (atomically, nn/checkpoint.py); the others only
join the collectives a ZeRO-1 optimizer's state_dict() needs to gather its shards."""
from __future__ import annotations

from ..nn import checkpoint
from ._world import world

__all__ = ["save_checkpoint"]


def save_checkpoint(path, model, optimizer=None, extra=None, **kwargs):
    """nn.checkpoint.save on rank 0; call it on every rank. Returns the path (None elsewhere)."""
    if world().rank == 0:
        return checkpoint.save(path, model, optimizer, extra, **kwargs)
    if optimizer is not None and hasattr(optimizer, "_shard_counts"):
        optimizer.state_dict()  # its gather is collective: rank 0's save() runs the same one
    return None
