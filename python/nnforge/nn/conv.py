"""Convolution and pooling layers on NCHW float32 arrays (see module.py for the
forward/backward contract): Conv2d, MaxPool2d, AvgPool2d, GlobalAvgPool2d, BatchNorm2d.
"""
from __future__ import annotations

import math
from typing import Optional

import numpy as np

from .. import ops
from . import init
from .layers import BatchNorm1d, _check_grad, _float32_input, _need_forward, _positive_int
from .module import Module, Parameter

__all__ = ["AvgPool2d", "BatchNorm2d", "Conv2d", "GlobalAvgPool2d", "MaxPool2d"]

_CONV_ACTIVATIONS = (None, "relu")


def _nchw(x, layer: str, channels: Optional[int] = None) -> np.ndarray:
    x = _float32_input(x, layer)
    if x.ndim != 4 or (channels is not None and x.shape[1] != channels):
        want = f"(N, {channels}, H, W)" if channels is not None else "(N, C, H, W)"
        raise ValueError(f"{layer} expected input of shape {want}, got {x.shape}")
    return x


def _pair_or_int(v, name: str):
    """Validate an int or (h, w) pair early, so a bad layer fails at construction."""
    is_seq = isinstance(v, (tuple, list))
    vals = v if is_seq else (v,)
    if len(vals) != (2 if is_seq else 1) or any(isinstance(a, bool) or not isinstance(a, (int, np.integer)) for a in vals):
        raise TypeError(f"{name} must be an int or a pair of ints, got {v!r}")
    return tuple(int(a) for a in v) if is_seq else int(v)


class Conv2d(Module):
    """y = act(conv(x, W) + b): x (N, C, H, W), W (K, C // groups, R, S), y (N, K, Ho, Wo).

    Same arguments and output sizes as torch.nn.Conv2d (padding: int, (ph, pw) or
    (top, bottom, left, right)). activation=None or "relu"; ReLU is fused into the
    kernel's epilogue and its backward uses the saved output. Init as torch:
    W, b ~ U(-1/sqrt(fan_in), 1/sqrt(fan_in)), fan_in = C // groups * R * S.
    Set needs_input_grad = False on a first layer to skip computing dL/dx.
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
        k = _pair_or_int(kernel_size, "kernel_size")
        self.kernel_size = (k, k) if isinstance(k, int) else k
        if min(self.kernel_size) < 1:
            raise ValueError(f"kernel_size must be positive, got {kernel_size!r}")
        self.stride = _pair_or_int(stride, "stride")
        self.dilation = _pair_or_int(dilation, "dilation")
        if isinstance(padding, (tuple, list)) and len(padding) == 4:
            self.padding = tuple(int(p) for p in padding)
        else:
            self.padding = _pair_or_int(padding, "padding")
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
        y = ops.conv2d(x, self.weight.data, b, activation=self.activation, **self._geometry())
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
                                         need_weight=True, need_bias=self.bias is not None, **self._geometry())
        self.weight.grad += dw
        if self.bias is not None:
            self.bias.grad += db
        return dx

    def extra_repr(self) -> str:
        s = f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, stride={self.stride}"
        if self.padding != 0:
            s += f", padding={self.padding}"
        if self.dilation != 1:
            s += f", dilation={self.dilation}"
        if self.groups != 1:
            s += f", groups={self.groups}"
        s += f", bias={self.bias is not None}"
        return s + (f", activation={self.activation!r}" if self.activation else "")


class _Pool2d(Module):
    def __init__(self, kernel_size, stride=None, padding=0, ceil_mode: bool = False):
        super().__init__()
        self.kernel_size = _pair_or_int(kernel_size, "kernel_size")
        self.stride = self.kernel_size if stride is None else _pair_or_int(stride, "stride")
        self.padding = _pair_or_int(padding, "padding")
        self.ceil_mode = bool(ceil_mode)
        self._cache = None

    def extra_repr(self) -> str:
        return (f"kernel_size={self.kernel_size}, stride={self.stride}, padding={self.padding}, "
                f"ceil_mode={self.ceil_mode}")


class MaxPool2d(_Pool2d):
    """Max over windows (torch.nn.MaxPool2d semantics; padding counts as -inf).
    The argmax indices are kept for backward."""

    def forward(self, x):
        x = _nchw(x, "MaxPool2d")
        y, idx = ops.max_pool2d(x, self.kernel_size, self.stride, self.padding, ceil_mode=self.ceil_mode)
        self._cache = (x.shape, idx)
        return y

    def backward(self, grad_out):
        x_shape, idx = _need_forward(self._cache, "MaxPool2d")
        return ops.max_pool2d_backward(_check_grad(grad_out, idx.shape, "MaxPool2d"), idx, x_shape)


class AvgPool2d(_Pool2d):
    """Mean over windows (torch.nn.AvgPool2d semantics, including count_include_pad)."""

    def __init__(self, kernel_size, stride=None, padding=0, ceil_mode: bool = False,
                 count_include_pad: bool = True):
        super().__init__(kernel_size, stride, padding, ceil_mode)
        self.count_include_pad = bool(count_include_pad)

    def forward(self, x):
        x = _nchw(x, "AvgPool2d")
        y = ops.avg_pool2d(x, self.kernel_size, self.stride, self.padding, ceil_mode=self.ceil_mode,
                           count_include_pad=self.count_include_pad)
        self._cache = (x.shape, y.shape)
        return y

    def backward(self, grad_out):
        x_shape, y_shape = _need_forward(self._cache, "AvgPool2d")
        return ops.avg_pool2d_backward(_check_grad(grad_out, y_shape, "AvgPool2d"), x_shape, self.kernel_size,
                                       self.stride, self.padding, self.ceil_mode, self.count_include_pad)

    def extra_repr(self) -> str:
        return super().extra_repr() + f", count_include_pad={self.count_include_pad}"


class GlobalAvgPool2d(Module):
    """(N, C, H, W) -> (N, C): the mean of each channel's plane."""

    def __init__(self):
        super().__init__()
        self._shape = None

    def forward(self, x):
        x = _nchw(x, "GlobalAvgPool2d")
        self._shape = x.shape
        return ops.global_avg_pool2d(x)

    def backward(self, grad_out):
        shape = _need_forward(self._shape, "GlobalAvgPool2d")
        return ops.global_avg_pool2d_backward(_check_grad(grad_out, shape[:2], "GlobalAvgPool2d"), shape)


class BatchNorm2d(BatchNorm1d):
    """Batch norm over (N, C, H, W): statistics per channel over N, H and W (torch.nn.BatchNorm2d)."""

    _expected_ndim = (4,)
