"""ZeRO stage 1: each rank keeps optimizer state for its 1/N of the flat parameter buffer.

    DataParallel(model, optimizer=opt, shard_optimizer=True)

The step: the gradients are all-reduced (mean) as without sharding (DataParallel's
overlapped buckets), each rank runs the optimizer's own fused kernel on its slice only
(per group: the group's segment cut to the slice), then an in-place Allgatherv puts every
rank's updated slice into everyone's flat parameter buffer. The global gradient norm
(clip_grad_norm) and the finite check are computed on the full, identical averaged
gradient, so every rank takes the same decision and the result equals the unsharded
run's. Communication: one all-reduce plus one all-gather of the parameters per step.

The optimizer is changed in place: it keeps its class name and hyper-parameters, its
parameters become the slice views (one per group) and its state buffers shrink to the
slice (per-rank optimizer memory / N). state_dict() gathers the full state (a collective:
every rank calls it; distributed.save_checkpoint does) in the unsharded format, so a
checkpoint loads under any number of ranks, sharded or not; load_state_dict() keeps this
rank's slice of it.
"""
from __future__ import annotations

from collections import OrderedDict

import numpy as np

from ..nn import flat as _flat
from ..nn.module import Parameter
from .data_parallel import _SyncBeforeStep, synced_class

__all__ = ["shard", "shard_ranges"]


def shard_ranges(total: int, world_size: int) -> tuple[list[int], list[int]]:
    """(counts, displs): rank r owns elements [displs[r], displs[r] + counts[r]) of a flat
    buffer of `total` floats; slices start at ALIGN-byte boundaries."""
    align = _flat.ALIGN // 4
    per = -(-(-(-total // world_size)) // align) * align
    displs = [min(r * per, total) for r in range(world_size)]
    counts = [min(d + per, total) - d for d in displs]
    return counts, displs


def _slice_param(data: np.ndarray, grad: np.ndarray) -> Parameter:
    p = Parameter.__new__(Parameter)
    p.data, p.grad, p._flat = data, grad, None  # views of the flat buffers, never re-bound
    p.mask = p.bf16 = None  # ZeRO-1 slices take no pruning mask / bf16 copy (not supported yet)
    return p


class _ShardedStep(_SyncBeforeStep):
    """The ZeRO-1 optimizer: step on this rank's slice, then all-gather the parameters."""

    def _bind(self) -> None:
        super()._bind()
        flat = self._data_parallel.flat
        self._grads, self._data = [flat.grad], [flat.data]  # norm, l1 and zero_grad see everything

    def step(self, zero_grad: bool = False) -> bool:
        dp = self._data_parallel
        dp.finish_gradient_sync()
        grad = dp.flat.grad
        if self.check_finite and not np.isfinite(self._grad_norm_fn(self._grads)):
            ok = False  # decided on the full gradient, so every rank skips together
            self.skipped_steps += 1
        else:
            ok = super(_SyncBeforeStep, self).step(False)
        if ok:
            w = dp.world
            w.wait([w.iallgatherv(dp.flat.data, *self._shard_counts)], "ZeRO-1 parameter all-gather")
        if zero_grad:
            grad.fill(0.0)
        return ok

    def _buffer_keys(self):
        return {f"{name}.{i}" for name in self._buffers for i in range(len(self._shard_params))}

    def state_dict(self) -> "OrderedDict[str, np.ndarray]":
        """The unsharded optimizer's state_dict (a collective: every rank must call it)."""
        dp = self._data_parallel
        flat, w = dp.flat, dp.world
        state = super().state_dict()
        for key in self._buffer_keys():
            state.pop(key)
        for name, bufs in self._buffers.items():
            full = _flat.aligned_zeros(flat.data.size)
            for (a, b), buf in zip(self._slices, bufs):
                full[a:b] = buf
            w.wait([w.iallgatherv(full, *self._shard_counts)], f"ZeRO-1 gather of optimizer state '{name}'")
            for i, p in enumerate(self._full_params):
                state[f"{name}.{i}"] = flat.view_like(full, p).copy()
        return state

    def _plan_load(self, state, casting: str = "same_kind"):
        """Plan loading an unsharded state_dict, keeping this rank's slice; validated before
        anything is assigned (the base class's load_state_dict and checkpoint.load run the plan)."""
        kind = type(self).__name__
        flat = self._data_parallel.flat
        expected = {f"{n}.{i}" for n in self._buffers for i in range(len(self._full_params))}
        extra = sorted(k for k in state if "." in k and not k.startswith("hyper.") and k not in expected)
        if extra:
            raise ValueError(f"{kind} state has unexpected entries {extra[:3]} (saved from a different optimizer "
                             f"or model?)")
        merged = OrderedDict((k, v) for k, v in state.items() if k not in expected)
        for name in self._buffers:
            full = np.zeros(flat.data.size, dtype=np.float32)
            for i, p in enumerate(self._full_params):
                key = f"{name}.{i}"
                if key not in state:
                    raise ValueError(f"{kind} state is missing '{key}' (saved from a different optimizer or model?)")
                src = np.asarray(state[key])
                if src.shape != p.shape:
                    raise ValueError(f"{kind} state entry '{key}' has shape {src.shape}, parameter {i} has {p.shape}")
                flat.view_like(full, p)[...] = src
            for gi, (a, b) in enumerate(self._slices):
                merged[f"{name}.{gi}"] = full[a:b]
        return super()._plan_load(merged, casting)


def shard(optimizer, dp) -> None:
    """Turn optimizer (over dp's flat parameters) into its ZeRO-1 form, in place."""
    flat, w = dp.flat, dp.world
    counts, displs = shard_ranges(flat.data.size, w.size)
    lo, hi = displs[w.rank], displs[w.rank] + counts[w.rank]
    groups, slices = [], []
    for gi, g in enumerate(optimizer.param_groups):
        seg = flat.segment(g["params"])
        if seg is None:
            raise ValueError(f"shard_optimizer: parameter group {gi} is not one contiguous segment of the flat "
                             f"buffer; flatten the model in the optimizer's group order "
                             f"(model.flatten_parameters(opt.group_parameters()), as compile does)")
        a, b = max(seg.start, lo), min(seg.stop, hi)
        a, b = (a, b) if a < b else (lo, lo)  # this rank holds none of the group: an empty slice
        slices.append((a, b))
        groups.append({**{k: v for k, v in g.items() if k != "params"},
                       "params": [_slice_param(flat.data[a:b], flat.grad[a:b])]})
    state = optimizer.state_dict()  # whatever state it has (a loaded checkpoint) carries over
    full_params = list(optimizer.params)
    shard_params = [g["params"][0] for g in groups]
    optimizer.__class__ = synced_class(type(optimizer), _ShardedStep)
    optimizer._data_parallel = dp
    optimizer._full_params, optimizer._shard_params, optimizer._slices = full_params, shard_params, slices
    optimizer._shard_counts = (counts, displs)
    optimizer.param_groups = groups
    optimizer.params = shard_params
    optimizer._buffers = OrderedDict((name, [np.zeros_like(p.data) for p in shard_params])
                                     for name in optimizer._buffer_names())
    optimizer._bind()
    optimizer.load_state_dict(state)
