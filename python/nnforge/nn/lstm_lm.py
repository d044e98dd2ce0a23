"""LSTMLanguageModel: token embedding -> multi-layer LSTM -> Linear head, with a fused
cross-entropy (as nn.GPT) and a carried state for truncated BPTT.

    idx (B, T) int -> x (T, B, E) (the embedding of idx^T: time-major, no transposed copy
    of floats) -> LSTM -> y (T, B, H) -> [dropout] -> logits (T*B, V) = y W + b

loss(idx, targets, state=None) -> mean cross-entropy; the final state is kept in
.final_state (a constant for the next window: pass it as the next call's state).
"""
from __future__ import annotations

from typing import Optional

import numpy as np

from .. import ops
from ._checks import _need_forward, _positive_int
from .layers import Dropout, Embedding, Linear
from .module import Module
from .rnn import LSTM
from .sampling import check_generate, sample

__all__ = ["LSTMLanguageModel"]


class LSTMLanguageModel(Module):
    """forward(idx, state=None) -> (logits (B, T, V), (h_n, c_n)); backward(dlogits=None)
    accumulates parameter gradients (None: the last loss()'s gradient) and returns None
    (token ids and the carried state pass no gradient back)."""

    def __init__(self, vocab_size: int, n_embd: int = 64, hidden_size: int = 256, num_layers: int = 2, *,
                 dropout: float = 0.0):
        super().__init__()
        self.vocab_size = _positive_int(vocab_size, "vocab_size")
        self.n_embd = _positive_int(n_embd, "n_embd")
        self.hidden_size = _positive_int(hidden_size, "hidden_size")
        self.num_layers = _positive_int(num_layers, "num_layers")
        self.embed = Embedding(self.vocab_size, self.n_embd)
        self.lstm = LSTM(self.n_embd, self.hidden_size, self.num_layers, dropout=dropout)
        self.drop = Dropout(dropout)
        self.head = Linear(self.hidden_size, self.vocab_size)
        self.final_state = None
        self._shape = None
        self._dlogits = None

    def _ids(self, idx) -> np.ndarray:
        if not isinstance(idx, np.ndarray) or idx.dtype.kind not in "iu" or idx.ndim != 2 or 0 in idx.shape:
            got = f"{idx.dtype} {idx.shape}" if isinstance(idx, np.ndarray) else type(idx).__name__
            raise TypeError(f"LSTMLanguageModel expects token ids as a non-empty 2-D integer array (B, T), got {got}")
        return idx

    def _logits(self, idx, state) -> np.ndarray:
        """idx (B, T) -> time-major logits (T*B, V); sets final_state."""
        b, t = idx.shape
        x = self.embed.forward(np.ascontiguousarray(idx.T))                   # (T, B, E)
        y, self.final_state = self.lstm.forward(x, state)
        y = self.drop.forward(y)
        self._shape = (b, t, state is not None)
        self._dlogits = None
        return self.head.forward(y.reshape(t * b, self.hidden_size))

    def forward(self, idx, state=None):
        """idx (B, T) -> (logits (B, T, V), (h_n, c_n))."""
        idx = self._ids(idx)
        b, t = idx.shape
        logits = self._logits(idx, state).reshape(t, b, self.vocab_size).transpose(1, 0, 2)
        return logits, self.final_state

    def loss(self, idx, targets, state=None) -> float:
        """Mean next-token cross-entropy of logits(idx) against targets (B, T)."""
        idx = self._ids(idx)
        if not isinstance(targets, np.ndarray) or targets.shape != idx.shape or targets.dtype.kind not in "iu":
            got = f"{targets.dtype} {targets.shape}" if isinstance(targets, np.ndarray) else type(targets).__name__
            raise ValueError(f"LSTMLanguageModel.loss: targets must be integers of the ids' shape {idx.shape}, "
                             f"got {got}")
        logits = self._logits(idx, state)
        tgt = np.ascontiguousarray(targets.T, dtype=np.int64).reshape(-1)    # time-major, as the logits
        loss, dlogits = ops.cross_entropy(logits, tgt, return_grad=True, out=logits)
        self._dlogits = dlogits
        return float(loss)

    def backward(self, grad_out=None):
        """dlogits (B, T, V) or None (the last loss()'s gradient) -> None."""
        b, t, had_state = _need_forward(self._shape, "LSTMLanguageModel")
        if grad_out is None:
            dl = _need_forward(self._dlogits, "LSTMLanguageModel (loss)")
        else:
            if not isinstance(grad_out, np.ndarray) or grad_out.shape != (b, t, self.vocab_size):
                got = grad_out.shape if isinstance(grad_out, np.ndarray) else type(grad_out).__name__
                raise ValueError(f"LSTMLanguageModel.backward expects dlogits of shape {(b, t, self.vocab_size)}, "
                                 f"got {got}")
            dl = np.ascontiguousarray(grad_out.transpose(1, 0, 2)).reshape(t * b, self.vocab_size)
        self._dlogits = None
        dy = self.drop.backward(self.head.backward(dl).reshape(t, b, self.hidden_size))
        dx = self.lstm.backward(dy)
        self.embed.backward(dx[0] if had_state else dx)
        return None

    def generate(self, prompt_ids, max_new_tokens: int, *, temperature: float = 1.0, top_k: Optional[int] = None,
                 seed: Optional[int] = None) -> np.ndarray:
        """Sample max_new_tokens after prompt_ids ((T,) or (B, T) ints): the prompt runs
        through once, then one LSTM step per new token on the carried state. Returns the
        prompt followed by the new ids, with the prompt's shape; temperature 0 is greedy."""
        ids, single, n_new = check_generate(prompt_ids, self.vocab_size, max_new_tokens, temperature, top_k)
        rng = np.random.default_rng(seed)
        was_training = self.training
        self.eval()
        out = np.empty((ids.shape[0], ids.shape[1] + n_new), np.int64)
        out[:, :ids.shape[1]] = ids
        n = ids.shape[1]
        try:
            state, feed = None, ids
            for _ in range(n_new):
                logits = self._logits(feed, state).reshape(feed.shape[1], feed.shape[0], self.vocab_size)[-1]
                state = self.final_state
                out[:, n] = sample(logits, temperature, top_k, rng)
                feed = out[:, n:n + 1]
                n += 1
        finally:
            self._shape = self._dlogits = None  # generation keeps nothing for backward
            self.train(was_training)
        return out[0] if single else out

    def extra_repr(self) -> str:
        return (f"vocab_size={self.vocab_size}, n_embd={self.n_embd}, hidden_size={self.hidden_size}, "
                f"num_layers={self.num_layers}")
