"""Pooling layers on NCHW float32 arrays (see module.py for the forward/backward
contract): MaxPool2d, AvgPool2d, GlobalAvgPool2d. Window arguments are parsed by
nnforge._args (an int or an (h, w) pair), the output size by the pooling op itself.
"""
from __future__ import annotations

from .. import ops
from .._args import flag_arg, int_pair
from ._checks import _check_grad, _nchw, _need_forward
from .module import Module

__all__ = ["AvgPool2d", "GlobalAvgPool2d", "MaxPool2d"]


class _Pool2d(Module):
    def __init__(self, kernel_size, stride=None, padding=0, ceil_mode: bool = False):
        super().__init__()
        name = type(self).__name__
        self.kernel_size = int_pair(kernel_size, "kernel_size", min=1, op=name)
        self.stride = self.kernel_size if stride is None else int_pair(stride, "stride", min=1, op=name)
        self.padding = int_pair(padding, "padding", min=0, op=name)
        self.ceil_mode = flag_arg(ceil_mode, "ceil_mode", op=name)
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
        self.count_include_pad = flag_arg(count_include_pad, "count_include_pad", op="AvgPool2d")

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
