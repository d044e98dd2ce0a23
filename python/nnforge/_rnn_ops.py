"""Fused LSTM, GRU and Elman-RNN layers with backpropagation through time (re-exported by
nnforge.ops). One layer, one direction per call; stack and concatenate for more.

Shapes follow PyTorch, so weights move across unchanged:
  x (T, B, I); h0, c0 (B, H) or None (zeros); y (T, B, H); h_n, c_n (B, H);
  w_ih (G*H, I), w_hh (G*H, H), b_ih, b_hh (G*H,) or None (no bias).
  LSTM G = 4, gates i, f, g, o:  c' = f c + i g, h' = o tanh(c').
  GRU  G = 3, gates r, z, n:     n = tanh(W_in x + b_in + r * (W_hn h + b_hn)),
                                 h' = (1 - z) n + z h  (exactly PyTorch's GRU).
  RNN  G = 1:                    h' = act(W_ih x + b_ih + W_hh h + b_hh), act tanh or relu.
float32 only; any strides (a batch_first (B, T, I) array passes as x.transpose(1, 0, 2)).
T, B and H must be >= 1; I = 0 is allowed.

lengths: optional (B,) int64 in [1, T] for padded batches, in any order. Sequence b runs
only for t < lengths[b]: y is 0 at t >= lengths[b], h_n / c_n are the state after its
own last step, and gradients equal those of running each sequence alone. With
reverse=True a sequence runs from its own last valid step down to 0 (PyTorch's packed
bidirectional semantics), its outputs written at the input positions.

The workspace (training) is a float32 (T, B, K*H) array in position order, zero at
t >= lengths[b], holding exactly what backward needs:
  LSTM K = 5: [i, f, g, o, c]  post-activation gates and the cell state after the step
  GRU  K = 4: [r, z, n, W_hn h + b_hn]
  RNN  K = 1: [h]              the step's output
Backward checks its shape against x and w_hh. Inference (return_workspace=False)
stores none.

Kernels: the input projection of all steps is one GEMM before the time loop; each step
does h @ w_hh^T on w_hh packed per block of 16 hidden units (all gates of a unit in one
thread's tile) with the cell update fused on the tile, one barrier per step; backward
mirrors that and forms dW_ih, dW_hh, dx, db as merged GEMMs / column sums over all steps.
Results are bitwise identical for any thread count.
"""
from __future__ import annotations

from typing import Optional, Tuple

import numpy as np

from . import _core

__all__ = ["gru", "gru_backward", "lstm", "lstm_backward", "rnn", "rnn_backward"]


def lstm(x, h0, c0, w_ih, w_hh, b_ih=None, b_hh=None, *, lengths=None, reverse: bool = False,
         return_workspace: bool = True) -> Tuple[np.ndarray, np.ndarray, np.ndarray, Optional[np.ndarray]]:
    """One LSTM layer over x (T, B, I): returns (y, h_n, c_n, workspace) (see the module doc);
    workspace is None when return_workspace=False."""
    return _core.rnn_forward("lstm", x, h0, c0, w_ih, w_hh, b_ih, b_hh, lengths=lengths, reverse=reverse,
                             return_workspace=return_workspace)


def lstm_backward(dy, dh_n, dc_n, x, h0, c0, w_ih, w_hh, workspace, b_ih=None, b_hh=None, *, lengths=None,
                  reverse: bool = False):
    """Gradients of lstm given dy = dL/dy (T, B, H), dh_n, dc_n = dL/dh_n, dL/dc_n (B, H); any of
    the three may be None (zero). Pass the forward's inputs and its workspace. Returns
    (dx, dh0, dc0, dw_ih, dw_hh, db_ih, db_hh), db_* None where the forward had no bias."""
    return _core.rnn_backward("lstm", dy, dh_n, dc_n, x, h0, c0, w_ih, w_hh, workspace, b_ih, b_hh,
                              lengths=lengths, reverse=reverse)


def gru(x, h0, w_ih, w_hh, b_ih=None, b_hh=None, *, lengths=None, reverse: bool = False,
        return_workspace: bool = True) -> Tuple[np.ndarray, np.ndarray, Optional[np.ndarray]]:
    """One GRU layer over x (T, B, I): returns (y, h_n, workspace)."""
    return _core.rnn_forward("gru", x, h0, None, w_ih, w_hh, b_ih, b_hh, lengths=lengths, reverse=reverse,
                             return_workspace=return_workspace)


def gru_backward(dy, dh_n, x, h0, w_ih, w_hh, workspace, b_ih=None, b_hh=None, *, lengths=None,
                 reverse: bool = False):
    """Gradients of gru: returns (dx, dh0, dw_ih, dw_hh, db_ih, db_hh)."""
    return _core.rnn_backward("gru", dy, dh_n, None, x, h0, None, w_ih, w_hh, workspace, b_ih, b_hh,
                              lengths=lengths, reverse=reverse)


def rnn(x, h0, w_ih, w_hh, b_ih=None, b_hh=None, *, nonlinearity: str = "tanh", lengths=None,
        reverse: bool = False, return_workspace: bool = True) -> Tuple[np.ndarray, np.ndarray, Optional[np.ndarray]]:
    """One Elman RNN layer (nonlinearity "tanh" or "relu") over x (T, B, I): returns (y, h_n, workspace)."""
    return _core.rnn_forward("rnn", x, h0, None, w_ih, w_hh, b_ih, b_hh, lengths=lengths, reverse=reverse,
                             return_workspace=return_workspace, nonlinearity=nonlinearity)


def rnn_backward(dy, dh_n, x, h0, w_ih, w_hh, workspace, b_ih=None, b_hh=None, *, nonlinearity: str = "tanh",
                 lengths=None, reverse: bool = False):
    """Gradients of rnn: returns (dx, dh0, dw_ih, dw_hh, db_ih, db_hh)."""
    return _core.rnn_backward("rnn", dy, dh_n, None, x, h0, None, w_ih, w_hh, workspace, b_ih, b_hh,
                              lengths=lengths, reverse=reverse, nonlinearity=nonlinearity)
