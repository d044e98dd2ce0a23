"""float64 NumPy reference for 2-D convolution (NCHW), forward and gradients.

Written as the textbook sum, one filter tap (r, s) at a time, so it shares no code
or blocking with the kernels:

  y[n, k, oh, ow] = bias[k] + sum_{c, r, s} w[k, c, r, s] *
                    xp[n, g*Cg + c, oh*sh + r*dh, ow*sw + s*dw]       (k in group g)

where xp is x zero-padded by (top, bottom, left, right). The gradients are the
adjoint of the same sum: dw and dx gather/scatter the same taps.
"""
from __future__ import annotations

import numpy as np


def _norm(stride, padding, dilation):
    sh, sw = (stride, stride) if np.isscalar(stride) else stride
    dh, dw = (dilation, dilation) if np.isscalar(dilation) else dilation
    if np.isscalar(padding):
        pad = (padding,) * 4
    elif len(padding) == 2:
        pad = (padding[0], padding[0], padding[1], padding[1])
    else:
        pad = tuple(padding)
    return int(sh), int(sw), tuple(int(p) for p in pad), int(dh), int(dw)


def _taps(xshape, wshape, stride, padding, dilation):
    n, c, h, w_ = xshape
    k, cg, r, s = wshape
    sh, sw, (pt, pb, pl, pr), dh, dw = _norm(stride, padding, dilation)
    ho = (h + pt + pb - dh * (r - 1) - 1) // sh + 1
    wo = (w_ + pl + pr - dw * (s - 1) - 1) // sw + 1
    return sh, sw, (pt, pb, pl, pr), dh, dw, ho, wo


def conv2d_ref(x, w, bias=None, stride=1, padding=0, dilation=1, groups=1, activation=None):
    x = np.asarray(x, np.float64)
    w = np.asarray(w, np.float64)
    n, c, h, _ = x.shape
    k, cg, r, s = w.shape
    sh, sw, (pt, pb, pl, pr), dh, dw, ho, wo = _taps(x.shape, w.shape, stride, padding, dilation)
    xp = np.pad(x, ((0, 0), (0, 0), (pt, pb), (pl, pr)))
    kg = k // groups
    y = np.zeros((n, k, ho, wo))
    for g in range(groups):
        xs = xp[:, g * cg:(g + 1) * cg]
        wg = w[g * kg:(g + 1) * kg]
        for i in range(r):
            for j in range(s):
                patch = xs[:, :, i * dh: i * dh + sh * (ho - 1) + 1: sh,
                           j * dw: j * dw + sw * (wo - 1) + 1: sw]  # (n, cg, ho, wo)
                y[:, g * kg:(g + 1) * kg] += np.einsum("nchw,kc->nkhw", patch, wg[:, :, i, j])
    if bias is not None:
        y += np.asarray(bias, np.float64)[None, :, None, None]
    if activation == "relu":
        y = np.maximum(y, 0.0)
    return y


def conv2d_backward_ref(dy, x, w, stride=1, padding=0, dilation=1, groups=1):
    """(dx, dw, db) in float64."""
    dy = np.asarray(dy, np.float64)
    x = np.asarray(x, np.float64)
    w = np.asarray(w, np.float64)
    n, c, h, w_ = x.shape
    k, cg, r, s = w.shape
    sh, sw, (pt, pb, pl, pr), dh, dw, ho, wo = _taps(x.shape, w.shape, stride, padding, dilation)
    xp = np.pad(x, ((0, 0), (0, 0), (pt, pb), (pl, pr)))
    dxp = np.zeros_like(xp)
    dwt = np.zeros_like(w)
    kg = k // groups
    for g in range(groups):
        cs, ks = slice(g * cg, (g + 1) * cg), slice(g * kg, (g + 1) * kg)
        for i in range(r):
            for j in range(s):
                sl = (slice(None), cs, slice(i * dh, i * dh + sh * (ho - 1) + 1, sh),
                      slice(j * dw, j * dw + sw * (wo - 1) + 1, sw))
                dwt[ks, :, i, j] += np.einsum("nkhw,nchw->kc", dy[:, ks], xp[sl])
                dxp[sl] += np.einsum("nkhw,kc->nchw", dy[:, ks], w[ks, :, i, j])
    dx = dxp[:, :, pt:pt + h, pl:pl + w_]
    db = dy.sum(axis=(0, 2, 3))
    return dx, dwt, db
