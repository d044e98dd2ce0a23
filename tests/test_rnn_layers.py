"""nn.LSTM / GRU / RNN and the cells: against torch.nn with copied weights (outputs, final
states, every parameter gradient, the input and state gradients; lengths against
pack_padded_sequence; batch_first; carried state), central differences in float64
through a float64 reference of the stacked / bidirectional composition (written from
the equations, sharing nothing with nnforge), state_dict round trips, flat parameters,
bad inputs and dropout in train / eval mode."""
from __future__ import annotations

import numpy as np
import pytest

import nnforge
from nnforge import nn
from layer_check import check_layer, randn
from nn_reference import EPS32, sigmoid

MODES = ["lstm", "gru", "rnn_tanh", "rnn_relu"]


def _layer(mode, *args, **kw):
    if mode == "lstm":
        return nn.LSTM(*args, **kw)
    if mode == "gru":
        return nn.GRU(*args, **kw)
    return nn.RNN(*args, nonlinearity=mode[4:], **kw)


def _torch_layer(torch, mode, *args, **kw):
    if mode == "lstm":
        return torch.nn.LSTM(*args, **kw)
    if mode == "gru":
        return torch.nn.GRU(*args, **kw)
    return torch.nn.RNN(*args, nonlinearity=mode[4:], **kw)


# --- float64 reference ------------------------------------------------------------------------

def _step(mode, x, h, c, w_ih, w_hh, b_ih, b_hh):
    """One step (B, I) -> (h', c') from the equations of torch.nn's documentation."""
    gi, gh = x @ w_ih.T + b_ih, h @ w_hh.T + b_hh
    if mode == "lstm":
        i, f, g, o = np.split(gi + gh, 4, axis=1)
        c2 = sigmoid(f) * c + sigmoid(i) * np.tanh(g)
        return sigmoid(o) * np.tanh(c2), c2
    if mode == "gru":
        ir, iz, inn = np.split(gi, 3, axis=1)
        hr, hz, hn = np.split(gh, 3, axis=1)
        r, z = sigmoid(ir + hr), sigmoid(iz + hz)
        n = np.tanh(inn + r * hn)
        return (1.0 - z) * n + z * h, None
    a = gi + gh
    return (np.tanh(a) if mode == "rnn_tanh" else np.maximum(a, 0.0)), None


def _direction(mode, x, h, c, w, lengths, reverse):
    """x (T, B, I) -> y (T, B, H) (0 past each length), h_n, c_n."""
    t_len, b = x.shape[:2]
    lens = np.full(b, t_len) if lengths is None else np.asarray(lengths)
    y = np.zeros((t_len, b, h.shape[1]))
    for t in (range(t_len - 1, -1, -1) if reverse else range(t_len)):
        live = (t < lens)[:, None]
        h2, c2 = _step(mode, x[t], h, c, *w)
        y[t] = np.where(live, h2, 0.0)
        h = np.where(live, h2, h)
        c = None if c is None else np.where(live, c2, c)
    return y, h, c


def reference(mode, params, x, num_layers, hidden, bidirectional, h0=None, c0=None, lengths=None, prefix=""):
    """Stacked (bidirectional) layer in float64: (y (T, B, D*H), h_n, c_n (L*D, B, H))."""
    dirs = 2 if bidirectional else 1
    b = x.shape[1]
    zeros = np.zeros((num_layers * dirs, b, hidden))
    h0 = zeros if h0 is None else h0
    c0 = (zeros if c0 is None else c0) if mode == "lstm" else None
    hs, cs, inp = [], [], x
    for layer in range(num_layers):
        outs = []
        for d in range(dirs):
            sfx = f"_l{layer}" + ("_reverse" if d else "")
            gh = params[f"{prefix}weight_hh{sfx}"].shape[0]
            w = (params[f"{prefix}weight_ih{sfx}"], params[f"{prefix}weight_hh{sfx}"],
                 params.get(f"{prefix}bias_ih{sfx}", np.zeros(gh)), params.get(f"{prefix}bias_hh{sfx}", np.zeros(gh)))
            k = layer * dirs + d
            y, h, c = _direction(mode, inp, h0[k], None if c0 is None else c0[k], w, lengths, d == 1)
            outs.append(y)
            hs.append(h)
            cs.append(c)
        inp = np.concatenate(outs, axis=2)
    return inp, np.stack(hs), (np.stack(cs) if mode == "lstm" else None)


class _Flat(nn.Module):
    """(x, h0[, c0]) -> (y, h_n[, c_n]) around a layer, for layer_check's flat arity."""

    def __init__(self, inner):
        super().__init__()
        self.inner = inner

    def forward(self, x, *state):
        lstm = isinstance(self.inner, nn.LSTM)
        y, s = self.inner.forward(x, tuple(state) if lstm else state[0])
        return (y, *s) if lstm else (y, s)

    def backward(self, dy, *dstate):
        lstm = isinstance(self.inner, nn.LSTM)
        dx, ds = self.inner.backward(dy, tuple(dstate) if lstm else dstate[0])
        return (dx, *ds) if lstm else (dx, ds)


# --- finite differences -----------------------------------------------------------------------

@pytest.mark.parametrize("mode", MODES)
def test_stacked_bidirectional_layer_matches_finite_differences(mode, rng):
    t, b, i, h = 5, 3, 4, 3
    nnforge.seed(int(rng.integers(1 << 30)))
    layer = _Flat(_layer(mode, i, h, num_layers=2, bidirectional=True))
    n_state = 2 if mode == "lstm" else 1
    x = randn(rng, t, b, i)
    state = tuple(randn(rng, 4, b, h, scale=0.5) for _ in range(n_state))

    def f(xs, p):
        y, hn, cn = reference(mode, p, xs[0], 2, h, True, *xs[1:], prefix="inner.")
        return (y, hn, cn) if mode == "lstm" else (y, hn)

    check_layer(layer, (x, *state), f, rng, k=4 * t * (i + 2 * h))


@pytest.mark.parametrize("mode", ["lstm", "gru"])
def test_lengths_and_batch_first_match_finite_differences(mode, rng):
    t, b, i, h = 6, 4, 3, 4
    nnforge.seed(int(rng.integers(1 << 30)))
    inner = _layer(mode, i, h, num_layers=1, bidirectional=True, batch_first=True)
    lengths = np.array([6, 2, 5, 1])

    class WithLengths(nn.Module):
        def __init__(self):
            super().__init__()
            self.inner = inner

        def forward(self, x):
            y, _ = self.inner.forward(x, None, lengths)
            return y

        def backward(self, dy):
            dx, dstate, dlen = self.inner.backward(dy)
            assert dstate is None and dlen is None
            return dx

    x = randn(rng, b, t, i)

    def f(xv, p):
        y, _, _ = reference(mode, p, xv.transpose(1, 0, 2), 1, h, True, lengths=lengths, prefix="inner.")
        return y.transpose(1, 0, 2)

    check_layer(WithLengths(), x, f, rng, k=4 * t * (i + h))


@pytest.mark.parametrize("mode", MODES)
def test_cells_match_finite_differences(mode, rng):
    b, i, h = 3, 5, 4
    nnforge.seed(int(rng.integers(1 << 30)))
    if mode == "lstm":
        cell = nn.LSTMCell(i, h)
    elif mode == "gru":
        cell = nn.GRUCell(i, h)
    else:
        cell = nn.RNNCell(i, h, nonlinearity=mode[4:])

    class Flat(nn.Module):
        def __init__(self):
            super().__init__()
            self.cell = cell

        def forward(self, x, *state):
            return self.cell.forward(x, tuple(state) if mode == "lstm" else state[0])

        def backward(self, *grads):
            dx, ds = self.cell.backward(*grads)
            return (dx, *ds) if mode == "lstm" else (dx, ds)

    n_state = 2 if mode == "lstm" else 1
    xs = (randn(rng, b, i), *(randn(rng, b, h, scale=0.5) for _ in range(n_state)))

    def f(v, p):
        w = (p["cell.weight_ih"], p["cell.weight_hh"], p["cell.bias_ih"], p["cell.bias_hh"])
        h2, c2 = _step(mode, v[0], v[1], v[2] if mode == "lstm" else None, *w)
        return (h2, c2) if mode == "lstm" else h2

    check_layer(Flat(), xs, f, rng, k=4 * (i + h))


# --- against torch ------------------------------------------------------------------------------

def _copy(torch, layer, tlayer):
    layer.load_state_dict({k: v.detach().numpy() for k, v in tlayer.state_dict().items()})


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("num_layers, bidirectional, batch_first, bias", [
    (1, False, False, True), (2, True, False, True), (3, False, True, True), (2, True, True, False)])
def test_layer_matches_torch(mode, num_layers, bidirectional, batch_first, bias, rng):
    torch = pytest.importorskip("torch")
    t, b, i, h = 7, 5, 6, 9
    kw = dict(num_layers=num_layers, bias=bias, batch_first=batch_first, bidirectional=bidirectional)
    torch.manual_seed(int(rng.integers(1 << 30)))
    tl = _torch_layer(torch, mode, i, h, **kw)
    layer = _layer(mode, i, h, **kw)
    assert [n for n, _ in layer.named_parameters()] == list(tl.state_dict())
    _copy(torch, layer, tl)
    dirs = 2 if bidirectional else 1
    x = randn(rng, *((b, t, i) if batch_first else (t, b, i)))
    state = [randn(rng, num_layers * dirs, b, h, scale=0.5) for _ in range(2 if mode == "lstm" else 1)]
    tx = torch.from_numpy(x).requires_grad_(True)
    ts = [torch.from_numpy(s).requires_grad_(True) for s in state]
    ty, tstate = tl(tx, tuple(ts) if mode == "lstm" else ts[0])
    tstate = tstate if mode == "lstm" else (tstate,)
    y, s = layer.forward(x, tuple(state) if mode == "lstm" else state[0])
    s = s if mode == "lstm" else (s,)
    tol = 32 * EPS32 * t * (i + h)
    np.testing.assert_allclose(y, ty.detach().numpy(), atol=tol, rtol=0)
    for a, ta in zip(s, tstate):
        np.testing.assert_allclose(a, ta.detach().numpy(), atol=tol, rtol=0)
    dy = randn(rng, *y.shape)
    ds = [randn(rng, *a.shape) for a in s]
    (ty * torch.from_numpy(dy)).sum().add(sum((a * torch.from_numpy(d)).sum() for a, d in zip(tstate, ds))).backward()
    dx, dstate = layer.backward(dy, tuple(ds) if mode == "lstm" else ds[0])
    dstate = dstate if mode == "lstm" else (dstate,)
    gtol = 64 * EPS32 * t * (i + h)
    np.testing.assert_allclose(dx, tx.grad.numpy(), atol=gtol, rtol=0)
    for a, ta in zip(dstate, ts):
        np.testing.assert_allclose(a, ta.grad.numpy(), atol=gtol, rtol=0)
    grads = dict(layer.named_parameters())
    for name, p in tl.named_parameters():
        np.testing.assert_allclose(grads[name].grad, p.grad.numpy(), atol=gtol * (1 + float(p.grad.abs().max())),
                                   rtol=0, err_msg=name)


@pytest.mark.parametrize("mode", ["lstm", "gru", "rnn_tanh"])
@pytest.mark.parametrize("bidirectional", [False, True])
def test_lengths_match_pack_padded_sequence(mode, bidirectional, rng):
    torch = pytest.importorskip("torch")
    from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence
    t, b, i, h = 8, 5, 4, 6
    torch.manual_seed(int(rng.integers(1 << 30)))
    tl = _torch_layer(torch, mode, i, h, num_layers=2, bidirectional=bidirectional)
    layer = _layer(mode, i, h, num_layers=2, bidirectional=bidirectional)
    _copy(torch, layer, tl)
    lengths = np.array([3, 8, 1, 5, 8])  # unsorted: enforce_sorted=False on torch's side
    x = randn(rng, t, b, i)
    tx = torch.from_numpy(x).requires_grad_(True)
    packed = pack_padded_sequence(tx, torch.from_numpy(lengths), enforce_sorted=False)
    tp, tstate = tl(packed)
    ty, _ = pad_packed_sequence(tp, total_length=t)
    tstate = tstate if mode == "lstm" else (tstate,)
    y, s = layer.forward(x, None, lengths)
    s = s if mode == "lstm" else (s,)
    tol = 32 * EPS32 * t * (i + h)
    np.testing.assert_allclose(y, ty.detach().numpy(), atol=tol, rtol=0)
    assert not y[3:, 0].any() and not y[1:, 2].any()  # zero past each sequence's end
    for a, ta in zip(s, tstate):
        np.testing.assert_allclose(a, ta.detach().numpy(), atol=tol, rtol=0)
    dy = randn(rng, *y.shape)
    (ty * torch.from_numpy(dy)).sum().add(sum(a.sum() for a in tstate)).backward()
    dx, dstate, dlen = layer.backward(dy, tuple(np.ones_like(a) for a in s) if mode == "lstm" else np.ones_like(s[0]))
    assert dstate is None and dlen is None
    gtol = 64 * EPS32 * t * (i + h)
    np.testing.assert_allclose(dx, tx.grad.numpy(), atol=gtol, rtol=0)
    grads = dict(layer.named_parameters())
    for name, p in tl.named_parameters():
        np.testing.assert_allclose(grads[name].grad, p.grad.numpy(), atol=gtol * (1 + float(p.grad.abs().max())),
                                   rtol=0, err_msg=name)


def test_carried_state_is_truncated_bptt(rng):
    """Two windows with the state carried equal one long pass forward; the second window's
    gradients are those of torch with the carried state detached."""
    torch = pytest.importorskip("torch")
    t, b, i, h = 6, 3, 4, 5
    torch.manual_seed(int(rng.integers(1 << 30)))
    tl = torch.nn.LSTM(i, h, num_layers=2)
    layer = nn.LSTM(i, h, num_layers=2)
    _copy(torch, layer, tl)
    x = randn(rng, 2 * t, b, i)
    y_long, s_long = layer.forward(x)
    y1, s1 = layer.forward(x[:t])
    y2, s2 = layer.forward(x[t:], s1)
    tol = 32 * EPS32 * 2 * t * (i + h)
    np.testing.assert_allclose(np.concatenate([y1, y2]), y_long, atol=tol, rtol=0)
    for a, want in zip(s2, s_long):
        np.testing.assert_allclose(a, want, atol=tol, rtol=0)
    layer.zero_grad()
    dy = randn(rng, *y2.shape)
    dx, (dh0, dc0) = layer.backward(dy)
    with torch.no_grad():
        _, ts1 = tl(torch.from_numpy(x[:t]))
    tx = torch.from_numpy(x[t:]).requires_grad_(True)
    th0, tc0 = (s.clone().requires_grad_(True) for s in ts1)
    ty, _ = tl(tx, (th0, tc0))
    (ty * torch.from_numpy(dy)).sum().backward()
    gtol = 64 * EPS32 * t * (i + h)
    np.testing.assert_allclose(dx, tx.grad.numpy(), atol=gtol, rtol=0)
    np.testing.assert_allclose(dh0, th0.grad.numpy(), atol=gtol, rtol=0)
    np.testing.assert_allclose(dc0, tc0.grad.numpy(), atol=gtol, rtol=0)
    grads = dict(layer.named_parameters())
    for name, p in tl.named_parameters():
        np.testing.assert_allclose(grads[name].grad, p.grad.numpy(), atol=gtol * (1 + float(p.grad.abs().max())),
                                   rtol=0, err_msg=name)


@pytest.mark.parametrize("mode", MODES)
def test_cells_match_torch(mode, rng):
    torch = pytest.importorskip("torch")
    b, i, h = 4, 7, 5
    torch.manual_seed(int(rng.integers(1 << 30)))
    if mode == "lstm":
        cell, tcell = nn.LSTMCell(i, h), torch.nn.LSTMCell(i, h)
    elif mode == "gru":
        cell, tcell = nn.GRUCell(i, h), torch.nn.GRUCell(i, h)
    else:
        cell, tcell = nn.RNNCell(i, h, nonlinearity=mode[4:]), torch.nn.RNNCell(i, h, nonlinearity=mode[4:])
    assert [n for n, _ in cell.named_parameters()] == list(tcell.state_dict())
    cell.load_state_dict({k: v.detach().numpy() for k, v in tcell.state_dict().items()})
    x = randn(rng, b, i)
    h1 = cell.forward(x)  # no state: zeros
    th1 = tcell(torch.from_numpy(x))
    for a, ta in zip(h1 if mode == "lstm" else (h1,), th1 if mode == "lstm" else (th1,)):
        np.testing.assert_allclose(a, ta.detach().numpy(), atol=32 * EPS32 * (i + h), rtol=0)
    dx = cell.backward(*(randn(rng, b, h) for _ in range(2 if mode == "lstm" else 1)))
    assert isinstance(dx, np.ndarray) and dx.shape == (b, i)


# --- state, flat parameters, modes ---------------------------------------------------------------

def test_init_is_torch_uniform_and_state_dict_round_trips(rng):
    nnforge.seed(int(rng.integers(1 << 30)))
    h = 16
    layer = nn.GRU(5, h, num_layers=2, bidirectional=True)
    bound = 1 / np.sqrt(h)
    for name, p in layer.named_parameters():
        assert np.abs(p.data).max() <= bound and p.data.std() > bound / 3, name
    shapes = {n: p.shape for n, p in layer.named_parameters()}
    assert shapes["weight_ih_l0"] == (3 * h, 5) and shapes["weight_ih_l1_reverse"] == (3 * h, 2 * h)
    assert shapes["weight_hh_l1"] == (3 * h, h) and shapes["bias_hh_l0_reverse"] == (3 * h,)
    other = nn.GRU(5, h, num_layers=2, bidirectional=True)
    other.load_state_dict(layer.state_dict())
    x = randn(rng, 4, 3, 5)
    np.testing.assert_array_equal(other.forward(x)[0], layer.forward(x)[0])
    with pytest.raises(ValueError, match="weight_ih_l0"):
        nn.GRU(6, h, num_layers=2, bidirectional=True).load_state_dict(layer.state_dict())


def test_flat_parameters_and_fused_optimizer_match_unflattened(rng):
    nnforge.seed(7)
    a = nn.LSTM(4, 6, num_layers=2, bidirectional=True)
    b = nn.LSTM(4, 6, num_layers=2, bidirectional=True)
    b.load_state_dict(a.state_dict())
    oa = nn.AdamW(nn.decay_groups(a, 0.1), lr=1e-2, clip_grad_norm=0.5)
    ob = nn.AdamW(nn.decay_groups(b, 0.1), lr=1e-2, clip_grad_norm=0.5)
    b.flatten_parameters(ob.group_parameters())
    assert b.flat_parameters() is not None and a.flat_parameters() is None
    x = randn(rng, 5, 2, 4)
    for _ in range(3):
        for m, o in ((a, oa), (b, ob)):
            y, _ = m.forward(x)
            m.backward(np.ones_like(y))
            o.step(zero_grad=True)
    for (name, pa), (_, pb) in zip(a.named_parameters(), b.named_parameters()):
        np.testing.assert_array_equal(pa.data, pb.data, err_msg=name)


def test_dropout_between_layers_in_training_only(rng):
    nnforge.seed(3)
    layer = nn.LSTM(4, 8, num_layers=3, dropout=0.5)
    plain = nn.LSTM(4, 8, num_layers=3)
    plain.load_state_dict(layer.state_dict())
    x = randn(rng, 6, 2, 4)
    layer.eval()
    np.testing.assert_array_equal(layer.forward(x)[0], plain.forward(x)[0])
    layer.train()
    nnforge.seed(11)
    y1, _ = layer.forward(x)
    y2, _ = layer.forward(x)
    nnforge.seed(11)
    y3, _ = layer.forward(x)
    assert not np.array_equal(y1, plain.forward(x)[0]) and not np.array_equal(y1, y2)
    np.testing.assert_array_equal(y1, y3)  # seeded like nn.Dropout
    one = nn.LSTM(4, 8, num_layers=1, dropout=0.5)  # one layer: nothing between layers
    plain1 = nn.LSTM(4, 8)
    plain1.load_state_dict(one.state_dict())
    np.testing.assert_array_equal(one.forward(x)[0], plain1.forward(x)[0])


def test_eval_forward_keeps_no_workspace(rng):
    layer = nn.GRU(3, 4)
    x = randn(rng, 2, 2, 3)
    layer.eval()
    y, _ = layer.forward(x)
    with pytest.raises(RuntimeError, match="eval mode"):
        layer.backward(np.ones_like(y))
    with pytest.raises(RuntimeError, match="before forward"):
        nn.LSTM(3, 4).backward(np.ones_like(y))


# --- bad inputs --------------------------------------------------------------------------------

def test_bad_inputs_name_the_shapes(rng):
    lstm = nn.LSTM(4, 5, num_layers=2, bidirectional=True)
    x = randn(rng, 3, 2, 4)
    with pytest.raises(ValueError, match=r"input_size=4, got \(3, 2, 6\)"):
        lstm.forward(randn(rng, 3, 2, 6))
    with pytest.raises(ValueError, match=r"\(T, B, input_size\)"):
        lstm.forward(randn(rng, 3, 4))
    with pytest.raises(TypeError, match="float32"):
        lstm.forward(x.astype(np.float64))
    good = randn(rng, 4, 2, 5)
    with pytest.raises(ValueError, match=r"h0 must have shape \(4, 2, 5\).*got \(2, 2, 5\)"):
        lstm.forward(x, (randn(rng, 2, 2, 5), good))
    with pytest.raises(ValueError, match=r"c0 must have shape \(4, 2, 5\).*got \(4, 3, 5\)"):
        lstm.forward(x, (good, randn(rng, 4, 3, 5)))
    with pytest.raises(ValueError, match=r"tuple \(h0, c0\)"):
        lstm.forward(x, good)
    with pytest.raises(ValueError, match=r"lengths must be 2 integers"):
        lstm.forward(x, None, np.array([1, 2, 3]))
    with pytest.raises(ValueError, match=r"lengths must be in \[1, 3\]"):
        lstm.forward(x, None, np.array([4, 1]))
    y, _ = lstm.forward(x)
    with pytest.raises(ValueError, match=r"grad_out of shape \(3, 2, 10\)"):
        lstm.backward(np.ones((3, 2, 5), np.float32))
    with pytest.raises(ValueError, match=r"dh_n of shape \(4, 2, 5\)"):
        lstm.backward(np.ones_like(y), (np.ones((1, 2, 5), np.float32), None))
    gru = nn.GRU(4, 5, batch_first=True)
    with pytest.raises(ValueError, match=r"h0 must have shape \(1, 3, 5\)"):
        gru.forward(randn(rng, 3, 2, 4), randn(rng, 1, 2, 5))
    with pytest.raises(ValueError, match=r"\(B, 4\), got \(2, 3\)"):
        nn.LSTMCell(4, 5).forward(randn(rng, 2, 3))
    with pytest.raises(ValueError, match=r"state h must have shape \(2, 5\)"):
        nn.GRUCell(4, 5).forward(randn(rng, 2, 4), randn(rng, 3, 5))
    for bad in (dict(dropout=1.0), dict(num_layers=0)):
        with pytest.raises(ValueError):
            nn.LSTM(4, 5, **bad)
    with pytest.raises(ValueError, match="nonlinearity"):
        nn.RNN(4, 5, nonlinearity="sigmoid")
