"""Multi-head attention (self and cross, grouped-query) on nnforge.ops.attention.

x (B, L, E) -> one GEMM x @ W_qkv + b_qkv -> (B*L, (H + 2 Hkv) D); q, k and v are
(B, H, L, D) strided views of it (no copies: the kernel takes any strides). The
attention output is written through a transposed view straight into a (B, L, H, D)
buffer, so the output projection reads it as (B*L, E) without a copy. Backward mirrors
this: d(attention output) is a view of dy @ W_out^T, and dq, dk, dv land in one
(B, L, (H + 2 Hkv) D) buffer for the two QKV gradient GEMMs.

Generation keeps a preallocated key/value cache per layer (KVCache): each new token
costs one query row of attention (ops.attention with Lq = 1 and causal aligned at the
bottom right).
"""
from __future__ import annotations

from typing import Optional

import numpy as np

from .. import _random, ops
from .._args import flag_arg, float_arg
from ._checks import _check_grad, _float32_input, _need_forward, _positive_int
from .module import Module, Parameter

__all__ = ["KVCache", "MultiheadAttention"]


class KVCache:
    """Keys and values of one attention layer for generation: k, v (B, Hkv, capacity, D),
    allocated once; `length` positions are filled."""

    __slots__ = ("k", "v", "length")

    def __init__(self, batch: int, num_kv_heads: int, capacity: int, head_dim: int):
        self.k = np.zeros((batch, num_kv_heads, capacity, head_dim), np.float32)
        self.v = np.zeros_like(self.k)
        self.length = 0


class MultiheadAttention(Module):
    """Scaled dot-product attention with H query heads and Hkv = num_kv_heads key/value
    heads (Hkv divides H: multi-query when 1, grouped-query in between).

    forward(x) self-attention, forward(x, memory) cross-attention (q from x (B, Lq, E),
    k and v from memory (B, Lk, E)); key_padding_mask= a bool (B, Lk) (True = keep).
    causal=True: query i sees keys j <= i + (Lk - Lq). dropout: on the attention weights
    in training mode. Weights stored (in, out) like nn.Linear: w_qkv (E, (H + 2 Hkv) D)
    with q, k, v columns in that order, w_out (E, E); init N(0, 0.02), biases 0 (GPT-2).
    precision "bf16" (Module.set_precision): the projection GEMMs (forward and backward)
    on bf16-rounded operands; the attention core (ops.attention) stays float32.
    """

    def __init__(self, embed_dim: int, num_heads: int, *, num_kv_heads: Optional[int] = None,
                 causal: bool = False, dropout: float = 0.0, bias: bool = True):
        super().__init__()
        self.embed_dim = _positive_int(embed_dim, "embed_dim")
        self.num_heads = _positive_int(num_heads, "num_heads")
        self.num_kv_heads = self.num_heads if num_kv_heads is None else _positive_int(num_kv_heads, "num_kv_heads")
        if self.embed_dim % self.num_heads:
            raise ValueError(f"embed_dim {self.embed_dim} is not a multiple of num_heads {self.num_heads}")
        if self.num_heads % self.num_kv_heads:
            raise ValueError(f"num_heads {self.num_heads} is not a multiple of num_kv_heads {self.num_kv_heads}")
        self.head_dim = self.embed_dim // self.num_heads
        self.causal = flag_arg(causal, "causal", op="MultiheadAttention")
        self.dropout = float_arg(dropout, "dropout", low=0.0, high=1.0, high_open=True, op="MultiheadAttention")
        e, d = self.embed_dim, self.head_dim
        width = (self.num_heads + 2 * self.num_kv_heads) * d
        gen = _random.generator()
        self.w_qkv = Parameter(gen.normal(0.0, 0.02, (e, width)))
        self.b_qkv = Parameter(np.zeros(width, np.float32)) if bias else None
        self.w_out = Parameter(gen.normal(0.0, 0.02, (e, e)))
        self.b_out = Parameter(np.zeros(e, np.float32)) if bias else None
        self._cache = None
        # per instance, so a profiler (bench/gpt_step.py) can time each layer's kernel calls
        self._attn, self._attn_backward = ops.attention, ops.attention_backward

    # --- helpers ------------------------------------------------------------------
    def _heads(self, proj, b: int, l: int, first: int, count: int):
        """Heads [first, first + count) of a (B*L, n*D) projection as a (B, count, L, D) view."""
        d = self.head_dim
        return proj.reshape(b, l, -1, d)[:, :, first:first + count].transpose(0, 2, 1, 3)

    def _input(self, x, what: str):
        x = _float32_input(x, "MultiheadAttention")
        if x.ndim != 3 or x.shape[2] != self.embed_dim:
            raise ValueError(f"MultiheadAttention expected {what} of shape (B, L, {self.embed_dim}), got {x.shape}")
        return x

    def _mask(self, key_padding_mask, b: int, lk: int):
        if key_padding_mask is None:
            return None
        m = key_padding_mask
        if not isinstance(m, np.ndarray) or m.dtype != np.bool_ or m.shape != (b, lk):
            got = f"{m.dtype} {m.shape}" if isinstance(m, np.ndarray) else type(m).__name__
            raise ValueError(f"key_padding_mask must be a bool array of shape (B, Lk) = {(b, lk)}, got {got}")
        return m[:, None, None, :]  # broadcasts over heads and queries

    # --- forward / backward --------------------------------------------------------
    def forward(self, x, memory=None, *, key_padding_mask=None):
        """x (B, Lq, E) [, memory (B, Lk, E)] -> (B, Lq, E)."""
        x = self._input(x, "x")
        b, lq, e = x.shape
        h, hkv, d = self.num_heads, self.num_kv_heads, self.head_dim
        wq, bq = self.w_qkv.data, None if self.b_qkv is None else self.b_qkv.data
        x2 = x.reshape(b * lq, e)
        if memory is None:
            lk, m2 = lq, None
            qkv = ops.matmul(x2, wq, bias=bq, precision=self.precision)   # (B*L, (H + 2Hkv) D): one GEMM
            q = self._heads(qkv, b, lq, 0, h)
            k = self._heads(qkv, b, lq, h, hkv)
            v = self._heads(qkv, b, lq, h + hkv, hkv)
            proj = (qkv,)
        else:
            memory = self._input(memory, "memory")
            if memory.shape[0] != b:
                raise ValueError(f"MultiheadAttention: x {x.shape} and memory {memory.shape} differ in batch size")
            lk = memory.shape[1]
            m2 = memory.reshape(b * lk, e)
            qp = ops.matmul(x2, wq[:, :h * d], bias=None if bq is None else bq[:h * d],
                            precision=self.precision)
            kvp = ops.matmul(m2, wq[:, h * d:], bias=None if bq is None else bq[h * d:],
                             precision=self.precision)
            q = self._heads(qp, b, lq, 0, h)
            k = self._heads(kvp, b, lk, 0, hkv)
            v = self._heads(kvp, b, lk, hkv, hkv)
            proj = (qp, kvp)
        mask = self._mask(key_padding_mask, b, lk)
        p = self.dropout if self.training else 0.0
        seed = _random.next_seed() if p > 0.0 else None
        ctx = np.empty((b, lq, h, d), np.float32)                   # (B, L, H, D): the out-proj's input
        _, lse = self._attn(q, k, v, causal=self.causal, mask=mask, dropout_p=p, return_lse=True,
                            out=ctx.transpose(0, 2, 1, 3), seed=seed)
        ctx2 = ctx.reshape(b * lq, e)
        y = ops.matmul(ctx2, self.w_out.data, bias=None if self.b_out is None else self.b_out.data,
                       precision=self.precision)
        self._cache = (x2, m2, proj, q, k, v, ctx, lse, mask, p, seed, (b, lq, lk))
        return y.reshape(b, lq, e)

    def backward(self, grad_out):
        """dy (B, Lq, E) -> dx, or (dx, dmemory) after a cross-attention forward."""
        x2, m2, proj, q, k, v, ctx, lse, mask, p, seed, (b, lq, lk) = _need_forward(self._cache, "MultiheadAttention")
        e, h, hkv, d = self.embed_dim, self.num_heads, self.num_kv_heads, self.head_dim
        dy = _check_grad(grad_out, (b, lq, e), "MultiheadAttention").reshape(b * lq, e)
        ctx2 = ctx.reshape(b * lq, e)
        ops.matmul(ctx2.T, dy, out=self.w_out.grad, beta=1.0, precision=self.precision)     # dW_out += ctx^T dy
        if self.b_out is not None:
            ops.sum_rows(dy, self.b_out.grad, accumulate=True)
        dctx = ops.matmul(dy, self.w_out.data.T, precision=self.precision)  # (B*L, E) = (B, L, H, D)
        dout = dctx.reshape(b, lq, h, d).transpose(0, 2, 1, 3)
        dq, dk, dv = self._attn_backward(dout, q, k, v, ctx.transpose(0, 2, 1, 3), lse, causal=self.causal,
                                         mask=mask, dropout_p=p, seed=seed)
        wq = self.w_qkv.data
        if m2 is None:
            dqkv = np.empty((b, lq, h + 2 * hkv, d), np.float32)
            dqkv[:, :, :h] = dq.transpose(0, 2, 1, 3)
            dqkv[:, :, h:h + hkv] = dk.transpose(0, 2, 1, 3)
            dqkv[:, :, h + hkv:] = dv.transpose(0, 2, 1, 3)
            dqkv = dqkv.reshape(b * lq, -1)
            ops.matmul(x2.T, dqkv, out=self.w_qkv.grad, beta=1.0, precision=self.precision)
            if self.b_qkv is not None:
                ops.sum_rows(dqkv, self.b_qkv.grad, accumulate=True)
            return ops.matmul(dqkv, wq.T, precision=self.precision).reshape(b, lq, e)
        dqp = np.ascontiguousarray(dq.transpose(0, 2, 1, 3)).reshape(b * lq, h * d)
        dkv = np.empty((b, lk, 2 * hkv, d), np.float32)
        dkv[:, :, :hkv] = dk.transpose(0, 2, 1, 3)
        dkv[:, :, hkv:] = dv.transpose(0, 2, 1, 3)
        dkv = dkv.reshape(b * lk, -1)
        ops.matmul(x2.T, dqp, out=self.w_qkv.grad[:, :h * d], beta=1.0, precision=self.precision)
        ops.matmul(m2.T, dkv, out=self.w_qkv.grad[:, h * d:], beta=1.0, precision=self.precision)
        if self.b_qkv is not None:
            ops.sum_rows(dqp, self.b_qkv.grad[:h * d], accumulate=True)
            ops.sum_rows(dkv, self.b_qkv.grad[h * d:], accumulate=True)
        dx = ops.matmul(dqp, wq[:, :h * d].T, precision=self.precision).reshape(b, lq, e)
        dm = ops.matmul(dkv, wq[:, h * d:].T, precision=self.precision).reshape(b, lk, e)
        return dx, dm

    # --- generation -------------------------------------------------------------------
    def new_cache(self, batch: int, capacity: int) -> KVCache:
        return KVCache(batch, self.num_kv_heads, capacity, self.head_dim)

    def forward_cached(self, x, cache: KVCache):
        """Self-attention of new positions x (B, T, E) against everything cached so far, in
        eval mode (no dropout, nothing kept for backward); appends their keys and values.
        Everything is checked before the cache is touched, so a refused call leaves it as it was."""
        x = self._input(x, "x")
        b, t, e = x.shape
        h, hkv = self.num_heads, self.num_kv_heads
        want = (b, hkv, cache.k.shape[2], self.head_dim)
        if cache.k.shape != want or cache.v.shape != want:
            raise ValueError(f"MultiheadAttention.forward_cached: the cache holds k {cache.k.shape}, v "
                             f"{cache.v.shape}; x {x.shape} needs (B, Hkv, capacity, D) = {want}")
        n = cache.length
        if n + t > cache.k.shape[2]:
            raise ValueError(f"KVCache holds {cache.k.shape[2]} positions; {n} used, {t} more requested")
        qkv = ops.matmul(x.reshape(b * t, e), self.w_qkv.data, bias=None if self.b_qkv is None else self.b_qkv.data,
                         precision=self.precision)
        cache.k[:, :, n:n + t] = self._heads(qkv, b, t, h, hkv)
        cache.v[:, :, n:n + t] = self._heads(qkv, b, t, h + hkv, hkv)
        cache.length = n + t
        ctx = np.empty((b, t, h, self.head_dim), np.float32)
        self._attn(self._heads(qkv, b, t, 0, h), cache.k[:, :, :n + t], cache.v[:, :, :n + t], causal=True,
                   out=ctx.transpose(0, 2, 1, 3))
        y = ops.matmul(ctx.reshape(b * t, e), self.w_out.data, bias=None if self.b_out is None else self.b_out.data,
                       precision=self.precision)
        return y.reshape(b, t, e)

    def extra_repr(self) -> str:
        kv = f", num_kv_heads={self.num_kv_heads}" if self.num_kv_heads != self.num_heads else ""
        return (f"embed_dim={self.embed_dim}, num_heads={self.num_heads}{kv}, causal={self.causal}, "
                f"dropout={self.dropout}, bias={self.b_qkv is not None}")
