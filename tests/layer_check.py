"""Shared layer check for the nn test files: forward against a float64 function and
backward against central differences, for every input and every parameter.

Works for any arity of the layer contract (nnforge/nn/module.py): pass x as a tuple for a
layer with several inputs (f then takes the tuple of float64 inputs), and let f return a
tuple for a layer with several outputs; the loss is sum_i sum(w_i * y_i)."""
from __future__ import annotations

import numpy as np

from nn_reference import EPS32, assert_close, central_diff, f64


def randn(rng, *shape, scale=1.0):
    return (rng.standard_normal(shape) * scale).astype(np.float32)


def _tuple(v):
    return v if isinstance(v, tuple) else (v,)


def check_layer(layer, x, f, rng, k=None, *, input_grad=True):
    """Forward vs f (float64, params by name) and backward of L = sum(w * layer(x)) vs
    central differences of f for each input and every parameter. k = longest reduction
    in the layer, which sets the float32 tolerance (default: the larger of the inputs'
    first and last dimensions, at least 8). A second backward must double each .grad.
    Returns dx (a tuple of them when x is a tuple)."""
    multi_in = isinstance(x, tuple)
    xs = _tuple(x)
    if k is None:
        k = max(8, *(max(a.shape[-1], a.shape[0]) for a in xs))
    fn = lambda xv, pv: _tuple(f(xv if multi_in else xv[0], pv))
    xs64 = tuple(f64(a) for a in xs)
    params = {name: f64(p.data) for name, p in layer.named_parameters()}
    ys = _tuple(layer.forward(*xs))
    wants = fn(xs64, params)
    assert len(ys) == len(wants), f"layer gave {len(ys)} outputs, the reference {len(wants)}"
    for i, (y, want) in enumerate(zip(ys, wants)):
        assert_close(y, want, 16 * EPS32 * k * (1.0 + np.abs(want).max()), f"forward output {i}")
    ws = tuple(randn(rng, *y.shape) for y in ys)
    layer.zero_grad()
    dx = layer.backward(*ws)
    dxs = _tuple(dx) if multi_in else (dx,)
    loss = lambda xv, pv: sum(float((f64(w) * o).sum()) for w, o in zip(ws, fn(xv, pv)))
    wmax = max(float(np.abs(f64(w)).max()) for w in ws)
    gtol = lambda fd: 64 * EPS32 * k * (1 + np.abs(fd).max()) * (1 + wmax) + 1e-6
    if input_grad:
        assert len(dxs) == len(xs), f"backward gave {len(dxs)} gradients for {len(xs)} inputs"
        for i, (d, xi) in enumerate(zip(dxs, xs)):
            def at_x(v, i=i):
                xv = list(xs64)
                xv[i] = v
                return loss(tuple(xv), params)
            fd = central_diff(at_x, xi)
            assert d.shape == xi.shape and d.dtype == np.float32, f"input {i}: {d.shape} {d.dtype}"
            assert_close(d, fd, gtol(fd), f"dx{i}" if multi_in else "dx")
    first = {}
    for name, p in layer.named_parameters():
        def at(v, name=name):
            q = dict(params)
            q[name] = v
            return loss(xs64, q)
        fd = central_diff(at, params[name])
        assert_close(p.grad, fd, gtol(fd), f"d{name}")
        first[name] = p.grad.copy()
    layer.forward(*xs)
    layer.backward(*ws)
    for name, p in layer.named_parameters():  # backward accumulates into .grad
        assert_close(p.grad, 2 * f64(first[name]), 4 * EPS32 * (1 + np.abs(first[name])), f"{name} accumulate")
    return dx
