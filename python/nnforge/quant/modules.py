"""Inference-only int8 layers: QuantizedLinear and QuantizedConv2d.

Weights are int8, symmetric per output channel; inputs are uint8, either per row and
computed on each call (dynamic: input_scale is None) or per tensor with a scale and
zero point fixed at conversion (static). The product is exact in int32:
    acc[n, j] = sum_k (xq[n, k] - zx[n]) * wq[k, j],   y = acc * sx[n] * sw[j] + b
then the layer's activation, all in one call of ops.qlinear / ops.qconv2d (quantise,
u8 x s8 GEMM, fused epilogue). backward raises: these layers are for inference.

The codes are kept as plain buffers (weight_q, weight_scale: what a checkpoint holds);
the GEMM's packed ops.QuantizedWeight is derived from them once, at construction and
after every load (_state_loaded), never stored.
"""
from __future__ import annotations

from typing import Optional

import numpy as np

from .. import ops
from ..nn._checks import _float32_input, _nchw
from ..nn.module import Module
from . import _affine

__all__ = ["QuantizedConv2d", "QuantizedLinear"]


class _Quantized(Module):
    """Shared buffers: weight_q (int8), weight_scale (float32 per output channel),
    optional bias (float32), and for static layers input_scale / input_zero_point (0-d);
    _qweight, the packed form of weight_q (subclasses give its (N, K) view: _codes)."""

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
        self._state_loaded()

    def _codes(self) -> np.ndarray:
        """weight_q as the (N out, K in) int8 matrix the packed weight holds."""
        raise NotImplementedError

    def _state_loaded(self) -> None:
        self._qweight = ops.QuantizedWeight.from_int8(self._codes(), self.weight_scale)

    def _kernel_args(self) -> dict:
        """bias, activation and (static) input_scale / input_zero_point for ops.qlinear / qconv2d."""
        args = {"bias": self.bias if self.has_bias else None, "activation": self.activation}
        if self.static:
            args.update(input_scale=float(self.input_scale), input_zero_point=int(self.input_zero_point))
        return args

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

    def _codes(self) -> np.ndarray:
        return self.weight_q.T

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
        return ops.qlinear(x, self._qweight, **self._kernel_args())

    def _shape_repr(self) -> str:
        return f"in_features={self.in_features}, out_features={self.out_features}"


class QuantizedConv2d(_Quantized):
    """int8 Conv2d (groups=1, static input scale): weight_q (K, C, R, S) int8, weight_scale (K,)."""

    def __init__(self, weight_q, weight_scale, bias=None, *, input_scale, input_zero_point, stride=(1, 1),
                 padding=(0, 0, 0, 0), dilation=(1, 1), activation: Optional[str] = None):
        if input_scale is None:
            raise ValueError("QuantizedConv2d needs a static input_scale / input_zero_point (calibrate first)")
        super().__init__(weight_q, weight_scale, bias, input_scale, input_zero_point, activation)
        self.stride, self.padding, self.dilation = tuple(stride), tuple(padding), tuple(dilation)
        self.out_channels, self.in_channels, r, s = self.weight_q.shape
        self.kernel_size = (r, s)

    def _codes(self) -> np.ndarray:
        return self.weight_q.reshape(self.weight_q.shape[0], -1)

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

    def forward(self, x):
        x = _nchw(x, "QuantizedConv2d", self.in_channels)
        top, bottom, left, right = self.padding
        ph, pw = min(top, bottom), min(left, right)
        if (top, bottom, left, right) != (ph, ph, pw, pw):
            # qconv2d pads symmetrically; the rest is explicit 0.0, which quantises to the
            # zero point exactly as the kernel's own padding does
            x = np.pad(x, ((0, 0), (0, 0), (top - ph, bottom - ph), (left - pw, right - pw)))
        return ops.qconv2d(x, self._qweight, self.weight_q.shape, stride=self.stride, padding=(ph, pw),
                           dilation=self.dilation, **self._kernel_args())

    def _shape_repr(self) -> str:
        return f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, stride={self.stride}"
