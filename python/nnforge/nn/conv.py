"""Convolution layers on NCHW float32 arrays (see module.py for the forward/backward
contract): Conv2d. Pooling is in pool.py, batch norm in norm.py.
"""
from __future__ import annotations

import math
from typing import Optional

import numpy as np

from .. import ops
from .._args import int_pair, padding4
from . import init
from ._checks import _check_grad, _nchw, _need_forward, _positive_int
from .module import Module, Parameter

__all__ = ["Conv2d"]

_CONV_ACTIVATIONS = (None, "relu")


class Conv2d(Module):
    """y = act(conv(x, W) + b): x (N, C, H, W), W (K, C // groups, R, S), y (N, K, Ho, Wo).

    Same arguments and output sizes as torch.nn.Conv2d (padding: int, (ph, pw) or
    (top, bottom, left, right)). activation=None or "relu"; ReLU is fused into the
    kernel's epilogue and its backward uses the saved output. Init as torch:
    W, b ~ U(-1/sqrt(fan_in), 1/sqrt(fan_in)), fan_in = C // groups * R * S.
    Set needs_input_grad = False on a first layer to skip computing dL/dx.
    precision "bf16" (Module.set_precision): forward and backward convolve bf16-rounded
    x, W and dy with float32 accumulation (ops.conv2d's precision="bf16"; db is the sum of
    the rounded dy).
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size, stride=1, padding=0, dilation=1,
                 groups: int = 1, bias: bool = True, activation: Optional[str] = None):
        super().__init__()
        self.in_channels = _positive_int(in_channels, "in_channels")
        self.out_channels = _positive_int(out_channels, "out_channels")
        self.groups = _positive_int(groups, "groups")
        if self.in_channels % self.groups or self.out_channels % self.groups:
            raise ValueError(f"in_channels ({in_channels}) and out_channels ({out_channels}) must be divisible "
                             f"by groups ({groups})")
        # parsed here with the ops' own parsers, so a bad layer fails at construction
        self.kernel_size = int_pair(kernel_size, "kernel_size", min=1, op="Conv2d")
        self.stride = int_pair(stride, "stride", min=1, op="Conv2d")
        self.dilation = int_pair(dilation, "dilation", min=1, op="Conv2d")
        self.padding = padding4(padding, op="Conv2d")
        if activation not in _CONV_ACTIVATIONS:
            raise ValueError(f"activation must be one of {_CONV_ACTIVATIONS}, got {activation!r}")
        self.activation = activation
        self.needs_input_grad = True
        shape = (self.out_channels, self.in_channels // self.groups, *self.kernel_size)
        self.weight = Parameter(init.kaiming_uniform(shape, a=math.sqrt(5.0)))
        bound = 1.0 / math.sqrt(init.fans(shape)[0])
        self.bias = Parameter(init.uniform((self.out_channels,), -bound, bound)) if bias else None
        self._x = self._y = self._y_shape = None
        self._dbuf = None  # reused buffer for the ReLU backward (never returned)

    def _geometry(self) -> dict:
        return {"stride": self.stride, "padding": self.padding, "dilation": self.dilation, "groups": self.groups}

    def forward(self, x):
        x = _nchw(x, "Conv2d", self.in_channels)
        b = self.bias.data if self.bias is not None else None
        y = ops.conv2d(x, self.weight.data, b, activation=self.activation, precision=self.precision,
                       **self._geometry())
        self._x = x
        self._y = y if self.activation == "relu" else None
        self._y_shape = y.shape
        return y

    def backward(self, grad_out):
        x = _need_forward(self._x, "Conv2d")
        dy = _check_grad(grad_out, self._y_shape, "Conv2d")
        if dy.dtype != np.float32:
            raise TypeError(f"Conv2d.backward expects float32 grad_out, got {dy.dtype}")
        if self.activation == "relu":
            if self._dbuf is None or self._dbuf.shape != dy.shape:
                self._dbuf = np.empty(dy.shape, np.float32)
            dy = ops.relu_backward(dy, self._y, out=self._dbuf)
        dx, dw, db = ops.conv2d_backward(dy, x, self.weight.data, need_input=self.needs_input_grad,
                                         need_weight=True, need_bias=self.bias is not None,
                                         precision=self.precision, **self._geometry())
        self.weight.grad += dw
        if self.bias is not None:
            self.bias.grad += db
        return dx

    def extra_repr(self) -> str:
        s = f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, stride={self.stride}"
        if any(self.padding):
            s += f", padding={self.padding}"
        if self.dilation != (1, 1):
            s += f", dilation={self.dilation}"
        if self.groups != 1:
            s += f", groups={self.groups}"
        s += f", bias={self.bias is not None}"
        return s + (f", activation={self.activation!r}" if self.activation else "")
