"""Normalisation layers (see module.py for the forward/backward contract): LayerNorm
over the last axis, BatchNorm1d over (N, C[, L]), BatchNorm2d over (N, C, H, W).
"""
from __future__ import annotations

from .. import ops
from .._args import flag_arg, float_arg
from . import init
from ._checks import _check_grad, _float32_input, _need_forward, _positive_int
from .module import Module, Parameter

__all__ = ["BatchNorm1d", "BatchNorm2d", "LayerNorm"]


class LayerNorm(Module):
    """Normalise over the last axis (size normalized_shape), then gamma * x + beta."""

    def __init__(self, normalized_shape, eps: float = 1e-5, elementwise_affine: bool = True):
        super().__init__()
        if isinstance(normalized_shape, (tuple, list)):
            if len(normalized_shape) != 1:
                raise ValueError(f"LayerNorm normalises the last axis only; got normalized_shape={normalized_shape!r}")
            normalized_shape = normalized_shape[0]
        self.normalized_shape = _positive_int(normalized_shape, "normalized_shape")
        self.eps = float_arg(eps, "eps", low=0.0, op="LayerNorm")
        elementwise_affine = flag_arg(elementwise_affine, "elementwise_affine", op="LayerNorm")
        self.weight = Parameter(init.ones(self.normalized_shape)) if elementwise_affine else None
        self.bias = Parameter(init.zeros(self.normalized_shape)) if elementwise_affine else None
        self._cache = None

    def forward(self, x):
        x = _float32_input(x, "LayerNorm")
        if x.ndim < 1 or x.shape[-1] != self.normalized_shape:
            raise ValueError(f"LayerNorm expected input of shape (..., {self.normalized_shape}), got {x.shape}")
        g = self.weight.data if self.weight is not None else None
        b = self.bias.data if self.bias is not None else None
        y, mean, rstd = ops.layer_norm(x, g, b, self.eps)
        self._cache = (x, mean, rstd)
        return y

    def backward(self, grad_out):
        x, mean, rstd = _need_forward(self._cache, "LayerNorm")
        g = self.weight.data if self.weight is not None else None
        dx, dg, db = ops.layer_norm_backward(_check_grad(grad_out, x.shape, "LayerNorm"), x, g, mean, rstd)
        if self.weight is not None:
            self.weight.grad += dg
            self.bias.grad += db
        return dx

    def extra_repr(self) -> str:
        return f"{self.normalized_shape}, eps={self.eps}, elementwise_affine={self.weight is not None}"


class BatchNorm1d(Module):
    """Batch norm over (N, C) or (N, C, L): batch statistics in training mode
    (running_mean / running_var buffers updated with the unbiased variance, like
    torch), running statistics in eval mode."""

    def __init__(self, num_features: int, eps: float = 1e-5, momentum: float = 0.1, affine: bool = True,
                 track_running_stats: bool = True):
        super().__init__()
        self.num_features = _positive_int(num_features, "num_features")
        kind = type(self).__name__
        self.eps = float_arg(eps, "eps", low=0.0, op=kind)
        self.momentum = float_arg(momentum, "momentum", low=0.0, high=1.0, op=kind)
        affine = flag_arg(affine, "affine", op=kind)
        self.weight = Parameter(init.ones(self.num_features)) if affine else None
        self.bias = Parameter(init.zeros(self.num_features)) if affine else None
        self.track_running_stats = flag_arg(track_running_stats, "track_running_stats", op=kind)
        if self.track_running_stats:
            self.register_buffer("running_mean", init.zeros(self.num_features))
            self.register_buffer("running_var", init.ones(self.num_features))
        self._cache = None

    _expected_ndim = (2, 3)

    def forward(self, x):
        x = _float32_input(x, type(self).__name__)
        if x.ndim not in self._expected_ndim or x.shape[1] != self.num_features:
            want = " or ".join(f"(N, {self.num_features}" + ", *" * (d - 2) + ")" for d in self._expected_ndim)
            raise ValueError(f"{type(self).__name__} expected input of shape {want}, got {x.shape}")
        use_batch = self.training or not self.track_running_stats
        rm = self.running_mean if self.track_running_stats else None
        rv = self.running_var if self.track_running_stats else None
        g = self.weight.data if self.weight is not None else None
        b = self.bias.data if self.bias is not None else None
        y, mean, rstd = ops.batch_norm(x, g, b, rm, rv, training=use_batch, momentum=self.momentum, eps=self.eps)
        self._cache = (x, mean, rstd, use_batch)
        return y

    def backward(self, grad_out):
        x, mean, rstd, use_batch = _need_forward(self._cache, type(self).__name__)
        g = self.weight.data if self.weight is not None else None
        dx, dg, db = ops.batch_norm_backward(_check_grad(grad_out, x.shape, type(self).__name__), x, g, mean,
                                             rstd, training=use_batch)
        if self.weight is not None:
            self.weight.grad += dg
            self.bias.grad += db
        return dx

    def extra_repr(self) -> str:
        return f"{self.num_features}, eps={self.eps}, momentum={self.momentum}, affine={self.weight is not None}"




class BatchNorm2d(BatchNorm1d):
    """Batch norm over (N, C, H, W): statistics per channel over N, H and W (torch.nn.BatchNorm2d)."""

    _expected_ndim = (4,)
