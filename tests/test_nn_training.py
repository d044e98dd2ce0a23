"""Optimizers, LR schedules, metrics, callbacks and the Keras-style fit/evaluate/predict loop."""
import math

import numpy as np
import pytest

import nnforge
from nnforge import data, nn, ops
from nnforge.nn import optim, schedules
from nnforge.nn.callbacks import Callback, EarlyStopping, LRScheduler, ModelCheckpoint

# --- optimizers --------------------------------------------------------------------------

SHAPES = [(7, 3), (1,), (13,), (2, 5, 3)]


def _params(rng):
    return [nn.Parameter(rng.normal(size=s).astype(np.float32)) for s in SHAPES]


def _grads(rng, steps):
    return [[rng.normal(size=s).astype(np.float32) for s in SHAPES] for _ in range(steps)]


def _run_nnforge(cls, params, grads, **kw):
    opt = cls(params, **kw)
    for gs in grads:
        for p, g in zip(params, gs):
            p.grad[...] = g
        assert opt.step(zero_grad=True)
        assert all(not p.grad.any() for p in params)
    return opt


CONFIGS = [
    ("SGD", dict(lr=0.1)),
    ("SGD", dict(lr=0.05, momentum=0.9, weight_decay=0.01)),
    ("SGD", dict(lr=0.05, momentum=0.9, nesterov=True)),
    ("SGD", dict(lr=0.05, momentum=0.8, dampening=0.3, maximize=True)),
    ("Adam", dict(lr=0.01)),
    ("Adam", dict(lr=0.01, weight_decay=0.1, amsgrad=True)),
    ("AdamW", dict(lr=0.01, weight_decay=0.1)),
    ("RMSprop", dict(lr=0.01)),
    ("RMSprop", dict(lr=0.01, momentum=0.9, centered=True, weight_decay=0.01)),
    ("Adagrad", dict(lr=0.1, lr_decay=0.01, weight_decay=0.01)),
]


@pytest.mark.parametrize("name,kw", CONFIGS)
def test_optimizers_match_torch(name, kw, rng):
    torch = pytest.importorskip("torch")
    params = _params(rng)
    start = [p.data.copy() for p in params]
    grads = _grads(rng, 6)
    _run_nnforge(getattr(optim, name), params, grads, **kw)
    tparams = [torch.tensor(s, requires_grad=True) for s in start]
    tkw = dict(kw)
    topt = getattr(torch.optim, name)(tparams, **tkw)
    for gs in grads:
        for tp, g in zip(tparams, gs):
            tp.grad = torch.tensor(g)
        topt.step()
    for p, tp in zip(params, tparams):
        # float32 elementwise updates: a few ulps per step, relative to |param| ~ 1
        np.testing.assert_allclose(p.data, tp.detach().numpy(), rtol=2e-5, atol=2e-6 * len(grads))


def test_adam_matches_float64_closed_form(rng):
    p = nn.Parameter(rng.normal(size=(11,)).astype(np.float32))
    p64 = p.data.astype(np.float64)
    m = np.zeros(11)
    v = np.zeros(11)
    opt = optim.Adam([p], lr=0.01, betas=(0.8, 0.95), eps=1e-6)
    for t in range(1, 6):
        g = rng.normal(size=11).astype(np.float32)
        p.grad[...] = g
        opt.step()
        m = 0.8 * m + 0.2 * g
        v = 0.95 * v + 0.05 * g.astype(np.float64) ** 2
        p64 -= 0.01 * (m / (1 - 0.8 ** t)) / (np.sqrt(v / (1 - 0.95 ** t)) + 1e-6)
    np.testing.assert_allclose(p.data, p64, rtol=1e-5, atol=1e-6)
    assert opt.step_count == 5


def test_clip_grad_norm_scales_like_torch(rng):
    params = _params(rng)
    start = [p.data.copy() for p in params]
    g = _grads(rng, 1)[0]
    norm = math.sqrt(sum(float((x.astype(np.float64) ** 2).sum()) for x in g))
    opt = _run_nnforge(optim.SGD, params, [g], lr=0.1, clip_grad_norm=0.5)
    assert opt.last_grad_norm == pytest.approx(norm, rel=1e-6)
    coef = 0.5 / (norm + 1e-6)
    for p, s, gi in zip(params, start, g):
        np.testing.assert_allclose(p.data, s - 0.1 * coef * gi, rtol=1e-6, atol=1e-7)
    # below the threshold nothing is scaled
    params2 = [nn.Parameter(s.copy()) for s in start]
    _run_nnforge(optim.SGD, params2, [g], lr=0.1, clip_grad_norm=norm * 2)
    for p, s, gi in zip(params2, start, g):
        np.testing.assert_allclose(p.data, s - 0.1 * gi, rtol=1e-6, atol=1e-7)


def test_l1_term_is_added_after_clipping(rng):
    params = _params(rng)
    start = [p.data.copy() for p in params]
    g = _grads(rng, 1)[0]
    norm = math.sqrt(sum(float((x.astype(np.float64) ** 2).sum()) for x in g))
    _run_nnforge(optim.SGD, params, [g], lr=0.1, clip_grad_norm=1.0, l1=0.01)
    coef = 1.0 / (norm + 1e-6)
    for p, s, gi in zip(params, start, g):
        np.testing.assert_allclose(p.data, s - 0.1 * (coef * gi + 0.01 * np.sign(s)), rtol=1e-6, atol=1e-7)


def test_check_finite_skips_the_whole_step(rng):
    params = _params(rng)
    start = [p.data.copy() for p in params]
    opt = optim.Adam(params, lr=0.1, check_finite=True)
    for p in params:
        p.grad[...] = 1.0
    params[2].grad[4] = np.nan
    assert opt.step(zero_grad=True) is False
    assert opt.step_count == 0 and opt.skipped_steps == 1
    for p, s in zip(params, start):
        np.testing.assert_array_equal(p.data, s)
        assert not p.grad.any()
    assert all(not b.any() for bufs in opt.buffers.values() for b in bufs)


@pytest.mark.parametrize("name,kw", CONFIGS)
def test_optimizer_state_dict_resumes_bitwise(name, kw, rng):
    grads = _grads(rng, 6)
    a = _params(rng)
    b = [nn.Parameter(p.data.copy()) for p in a]
    cls = getattr(optim, name)
    opt_a = _run_nnforge(cls, a, grads, **kw)
    opt_b = _run_nnforge(cls, b, grads[:3], **kw)
    state = opt_b.state_dict()
    c = [nn.Parameter(p.data.copy()) for p in b]
    opt_c = cls(c, **{**kw, "lr": 123.0})  # lr comes back from the state
    opt_c.load_state_dict(state)
    assert opt_c.lr == kw["lr"] and opt_c.step_count == 3
    for gs in grads[3:]:
        for p, g in zip(c, gs):
            p.grad[...] = g
        opt_c.step()
    for p, q in zip(a, c):
        np.testing.assert_array_equal(p.data, q.data)


def test_optimizer_state_mismatch_changes_nothing(rng):
    a = _params(rng)
    opt = _run_nnforge(optim.Adam, a, _grads(rng, 2), lr=0.1)
    other = optim.Adam([nn.Parameter(np.zeros((7, 4), np.float32))] + a[1:], lr=0.1)
    before = other.state_dict()
    with pytest.raises(ValueError, match=r"exp_avg\.0.*\(7, 3\).*\(7, 4\)"):
        other.load_state_dict(opt.state_dict())
    for k, v in other.state_dict().items():
        np.testing.assert_array_equal(v, before[k])


def test_optimizer_argument_errors():
    p = nn.Parameter(np.zeros(2, np.float32))
    with pytest.raises(ValueError, match="lr"):
        optim.SGD([p], lr=-1)
    with pytest.raises(ValueError, match="Nesterov"):
        optim.SGD([p], lr=0.1, nesterov=True)
    with pytest.raises(TypeError, match="Parameter"):
        optim.SGD([np.zeros(2)], lr=0.1)
    with pytest.raises(ValueError, match="more than once"):
        optim.SGD([p, p], lr=0.1)
    with pytest.raises(ValueError, match="unknown optimizer"):
        optim.get_optimizer("lbfgs", [p])


# --- schedules ---------------------------------------------------------------------------

def _opt(lr=0.1):
    return optim.SGD([nn.Parameter(np.zeros(1, np.float32))], lr=lr)


def _lrs(sched, n):
    out = [sched.optimizer.lr]
    for _ in range(n):
        out.append(sched.step())
    return np.array(out)


def test_schedules_closed_form():
    t = np.arange(13)
    np.testing.assert_allclose(_lrs(schedules.StepLR(_opt(), 4, gamma=0.5), 12), 0.1 * 0.5 ** (t // 4))
    np.testing.assert_allclose(_lrs(schedules.ExponentialLR(_opt(), 0.9), 12), 0.1 * 0.9 ** t)
    cos = _lrs(schedules.CosineAnnealingLR(_opt(), 10, eta_min=0.01), 12)
    tc = np.minimum(t, 10)
    np.testing.assert_allclose(cos, 0.01 + 0.09 * (1 + np.cos(np.pi * tc / 10)) / 2)
    warm = _lrs(schedules.LinearWarmup(schedules.ExponentialLR(_opt(), 0.9), warmup=4, start_factor=0.1), 12)
    expect = np.where(t < 4, 0.1 * (0.1 + 0.9 * t / 4), 0.1 * 0.9 ** np.maximum(t - 4, 0))
    np.testing.assert_allclose(warm, expect)


def test_one_cycle_matches_torch():
    torch = pytest.importorskip("torch")
    total = 37
    ours = _lrs(schedules.OneCycleLR(_opt(), max_lr=0.5, total_steps=total, pct_start=0.25), total - 1)
    tp = [torch.zeros(1, requires_grad=True)]
    topt = torch.optim.SGD(tp, lr=0.1)
    ts = torch.optim.lr_scheduler.OneCycleLR(topt, max_lr=0.5, total_steps=total, pct_start=0.25,
                                             cycle_momentum=False)
    theirs = [topt.param_groups[0]["lr"]]
    for _ in range(total - 1):
        topt.step()
        ts.step()
        theirs.append(topt.param_groups[0]["lr"])
    np.testing.assert_allclose(ours, theirs, rtol=1e-12)


def test_schedule_state_round_trip():
    a = schedules.CosineAnnealingLR(_opt(), 10)
    _lrs(a, 3)
    b = schedules.CosineAnnealingLR(_opt(0.7), 10)
    b.load_state_dict(a.state_dict())
    assert b.optimizer.lr == a.optimizer.lr
    np.testing.assert_array_equal(_lrs(a, 4), _lrs(b, 4))


# --- metrics -----------------------------------------------------------------------------

def test_accuracy_and_top_k():
    logits = np.array([[0.1, 0.9, 0.0], [0.8, 0.15, 0.05], [0.2, 0.3, 0.5], [0.5, 0.4, 0.1]], np.float32)
    y = np.array([1, 2, 2, 1])
    assert nn.accuracy(logits, y) == 0.5
    assert nn.top_k_accuracy(logits, y, k=2) == 0.75
    assert nn.top_k_accuracy(logits, y, k=3) == 1.0
    assert nn.accuracy(logits, np.eye(3)[y]) == 0.5  # one-hot targets
    assert nn.accuracy(np.array([[2.0], [-1.0], [0.5]], np.float32), np.array([1, 0, 0])) == pytest.approx(2 / 3)
    m = nn.metrics.get_metric("top2")
    m.update(logits[:2], y[:2])
    m.update(logits[2:], y[2:])
    assert m.name == "top2_accuracy" and m.result() == 0.75


# --- fit / evaluate / predict -------------------------------------------------------------

@pytest.fixture(scope="module")
def digits():
    x, y = data.load_digits()
    (xtr, ytr), _, (xte, yte) = data.train_val_test_split(x / 16.0, y, val_fraction=0.0, test_fraction=0.2,
                                                          rng=0, stratify=y)
    st = data.Standardizer().fit(xtr)
    return st.transform(xtr), ytr, st.transform(xte), yte


def _mlp(dropout=0.0):
    layers = [nn.Linear(64, 64, activation="relu")]
    if dropout:
        layers.append(nn.Dropout(dropout))
    return nn.Sequential(*layers, nn.Linear(64, 10))


def test_fit_learns_digits(digits):
    xtr, ytr, xte, yte = digits
    nnforge.seed(0)
    model = _mlp().compile("adam", lr=3e-3)
    before = model.evaluate(xte, yte)
    hist = model.fit(xtr, ytr, epochs=6, batch_size=32, validation_split=0.1, verbose=0)
    assert set(hist) == {"loss", "accuracy", "val_loss", "val_accuracy", "lr"}
    assert all(len(v) == 6 for v in hist.values()) and hist.epoch == list(range(6))
    assert hist["loss"][-1] < 0.3 * hist["loss"][0]
    after = model.evaluate(xte, yte)
    assert after["loss"] < 0.2 * before["loss"]
    assert after["accuracy"] >= 0.93  # 64-64-10 MLP, 6 epochs: typically ~0.96
    pred = model.predict(xte, batch_size=50)
    assert pred.shape == (len(xte), 10) and pred.dtype == np.float32
    assert nn.accuracy(pred, yte) == pytest.approx(after["accuracy"])


def test_predict_uses_eval_mode_and_restores_training(digits):
    xtr, ytr, xte, _ = digits
    model = _mlp(dropout=0.5).compile("sgd", lr=0.1)
    np.testing.assert_array_equal(model.predict(xte[:40]), model.predict(xte[:40]))
    assert model.training


class _Recorder(Callback):
    def __init__(self):
        self.flags, self.epochs, self.batches = [], [], 0

    def on_epoch_begin(self, epoch, logs):
        self.flags.append(self.trainer.model[0].needs_input_grad)
        self.epochs.append(epoch)

    def on_batch_end(self, batch, logs):
        self.batches += 1


def test_first_layer_skips_input_grad_during_fit_only(digits):
    xtr, ytr, _, _ = digits
    model = _mlp().compile("adam")
    rec = _Recorder()
    model.fit(xtr[:100], ytr[:100], epochs=2, batch_size=30, callbacks=[rec], verbose=0)
    assert rec.flags == [False, False] and rec.batches == 8
    assert model[0].needs_input_grad is True


class _Script(Callback):
    """Overwrites val_loss with scripted values (runs before the callbacks under test)."""

    def __init__(self, values):
        self.values, self.states = values, []

    def on_epoch_end(self, epoch, logs):
        logs["val_loss"] = self.values[epoch]
        self.states.append(self.trainer.model.state_dict())


def test_early_stopping_restores_best(digits):
    xtr, ytr, xte, yte = digits
    model = _mlp().compile("sgd", lr=0.05)
    script = _Script([1.0, 0.8, 0.85, 0.9, 0.95, 0.5, 0.4])
    stop = EarlyStopping(patience=2, restore_best_weights=True)
    hist = model.fit(xtr[:64], ytr[:64], epochs=7, batch_size=32, validation_data=(xte[:32], yte[:32]),
                     callbacks=[script, stop], verbose=0)
    assert len(hist["loss"]) == 4 and stop.best_epoch == 1 and stop.stopped_epoch == 3
    for k, v in model.state_dict().items():
        np.testing.assert_array_equal(v, script.states[1][k])


def test_model_checkpoint_best_only(tmp_path, digits):
    xtr, ytr, xte, yte = digits
    model = _mlp().compile("sgd", lr=0.05)
    script = _Script([1.0, 1.2, 0.7, 0.7, 0.6])
    ckpt = ModelCheckpoint(str(tmp_path / "best-{epoch}.npz"), save_best_only=True)
    model.fit(xtr[:64], ytr[:64], epochs=5, batch_size=32, validation_data=(xte[:32], yte[:32]),
              callbacks=[script, ckpt], verbose=0)
    assert [p.split("-")[-1] for p in ckpt.saved] == ["1.npz", "3.npz", "5.npz"]
    fresh = _mlp()
    extra = fresh.load(ckpt.saved[-1])
    assert extra["epoch"] == 5 and extra["logs.val_loss"] == 0.6
    for k, v in fresh.state_dict().items():
        np.testing.assert_array_equal(v, script.states[4][k])


def test_lr_scheduler_callback_per_epoch_and_per_step(digits):
    xtr, ytr, _, _ = digits
    model = _mlp().compile("sgd", lr=0.1)
    sched = schedules.StepLR(model.optimizer, step_size=2, gamma=0.5)
    hist = model.fit(xtr[:64], ytr[:64], epochs=5, batch_size=32, callbacks=[LRScheduler(sched)], verbose=0)
    np.testing.assert_allclose(hist["lr"], [0.1, 0.1, 0.05, 0.05, 0.025])
    model2 = _mlp().compile("sgd", lr=0.1)
    sched2 = schedules.ExponentialLR(model2.optimizer, 0.9, interval="step")
    model2.fit(xtr[:64], ytr[:64], epochs=3, batch_size=16, callbacks=[LRScheduler(sched2)], verbose=0)
    assert sched2.t == 12 and model2.optimizer.lr == pytest.approx(0.1 * 0.9 ** 12)


def test_regularizer_adds_penalty_and_gradient():
    p = nn.Parameter(np.array([[1.0, -2.0]], np.float32))
    b = nn.Parameter(np.array([3.0], np.float32))
    reg = nn.Regularizer(l1=0.1, l2=0.2)
    val = reg([("w", p), ("bias", b)])
    assert val == pytest.approx(0.1 * 3 + 0.1 * 5)
    np.testing.assert_allclose(p.grad, [[0.1 + 0.2, -0.1 - 0.4]], rtol=1e-6)
    assert not b.grad.any()


def test_fit_progress_output(digits, capsys):
    xtr, ytr, _, _ = digits
    model = _mlp().compile("adam")
    model.fit(xtr[:64], ytr[:64], epochs=2, batch_size=32, verbose=2)
    err = capsys.readouterr().err
    assert "epoch 2/2" in err and "samples/s" in err and "accuracy" in err
    model.fit(xtr[:64], ytr[:64], epochs=1, batch_size=32, verbose=0)
    assert capsys.readouterr().err == ""


def test_fit_argument_errors(digits):
    xtr, ytr, _, _ = digits
    model = _mlp()
    with pytest.raises(RuntimeError, match="compile"):
        model.fit(xtr, ytr)
    model.compile("adam")
    with pytest.raises(ValueError, match="different numbers of samples"):
        model.fit(xtr[:10], ytr[:9], verbose=0)
    with pytest.raises(ValueError, match="validation_split"):
        model.fit(xtr[:10], ytr[:10], validation_split=1.5, verbose=0)
    with pytest.raises(ValueError, match="unknown loss"):
        model.compile("adam", loss="hinge")


def test_progress_bar_and_plain_text_fallback(digits, capsys, monkeypatch):
    pytest.importorskip("tqdm")
    from nnforge.nn import progress
    xtr, ytr, _, _ = digits
    model = _mlp().compile("adam")
    model.fit(xtr[:64], ytr[:64], epochs=1, batch_size=32, verbose=1)
    err = capsys.readouterr().err
    assert "epoch 1/1" in err and "2/2" in err  # the tqdm bar
    monkeypatch.setattr(progress, "_tqdm", lambda: None)  # as if tqdm were not installed
    model.fit(xtr[:64], ytr[:64], epochs=2, batch_size=32, verbose=1)
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 2 and lines[1].startswith("epoch 2/2") and "samples/s" in lines[1]


def test_fit_with_regularizer_reports_penalised_loss(digits):
    xtr, ytr, _, _ = digits
    nnforge.seed(1)
    plain = _mlp().compile("sgd", lr=0.0)
    nnforge.seed(1)
    reg = _mlp().compile("sgd", lr=0.0, regularizer=nn.Regularizer(l2=0.5))
    h0 = plain.fit(xtr[:64], ytr[:64], epochs=1, batch_size=32, shuffle=False, verbose=0)
    h1 = reg.fit(xtr[:64], ytr[:64], epochs=1, batch_size=32, shuffle=False, verbose=0)
    penalty = 0.25 * sum(float((p.data.astype(np.float64) ** 2).sum()) for p in reg.parameters() if p.data.ndim == 2)
    assert h1["loss"][0] == pytest.approx(h0["loss"][0] + penalty, rel=1e-6)


@pytest.mark.parametrize("name,kw", [c for c in CONFIGS if c[0] in ("SGD", "Adam", "AdamW")][:5])
def test_optimizer_classes_equal_direct_kernel_calls(name, kw, rng):
    """The classes add no arithmetic of their own: bitwise equal to calling the op directly."""
    params = _params(rng)
    ref = [p.data.copy() for p in params]
    grads = _grads(rng, 3)
    opt = _run_nnforge(getattr(optim, name), params, grads, **kw)
    fn = getattr(ops, opt._kernel_name)
    bufs = [[np.zeros_like(r) for r in ref] for _ in opt.buffers]
    hyper = {k: v for k, v in kw.items() if k not in ("amsgrad",)}
    for t, gs in enumerate(grads, start=1):
        gs = [g.copy() for g in gs]
        if name == "SGD":
            fn(ref, gs, bufs[0] if bufs else None, step=t, **hyper)
        else:
            fn(ref, gs, *bufs, step=t, amsgrad=kw.get("amsgrad", False), **hyper)
    for p, r in zip(params, ref):
        np.testing.assert_array_equal(p.data, r)


def test_first_layer_inside_residual_keeps_its_input_grad(rng):
    body = nn.Sequential(nn.Linear(6, 6, activation="relu"), nn.Linear(6, 6))
    model = nn.Sequential(nn.Residual(body), nn.Linear(6, 3)).compile("sgd", lr=0.1)
    x = rng.normal(size=(20, 6)).astype(np.float32)
    y = rng.integers(0, 3, size=20)
    model.fit(x, y, epochs=1, batch_size=8, verbose=0)  # would fail if body[0] skipped its dX
    assert body[0].needs_input_grad is True
