"""float64 NumPy reference of the LSTM / GRU / RNN layers: forward and backpropagation
through time written by hand, one sequence at a time (so lengths and reverse mean exactly
"run each sequence alone", in its own step order). Shares no code with the kernels; the
backward is checked against central finite differences in tests/test_rnn.py.

Arguments as nnforge.ops: x (T, B, I), h0 / c0 (B, H) or None, w_ih (G*H, I),
w_hh (G*H, H), b_ih / b_hh (G*H,) or None; cell "lstm", "gru", "rnn_tanh", "rnn_relu".
"""
from __future__ import annotations

import numpy as np

GATES = {"lstm": 4, "gru": 3, "rnn_tanh": 1, "rnn_relu": 1}


def _sigmoid(a):
    return 1.0 / (1.0 + np.exp(-a))


def _order(t_len, reverse):
    return range(t_len - 1, -1, -1) if reverse else range(t_len)


def _zeros_if_none(a, shape):
    return np.zeros(shape) if a is None else np.asarray(a, np.float64)


def _step(cell, x, h, c, w_ih, w_hh, b_ih, b_hh):
    """One step of one sequence: (h', c', cache for the backward)."""
    H = h.shape[0]
    gi = w_ih @ x + b_ih
    gh = w_hh @ h + b_hh
    if cell == "lstm":
        a = gi + gh
        i, f, g, o = _sigmoid(a[:H]), _sigmoid(a[H:2 * H]), np.tanh(a[2 * H:3 * H]), _sigmoid(a[3 * H:])
        c2 = f * c + i * g
        return o * np.tanh(c2), c2, (i, f, g, o, c2)
    if cell == "gru":
        r = _sigmoid(gi[:H] + gh[:H])
        z = _sigmoid(gi[H:2 * H] + gh[H:2 * H])
        n = np.tanh(gi[2 * H:] + r * gh[2 * H:])
        return (1.0 - z) * n + z * h, c, (r, z, n, gh[2 * H:])
    a = gi + gh
    h2 = np.tanh(a) if cell == "rnn_tanh" else np.maximum(a, 0.0)
    return h2, c, (a, h2)


def _setup(cell, x, h0, c0, w_ih, w_hh, b_ih, b_hh, lengths):
    T, B, _ = x.shape
    GH = w_ih.shape[0]
    H = GH // GATES[cell]
    lens = [T] * B if lengths is None else [int(v) for v in lengths]
    return (T, B, H, lens, _zeros_if_none(h0, (B, H)), _zeros_if_none(c0, (B, H)),
            _zeros_if_none(b_ih, (GH,)), _zeros_if_none(b_hh, (GH,)))


def forward(cell, x, h0, c0, w_ih, w_hh, b_ih=None, b_hh=None, lengths=None, reverse=False):
    """(y (T, B, H), h_n (B, H), c_n (B, H) or None for GRU / RNN)."""
    x, w_ih, w_hh = (np.asarray(a, np.float64) for a in (x, w_ih, w_hh))
    T, B, H, lens, h0, c0, b_ih, b_hh = _setup(cell, x, h0, c0, w_ih, w_hh, b_ih, b_hh, lengths)
    y = np.zeros((T, B, H))
    h_n, c_n = np.zeros((B, H)), np.zeros((B, H))
    for b in range(B):
        h, c = h0[b], c0[b]
        for t in _order(lens[b], reverse):
            h, c, _ = _step(cell, x[t, b], h, c, w_ih, w_hh, b_ih, b_hh)
            y[t, b] = h
        h_n[b], c_n[b] = h, c
    return y, h_n, (c_n if cell == "lstm" else None)


def backward(cell, dy, dh_n, dc_n, x, h0, c0, w_ih, w_hh, b_ih=None, b_hh=None, lengths=None, reverse=False):
    """Gradients of sum(y dy) + sum(h_n dh_n) + sum(c_n dc_n) (None = 0):
    (dx, dh0, dc0 or None, dw_ih, dw_hh, db_ih or None, db_hh or None)."""
    has_bi, has_bh = b_ih is not None, b_hh is not None
    x, w_ih, w_hh = (np.asarray(a, np.float64) for a in (x, w_ih, w_hh))
    T, B, H, lens, h0, c0, b_ih, b_hh = _setup(cell, x, h0, c0, w_ih, w_hh, b_ih, b_hh, lengths)
    dy = _zeros_if_none(dy, (T, B, H))
    dh_n, dc_n = _zeros_if_none(dh_n, (B, H)), _zeros_if_none(dc_n, (B, H))
    dx = np.zeros_like(x)
    dh0, dc0 = np.zeros((B, H)), np.zeros((B, H))
    dw_ih, dw_hh = np.zeros_like(w_ih), np.zeros_like(w_hh)
    db_ih, db_hh = np.zeros(w_ih.shape[0]), np.zeros(w_ih.shape[0])
    for b in range(B):
        h, c, tape = h0[b], c0[b], []
        for t in _order(lens[b], reverse):
            h2, c2, cache = _step(cell, x[t, b], h, c, w_ih, w_hh, b_ih, b_hh)
            tape.append((t, h, c, cache))
            h, c = h2, c2
        dh, dc = dh_n[b].copy(), dc_n[b].copy()
        for t, hp, cp, cache in reversed(tape):
            dh = dh + dy[t, b]
            if cell == "lstm":
                i, f, g, o, c2 = cache
                tc = np.tanh(c2)
                dc = dc + dh * o * (1.0 - tc ** 2)
                da = np.concatenate([dc * g * i * (1 - i), dc * cp * f * (1 - f), dc * i * (1 - g ** 2),
                                     dh * tc * o * (1 - o)])
                da_ih = da_hh = da
                dh_direct, dc = np.zeros(H), dc * f
            elif cell == "gru":
                r, z, n, ghn = cache
                dan = dh * (1.0 - z) * (1.0 - n ** 2)
                dar = dan * ghn * r * (1 - r)
                daz = dh * (hp - n) * z * (1 - z)
                da_ih = np.concatenate([dar, daz, dan])
                da_hh = np.concatenate([dar, daz, dan * r])
                dh_direct = dh * z
            else:
                a, h2 = cache
                da_ih = da_hh = dh * ((1.0 - h2 ** 2) if cell == "rnn_tanh" else (a > 0).astype(np.float64))
                dh_direct = np.zeros(H)
            dx[t, b] = w_ih.T @ da_ih
            dw_ih += np.outer(da_ih, x[t, b])
            dw_hh += np.outer(da_hh, hp)
            db_ih += da_ih
            db_hh += da_hh
            dh = w_hh.T @ da_hh + dh_direct
        dh0[b], dc0[b] = dh, dc
    return (dx, dh0, dc0 if cell == "lstm" else None, dw_ih, dw_hh,
            db_ih if has_bi else None, db_hh if has_bh else None)
