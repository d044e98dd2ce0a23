"""MultiheadAttention, TransformerBlock and GPT: forward against float64 NumPy
re-implementations (sharing no code with nnforge), backward against their central
differences (tests/layer_check.py), PyTorch agreement, generation with and without the
key/value cache, and bad inputs. Every test runs on every ISA path."""
from __future__ import annotations

import math

import numpy as np
import pytest

import nnforge
from nnforge import nn
from nnforge.nn.module import Module

from layer_check import check_layer, randn
from nn_reference import EPS32, assert_close, central_diff, f64


# --- float64 references -----------------------------------------------------------------

def ref_attention(q, k, v, causal, keep=None):
    """q (B, H, Lq, D), k/v (B, Hkv, Lk, D); keep (B, Lk) bool; bottom-right causal."""
    b, h, lq, d = q.shape
    lk = k.shape[2]
    g = h // k.shape[1]
    k, v = np.repeat(k, g, axis=1), np.repeat(v, g, axis=1)
    s = q @ k.swapaxes(-1, -2) / math.sqrt(d)
    allowed = np.ones((b, 1, lq, lk), bool)
    if causal:
        allowed &= (np.arange(lk)[None, :] <= np.arange(lq)[:, None] + (lk - lq))[None, None]
    if keep is not None:
        allowed &= keep[:, None, None, :]
    s = np.where(allowed, s, -np.inf)
    mx = s.max(axis=-1, keepdims=True)
    mx = np.where(np.isfinite(mx), mx, 0.0)
    e = np.where(allowed, np.exp(s - mx), 0.0)
    den = e.sum(axis=-1, keepdims=True)
    p = np.divide(e, den, out=np.zeros_like(e), where=den > 0)
    return p @ v


def ref_mha(x, p, pre, h, hkv, causal, memory=None, keep=None):
    b, lq, e = x.shape
    d = e // h
    src = x if memory is None else memory
    lk = src.shape[1]
    w, bias = p[pre + "w_qkv"], p.get(pre + "b_qkv", np.zeros(p[pre + "w_qkv"].shape[1]))
    q = (x @ w[:, :h * d] + bias[:h * d]).reshape(b, lq, h, d).transpose(0, 2, 1, 3)
    kv = (src @ w[:, h * d:] + bias[h * d:]).reshape(b, lk, 2 * hkv, d).transpose(0, 2, 1, 3)
    o = ref_attention(q, kv[:, :hkv], kv[:, hkv:], causal, keep)
    return o.transpose(0, 2, 1, 3).reshape(b, lq, e) @ p[pre + "w_out"] + p.get(pre + "b_out", 0.0)


def ref_ln(x, g, b, eps=1e-5):
    mu = x.mean(axis=-1, keepdims=True)
    var = ((x - mu) ** 2).mean(axis=-1, keepdims=True)
    return (x - mu) / np.sqrt(var + eps) * g + b


def ref_gelu_tanh(x):
    return 0.5 * x * (1.0 + np.tanh(math.sqrt(2.0 / math.pi) * (x + 0.044715 * x ** 3)))


def ref_block(x, p, pre, h, hkv=None, causal=True):
    hkv = h if hkv is None else hkv
    x1 = x + ref_mha(ref_ln(x, p[pre + "ln1.weight"], p[pre + "ln1.bias"]), p, pre + "attn.", h, hkv, causal)
    m = ref_gelu_tanh(ref_ln(x1, p[pre + "ln2.weight"], p[pre + "ln2.bias"]) @ p[pre + "fc1.weight"]
                      + p[pre + "fc1.bias"])
    return x1 + m @ p[pre + "fc2.weight"] + p[pre + "fc2.bias"]


def ref_gpt_logits(idx, p, n_layer, h):
    t = idx.shape[1]
    x = p["wte.weight"][idx] + p["wpe.weight"][:t]
    for i in range(n_layer):
        x = ref_block(x, p, f"h{i}.", h)
    return ref_ln(x, p["ln_f.weight"], p["ln_f.bias"]) @ p["wte.weight"].T


def ref_gpt_loss(idx, targets, p, n_layer, h):
    z = ref_gpt_logits(idx, p, n_layer, h)
    z = z.reshape(-1, z.shape[-1])
    m = z.max(axis=1, keepdims=True)
    lp = z - m - np.log(np.exp(z - m).sum(axis=1, keepdims=True))
    return -lp[np.arange(len(z)), targets.reshape(-1)].mean()


def randomize(module, rng, scale=0.4):
    """Weights of O(scale) (the GPT init's 0.02 would leave gradients too small for the
    float32 tolerances to mean anything); LayerNorm scales near 1."""
    for name, p in module.named_parameters():
        noise = rng.standard_normal(p.shape) * scale
        p.data[...] = 1.0 + noise if name.endswith(("ln1.weight", "ln2.weight", "ln_f.weight")) else noise


class _WithMask(Module):
    """Fixes the key_padding_mask keyword so check_layer can call forward(*inputs)."""

    def __init__(self, inner, mask):
        super().__init__()
        self.inner = inner
        self._m = mask

    def forward(self, *xs):
        return self.inner.forward(*xs, key_padding_mask=self._m)

    def backward(self, g):
        return self.inner.backward(g)


# --- MultiheadAttention --------------------------------------------------------------

@pytest.mark.parametrize("h,hkv,causal,bias,d,l", [(2, 2, False, True, 4, 7), (2, 2, True, True, 4, 7),
                                                   (4, 2, True, True, 4, 7), (4, 1, False, True, 4, 7),
                                                   (3, 3, True, False, 4, 7), (2, 1, True, True, 5, 33),
                                                   (1, 1, True, True, 3, 1)])
def test_mha_self_attention(isa, rng, h, hkv, causal, bias, d, l):
    # head dims 3-5 and L = 1, 7, 33 (odd sizes around the kernel's tiles)
    e, b = d * h, 2
    layer = nn.MultiheadAttention(e, h, num_kv_heads=hkv, causal=causal, bias=bias)
    randomize(layer, rng)
    x = randn(rng, b, l, e)
    check_layer(layer, x, lambda xv, pv: ref_mha(xv, pv, "", h, hkv, causal), rng, k=max(e, l))


@pytest.mark.parametrize("causal", [False, True])
def test_mha_cross_attention(isa, rng, causal):
    # Lq = 3 < Lk = 5: causal is aligned bottom-right (query i sees keys j <= i + 2)
    e, h, hkv, b = 8, 4, 2, 2
    layer = nn.MultiheadAttention(e, h, num_kv_heads=hkv, causal=causal)
    randomize(layer, rng)
    x, mem = randn(rng, b, 3, e), randn(rng, b, 5, e)
    check_layer(layer, (x, mem), lambda xv, pv: ref_mha(xv[0], pv, "", h, hkv, causal, memory=xv[1]), rng, k=8)


def test_mha_key_padding_mask(isa, rng):
    e, h, b, l = 6, 2, 3, 5
    keep = np.ones((b, l), bool)
    keep[0, 3:] = False          # padding at the end
    keep[1, :2] = False          # and at the start
    layer = _WithMask(nn.MultiheadAttention(e, h), keep)
    randomize(layer, rng)
    x = randn(rng, b, l, e)
    check_layer(layer, x, lambda xv, pv: ref_mha(xv, pv, "inner.", h, h, False, keep=keep), rng, k=8)
    # a padded key changes nothing for anyone
    y = layer.forward(x)
    x2 = x.copy()
    x2[0, 4] += 10.0
    y2 = layer.forward(x2)
    np.testing.assert_array_equal(y[0, :4], y2[0, :4])


def test_mha_cross_attention_with_padding(isa, rng):
    e, h, b = 4, 2, 2
    keep = np.array([[True, True, False, False], [True, True, True, True]])
    layer = _WithMask(nn.MultiheadAttention(e, h), keep)
    randomize(layer, rng)
    x, mem = randn(rng, b, 3, e), randn(rng, b, 4, e)
    check_layer(layer, (x, mem), lambda xv, pv: ref_mha(xv[0], pv, "inner.", h, h, False, xv[1], keep), rng, k=8)


def test_mha_dropout_reproducible_and_off_in_eval(isa, rng):
    e, h = 8, 2
    layer = nn.MultiheadAttention(e, h, causal=True, dropout=0.5)
    randomize(layer, rng)
    x = randn(rng, 2, 6, e)
    layer.eval()
    want = ref_mha(f64(x), {n: f64(p.data) for n, p in layer.named_parameters()}, "", h, h, True)
    assert_close(layer.forward(x), want, 64 * EPS32 * (1 + np.abs(want).max()), "eval forward")
    layer.train()
    nnforge.seed(5)
    a = layer.forward(x)
    da = layer.backward(np.ones_like(a))
    nnforge.seed(5)
    b = layer.forward(x)
    db = layer.backward(np.ones_like(b))
    np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(da, db)
    assert np.abs(a - want).max() > 1e-3  # the weights really were dropped


def test_mha_one_thread_equals_two(isa, rng, threads):
    layer = nn.MultiheadAttention(16, 4, num_kv_heads=2, causal=True)
    x, g = randn(rng, 3, 11, 16), randn(rng, 3, 11, 16)
    out = []
    for n in (1, 2):
        nnforge.set_num_threads(n)
        layer.zero_grad()
        y = layer.forward(x)
        dx = layer.backward(g)
        out.append((y, dx, [p.grad.copy() for p in layer.parameters()]))
    np.testing.assert_array_equal(out[0][0], out[1][0])
    np.testing.assert_array_equal(out[0][1], out[1][1])
    for a, b in zip(out[0][2], out[1][2]):
        np.testing.assert_array_equal(a, b)


def test_mha_hands_strided_views_to_the_kernel(rng):
    # q, k, v are views of the one QKV projection and the output is written through a
    # transposed view of the out-projection's input: no copies around the kernel
    layer = nn.MultiheadAttention(8, 2, num_kv_heads=1)
    seen = []
    real = layer._attn

    def spy(q, k, v, **kw):
        seen.append((q, k, v, kw["out"]))
        return real(q, k, v, **kw)

    object.__setattr__(layer, "_attn", spy)
    layer.forward(randn(rng, 3, 5, 8))
    q, k, v, out = seen[0]
    assert q.shape == (3, 2, 5, 4) and k.shape == v.shape == (3, 1, 5, 4)
    owner = q.base
    assert owner is not None and k.base is owner and v.base is owner and owner.shape == (15, 16)
    assert not out.flags.c_contiguous and out.base is not None


def test_mha_bad_inputs(rng):
    with pytest.raises(ValueError, match="multiple of num_heads"):
        nn.MultiheadAttention(10, 4)
    with pytest.raises(ValueError, match="multiple of num_kv_heads"):
        nn.MultiheadAttention(12, 4, num_kv_heads=3)
    layer = nn.MultiheadAttention(8, 2)
    with pytest.raises(ValueError, match=r"\(B, L, 8\)"):
        layer.forward(randn(rng, 2, 5, 6))
    with pytest.raises(TypeError, match="float32"):
        layer.forward(rng.standard_normal((2, 5, 8)))
    with pytest.raises(ValueError, match="batch size"):
        layer.forward(randn(rng, 2, 5, 8), randn(rng, 3, 4, 8))
    with pytest.raises(ValueError, match=r"key_padding_mask .*\(2, 5\)"):
        layer.forward(randn(rng, 2, 5, 8), key_padding_mask=np.ones((2, 4), bool))
    with pytest.raises(ValueError, match="key_padding_mask"):
        layer.forward(randn(rng, 2, 5, 8), key_padding_mask=np.ones((2, 5), np.float32))
    with pytest.raises(RuntimeError, match="before forward"):
        nn.MultiheadAttention(8, 2).backward(randn(rng, 2, 5, 8))
    layer.forward(randn(rng, 2, 5, 8))
    with pytest.raises(ValueError, match=r"\(2, 5, 8\)"):
        layer.backward(randn(rng, 2, 4, 8))


# --- TransformerBlock ------------------------------------------------------------------

@pytest.mark.parametrize("h,hkv", [(2, None), (4, 2)])
def test_transformer_block(isa, rng, h, hkv):
    e, b, l = 8, 2, 5
    blk = nn.TransformerBlock(e, h, num_kv_heads=hkv)
    randomize(blk, rng)
    x = randn(rng, b, l, e)
    check_layer(blk, x, lambda xv, pv: ref_block(xv, pv, "", h, hkv), rng, k=4 * e)


def test_transformer_block_leaves_grad_out_alone(isa, rng):
    blk = nn.TransformerBlock(8, 2)
    x, g = randn(rng, 2, 3, 8), randn(rng, 2, 3, 8)
    g0 = g.copy()
    blk.forward(x)
    blk.backward(g)
    np.testing.assert_array_equal(g, g0)


def test_gpt_dropout_reproducible(isa, rng):
    model = _tiny_gpt(rng, dropout=0.2)
    idx = rng.integers(0, 7, (2, 6))
    model.eval()
    eval_loss = model.loss(idx, idx)
    model.train()
    runs = []
    for _ in range(2):
        nnforge.seed(9)
        model.zero_grad()
        loss = model.loss(idx, idx)
        model.backward()
        runs.append((loss, [p.grad.copy() for p in model.parameters()]))
    assert runs[0][0] == runs[1][0] != eval_loss
    for a, b in zip(runs[0][1], runs[1][1]):
        np.testing.assert_array_equal(a, b)


def test_transformer_block_residual_dropout_gradients(isa, rng, monkeypatch):
    # a fixed dropout seed gives the same masks in every forward, so central differences of
    # a reference that applies those masks check the backward through both dropouts
    from nnforge import _random
    monkeypatch.setattr(_random, "next_seed", lambda: 1234)
    e, h, b, l, p = 8, 2, 2, 5, 0.3
    blk = nn.TransformerBlock(e, h, dropout=p)
    blk.attn.dropout = 0.0  # its mask lives inside the kernel; the residual dropouts' are visible
    randomize(blk, rng)
    x = randn(rng, b, l, e)
    blk.forward(x)
    m1 = f64(blk.drop1._mask).reshape(b, l, e) / (1 - p)
    m2 = f64(blk.drop2._mask).reshape(b, l, e) / (1 - p)
    assert 0 < m1.sum() < m1.size / (1 - p)

    def ref(xv, pv):
        x1 = xv + m1 * ref_mha(ref_ln(xv, pv["ln1.weight"], pv["ln1.bias"]), pv, "attn.", h, h, True)
        z = ref_ln(x1, pv["ln2.weight"], pv["ln2.bias"]) @ pv["fc1.weight"] + pv["fc1.bias"]
        return x1 + m2 * (ref_gelu_tanh(z) @ pv["fc2.weight"] + pv["fc2.bias"])

    check_layer(blk, x, ref, rng, k=4 * e)


def test_transformer_block_dropout(isa, rng):
    blk = nn.TransformerBlock(8, 2, dropout=0.3)
    x = randn(rng, 2, 4, 8)
    blk.eval()
    y_eval = blk.forward(x)
    blk.train()
    nnforge.seed(1)
    a = blk.forward(x)
    nnforge.seed(1)
    b = blk.forward(x)
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, y_eval)


# --- GPT ---------------------------------------------------------------------------

def _tiny_gpt(rng, v=7, ctx=6, n_layer=2, h=2, e=8, **kw):
    nnforge.seed(int(rng.integers(1 << 30)))
    return nn.GPT(v, ctx, n_layer, h, e, **kw)


def test_gpt_gradients_match_central_differences(isa, rng):
    v, ctx, n_layer, h, e, b, t = 7, 6, 2, 2, 8, 2, 5
    model = _tiny_gpt(rng, v, ctx, n_layer, h, e)
    randomize(model, rng, 0.3)
    idx, tgt = rng.integers(0, v, (b, t)), rng.integers(0, v, (b, t))
    params = {n: f64(p.data) for n, p in model.named_parameters()}
    want = ref_gpt_loss(idx, tgt, params, n_layer, h)
    loss = model.loss(idx, tgt)
    k = 4 * e
    assert abs(loss - want) <= 16 * EPS32 * k * (1 + abs(want))
    assert_close(model.forward(idx), ref_gpt_logits(idx, params, n_layer, h), 16 * EPS32 * k * 4, "logits")
    model.zero_grad()
    model.loss(idx, tgt)
    assert model.backward() is None
    for name, p in model.named_parameters():
        def at(x, name=name):
            q = dict(params)
            q[name] = x
            return ref_gpt_loss(idx, tgt, q, n_layer, h)
        fd = central_diff(at, params[name])
        assert_close(p.grad, fd, 64 * EPS32 * k * (1 + np.abs(fd).max()) + 1e-7, f"d{name}")


def test_gpt_backward_with_given_dlogits(isa, rng):
    # backward(dlogits) of sum(w * logits) equals loss-free central differences (untied head)
    v, h = 5, 2
    model = _tiny_gpt(rng, v, 4, 1, h, 4, tie_weights=False)
    randomize(model, rng, 0.3)
    idx = rng.integers(0, v, (2, 3))
    w = randn(rng, 2, 3, v)
    model.zero_grad()
    model.forward(idx)
    model.backward(w)
    params = {n: f64(p.data) for n, p in model.named_parameters()}

    def f(q):
        x = q["wte.weight"][idx] + q["wpe.weight"][:3]
        x = ref_block(x, q, "h0.", h)
        return float((f64(w) * (ref_ln(x, q["ln_f.weight"], q["ln_f.bias"]) @ q["lm_head"])).sum())

    grads = {n: p.grad for n, p in model.named_parameters()}
    for name in ("lm_head", "wte.weight", "wpe.weight", "h0.attn.w_qkv"):
        fd = central_diff(lambda x, name=name: f({**params, name: x}), params[name])
        assert_close(grads[name], fd,
                     64 * EPS32 * 16 * (1 + np.abs(fd).max()) * (1 + np.abs(w).max()), f"d{name}")


def test_gpt_agrees_with_torch(isa, rng):
    torch = pytest.importorskip("torch")
    from nnforge.bench.gpt_step import copy_weights, torch_gpt, torch_grads_as_nnforge
    v, ctx, n_layer, h, e, b = 11, 9, 2, 2, 16, 3
    model = _tiny_gpt(rng, v, ctx, n_layer, h, e)
    randomize(model, rng, 0.2)
    tmodel = torch_gpt(torch, v, ctx, n_layer, h, e)
    copy_weights(model, tmodel, torch)
    idx, tgt = rng.integers(0, v, (b, ctx)), rng.integers(0, v, (b, ctx))
    model.zero_grad()
    loss = model.loss(idx, tgt)
    model.backward()
    tloss = tmodel(torch.from_numpy(idx), torch.from_numpy(tgt))
    tloss.backward()
    k = 4 * e
    assert abs(loss - tloss.item()) <= 32 * EPS32 * k * (1 + abs(loss))
    tg = torch_grads_as_nnforge(model, tmodel)
    assert sorted(tg) == sorted(n for n, _ in model.named_parameters())
    for name, p in model.named_parameters():
        assert_close(p.grad, tg[name], 64 * EPS32 * k * (1 + np.abs(tg[name]).max()), f"d{name}")


def test_gpt_one_thread_equals_two(isa, rng, threads):
    model = _tiny_gpt(rng, 13, 16, 2, 4, 32)
    idx, tgt = rng.integers(0, 13, (3, 16)), rng.integers(0, 13, (3, 16))
    out = []
    for n in (1, 2):
        nnforge.set_num_threads(n)
        model.zero_grad()
        loss = model.loss(idx, tgt)
        model.backward()
        out.append((loss, [p.grad.copy() for p in model.parameters()]))
    assert out[0][0] == out[1][0]
    for a, b in zip(out[0][1], out[1][1]):
        np.testing.assert_array_equal(a, b)


def test_gpt_decay_groups_flat_adamw(rng):
    model = _tiny_gpt(rng)
    opt = nn.AdamW(nn.decay_groups(model, 0.1), lr=1e-2, betas=(0.9, 0.99))
    model.flatten_parameters(opt.group_parameters())
    decayed = {id(p) for p in opt.param_groups[0]["params"]}
    for name, p in model.named_parameters():
        assert (id(p) in decayed) == (p.data.ndim == 2), name  # matrices and embeddings only
    idx = rng.integers(0, 7, (2, 6))
    losses = []
    for _ in range(30):
        losses.append(model.loss(idx, idx))
        model.backward()
        opt.step(zero_grad=True)
    assert losses[-1] < losses[0] - 0.5  # memorises one batch
    # the optimizer rebound to the flat layout: one kernel call over one segment per group
    assert len(opt._bound) == 2 and all(len(b.data) == 1 for b in opt._bound)
    assert opt._bound[0].overrides["weight_decay"] == 0.1 and opt._bound[1].overrides["weight_decay"] == 0.0


def test_gpt_bad_inputs(rng):
    model = _tiny_gpt(rng, v=7, ctx=6)
    with pytest.raises(TypeError, match="integer"):
        model.forward(np.zeros((2, 3), np.float32))
    with pytest.raises(ValueError, match="context=6"):
        model.forward(np.zeros((2, 7), np.int64))
    with pytest.raises(ValueError, match="out of range"):
        model.forward(np.full((2, 3), 7, np.int64))
    with pytest.raises(ValueError, match="targets"):
        model.loss(np.zeros((2, 3), np.int64), np.zeros((2, 4), np.int64))
    with pytest.raises(RuntimeError, match="before forward"):
        _tiny_gpt(rng).backward()


# --- generation -------------------------------------------------------------------

@pytest.mark.parametrize("kwargs", [{"temperature": 0.0}, {"top_k": 1}])
def test_generate_cache_equals_full_rerun(isa, rng, kwargs):
    model = _tiny_gpt(rng, v=11, ctx=24, n_layer=2, h=4, e=16)
    randomize(model, rng, 0.5)
    prompt = rng.integers(0, 11, 5)
    a = model.generate(prompt, 19, use_cache=True, **kwargs)      # fills the context exactly
    b = model.generate(prompt, 19, use_cache=False, **kwargs)
    assert a.shape == (24,)
    np.testing.assert_array_equal(a[:5], prompt)
    np.testing.assert_array_equal(a, b)


def test_generate_costs_one_query_row_per_token(rng):
    model = _tiny_gpt(rng, v=9, ctx=16, n_layer=2)
    rows = []
    for blk in model.blocks:
        real = blk.attn._attn

        def spy(q, k, v, real=real, **kw):
            rows.append((q.shape[2], k.shape[2]))
            return real(q, k, v, **kw)

        object.__setattr__(blk.attn, "_attn", spy)
    model.generate(np.array([1, 2, 3, 4]), 5, temperature=0.0)
    # the prompt once (4 queries against 4 keys), then one query per new token per layer
    assert rows == [(4, 4)] * 2 + [(1, n) for n in range(5, 9) for _ in range(2)]


def test_generate_batch_and_long_runs(isa, rng):
    model = _tiny_gpt(rng, v=9, ctx=8)
    prompts = rng.integers(0, 9, (3, 4))
    out = model.generate(prompts, 30, temperature=0.9, top_k=4, seed=3)  # past the context: cache restarts
    assert out.shape == (3, 34) and out.dtype == np.int64 and out.min() >= 0 and out.max() < 9
    np.testing.assert_array_equal(out, model.generate(prompts, 30, temperature=0.9, top_k=4, seed=3))
    long_prompt = rng.integers(0, 9, 20)                                  # longer than the context
    assert model.generate(long_prompt, 3).shape == (23,)
    assert model.training  # generate restores the mode


def test_generate_top_k_restricts_tokens(rng):
    model = _tiny_gpt(rng, v=9, ctx=8, n_layer=1)
    randomize(model, rng, 1.0)
    prompt = np.array([1, 2, 3])
    greedy = model.generate(prompt, 1, temperature=0.0)[-1]
    for s in range(20):
        assert model.generate(prompt, 1, top_k=1, seed=s)[-1] == greedy


def test_generate_bad_inputs(rng):
    model = _tiny_gpt(rng)
    with pytest.raises(ValueError, match="prompt_ids"):
        model.generate(np.array([], np.int64), 3)
    with pytest.raises(ValueError, match=r"\[0, 7\)"):
        model.generate(np.array([8]), 3)
    with pytest.raises(ValueError, match="temperature"):
        model.generate(np.array([1]), 3, temperature=-1.0)
    with pytest.raises(ValueError, match="top_k"):
        model.generate(np.array([1]), 3, top_k=0)


def test_bench_step_case_matches_torch_over_steps(rng):
    # the `nnforge bench train` gpt row's two models: the same loss on the same batches
    # for several AdamW steps (same init, same optimizer grouping and hyper-parameters)
    torch = pytest.importorskip("torch")
    from nnforge.bench.gpt_step import gpt_step_case
    case = gpt_step_case(vocab=17, context=16, n_layer=2, n_head=2, n_embd=32, batch_size=4, lr=1e-3,
                         seed=int(rng.integers(1 << 20)), torch=torch)
    k = 4 * 32  # the longest reduction (the MLP's hidden width)
    for step in range(4):
        a, b = case.nnforge_step(), case.torch_step()
        assert abs(a - b) <= 8 * EPS32 * k * (1 + abs(b)), f"step {step}: nnforge {a} torch {b}"


def test_forward_cached_refuses_before_touching_the_cache(rng):
    from nnforge.nn.attention import KVCache
    mha = nn.MultiheadAttention(16, 4, num_kv_heads=2, causal=True).eval()
    cache = KVCache(3, 2, 8, 4)
    mha.forward_cached(rng.standard_normal((3, 2, 16)).astype(np.float32), cache)
    k, v, n = cache.k.copy(), cache.v.copy(), cache.length
    for bad, exc in [(rng.standard_normal((1, 1, 16)).astype(np.float32), ValueError),   # batch 1 vs cache 3
                     (rng.standard_normal((3, 1, 12)).astype(np.float32), ValueError),   # wrong E
                     (rng.standard_normal((3, 1, 16)), TypeError),                       # float64
                     (rng.standard_normal((3, 7, 16)).astype(np.float32), ValueError)]:  # past capacity
        with pytest.raises(exc):
            mha.forward_cached(bad, cache)
        assert cache.length == n and np.array_equal(cache.k, k) and np.array_equal(cache.v, v)
