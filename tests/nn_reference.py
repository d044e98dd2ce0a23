"""Float64 NumPy references for the nn kernels and a central-difference helper
(shared by test_nn_kernels.py and test_nn_layers.py)."""
from __future__ import annotations

import math

import numpy as np

EPS32 = float(np.finfo(np.float32).eps)
TINY = float(np.finfo(np.float32).tiny)  # smallest normal float32


def f64(a):
    return np.asarray(a, dtype=np.float64)


def softmax(x, axis=-1):
    x = f64(x)
    e = np.exp(x - x.max(axis=axis, keepdims=True))
    return e / e.sum(axis=axis, keepdims=True)


def log_softmax(x, axis=-1):
    x = f64(x)
    m = x.max(axis=axis, keepdims=True)
    return x - m - np.log(np.exp(x - m).sum(axis=axis, keepdims=True))


def cross_entropy(logits, labels, weight=None, label_smoothing=0.0, reduction="mean"):
    """torch.nn.functional.cross_entropy semantics, in float64."""
    lp = log_softmax(logits)
    n, c = lp.shape
    w = np.ones(c) if weight is None else f64(weight)
    labels = np.asarray(labels, dtype=np.int64)
    wy = w[labels]
    nll = -wy * lp[np.arange(n), labels]
    smooth = -(lp * w).sum(axis=1)
    per_row = (1.0 - label_smoothing) * nll + label_smoothing / c * smooth
    if reduction == "none":
        return per_row
    if reduction == "sum":
        return per_row.sum()
    return per_row.sum() / wy.sum()


def gelu_tanh(x):
    """0.5 x (1 + tanh(u)) written as x * sigmoid(2u): the same function without the
    cancellation that makes the tanh form inaccurate for x << 0 even in float64."""
    x = f64(x)
    return x * sigmoid(2.0 * math.sqrt(2.0 / math.pi) * (x + 0.044715 * x ** 3))


def gelu_erf(x):
    x = f64(x)
    return 0.5 * x * np.array([math.erfc(-v / math.sqrt(2.0)) for v in x.ravel()]).reshape(x.shape)


def sigmoid(x):
    x = f64(x)
    return np.where(x >= 0, 1.0 / (1.0 + np.exp(-np.abs(x))), np.exp(-np.abs(x)) / (1.0 + np.exp(-np.abs(x))))


def layer_norm(x, gamma, beta, eps=1e-5):
    x = f64(x)
    mean = x.mean(axis=-1, keepdims=True)
    var = ((x - mean) ** 2).mean(axis=-1, keepdims=True)
    y = (x - mean) / np.sqrt(var + eps)
    if gamma is not None:
        y = y * f64(gamma)
    if beta is not None:
        y = y + f64(beta)
    return y, mean[..., 0], 1.0 / np.sqrt(var[..., 0] + eps)


def batch_norm_train(x, gamma, beta, eps=1e-5):
    """Returns (y, mean, biased var) with statistics over every axis but 1."""
    x = f64(x)
    axes = (0,) + tuple(range(2, x.ndim))
    shape = [1, x.shape[1]] + [1] * (x.ndim - 2)
    mean = x.mean(axis=axes)
    var = ((x - mean.reshape(shape)) ** 2).mean(axis=axes)
    y = (x - mean.reshape(shape)) / np.sqrt(var.reshape(shape) + eps)
    if gamma is not None:
        y = y * f64(gamma).reshape(shape)
    if beta is not None:
        y = y + f64(beta).reshape(shape)
    return y, mean, var


def central_diff(f, x, h=1e-6):
    """Gradient of the scalar f at x (float64 array) by central differences."""
    x = f64(x).copy()
    g = np.zeros_like(x)
    for i in np.ndindex(x.shape):
        old = x[i]
        x[i] = old + h
        fp = f(x)
        x[i] = old - h
        fm = f(x)
        x[i] = old
        g[i] = (fp - fm) / (2 * h)
    return g


def assert_close(got, want, tol, what=""):
    """|got - want| <= tol elementwise (tol may be an array); reports the worst index."""
    got = f64(got)
    want = f64(want)
    assert got.shape == want.shape, f"{what}: shape {got.shape} != {want.shape}"
    err = np.abs(got - want)
    bad = ~(err <= tol)
    if bad.any():
        i = np.unravel_index(np.argmax(np.where(bad, err - tol, -np.inf)), got.shape)
        t = tol[i] if np.ndim(tol) else tol
        raise AssertionError(f"{what}: {bad.sum()} of {got.size} off; worst at {i}: got {got[i]!r}, "
                             f"want {want[i]!r}, err {err[i]:.3g} > tol {t:.3g}")


def bitwise_equal(a, b):
    if isinstance(a, (tuple, list)):
        return all(bitwise_equal(x, y) for x, y in zip(a, b))
    if isinstance(a, np.ndarray):
        return a.dtype == b.dtype and a.shape == b.shape and a.tobytes() == b.tobytes()
    return a == b or (a != a and b != b)
