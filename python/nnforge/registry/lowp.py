"""to_bfloat16 / to_float32: elementwise, so the reference is exact and the tolerance 0
(ml_dtypes does the rounding in the reference; NaN compares as NaN). The bf16 matmul
cases live in gemm.py, the bf16 conv cases in conv.py.

Cases: lengths 1, 15, 16, 17 (the 16-lane loop and its tail), every layout, 3-d views,
values at the rounding ties, denormals, +-0, +-inf and NaN. bytes = 4 + 2 per element.
"""
from __future__ import annotations

import ml_dtypes
import numpy as np

from ._base import LAYOUTS, Op, f32


def _special(rng, shape):
    """Normal values mixed with the edge values of the conversion."""
    x = f32(rng, shape)
    flat = x.reshape(-1)
    # No values near float32's max: the property walk scales inputs by powers of 2.
    ties = np.array([0x3f808000, 0x3f818000, 0xbf808000, 0x00008000, 0x5f7f8000], dtype=np.uint32).view(np.float32)
    edge = np.concatenate([ties, np.float32([0.0, -0.0, np.inf, -np.inf, np.nan, 1e-40, -3e-39, 1e-45,
                                             -1.17549435e-38])])
    pick = rng.choice(flat.size, size=min(flat.size, edge.size), replace=False)
    flat[pick] = edge[:pick.size]
    return x


def _convert_case(op, shape, layout, to_bf16: bool):
    from nnforge import ops

    def make(rng):
        x = _special(rng, shape) if len(shape) == 1 else f32(rng, shape, layout)
        if not to_bf16:
            x = ops.to_bfloat16(x, np.empty_like(x, dtype=ops.bfloat16))  # same layout
        return (x,), {}
    return op.case(f"{shape} {layout}", make, numel=int(np.prod(shape)))


def _cases(to_bf16: bool):
    def cases(op):
        cs = [_convert_case(op, (n,), "contiguous", to_bf16) for n in (1, 15, 16, 17, 61)]
        cs += [_convert_case(op, (7, 33), lay, to_bf16) for lay in LAYOUTS]
        return cs
    return cases


def to_bfloat16_ref(x):
    return x.astype(np.float32).astype(ml_dtypes.bfloat16).astype(np.float64)


def to_float32_ref(x):
    return x.astype(np.float64)


def run_to_bfloat16(x, out=None):
    from nnforge import ops
    return ops.to_bfloat16(x, out)


def run_to_float32(x, out=None):
    from nnforge import ops
    return ops.to_float32(x, out)


def tolerance(case, args, ref):
    return np.where(np.isnan(ref), np.inf, 0.0)  # exact; NaN: checked as NaN by check_nan


def check_nan(case, args, got) -> None:
    x = np.asarray(args[0]).astype(np.float64)
    g = np.asarray(got).astype(np.float64)
    assert np.array_equal(np.isnan(g), np.isnan(x)), f"{case.id}: NaN positions differ"


def flops(p: dict) -> float:
    return float(p["numel"])  # one rounding (or widening) per element


def bytes_(p: dict) -> float:
    return 6.0 * p["numel"]


def register(add):
    for name, run, ref, to_bf16 in (("to_bfloat16", run_to_bfloat16, to_bfloat16_ref, True),
                                    ("to_float32", run_to_float32, to_float32_ref, False)):
        add(Op(name, "lowp", run, ref, flops, bytes_, _cases(to_bf16), tolerance, check=check_nan,
               scalars={}, ndim_free=(0,), shape_free=(0,),
               covers={"bfloat16": "the dtype ml_dtypes.bfloat16 itself (not an op)"} if to_bf16 else {}))
