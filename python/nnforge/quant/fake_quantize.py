"""Quantisation-aware training: FakeQuantize (quantise-dequantise in the forward, a
straight-through gradient in the backward) and QATWrapper, which fake-quantises a
Linear or Conv2d's input (per tensor, EMA min/max) and weight (per output channel)."""
from __future__ import annotations

import numpy as np

from .._args import float_arg
from ..nn._checks import _check_grad, _float32_input, _need_forward
from ..nn.conv import Conv2d
from ..nn.module import Module
from . import _affine

__all__ = ["FakeQuantize", "QATWrapper"]


class FakeQuantize(Module):
    """y = dequantize(quantize_u8(x)) with the range tracked as an exponential moving
    average of each training batch's min/max (the first batch sets it; eval mode keeps
    it fixed). backward passes the gradient where x lies inside the representable
    range [(0 - zp) * s, (255 - zp) * s] and zeroes it outside (the clipped values)."""

    def __init__(self, momentum: float = 0.01):
        super().__init__()
        self.momentum = float_arg(momentum, "momentum", low=0.0, high=1.0, low_open=True, op="FakeQuantize")
        self.register_buffer("range_min", np.array(0.0, np.float32))
        self.register_buffer("range_max", np.array(0.0, np.float32))
        self.register_buffer("seen", np.array(0, np.int64))
        self._inside = None

    def _observe(self, x: np.ndarray) -> None:
        lo, hi = float(x.min()), float(x.max())
        if int(self.seen) == 0:
            new_lo, new_hi = lo, hi
        else:
            m = self.momentum
            new_lo = (1 - m) * float(self.range_min) + m * lo
            new_hi = (1 - m) * float(self.range_max) + m * hi
        self.range_min[...], self.range_max[...] = new_lo, new_hi
        self.seen[...] = int(self.seen) + 1

    def qparams(self) -> tuple[np.ndarray, np.ndarray]:
        """(scale, zero_point) of the current range."""
        return _affine.activation_params(self.range_min, self.range_max)

    def forward(self, x):
        x = _float32_input(x, "FakeQuantize")
        if self.training and x.size:
            self._observe(x)
        s, z = self.qparams()
        lo = (_affine.U8_MIN - float(z)) * float(s)
        hi = (_affine.U8_MAX - float(z)) * float(s)
        self._inside = (x >= lo) & (x <= hi)
        return _affine.dequantize_u8(_affine.quantize_u8(x, s, z), s, z)

    def backward(self, grad_out):
        inside = _need_forward(self._inside, "FakeQuantize")
        dy = _check_grad(grad_out, inside.shape, "FakeQuantize")
        return np.where(inside, dy, np.float32(0.0)).astype(np.float32)


def fake_quantize_weight(w: np.ndarray, channel_axis: int) -> np.ndarray:
    """Per-channel symmetric int8 quantise-dequantise (scale max|w| / 127: nothing clips,
    so the weight's straight-through gradient is the identity)."""
    scales = _affine.weight_scales(w, channel_axis)
    return _affine.dequantize_s8(_affine.quantize_s8(w, scales, channel_axis), scales, channel_axis)


class QATWrapper(Module):
    """layer(input_fq(x)) with layer's weight fake-quantised during forward and backward.
    The float weight (what the optimizer updates) is swapped back in place after each
    call, so flat-parameter views stay views and gradients land on it unchanged (STE)."""

    def __init__(self, layer: Module):
        super().__init__()
        self.layer = layer
        self.input_fq = FakeQuantize()
        self._channel_axis = 0 if isinstance(layer, Conv2d) else 1

    def _with_fake_weight(self, fn, *args):
        w = self.layer.weight.data
        master = w.copy()
        w[...] = fake_quantize_weight(master, self._channel_axis)
        try:
            return fn(*args)
        finally:
            w[...] = master

    def _input_layer(self) -> Module:
        return self.layer

    def forward(self, x):
        return self._with_fake_weight(self.layer.forward, self.input_fq.forward(x))

    def backward(self, grad_out):
        dx = self._with_fake_weight(self.layer.backward, grad_out)
        return None if dx is None else self.input_fq.backward(dx)
