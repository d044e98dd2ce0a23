"""Pruning masks in the fused optimizer steps (ops.*_step(masks=...), Parameter.set_mask,
the optimizers' flat and per-tensor layouts, checkpoints).

The float64 references are test_optim's (torch.optim's rules); a masked step is that
step with the parameter and every state buffer set to 0 where the mask is 0."""
import numpy as np
import pytest

import nnforge
import nnforge.ops as ops
from nnforge import nn
from test_flat_params import OPTIMIZERS, _data, _model, _train
from test_optim import VARIANT_IDS, VARIANTS, Reference, assert_within, make_problem

SHAPES = [(1,), (7,), (4097,), (211, 190)]


def _masks(rng, shapes, keep=0.6):
    masks = [(rng.random(s) < keep).astype(np.uint8) for s in shapes]
    masks[0][...] = 0  # a fully pruned tensor
    return masks


@pytest.mark.parametrize("variant", VARIANTS, ids=VARIANT_IDS)
def test_masked_step_matches_reference(isa, rng, variant):
    opt, cfg = variant
    params, st = make_problem(rng, opt, cfg, SHAPES)
    masks = _masks(rng, SHAPES)
    ref = Reference(opt, cfg, params)
    grads = [rng.standard_normal(s).astype(np.float32) for s in SHAPES]
    assert opt.call(params, grads, st, 1, cfg) is True  # state from an unmasked step: pruning zeroes it
    ref.step(grads, 1)
    for t in range(2, 8):
        grads = [rng.standard_normal(s).astype(np.float32) for s in SHAPES]
        assert opt.call(params, grads, st, t, cfg, masks=masks) is True
        ref.step(grads, t)
        for i, m in enumerate(masks):
            ref.p[i][m == 0] = 0.0
            for buf in ref.st[i].values():
                buf[m == 0] = 0.0
    for i, m in enumerate(masks):
        pruned = m == 0
        assert not params[i][pruned].any() and not np.signbit(params[i][pruned]).any(), f"tensor {i}"
        for name, bufs in st.items():
            assert not bufs[i][pruned].any(), f"{name}[{i}] not kept 0 where pruned"
        assert_within(params[i], ref.p[i], ref.tol(i), f"tensor {i} shape {SHAPES[i]}")


def _run(variant, seed, steps=3, **extra_of_rng):
    opt, cfg = variant
    rng = np.random.default_rng(seed)
    shapes = [(70001,), (3, 5), (1000003,)]
    params, st = make_problem(rng, opt, cfg, shapes)
    extra = {k: make(rng, shapes) for k, make in extra_of_rng.items()}
    for t in range(1, steps + 1):
        grads = [rng.standard_normal(s).astype(np.float32) for s in shapes]
        assert opt.call(params, grads, st, t, cfg, **extra) is True
    return params, st


def _assert_runs_equal(a, b):
    (pa, sa), (pb, sb) = a, b
    for x, y in zip(pa, pb):
        np.testing.assert_array_equal(x, y)
    for name in sa:
        for x, y in zip(sa[name], sb[name]):
            np.testing.assert_array_equal(x, y)


@pytest.mark.parametrize("variant", VARIANTS[1::2], ids=VARIANT_IDS[1::2])
def test_all_ones_mask_is_bitwise_no_mask(isa, seed, variant):
    ones = lambda rng, shapes: [np.ones(s, np.uint8) for s in shapes]  # noqa: E731
    _assert_runs_equal(_run(variant, seed), _run(variant, seed, masks=ones))


@pytest.mark.parametrize("variant", [VARIANTS[2], VARIANTS[5], VARIANTS[8], VARIANTS[11], VARIANTS[15]],
                         ids=["sgd", "adam", "adamw", "rmsprop", "adagrad"])
def test_masked_threads_bitwise_equal(threads, seed, variant):
    runs = []
    for nt in (1, 2):
        nnforge.set_num_threads(nt)
        runs.append(_run(variant, seed, masks=_masks))
    _assert_runs_equal(*runs)


# ---- bad input ------------------------------------------------------------------------------
def _sgd_lists(rng):
    p = [rng.standard_normal((4, 3)).astype(np.float32), rng.standard_normal(5).astype(np.float32)]
    g = [np.ones_like(x) for x in p]
    return p, g


@pytest.mark.parametrize("bad,err,words", [
    (lambda p: [np.ones((4, 3), np.float32), np.ones(5, np.uint8)], TypeError, "masks[0]"),
    (lambda p: [np.ones((3, 4), np.uint8), np.ones(5, np.uint8)], ValueError, "masks[0] must have the shape"),
    (lambda p: [np.ones((4, 3), np.uint8)], ValueError, "masks has 1 arrays"),
    (lambda p: [np.ones((4, 3), np.uint8), np.ones(10, np.uint8)[::2]], ValueError, "masks[1]"),
    (lambda p: [np.ones((4, 3), np.uint8), p[1].view(np.uint8)[:5]], ValueError, "share memory"),
    (lambda p: np.ones((4, 3), np.uint8), TypeError, "masks must be a list"),
])
def test_bad_masks_change_nothing(rng, bad, err, words):
    p, g = _sgd_lists(rng)
    before = [x.copy() for x in p]
    with pytest.raises(err, match=None) as info:
        ops.sgd_step(p, g, lr=0.1, step=1, masks=bad(p))
    assert words in str(info.value)
    for x, y in zip(p, before):
        np.testing.assert_array_equal(x, y)


def test_set_mask_validates_and_prunes(rng):
    p = nn.Parameter(rng.standard_normal((3, 4)))
    data = p.data
    with pytest.raises(TypeError, match="uint8 or bool"):
        p.set_mask(np.ones((3, 4), np.float32))
    with pytest.raises(TypeError, match="numpy array"):
        p.set_mask([[1] * 4] * 3)
    with pytest.raises(ValueError, match=r"shape \(3, 4\), got \(4, 3\)"):
        p.set_mask(np.ones((4, 3), np.uint8))
    with pytest.raises(ValueError, match="only 0 .* and 1"):
        p.set_mask(np.full((3, 4), 2, np.uint8))
    assert p.mask is None
    mask = rng.random((3, 4)) < 0.5
    kept = data[mask].copy()
    p.set_mask(mask)
    assert p.data is data and p.mask.dtype == np.uint8
    np.testing.assert_array_equal(p.data[mask], kept)
    assert not p.data[~mask].any()
    p.clear_mask()
    assert p.mask is None


# ---- optimizers: flat and per-tensor layouts ---------------------------------------------
def _prune(model, rng):
    masks = {}
    for name, p in model.named_parameters():
        if p.data.ndim >= 2:
            masks[name] = (rng.random(p.shape) < 0.5).astype(np.uint8)
            p.set_mask(masks[name])
    return masks


@pytest.mark.parametrize("name,kw", OPTIMIZERS)
def test_masked_training_flat_equals_per_tensor_and_stays_pruned(name, kw, rng, isa):
    x, y = _data(rng)
    plain, flat = _model(), _model()
    opt_plain = nn.optim.OPTIMIZERS[name](plain, **kw)
    opt_flat = nn.optim.OPTIMIZERS[name](flat, **kw)
    flat.flatten_parameters()  # after the optimizer: it rebinds, masks set before or after alike
    mask_seed = int(rng.integers(1 << 30))
    masks = _prune(plain, np.random.default_rng(mask_seed))
    _prune(flat, np.random.default_rng(mask_seed))
    _train(plain, opt_plain, x, y)
    _train(flat, opt_flat, x, y)
    for (n, a), (_, b) in zip(plain.named_parameters(), flat.named_parameters()):
        np.testing.assert_array_equal(a.data, b.data, err_msg=n)
        if n in masks:
            assert not a.data[masks[n] == 0].any(), n
            assert np.shares_memory(b.mask, b._flat.extras["mask"]), n  # the flat mask buffer
    for i, p in enumerate(opt_plain.params):
        for bname, bufs in opt_plain.buffers.items():
            if p.mask is not None:
                assert not bufs[i][p.mask == 0].any(), f"{bname}.{i} not kept 0 where pruned"
    for k, v in opt_plain.state_dict().items():
        np.testing.assert_array_equal(v, opt_flat.state_dict()[k], err_msg=k)


# ---- checkpoints -------------------------------------------------------------------------
def test_masks_in_state_dict_and_load_all_or_nothing(rng):
    src, dst = _model(), _model(3)
    masks = _prune(src, rng)
    state = src.state_dict()
    assert all(state[n + ".mask"].dtype == np.uint8 for n in masks)
    bad = dict(state)
    bad[next(iter(masks)) + ".mask"] = np.full(state[next(iter(masks)) + ".mask"].shape, 2, np.uint8)
    before = dst.state_dict()
    with pytest.raises(ValueError, match=r"\.mask' is not a valid pruning mask"):
        dst.load_state_dict(bad)
    after = dst.state_dict()
    assert list(after) == list(before) and all(np.array_equal(after[k], before[k]) for k in before)
    dst.load_state_dict(state)
    for n, p in dst.named_parameters():
        if n in masks:
            np.testing.assert_array_equal(p.mask, masks[n])
        else:
            assert p.mask is None
    dst.load_state_dict(_model().state_dict())  # a state without masks clears them
    assert all(p.mask is None for p in dst.parameters())


def test_masks_survive_checkpoint_and_resume(tmp_path, rng):
    x, y = _data(rng)
    a = _model().compile("adam", lr=1e-2)
    masks = _prune(a, rng)
    a.fit(x, y, epochs=1, batch_size=8, verbose=0, shuffle=False)
    path = a.save(tmp_path / "ck.npz", a.optimizer)
    b = _model(5).compile("adam", lr=1e-2)
    b.load(path, b.optimizer)
    for (n, p), (_, q) in zip(a.named_parameters(), b.named_parameters()):
        np.testing.assert_array_equal(p.data, q.data, err_msg=n)
        if n in masks:
            np.testing.assert_array_equal(q.mask, masks[n], err_msg=n)
    a.fit(x, y, epochs=1, batch_size=8, verbose=0, shuffle=False)
    b.fit(x, y, epochs=1, batch_size=8, verbose=0, shuffle=False)
    for (n, p), (_, q) in zip(a.named_parameters(), b.named_parameters()):
        np.testing.assert_array_equal(p.data, q.data, err_msg=n)
        if n in masks:
            assert not q.data[masks[n] == 0].any(), n
