"""Fused flash-style attention (re-exported by nnforge.ops).

Shapes: q (B, H, Lq, D); k, v (B, Hkv, Lk, D) with H a multiple of Hkv (grouped-query
and multi-query attention). Any strides: a (B, L, H, D) array passes as
``x.transpose(0, 2, 1, 3)`` without a copy. D from 1 to 256. float32 only.

The kernel never forms the Lq x Lk score matrix: it walks key blocks with an online
softmax (FlashAttention-2), so memory beyond inputs and outputs is a few tiles per
thread. Results are bitwise identical for any thread count.
"""
from __future__ import annotations

from typing import Optional, Tuple, Union

import numpy as np

from . import _core

__all__ = ["attention", "attention_backward"]


def attention(q, k, v, *, causal: bool = False, scale: Optional[float] = None, mask=None,
              dropout_p: float = 0.0, return_lse: bool = False, out=None,
              seed: Optional[int] = None) -> Union[np.ndarray, Tuple[np.ndarray, np.ndarray]]:
    """softmax(scale * q k^T + mask) v per head; returns out (B, H, Lq, D) [, lse].

    scale: defaults to 1/sqrt(D).
    causal: query i attends keys j <= i + (Lk - Lq), i.e. the causal diagonal is aligned
        at the bottom right (as FlashAttention-2 does), so decoding the last Lq tokens
        against a cache of Lk keys is causal. Rows that see no key give zeros.
    mask: boolean (True = keep) or additive float32, broadcastable to (B, H, Lq, Lk)
        (broadcast axes are read with stride 0, never expanded). A row whose keys are all
        masked gives zeros, never NaN.
    dropout_p: dropout on the normalised attention weights (inverted: kept weights are
        scaled by 1/(1-p)). Needs ``seed``: the keep decision of (b, h, i, j) is a hash of
        (seed, b, h, i, j), independent of tiling and threads, so attention_backward with
        the same seed regenerates the same mask.
    return_lse: also return lse (B, H, Lq) float32, the natural-log log-sum-exp of each
        row's scaled, masked scores (-inf for a row with no key), which
        attention_backward needs.
    out: optional float32 (B, H, Lq, D) array to write (any strides, must not overlap
        the inputs).
    """
    return _core.attention(q, k, v, causal=causal, scale=scale, mask=mask, dropout_p=dropout_p,
                           return_lse=return_lse, out=out, seed=seed)


def attention_backward(dout, q, k, v, out, lse, *, causal: bool = False,
                       scale: Optional[float] = None, mask=None, dropout_p: float = 0.0,
                       seed: Optional[int] = None) -> Tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Gradients (dq, dk, dv) of attention given dout = dL/d out.

    out and lse are what attention(..., return_lse=True) returned for the same q, k, v
    and the same causal / scale / mask / dropout_p / seed; the probabilities are
    recomputed from lse, never stored. dk, dv have k's shape (summed over the query
    heads of each group for grouped-query attention).
    """
    return _core.attention_backward(dout, q, k, v, out, lse, causal=causal, scale=scale, mask=mask,
                                    dropout_p=dropout_p, seed=seed)
