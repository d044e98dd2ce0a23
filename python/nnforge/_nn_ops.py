"""Training kernels other than GEMM (re-exported by nnforge.ops).

All take float32 NumPy arrays. Row ops (softmax family, layer_norm, cross_entropy,
sum_rows) read C-contiguous arrays or 2-D views with unit stride along the last
axis without copying; other layouts are copied to C order first. Results are
bitwise identical for any thread count.
"""
from __future__ import annotations

from typing import Optional

import numpy as np

from . import _core

__all__ = [
    "batch_norm", "batch_norm_backward", "cross_entropy", "dropout", "dropout_backward",
    "embedding_backward", "gelu", "gelu_backward", "layer_norm", "layer_norm_backward",
    "leaky_relu", "leaky_relu_backward", "log_softmax", "log_softmax_backward", "relu",
    "relu_backward", "sigmoid", "sigmoid_backward", "softmax", "softmax_backward", "sum_rows",
    "tanh", "tanh_backward",
]


def _contig(a):
    """C-order copy of a non-contiguous ndarray (anything else is left to the binding)."""
    if isinstance(a, np.ndarray) and not a.flags.c_contiguous:
        return np.ascontiguousarray(a)
    return a


def _rows(a):
    """Leave C-contiguous arrays and 2-D unit-column-stride views as they are."""
    if isinstance(a, np.ndarray) and not a.flags.c_contiguous:
        if not (a.ndim == 2 and (a.shape[1] <= 1 or a.strides[1] == a.itemsize)):
            return np.ascontiguousarray(a)
    return a


def _along_axis(fn, arrays, axis, out):
    """Run a last-axis row kernel along `axis` (moves the axis last; copies)."""
    first = arrays[0]
    if not isinstance(first, np.ndarray) or first.ndim == 0:
        return fn(*[_rows(a) for a in arrays], out=out)
    ax = axis
    if not isinstance(ax, (int, np.integer)) or isinstance(ax, bool) or not -first.ndim <= ax < first.ndim:
        raise ValueError(f"axis {axis!r} is out of range for an array of shape {first.shape}")
    ax = int(ax) % first.ndim
    if ax == first.ndim - 1:
        return fn(*[_rows(a) for a in arrays], out=out)
    moved = [np.ascontiguousarray(np.moveaxis(a, ax, -1)) if isinstance(a, np.ndarray) else a
             for a in arrays]
    res = np.moveaxis(fn(*moved), -1, ax)
    if out is None:
        return np.ascontiguousarray(res)
    if not isinstance(out, np.ndarray) or out.shape != first.shape or out.dtype != np.float32:
        raise ValueError(f"out must be a float32 array of shape {first.shape}")
    out[...] = res
    return out


# --- softmax family ------------------------------------------------------------------
def softmax(x: np.ndarray, axis: int = -1, out: Optional[np.ndarray] = None) -> np.ndarray:
    """exp(x - max) / sum(exp(x - max)) along `axis` (last axis: no copy)."""
    return _along_axis(_core.softmax, [x], axis, out)


def log_softmax(x: np.ndarray, axis: int = -1, out: Optional[np.ndarray] = None) -> np.ndarray:
    """x - max - log(sum(exp(x - max))) along `axis`."""
    return _along_axis(_core.log_softmax, [x], axis, out)


def softmax_backward(y: np.ndarray, dy: np.ndarray, axis: int = -1,
                     out: Optional[np.ndarray] = None) -> np.ndarray:
    """dx = y * (dy - sum(dy * y)) from the softmax output y."""
    return _along_axis(_core.softmax_backward, [y, dy], axis, out)


def log_softmax_backward(y: np.ndarray, dy: np.ndarray, axis: int = -1,
                         out: Optional[np.ndarray] = None) -> np.ndarray:
    """dx = dy - exp(y) * sum(dy) from the log-softmax output y."""
    return _along_axis(_core.log_softmax_backward, [y, dy], axis, out)


def cross_entropy(logits: np.ndarray, labels: np.ndarray, *, weight: Optional[np.ndarray] = None,
                  label_smoothing: float = 0.0, reduction: str = "mean", return_grad: bool = False):
    """Fused log-softmax + NLL over logits (N, C) and int64/int32 labels (N,).

    Same semantics as torch.nn.functional.cross_entropy (weighted mean divides by
    the summed weights of the targets; label smoothing as torch). Returns the loss
    (float; (N,) float32 for reduction="none") or (loss, dlogits) where dlogits
    (N, C) is the gradient of the reduced loss (of the sum for "none").
    """
    return _core.cross_entropy(_rows(logits), labels, weight=_contig(weight),
                               label_smoothing=label_smoothing, reduction=reduction,
                               return_grad=return_grad)


# --- activations (any shape; out may be the input itself) ----------------------------------
def relu(x, out=None):
    """max(x, 0)."""
    return _core.relu(_contig(x), out)


def relu_backward(dy, y, out=None):
    """dy * (y > 0), from the ReLU output y."""
    return _core.relu_backward(_contig(dy), _contig(y), out)


def leaky_relu(x, negative_slope: float = 0.01, out=None):
    """x if x > 0 else negative_slope * x."""
    return _core.leaky_relu(_contig(x), negative_slope, out)


def leaky_relu_backward(dy, x, negative_slope: float = 0.01, out=None):
    """dy * (1 if x > 0 else negative_slope), from the input x."""
    return _core.leaky_relu_backward(_contig(dy), _contig(x), negative_slope, out)


def tanh(x, out=None):
    return _core.tanh(_contig(x), out)


def tanh_backward(dy, y, out=None):
    """dy * (1 - y^2), from the tanh output y."""
    return _core.tanh_backward(_contig(dy), _contig(y), out)


def sigmoid(x, out=None):
    return _core.sigmoid(_contig(x), out)


def sigmoid_backward(dy, y, out=None):
    """dy * y * (1 - y), from the sigmoid output y."""
    return _core.sigmoid_backward(_contig(dy), _contig(y), out)


def gelu(x, approximate: str = "tanh", out=None):
    """GELU: approximate="tanh" (x/2 (1 + tanh(sqrt(2/pi)(x + 0.044715 x^3)))) or "none" (x Phi(x))."""
    return _core.gelu(_contig(x), approximate, out)


def gelu_backward(dy, x, approximate: str = "tanh", out=None):
    """dy * gelu'(x), from the input x."""
    return _core.gelu_backward(_contig(dy), _contig(x), approximate, out)


# --- normalisation ---------------------------------------------------------------------
def layer_norm(x, gamma, beta, eps: float = 1e-5):
    """Normalise over the last axis: returns (y, mean, rstd); mean, rstd have shape x.shape[:-1].

    gamma, beta: (D,) or None.
    """
    return _core.layer_norm(_rows(x), gamma, beta, eps)


def layer_norm_backward(dy, x, gamma, mean, rstd):
    """Returns (dx, dgamma, dbeta); dgamma and dbeta are None when gamma is None."""
    return _core.layer_norm_backward(_rows(dy), _rows(x), gamma, mean, rstd)


def batch_norm(x, gamma, beta, running_mean, running_var, *, training: bool,
               momentum: float = 0.1, eps: float = 1e-5):
    """Batch norm over x (N, C) or (N, C, *spatial): returns (y, save_mean, save_rstd), each (C,).

    training=True normalises with batch statistics and updates running_mean /
    running_var (C,) in place (unbiased variance, like torch); training=False uses
    the running statistics. gamma, beta and both running stats may be None.
    """
    return _core.batch_norm(_contig(x), gamma, beta, running_mean, running_var,
                            training=training, momentum=momentum, eps=eps)


def batch_norm_backward(dy, x, gamma, save_mean, save_rstd, *, training: bool = True):
    """Returns (dx, dgamma, dbeta) (dgamma, dbeta None when gamma is None)."""
    return _core.batch_norm_backward(_contig(dy), _contig(x), gamma, save_mean, save_rstd,
                                     training=training)


# --- dropout -------------------------------------------------------------------------
def dropout(x, p: float, seed: int):
    """Inverted dropout: returns (y, mask uint8). The mask is a hash of (seed, element
    index), identical for any thread count."""
    return _core.dropout(_contig(x), p, seed)


def dropout_backward(dy, mask, p: float, out=None):
    """dy * mask / (1 - p)."""
    return _core.dropout_backward(_contig(dy), _contig(mask), p, out)


# --- reductions --------------------------------------------------------------------
def sum_rows(x, out=None, *, accumulate: bool = False):
    """Column sums of x (N, F) -> (F,) in a fixed order (Linear's bias gradient);
    accumulate=True adds into out."""
    return _core.sum_rows(_rows(x), out, accumulate=accumulate)


def embedding_backward(indices, dy, num_embeddings: int, out=None, *, accumulate: bool = False):
    """Deterministic scatter-add: dW (num_embeddings, D) from dy (indices.shape + (D,));
    accumulate=True adds into out."""
    return _core.embedding_backward(_contig(indices), _contig(dy), num_embeddings, out,
                                    accumulate=accumulate)
