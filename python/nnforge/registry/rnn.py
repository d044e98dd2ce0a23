"""Fused recurrent layers: ops.lstm, ops.gru, ops.rnn (outputs y, h_n[, c_n]) and, through
their gradient checks, lstm_backward / gru_backward / rnn_backward.

Reference: the cell equations in float64, all rows stepped together with a per-row
"still running" mask and per-row positions (reverse with lengths reads t = len - 1 - s);
tests/test_rnn.py holds a second, per-sequence reference with a hand-written BPTT.
Cases sit on the 16-unit block edges (H 15, 17), T = 1, B = 1, I = 0, unsorted lengths
with reverse, a batch_first x (B, T, I) passed transposed, transposed weights.

Cost: forward 2 T B G H (I + H) FLOPs (G = 4 LSTM, 3 GRU, 1 RNN); forward + backward 3x
that (the backward is two GEMMs per forward GEMM); bytes: x, the weights and y once.
"""
from __future__ import annotations

import numpy as np

from ._base import Op, Scalar, f32, fd_check, reduction_tol

GATES = {"lstm": 4, "gru": 3, "rnn": 1}
FD_MAX_ELEMENTS = 400  # inputs of a case whose gradients are checked by finite differences


def _ops():
    from nnforge import ops
    return ops


def _sig(a):
    return 1.0 / (1.0 + np.exp(-a))


def rnn_ref(cell, x, h0, c0, w_ih, w_hh, b_ih=None, b_hh=None, *, lengths=None, reverse=False,
            nonlinearity="tanh"):
    """(y, h_n, c_n or None) in float64 from the cell equations (PyTorch's)."""
    T, B, _ = x.shape
    GH, H = w_hh.shape
    b_ih = np.zeros(GH) if b_ih is None else b_ih
    b_hh = np.zeros(GH) if b_hh is None else b_hh
    lens = np.full(B, T) if lengths is None else np.asarray(lengths)
    h = np.zeros((B, H)) if h0 is None else np.array(h0, np.float64)
    c = np.zeros((B, H)) if c0 is None else np.array(c0, np.float64)
    y = np.zeros((T, B, H))
    rows = np.arange(B)
    for s in range(T):
        run = s < lens
        t = np.clip(lens - 1 - s if reverse else np.full(B, s), 0, T - 1)
        gi = x[t, rows] @ w_ih.T + b_ih
        gh = h @ w_hh.T + b_hh
        c2 = c
        if cell == "lstm":
            a = gi + gh
            c2 = _sig(a[:, H:2 * H]) * c + _sig(a[:, :H]) * np.tanh(a[:, 2 * H:3 * H])
            h2 = _sig(a[:, 3 * H:]) * np.tanh(c2)
        elif cell == "gru":
            r, z = _sig(gi[:, :H] + gh[:, :H]), _sig(gi[:, H:2 * H] + gh[:, H:2 * H])
            n = np.tanh(gi[:, 2 * H:] + r * gh[:, 2 * H:])
            h2 = (1 - z) * n + z * h
        else:
            a = gi + gh
            h2 = np.tanh(a) if nonlinearity == "tanh" else np.maximum(a, 0.0)
        h = np.where(run[:, None], h2, h)
        c = np.where(run[:, None], c2, c)
        y[t[run], rows[run]] = h2[run]
    return y, h, (c if cell == "lstm" else None)


def _forward(cell):
    def run(x, h0, c0, w_ih, w_hh, b_ih, b_hh, **kw):
        ops = _ops()
        if cell == "lstm":
            return ops.lstm(x, h0, c0, w_ih, w_hh, b_ih, b_hh, return_workspace=False, **kw)[:3]
        return getattr(ops, cell)(x, h0, w_ih, w_hh, b_ih, b_hh, return_workspace=False, **kw)[:2]

    def reference(*args, **kw):
        out = rnn_ref(cell, *args, **kw)
        return out if cell == "lstm" else out[:2]
    return run, reference


def flops_of(cell):
    return lambda p: 2.0 * p["T"] * p["B"] * GATES[cell] * p["H"] * (p["I"] + p["H"])


def bytes_of(cell):
    g = GATES[cell]
    return lambda p: 4.0 * (p["T"] * p["B"] * (p["I"] + p["H"]) + g * p["H"] * (p["I"] + p["H"] + 2))


def _case(op, cell, T, B, I, H, *, bias=True, lengths=None, reverse=False, layout="contiguous",
          nonlinearity=None):
    g = GATES[cell] * H
    s = 0.7 / np.sqrt(max(I + H, 1))

    def make(rng):
        if layout == "batch_first":
            x = f32(rng, (B, T, I)).transpose(1, 0, 2)
            w_hh = f32(rng, (g, H), "transposed", s)
        else:
            x, w_hh = f32(rng, (T, B, I)), f32(rng, (g, H), "contiguous", s)
        args = (x, f32(rng, (B, H), scale=0.5), f32(rng, (B, H), scale=0.5) if cell == "lstm" else None,
                f32(rng, (g, I), "sliced", s), w_hh,
                f32(rng, (g,), scale=0.3) if bias else None, f32(rng, (g,), scale=0.3) if bias else None)
        kw = dict(reverse=reverse)
        if lengths is not None:
            kw["lengths"] = np.array(lengths, np.int64)
        if nonlinearity:
            kw["nonlinearity"] = nonlinearity
        return args, kw
    label = f"T{T} B{B} I{I} H{H}" + ("" if bias else " nobias") + (f" lengths={lengths}" if lengths else "") + \
        (" reverse" if reverse else "") + (f" {layout}" if layout != "contiguous" else "") + \
        (f" {nonlinearity}" if nonlinearity else "")
    return op.case(label, make, T=T, B=B, I=I, H=H)


def cases_of(cell):
    def cases(op):
        out = [
            _case(op, cell, 1, 1, 1, 1),
            _case(op, cell, 6, 4, 5, 17, bias=False, lengths=[3, 6, 1, 4], reverse=True),
            _case(op, cell, 5, 3, 2, 3, lengths=[2, 5, 1], reverse=True),  # small enough for fd
            _case(op, cell, 5, 3, 4, 15, layout="batch_first", lengths=[5, 2, 5]),
            _case(op, cell, 3, 2, 0, 5),
        ]
        if cell == "rnn":
            out.append(_case(op, cell, 6, 3, 4, 17, nonlinearity="relu", reverse=True))
        return out
    return cases


def tolerance(case, args, ref):
    """A state sums I + H products per gate and carries that error through up to T steps."""
    p = case.params
    k = p["I"] + p["H"] + p["T"]
    return tuple(reduction_tol(k, max(1.0, float(np.abs(r).max()))) for r in ref)


def grad_check_of(cell):
    def grad_check(rng, case):
        """The backward op's (dx, dh0, dc0, dw_ih, dw_hh) against central differences of rnn_ref's
        y (dL/dy = a random dy), db_ih / db_hh against the column sums the fd of w_* implies."""
        ops = _ops()
        args, kw = case.make(rng)
        x, h0, c0, w_ih, w_hh, b_ih, b_hh = args
        if sum(a.size for a in args if a is not None) > FD_MAX_ELEMENTS:
            return  # two reference runs per input element: tests/test_rnn.py checks the big ones
        ref_kw = dict(kw)
        if cell == "lstm":
            y, _, _, ws = ops.lstm(*args, **kw)
        else:
            y, _, ws = getattr(ops, cell)(x, h0, w_ih, w_hh, b_ih, b_hh, **kw)
        dy = f32(rng, y.shape)
        if cell == "lstm":
            got = ops.lstm_backward(dy, None, None, x, h0, c0, w_ih, w_hh, ws, b_ih, b_hh, **kw)
            wrt, grads = [0, 1, 2, 3, 4], list(got[:5])
        else:
            got = getattr(ops, cell + "_backward")(dy, None, x, h0, w_ih, w_hh, ws, b_ih, b_hh, **kw)
            wrt, grads = [0, 1, 3, 4], list(got[:4])
        p = case.params
        mag = float(np.abs(dy).max())
        tols = [reduction_tol(p["I"] + p["H"] + p["T"] * p["B"] + GATES[cell] * p["H"],
                              mag * max(1.0, float(np.abs(g).max(initial=0.0))), c=4.0) + 1e-6 for g in grads]
        inputs = list(args)
        if b_ih is not None:  # fd through the biases too
            wrt += [5, 6]
            grads += list(got[-2:])
            tols += tols[-1:] * 2
        fd_check(lambda *a: rnn_ref(cell, *a, **ref_kw), inputs, wrt, dy, grads, tols, case.id, out_index=0)
    return grad_check


def _arg_rules(cell) -> dict:
    scalars = {"reverse": Scalar("reverse", "flag"),
               "return_workspace": "run() passes return_workspace=False itself"}
    if cell == "rnn":
        scalars["nonlinearity"] = Scalar("nonlinearity", "choice", choices=("tanh", "relu"))
    return dict(scalars=scalars)


def register(add):
    for cell in ("lstm", "gru", "rnn"):
        run, reference = _forward(cell)
        flops = flops_of(cell)
        add(Op(cell, "rnn", run, reference, flops, bytes_of(cell), cases_of(cell), tolerance, grad_check_of(cell),
               covers={cell + "_backward": "grad_check: every gradient vs central differences of the reference"},
               covered_costs={cell + "_backward": (lambda p, f=flops: 2.0 * f(p),
                                                   lambda p, b=bytes_of(cell): 2.0 * b(p))},
               **_arg_rules(cell)))
