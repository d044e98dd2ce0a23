"""TransformerBlock (pre-LayerNorm) and its generation-time path.

    x1 = x + dropout(attn(ln1(x)))
    y  = x1 + dropout(fc2(gelu_tanh(fc1(ln2(x1)))))      fc1: E -> 4E, fc2: 4E -> E

Activations are (B, L, E); LayerNorm and the MLP read them as (B*L, E) views. The
residual adds are done in place into the branch outputs (fresh arrays the branch
returns), so a block allocates no extra activation for its skips.
"""
from __future__ import annotations

from typing import Optional

import numpy as np

from .. import ops
from ._checks import _float32_input, _need_forward, _positive_int
from .attention import KVCache, MultiheadAttention
from .layers import Dropout, Linear
from .module import Module
from .norm import LayerNorm

__all__ = ["TransformerBlock"]


class TransformerBlock(Module):
    """Pre-LN transformer block: attention (causal by default, as in a GPT) and a GELU
    (tanh approximation, GPT-2's) MLP of width mlp_ratio * E, each with a residual and
    dropout on the branch output."""

    def __init__(self, embed_dim: int, num_heads: int, *, num_kv_heads: Optional[int] = None,
                 causal: bool = True, dropout: float = 0.0, mlp_ratio: int = 4, bias: bool = True):
        super().__init__()
        e = _positive_int(embed_dim, "embed_dim")
        hidden = e * _positive_int(mlp_ratio, "mlp_ratio")
        self.embed_dim = e
        self.ln1 = LayerNorm(e)
        self.attn = MultiheadAttention(e, num_heads, num_kv_heads=num_kv_heads, causal=causal, dropout=dropout,
                                       bias=bias)
        self.drop1 = Dropout(dropout)
        self.ln2 = LayerNorm(e)
        self.fc1 = Linear(e, hidden, bias=bias, activation="gelu_tanh")
        self.fc2 = Linear(hidden, e, bias=bias)
        self.drop2 = Dropout(dropout)
        self._shape = None

    def forward(self, x):
        """x (B, L, E) -> (B, L, E)."""
        x = _float32_input(x, "TransformerBlock")
        if x.ndim != 3 or x.shape[2] != self.embed_dim:
            raise ValueError(f"TransformerBlock expected input of shape (B, L, {self.embed_dim}), got {x.shape}")
        b, l, e = x.shape
        self._shape = x.shape
        h = self.ln1.forward(x.reshape(b * l, e)).reshape(b, l, e)
        x1 = self.drop1.forward(self.attn.forward(h))
        x1 += x                                                    # x1 is the branch's fresh output
        m = self.fc2.forward(self.fc1.forward(self.ln2.forward(x1.reshape(b * l, e))))
        y = self.drop2.forward(m)
        y += x1.reshape(b * l, e)
        return y.reshape(b, l, e)

    def backward(self, grad_out):
        """dy (B, L, E) -> dx (B, L, E); dy is not modified."""
        b, l, e = _need_forward(self._shape, "TransformerBlock")
        if not isinstance(grad_out, np.ndarray) or grad_out.shape != (b, l, e):
            got = grad_out.shape if isinstance(grad_out, np.ndarray) else type(grad_out).__name__
            raise ValueError(f"TransformerBlock.backward expects grad_out of shape {(b, l, e)}, got {got}")
        dy = grad_out.reshape(b * l, e)
        dx1 = self.ln2.backward(self.fc1.backward(self.fc2.backward(self.drop2.backward(dy))))
        dx1 += dy                                                  # a fresh array from LayerNorm.backward
        dh = self.attn.backward(self.drop1.backward(dx1.reshape(b, l, e)))
        dx = self.ln1.backward(dh.reshape(b * l, e))
        dx += dx1
        return dx.reshape(b, l, e)

    def forward_cached(self, x, cache: KVCache):
        """Eval-mode forward of new positions x (B, T, E) with the attention's key/value
        cache (the same arithmetic as forward, nothing kept for backward)."""
        b, t, e = x.shape
        x2 = x.reshape(b * t, e)
        h, _, _ = ops.layer_norm(x2, self.ln1.weight.data, self.ln1.bias.data, self.ln1.eps)
        x1 = self.attn.forward_cached(h.reshape(b, t, e), cache).reshape(b * t, e)
        x1 += x2
        h2, _, _ = ops.layer_norm(x1, self.ln2.weight.data, self.ln2.bias.data, self.ln2.eps)
        b1 = None if self.fc1.bias is None else self.fc1.bias.data
        b2 = None if self.fc2.bias is None else self.fc2.bias.data
        z = ops.gelu(ops.matmul(h2, self.fc1.weight.data, bias=b1, precision=self.fc1.precision), "tanh")
        y = ops.matmul(z, self.fc2.weight.data, bias=b2, precision=self.fc2.precision)
        y += x1
        return y.reshape(b, t, e)

    def extra_repr(self) -> str:
        return f"embed_dim={self.embed_dim}"
