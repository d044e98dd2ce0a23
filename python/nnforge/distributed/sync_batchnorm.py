"""SyncBatchNorm: batch norm whose training statistics are those of the global batch (all
ranks), so N ranks x batch b normalise as one process with batch N*b.

By default DataParallel leaves BatchNorm per rank (each normalises over its own shard, as
torch DDP does); DataParallel(model, sync_batchnorm=True) or convert_sync_batchnorm(model)
turns every BatchNorm1d/2d into this class in place (same parameters and buffers).

Forward (training): per channel, sum x and sum x^2 over this rank's (N, *) positions,
all-reduced with the count in float64; mean, biased var -> normalise; the running
statistics get the unbiased var of the global batch. Backward: sum dy and sum dy*xhat,
all-reduced; dx = gamma * rstd * (dy - sum dy / n - xhat * sum dy*xhat / n), n the
global count; dgamma, dbeta stay this rank's sums (DataParallel averages them like every
other gradient). Eval mode (running statistics) is BatchNorm's own kernel.
The statistics are NumPy in float64: one pass each, small next to the layers around them.
"""
from __future__ import annotations

import numpy as np

from ..nn._checks import _check_grad, _float32_input
from ..nn.module import Module
from ..nn.norm import BatchNorm1d
from ._world import world

__all__ = ["SyncBatchNorm", "convert_sync_batchnorm"]


def _channels_last(a: np.ndarray) -> np.ndarray:
    """(N, C, *) -> (N * prod(*), C) float64 view order for per-channel sums."""
    return np.moveaxis(a, 1, -1).reshape(-1, a.shape[1])


class SyncBatchNorm(BatchNorm1d):
    """Batch norm over (N, C), (N, C, L) or (N, C, H, W) with statistics over all ranks."""

    _expected_ndim = (2, 3, 4)

    def forward(self, x):
        if not (self.training or not self.track_running_stats):
            return super().forward(x)
        x = _float32_input(x, "SyncBatchNorm")
        if x.ndim not in self._expected_ndim or x.shape[1] != self.num_features:
            raise ValueError(f"SyncBatchNorm expected input of shape (N, {self.num_features}, *) with 0 to 2 "
                             f"trailing axes, got {x.shape}")
        rows = _channels_last(x).astype(np.float64)
        stats = np.concatenate([rows.sum(axis=0), (rows * rows).sum(axis=0), [rows.shape[0]]])
        world().all_reduce(stats)
        c = self.num_features
        n = stats[-1]
        mean = stats[:c] / n
        var = np.maximum(stats[c:2 * c] / n - mean * mean, 0.0)
        rstd = 1.0 / np.sqrt(var + self.eps)
        if self.track_running_stats and self.training:
            m = self.momentum
            self.running_mean[...] = (1 - m) * self.running_mean + m * mean
            self.running_var[...] = (1 - m) * self.running_var + m * var * (n / max(n - 1, 1))
        shape = (1, c) + (1,) * (x.ndim - 2)
        xhat = (x - mean.reshape(shape)) * rstd.reshape(shape)
        y = xhat if self.weight is None else xhat * self.weight.data.reshape(shape) + self.bias.data.reshape(shape)
        self._cache = (x, mean, rstd, "sync", n)
        return y.astype(np.float32)

    def backward(self, grad_out):
        if self._cache is None or self._cache[3] != "sync":
            return super().backward(grad_out)
        x, mean, rstd, _, n = self._cache
        grad_out = _check_grad(grad_out, x.shape, "SyncBatchNorm")
        c = self.num_features
        shape = (1, c) + (1,) * (x.ndim - 2)
        xhat = (x - mean.reshape(shape)) * rstd.reshape(shape)
        dy = grad_out.astype(np.float64)
        local = np.concatenate([_channels_last(dy).sum(axis=0), _channels_last(dy * xhat).sum(axis=0)])
        if self.weight is not None:
            self.bias.grad += local[:c].astype(np.float32)
            self.weight.grad += local[c:].astype(np.float32)
        total = world().all_reduce(local.copy())
        gamma = np.ones(c) if self.weight is None else self.weight.data.astype(np.float64)
        mean_dy, mean_dy_xhat = (total[:c] / n).reshape(shape), (total[c:] / n).reshape(shape)
        dx = (gamma * rstd).reshape(shape) * (dy - mean_dy - xhat * mean_dy_xhat)
        return dx.astype(np.float32)


def convert_sync_batchnorm(model: Module) -> Module:
    """Every BatchNorm1d / BatchNorm2d in model becomes a SyncBatchNorm, in place; returns model."""
    for _, mod in model.named_modules():
        if isinstance(mod, BatchNorm1d) and not isinstance(mod, SyncBatchNorm):
            mod.__class__ = SyncBatchNorm
    return model
