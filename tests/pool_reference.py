"""Float64 NumPy references for 2-D pooling (tests/test_pool.py, test_conv_layers.py).

Written from the definitions (window starts o * s - p; floor mode keeps windows
that fit the padded input; ceil mode also keeps a partial last window if it
starts inside the input or the left padding), not from the kernel's formulas.
"""
from __future__ import annotations

import numpy as np


def pair(v):
    return (v, v) if isinstance(v, int) else tuple(v)


def _starts(n, k, s, p, ceil_mode):
    """Window starts in input coordinates along one axis."""
    out = []
    o = 0
    while True:
        start = o * s - p
        fits = start + k <= n + p                 # whole window inside the padded input
        partial = ceil_mode and start < n and start + k - s < n + p
        if not (fits or partial):
            break
        out.append(start)
        o += 1
    return out


def windows(h, w, k, s, p, ceil_mode):
    """[(oh, ow, (hs, he, ws, we) clipped to the input, divisor with padding)]."""
    (kh, kw), (sh, sw), (ph, pw) = pair(k), pair(s), pair(p)
    rows, cols = _starts(h, kh, sh, ph, ceil_mode), _starts(w, kw, sw, pw, ceil_mode)
    res = []
    for oh, hs0 in enumerate(rows):
        for ow, ws0 in enumerate(cols):
            he0, we0 = min(hs0 + kh, h + ph), min(ws0 + kw, w + pw)
            hs, ws, he, we = max(hs0, 0), max(ws0, 0), min(hs0 + kh, h), min(ws0 + kw, w)
            res.append((oh, ow, (hs, he, ws, we), (he0 - hs0) * (we0 - ws0)))
    return res, len(rows), len(cols)


def max_pool2d(x, k, s=None, p=0, ceil_mode=False):
    """(y float64, indices int64) of x (N, C, H, W)."""
    x = np.asarray(x, dtype=np.float64)
    n, c, h, w = x.shape
    wins, ho, wo = windows(h, w, k, k if s is None else s, p, ceil_mode)
    y = np.zeros((n, c, ho, wo))
    idx = np.zeros((n, c, ho, wo), dtype=np.int64)
    for oh, ow, (hs, he, ws, we), _ in wins:
        patch = x[:, :, hs:he, ws:we].reshape(n, c, -1)
        a = patch.argmax(axis=2)
        y[:, :, oh, ow] = np.take_along_axis(patch, a[..., None], 2)[..., 0]
        idx[:, :, oh, ow] = (hs + a // (we - ws)) * w + ws + a % (we - ws)
    return y, idx


def max_pool2d_backward(dy, idx, x_shape):
    n, c, h, w = x_shape
    dx = np.zeros((n * c, h * w))
    d = np.asarray(dy, dtype=np.float64).reshape(n * c, -1)
    i = idx.reshape(n * c, -1)
    for p in range(n * c):
        np.add.at(dx[p], i[p], d[p])
    return dx.reshape(x_shape)


def avg_pool2d(x, k, s=None, p=0, ceil_mode=False, count_include_pad=True):
    x = np.asarray(x, dtype=np.float64)
    n, c, h, w = x.shape
    wins, ho, wo = windows(h, w, k, k if s is None else s, p, ceil_mode)
    y = np.zeros((n, c, ho, wo))
    for oh, ow, (hs, he, ws, we), padded in wins:
        div = padded if count_include_pad else (he - hs) * (we - ws)
        y[:, :, oh, ow] = x[:, :, hs:he, ws:we].sum(axis=(2, 3)) / div
    return y


def avg_pool2d_backward(dy, x_shape, k, s=None, p=0, ceil_mode=False, count_include_pad=True):
    n, c, h, w = x_shape
    dy = np.asarray(dy, dtype=np.float64)
    wins, _, _ = windows(h, w, k, k if s is None else s, p, ceil_mode)
    dx = np.zeros(x_shape)
    for oh, ow, (hs, he, ws, we), padded in wins:
        div = padded if count_include_pad else (he - hs) * (we - ws)
        dx[:, :, hs:he, ws:we] += (dy[:, :, oh, ow] / div)[:, :, None, None]
    return dx
