"""Flat parameters: every Parameter's data and grad as views into one contiguous
float32 buffer per model (one for data, one for grads).

Why: an optimizer step over the whole model is then one fused kernel call over one
array (or one per parameter group, each a contiguous segment), zero_grad is one fill,
and a data-parallel all-reduce of the gradients is one call on FlatParameters.grad.

Layout: parameters in order (groups first, each one segment), each starting at a
multiple of ALIGN bytes from a 64-byte aligned base, so every parameter's first
element is cache-line and AVX-512 aligned. The gaps between parameters are zeros in
both buffers and stay zero under every optimizer rule (0 gradient, 0 weight).

Extras (EXTRAS): a pruning mask (uint8, 1 = keep) and a bfloat16 copy of the weights
(mixed precision) get the same layout when any parameter has one, so the optimizer
passes one flat mask / copy per segment too. A parameter without a mask of its own
reads ones there; the gaps hold ones (mask) and zeros (copy).
"""
from __future__ import annotations

from typing import Optional, Sequence

import numpy as np

__all__ = ["ALIGN", "EXTRAS", "FlatParameters", "bump_epoch", "flatten", "layout_epoch", "owner"]

ALIGN = 64  # bytes
_ALIGN_ELEMS = ALIGN // np.dtype(np.float32).itemsize

# Bumped on every (re)layout: an optimizer holding arrays of an older layout rebinds.
_epoch = 0


def layout_epoch() -> int:
    return _epoch


def bump_epoch() -> None:
    """Tell optimizers to rebind (a re-layout, or a mask / bf16 copy set or cleared)."""
    global _epoch
    _epoch += 1


def _bf16_dtype() -> np.dtype:
    import ml_dtypes  # only mixed precision needs it
    return np.dtype(ml_dtypes.bfloat16)


# Parameter attribute -> (dtype factory, fill value of a parameter without one).
EXTRAS = {"mask": (lambda: np.dtype(np.uint8), 1), "bf16": (_bf16_dtype, 0)}


def aligned_zeros(n: int) -> np.ndarray:
    """A 1-D float32 array of n zeros whose data pointer is ALIGN-byte aligned."""
    raw = np.zeros(n + _ALIGN_ELEMS, dtype=np.float32)
    shift = (-raw.ctypes.data % ALIGN) // raw.itemsize
    return raw[shift:shift + n]


def _round_up(n: int) -> int:
    return -(-n // _ALIGN_ELEMS) * _ALIGN_ELEMS


class FlatParameters:
    """The flat buffers of a model: data and grad (1-D, same layout), the parameters in
    buffer order and each one's element offset."""

    __slots__ = ("data", "grad", "params", "offsets", "extras", "_index")

    def __init__(self, params: Sequence, offsets: Sequence[int], total: int):
        self.params = tuple(params)
        self.offsets = tuple(offsets)
        self._index = {id(p): i for i, p in enumerate(self.params)}
        self.data = aligned_zeros(total)
        self.grad = aligned_zeros(total)
        self.extras: dict[str, np.ndarray] = {}  # EXTRAS name -> flat buffer, while any parameter has one

    def extra_view(self, name: str, p) -> np.ndarray:
        """Parameter p's view into the flat `name` buffer (EXTRAS), created on first use."""
        if name not in self.extras:
            dtype, fill = EXTRAS[name]
            self.extras[name] = np.full(self.data.size, fill, dtype=dtype())
        return self.view_like(self.extras[name], p)

    def release_extra(self, name: str, p) -> None:
        """p no longer has a `name`: its view reads the fill value again, and the buffer goes
        once no parameter has one."""
        self.view_like(self.extras[name], p)[...] = EXTRAS[name][1]
        if all(getattr(q, name) is None for q in self.params):
            del self.extras[name]

    def segment(self, params: Sequence) -> Optional[slice]:
        """The slice of the buffers covering exactly `params` when they are consecutive in
        this layout (in this order), else None."""
        idx = [self._index.get(id(p)) for p in params]
        if not idx or idx[0] is None or idx != list(range(idx[0], idx[0] + len(idx))):
            return None
        last = self.params[idx[-1]]
        return slice(self.offsets[idx[0]], self.offsets[idx[-1]] + last.size)

    def view_like(self, buffer: np.ndarray, p) -> np.ndarray:
        """Parameter p's view into another buffer of this layout (optimizer state)."""
        off = self.offsets[self._index[id(p)]]
        return buffer[off:off + p.size].reshape(p.shape)

    def __repr__(self) -> str:
        return f"FlatParameters({len(self.params)} parameters, {self.data.size} floats)"


def owner(params: Sequence) -> Optional[FlatParameters]:
    """The FlatParameters holding exactly these parameters (in any order), or None."""
    if not params:
        return None
    flat = params[0]._flat
    if flat is None or len(flat.params) != len({id(p) for p in params}):
        return None
    return flat if all(p._flat is flat for p in params) else None


def _ordered(params: Sequence, groups) -> list:
    unique = list({id(p): p for p in params}.values())  # tied weights appear once
    if groups is None:
        return unique
    known = {id(p) for p in unique}
    order, seen = [], set()
    for g, group in enumerate(groups):
        for p in group:
            if id(p) not in known:
                raise ValueError(f"flatten_parameters: group {g} holds a {p!r} that is not a parameter of this model")
            if id(p) in seen:
                raise ValueError(f"flatten_parameters: {p!r} is in more than one group")
            seen.add(id(p))
            order.append(p)
    return order + [p for p in unique if id(p) not in seen]  # the rest: one last segment


def flatten(params: Sequence, groups=None) -> FlatParameters:
    """Move params (values and gradients) into new flat buffers in order; a no-op returning
    the current FlatParameters when they already hold exactly this order."""
    global _epoch
    order = _ordered(params, groups)
    for p in order:
        if p.data.dtype != np.float32:
            raise TypeError(f"flatten_parameters needs float32 parameters, got {p!r} with dtype {p.data.dtype}")
    current = owner(order)
    if current is not None and all(a is b for a, b in zip(current.params, order)):
        return current
    offsets, total = [], 0
    for p in order:
        offsets.append(total)
        total = _round_up(total + p.size)
    flat = FlatParameters(order, offsets, total)
    for p, off in zip(order, offsets):
        data = flat.data[off:off + p.size].reshape(p.shape)
        grad = flat.grad[off:off + p.size].reshape(p.shape)
        data[...] = p.data
        grad[...] = p.grad
        p.data, p.grad, p._flat = data, grad, flat
        for name in EXTRAS:
            own = getattr(p, name)
            if own is not None:
                view = flat.extra_view(name, p)
                view[...] = own
                setattr(p, name, view)
    _epoch += 1
    return flat
