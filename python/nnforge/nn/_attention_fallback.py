"""A private float32 NumPy attention with the API of nnforge.ops.attention (issue 10),
used by nn/attention.py until the compiled kernel is on main; delete it then.

q (B, H, Lq, D); k, v (B, Hkv, Lk, D) with Hkv dividing H (query head h reads kv head
h // (H // Hkv)); any strides. causal: query i attends keys j <= i + (Lk - Lq) (aligned
bottom-right, so decoding with a cache is causal). mask: bool (True = keep) or additive
float32, broadcastable to (B, H, Lq, Lk). A fully masked row gives zeros, its lse -inf.
dropout_p: on the attention weights, a mask drawn from `seed` (regenerated in backward).
This one materialises the (Lq, Lk) scores: fine for the GPT's L = 64, not for long inputs.
"""
from __future__ import annotations

import math

import numpy as np

__all__ = ["attention", "attention_backward"]


def _check(q, k, v):
    for name, a in (("q", q), ("k", k), ("v", v)):
        if not isinstance(a, np.ndarray) or a.dtype != np.float32 or a.ndim != 4:
            got = f"{a.dtype} {a.shape}" if isinstance(a, np.ndarray) else type(a).__name__
            raise TypeError(f"attention: {name} must be a float32 (B, H, L, D) array, got {got}")
    b, h, lq, d = q.shape
    if k.shape != v.shape or k.shape[0] != b or k.shape[3] != d:
        raise ValueError(f"attention: q {q.shape}, k {k.shape}, v {v.shape} do not match (B, H, Lq, D) / "
                         f"(B, Hkv, Lk, D)")
    hkv = k.shape[1]
    if hkv < 1 or h % hkv:
        raise ValueError(f"attention: q has {h} heads, not a multiple of k/v's {hkv}")
    return b, h, hkv, lq, k.shape[2], d


def _bias(mask, causal, shape):
    """Additive float32 bias (-inf where dropped) broadcast to (B, H, Lq, Lk), or None."""
    b, h, lq, lk = shape
    bias = None
    if mask is not None:
        m = np.asarray(mask)
        try:
            np.broadcast_shapes(m.shape, shape)
        except ValueError:
            raise ValueError(f"attention: mask of shape {m.shape} does not broadcast to (B, H, Lq, Lk) = "
                             f"{shape}") from None
        if m.dtype == np.bool_:
            bias = np.where(m, np.float32(0), np.float32(-np.inf))
        elif m.dtype == np.float32:
            bias = m
        else:
            raise TypeError(f"attention: mask must be bool or float32, got {m.dtype}")
    if causal:
        i = np.arange(lq)[:, None]
        j = np.arange(lk)[None, :]
        c = np.where(j <= i + (lk - lq), np.float32(0), np.float32(-np.inf))
        bias = c if bias is None else bias + c
    return bias


def _grouped(a, hkv):
    """(B, H, L, D) -> (B, Hkv, G, L, D), G = H // Hkv (a view when possible)."""
    b, h, l, d = a.shape
    return a.reshape(b, hkv, h // hkv, l, d)


def _probs(q, k, causal, scale, mask, shape):
    """Softmax probabilities (B, Hkv, G, Lq, Lk) and lse (B, H, Lq) in float32."""
    b, h, hkv, lq, lk, d = shape
    s = np.matmul(_grouped(q, hkv), k[:, :, None].transpose(0, 1, 2, 4, 3)) * np.float32(scale)
    bias = _bias(mask, causal, (b, h, lq, lk))
    if bias is not None:
        s = s + np.broadcast_to(bias, (b, h, lq, lk)).reshape(s.shape)
    mx = s.max(axis=-1, keepdims=True)
    dead = ~np.isfinite(mx)  # every key masked: zeros out, lse -inf
    mx = np.where(dead, np.float32(0), mx)
    e = np.exp(s - mx)
    den = e.sum(axis=-1, keepdims=True)
    with np.errstate(divide="ignore", invalid="ignore"):
        p = np.where(dead, np.float32(0), e / den).astype(np.float32)
        lse = np.where(dead, np.float32(-np.inf), mx + np.log(den)).astype(np.float32)
    return p, lse.reshape(b, h, lq)


def _keep(seed, p_drop, shape):
    return np.random.default_rng(seed).random(shape, dtype=np.float32) >= np.float32(p_drop)


def attention(q, k, v, *, causal=False, scale=None, mask=None, dropout_p=0.0, return_lse=False, out=None,
              seed=None):
    shape = _check(q, k, v)
    b, h, hkv, lq, lk, d = shape
    scale = 1.0 / math.sqrt(d) if scale is None else float(scale)
    if out is not None and (not isinstance(out, np.ndarray) or out.shape != q.shape or out.dtype != np.float32):
        raise ValueError(f"attention: out must be a float32 array of shape {q.shape}")
    p, lse = _probs(q, k, causal, scale, mask, shape)
    if dropout_p > 0.0:
        p = p * _keep(seed, dropout_p, p.shape) / np.float32(1.0 - dropout_p)
    o = np.matmul(p, v[:, :, None]).reshape(b, h, lq, d)
    if out is None:
        out = o
    else:
        out[...] = o
    return (out, lse) if return_lse else out


def attention_backward(dout, q, k, v, out, lse, *, causal=False, scale=None, mask=None, dropout_p=0.0,
                       seed=None):
    """(dq, dk, dv) of sum(dout * attention(q, k, v)); probabilities recomputed (lse is
    accepted for the kernel's API; this reference recomputes it)."""
    shape = _check(q, k, v)
    b, h, hkv, lq, lk, d = shape
    if not isinstance(dout, np.ndarray) or dout.shape != q.shape:
        raise ValueError(f"attention_backward: dout must have q's shape {q.shape}")
    if not isinstance(lse, np.ndarray) or lse.shape != (b, h, lq):
        raise ValueError(f"attention_backward: lse must have shape {(b, h, lq)}")
    scale = 1.0 / math.sqrt(d) if scale is None else float(scale)
    p, _ = _probs(q, k, causal, scale, mask, shape)
    do = _grouped(dout, hkv)                        # (B, Hkv, G, Lq, D)
    vv = v[:, :, None]                              # (B, Hkv, 1, Lk, D)
    if dropout_p > 0.0:
        keep = _keep(seed, dropout_p, p.shape) / np.float32(1.0 - dropout_p)
        pd = p * keep
        dp = np.matmul(do, vv.transpose(0, 1, 2, 4, 3)) * keep
    else:
        pd = p
        dp = np.matmul(do, vv.transpose(0, 1, 2, 4, 3))
    dv = np.matmul(pd.transpose(0, 1, 2, 4, 3), do).sum(axis=2)          # (B, Hkv, Lk, D)
    ds = p * (dp - (dp * p).sum(axis=-1, keepdims=True)) * np.float32(scale)
    dq = np.matmul(ds, k[:, :, None]).reshape(b, h, lq, d)
    dk = np.matmul(ds.transpose(0, 1, 2, 4, 3), _grouped(q, hkv)).sum(axis=2)
    f = lambda a: np.ascontiguousarray(a, dtype=np.float32)
    return f(dq), f(dk), f(dv)
