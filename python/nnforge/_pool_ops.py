"""2-D pooling kernels on NCHW float32 arrays (re-exported by nnforge.ops).

PyTorch semantics: kernel_size / stride / padding are an int or an (h, w) pair;
stride defaults to kernel_size; padding is implicit -inf (max) or zeros (average)
and at most half the kernel; ceil_mode keeps a last partial window only when it
starts inside the input or the left padding. Inputs may be NumPy arrays or CPU
tensors exporting DLPack / the buffer protocol (no copy); non-contiguous ones are
copied to C order first. Results are bitwise identical for any thread count.
"""
from __future__ import annotations

from typing import Optional, Sequence, Union

import numpy as np

from . import _core
from ._args import c_contiguous, flag_arg, int_pair, shape_arg

__all__ = ["avg_pool2d", "avg_pool2d_backward", "global_avg_pool2d", "global_avg_pool2d_backward",
           "max_pool2d", "max_pool2d_backward", "pool2d_output_shape"]

IntPair = Union[int, Sequence[int]]


def _window(kernel_size, stride, padding, op: str):
    """(k, s, p) pairs; types and lengths here, values in csrc/cpu/pool (make_geometry)."""
    k = int_pair(kernel_size, "kernel_size", op=op)
    s = k if stride is None else int_pair(stride, "stride", op=op)
    return k, s, int_pair(padding, "padding", op=op)


def _x_shape(x_shape, op: str) -> list:
    return list(shape_arg(x_shape, "x_shape", op=op))


def pool2d_output_shape(x_shape, kernel_size: IntPair, stride: Optional[IntPair] = None, padding: IntPair = 0,
                        ceil_mode: bool = False) -> tuple[int, int, int, int]:
    """(N, C, Ho, Wo) of max_pool2d / avg_pool2d on an input of shape x_shape; raises ValueError
    for windows they would refuse (the formula is the C++ one, pool::output_size)."""
    op = "pool2d_output_shape"
    k, s, p = _window(kernel_size, stride, padding, op)
    return tuple(_core.pool2d_output_shape(list(shape_arg(x_shape, "x_shape", op=op)), k, s, p,
                                           flag_arg(ceil_mode, "ceil_mode", op=op)))


def max_pool2d(x: np.ndarray, kernel_size: IntPair, stride: Optional[IntPair] = None, padding: IntPair = 0, *,
               ceil_mode: bool = False, return_indices: bool = True):
    """Max over each window of x (N, C, H, W) -> y (N, C, Ho, Wo) [, indices int64 (N, C, Ho, Wo)].

    indices are flat positions ih * W + iw in each input plane (as torch); ties keep
    the first maximum in row-major window order and NaN propagates.
    """
    k, s, p = _window(kernel_size, stride, padding, "max_pool2d")
    return _core.max_pool2d(c_contiguous(x, "x"), k, s, p, flag_arg(ceil_mode, "ceil_mode", op="max_pool2d"),
                            flag_arg(return_indices, "return_indices", op="max_pool2d"))


def max_pool2d_backward(dy: np.ndarray, indices: np.ndarray, x_shape: Sequence[int]) -> np.ndarray:
    """dx (x_shape) = dy scattered (added) at the max_pool2d indices; every index is
    checked against the input plane before anything is written."""
    return _core.max_pool2d_backward(c_contiguous(dy, "dy"), c_contiguous(indices, "indices"),
                                     _x_shape(x_shape, "max_pool2d_backward"))


def avg_pool2d(x: np.ndarray, kernel_size: IntPair, stride: Optional[IntPair] = None, padding: IntPair = 0, *,
               ceil_mode: bool = False, count_include_pad: bool = True) -> np.ndarray:
    """Mean over each window of x (N, C, H, W) -> (N, C, Ho, Wo); divisor as torch (count_include_pad:
    the window clipped to the padded input; otherwise the real elements it covers)."""
    k, s, p = _window(kernel_size, stride, padding, "avg_pool2d")
    return _core.avg_pool2d(c_contiguous(x, "x"), k, s, p, flag_arg(ceil_mode, "ceil_mode", op="avg_pool2d"),
                            flag_arg(count_include_pad, "count_include_pad", op="avg_pool2d"))


def avg_pool2d_backward(dy: np.ndarray, x_shape: Sequence[int], kernel_size: IntPair,
                        stride: Optional[IntPair] = None, padding: IntPair = 0, ceil_mode: bool = False,
                        count_include_pad: bool = True) -> np.ndarray:
    """dx (x_shape): each dy spread evenly (dy / divisor) over its window."""
    k, s, p = _window(kernel_size, stride, padding, "avg_pool2d_backward")
    return _core.avg_pool2d_backward(c_contiguous(dy, "dy"), _x_shape(x_shape, "avg_pool2d_backward"), k, s, p,
                                     flag_arg(ceil_mode, "ceil_mode", op="avg_pool2d_backward"),
                                     flag_arg(count_include_pad, "count_include_pad", op="avg_pool2d_backward"))


def global_avg_pool2d(x: np.ndarray) -> np.ndarray:
    """Mean of each (H, W) plane: x (N, C, H, W) -> (N, C)."""
    return _core.global_avg_pool2d(c_contiguous(x, "x"))


def global_avg_pool2d_backward(dy: np.ndarray, x_shape: Sequence[int]) -> np.ndarray:
    """dx (x_shape) = dy (N, C) / (H * W) broadcast over each plane."""
    return _core.global_avg_pool2d_backward(c_contiguous(dy, "dy"), _x_shape(x_shape, "global_avg_pool2d_backward"))
