"""Flat parameters (nnforge/nn/flat.py): one aligned buffer for data and one for grads,
one fused optimizer call per parameter group, bitwise the same training as per tensor."""
import numpy as np
import pytest

import nnforge
from layer_check import randn
from nnforge import nn

OPTIMIZERS = [
    ("sgd", {"lr": 0.05}),
    ("sgd", {"lr": 0.05, "momentum": 0.9, "nesterov": True, "weight_decay": 1e-3}),
    ("adam", {"lr": 1e-2}),
    ("adam", {"lr": 1e-2, "amsgrad": True, "weight_decay": 1e-3}),
    ("adamw", {"lr": 1e-2}),
    ("rmsprop", {"lr": 1e-3, "momentum": 0.5, "centered": True}),
    ("adagrad", {"lr": 0.05, "lr_decay": 1e-3}),
]


def _model(seed=0):
    nnforge.seed(seed)
    # odd sizes: every parameter but the first ends mid cache line, so the layout pads
    return nn.Sequential(nn.Conv2d(2, 3, 3, padding=1), nn.BatchNorm2d(3), nn.ReLU(), nn.Flatten(),
                         nn.Linear(3 * 5 * 5, 7, activation="relu"), nn.LayerNorm(7), nn.Linear(7, 3))


def _train(model, opt, x, y, steps=5):
    loss = nn.CrossEntropyLoss()
    for i in range(steps):
        xb, yb = x[i::steps], y[i::steps]
        loss.forward(model.forward(xb), yb)
        model.backward(loss.backward())
        opt.step(zero_grad=True)


def _data(rng):
    return randn(rng, 40, 2, 5, 5), rng.integers(0, 3, 40)


def test_layout_is_aligned_views_and_idempotent():
    model = _model()
    before = model.state_dict()
    assert model.flat_parameters() is None
    model.flatten_parameters()
    data, grad = model.flat_parameters()
    assert data.ctypes.data % 64 == 0 and grad.ctypes.data % 64 == 0 and data.shape == grad.shape
    for name, p in model.named_parameters():
        assert np.shares_memory(p.data, data) and np.shares_memory(p.grad, grad), name
        assert p.data.ctypes.data % 64 == 0 and p.grad.ctypes.data % 64 == 0, name
        assert p.data.flags.c_contiguous
    after = model.state_dict()
    assert list(after) == list(before)
    for k in before:
        np.testing.assert_array_equal(after[k], before[k])
    assert model.flatten_parameters().flat_parameters()[0] is data  # idempotent: same buffer
    assert data.size >= model.num_parameters() and data.size % 16 == 0


@pytest.mark.parametrize("name,kw", OPTIMIZERS)
def test_flat_and_per_tensor_training_are_bitwise_equal(name, kw, rng, isa):
    x, y = _data(rng)
    plain, flat = _model(), _model()
    flat.flatten_parameters()
    opt_plain = nn.optim.OPTIMIZERS[name](plain, **kw)
    opt_flat = nn.optim.OPTIMIZERS[name](flat, **kw)
    calls = []
    step_fn = opt_flat._step_fn
    opt_flat._step_fn = lambda *a, **k: calls.append(len(a[0])) or step_fn(*a, **k)
    _train(plain, opt_plain, x, y)
    _train(flat, opt_flat, x, y)
    assert calls == [1] * 5  # one fused call over one flat array per step
    for (n, a), (_, b) in zip(plain.state_dict().items(), flat.state_dict().items()):
        np.testing.assert_array_equal(a, b, err_msg=n)
    sa, sb = opt_plain.state_dict(), opt_flat.state_dict()
    assert list(sa) == list(sb)
    for k in sa:
        np.testing.assert_array_equal(sa[k], sb[k], err_msg=k)


def test_flattening_after_the_optimizer_rebinds_it(rng):
    x, y = _data(rng)
    plain, late = _model(), _model()
    opt_plain, opt_late = nn.Adam(plain, lr=1e-2), nn.Adam(late, lr=1e-2)
    _train(plain, opt_plain, x, y, steps=2)
    _train(late, opt_late, x, y, steps=2)
    late.flatten_parameters()  # the optimizer's arrays and state move into the flat layout
    _train(plain, opt_plain, x, y, steps=3)
    _train(late, opt_late, x, y, steps=3)
    for (n, a), (_, b) in zip(plain.state_dict().items(), late.state_dict().items()):
        np.testing.assert_array_equal(a, b, err_msg=n)
    assert np.shares_memory(opt_late.buffers["exp_avg"][0], opt_late._bound[0].bufs["exp_avg"][0])


def test_groups_are_segments_one_call_each(rng):
    x, y = _data(rng)
    plain, flat = _model(), _model()
    opt_plain = nn.AdamW(nn.decay_groups(plain, 0.1), lr=1e-2)
    flat.compile(nn.AdamW(nn.decay_groups(flat, 0.1), lr=1e-2))  # compile orders the buffer by group
    opt_flat = flat.optimizer
    calls = []
    step_fn = opt_flat._step_fn
    opt_flat._step_fn = lambda *a, **k: calls.append((len(a[0]), k["weight_decay"])) or step_fn(*a, **k)
    _train(plain, opt_plain, x, y, steps=2)
    _train(flat, opt_flat, x, y, steps=2)
    assert calls == [(1, 0.1), (1, 0.0)] * 2
    for (n, a), (_, b) in zip(plain.state_dict().items(), flat.state_dict().items()):
        np.testing.assert_array_equal(a, b, err_msg=n)
    # per-group lr: a group's own lr wins, the others follow the optimizer's (schedules)
    opt = nn.SGD([{"params": [p for p in _model().parameters()][:2], "lr": 0.5}], lr=0.1)
    assert opt.param_groups[0]["lr"] == 0.5 and "hyper.group0.lr" in opt.state_dict()
    with pytest.raises(ValueError, match="a group may set"):
        nn.SGD([{"params": _model().parameters(), "momentum": 0.9}], lr=0.1)


class _CountingFill(np.ndarray):
    fills = 0

    def fill(self, value):
        type(self).fills += 1
        super().fill(value)


def test_load_state_dict_keeps_views_and_zero_grad_is_one_fill(rng):
    x, y = _data(rng)
    src, dst = _model(1), _model(2)
    dst.flatten_parameters()
    data, grad = dst.flat_parameters()
    dst.load_state_dict(src.state_dict())
    assert dst.flat_parameters()[0] is data
    for (n, p), (_, q) in zip(dst.named_parameters(), src.named_parameters()):
        assert np.shares_memory(p.data, data), n
        np.testing.assert_array_equal(p.data, q.data)
    loss = nn.CrossEntropyLoss()
    loss.forward(dst.forward(x), y)
    dst.backward(loss.backward())
    assert np.abs(grad).sum() > 0
    flat = dst.parameters()[0]._flat
    counting = grad.view(_CountingFill)
    flat.grad = counting  # observe the fills zero_grad makes
    dst.zero_grad()
    assert counting.fills == 1 and not grad.any()
    flat.grad = grad
    # the gaps between parameters hold zeros and stay zero through training
    opt = nn.Adam(dst, lr=1e-2, weight_decay=0.1)
    _train(dst, opt, x, y)
    used = np.zeros(data.size, bool)
    for p in dst.parameters():
        start = (p.data.ctypes.data - data.ctypes.data) // data.itemsize
        used[start:start + p.size] = True
    assert (~used).any() and not data[~used].any() and not grad.any()


def test_checkpoint_round_trip_into_a_flat_model(tmp_path, rng):
    x, y = _data(rng)
    a = _model().compile("adam", lr=1e-2)
    a.fit(x, y, epochs=1, batch_size=8, verbose=0)
    path = a.save(tmp_path / "ck.npz", a.optimizer)
    b = _model(5).compile("adam")
    data = b.flat_parameters()[0]
    b.load(path, b.optimizer)
    assert b.flat_parameters()[0] is data
    for (n, p), (_, q) in zip(a.named_parameters(), b.named_parameters()):
        np.testing.assert_array_equal(p.data, q.data, err_msg=n)
    a.fit(x, y, epochs=1, batch_size=8, verbose=0, shuffle=False)
    b.fit(x, y, epochs=1, batch_size=8, verbose=0, shuffle=False)
    for (n, p), (_, q) in zip(a.named_parameters(), b.named_parameters()):
        np.testing.assert_array_equal(p.data, q.data, err_msg=n)


def test_a_deep_copy_of_a_flat_model_owns_its_arrays(rng):
    import copy
    model = _model().flatten_parameters()
    twin = copy.deepcopy(model)
    assert twin.flat_parameters() is None
    for (n, p), (_, q) in zip(model.named_parameters(), twin.named_parameters()):
        np.testing.assert_array_equal(p.data, q.data, err_msg=n)
        assert not np.shares_memory(p.data, q.data)
    twin.flatten_parameters()
    twin.parameters()[0].grad += 1.0
    twin.zero_grad()
    assert not twin.flat_parameters()[1].any()


def test_flatten_errors():
    model = _model()
    other = _model()
    with pytest.raises(ValueError, match="not a parameter of this model"):
        model.flatten_parameters([other.parameters()])
    with pytest.raises(ValueError, match="more than one group"):
        ps = model.parameters()
        model.flatten_parameters([ps[:2], ps[1:3]])
    assert model.flat_parameters() is None  # nothing changed
