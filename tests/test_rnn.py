"""ops.lstm / gru / rnn and their backward passes against the float64 reference
(tests/rnn_reference.py, itself checked by central differences here): outputs, final
states, every gradient; lengths (unsorted, length 1, all T), reverse, strided views,
every ISA path, 1 vs 2 threads bitwise, denormals, bad inputs.

Tolerances: a float32 sum of k terms of size <= mag is off by at most ~k eps mag; a gate
pre-activation sums I + H products, a state carries that error through up to T steps, a
weight gradient sums T*B products, so k = I + H + T for states / dx / dh0 and
k = I + H + T*B for weight and bias gradients, mag the largest |value| of the reference
array (at least 1 for the bounded states).
"""
from __future__ import annotations

import numpy as np
import pytest

import nnforge
from nnforge import ops
from nnforge.registry import assert_close, central_diff, reduction_tol

import rnn_reference as ref

CELLS = ["lstm", "gru", "rnn_tanh", "rnn_relu"]
EPS = float(np.finfo(np.float32).eps)


def G(cell):
    return ref.GATES[cell]


def make(rng, cell, T, B, I, H, *, bias=True, dtype=np.float32):
    """(x, h0, c0, w_ih, w_hh, b_ih, b_hh) with weights scaled so the recurrence neither
    saturates nor explodes (relu included)."""
    s = 0.7 / np.sqrt(max(I + H, 1))
    g = G(cell) * H
    x = rng.standard_normal((T, B, I)).astype(dtype)
    h0 = (0.5 * rng.standard_normal((B, H))).astype(dtype)
    c0 = (0.5 * rng.standard_normal((B, H))).astype(dtype) if cell == "lstm" else None
    w_ih = (s * rng.standard_normal((g, I))).astype(dtype)
    w_hh = (s * rng.standard_normal((g, H))).astype(dtype)
    b_ih = (0.3 * rng.standard_normal(g)).astype(dtype) if bias else None
    b_hh = (0.3 * rng.standard_normal(g)).astype(dtype) if bias else None
    return x, h0, c0, w_ih, w_hh, b_ih, b_hh


def fwd(cell, x, h0, c0, w_ih, w_hh, b_ih, b_hh, **kw):
    """(y, h_n, c_n or None, workspace) for every cell."""
    if cell == "lstm":
        return ops.lstm(x, h0, c0, w_ih, w_hh, b_ih, b_hh, **kw)
    if cell == "gru":
        y, h, ws = ops.gru(x, h0, w_ih, w_hh, b_ih, b_hh, **kw)
    else:
        y, h, ws = ops.rnn(x, h0, w_ih, w_hh, b_ih, b_hh, nonlinearity=cell[4:], **kw)
    return y, h, None, ws


def bwd(cell, dy, dh_n, dc_n, x, h0, c0, w_ih, w_hh, ws, b_ih, b_hh, **kw):
    """(dx, dh0, dc0 or None, dw_ih, dw_hh, db_ih, db_hh) for every cell."""
    if cell == "lstm":
        return ops.lstm_backward(dy, dh_n, dc_n, x, h0, c0, w_ih, w_hh, ws, b_ih, b_hh, **kw)
    if cell == "gru":
        dx, dh0, dwi, dwh, dbi, dbh = ops.gru_backward(dy, dh_n, x, h0, w_ih, w_hh, ws, b_ih, b_hh, **kw)
    else:
        dx, dh0, dwi, dwh, dbi, dbh = ops.rnn_backward(dy, dh_n, x, h0, w_ih, w_hh, ws, b_ih, b_hh,
                                                       nonlinearity=cell[4:], **kw)
    return dx, dh0, None, dwi, dwh, dbi, dbh


def _mag(a, floor=0.0):
    return max(float(np.abs(a).max(initial=0.0)), floor)


def check_against_reference(rng, cell, inputs, *, lengths=None, reverse=False, grads=("dy", "dh", "dc")):
    x, h0, c0, w_ih, w_hh, b_ih, b_hh = inputs
    T, B, I = x.shape
    H = w_hh.shape[1]
    kw = dict(lengths=lengths, reverse=reverse)
    y, h_n, c_n, ws = fwd(cell, *inputs, **kw)
    want = ref.forward(cell, *inputs, **kw)
    k_state = I + H + T
    for name, got, w in zip(("y", "h_n", "c_n"), (y, h_n, c_n), want):
        tol = None if w is None else reduction_tol(k_state, _mag(w, 1.0))
        assert_close(got, w, tol, f"{cell} {name}")
    if lengths is not None:
        for b, n in enumerate(lengths):
            assert not y[n:, b].any(), "y must be 0 at t >= lengths[b]"
    dy = rng.standard_normal(y.shape).astype(np.float32) if "dy" in grads else None
    dh = rng.standard_normal(h_n.shape).astype(np.float32) if "dh" in grads else None
    dc = rng.standard_normal(h_n.shape).astype(np.float32) if ("dc" in grads and cell == "lstm") else None
    got = bwd(cell, dy, dh, dc, x, h0, c0, w_ih, w_hh, ws, b_ih, b_hh, **kw)
    want = ref.backward(cell, dy, dh, dc, *inputs, **kw)
    k_w = I + H + T * B
    for name, g, w, k in zip(("dx", "dh0", "dc0", "dw_ih", "dw_hh", "db_ih", "db_hh"), got, want,
                             (k_state, k_state, k_state, k_w, k_w, k_w, k_w)):
        tol = None if w is None else reduction_tol(k + G(cell) * H, _mag(w, EPS))
        assert_close(g, w, tol, f"{cell} {name}")


# --- the reference's own backward, by central differences in float64 ----------------------
@pytest.mark.parametrize("cell", CELLS)
@pytest.mark.parametrize("reverse", [False, True])
def test_reference_backward_matches_finite_differences(cell, reverse, rng):
    T, B, I, H = 4, 3, 2, 3
    inputs = list(make(rng, cell, T, B, I, H, dtype=np.float64))
    lengths = np.array([4, 1, 2])
    dy = rng.standard_normal((T, B, H))
    dh, dc = rng.standard_normal((B, H)), rng.standard_normal((B, H))
    if cell == "lstm":
        names = ["x", "h0", "c0", "w_ih", "w_hh", "b_ih", "b_hh"]
    else:
        names = ["x", "h0", None, "w_ih", "w_hh", "b_ih", "b_hh"]
        dc = None
    if cell == "rnn_relu":  # keep pre-activations away from the kink
        inputs[5] = inputs[5] + 0.5

    def loss(xs):
        y, h_n, c_n = ref.forward(cell, *xs, lengths=lengths, reverse=reverse)
        out = float((y * dy).sum() + (h_n * dh).sum())
        return out + (float((c_n * dc).sum()) if c_n is not None else 0.0)

    got = ref.backward(cell, dy, dh, dc, *inputs, lengths=lengths, reverse=reverse)
    for idx, name in enumerate(names):
        if name is None:
            continue
        want = central_diff(loss, inputs, idx)
        assert_close(got[idx], want, 1e-6 * (1 + np.abs(want)), f"reference d{name}")


# --- kernels against the reference ----------------------------------------------------------
# (T, B, I, H, bias): T in 1, 7, 33; B in 1, 5; I, H over 1, 3, 17, 64, 130 (tile edges of
# the 16-unit blocks: 17, 130 = 8*16 + 2); I = 0 (only biases project the input).
SIZES = [
    (1, 1, 1, 1, True),
    (7, 5, 3, 17, False),
    (33, 5, 17, 3, True),
    (7, 1, 130, 64, True),
    (1, 5, 64, 130, True),
    (7, 5, 0, 17, True),
]


@pytest.mark.parametrize("cell", CELLS)
@pytest.mark.parametrize("size", SIZES, ids=lambda s: "T{}B{}I{}H{}{}".format(*s[:4], "" if s[4] else " nobias"))
def test_matches_reference(isa, cell, size, rng):
    T, B, I, H, bias = size
    check_against_reference(rng, cell, make(rng, cell, T, B, I, H, bias=bias))


@pytest.mark.parametrize("cell", CELLS)
@pytest.mark.parametrize("reverse", [False, True])
def test_lengths_and_reverse(isa, cell, reverse, rng):
    T, B, I, H = 7, 5, 17, 19
    inputs = make(rng, cell, T, B, I, H)
    check_against_reference(rng, cell, inputs, lengths=np.array([3, 7, 1, 5, 7]), reverse=reverse)


@pytest.mark.parametrize("cell", ["lstm", "gru"])
def test_reverse_without_lengths_and_missing_gradients(cell, rng):
    inputs = make(rng, cell, 33, 5, 3, 17)
    check_against_reference(rng, cell, inputs, reverse=True, grads=("dy",))
    check_against_reference(rng, cell, inputs, grads=("dh",))


@pytest.mark.parametrize("cell", CELLS)
def test_all_full_lengths_equal_no_lengths(cell, rng):
    inputs = make(rng, cell, 7, 5, 3, 17)
    for reverse in (False, True):
        a = fwd(cell, *inputs, reverse=reverse)
        b = fwd(cell, *inputs, lengths=np.full(5, 7, np.int64), reverse=reverse)
        for u, v in zip(a, b):
            assert (u is None and v is None) or np.array_equal(u, v)


def test_a_padded_row_equals_running_it_alone(rng):
    """The gradient-equals-each-sequence-alone rule, checked against the kernel itself."""
    cell, T, B = "lstm", 9, 4
    inputs = make(rng, cell, T, B, 5, 17)
    lengths = np.array([9, 2, 6, 1])
    x, h0, c0, w_ih, w_hh, b_ih, b_hh = inputs
    y, h_n, c_n, ws = fwd(cell, *inputs, lengths=lengths, reverse=True)
    dy = rng.standard_normal(y.shape).astype(np.float32)
    g = bwd(cell, dy, None, None, x, h0, c0, w_ih, w_hh, ws, b_ih, b_hh, lengths=lengths, reverse=True)
    b, n = 2, 6
    xs = np.ascontiguousarray(x[:n, b:b + 1])
    y1, h1, c1, ws1 = fwd(cell, xs, h0[b:b + 1], c0[b:b + 1], w_ih, w_hh, b_ih, b_hh, reverse=True)
    g1 = bwd(cell, dy[:n, b:b + 1], None, None, xs, h0[b:b + 1], c0[b:b + 1], w_ih, w_hh, ws1, b_ih, b_hh,
             reverse=True)
    tol = reduction_tol(5 + 17 + T, 1.0)
    assert_close(y[:n, b:b + 1], y1, tol, "y")
    assert_close(h_n[b:b + 1], h1, tol, "h_n")
    assert_close(g[0][:n, b:b + 1], g1[0], tol, "dx")
    assert_close(g[1][b:b + 1], g1[1], tol, "dh0")


@pytest.mark.parametrize("cell", CELLS)
def test_strided_views(isa, cell, rng):
    """batch_first x as x.transpose(1, 0, 2) (copied inside), a sliced x (read in place),
    transposed and sliced weights and states."""
    T, B, I, H = 7, 5, 17, 18
    x, h0, c0, w_ih, w_hh, b_ih, b_hh = make(rng, cell, T, B, I, H)
    x_bf = np.ascontiguousarray(x.transpose(1, 0, 2)).transpose(1, 0, 2)
    wide = np.zeros((T, B, 2 * I), np.float32)
    wide[..., ::2] = x
    t_ = lambda a: None if a is None else np.ascontiguousarray(a.T).T
    sl = lambda a: None if a is None else np.repeat(a, 2, axis=-1)[..., ::2]
    for xv in (x_bf, wide[..., ::2]):
        check_against_reference(rng, cell, (xv, t_(h0), t_(c0), t_(w_ih), sl(w_hh), sl(b_ih), b_hh[::-1].copy()[::-1]))


@pytest.mark.parametrize("cell", CELLS)
def test_one_and_two_threads_bitwise(cell, rng, threads):
    inputs = make(rng, cell, 7, 5, 64, 130)
    lengths = np.array([7, 3, 1, 7, 5])
    outs = []
    for nt in (1, 2):
        nnforge.set_num_threads(nt)
        y, h, c, ws = fwd(cell, *inputs, lengths=lengths)
        dy = np.random.default_rng(5).standard_normal(y.shape).astype(np.float32)
        g = bwd(cell, dy, h, c, inputs[0], inputs[1], inputs[2], inputs[3], inputs[4], ws, inputs[5],
                inputs[6], lengths=lengths)
        outs.append([a for a in (y, h, c, ws, *g) if a is not None])
    for a, b in zip(*outs):
        assert np.array_equal(a, b)


@pytest.mark.parametrize("cell", CELLS)
def test_inference_stores_no_workspace(cell, rng):
    inputs = make(rng, cell, 7, 5, 3, 17)
    y, h, c, ws = fwd(cell, *inputs)
    y2, h2, c2, ws2 = fwd(cell, *inputs, return_workspace=False)
    assert ws2 is None and ws is not None
    assert ws.shape == (7, 5, {"lstm": 5, "gru": 4}.get(cell, 1) * 17)
    assert np.array_equal(y, y2) and np.array_equal(h, h2)


@pytest.mark.parametrize("cell", ["lstm", "gru"])
def test_denormal_inputs(isa, cell, rng):
    """Denormal x, h0, c0 (flushed inside): results still match the reference, and the
    caller's MXCSR is restored afterwards (NumPy keeps producing denormals)."""
    x, h0, c0, w_ih, w_hh, b_ih, b_hh = make(rng, cell, 7, 5, 3, 17)
    tiny = np.float32(1e-40)
    x = (x * tiny).astype(np.float32)
    h0 = (h0 * tiny).astype(np.float32)
    c0 = None if c0 is None else (c0 * tiny).astype(np.float32)
    assert np.any((x != 0) & (np.abs(x) < np.finfo(np.float32).tiny))
    check_against_reference(rng, cell, (x, h0, c0, w_ih, w_hh, b_ih, b_hh))
    assert np.float32(1e-39) * np.float32(0.5) != 0, "FTZ leaked out of the kernel"


def test_activation_approximations_few_ulp(isa):
    """vm_sigmoid / vm_tanh (cpu/nn/vmath.h, the functions the cells use) against float64 on a
    dense grid including large |x| (saturation) and NaN, through ops.sigmoid / ops.tanh."""
    grid = np.concatenate([np.linspace(-100, 100, 400001), np.linspace(-1, 1, 200001),
                           np.geomspace(1e-30, 1e-3, 2000), -np.geomspace(1e-30, 1e-3, 2000)]).astype(np.float32)
    g64 = grid.astype(np.float64)
    tiny = float(np.finfo(np.float32).tiny)
    for name, want in (("sigmoid", 1.0 / (1.0 + np.exp(-g64))), ("tanh", np.tanh(g64))):
        got = getattr(ops, name)(grid).astype(np.float64)
        tol = 4 * EPS * np.abs(want) + tiny  # 4 ulp; results below FLT_MIN may flush to 0
        assert_close(got, want, tol, name)
        nan = getattr(ops, name)(np.array([np.nan], np.float32))
        assert np.isnan(nan).all()


# --- bad inputs -------------------------------------------------------------------------------
def _good(rng):
    return make(rng, "lstm", 4, 3, 5, 6)


def test_bad_inputs(rng):
    x, h0, c0, w_ih, w_hh, b_ih, b_hh = _good(rng)
    before = [a.copy() for a in (x, h0, c0, w_ih, w_hh, b_ih, b_hh)]
    cases = [
        (TypeError, "float32", lambda: ops.lstm(x.astype(np.float64), h0, c0, w_ih, w_hh)),
        (ValueError, "x", lambda: ops.lstm(x[0], h0, c0, w_ih, w_hh)),
        (ValueError, "T >= 1", lambda: ops.lstm(x[:0], h0, c0, w_ih, w_hh)),
        (ValueError, "B >= 1", lambda: ops.lstm(x[:, :0], h0[:0], c0[:0], w_ih, w_hh)),
        (ValueError, "H", lambda: ops.lstm(x, None, None, w_ih[:0], w_hh[:0, :0])),
        (ValueError, "w_hh must have shape", lambda: ops.lstm(x, h0, c0, w_ih, w_hh[:-1])),
        (ValueError, "w_ih must have shape", lambda: ops.lstm(x, h0, c0, w_ih[:, :-1], w_hh)),
        (ValueError, "w_hh must have shape", lambda: ops.gru(x, None, w_ih, w_hh)),
        (ValueError, "h0", lambda: ops.lstm(x, h0[:-1], c0, w_ih, w_hh)),
        (ValueError, "c0", lambda: ops.lstm(x, h0, c0.T, w_ih, w_hh)),
        (ValueError, "b_ih", lambda: ops.lstm(x, h0, c0, w_ih, w_hh, b_ih[:-1], b_hh)),
        (TypeError, "b_hh", lambda: ops.lstm(x, h0, c0, w_ih, w_hh, b_ih, b_hh.astype(np.float16))),
        (TypeError, "int64", lambda: ops.lstm(x, h0, c0, w_ih, w_hh, lengths=np.array([4, 4, 4], np.int32))),
        (ValueError, "lengths", lambda: ops.lstm(x, h0, c0, w_ih, w_hh, lengths=np.array([4, 4], np.int64))),
        (ValueError, r"\[1, T\]", lambda: ops.lstm(x, h0, c0, w_ih, w_hh, lengths=np.array([4, 0, 4]))),
        (ValueError, r"\[1, T\]", lambda: ops.lstm(x, h0, c0, w_ih, w_hh, lengths=np.array([4, 5, 4]))),
        (ValueError, "nonlinearity", lambda: ops.rnn(x, h0, w_ih[:6], w_hh[:6], nonlinearity="sigmoid")),
    ]
    for exc, match, call in cases:
        with pytest.raises(exc, match=match):
            call()
    y, h, c, ws = ops.lstm(x, h0, c0, w_ih, w_hh, b_ih, b_hh)
    bad_bwd = [
        (ValueError, "dy", lambda: ops.lstm_backward(y[:-1], None, None, x, h0, c0, w_ih, w_hh, ws, b_ih, b_hh)),
        (ValueError, "dh_n", lambda: ops.lstm_backward(y, h.T, None, x, h0, c0, w_ih, w_hh, ws, b_ih, b_hh)),
        (TypeError, "dc_n", lambda: ops.lstm_backward(y, None, c.astype(np.float64), x, h0, c0, w_ih, w_hh, ws)),
        (TypeError, "workspace", lambda: ops.lstm_backward(y, None, None, x, h0, c0, w_ih, w_hh, ws.astype(np.float64))),
        (ValueError, "workspace", lambda: ops.lstm_backward(y, None, None, x, h0, c0, w_ih, w_hh, ws[:, :, ::2])),
    ]
    for exc, match, call in bad_bwd:
        with pytest.raises(exc, match=match):
            call()
    for a, b in zip((x, h0, c0, w_ih, w_hh, b_ih, b_hh), before):
        assert np.array_equal(a, b), "an input was written"


def test_workspace_of_other_shapes_is_refused(rng):
    x, h0, c0, w_ih, w_hh, b_ih, b_hh = _good(rng)
    y, h, c, ws = ops.lstm(x, h0, c0, w_ih, w_hh, b_ih, b_hh)
    # the workspace of a shorter sequence, and a GRU's workspace (4H, not 5H)
    _, _, _, ws_short = ops.lstm(x[:3], h0, c0, w_ih, w_hh)
    gru_w = make(rng, "gru", 4, 3, 5, 6)
    _, _, ws_gru = ops.gru(gru_w[0], gru_w[1], gru_w[3], gru_w[4])
    for other in (ws_short, ws_gru):
        with pytest.raises(ValueError, match=r"workspace must have shape \(T, B, 5H\) = \(4, 3, 30\)"):
            ops.lstm_backward(y, None, None, x, h0, c0, w_ih, w_hh, other, b_ih, b_hh)
    with pytest.raises(ValueError, match=r"workspace must have shape \(T, B, 4H\)"):
        ops.gru_backward(None, h, gru_w[0], gru_w[1], gru_w[3], gru_w[4], ws)


# --- PyTorch's layers, where installed: the layouts and GRU's r * (W_hn h + b_hn) --------------
@pytest.mark.parametrize("cell", CELLS)
def test_matches_torch(cell, rng):
    torch = pytest.importorskip("torch")
    T, B, I, H = 7, 5, 3, 17
    x, h0, c0, w_ih, w_hh, b_ih, b_hh = make(rng, cell, T, B, I, H)
    mod = {"lstm": lambda: torch.nn.LSTM(I, H), "gru": lambda: torch.nn.GRU(I, H)}.get(
        cell, lambda: torch.nn.RNN(I, H, nonlinearity=cell[4:]))().double()
    with torch.no_grad():
        for name, v in (("weight_ih_l0", w_ih), ("weight_hh_l0", w_hh), ("bias_ih_l0", b_ih), ("bias_hh_l0", b_hh)):
            getattr(mod, name).copy_(torch.from_numpy(v.astype(np.float64)))
        hx = torch.from_numpy(h0.astype(np.float64))[None]
        state = (hx, torch.from_numpy(c0.astype(np.float64))[None]) if cell == "lstm" else hx
        yt, st = mod(torch.from_numpy(x.astype(np.float64)), state)
    y, h, c, _ = fwd(cell, x, h0, c0, w_ih, w_hh, b_ih, b_hh)
    tol = reduction_tol(I + H + T, 1.0)
    assert_close(y, yt.numpy(), tol, "y vs torch")
    assert_close(h, (st[0] if cell == "lstm" else st)[0].numpy(), tol, "h_n vs torch")
