"""nnforge.nn layers and losses: forward vs float64 NumPy references, backward
(input AND parameter gradients, accumulation) vs central differences of those
references, train/eval behaviour, state_dict, seeding and bad inputs."""
from __future__ import annotations

import math

import numpy as np
import pytest

import nnforge
from nnforge import nn

import nn_reference as ref
from layer_check import check_layer, randn
from nn_reference import EPS32, assert_close, central_diff, f64


# --- float64 reference forwards: f(x, params) with params as a dict name -> array -------------
def linear_ref(act):
    def f(x, p):
        z = f64(x) @ p["weight"] + (p["bias"] if "bias" in p else 0.0)
        if act == "relu":
            return np.maximum(z, 0)
        if act == "gelu_tanh":
            return ref.gelu_tanh(z)
        if act == "gelu_erf":
            return ref.gelu_erf(z)
        return z
    return f


def layer_norm_ref(x, p):
    return ref.layer_norm(x, p.get("weight"), p.get("bias"))[0]


def batch_norm_ref(x, p):
    return ref.batch_norm_train(x, p.get("weight"), p.get("bias"))[0]


# --- layers --------------------------------------------------------------------------
@pytest.mark.parametrize("activation", [None, "relu", "gelu_tanh", "gelu_erf"])
@pytest.mark.parametrize("bias", [True, False])
def test_linear(rng, activation, bias):
    layer = nn.Linear(7, 5, bias=bias, activation=activation)
    x = randn(rng, 6, 7)
    check_layer(layer, x, linear_ref(activation), rng)


def test_linear_first_layer_skips_input_grad_and_shapes(rng):
    layer = nn.Linear(3, 4)
    assert layer.weight.shape == (3, 4) and layer.bias.shape == (4,)
    layer.needs_input_grad = False
    x = randn(rng, 2, 3)
    layer.forward(x)
    assert layer.backward(randn(rng, 2, 4)) is None
    assert np.abs(layer.weight.grad).sum() > 0
    with pytest.raises(ValueError, match=r"expected input of shape \(N, 3\), got \(2, 4\)"):
        layer.forward(randn(rng, 2, 4))
    with pytest.raises(ValueError, match=r"\(N, 3\), got \(3,\)"):
        layer.forward(randn(rng, 3))
    with pytest.raises(TypeError, match="float32"):
        layer.forward(np.zeros((2, 3)))
    with pytest.raises(ValueError, match=r"grad_out of shape \(2, 4\)"):
        layer.forward(x)
        layer.backward(randn(rng, 2, 5))
    with pytest.raises(ValueError, match="activation"):
        nn.Linear(3, 4, activation="tanh")
    with pytest.raises(ValueError, match="in_features"):
        nn.Linear(0, 4)
    with pytest.raises(RuntimeError, match="before forward"):
        nn.Linear(3, 4).backward(randn(rng, 2, 4))


def test_linear_default_init_like_torch():
    nnforge.seed(0)
    layer = nn.Linear(400, 300)
    bound = 1 / math.sqrt(400)
    for p in (layer.weight.data, layer.bias.data):
        assert p.dtype == np.float32 and np.abs(p).max() <= bound
        assert abs(p.std() - bound / math.sqrt(3)) < 0.1 * bound  # std of U(-b, b)


@pytest.mark.parametrize("name", ["ReLU", "LeakyReLU", "GELU_none", "GELU_tanh", "Tanh", "Sigmoid"])
def test_activation_layers(rng, name):
    x = randn(rng, 4, 6, scale=2.0)
    x[np.abs(x) < 1e-3] = 0.5
    layer, f = {
        "ReLU": (nn.ReLU(), lambda v, p: np.maximum(v, 0)),
        "LeakyReLU": (nn.LeakyReLU(0.2), lambda v, p: np.where(v > 0, v, 0.2 * v)),
        "GELU_none": (nn.GELU(), lambda v, p: ref.gelu_erf(v)),
        "GELU_tanh": (nn.GELU("tanh"), lambda v, p: ref.gelu_tanh(v)),
        "Tanh": (nn.Tanh(), lambda v, p: np.tanh(v)),
        "Sigmoid": (nn.Sigmoid(), lambda v, p: ref.sigmoid(v)),
    }[name]
    check_layer(layer, x, f, rng)


@pytest.mark.parametrize("shape,axis", [((3, 7), -1), ((2, 5, 3), 1)])
def test_softmax_layer(rng, shape, axis):
    check_layer(nn.Softmax(axis=axis), randn(rng, *shape), lambda v, p: ref.softmax(v, axis=axis), rng)


def test_flatten(rng):
    layer = nn.Flatten()
    x = randn(rng, 2, 3, 4)
    y = check_layer(layer, x, lambda v, p: v.reshape(2, -1), rng)
    assert y.shape == (2, 3, 4)


@pytest.mark.parametrize("shape", [(5, 7), (2, 3, 7)])
@pytest.mark.parametrize("affine", [True, False])
def test_layer_norm_layer(rng, shape, affine):
    layer = nn.LayerNorm(7, elementwise_affine=affine)
    if affine:  # non-trivial parameters so their gradients are exercised
        layer.weight.data[:] = randn(rng, 7)
        layer.bias.data[:] = randn(rng, 7)
    check_layer(layer, randn(rng, *shape), layer_norm_ref, rng)
    with pytest.raises(ValueError, match=r"\(\.\.\., 7\), got \(5, 6\)"):
        layer.forward(randn(rng, 5, 6))


@pytest.mark.parametrize("shape", [(6, 4), (3, 4, 5)])
def test_batch_norm1d_training(rng, shape):
    layer = nn.BatchNorm1d(4, momentum=0.2)
    layer.weight.data[:] = randn(rng, 4)
    layer.bias.data[:] = randn(rng, 4)
    x = randn(rng, *shape, scale=2.0) + 3.0
    check_layer(layer, x, batch_norm_ref, rng)
    # two training forwards happened in check_layer: running stats moved twice
    _, mean, var = ref.batch_norm_train(x, None, None)
    m = x.size // 4
    want_mean = (1 - 0.8 ** 2) * mean
    want_var = 0.8 ** 2 * 1.0 + (1 - 0.8 ** 2) * var * m / (m - 1)
    assert_close(layer.running_mean, want_mean, 64 * EPS32 * (1 + np.abs(want_mean)), "running_mean")
    assert_close(layer.running_var, want_var, 64 * EPS32 * (1 + want_var), "running_var")


def test_batch_norm1d_eval_and_state_dict(rng):
    layer = nn.BatchNorm1d(3)
    x = randn(rng, 8, 3) * 2 + 1
    for _ in range(3):
        layer.forward(x)
    layer.eval()
    rm, rv = layer.running_mean.copy(), layer.running_var.copy()
    xe = randn(rng, 5, 3)
    y = layer.forward(xe)
    assert np.array_equal(layer.running_mean, rm) and np.array_equal(layer.running_var, rv)
    want = (f64(xe) - rm) / np.sqrt(f64(rv) + 1e-5)
    assert_close(y, want, 16 * EPS32 * (1 + np.abs(want)), "eval forward")
    dy = randn(rng, 5, 3)
    assert_close(layer.backward(dy), f64(dy) / np.sqrt(f64(rv) + 1e-5), 16 * EPS32 * (1 + np.abs(dy)), "eval dx")
    sd = layer.state_dict()
    assert set(sd) == {"weight", "bias", "running_mean", "running_var"}
    other = nn.BatchNorm1d(3).eval()
    other.load_state_dict(sd)
    assert np.array_equal(other.forward(xe), y)
    with pytest.raises(ValueError, match=r"\(N, 3\) or \(N, 3, \*\)"):
        layer.forward(randn(rng, 5, 4))


def test_dropout_layer(rng):
    nnforge.seed(11)
    layer = nn.Dropout(0.25)
    x = randn(rng, 40, 50)
    y = layer.forward(x)
    mask = y != 0
    assert_close(y, np.where(mask, f64(x) / 0.75, 0), 2 * EPS32 * np.abs(f64(x)), "train forward")
    assert abs(mask.mean() - 0.75) < 6 * math.sqrt(0.25 * 0.75 / x.size)
    dy = randn(rng, 40, 50)
    assert_close(layer.backward(dy), np.where(mask, f64(dy) / 0.75, 0), 2 * EPS32 * np.abs(f64(dy)), "backward")
    y2 = layer.forward(x)
    assert not np.array_equal(y2 != 0, mask)  # a fresh mask every step
    nnforge.seed(11)
    assert np.array_equal(nn.Dropout(0.25).forward(x), y)  # seeded: reproducible
    layer.eval()
    assert layer.forward(x) is x and layer.backward(dy) is dy
    with pytest.raises(ValueError, match=r"\[0, 1\)"):
        nn.Dropout(1.0)


def test_embedding(rng):
    layer = nn.Embedding(10, 3)
    idx = np.array([[1, 4, 4], [9, 0, 1]])
    y = layer.forward(idx)
    assert y.shape == (2, 3, 3) and np.array_equal(y, layer.weight.data[idx])
    w = randn(rng, 2, 3, 3)
    layer.zero_grad()
    assert layer.backward(w) is None
    fd = central_diff(lambda W: float((f64(w) * W[idx]).sum()), f64(layer.weight.data))
    assert_close(layer.weight.grad, fd, 1e-6 + 8 * EPS32 * np.abs(fd), "dW")
    layer.forward(idx.astype(np.int32))
    layer.backward(w)
    assert_close(layer.weight.grad, 2 * fd, 1e-6 + 16 * EPS32 * np.abs(fd), "accumulate")
    with pytest.raises(ValueError, match=r"index 10 is out of range \[0, 10\)"):
        layer.forward(np.array([3, 10]))
    with pytest.raises(TypeError, match="integer"):
        layer.forward(np.array([1.0]))


def test_mlp_sequential_gradients(rng):
    nnforge.seed(5)
    model = nn.Sequential(nn.Linear(6, 8, activation="relu"), nn.LayerNorm(8), nn.Linear(8, 5, activation="gelu_tanh"),
                          nn.Tanh(), nn.Linear(5, 3))
    x = randn(rng, 4, 6)
    labels = rng.integers(0, 3, size=4)
    loss_fn = nn.CrossEntropyLoss(label_smoothing=0.1)
    model.zero_grad()
    loss_fn.forward(model.forward(x), labels)
    model.backward(loss_fn.backward())
    params = [(name, f64(p.data)) for name, p in model.named_parameters()]

    def total(values):
        h = f64(x)
        v = dict(values)
        h = np.maximum(h @ v["0.weight"] + v["0.bias"], 0)
        h = ref.layer_norm(h, v["1.weight"], v["1.bias"])[0]
        h = np.tanh(ref.gelu_tanh(h @ v["2.weight"] + v["2.bias"]))
        return float(ref.cross_entropy(h @ v["4.weight"] + v["4.bias"], labels, label_smoothing=0.1))

    for i, (name, p) in enumerate(model.named_parameters()):
        def at(val, i=i):
            vals = list(params)
            vals[i] = (vals[i][0], val)
            return total(vals)
        fd = central_diff(at, params[i][1])
        assert_close(p.grad, fd, 1e-3 * (np.abs(fd).max() + 1e-2), name)


# --- losses ------------------------------------------------------------------------------
@pytest.mark.parametrize("reduction", ["mean", "sum"])
@pytest.mark.parametrize("kind", ["mse", "l1", "bce", "bce_pos_weight", "ce", "ce_weight_smooth"])
def test_losses_vs_reference_and_central_differences(rng, kind, reduction):
    n, c = 5, 4
    pred = randn(rng, n, c, scale=2.0)
    pw = (rng.random(c) + 0.5).astype(np.float32)
    cw = (rng.random(c) + 0.5).astype(np.float32)
    red = (lambda v: v.mean()) if reduction == "mean" else (lambda v: v.sum())
    if kind in ("ce", "ce_weight_smooth"):
        target = rng.integers(0, c, size=n)
        kw = {"weight": cw, "label_smoothing": 0.2} if kind == "ce_weight_smooth" else {}
        loss_fn = nn.CrossEntropyLoss(reduction=reduction, **kw)
        f = lambda z: float(ref.cross_entropy(z, target, kw.get("weight"), kw.get("label_smoothing", 0.0), reduction))
    else:
        target = rng.random((n, c)).astype(np.float32) if kind.startswith("bce") else randn(rng, n, c)
        t = f64(target)
        if kind == "mse":
            loss_fn, f = nn.MSELoss(reduction), lambda z: float(red((z - t) ** 2))
        elif kind == "l1":
            loss_fn, f = nn.L1Loss(reduction), lambda z: float(red(np.abs(z - t)))
        else:
            w = f64(pw) if kind == "bce_pos_weight" else 1.0
            loss_fn = nn.BCEWithLogitsLoss(reduction, pos_weight=pw if kind == "bce_pos_weight" else None)
            f = lambda z: float(red(-(w * t * np.log(ref.sigmoid(z)) + (1 - t) * np.log(ref.sigmoid(-z)))))
    loss = loss_fn(pred, target)
    want = f(f64(pred))
    assert isinstance(loss, float)
    assert abs(loss - want) <= 64 * EPS32 * (1 + abs(want)) * c
    fd = central_diff(f, pred)
    assert_close(loss_fn.backward(), fd, 64 * EPS32 * (1 + np.abs(fd)) + 1e-7, "dpred")


def test_bce_with_logits_is_stable_for_huge_logits():
    loss_fn = nn.BCEWithLogitsLoss()
    z = np.array([[1e4, -1e4, 80.0, -80.0]], np.float32)
    t = np.array([[1.0, 0.0, 0.0, 1.0]], np.float32)
    loss = loss_fn(z, t)
    assert math.isfinite(loss) and abs(loss - 40.0) < 1e-4  # two exact (0), two of 80 each, mean of 4
    assert np.isfinite(loss_fn.backward()).all()


def test_loss_bad_inputs(rng):
    with pytest.raises(ValueError, match=r"target shape \(3,\) does not match prediction shape \(3, 2\)"):
        nn.MSELoss()(randn(rng, 3, 2), np.zeros(3))
    with pytest.raises(ValueError, match="reduction"):
        nn.MSELoss("none")
    with pytest.raises(ValueError, match="label 5 at position 1"):
        nn.CrossEntropyLoss()(randn(rng, 2, 5), np.array([0, 5]))
    with pytest.raises(RuntimeError, match="before forward"):
        nn.L1Loss().backward()
    with pytest.raises(TypeError, match="float32"):
        nn.BCEWithLogitsLoss()(np.zeros((2, 2)), np.zeros((2, 2)))


# --- model-level behaviour ----------------------------------------------------------------
def make_model():
    return nn.Sequential(nn.Linear(12, 16, activation="relu"), nn.BatchNorm1d(16), nn.Dropout(0.1),
                         nn.Linear(16, 4))


def test_seeded_init_and_state_dict_round_trip(rng):
    nnforge.seed(123)
    a = make_model()
    nnforge.seed(123)
    b = make_model()
    for (na, pa), (nb, pb) in zip(a.named_parameters(), b.named_parameters()):
        assert na == nb and np.array_equal(pa.data, pb.data)
    x = randn(rng, 10, 12)
    a.forward(x)  # moves BatchNorm running stats
    sd = a.state_dict()
    c = make_model()
    c.load_state_dict(sd)
    a.eval()
    c.eval()
    assert np.array_equal(a.forward(x), c.forward(x))
    bad = dict(sd)
    bad["0.weight"] = np.zeros((3, 3), np.float32)
    with pytest.raises(ValueError, match="0.weight"):
        c.load_state_dict(bad)


def test_training_reduces_loss(rng):
    """A few plain SGD steps on a separable problem: the loss must go down."""
    nnforge.seed(7)
    model = nn.Sequential(nn.Linear(10, 32, activation="relu"), nn.Linear(32, 3))
    x = randn(rng, 64, 10)
    labels = np.argmax(f64(x[:, :3]), axis=1)
    loss_fn = nn.CrossEntropyLoss()
    first = None
    for _ in range(30):
        model.zero_grad()
        loss = loss_fn(model(x), labels)
        first = loss if first is None else first
        model.backward(loss_fn.backward())
        for p in model.parameters():
            p.data -= 0.5 * p.grad
    assert loss < 0.5 * first
