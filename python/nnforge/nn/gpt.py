"""GPT: token + learned position embeddings, pre-LN TransformerBlocks, final LayerNorm,
an output head tied to the token embedding, and a fused cross-entropy.

    idx (B, T) int -> x (B, T, E) -> blocks -> ln_f -> logits (B*T, V) = h @ wte^T

loss(idx, targets) runs ops.cross_entropy once for the loss and dlogits together,
writing dlogits over the logits (out=logits), so only one logits-sized buffer ever
exists. generate() samples with a key/value cache per layer.
set_precision("bf16"): the attention projections, the MLP and the output head run their
GEMMs on bf16-rounded operands (float32 accumulation); embeddings, LayerNorm, the
attention core and the loss stay float32.
Init as GPT-2 / nanoGPT: weights N(0, 0.02), the residual projections (attention out,
fc2) N(0, 0.02 / sqrt(2 n_layer)), biases 0, LayerNorm 1 / 0.
"""
from __future__ import annotations

import math
from typing import Optional

import numpy as np

from .. import _random, ops
from ._checks import _need_forward, _positive_int
from .layers import Dropout, Embedding
from .module import Module, Parameter
from .norm import LayerNorm
from .sampling import check_generate, sample
from .transformer import TransformerBlock

__all__ = ["GPT"]


class GPT(Module):
    """A decoder-only transformer language model.

    forward(idx) -> logits (B, T, V); backward(dlogits=None) accumulates parameter
    gradients (None: the gradient left by the last loss()) and returns None (token ids
    have no gradient). loss(idx, targets) -> mean cross-entropy (a float).
    """

    def __init__(self, vocab_size: int, context: int, n_layer: int, n_head: int, n_embd: int, *,
                 dropout: float = 0.0, tie_weights: bool = True, bias: bool = True):
        super().__init__()
        self.vocab_size = _positive_int(vocab_size, "vocab_size")
        self.context = _positive_int(context, "context")
        self.n_layer = _positive_int(n_layer, "n_layer")
        self.n_head = _positive_int(n_head, "n_head")
        self.n_embd = _positive_int(n_embd, "n_embd")
        self.tie_weights = bool(tie_weights)
        self.wte = Embedding(self.vocab_size, self.n_embd)
        self.wpe = Embedding(self.context, self.n_embd)
        self.drop = Dropout(dropout)
        for i in range(self.n_layer):
            setattr(self, f"h{i}", TransformerBlock(self.n_embd, self.n_head, causal=True, dropout=dropout, bias=bias))
        self.ln_f = LayerNorm(self.n_embd)
        if not self.tie_weights:
            self.lm_head = Parameter(np.zeros((self.n_embd, self.vocab_size), np.float32))
        self._init_weights()
        self._cache = None
        self._dlogits = None

    @property
    def blocks(self) -> list[TransformerBlock]:
        return [getattr(self, f"h{i}") for i in range(self.n_layer)]

    def _init_weights(self) -> None:
        gen = _random.generator()
        resid = 0.02 / math.sqrt(2 * self.n_layer)
        for name, p in self.named_parameters():
            if p.data.ndim == 2:
                std = resid if name.endswith(("attn.w_out", "fc2.weight")) else 0.02
                p.data[...] = gen.normal(0.0, std, p.shape)
            elif not name.endswith(("ln1.weight", "ln2.weight", "ln_f.weight")):
                p.data.fill(0.0)  # biases (LayerNorm scales stay 1)

    def _head(self) -> np.ndarray:
        """The output projection (E, V): wte^T (a view) when tied."""
        return self.wte.weight.data.T if self.tie_weights else self.lm_head.data

    def _ids(self, idx) -> np.ndarray:
        if not isinstance(idx, np.ndarray) or idx.dtype.kind not in "iu" or idx.ndim != 2:
            got = f"{idx.dtype} {idx.shape}" if isinstance(idx, np.ndarray) else type(idx).__name__
            raise TypeError(f"GPT expects token ids as a 2-D integer array (B, T), got {got}")
        if not 1 <= idx.shape[1] <= self.context:
            raise ValueError(f"GPT: sequence length {idx.shape[1]} is outside [1, context={self.context}]")
        return idx

    # --- training --------------------------------------------------------------------
    def forward(self, idx):
        """idx (B, T) -> logits (B, T, V)."""
        return self._forward(self._ids(idx)).reshape(*idx.shape, self.vocab_size)

    def _forward(self, idx) -> np.ndarray:
        b, t = idx.shape
        x = self.wte.forward(idx)                                  # (B, T, E), a fresh gather
        x += self.wpe.weight.data[:t]
        x = self.drop.forward(x)
        for blk in self.blocks:
            x = blk.forward(x)
        h = self.ln_f.forward(x.reshape(b * t, self.n_embd))
        self._cache = (h, (b, t))
        self._dlogits = None
        return ops.matmul(h, self._head(), precision=self.precision)  # (B*T, V)

    def loss(self, idx, targets) -> float:
        """Mean next-token cross-entropy of logits(idx) against targets (B, T); keeps only
        dlogits (written by the same kernel pass) for backward()."""
        idx = self._ids(idx)
        if not isinstance(targets, np.ndarray) or targets.shape != idx.shape or targets.dtype.kind not in "iu":
            got = f"{targets.dtype} {targets.shape}" if isinstance(targets, np.ndarray) else type(targets).__name__
            raise ValueError(f"GPT.loss: targets must be integers of the ids' shape {idx.shape}, got {got}")
        if targets.dtype not in (np.int64, np.int32):
            targets = targets.astype(np.int64)
        logits = self._forward(idx)
        # dlogits overwrite the logits in the same pass: one logits-sized buffer, not two
        loss, dlogits = ops.cross_entropy(logits, targets.reshape(-1), return_grad=True, out=logits)
        del logits
        self._dlogits = dlogits
        return float(loss)

    def backward(self, grad_out=None):
        """dlogits (B, T, V) or None (the last loss()'s gradient) -> None."""
        h, (b, t) = _need_forward(self._cache, "GPT")
        if grad_out is None:
            dl = _need_forward(self._dlogits, "GPT (loss)")
        else:
            if not isinstance(grad_out, np.ndarray) or grad_out.shape != (b, t, self.vocab_size):
                got = grad_out.shape if isinstance(grad_out, np.ndarray) else type(grad_out).__name__
                raise ValueError(f"GPT.backward expects dlogits of shape {(b, t, self.vocab_size)}, got {got}")
            dl = grad_out.reshape(b * t, self.vocab_size)
        if self.tie_weights:  # logits = h @ wte^T: dwte += dl^T h
            ops.matmul(dl.T, h, out=self.wte.weight.grad, beta=1.0, precision=self.precision)
        else:
            ops.matmul(h.T, dl, out=self.lm_head.grad, beta=1.0, precision=self.precision)
        dh = ops.matmul(dl, self._head().T, precision=self.precision)  # (B*T, E)
        self._dlogits = None
        dx = self.ln_f.backward(dh).reshape(b, t, self.n_embd)
        for blk in reversed(self.blocks):
            dx = blk.backward(dx)
        dx = self.drop.backward(dx)
        self.wte.backward(dx)
        # position rows 0..t-1 get the gradient summed over the batch
        ops.sum_rows(dx.reshape(b, t * self.n_embd), self.wpe.weight.grad[:t].reshape(-1), accumulate=True)
        return None

    # --- generation --------------------------------------------------------------------
    def _logits_cached(self, idx, caches) -> np.ndarray:
        """Run new ids (B, T) through the cached path; logits of the last position (B, V)."""
        b, t = idx.shape
        start = caches[0].length
        x = self.wte.weight.data[idx] + self.wpe.weight.data[start:start + t]
        for blk, cache in zip(self.blocks, caches):
            x = blk.forward_cached(x, cache)
        last = np.ascontiguousarray(x[:, -1])
        h, _, _ = ops.layer_norm(last, self.ln_f.weight.data, self.ln_f.bias.data, self.ln_f.eps)
        return ops.matmul(h, self._head(), precision=self.precision)

    def _logits_full(self, idx) -> np.ndarray:
        logits = self._forward(idx)
        self._cache = None  # generation keeps nothing for backward
        return logits.reshape(*idx.shape, self.vocab_size)[:, -1]

    def generate(self, prompt_ids, max_new_tokens: int, *, temperature: float = 1.0, top_k: Optional[int] = None,
                 seed: Optional[int] = None, use_cache: bool = True) -> np.ndarray:
        """Sample max_new_tokens after prompt_ids ((T,) or (B, T) ints); returns the prompt
        followed by the new ids, with the prompt's shape. temperature 0 is greedy; top_k
        keeps the k most likely tokens. With use_cache (default) each new token costs one
        query row of attention per layer; when the context fills up the cache restarts from
        the last context // 2 tokens (use_cache=False re-runs the last `context` tokens
        every step instead)."""
        ids, single, n_new = check_generate(prompt_ids, self.vocab_size, max_new_tokens, temperature, top_k)
        rng = np.random.default_rng(seed)
        was_training = self.training
        self.eval()
        out = np.empty((ids.shape[0], ids.shape[1] + n_new), np.int64)
        out[:, :ids.shape[1]] = ids
        n = ids.shape[1]
        try:
            caches = None
            for _ in range(n_new):
                if not use_cache:
                    logits = self._logits_full(out[:, max(0, n - self.context):n])
                elif caches is None or caches[0].length >= self.context:
                    keep = min(n, self.context) if caches is None else max(1, self.context // 2)
                    caches = [blk.attn.new_cache(ids.shape[0], self.context) for blk in self.blocks]
                    logits = self._logits_cached(out[:, n - keep:n], caches)
                else:
                    logits = self._logits_cached(out[:, n - 1:n], caches)
                out[:, n] = sample(logits, temperature, top_k, rng)
                n += 1
        finally:
            self.train(was_training)
        return out[0] if single else out

    def extra_repr(self) -> str:
        return (f"vocab_size={self.vocab_size}, context={self.context}, n_layer={self.n_layer}, "
                f"n_head={self.n_head}, n_embd={self.n_embd}, tie_weights={self.tie_weights}")

