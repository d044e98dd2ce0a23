"""2-D convolution, NCHW float32 (re-exported by nnforge.ops).

Layouts: x (N, C, H, W), w (K, C // groups, R, S), bias (K,), y (N, K, Ho, Wo).
Strided / transposed / sliced NumPy views of x, w, bias and dy are accepted: they are
copied to C order here (one pass over the input, small next to the convolution) so
the kernels read plain contiguous planes; a view never gives a different answer.
dtype is never converted: anything but float32 raises TypeError in the binding.

Algorithms (conv2d_algorithm): "direct_smallc" (C/groups <= 4: direct register-blocked
kernel), "implicit_gemm" (more channels, stride_w 1: the same kernel over the C*R*S taps,
read in place from padded rows), "depthwise" (groups == C == K), "gemm_1x1" (1x1,
stride 1, no padding: GEMM on the image itself), "im2col_tiles" (everything else: im2col
in bounded per-thread tiles + GEMM). The backward pass computes dx as a forward
convolution with flipped filters when the stride is 1 and C/groups >= 3 or depthwise (else
GEMM + col2im tiles), and dw as GEMMs over im2col tiles (the direct dW kernel, measured
slower since the AVX2 GEMM rewrite, runs only when direct_smallc / implicit_gemm is
forced). Results are bitwise identical for any thread count.
"""
from __future__ import annotations

import numbers
from typing import Optional, Sequence, Tuple, Union

import numpy as np

from . import _core
from ._nn_ops import _contig as _c

__all__ = ["conv2d", "conv2d_backward", "conv2d_output_shape", "conv2d_algorithm"]

IntOr2 = Union[int, Sequence[int]]


def _int(v, what: str) -> int:
    if isinstance(v, (bool, np.bool_)) or not isinstance(v, numbers.Integral):
        raise TypeError(f"conv2d: {what} must be an int, got {type(v).__name__} {v!r}")
    return int(v)


def _pair(v, what: str) -> list[int]:
    if isinstance(v, (tuple, list)):
        if len(v) != 2:
            raise ValueError(f"conv2d: {what} must be an int or a pair, got {v!r}")
        return [_int(e, what) for e in v]
    i = _int(v, what)
    return [i, i]


def _padding(v) -> list[int]:
    """int, (ph, pw) or (top, bottom, left, right) -> [top, bottom, left, right]."""
    if isinstance(v, (tuple, list)):
        if len(v) == 2:
            ph, pw = (_int(e, "padding") for e in v)
            return [ph, ph, pw, pw]
        if len(v) == 4:
            return [_int(e, "padding") for e in v]
        raise ValueError(f"conv2d: padding must be an int, (ph, pw) or (top, bottom, left, right), got {v!r}")
    p = _int(v, "padding")
    return [p, p, p, p]


def _shape(a, what: str) -> list[int]:
    try:
        return [_int(d, f"{what} entries") for d in a]
    except TypeError:
        raise TypeError(f"conv2d: {what} must be a sequence of ints, got {a!r}") from None


def conv2d(x: np.ndarray, w: np.ndarray, bias: Optional[np.ndarray] = None, *, stride: IntOr2 = 1,
           padding: Union[int, Sequence[int]] = 0, dilation: IntOr2 = 1, groups: int = 1,
           activation: Optional[str] = None, out: Optional[np.ndarray] = None) -> np.ndarray:
    """y = activation(conv(x, w) + bias) (cross-correlation, as torch.nn.functional.conv2d).

    activation: None or "relu" (fused into the kernel's epilogue). out: a writeable
    C-contiguous float32 array of the output shape that overlaps no input.
    """
    return _core.conv2d(_c(x), _c(w), _c(bias), _pair(stride, "stride"), _padding(padding),
                        _pair(dilation, "dilation"), _int(groups, "groups"), activation, out)


def conv2d_backward(dy: np.ndarray, x: np.ndarray, w: np.ndarray, *, stride: IntOr2 = 1,
                    padding: Union[int, Sequence[int]] = 0, dilation: IntOr2 = 1, groups: int = 1,
                    need_input: bool = True, need_weight: bool = True, need_bias: bool = True,
                    ) -> Tuple[Optional[np.ndarray], Optional[np.ndarray], Optional[np.ndarray]]:
    """(dx, dw, db) from dy, the gradient w.r.t. the conv output BEFORE any activation.

    Gradients not asked for are returned as None and cost nothing.
    """
    return _core.conv2d_backward(_c(dy), _c(x), _c(w), _pair(stride, "stride"), _padding(padding),
                                 _pair(dilation, "dilation"), _int(groups, "groups"),
                                 bool(need_input), bool(need_weight), bool(need_bias))


def conv2d_output_shape(x_shape: Sequence[int], w_shape: Sequence[int], *, stride: IntOr2 = 1,
                        padding: Union[int, Sequence[int]] = 0, dilation: IntOr2 = 1,
                        groups: int = 1) -> Tuple[int, int, int, int]:
    """(N, K, Ho, Wo); raises ValueError for shapes conv2d would refuse."""
    return tuple(_core.conv2d_output_shape(_shape(x_shape, "x_shape"), _shape(w_shape, "w_shape"),
                                           _pair(stride, "stride"), _padding(padding),
                                           _pair(dilation, "dilation"), _int(groups, "groups")))


def conv2d_algorithm(x_shape: Sequence[int], w_shape: Sequence[int], *, stride: IntOr2 = 1,
                     padding: Union[int, Sequence[int]] = 0, dilation: IntOr2 = 1,
                     groups: int = 1) -> str:
    """Forward algorithm conv2d picks for these shapes (see the module docstring)."""
    return _core.conv2d_algorithm(_shape(x_shape, "x_shape"), _shape(w_shape, "w_shape"),
                                  _pair(stride, "stride"), _padding(padding),
                                  _pair(dilation, "dilation"), _int(groups, "groups"))
