"""Inference-only int8 layers: QuantizedLinear and QuantizedConv2d.

Weights are int8, symmetric per output channel; inputs are uint8, either per row and
computed on each call (dynamic: input_scale is None) or per tensor with a scale and
zero point fixed at conversion (static). The product is exact in int32:
    acc[n, j] = sum_k (xq[n, k] - zx[n]) * wq[k, j],   y = acc * sx[n] * sw[j] + b
then the layer's activation. backward raises: these layers are for inference.

The integer GEMM is _int_gemm below: the int8 family's exact u8 x s8 -> s32 kernel
(ops.qgemm_s32: VNNI / AVX2 / generic) with the zero-point compensation.
"""
from __future__ import annotations

from typing import Optional

import numpy as np

from .. import ops
from ..nn._checks import _float32_input, _nchw
from ..nn.module import Module
from . import _affine

__all__ = ["QuantizedConv2d", "QuantizedLinear"]


def _int_gemm(xq: np.ndarray, x_zero: np.ndarray, wq: np.ndarray) -> np.ndarray:
    """(M, K) uint8 codes minus their (M, 1) or scalar zero points @ (K, N) int8 -> int32:
    xq @ wq - x_zero * colsum(wq), exact in int32 (_check_no_overflow bounds K)."""
    col_sums = wq.sum(axis=0, dtype=np.int32)
    return ops.qgemm_s32(xq, wq) - x_zero.astype(np.int32) * col_sums


def _check_no_overflow(k: int, op: str) -> None:
    if k * _affine.U8_MAX * _affine.S8_MAX >= 2 ** 31:
        raise ValueError(f"{op}: reduction length {k} could overflow the int32 accumulator")


def _apply_activation(y: np.ndarray, activation: Optional[str]) -> np.ndarray:
    if activation is None:
        return y
    if activation == "relu":
        return ops.relu(y)
    return ops.gelu(y, "tanh" if activation == "gelu_tanh" else "none")


class _Quantized(Module):
    """Shared buffers: weight_q (int8), weight_scale (float32 per output channel),
    optional bias (float32), and for static layers input_scale / input_zero_point (0-d)."""

    def __init__(self, weight_q: np.ndarray, weight_scale: np.ndarray, bias: Optional[np.ndarray],
                 input_scale, input_zero_point, activation: Optional[str]):
        super().__init__()
        self.register_buffer("weight_q", np.ascontiguousarray(weight_q, np.int8))
        self.register_buffer("weight_scale", np.ascontiguousarray(weight_scale, np.float32))
        self.has_bias = bias is not None
        if self.has_bias:
            self.register_buffer("bias", np.ascontiguousarray(bias, np.float32))
        self.static = input_scale is not None
        if self.static:
            self.register_buffer("input_scale", np.array(input_scale, np.float32))
            self.register_buffer("input_zero_point", np.array(input_zero_point, np.int32))
        self.activation = activation

    def _quantize_input(self, x2d: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(codes, zero points, scales) of a 2-D float32 input: per row when dynamic."""
        if self.static:
            s, z = self.input_scale, self.input_zero_point
        else:
            s, z = _affine.activation_params(x2d.min(axis=1, keepdims=True), x2d.max(axis=1, keepdims=True))
        return _affine.quantize_u8(x2d, s, z), z, s

    def _matmul(self, x2d: np.ndarray, wq2d: np.ndarray) -> np.ndarray:
        """float32 (M, K) @ the (K, N) int8 weight, rescaled, plus bias: (M, N) float32."""
        xq, z, s = self._quantize_input(x2d)
        acc = _int_gemm(xq, np.asarray(z), wq2d)
        y = (acc * (np.asarray(s, np.float32) * self.weight_scale)).astype(np.float32)
        if self.has_bias:
            y += self.bias
        return y

    def backward(self, *grad_outputs):
        raise RuntimeError(f"{type(self).__name__} is inference-only (int8 weights have no gradient); "
                           f"train the float model or use prepare_qat, then convert")

    def extra_repr(self) -> str:
        mode = "static" if self.static else "dynamic"
        act = f", activation={self.activation!r}" if self.activation else ""
        return f"{self._shape_repr()}, {mode}{act}"


class QuantizedLinear(_Quantized):
    """int8 Linear: weight_q (in, out) int8, weight_scale (out,)."""

    def __init__(self, weight_q, weight_scale, bias=None, *, input_scale=None, input_zero_point=None,
                 activation: Optional[str] = None):
        super().__init__(weight_q, weight_scale, bias, input_scale, input_zero_point, activation)
        self.in_features, self.out_features = self.weight_q.shape
        _check_no_overflow(self.in_features, "QuantizedLinear")

    @classmethod
    def from_float(cls, layer, input_range: Optional[tuple[float, float]] = None) -> "QuantizedLinear":
        """From an nn.Linear; input_range (lo, hi) makes it static, None dynamic."""
        w = layer.weight.data
        scales = _affine.weight_scales(w, channel_axis=1)
        static = {}
        if input_range is not None:
            s, z = _affine.activation_params(*input_range)
            static = {"input_scale": s, "input_zero_point": z}
        bias = layer.bias.data if layer.bias is not None else None
        return cls(_affine.quantize_s8(w, scales, 1), scales, bias, activation=layer.activation, **static)

    def forward(self, x):
        x = _float32_input(x, "QuantizedLinear")
        if x.ndim != 2 or x.shape[1] != self.in_features:
            raise ValueError(f"QuantizedLinear expected input of shape (N, {self.in_features}), got {x.shape}")
        return _apply_activation(self._matmul(x, self.weight_q), self.activation)

    def _shape_repr(self) -> str:
        return f"in_features={self.in_features}, out_features={self.out_features}"


class QuantizedConv2d(_Quantized):
    """int8 Conv2d (groups=1, static input scale): weight_q (K, C, R, S) int8, weight_scale (K,).
    Lowered to one int GEMM over the im2col patches."""

    def __init__(self, weight_q, weight_scale, bias=None, *, input_scale, input_zero_point, stride=(1, 1),
                 padding=(0, 0, 0, 0), dilation=(1, 1), activation: Optional[str] = None):
        if input_scale is None:
            raise ValueError("QuantizedConv2d needs a static input_scale / input_zero_point (calibrate first)")
        super().__init__(weight_q, weight_scale, bias, input_scale, input_zero_point, activation)
        self.stride, self.padding, self.dilation = tuple(stride), tuple(padding), tuple(dilation)
        self.out_channels, self.in_channels, r, s = self.weight_q.shape
        self.kernel_size = (r, s)
        _check_no_overflow(self.in_channels * r * s, "QuantizedConv2d")

    @classmethod
    def from_float(cls, layer, input_range: tuple[float, float]) -> "QuantizedConv2d":
        if layer.groups != 1:
            raise ValueError(f"QuantizedConv2d supports groups=1 only, got groups={layer.groups}")
        w = layer.weight.data
        scales = _affine.weight_scales(w, channel_axis=0)
        s, z = _affine.activation_params(*input_range)
        bias = layer.bias.data if layer.bias is not None else None
        return cls(_affine.quantize_s8(w, scales, 0), scales, bias, input_scale=s, input_zero_point=z,
                   stride=layer.stride, padding=layer.padding, dilation=layer.dilation,
                   activation=layer.activation)

    def _patches(self, x: np.ndarray) -> tuple[np.ndarray, int, int]:
        """x (N, C, H, W) -> (N * Ho * Wo, C * R * S) float32 patches, Ho, Wo. Padding is
        filled with 0.0, which quantises exactly (0 is in every range)."""
        top, bottom, left, right = self.padding
        xp = np.pad(x, ((0, 0), (0, 0), (top, bottom), (left, right)))
        (r, s), (dh, dw), (sh, sw) = self.kernel_size, self.dilation, self.stride
        span_h, span_w = (r - 1) * dh + 1, (s - 1) * dw + 1
        if xp.shape[2] < span_h or xp.shape[3] < span_w:
            raise ValueError(f"QuantizedConv2d: input {x.shape} is smaller than the dilated kernel")
        win = np.lib.stride_tricks.sliding_window_view(xp, (span_h, span_w), axis=(2, 3))
        win = win[:, :, ::sh, ::sw, ::dh, ::dw]  # (N, C, Ho, Wo, R, S)
        n, c, ho, wo = win.shape[:4]
        cols = win.transpose(0, 2, 3, 1, 4, 5).reshape(n * ho * wo, c * r * s)
        return np.ascontiguousarray(cols), ho, wo

    def forward(self, x):
        x = _nchw(x, "QuantizedConv2d", self.in_channels)
        cols, ho, wo = self._patches(x)
        y = self._matmul(cols, self.weight_q.reshape(self.out_channels, -1).T)
        y = np.ascontiguousarray(y.reshape(x.shape[0], ho, wo, self.out_channels).transpose(0, 3, 1, 2))
        return _apply_activation(y, self.activation)

    def _shape_repr(self) -> str:
        return f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, stride={self.stride}"
