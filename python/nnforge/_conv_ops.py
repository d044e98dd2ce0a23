"""2-D convolution, NCHW float32 (re-exported by nnforge.ops).

Layouts: x (N, C, H, W), w (K, C // groups, R, S), bias (K,), y (N, K, Ho, Wo).
x, w, bias, dy may be NumPy arrays or CPU tensors exporting DLPack / the buffer protocol
(viewed without a copy). Strided / transposed / sliced views of them are accepted: they are
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

from typing import Optional, Sequence, Tuple, Union

import numpy as np

from . import _core
from ._args import c_contiguous as _c, choice_arg, flag_arg, int_arg, int_pair, padding4, shape_arg
from ._lowp_ops import round_to_bf16_f32

__all__ = ["conv2d", "conv2d_backward", "conv2d_output_shape", "conv2d_algorithm"]

IntOr2 = Union[int, Sequence[int]]


def _geometry(stride, padding, dilation, groups, op: str):
    """The binding's (stride, padding, dilation, groups) from the int-or-pair forms.

    Only types and lengths are checked here; values (positive stride, padding >= 0 as
    the kernel needs) are checked once, in csrc/cpu/conv/conv_shape.cpp."""
    return (list(int_pair(stride, "stride", op=op)), list(padding4(padding, min=None, op=op)),
            list(int_pair(dilation, "dilation", op=op)), int_arg(groups, "groups", op=op))


_PRECISIONS = ("fp32", "bf16")


def _bf16_operands(*named):
    """precision="bf16": every GEMM / direct-kernel operand of a convolution is an element
    of x, w or dy (im2col only rearranges them), so rounding those to bf16 once gives the
    bf16 product exactly: products of bf16 values are exact in float32, and the kernels
    accumulate in float32. bfloat16 arrays are accepted and widened exactly."""
    return tuple(round_to_bf16_f32(v, name) for name, v in named)


def conv2d(x: np.ndarray, w: np.ndarray, bias: Optional[np.ndarray] = None, *, stride: IntOr2 = 1,
           padding: Union[int, Sequence[int]] = 0, dilation: IntOr2 = 1, groups: int = 1,
           activation: Optional[str] = None, out: Optional[np.ndarray] = None,
           precision: str = "fp32") -> np.ndarray:
    """y = activation(conv(x, w) + bias) (cross-correlation, as torch.nn.functional.conv2d).

    activation: None or "relu" (fused into the kernel's epilogue). out: a writeable
    C-contiguous float32 array of the output shape that overlaps no input.
    precision: "fp32" or "bf16" (see _bf16_operands); the output is float32 either way.
    """
    if choice_arg(precision, "precision", _PRECISIONS, op="conv2d") == "bf16":
        x, w = _bf16_operands(("x", x), ("w", w))
    return _core.conv2d(_c(x, "x"), _c(w, "w"), _c(bias, "bias"), *_geometry(stride, padding, dilation, groups,
                                                                               "conv2d"), activation, out)


def conv2d_backward(dy: np.ndarray, x: np.ndarray, w: np.ndarray, *, stride: IntOr2 = 1,
                    padding: Union[int, Sequence[int]] = 0, dilation: IntOr2 = 1, groups: int = 1,
                    need_input: bool = True, need_weight: bool = True, need_bias: bool = True,
                    precision: str = "fp32",
                    ) -> Tuple[Optional[np.ndarray], Optional[np.ndarray], Optional[np.ndarray]]:
    """(dx, dw, db) from dy, the gradient w.r.t. the conv output BEFORE any activation.

    Gradients not asked for are returned as None and cost nothing. precision: "fp32" or
    "bf16" (see _bf16_operands: dy, x and w rounded); gradients are float32 either way.
    """
    if choice_arg(precision, "precision", _PRECISIONS, op="conv2d_backward") == "bf16":
        dy, x, w = _bf16_operands(("dy", dy), ("x", x), ("w", w))
    return _core.conv2d_backward(_c(dy, "dy"), _c(x, "x"), _c(w, "w"),
                                 *_geometry(stride, padding, dilation, groups, "conv2d_backward"),
                                 flag_arg(need_input, "need_input", op="conv2d_backward"),
                                 flag_arg(need_weight, "need_weight", op="conv2d_backward"),
                                 flag_arg(need_bias, "need_bias", op="conv2d_backward"))


def conv2d_output_shape(x_shape: Sequence[int], w_shape: Sequence[int], *, stride: IntOr2 = 1,
                        padding: Union[int, Sequence[int]] = 0, dilation: IntOr2 = 1,
                        groups: int = 1) -> Tuple[int, int, int, int]:
    """(N, K, Ho, Wo); raises ValueError for shapes conv2d would refuse."""
    op = "conv2d_output_shape"
    return tuple(_core.conv2d_output_shape(list(shape_arg(x_shape, "x_shape", op=op)),
                                           list(shape_arg(w_shape, "w_shape", op=op)),
                                           *_geometry(stride, padding, dilation, groups, op)))


def conv2d_algorithm(x_shape: Sequence[int], w_shape: Sequence[int], *, stride: IntOr2 = 1,
                     padding: Union[int, Sequence[int]] = 0, dilation: IntOr2 = 1,
                     groups: int = 1) -> str:
    """Forward algorithm conv2d picks for these shapes (see the module docstring)."""
    op = "conv2d_algorithm"
    return _core.conv2d_algorithm(list(shape_arg(x_shape, "x_shape", op=op)),
                                  list(shape_arg(w_shape, "w_shape", op=op)),
                                  *_geometry(stride, padding, dilation, groups, op))
