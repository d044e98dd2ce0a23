"""Gradient buckets: contiguous ranges of the flat gradient buffer (nn/flat.py), each
all-reduced in place (a view, no copy) by one Iallreduce.

plan_buckets cuts the buffer at parameter boundaries, walking it from the end (backward
fills gradients from the last layer to the first): a bucket closes when it reaches the
size cap, or where the buffer's order stops following the model's order (the start of the
next optimizer group, e.g. AdamW's no-decay group of biases and norm scales). The ranges
tile the whole buffer (alignment gaps included), so every parameter is in exactly one.

Launch order: every rank must start the same collectives in the same order, so buckets
are launched strictly in one planned order: by when backward should complete them (the
bucket whose earliest parameter in model order is latest goes first).
"""
from __future__ import annotations

from dataclasses import dataclass

__all__ = ["Bucket", "plan_buckets"]


@dataclass(frozen=True)
class Bucket:
    start: int                 # element range [start, stop) of the flat buffers
    stop: int
    params: tuple[int, ...]    # indices into FlatParameters.params

    @property
    def size(self) -> int:
        return self.stop - self.start


def plan_buckets(flat, model_order: dict, cap_elems: int) -> list[Bucket]:
    """Buckets of `flat` (a FlatParameters) in launch order. model_order maps id(param) to
    its position in model.parameters(); cap_elems is the bucket size cap in floats (a
    parameter larger than the cap is a bucket of its own)."""
    if cap_elems < 1:
        raise ValueError(f"bucket size cap must be >= 1 element, got {cap_elems}")
    n = len(flat.params)
    ends = [flat.offsets[i + 1] if i + 1 < n else flat.data.size for i in range(n)]
    pos = [model_order[id(p)] for p in flat.params]
    buckets, members = [], []
    for i in reversed(range(n)):
        if members:
            size = ends[members[0]] - flat.offsets[members[-1]]
            breaks_order = pos[i] > pos[members[-1]]  # walking backwards, model order must fall
            if size >= cap_elems or breaks_order:
                buckets.append(members)
                members = []
        members.append(i)
    if members:
        buckets.append(members)
    out = [Bucket(flat.offsets[m[-1]], ends[m[0]], tuple(sorted(m))) for m in buckets]
    # ready when its earliest parameter (in model order) is done: latest such first
    out.sort(key=lambda b: (-min(pos[i] for i in b.params), -b.start))
    return out
