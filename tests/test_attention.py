"""nnforge.ops.attention / attention_backward against a float64 reference.

Tolerance (FlashAttention's rule): the kernel's error against float64 may be at most
twice that of the same formula computed in float32 by NumPy, plus a floor of a few
float32 ulps of the result's magnitude scaled by sqrt of the reduction length.
"""
from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest

import nnforge
from nnforge import ops

import attention_reference as ref

EPS = float(np.finfo(np.float32).eps)


def f32(rng, *shape, scale=1.0):
    return (scale * rng.standard_normal(shape)).astype(np.float32)


def assert_close(got, want64, want32, reduction_len, what):
    got = np.asarray(got, np.float64)
    fin = np.isfinite(want64)
    assert np.array_equal(np.isfinite(got), fin), f"{what}: non-finite entries differ"
    mag = float(np.max(np.abs(want64[fin]), initial=0.0)) + 1e-30
    err32 = float(np.max(np.abs(want32[fin] - want64[fin]), initial=0.0))
    tol = 2.0 * err32 + 4.0 * EPS * mag * np.sqrt(reduction_len)
    err = float(np.max(np.abs(got[fin] - want64[fin]), initial=0.0))
    assert err <= tol, f"{what}: max error {err:.3g} > tolerance {tol:.3g} (float32 reference {err32:.3g})"
    assert np.array_equal(got[~fin], want64[~fin]), f"{what}: -inf entries differ"


def make_mask(rng, kind, b, h, lq, lk):
    if kind is None:
        return None
    if kind == "bool":
        m = rng.random((b, 1, lq, lk)) < 0.7  # broadcast over heads
        m[..., 0] = True
        return m
    if kind == "add":
        return f32(rng, lq, lk)  # broadcast over batch and heads
    if kind == "pad":  # key padding (B, 1, 1, Lk)
        m = np.ones((b, 1, 1, lk), bool)
        m[..., lk - lk // 3:] = False
        return m
    raise AssertionError(kind)


def check_case(rng, b, h, hkv, lq, lk, d, causal, mask_kind, scale=None):
    q, k, v = f32(rng, b, h, lq, d), f32(rng, b, hkv, lk, d), f32(rng, b, hkv, lk, d)
    dout = f32(rng, b, h, lq, d)
    mask = make_mask(rng, mask_kind, b, h, lq, lk)
    kw = dict(causal=causal, mask=mask, scale=scale)
    out, lse = ops.attention(q, k, v, return_lse=True, **kw)
    dq, dk, dv = ops.attention_backward(dout, q, k, v, out, lse, **kw)
    o64, l64, _ = ref.forward(q, k, v, **kw)
    o32, l32, _ = ref.forward(q, k, v, dtype=np.float32, **kw)
    assert out.shape == q.shape and lse.shape == (b, h, lq) and lse.dtype == np.float32
    assert_close(out, o64, o32, lk + d, "out")
    assert_close(lse, l64, l32, d, "lse")
    g64 = ref.backward(dout, q, k, v, **kw)
    g32 = ref.backward(dout, q, k, v, dtype=np.float32, **kw)
    # Each gradient sums over keys (dq) or the group's queries (dk, dv) terms that carry
    # P's own error: a D-long score dot and the Lk-long normaliser.
    n = lq * h // hkv + lk + d
    for name, got, w64, w32 in zip(("dq", "dk", "dv"), (dq, dk, dv), g64, g32):
        assert got.shape == w64.shape, name
        assert_close(got, w64, w32, n, name)


CASES = [
    # B, H, Hkv, Lq, Lk, D, causal, mask
    (1, 1, 1, 1, 1, 1, False, None),
    (2, 2, 2, 7, 7, 59, False, None),
    (1, 2, 2, 113, 113, 64, True, None),
    (1, 8, 2, 203, 203, 128, False, "bool"),   # GQA 8/2
    (1, 8, 1, 113, 203, 64, True, "add"),      # MQA 8/1, causal with Lq < Lk
    (2, 2, 2, 203, 113, 1, False, "pad"),      # Lq > Lk, D = 1, key padding
    (1, 2, 2, 113, 7, 59, True, None),         # causal with Lq > Lk: early rows see no key
    (1, 2, 1, 7, 1000, 256, False, None),      # D = 256, Lq != Lk
    (1, 1, 1, 1, 1000, 64, True, None),        # decoding: one query against a cache
    # query-tile edges (kBq = 128) and the small-row path boundary, causal with Lq < Lk
    (1, 2, 1, 127, 131, 16, True, None),
    (1, 2, 2, 128, 128, 16, True, None),
    (1, 2, 1, 129, 140, 16, True, "bool"),
    (1, 1, 1, 131, 131, 8, False, None),
    (1, 2, 2, 4, 37, 16, True, None),
    (1, 2, 2, 5, 37, 16, True, None),
]


@pytest.mark.parametrize("case", CASES, ids=lambda c: "B{}H{}kv{}Lq{}Lk{}D{}{}{}".format(
    *c[:6], "c" if c[6] else "", c[7] or ""))
def test_forward_backward_against_float64(isa, rng, case):
    check_case(rng, *case)


@pytest.fixture
def variant_qk():
    """Forward variant 1 (S = Q K^T, packed K^T) instead of the default kq."""
    before = nnforge._core.attention_variant("qk")
    yield
    nnforge._core.attention_variant(before)


@pytest.mark.parametrize("case", CASES[1:6], ids=lambda c: "Lq{}Lk{}D{}".format(*c[3:6]))
def test_forward_variant_qk(variant_qk, rng, case):
    check_case(rng, *case)


def test_variant_names():
    assert nnforge._core.attention_variant() == "kq"
    with pytest.raises(ValueError, match="variant"):
        nnforge._core.attention_variant("fast")


def test_long_sequence_every_isa(isa, rng):
    check_case(rng, 1, 1, 1, 1000, 1000, 64, True, None)


def test_custom_scale_and_large_scores(rng):
    # Scores up to ~100: the running max must keep every exp argument <= 0.
    check_case(rng, 1, 2, 2, 113, 203, 64, False, None, scale=1.5)


def test_fully_masked_rows(isa, rng):
    b, h, lq, lk, d = 1, 2, 37, 150, 16
    q, k, v, dout = f32(rng, b, h, lq, d), f32(rng, b, h, lk, d), f32(rng, b, h, lk, d), f32(rng, b, h, lq, d)
    mask = rng.random((b, h, lq, lk)) < 0.5
    mask[0, 0, 3] = False
    mask[0, 1, 20:] = False
    add = np.where(mask, 0.0, -np.inf).astype(np.float32)
    for m in (mask, add):
        out, lse = ops.attention(q, k, v, mask=m, return_lse=True)
        assert np.all(out[0, 0, 3] == 0) and np.all(out[0, 1, 20:] == 0)
        assert lse[0, 0, 3] == -np.inf and np.all(lse[0, 1, 20:] == -np.inf)
        assert np.isfinite(out).all()
        dq, dk, dv = ops.attention_backward(dout, q, k, v, out, lse, mask=m)
        assert np.isfinite(dq).all() and np.isfinite(dk).all() and np.isfinite(dv).all()
        assert np.all(dq[0, 0, 3] == 0)
        o64, _, _ = ref.forward(q, k, v, mask=mask)
        o32, _, _ = ref.forward(q, k, v, mask=mask, dtype=np.float32)
        assert_close(out, o64, o32, lk + d, "out")
        g64 = ref.backward(dout, q, k, v, mask=mask)
        g32 = ref.backward(dout, q, k, v, mask=mask, dtype=np.float32)
        for got, w64, w32 in zip((dq, dk, dv), g64, g32):
            assert_close(got, w64, w32, lq + lk + d, "grad")


def test_no_keys(rng):
    q = f32(rng, 1, 2, 5, 8)
    k = np.zeros((1, 2, 0, 8), np.float32)
    out, lse = ops.attention(q, k, k, return_lse=True)
    assert np.all(out == 0) and np.all(lse == -np.inf)
    dq, dk, dv = ops.attention_backward(q, q, k, k, out, lse)
    assert np.all(dq == 0) and dk.shape == k.shape and dv.shape == k.shape


def test_transposed_views_without_copy(isa, rng):
    # (B, L, H, D) tensors as (B, H, L, D) views: results bitwise equal to contiguous copies.
    b, l, h, d = 2, 71, 4, 24
    x = [f32(rng, b, l, h, d) for _ in range(4)]
    q, k, v, dout = (a.transpose(0, 2, 1, 3) for a in x)
    assert not q.flags.c_contiguous
    out, lse = ops.attention(q, k, v, causal=True, return_lse=True)
    qc, kc, vc, gc = (np.ascontiguousarray(a) for a in (q, k, v, dout))
    outc, lsec = ops.attention(qc, kc, vc, causal=True, return_lse=True)
    assert np.array_equal(out, outc) and np.array_equal(lse, lsec)
    g = ops.attention_backward(dout, q, k, v, out, lse, causal=True)
    gc_ = ops.attention_backward(gc, qc, kc, vc, outc, lsec, causal=True)
    for a, c in zip(g, gc_):
        assert np.array_equal(a, c)
    # A strided head dim (every other element) still matches the reference.
    big = f32(rng, 1, 2, 40, 2 * d)
    qs = big[..., ::2]
    o2 = ops.attention(qs, qs, qs)
    o64, _, _ = ref.forward(qs, qs, qs)
    o32, _, _ = ref.forward(qs, qs, qs, dtype=np.float32)
    assert_close(o2, o64, o32, 40 + d, "strided out")


def test_out_argument(rng):
    q, k, v = f32(rng, 1, 2, 9, 8), f32(rng, 1, 2, 9, 8), f32(rng, 1, 2, 9, 8)
    want = ops.attention(q, k, v)
    buf = np.full((1, 9, 2, 8), np.nan, np.float32)
    view = buf.transpose(0, 2, 1, 3)
    res = ops.attention(q, k, v, out=view)
    assert res is view or np.shares_memory(res, buf)
    assert np.array_equal(view, want)


def test_threads_bitwise(threads, rng):
    # B x H = 1 makes the backward split keys into chunks; results must not depend on threads.
    q, k, v, dout = (f32(rng, 1, 1, 700, 64) for _ in range(4))
    kw = dict(causal=True, dropout_p=0.1, seed=7)
    res = []
    for nt in (1, 2):
        nnforge.set_num_threads(nt)
        out, lse = ops.attention(q, k, v, return_lse=True, **kw)
        res.append((out, lse) + ops.attention_backward(dout, q, k, v, out, lse, **kw))
    for a, b in zip(*res):
        assert np.array_equal(a, b)


def keep_mask(seed, p, b, h, lq, lk):
    """The kernel's dropout keep mask, read back with V = identity (D = Lk)."""
    q = np.zeros((b, h, lq, lk), np.float32)
    k = np.zeros((b, h, lk, lk), np.float32)
    v = np.broadcast_to(np.eye(lk, dtype=np.float32), (b, h, lk, lk))
    return ops.attention(q, k, v, dropout_p=p, seed=seed) != 0


def test_dropout_statistics_and_reproducibility(rng):
    p = 0.3
    keep = keep_mask(11, p, 2, 3, 50, 200)
    n = keep.size
    frac = 1.0 - keep.mean()
    assert abs(frac - p) < 5 * np.sqrt(p * (1 - p) / n), frac
    assert np.array_equal(keep, keep_mask(11, p, 2, 3, 50, 200))
    assert not np.array_equal(keep, keep_mask(12, p, 2, 3, 50, 200))
    # The decision of (b, h, i, j) does not depend on Lq-tiling: a prefix of the rows agrees.
    assert np.array_equal(keep[:, :, :20], keep_mask(11, p, 2, 3, 50, 200)[:, :, :20])


def test_dropout_forward_backward(isa, rng):
    b, h, lq, lk, d, p, seed = 1, 2, 70, 150, 32, 0.25, 5
    keep = keep_mask(seed, p, b, h, lq, lk).astype(np.float64)
    q, k, v, dout = f32(rng, b, h, lq, d), f32(rng, b, h, lk, d), f32(rng, b, h, lk, d), f32(rng, b, h, lq, d)
    kw = dict(dropout_p=p, seed=seed)
    out, lse = ops.attention(q, k, v, return_lse=True, **kw)
    rkw = dict(keep=keep, dropout_p=p)
    o64, l64, _ = ref.forward(q, k, v, **rkw)
    o32, l32, _ = ref.forward(q, k, v, dtype=np.float32, **rkw)
    assert_close(out, o64, o32, lk + d, "out")
    assert_close(lse, l64, l32, d, "lse")  # lse is of the undropped weights
    g = ops.attention_backward(dout, q, k, v, out, lse, **kw)
    g64 = ref.backward(dout, q, k, v, **rkw)
    g32 = ref.backward(dout, q, k, v, dtype=np.float32, **rkw)
    for got, w64, w32 in zip(g, g64, g32):
        assert_close(got, w64, w32, lq + lk + d, "grad")


def test_reference_gradient_by_finite_differences(rng):
    # The float64 reference's closed-form gradient (the oracle above) against central
    # differences, with GQA, a mask, causal and dropout all on.
    b, h, hkv, lq, lk, d = 1, 4, 2, 5, 7, 3
    q, k, v = (rng.standard_normal(s) for s in ((b, h, lq, d), (b, hkv, lk, d), (b, hkv, lk, d)))
    g = rng.standard_normal((b, h, lq, d))
    mask = rng.standard_normal((lq, lk))
    keep = (rng.random((b, h, lq, lk)) > 0.2).astype(np.float64)
    kw = dict(causal=True, mask=mask, keep=keep, dropout_p=0.2, scale=0.7)
    loss = lambda q, k, v: float((ref.forward(q, k, v, **kw)[0] * g).sum())
    grads = ref.backward(g, q, k, v, **kw)
    h_ = 1e-6
    for idx, x in enumerate((q, k, v)):
        num = np.zeros_like(x)
        for pos in np.ndindex(x.shape):
            xp, xm = x.copy(), x.copy()
            xp[pos] += h_
            xm[pos] -= h_
            args = [q, k, v]
            args[idx] = xp
            fp = loss(*args)
            args[idx] = xm
            num[pos] = (fp - loss(*args)) / (2 * h_)
        np.testing.assert_allclose(grads[idx], num, rtol=1e-6, atol=1e-8)


def test_matches_torch_sdpa(rng):
    torch = pytest.importorskip("torch", reason="torch not installed: SDPA comparison skipped")
    b, h, hkv, lq, lk, d = 2, 4, 2, 67, 131, 40
    q, k, v, dout = f32(rng, b, h, lq, d), f32(rng, b, hkv, lk, d), f32(rng, b, hkv, lk, d), f32(rng, b, h, lq, d)
    mask = rng.random((b, 1, lq, lk)) < 0.8
    mask[..., 0] = True
    for causal, m in ((True, None), (False, mask)):
        out, lse = ops.attention(q, k, v, causal=causal, mask=m, return_lse=True)
        g = ops.attention_backward(dout, q, k, v, out, lse, causal=causal, mask=m)
        tq = torch.from_numpy(q).requires_grad_()
        tk = torch.from_numpy(k).requires_grad_()
        tv = torch.from_numpy(v).requires_grad_()
        rep = lambda x: x.repeat_interleave(h // hkv, dim=1)
        if causal:  # torch's is_causal is top-left aligned; build the bottom-right mask
            am = torch.ones(lq, lk, dtype=torch.bool).tril(diagonal=lk - lq)
        else:
            am = torch.from_numpy(m)
        to = torch.nn.functional.scaled_dot_product_attention(tq, rep(tk), rep(tv), attn_mask=am)
        to.backward(torch.from_numpy(dout))
        np.testing.assert_allclose(out, to.detach().numpy(), rtol=1e-4, atol=2e-5)
        for got, t in zip(g, (tq, tk, tv)):
            np.testing.assert_allclose(got, t.grad.numpy(), rtol=1e-4, atol=5e-5)


# ---- bad inputs: clear errors, nothing written ----------------------------------
def _qkv(b=1, h=2, hkv=2, lq=5, lk=6, d=8):
    z = lambda *s: np.ones(s, np.float32)
    return z(b, h, lq, d), z(b, hkv, lk, d), z(b, hkv, lk, d)


@pytest.mark.parametrize("change, exc, words", [
    (lambda a: dict(a, q=a["q"].astype(np.float64)), TypeError, "float32"),
    (lambda a: dict(a, k=a["k"][0]), ValueError, "4-D"),
    (lambda a: dict(a, k=np.ones((2, 2, 6, 8), np.float32), v=np.ones((2, 2, 6, 8), np.float32)),
     ValueError, "batch"),
    (lambda a: dict(a, k=np.ones((1, 2, 6, 7), np.float32), v=np.ones((1, 2, 6, 7), np.float32)),
     ValueError, "head dim"),
    (lambda a: dict(a, v=np.ones((1, 2, 7, 8), np.float32)), ValueError, "same shape"),
    (lambda a: dict(a, k=np.ones((1, 3, 6, 8), np.float32), v=np.ones((1, 3, 6, 8), np.float32)),
     ValueError, "multiple"),
    (lambda a: dict(a, q=np.ones((1, 2, 5, 257), np.float32), k=np.ones((1, 2, 6, 257), np.float32),
                    v=np.ones((1, 2, 6, 257), np.float32)), ValueError, "1..256"),
    (lambda a: dict(a, mask=np.ones((5, 6), np.int32)), TypeError, "mask"),
    (lambda a: dict(a, mask=np.ones((5, 7), bool)), ValueError, "broadcast"),
    (lambda a: dict(a, mask=np.ones((1, 1, 1, 5, 6), bool)), ValueError, "broadcast"),
    (lambda a: dict(a, dropout_p=0.1), ValueError, "seed"),
    (lambda a: dict(a, dropout_p=1.0, seed=1), ValueError, "dropout_p"),
    (lambda a: dict(a, seed=-1), ValueError, "seed"),
    (lambda a: dict(a, scale=float("nan")), ValueError, "scale"),
    (lambda a: dict(a, scale=1e39), ValueError, "scale"),  # finite in float64 only
    (lambda a: dict(a, dropout_p=1.0 - 2.0 ** -26, seed=1), ValueError, "dropout_p"),  # 1.0 in float32
    (lambda a: dict(a, q=np.ones((1, 0, 5, 8), np.float32)), ValueError, "multiple"),  # H = 0 < Hkv
    (lambda a: dict(a, q=[[[[1.0]]]]), TypeError, "numpy"),
])
def test_bad_forward_inputs(change, exc, words):
    q, k, v = _qkv()
    args = change(dict(q=q, k=k, v=v))
    out = np.full((1, 2, 5, 8), 3.0, np.float32)
    args.setdefault("out", out)
    if not isinstance(args["q"], np.ndarray) or args["q"].shape != (1, 2, 5, 8):
        args.pop("out")
    with pytest.raises(exc, match=words):
        ops.attention(args.pop("q"), args.pop("k"), args.pop("v"), **args)
    assert np.all(out == 3.0)  # nothing written


def test_bad_out():
    q, k, v = _qkv()
    with pytest.raises(ValueError, match="shape"):
        ops.attention(q, k, v, out=np.zeros((1, 2, 5, 7), np.float32))
    ro = np.zeros((1, 2, 5, 8), np.float32)
    ro.flags.writeable = False
    with pytest.raises(ValueError, match="read-only"):
        ops.attention(q, k, v, out=ro)
    with pytest.raises(ValueError, match="overlaps q"):
        ops.attention(q, k, v, out=q)
    with pytest.raises(ValueError, match="overlapping"):
        ops.attention(q, k, v, out=np.lib.stride_tricks.as_strided(np.zeros(8, np.float32), (1, 2, 5, 8), (0, 0, 0, 4)))
    with pytest.raises(TypeError, match="float32"):
        ops.attention(q, k, v, out=np.zeros((1, 2, 5, 8)))


def test_bad_backward_inputs():
    q, k, v = _qkv()
    out, lse = ops.attention(q, k, v, return_lse=True)
    with pytest.raises(ValueError, match="lse must have shape"):
        ops.attention_backward(out, q, k, v, out, lse[:, :, :4])
    with pytest.raises(TypeError, match="float32"):
        ops.attention_backward(out, q, k, v, out, lse.astype(np.float64))
    with pytest.raises(ValueError, match="dout must have the shape"):
        ops.attention_backward(out[:, :, :4], q, k, v, out, lse)
    with pytest.raises(ValueError, match="out must have the shape"):
        ops.attention_backward(out, q, k, v, out[..., :4], lse)
    with pytest.raises(ValueError, match="seed"):
        ops.attention_backward(out, q, k, v, out, lse, dropout_p=0.5)


MEMORY_SCRIPT = textwrap.dedent("""
    import resource, sys
    import numpy as np
    import nnforge
    from nnforge import ops
    L, D = 16384, 64
    rng = np.random.default_rng(0)
    q, k, v = (rng.standard_normal((1, 1, L, D), dtype=np.float32) for _ in range(3))
    out = np.empty_like(q)
    ops.attention(q[:, :, :128], k[:, :, :128], v[:, :, :128])  # thread pool and scratch warm
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    ops.attention(q, k, v, out=out)
    after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    assert np.isfinite(out).all()
    print((after - before) * 1024)
""")


def test_memory_16384_no_score_matrix():
    env = dict(os.environ)
    res = subprocess.run([sys.executable, "-c", MEMORY_SCRIPT], capture_output=True, text=True,
                         env=env, timeout=600)
    assert res.returncode == 0, res.stderr
    rise = int(res.stdout.strip().splitlines()[-1])
    # A 16384 x 16384 float32 score matrix is 1 GiB; per-thread tiles are ~100 KiB.
    assert rise < 32 * 2**20, f"peak RSS rose by {rise / 2**20:.1f} MiB"


# ---- nnforge bench attention (no timing) ------------------------------------------
def test_bench_cost_model_and_table(monkeypatch, capsys):
    import argparse

    from nnforge.bench import attention as bench_attention

    for case in bench_attention.CASES:
        b, h, lq, lk, d, causal = case
        f = 4 * b * h * lq * lk * d * (0.5 if causal else 1.0)
        assert bench_attention.flops(case) == f
        assert bench_attention.flops_fwd_bwd(case) == 3.5 * f
    monkeypatch.setattr(bench_attention, "time_rounds",
                        lambda fns, **kw: [{key: 1e-3 for key in case} for case in fns])
    monkeypatch.setattr(bench_attention, "CASES", [(1, 2, 8, 8, 16, True)])
    p = argparse.ArgumentParser()
    bench_attention.add_arguments(p)
    assert bench_attention.run(p.parse_args(["--quick", "--variants", "--peak", "100"])) == 0
    out = capsys.readouterr().out
    assert "peak=100 GFLOP/s (--peak)" in out and "fwd+bwd" in out and "qk" in out and "kq" in out
    assert nnforge._core.attention_variant() == "kq"  # --variants restores the active one


def test_torch_tensors_without_copy(rng):
    torch = pytest.importorskip("torch", reason="torch not installed: DLPack interop skipped")
    q, k, v = (f32(rng, 1, 2, 33, 16) for _ in range(3))
    tq, tk, tv = (torch.from_numpy(a) for a in (q, k, v))
    tout = torch.empty(1, 2, 33, 16)
    res = ops.attention(tq, tk, tv, causal=True, out=tout)
    want = ops.attention(q, k, v, causal=True)
    assert np.array_equal(tout.numpy(), want)
    assert np.shares_memory(np.asarray(res), tout.numpy())
    with pytest.raises(TypeError, match="float32"):
        ops.attention(tq.double(), tk, tv)


def test_no_queries_and_odd_strides(rng):
    k = f32(rng, 1, 2, 9, 8)
    q0 = np.zeros((1, 2, 0, 8), np.float32)
    out, lse = ops.attention(q0, k, k, return_lse=True)
    assert out.shape == (1, 2, 0, 8) and lse.shape == (1, 2, 0)
    dq, dk, dv = ops.attention_backward(q0, q0, k, k, out, lse)
    assert np.all(dk == 0) and np.all(dv == 0)
    # Negative strides (flipped views) and keys broadcast over the batch (stride 0).
    q = f32(rng, 2, 2, 40, 16)[:, :, ::-1]
    kv = np.broadcast_to(f32(rng, 1, 1, 33, 16), (2, 1, 33, 16))
    v = f32(rng, 2, 1, 33, 16)[..., ::-1]
    dout = f32(rng, 2, 2, 40, 16)
    out, lse = ops.attention(q, kv, v, return_lse=True)
    o64, _, _ = ref.forward(q, kv, v)
    o32, _, _ = ref.forward(q, kv, v, dtype=np.float32)
    assert_close(out, o64, o32, 33 + 16, "out")
    g = ops.attention_backward(dout, q, kv, v, out, lse)
    g64 = ref.backward(dout, q, kv, v)
    g32 = ref.backward(dout, q, kv, v, dtype=np.float32)
    for got, w64, w32 in zip(g, g64, g32):
        assert_close(got, w64, w32, 40 * 2 + 33 + 16, "grad")


@pytest.mark.parametrize("kw", [dict(causal=True), dict(scale=0.3), dict(scale=0.0), dict(mask="bool")])
def test_registry_backward_reference_is_the_checked_one(rng, kw):
    """The op registry's float64 gradient (nnforge.registry.attention) equals this file's
    finite-difference-checked reference, so the registry walk checks against a checked formula."""
    from nnforge.registry.attention import _backward_ref
    q, k, v, dout = (rng.standard_normal(s) for s in [(2, 4, 7, 5), (2, 2, 9, 5), (2, 2, 9, 5), (2, 4, 7, 5)])
    if kw.get("mask") == "bool":
        kw = dict(mask=rng.random((7, 9)) < 0.7)
    got = _backward_ref(q, k, v, dout, **kw)
    want = ref.backward(dout, q, k, v, **kw)
    for g, w in zip(got, want):
        np.testing.assert_allclose(g, w, rtol=1e-10, atol=1e-12)
