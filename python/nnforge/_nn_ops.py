"""Training kernels other than GEMM (re-exported by nnforge.ops).

All take float32 arrays: NumPy arrays, or CPU tensors exporting DLPack (torch, JAX) or
the buffer protocol, viewed without a copy (nnforge._args.as_ndarray); results are NumPy
arrays, and an out= tensor receives the result in its own memory. Row ops (softmax family, layer_norm, cross_entropy,
sum_rows) read C-contiguous arrays or 2-D views with unit stride along the last
axis without copying; other layouts are copied to C order first. Results are
bitwise identical for any thread count.
"""
from __future__ import annotations

from typing import Optional

import numpy as np

from . import _core
from ._args import as_ndarray, axis_arg, c_contiguous, rows_layout

__all__ = [
    "batch_norm", "batch_norm_backward", "cross_entropy", "dropout", "dropout_backward",
    "embedding_backward", "gelu", "gelu_backward", "layer_norm", "layer_norm_backward",
    "leaky_relu", "leaky_relu_backward", "log_softmax", "log_softmax_backward", "relu",
    "relu_backward", "sigmoid", "sigmoid_backward", "softmax", "softmax_backward", "sum_rows",
    "tanh", "tanh_backward",
]


def _along_axis(fn, arrays, names, axis, out):
    """Run a last-axis row kernel along `axis` (moves the axis last; copies)."""
    arrays = [as_ndarray(a, n) for a, n in zip(arrays, names)]
    first = arrays[0]
    ax = axis_arg(axis, max(first.ndim, 1), op=fn.__name__)
    if first.ndim == 0 or ax == first.ndim - 1:
        return fn(*[rows_layout(a, n) for a, n in zip(arrays, names)], out=out)
    moved = [np.ascontiguousarray(np.moveaxis(a, ax, -1)) for a in arrays]
    res = np.moveaxis(fn(*moved), -1, ax)
    if out is None:
        return np.ascontiguousarray(res)
    o = as_ndarray(out, "out")
    if o.dtype != np.float32:
        raise TypeError(f"{fn.__name__}: out must be float32, got {o.dtype} with shape {o.shape}")
    if o.shape != first.shape:
        raise ValueError(f"{fn.__name__}: out must have shape {first.shape}, got {o.shape}")
    if not o.flags.writeable:
        raise ValueError(f"{fn.__name__}: out is read-only (shape {o.shape})")
    o[...] = res
    return o


# --- softmax family ------------------------------------------------------------------
def softmax(x: np.ndarray, axis: int = -1, out: Optional[np.ndarray] = None) -> np.ndarray:
    """exp(x - max) / sum(exp(x - max)) along `axis` (last axis: no copy)."""
    return _along_axis(_core.softmax, [x], ["x"], axis, out)


def log_softmax(x: np.ndarray, axis: int = -1, out: Optional[np.ndarray] = None) -> np.ndarray:
    """x - max - log(sum(exp(x - max))) along `axis`."""
    return _along_axis(_core.log_softmax, [x], ["x"], axis, out)


def softmax_backward(y: np.ndarray, dy: np.ndarray, axis: int = -1,
                     out: Optional[np.ndarray] = None) -> np.ndarray:
    """dx = y * (dy - sum(dy * y)) from the softmax output y."""
    return _along_axis(_core.softmax_backward, [y, dy], ["y", "dy"], axis, out)


def log_softmax_backward(y: np.ndarray, dy: np.ndarray, axis: int = -1,
                         out: Optional[np.ndarray] = None) -> np.ndarray:
    """dx = dy - exp(y) * sum(dy) from the log-softmax output y."""
    return _along_axis(_core.log_softmax_backward, [y, dy], ["y", "dy"], axis, out)


def cross_entropy(logits: np.ndarray, labels: np.ndarray, *, weight: Optional[np.ndarray] = None,
                  label_smoothing: float = 0.0, reduction: str = "mean", return_grad: bool = False, out=None):
    """Fused log-softmax + NLL over logits (N, C) and int64/int32 labels (N,).

    Same semantics as torch.nn.functional.cross_entropy (weighted mean divides by
    the summed weights of the targets; label smoothing as torch). Returns the loss
    (float; (N,) float32 for reduction="none") or (loss, dlogits) where dlogits
    (N, C) is the gradient of the reduced loss (of the sum for "none"). With return_grad,
    `out` (N, C) receives dlogits and may be `logits` itself (overwritten in place: a
    model then keeps one logits-sized buffer, not two).
    """
    return _core.cross_entropy(rows_layout(logits, "logits"), labels, weight=c_contiguous(weight, "weight"),
                               label_smoothing=label_smoothing, reduction=reduction,
                               return_grad=return_grad, out=out)


# --- activations (any shape; out may be the input itself) ----------------------------------
def relu(x, out=None):
    """max(x, 0)."""
    return _core.relu(c_contiguous(x, "x"), out)


def relu_backward(dy, y, out=None):
    """dy * (y > 0), from the ReLU output y."""
    return _core.relu_backward(c_contiguous(dy, "dy"), c_contiguous(y, "y"), out)


def leaky_relu(x, negative_slope: float = 0.01, out=None):
    """x if x > 0 else negative_slope * x."""
    return _core.leaky_relu(c_contiguous(x, "x"), negative_slope, out)


def leaky_relu_backward(dy, x, negative_slope: float = 0.01, out=None):
    """dy * (1 if x > 0 else negative_slope), from the input x."""
    return _core.leaky_relu_backward(c_contiguous(dy, "dy"), c_contiguous(x, "x"), negative_slope, out)


def tanh(x, out=None):
    return _core.tanh(c_contiguous(x, "x"), out)


def tanh_backward(dy, y, out=None):
    """dy * (1 - y^2), from the tanh output y."""
    return _core.tanh_backward(c_contiguous(dy, "dy"), c_contiguous(y, "y"), out)


def sigmoid(x, out=None):
    return _core.sigmoid(c_contiguous(x, "x"), out)


def sigmoid_backward(dy, y, out=None):
    """dy * y * (1 - y), from the sigmoid output y."""
    return _core.sigmoid_backward(c_contiguous(dy, "dy"), c_contiguous(y, "y"), out)


def gelu(x, approximate: str = "tanh", out=None):
    """GELU: approximate="tanh" (x/2 (1 + tanh(sqrt(2/pi)(x + 0.044715 x^3)))) or "none" (x Phi(x))."""
    return _core.gelu(c_contiguous(x, "x"), approximate, out)


def gelu_backward(dy, x, approximate: str = "tanh", out=None):
    """dy * gelu'(x), from the input x."""
    return _core.gelu_backward(c_contiguous(dy, "dy"), c_contiguous(x, "x"), approximate, out)


# --- normalisation ---------------------------------------------------------------------
def layer_norm(x, gamma, beta, eps: float = 1e-5):
    """Normalise over the last axis: returns (y, mean, rstd); mean, rstd have shape x.shape[:-1].

    gamma, beta: (D,) or None.
    """
    return _core.layer_norm(rows_layout(x, "x"), c_contiguous(gamma, "gamma"), c_contiguous(beta, "beta"), eps)


def layer_norm_backward(dy, x, gamma, mean, rstd):
    """Returns (dx, dgamma, dbeta); dgamma and dbeta are None when gamma is None."""
    return _core.layer_norm_backward(rows_layout(dy, "dy"), rows_layout(x, "x"), c_contiguous(gamma, "gamma"),
                                     mean, rstd)


def batch_norm(x, gamma, beta, running_mean, running_var, *, training: bool,
               momentum: float = 0.1, eps: float = 1e-5):
    """Batch norm over x (N, C) or (N, C, *spatial): returns (y, save_mean, save_rstd), each (C,).

    training=True normalises with batch statistics and updates running_mean /
    running_var (C,) in place (unbiased variance, like torch); training=False uses
    the running statistics. gamma, beta and both running stats may be None.
    """
    return _core.batch_norm(c_contiguous(x, "x"), gamma, beta, running_mean, running_var,
                            training=training, momentum=momentum, eps=eps)


def batch_norm_backward(dy, x, gamma, save_mean, save_rstd, *, training: bool = True):
    """Returns (dx, dgamma, dbeta) (dgamma, dbeta None when gamma is None)."""
    return _core.batch_norm_backward(c_contiguous(dy, "dy"), c_contiguous(x, "x"), gamma, save_mean, save_rstd,
                                     training=training)


# --- dropout -------------------------------------------------------------------------
def dropout(x, p: float, seed: int):
    """Inverted dropout: returns (y, mask uint8). The mask is a hash of (seed, element
    index), identical for any thread count."""
    return _core.dropout(c_contiguous(x, "x"), p, seed)


def dropout_backward(dy, mask, p: float, out=None):
    """dy * mask / (1 - p)."""
    return _core.dropout_backward(c_contiguous(dy, "dy"), c_contiguous(mask, "mask"), p, out)


# --- reductions --------------------------------------------------------------------
def sum_rows(x, out=None, *, accumulate: bool = False):
    """Column sums of x (N, F) -> (F,) in a fixed order (Linear's bias gradient);
    accumulate=True adds into out."""
    return _core.sum_rows(rows_layout(x, "x"), out, accumulate=accumulate)


def embedding_backward(indices, dy, num_embeddings: int, out=None, *, accumulate: bool = False):
    """Deterministic scatter-add: dW (num_embeddings, D) from dy (indices.shape + (D,));
    accumulate=True adds into out."""
    return _core.embedding_backward(c_contiguous(indices, "indices"), c_contiguous(dy, "dy"), num_embeddings, out,
                                    accumulate=accumulate)
