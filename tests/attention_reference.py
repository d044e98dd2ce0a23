"""NumPy reference for attention, sharing no code with the kernels.

Computes in the dtype given (float64 for truth; float32 to measure how far a
same-precision computation drifts, which sets the tolerance). Shapes as the kernel:
q (B, H, Lq, D), k / v (B, Hkv, Lk, D); mask broadcastable to (B, H, Lq, Lk); keep
(B, H, Lq, Lk) is the dropout keep mask (or None).
"""
from __future__ import annotations

import numpy as np


def _expand_kv(x, h):
    return np.repeat(x, h // x.shape[1], axis=1)


def scores(q, k, *, scale=None, causal=False, mask=None, dtype=np.float64):
    q, k = q.astype(dtype), _expand_kv(k, q.shape[1]).astype(dtype)
    d = q.shape[-1]
    scale = 1.0 / np.sqrt(d) if scale is None else scale
    s = np.einsum("bhid,bhjd->bhij", q, k) * dtype(scale)
    lq, lk = q.shape[2], k.shape[2]
    allowed = np.ones(s.shape, dtype=bool)
    if causal:
        i = np.arange(lq)[:, None]
        j = np.arange(lk)[None, :]
        allowed &= j <= i + (lk - lq)
    if mask is not None:
        if mask.dtype == np.bool_:
            allowed &= np.broadcast_to(mask, s.shape)
        else:
            s = s + np.broadcast_to(mask, s.shape).astype(dtype)
    return np.where(allowed, s, -np.inf)


def forward(q, k, v, *, scale=None, causal=False, mask=None, keep=None, dropout_p=0.0,
            dtype=np.float64):
    """(out, lse, P): P the undropped probabilities; rows with no key give 0 / -inf."""
    s = scores(q, k, scale=scale, causal=causal, mask=mask, dtype=dtype)
    m = s.max(axis=-1, keepdims=True)
    finite = np.isfinite(m)
    msafe = np.where(finite, m, 0)
    e = np.exp(s - msafe)
    lsum = e.sum(axis=-1, keepdims=True)
    p = np.where(finite, e / np.where(lsum > 0, lsum, 1), 0)
    lse = np.where(finite, msafe + np.log(np.where(lsum > 0, lsum, 1)), -np.inf)[..., 0]
    pd = p if keep is None else p * keep / dtype(1.0 - dropout_p)
    out = np.einsum("bhij,bhjd->bhid", pd, _expand_kv(v, q.shape[1]).astype(dtype))
    return out, lse, p


def backward(dout, q, k, v, *, scale=None, causal=False, mask=None, keep=None, dropout_p=0.0,
             dtype=np.float64):
    """(dq, dk, dv) from the closed-form softmax gradient; GQA heads summed per group."""
    d = q.shape[-1]
    scale = 1.0 / np.sqrt(d) if scale is None else scale
    _, _, p = forward(q, k, v, scale=scale, causal=causal, mask=mask, dtype=dtype)
    h, hkv = q.shape[1], k.shape[1]
    z = 1.0 if keep is None else keep / dtype(1.0 - dropout_p)
    g = dout.astype(dtype)
    ke, ve = _expand_kv(k, h).astype(dtype), _expand_kv(v, h).astype(dtype)
    dve = np.einsum("bhij,bhid->bhjd", p * z, g)
    dp = np.einsum("bhid,bhjd->bhij", g, ve) * z
    ds = p * (dp - (dp * p).sum(axis=-1, keepdims=True))
    dq = np.einsum("bhij,bhjd->bhid", ds, ke) * dtype(scale)
    dke = np.einsum("bhij,bhid->bhjd", ds, q.astype(dtype)) * dtype(scale)
    grp = h // hkv
    fold = lambda x: x.reshape(x.shape[0], hkv, grp, *x.shape[2:]).sum(axis=2)
    return dq, fold(dke), fold(dve)
