"""nnforge.prune: exact counts, masks through training and checkpoints, structured
removal (function preserved, shapes shrink, still trains), the gradual schedule, errors."""
import numpy as np
import pytest

import nnforge
from nnforge import nn, prune


def _mlp(seed=0):
    nnforge.seed(seed)
    return nn.Sequential(nn.Linear(13, 11, activation="relu"), nn.Linear(11, 7, activation="relu"), nn.Linear(7, 3))


def _zeros(p):
    return p.size - np.count_nonzero(p.data)


@pytest.mark.parametrize("amount", [0.0, 0.3, 0.5, 0.9, 1.0])
def test_magnitude_layer_scope_prunes_exact_counts_of_smallest(amount):
    model = _mlp()
    before = [np.abs(m.weight.data).copy() for m in model]
    prune.magnitude(model, amount)
    for m, a in zip(model, before):
        k = round(amount * a.size)
        assert _zeros(m.weight) == k and int((m.weight.mask == 0).sum()) == k
        if 0 < k < a.size:  # every pruned |w| is <= every kept one
            assert a[m.weight.mask == 0].max() <= a[m.weight.mask == 1].min()
    assert all(np.count_nonzero(m.bias.data) == m.bias.size for m in model)  # biases untouched


def test_magnitude_global_scope_and_ties():
    model = _mlp()
    prune.magnitude(model, 0.6, scope="global")
    total = sum(m.weight.size for m in model)
    assert sum(_zeros(m.weight) for m in model) == round(0.6 * total)
    p = nn.Parameter(np.array([[1.0, -1.0, 1.0, 2.0]], np.float32))  # ties: lowest flat index first
    prune.magnitude([p], 0.5)
    assert p.mask.tolist() == [[0, 0, 1, 1]]


def test_pruning_is_cumulative_and_random_is_reproducible():
    model = _mlp()
    prune.random(model, 0.5, seed=3)
    first = [m.weight.mask.copy() for m in model]
    prune.magnitude(model, 0.7)
    for m, f in zip(model, first):  # the first round's pruned weights stay pruned
        assert np.all(m.weight.mask[f == 0] == 0) and _zeros(m.weight) == round(0.7 * m.weight.size)
    again = _mlp()
    prune.random(again, 0.5, seed=3)
    assert all(np.array_equal(m.weight.mask, f) for m, f in zip(again, first))


def test_masks_survive_training_and_checkpoints(tmp_path, rng):
    model = _mlp()
    prune.magnitude(model, 0.8)
    masks = [m.weight.mask.copy() for m in model]
    x, y = rng.standard_normal((64, 13)).astype(np.float32), rng.integers(0, 3, 64)
    model.compile("adam", lr=1e-2)
    model.fit(x, y, epochs=2, batch_size=16, verbose=0)
    for m, k in zip(model, masks):
        assert np.all(m.weight.data[k == 0] == 0.0)
    path = tmp_path / "pruned.npz"
    model.save(path)
    loaded = _mlp(seed=5)
    loaded.load(path)
    for m, k in zip(loaded, masks):
        assert np.array_equal(m.weight.mask, k)
    prune.remove(model)
    assert all(m.weight.mask is None for m in model) and prune.sparsity(model).total > 0.75


def test_sparsity_report():
    model = _mlp()
    prune.magnitude(model, 0.5)
    report = prune.sparsity(model)
    sizes = [m.weight.size for m in model]
    assert report.total == pytest.approx(sum(round(0.5 * s) for s in sizes) / sum(sizes))
    assert report["0.weight"] == pytest.approx(round(0.5 * sizes[0]) / sizes[0])
    assert "total" in str(report)


def _zero_units(layer, units):
    if isinstance(layer, nn.Linear):
        layer.weight.data[:, units] = 0.0
    else:
        layer.weight.data[units] = 0.0
    if layer.bias is not None:
        layer.bias.data[units] = 0.0


def test_structured_mlp_preserves_function_and_shrinks(rng):
    model = _mlp()
    _zero_units(model[0], [1, 4, 5, 8])
    _zero_units(model[1], [0, 3, 6])
    x = rng.standard_normal((9, 13)).astype(np.float32)
    before = model.forward(x).copy()
    prune.structured(model, 0.4)  # round(4.4) = 4 of 11, round(2.8) = 3 of 7
    assert (model[0].out_features, model[1].in_features, model[1].out_features, model[2].in_features) == (7, 7, 4, 4)
    assert model[0].weight.shape == (13, 7) and model[2].weight.shape == (4, 3) and model[2].out_features == 3
    np.testing.assert_allclose(model.forward(x), before, rtol=1e-5, atol=1e-5)


def test_structured_cnn_preserves_function_and_trains(rng):
    nnforge.seed(1)
    model = nn.Sequential(nn.Conv2d(2, 6, 3, padding=1, activation="relu"), nn.MaxPool2d(2),
                          nn.Conv2d(6, 5, 3, padding=1, activation="relu"), nn.Flatten(),
                          nn.Linear(5 * 4 * 4, 8, activation="relu"), nn.Linear(8, 3))
    _zero_units(model[0], [0, 3, 4])
    _zero_units(model[2], [2, 3])
    _zero_units(model[4], [1, 2, 5, 7])
    x = rng.standard_normal((4, 2, 8, 8)).astype(np.float32)
    before = model.forward(x).copy()
    prune.structured(model, 0.5, criterion="l2")  # removes round(3), round(2.5) = 2, round(4) units
    assert model[0].weight.shape == (3, 2, 3, 3) and model[2].weight.shape == (3, 3, 3, 3)
    assert model[4].weight.shape == (3 * 16, 4) and model[5].weight.shape == (4, 3)
    np.testing.assert_allclose(model.forward(x), before, rtol=1e-5, atol=1e-5)
    y = rng.integers(0, 3, 4)
    model.compile("sgd", lr=0.1)
    hist = model.fit(x, y, epochs=3, batch_size=4, verbose=0)
    assert np.all(np.isfinite(hist.history["loss"]))


def test_structured_shrinks_batch_norm():
    nnforge.seed(2)
    model = nn.Sequential(nn.Conv2d(1, 4, 3, bias=False), nn.BatchNorm2d(4), nn.ReLU(), nn.Conv2d(4, 2, 1))
    prune.structured(model, 0.5)
    bn = model[1]
    assert bn.num_features == 2 and bn.weight.shape == (2,) and bn.running_mean.shape == (2,)
    assert model[3].weight.shape == (2, 2, 1, 1)
    assert model.forward(np.ones((1, 1, 5, 5), np.float32)).shape == (1, 2, 3, 3)


def test_gradual_schedule_values():
    s = prune.PruningSchedule(0.9, initial=0.1, start=10, frequency=5, steps=4)
    for t in (0, 9, 10):
        assert s.sparsity(t) == pytest.approx(0.1)
    for k in range(5):
        t = 10 + 5 * k
        assert s.is_pruning_step(t)
        assert s.sparsity(t) == pytest.approx(0.9 + (0.1 - 0.9) * (1 - k / 4) ** 3)
    assert not s.is_pruning_step(11) and not s.is_pruning_step(5) and not s.is_pruning_step(35)
    assert s.sparsity(1000) == pytest.approx(0.9)


def test_gradual_pruning_callback_and_function(rng):
    model = _mlp()
    cb = prune.GradualPruning(prune.PruningSchedule(0.75, start=0, frequency=2, steps=3))
    x, y = rng.standard_normal((48, 13)).astype(np.float32), rng.integers(0, 3, 48)
    model.compile("adam", lr=1e-2)
    model.fit(x, y, epochs=2, batch_size=8, verbose=0, callbacks=[cb])  # 12 steps; last prune at step 6
    assert cb.current == pytest.approx(0.75)
    for m in model:
        assert _zeros(m.weight) >= round(0.75 * m.weight.size)
    loop = _mlp()
    sched = prune.PruningSchedule(0.5, start=1, frequency=1, steps=2)
    assert prune.gradual_prune(loop, 0, sched) is None
    assert prune.gradual_prune(loop, 2, sched) == pytest.approx(0.5 - 0.5 * 0.5 ** 3)


def test_to_sparse_converts_pruned_linears(rng):
    model = _mlp()
    prune.magnitude(model[0], 0.9)
    prune.magnitude(model[1], 0.5)
    x = rng.standard_normal((5, 13)).astype(np.float32)
    before = model.forward(x).copy()
    prune.to_sparse(model, min_sparsity=0.8)
    assert isinstance(model[0], nn.SparseLinear) and isinstance(model[1], nn.Linear)
    np.testing.assert_allclose(model.forward(x), before, rtol=1e-5, atol=1e-5)
    assert prune.sparsity(model)["0.weight"] == pytest.approx(round(0.9 * 143) / 143)


def test_bad_inputs():
    model = _mlp()
    for amount in (-0.1, 1.5, float("nan")):
        with pytest.raises(ValueError, match="amount"):
            prune.magnitude(model, amount)
    with pytest.raises(TypeError, match="amount"):
        prune.magnitude(model, "0.5")
    with pytest.raises(ValueError, match="scope"):
        prune.magnitude(model, 0.5, scope="model")
    with pytest.raises(ValueError, match="not a prunable layer"):
        prune.magnitude(model, 0.5, include=nn.BatchNorm1d)
    with pytest.raises(ValueError, match="no prunable layer"):
        prune.magnitude(nn.Sequential(nn.ReLU(), nn.BatchNorm1d(3)), 0.5)
    with pytest.raises(TypeError, match="Parameter"):
        prune.magnitude([np.ones(3, np.float32)], 0.5)
    with pytest.raises(TypeError, match="seed"):
        prune.random(model, 0.5, seed=1.0)
    with pytest.raises(ValueError, match=r"\[0, 1\)"):
        prune.structured(model, 1.0)
    with pytest.raises(ValueError, match="criterion"):
        prune.structured(model, 0.5, criterion="l3")
    with pytest.raises(TypeError, match="Sequential"):
        prune.structured(nn.Linear(3, 2), 0.5)
    with pytest.raises(ValueError, match="no Linear / Conv2d"):
        prune.structured(nn.Sequential(nn.Linear(3, 2), nn.Softmax(), nn.Linear(2, 2)), 0.5)
    with pytest.raises(ValueError, match="initial"):
        prune.PruningSchedule(0.2, initial=0.5)
    with pytest.raises(ValueError, match="frequency"):
        prune.PruningSchedule(0.5, frequency=0)
    masks_before = [m.weight.mask for m in model]
    assert all(k is None for k in masks_before)  # failed calls changed nothing


def test_structured_keeps_masks_and_parameter_order():
    model = _mlp()
    prune.magnitude(model, 0.5)
    names = [n for n, _ in model.named_parameters()]
    prune.structured(model, 0.3)
    assert [n for n, _ in model.named_parameters()] == names
    for m in model:
        assert m.weight.mask.shape == m.weight.shape
        assert np.all(m.weight.data[m.weight.mask == 0] == 0.0)
