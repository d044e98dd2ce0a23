"""2-D pooling kernels on NCHW float32 arrays (re-exported by nnforge.ops).

PyTorch semantics: kernel_size / stride / padding are an int or an (h, w) pair;
stride defaults to kernel_size; padding is implicit -inf (max) or zeros (average)
and at most half the kernel; ceil_mode keeps a last partial window only when it
starts inside the input or the left padding. Non-contiguous inputs are copied to
C order first. Results are bitwise identical for any thread count.
"""
from __future__ import annotations

from typing import Optional, Sequence, Union

import numpy as np

from . import _core
from ._nn_ops import _contig

__all__ = ["avg_pool2d", "avg_pool2d_backward", "global_avg_pool2d", "global_avg_pool2d_backward",
           "max_pool2d", "max_pool2d_backward", "pool2d_output_shape"]

IntPair = Union[int, Sequence[int]]


def _pair(value, name: str) -> tuple[int, int]:
    """An int or a length-2 sequence of ints -> (h, w); anything else is a TypeError."""
    if isinstance(value, (int, np.integer)) and not isinstance(value, bool):
        pair = int(value), int(value)
    elif isinstance(value, (tuple, list)) and len(value) == 2 and all(
            isinstance(v, (int, np.integer)) and not isinstance(v, bool) for v in value):
        pair = int(value[0]), int(value[1])
    else:
        raise TypeError(f"{name} must be an int or a pair of ints, got {value!r}")
    if any(abs(v) >= 2**62 for v in pair):  # would not fit the kernel's int64 arguments
        raise ValueError(f"{name} {pair} is out of range")
    return pair


def _window(kernel_size, stride, padding):
    k = _pair(kernel_size, "kernel_size")
    s = k if stride is None else _pair(stride, "stride")
    return k, s, _pair(padding, "padding")


def _out_size(n: int, k: int, s: int, p: int, ceil_mode: bool) -> int:
    span = n + 2 * p - k
    out = (span + (s - 1 if ceil_mode else 0)) // s + 1
    if ceil_mode and (out - 1) * s >= n + p:
        out -= 1
    return out


def pool2d_output_shape(x_shape, kernel_size: IntPair, stride: Optional[IntPair] = None, padding: IntPair = 0,
                        ceil_mode: bool = False) -> tuple[int, int, int, int]:
    """(N, C, Ho, Wo) of max_pool2d / avg_pool2d on an input of shape x_shape (no validation)."""
    (kh, kw), (sh, sw), (ph, pw) = _window(kernel_size, stride, padding)
    n, c, h, w = x_shape
    return n, c, _out_size(h, kh, sh, ph, ceil_mode), _out_size(w, kw, sw, pw, ceil_mode)


def max_pool2d(x: np.ndarray, kernel_size: IntPair, stride: Optional[IntPair] = None, padding: IntPair = 0, *,
               ceil_mode: bool = False, return_indices: bool = True):
    """Max over each window of x (N, C, H, W) -> y (N, C, Ho, Wo) [, indices int64 (N, C, Ho, Wo)].

    indices are flat positions ih * W + iw in each input plane (as torch); ties keep
    the first maximum in row-major window order and NaN propagates.
    """
    k, s, p = _window(kernel_size, stride, padding)
    return _core.max_pool2d(_contig(x), k, s, p, bool(ceil_mode), bool(return_indices))


def max_pool2d_backward(dy: np.ndarray, indices: np.ndarray, x_shape: Sequence[int]) -> np.ndarray:
    """dx (x_shape) = dy scattered (added) at the max_pool2d indices; every index is
    checked against the input plane before anything is written."""
    return _core.max_pool2d_backward(_contig(dy), _contig(indices), [int(v) for v in x_shape])


def avg_pool2d(x: np.ndarray, kernel_size: IntPair, stride: Optional[IntPair] = None, padding: IntPair = 0, *,
               ceil_mode: bool = False, count_include_pad: bool = True) -> np.ndarray:
    """Mean over each window of x (N, C, H, W) -> (N, C, Ho, Wo); divisor as torch (count_include_pad:
    the window clipped to the padded input; otherwise the real elements it covers)."""
    k, s, p = _window(kernel_size, stride, padding)
    return _core.avg_pool2d(_contig(x), k, s, p, bool(ceil_mode), bool(count_include_pad))


def avg_pool2d_backward(dy: np.ndarray, x_shape: Sequence[int], kernel_size: IntPair,
                        stride: Optional[IntPair] = None, padding: IntPair = 0, ceil_mode: bool = False,
                        count_include_pad: bool = True) -> np.ndarray:
    """dx (x_shape): each dy spread evenly (dy / divisor) over its window."""
    k, s, p = _window(kernel_size, stride, padding)
    return _core.avg_pool2d_backward(_contig(dy), [int(v) for v in x_shape], k, s, p, bool(ceil_mode),
                                     bool(count_include_pad))


def global_avg_pool2d(x: np.ndarray) -> np.ndarray:
    """Mean of each (H, W) plane: x (N, C, H, W) -> (N, C)."""
    return _core.global_avg_pool2d(_contig(x))


def global_avg_pool2d_backward(dy: np.ndarray, x_shape: Sequence[int]) -> np.ndarray:
    """dx (x_shape) = dy (N, C) / (H * W) broadcast over each plane."""
    return _core.global_avg_pool2d_backward(_contig(dy), [int(v) for v in x_shape])
