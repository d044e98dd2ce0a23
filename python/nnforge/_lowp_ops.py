"""bfloat16 conversions (re-exported by nnforge.ops).

bf16 arrays are NumPy arrays of dtype ml_dtypes.bfloat16. ops.matmul takes them directly
(and precision="bf16"); conv2d / conv2d_backward take precision="bf16" (_conv_ops.py).
"""
from __future__ import annotations

from typing import Optional

import ml_dtypes
import numpy as np

from . import _core
from ._args import as_ndarray

__all__ = ["to_bfloat16", "to_float32", "bfloat16"]

bfloat16 = ml_dtypes.bfloat16


def _out_for(x, out, dtype):
    if out is not None:
        return out
    x = as_ndarray(x, "x")
    return np.empty(x.shape, dtype=dtype)


def to_bfloat16(x: np.ndarray, out: Optional[np.ndarray] = None) -> np.ndarray:
    """float32 -> bfloat16, round to nearest even (NaN -> quiet NaN, +-inf and -0 kept,
    denormals rounded, not flushed); any shape and strides. out: a writeable bfloat16
    array of x's shape (any strides), else a new C-contiguous one."""
    return _core.to_bfloat16(x, _out_for(x, out, bfloat16))


def to_float32(x: np.ndarray, out: Optional[np.ndarray] = None) -> np.ndarray:
    """bfloat16 -> float32 (exact); any shape and strides. out: a writeable float32 array
    of x's shape, else a new C-contiguous one."""
    return _core.to_float32(x, _out_for(x, out, np.float32))


def round_to_bf16_f32(x, name: str) -> np.ndarray:
    """x (float32 or bfloat16) as float32 holding bf16-rounded values: the operands of a
    precision="bf16" kernel whose float32 products of such values are exact."""
    x = as_ndarray(x, name)
    if x.dtype == bfloat16:
        return to_float32(x)
    if x.dtype != np.float32:
        return x  # the binding raises its TypeError naming the dtype
    return to_float32(to_bfloat16(x))
