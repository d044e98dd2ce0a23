"""Sampling for the language models' generate() (nn.GPT, nn.LSTMLanguageModel): one
argument check and one draw rule for both."""
from __future__ import annotations

from typing import Optional

import numpy as np

__all__ = ["check_generate", "sample"]


def check_generate(prompt_ids, vocab_size: int, max_new_tokens, temperature, top_k):
    """-> (ids (B, T) int, single: the prompt was (T,), n_new); ValueError on bad arguments."""
    ids = np.asarray(prompt_ids)
    single = ids.ndim == 1
    ids = ids[None] if single else ids
    if ids.ndim != 2 or ids.dtype.kind not in "iu" or ids.shape[1] < 1:
        raise ValueError(f"generate: prompt_ids must be a non-empty (T,) or (B, T) integer array, got "
                         f"{ids.dtype} {ids.shape}")
    if ids.size and (ids.min() < 0 or ids.max() >= vocab_size):
        raise ValueError(f"generate: prompt ids must be in [0, {vocab_size})")
    n_new = int(max_new_tokens)
    if n_new < 0:
        raise ValueError(f"generate: max_new_tokens must be >= 0, got {max_new_tokens!r}")
    if not (temperature >= 0.0):
        raise ValueError(f"generate: temperature must be >= 0, got {temperature!r}")
    if top_k is not None and not (isinstance(top_k, (int, np.integer)) and top_k >= 1):
        raise ValueError(f"generate: top_k must be a positive int or None, got {top_k!r}")
    return ids, single, n_new


def sample(logits: np.ndarray, temperature: float, top_k: Optional[int], rng) -> np.ndarray:
    """One id per row of logits (B, V): argmax at temperature 0, else a draw from
    softmax(logits / temperature) restricted to the top_k largest."""
    z = logits.astype(np.float64)
    if temperature == 0.0 or top_k == 1:
        return z.argmax(axis=1)
    z = z / temperature
    if top_k is not None and top_k < z.shape[1]:
        kth = np.partition(z, -top_k, axis=1)[:, -top_k][:, None]
        z = np.where(z < kth, -np.inf, z)
    p = np.exp(z - z.max(axis=1, keepdims=True))
    c = np.cumsum(p, axis=1)
    u = rng.random(z.shape[0]) * c[:, -1]
    return np.minimum((c < u[:, None]).sum(axis=1), z.shape[1] - 1)
