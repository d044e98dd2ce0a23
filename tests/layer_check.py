"""Shared layer check for the nn test files: forward against a float64 function and
backward against central differences, for the input and every parameter."""
from __future__ import annotations

import numpy as np

from nn_reference import EPS32, assert_close, central_diff, f64


def randn(rng, *shape, scale=1.0):
    return (rng.standard_normal(shape) * scale).astype(np.float32)


def check_layer(layer, x, f, rng, k=None, *, input_grad=True):
    """Forward vs f (float64, params by name) and backward of L = sum(w * layer(x)) vs
    central differences of f for x and every parameter. k = longest reduction in the
    layer, which sets the float32 tolerance (default: the larger of x's first and last
    dimension, at least 8). A second backward must double each .grad. Returns dx."""
    if k is None:
        k = max(x.shape[-1], x.shape[0], 8)
    params = {name: f64(p.data) for name, p in layer.named_parameters()}
    y = layer.forward(x)
    want = f(f64(x), params)
    mag = 1.0 + np.abs(want).max()
    assert_close(y, want, 16 * EPS32 * k * mag, "forward")
    w = randn(rng, *y.shape)
    layer.zero_grad()
    dx = layer.backward(w)
    loss = lambda xv, pv: float((f64(w) * f(xv, pv)).sum())
    gtol = lambda fd: 64 * EPS32 * k * (1 + np.abs(fd).max()) * (1 + np.abs(f64(w)).max()) + 1e-6
    if input_grad:
        fd = central_diff(lambda v: loss(v, params), x)
        assert dx.shape == x.shape and dx.dtype == np.float32
        assert_close(dx, fd, gtol(fd), "dx")
    first = {}
    for name, p in layer.named_parameters():
        def at(v, name=name):
            q = dict(params)
            q[name] = v
            return loss(f64(x), q)
        fd = central_diff(at, params[name])
        assert_close(p.grad, fd, gtol(fd), f"d{name}")
        first[name] = p.grad.copy()
    layer.forward(x)
    layer.backward(w)
    for name, p in layer.named_parameters():  # backward accumulates into .grad
        assert_close(p.grad, 2 * f64(first[name]), 4 * EPS32 * (1 + np.abs(first[name])), f"{name} accumulate")
    return dx
