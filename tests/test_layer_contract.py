"""The layer contract: forward(*inputs) / backward(*grad_outputs) with one gradient per
input, through multi-input (Add, Concat), multi-output (Split, Fork, Parallel) layers and
the containers built on it (Sequential chaining tuples, Residual), checked by central
differences of float64 references (tests/layer_check.py)."""
import numpy as np
import pytest

from layer_check import check_layer, randn
from nnforge import nn


def lin(x, p, name):
    return x @ p[f"{name}.weight"] + p[f"{name}.bias"]


def test_add_two_and_three_inputs(rng):
    a, b, c = randn(rng, 3, 5), randn(rng, 3, 5), randn(rng, 3, 5)
    da, db = check_layer(nn.Add(), (a, b), lambda xs, p: xs[0] + xs[1], rng)
    assert da is not None and db is not None
    check_layer(nn.Add(), (a, b, c), lambda xs, p: xs[0] + xs[1] + xs[2], rng)


def test_concat_and_split_are_inverse(rng):
    a, b = randn(rng, 3, 2), randn(rng, 3, 4)
    check_layer(nn.Concat(axis=1), (a, b), lambda xs, p: np.concatenate(xs, axis=1), rng)
    x = randn(rng, 4, 5)
    check_layer(nn.Split((2, 3), axis=1), x, lambda v, p: (v[:, :2], v[:, 2:]), rng)
    check_layer(nn.Split(2, axis=0), x, lambda v, p: (v[:2], v[2:]), rng)
    check_layer(nn.Concat(axis=-1), (a, b), lambda xs, p: np.concatenate(xs, axis=-1), rng)


def test_fork_sums_its_gradients(rng):
    x = randn(rng, 3, 4)
    check_layer(nn.Fork(3), x, lambda v, p: (v, v, v), rng)


def test_parallel_branches_and_a_sequential_that_chains_tuples(isa, rng):
    x = randn(rng, 6, 5)
    par = nn.Parallel(nn.Linear(5, 3), nn.Sequential(nn.Linear(5, 4), nn.Tanh()))
    check_layer(par, x, lambda v, p: (lin(v, p, "0"), np.tanh(lin(v, p, "1.0"))), rng)
    # Parallel -> (y0, y1) -> Concat takes both -> Linear: tuples flow between layers
    model = nn.Sequential(par, nn.Concat(axis=1), nn.Linear(7, 2))

    def ref(v, p):
        h = np.concatenate([lin(v, p, "0.0"), np.tanh(lin(v, p, "0.1.0"))], axis=1)
        return lin(h, p, "2")
    check_layer(model, x, ref, rng)


def test_sequential_with_several_inputs_returns_one_gradient_each(isa, rng):
    a, b = randn(rng, 4, 3), randn(rng, 4, 3)
    model = nn.Sequential(nn.Add(), nn.Linear(3, 2, activation="relu"))
    da, db = check_layer(model, (a, b), lambda xs, p: np.maximum(lin(xs[0] + xs[1], p, "1"), 0.0), rng)
    np.testing.assert_array_equal(da, db)
    # a multi-output layer then a multi-input layer: Split -> Add
    check_layer(nn.Sequential(nn.Split(2), nn.Add()), randn(rng, 3, 8), lambda v, p: v[:, :4] + v[:, 4:], rng)


def test_residual_identity_and_projection(isa, rng):
    x = randn(rng, 5, 4)
    res = nn.Residual(nn.Sequential(nn.Linear(4, 4), nn.Tanh()))
    check_layer(res, x, lambda v, p: v + np.tanh(lin(v, p, "body.0")), rng)
    proj = nn.Residual(nn.Linear(4, 6, activation="relu"), projection=nn.Linear(4, 6, bias=False))
    check_layer(proj, x, lambda v, p: np.maximum(lin(v, p, "body"), 0.0) + v @ p["projection.weight"], rng)
    assert [n for n, _ in res.named_parameters()] == ["body.0.weight", "body.0.bias"]  # names as before


def test_contract_errors_name_shapes(rng):
    with pytest.raises(ValueError, match=r"\(3, 4\) float32, \(3, 5\) float32"):
        nn.Add().forward(randn(rng, 3, 4), randn(rng, 3, 5))
    with pytest.raises(ValueError, match="two or more"):
        nn.Add().forward(randn(rng, 3, 4))
    with pytest.raises(TypeError, match="input 1 must be a numpy.ndarray"):
        nn.Concat().forward(randn(rng, 3, 4), [1, 2])
    with pytest.raises(ValueError, match=r"match on the other axes, got \(3, 4\), \(2, 4\)"):
        nn.Concat().forward(randn(rng, 3, 4), randn(rng, 2, 4))
    with pytest.raises(ValueError, match=r"add up to 5, axis 1 has 6"):
        nn.Split((2, 3)).forward(randn(rng, 2, 6))
    with pytest.raises(ValueError, match="multiple of 4"):
        nn.Split(4).forward(randn(rng, 2, 6))
    with pytest.raises(ValueError, match="Residual skip and body outputs must have one shape"):
        nn.Residual(nn.Linear(4, 3)).forward(randn(rng, 2, 4))
    par = nn.Parallel(nn.Identity(), nn.Identity())
    par.forward(randn(rng, 2, 2))
    with pytest.raises(ValueError, match="expects 2 gradients"):
        par.backward(randn(rng, 2, 2))
    with pytest.raises(TypeError, match="Parallel item 1 is int"):
        nn.Parallel(nn.ReLU(), 3)
    with pytest.raises(RuntimeError, match="before forward"):
        nn.Add().backward(randn(rng, 2, 2))


class _TwoTower(nn.Model):
    """A custom model with the facade: two input halves through their own Linear, added."""

    def __init__(self):
        super().__init__()
        self.split = nn.Split(2)
        self.left, self.right = nn.Linear(4, 3), nn.Linear(4, 3)
        self.add = nn.Add()

    def forward(self, x):
        a, b = self.split.forward(x)
        return self.add.forward(self.left.forward(a), self.right.forward(b))

    def backward(self, grad_out):
        ga, gb = self.add.backward(grad_out)
        return self.split.backward(self.left.backward(ga), self.right.backward(gb))


def test_custom_model_gets_the_facade_and_learns(rng):
    x = randn(rng, 120, 8)
    y = (x[:, :4].sum(1) > x[:, 4:].sum(1)).astype(np.int64)
    model = _TwoTower().compile("adam", lr=0.05)
    assert model.flat_parameters() is not None  # compile flattened it
    hist = model.fit(x, y, epochs=15, batch_size=30, verbose=0)
    assert hist["loss"][-1] < 0.5 * hist["loss"][0]
    check_layer(_TwoTower(), x[:5], lambda v, p: lin(v[:, :4], p, "left") + lin(v[:, 4:], p, "right"), rng)
    assert "split (Split)" not in model.summary((8,), print_fn=None)  # one row: the whole model
