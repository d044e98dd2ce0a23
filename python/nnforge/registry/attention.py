"""Fused attention: ops.attention (out, lse) and, through the gradient check,
ops.attention_backward.

Reference: softmax(scale q k^T + mask) v in float64 from the definition, GQA by
repeating k/v heads, causal aligned bottom-right, rows with no key giving 0 / lse -inf.
Cases sit on the kernel's tile edges (64-query, 128-key blocks, 16-float tiles) and
the awkward shapes of FlashAttention's tests (L 1, 7, 113, 203; D 1, 59), with
(B, L, H, D) transposed views, GQA / MQA, masks and Lq != Lk. tests/test_attention.py
holds the long, dropout and thread-count checks.

Cost: forward 4*B*H*Lq*Lk*D FLOPs (causal: half; FlashAttention's convention),
backward 2.5x forward; bytes: q, k, v read and out, lse written once.
"""
from __future__ import annotations

import math

import numpy as np

from ._base import EPS32, Op, Scalar, assert_close, f32

NEG_INF = -np.inf


def _ops():
    from nnforge import ops
    return ops


def attention_ref(q, k, v, *, causal=False, scale=None, mask=None, return_lse=True):
    """(out, lse) in float64; mask: bool (True = keep) or additive."""
    b, h, lq, d = q.shape
    hkv, lk = k.shape[1], k.shape[2]
    ke, ve = np.repeat(k, h // hkv, axis=1), np.repeat(v, h // hkv, axis=1)
    s = np.einsum("bhid,bhjd->bhij", q, ke) * (1.0 / math.sqrt(d) if scale is None else scale)
    keep = np.ones(s.shape, bool)
    if causal:
        keep &= np.arange(lk)[None, :] <= np.arange(lq)[:, None] + (lk - lq)
    if mask is not None:
        if mask.dtype == np.bool_:
            keep &= np.broadcast_to(mask, s.shape)
        else:
            s = s + mask
    s = np.where(keep, s, NEG_INF)
    m = s.max(axis=-1, keepdims=True)
    m0 = np.where(np.isfinite(m), m, 0.0)
    e = np.exp(s - m0)
    tot = e.sum(axis=-1, keepdims=True)
    safe = np.where(tot > 0, tot, 1.0)
    out = np.einsum("bhij,bhjd->bhid", e / safe, ve)
    lse = np.where(tot[..., 0] > 0, m0[..., 0] + np.log(safe[..., 0]), NEG_INF)
    return out, lse


def _split_lse(out, lse):
    """(out, lse with -inf rows as 0, 1.0 where lse is -inf): a row that saw no key
    compares exactly, not as -inf - -inf."""
    dead = np.isneginf(lse)
    return out, np.where(dead, 0.0, lse), dead.astype(np.float64)


def run(q, k, v, **kw):
    return _split_lse(*_ops().attention(q, k, v, return_lse=True, **kw))


def reference(q, k, v, **kw):
    return _split_lse(*attention_ref(q, k, v, **kw))


def flops(p):
    f = 4.0 * p["B"] * p["H"] * p["Lq"] * p["Lk"] * p["D"]
    return 0.5 * f if p.get("causal") else f


def bytes_(p):
    return 4.0 * (2 * p["B"] * p["H"] * p["Lq"] * p["D"] + 2 * p["B"] * p["Hkv"] * p["Lk"] * p["D"]
                  + p["B"] * p["H"] * p["Lq"])


def _view(rng, shape, layout):
    """(B, heads, L, D) float32: contiguous, or a (B, L, heads, D) array seen transposed."""
    if layout == "bshd":
        b, h, l, d = shape
        return f32(rng, (b, l, h, d)).transpose(0, 2, 1, 3)
    return f32(rng, shape)


def _case(op, b, h, hkv, lq, lk, d, *, causal=False, mask=None, layout="contiguous", scale=None):
    def make(rng):
        q = _view(rng, (b, h, lq, d), layout)
        k = _view(rng, (b, hkv, lk, d), layout)
        v = _view(rng, (b, hkv, lk, d), layout)
        kw = dict(causal=causal)
        if scale is not None:
            kw["scale"] = scale
        if mask == "bool":
            m = rng.random((b, 1, lq, lk)) < 0.7
            m[..., 0, :] = False  # a fully masked row
            kw["mask"] = m
        elif mask == "additive":
            kw["mask"] = (rng.standard_normal((lq, lk)) * 2).astype(np.float32)
        elif mask == "padding":
            m = np.ones((b, 1, 1, lk), bool)
            m[..., lk - lk // 4:] = False
            kw["mask"] = m
        return (q, k, v), kw
    label = f"B{b} H{h}/{hkv} Lq{lq} Lk{lk} D{d}" + (" causal" if causal else "") + \
        (f" mask={mask}" if mask else "") + (f" {layout}" if layout != "contiguous" else "")
    return op.case(label, make, B=b, H=h, Hkv=hkv, Lq=lq, Lk=lk, D=d, causal=causal)


def cases(op):
    return [
        _case(op, 1, 1, 1, 1, 1, 1),
        _case(op, 2, 2, 2, 7, 7, 59, causal=True),
        _case(op, 1, 2, 2, 63, 127, 16),                   # tile - 1 on both axes
        _case(op, 1, 2, 2, 65, 129, 17, layout="bshd"),    # tile + 1, transposed views
        _case(op, 1, 8, 2, 113, 203, 64, causal=True),     # GQA 8/2, causal Lq < Lk
        _case(op, 1, 8, 1, 203, 113, 32, mask="bool"),     # MQA, Lq > Lk, masked rows
        _case(op, 2, 2, 1, 33, 77, 48, mask="additive", scale=0.3),
        _case(op, 2, 4, 4, 1, 150, 64, mask="padding"),    # decoding against a padded cache
        _case(op, 1, 2, 2, 113, 7, 8, causal=True),        # early rows see no key
    ]


def tolerance(case, args, ref):
    """The output mixes Lk probabilities, each with a D-long score dot and the Lk-long
    normaliser's error: a few ulps times that length, of the largest |v| (out) or of the
    largest |score| + log Lk (lse)."""
    q, k, v = args[:3]
    p = case.params
    n = p["Lk"] + p["D"] + 2
    vmax = float(np.abs(v).max(initial=0.0))
    smax = float(np.abs(q).max(initial=0.0) * np.abs(k).max(initial=0.0)) * math.sqrt(p["D"])
    return (4 * EPS32 * n * vmax + 1e-30, 4 * EPS32 * (p["D"] + 2) * (smax + math.log(p["Lk"] + 1) + 1),
            0.0)


def _backward_ref(q, k, v, dout, **kw):
    """(dq, dk, dv) in float64 by the closed-form softmax gradient."""
    b, h, lq, d = q.shape
    hkv = k.shape[1]
    g = h // hkv
    scale = 1.0 / math.sqrt(d) if kw.get("scale") is None else kw["scale"]
    out, lse = attention_ref(q, k, v, **kw)
    ke, ve = np.repeat(k, g, axis=1), np.repeat(v, g, axis=1)
    s = np.einsum("bhid,bhjd->bhij", q, ke) * scale
    if kw.get("mask") is not None and kw["mask"].dtype != np.bool_:
        s = s + kw["mask"]
    fin = np.isfinite(lse)[..., None]
    pr = np.where(fin, np.exp(s - np.where(fin, lse[..., None], 0.0)), 0.0)
    if kw.get("causal"):
        lk = k.shape[2]
        pr = pr * (np.arange(lk)[None, :] <= np.arange(lq)[:, None] + (lk - lq))
    if kw.get("mask") is not None and kw["mask"].dtype == np.bool_:
        pr = pr * np.broadcast_to(kw["mask"], pr.shape)
    dv = np.einsum("bhij,bhid->bhjd", pr, dout)
    dp = np.einsum("bhid,bhjd->bhij", dout, ve)
    ds = pr * (dp - (dout * out).sum(axis=-1, keepdims=True))
    dq = np.einsum("bhij,bhjd->bhid", ds, ke) * scale
    dk = np.einsum("bhij,bhid->bhjd", ds, q) * scale
    fold = lambda x: x.reshape(b, hkv, g, *x.shape[2:]).sum(axis=2)
    return dq, fold(dk), fold(dv)


def grad_check(rng, case):
    """attention_backward against the closed-form float64 gradient _backward_ref
    (tests/test_attention.py ties it to the reference there, which is checked by central
    differences), tolerances from the reduction lengths and each gradient's magnitude."""
    ops = _ops()
    (q, k, v), kw = case.make(rng)
    out, lse = ops.attention(q, k, v, return_lse=True, **kw)
    dout = f32(rng, q.shape)
    got = ops.attention_backward(dout, q, k, v, out, lse, **kw)
    q64, k64, v64, d64 = (np.asarray(a, np.float64) for a in (q, k, v, dout))
    kw64 = {key: (val.astype(np.float64) if isinstance(val, np.ndarray) and val.dtype == np.float32 else val)
            for key, val in kw.items()}
    want = _backward_ref(q64, k64, v64, d64, **kw64)
    p = case.params
    n = p["Lk"] + p["Lq"] * p["H"] // p["Hkv"] + p["D"] + 2
    for name, g, w in zip(("dq", "dk", "dv"), got, want):
        # relative to each gradient's own magnitude: a bound from the inputs' maxima was as
        # large as the gradients themselves, so a dropped key would have passed
        tol = 8 * EPS32 * n * (float(np.abs(w).max()) + EPS32)
        assert_close(g, w, tol, f"{case.id} {name}")


# Argument domains (tests/test_arg_domains.py); scale and seed may also be None.
ARG_RULES = dict(scalars={"causal": Scalar("causal", "flag"), "scale": Scalar("scale", "real"),
                          "dropout_p": Scalar("dropout_p", "real", low=0.0, high=1.0, high_open=True),
                          "seed": Scalar("seed", "int", low=0),
                          "return_lse": "run() passes return_lse=True itself"})


def register(add):
    add(Op("attention", "attention", run, reference, flops, bytes_, cases, tolerance, grad_check,
           covers={"attention_backward": "grad_check: (dq, dk, dv) vs the float64 closed form"},
           covered_costs={"attention_backward": (lambda p: 2.5 * flops(p), lambda p: 2.0 * bytes_(p))},
           **ARG_RULES))
