"""Fused multi-tensor optimizer steps vs float64 NumPy references of torch.optim's
algorithms (and torch.optim itself when importable).

Error bound: every step rounds p at most twice (decay, then add the update;
eps32/2 each, relative to |p|) and rounds the update terms a handful of times
(<= K_ROUNDINGS roundings, relative to the absolute-valued terms), so after T steps
    |p - p_ref| <= eps32 * (P_ROUNDINGS * sum_t |p_t| + K_ROUNDINGS * amp * sum_t u_t)
where u_t is the update computed from absolute values (e.g. lr * EMA(|g|) / denom)
and amp = 1 / (1 - decay) covers rounding errors carried along by an
exponential moving average (momentum, exp_avg).
"""
from __future__ import annotations

import numpy as np
import pytest

import nnforge
import nnforge.ops as ops

EPS32 = float(np.finfo(np.float32).eps)
K_ROUNDINGS = 8  # roundings in one element's update (d, EMA, sqrt, +eps, /, *lr)
P_ROUNDINGS = 2  # roundings of p itself per step, each <= eps32/2 * |p|: 2x margin


# ---- float64 references (torch.optim _single_tensor_* algorithms) -----------------
def _grad(g, cfg):
    d = cfg.get("grad_scale", 1.0) * g
    return -d if cfg.get("maximize", False) else d


class SGD:
    name = "sgd"

    @staticmethod
    def state_names(cfg):
        return ["momentum_buffers"] if cfg.get("momentum", 0.0) != 0 else []

    @staticmethod
    def call(params, grads, st, step, cfg, **extra):
        kw = {k: v for k, v in cfg.items()}
        return ops.sgd_step(params, grads, st.get("momentum_buffers"), step=step, **kw, **extra)

    @staticmethod
    def amp(cfg):
        return 1.0 / (1.0 - cfg.get("momentum", 0.0))

    @staticmethod
    def ref(p, g, st, step, cfg):
        lr, mom = cfg["lr"], cfg.get("momentum", 0.0)
        damp, wd = cfg.get("dampening", 0.0), cfg.get("weight_decay", 0.0)
        d = _grad(g, cfg)
        da = np.abs(d)
        if wd:
            d = d + wd * p
            da = da + wd * np.abs(p)
        if mom:
            buf, babs = st["momentum_buffers"], st["_babs"]
            if step == 1:
                buf[...], babs[...] = d, da
            else:
                buf[...] = mom * buf + (1 - damp) * d
                babs[...] = mom * babs + abs(1 - damp) * da
            if cfg.get("nesterov", False):
                d, da = d + mom * buf, da + mom * babs
            else:
                d, da = buf.copy(), babs.copy()
        p -= lr * d
        return lr * da


class Adam:
    name = "adam"
    decoupled = False

    @staticmethod
    def state_names(cfg):
        return ["exp_avgs", "exp_avg_sqs"] + (["max_exp_avg_sqs"] if cfg.get("amsgrad") else [])

    @classmethod
    def call(cls, params, grads, st, step, cfg, **extra):
        fn = ops.adamw_step if cls.decoupled else ops.adam_step
        return fn(params, grads, st["exp_avgs"], st["exp_avg_sqs"], st.get("max_exp_avg_sqs"),
                  step=step, **cfg, **extra)

    @staticmethod
    def amp(cfg):
        return 1.0 / (1.0 - cfg.get("beta1", 0.9))

    @classmethod
    def ref(cls, p, g, st, step, cfg):
        lr, b1, b2 = cfg["lr"], cfg.get("beta1", 0.9), cfg.get("beta2", 0.999)
        eps = cfg.get("eps", 1e-8)
        wd = cfg.get("weight_decay", 0.01 if cls.decoupled else 0.0)
        d = _grad(g, cfg)
        da = np.abs(d)
        if wd:
            if cls.decoupled:
                p *= 1 - lr * wd
            else:
                d = d + wd * p
                da = da + wd * np.abs(p)
        m, v, mabs = st["exp_avgs"], st["exp_avg_sqs"], st["_mabs"]
        m += (1 - b1) * (d - m)
        mabs[...] = b1 * mabs + (1 - b1) * da
        v[...] = b2 * v + (1 - b2) * d * d
        if cfg.get("amsgrad"):
            vm = st["max_exp_avg_sqs"]
            np.maximum(vm, v, out=vm)
            v = vm
        bc1, bc2 = 1 - b1 ** step, 1 - b2 ** step
        denom = np.sqrt(v) / np.sqrt(bc2) + eps
        p -= (lr / bc1) * m / denom
        return (lr / bc1) * mabs / denom


class AdamW(Adam):
    name = "adamw"
    decoupled = True


class RMSprop:
    name = "rmsprop"

    @staticmethod
    def state_names(cfg):
        names = ["square_avgs"]
        if cfg.get("momentum", 0.0) > 0:
            names.append("momentum_buffers")
        if cfg.get("centered"):
            names.append("grad_avgs")
        return names

    @staticmethod
    def call(params, grads, st, step, cfg, **extra):
        return ops.rmsprop_step(params, grads, st["square_avgs"], st.get("momentum_buffers"),
                                st.get("grad_avgs"), **cfg, **extra)

    @staticmethod
    def amp(cfg):
        return 1.0 / (1.0 - cfg.get("momentum", 0.0))

    @staticmethod
    def ref(p, g, st, step, cfg):
        lr, alpha, eps = cfg["lr"], cfg.get("alpha", 0.99), cfg.get("eps", 1e-8)
        wd, mom = cfg.get("weight_decay", 0.0), cfg.get("momentum", 0.0)
        d = _grad(g, cfg)
        da = np.abs(d)
        if wd:
            d = d + wd * p
            da = da + wd * np.abs(p)
        sq = st["square_avgs"]
        sq[...] = alpha * sq + (1 - alpha) * d * d
        if cfg.get("centered"):
            ga = st["grad_avgs"]
            ga += (1 - alpha) * (d - ga)
            var = sq - ga * ga
            avg = np.sqrt(var) + eps
            # sqrt of a difference: its rounding error is relative to sq + ga^2
            cond = (sq + ga * ga) / np.maximum(var, 1e-300)
        else:
            avg = np.sqrt(sq) + eps
            cond = 1.0
        if mom > 0:
            buf, babs = st["momentum_buffers"], st["_babs"]
            buf[...] = mom * buf + d / avg
            babs[...] = mom * babs + da * cond / avg
            p -= lr * buf
            return lr * babs
        p -= lr * d / avg
        return lr * da * cond / avg


class Adagrad:
    name = "adagrad"

    @staticmethod
    def state_names(cfg):
        return ["state_sums"]

    @staticmethod
    def call(params, grads, st, step, cfg, **extra):
        return ops.adagrad_step(params, grads, st["state_sums"], step=step, **cfg, **extra)

    @staticmethod
    def amp(cfg):
        return 1.0

    @staticmethod
    def ref(p, g, st, step, cfg):
        lr, lr_decay = cfg["lr"], cfg.get("lr_decay", 0.0)
        wd, eps = cfg.get("weight_decay", 0.0), cfg.get("eps", 1e-10)
        d = _grad(g, cfg)
        da = np.abs(d)
        if wd:
            d = d + wd * p
            da = da + wd * np.abs(p)
        clr = lr / (1 + (step - 1) * lr_decay)
        s = st["state_sums"]
        s += d * d
        std = np.sqrt(s) + eps
        p -= clr * d / std
        return clr * da / std


VARIANTS = [
    (SGD, {"lr": 0.05}),
    (SGD, {"lr": 0.05, "momentum": 0.9, "dampening": 0.1, "weight_decay": 0.01}),
    (SGD, {"lr": 0.05, "momentum": 0.9, "nesterov": True, "weight_decay": 0.01, "maximize": True}),
    (SGD, {"lr": 0.02, "momentum": 0.5, "grad_scale": 0.5}),
    (Adam, {"lr": 1e-2}),
    (Adam, {"lr": 1e-2, "weight_decay": 0.1, "amsgrad": True}),
    (Adam, {"lr": 1e-2, "maximize": True, "grad_scale": 0.25, "beta1": 0.8, "beta2": 0.99, "eps": 1e-6}),
    (AdamW, {"lr": 1e-2}),
    (AdamW, {"lr": 1e-2, "weight_decay": 0.1, "amsgrad": True, "maximize": True}),
    (AdamW, {"lr": 3e-3, "weight_decay": 0.0, "beta1": 0.0, "grad_scale": 3.0}),
    (RMSprop, {"lr": 1e-2}),
    (RMSprop, {"lr": 1e-2, "centered": True, "momentum": 0.9, "weight_decay": 0.01}),
    (RMSprop, {"lr": 1e-2, "momentum": 0.5, "maximize": True, "grad_scale": 2.0}),
    (RMSprop, {"lr": 1e-2, "centered": True, "alpha": 0.9}),
    (Adagrad, {"lr": 0.1}),
    (Adagrad, {"lr": 0.1, "lr_decay": 0.01, "weight_decay": 0.01, "maximize": True}),
    (Adagrad, {"lr": 0.1, "grad_scale": 0.5, "eps": 1e-5}),
]
VARIANT_IDS = [f"{o.name}-" + "-".join(f"{k}={v}" for k, v in c.items()) for o, c in VARIANTS]
DEFAULTS = {o.name: (o, c) for o, c in reversed(VARIANTS)}  # first variant of each


def make_problem(rng, opt, cfg, shapes):
    params = [rng.standard_normal(s).astype(np.float32) for s in shapes]
    st = {n: [np.zeros(s, np.float32) for s in shapes] for n in opt.state_names(cfg)}
    return params, st


class Reference:
    """float64 trajectory of `opt` from the same float32 start, plus the error bound."""

    def __init__(self, opt, cfg, params):
        self.opt, self.cfg = opt, cfg
        self.p = [p.astype(np.float64) for p in params]
        names = opt.state_names(cfg) + ["_babs", "_mabs"]
        self.st = [{n: np.zeros(p.shape) for n in names} for p in params]
        self.size_sum = [np.zeros(p.shape) for p in params]  # sum_t |p_t|
        self.upd_sum = [np.zeros(p.shape) for p in params]   # sum_t u_t

    def step(self, grads, t, cfg=None):
        for i, g in enumerate(grads):
            self.upd_sum[i] += self.opt.ref(self.p[i], g.astype(np.float64), self.st[i], t, cfg or self.cfg)
            self.size_sum[i] += np.abs(self.p[i])

    def tol(self, i, implementations=1):
        """Bound on |float32 result - p_ref|, times the number of float32 results compared."""
        amp = self.opt.amp(self.cfg)
        return implementations * EPS32 * (P_ROUNDINGS * self.size_sum[i] + K_ROUNDINGS * amp * self.upd_sum[i]) + 1e-30


def assert_within(got, want, tol, what):
    err = np.abs(got.astype(np.float64) - want)
    assert np.all(err <= tol), f"{what}: max err {err.max():.3g}, worst err/tol {(err / tol).max():.3g}"


def run_against_reference(rng, opt, cfg, shapes, steps):
    params, st = make_problem(rng, opt, cfg, shapes)
    ref = Reference(opt, cfg, params)
    for t in range(1, steps + 1):
        grads = [rng.standard_normal(s).astype(np.float32) for s in shapes]
        assert opt.call(params, grads, st, t, cfg) is True
        ref.step(grads, t)
    for i in range(len(shapes)):
        assert_within(params[i], ref.p[i], ref.tol(i), f"tensor {i} shape {shapes[i]}")


@pytest.mark.parametrize("variant", VARIANTS, ids=VARIANT_IDS)
def test_matches_float64_reference(isa, rng, variant):
    opt, cfg = variant
    run_against_reference(rng, opt, cfg, [(1,), (7,), (4097,), (211, 190)], steps=22)


@pytest.mark.parametrize("variant", [VARIANTS[2], VARIANTS[8], VARIANTS[11]], ids=["sgd", "adamw", "rmsprop"])
def test_misaligned_views_match_reference(isa, rng, variant):
    """Buffers starting 1-3 floats past an allocation (C-contiguous slices) take the same path."""
    opt, cfg = variant
    shapes = [(4097,), (40009,)]
    params, st = make_problem(rng, opt, cfg, shapes)

    def shifted(a, k):
        out = np.empty(a.size + k, np.float32)[k:].reshape(a.shape)
        out[...] = a
        return out
    params = [shifted(p, 1 + i) for i, p in enumerate(params)]
    st = {n: [shifted(x, 3 - i) for i, x in enumerate(v)] for n, v in st.items()}
    ref = Reference(opt, cfg, params)
    for t in range(1, 6):
        grads = [shifted(rng.standard_normal(s).astype(np.float32), 2) for s in shapes]
        assert opt.call(params, grads, st, t, cfg) is True
        ref.step(grads, t)
    for i in range(len(shapes)):
        assert_within(params[i], ref.p[i], ref.tol(i), f"tensor {i}")


@pytest.mark.parametrize("name", list(DEFAULTS))
def test_large_tensor_matches_reference(isa, rng, name):
    opt, cfg = DEFAULTS[name]
    run_against_reference(rng, opt, cfg, [(1000003,), (3, 5)], steps=4)


# ---- threads, zero_grad, non-finite skip ----------------------------------------------
THREAD_SHAPES = [(1000003,), (70001,), (3,)]


def _run_steps(opt, cfg, seed, steps, **extra):
    rng = np.random.default_rng(seed)
    params, st = make_problem(rng, opt, cfg, THREAD_SHAPES)
    for t in range(1, steps + 1):
        grads = [rng.standard_normal(s).astype(np.float32) for s in THREAD_SHAPES]
        opt.call(params, grads, st, t, cfg, **extra)
    return params, st, grads


@pytest.mark.parametrize("variant", [VARIANTS[2], VARIANTS[5], VARIANTS[8], VARIANTS[11], VARIANTS[15]],
                         ids=["sgd", "adam", "adamw", "rmsprop", "adagrad"])
def test_threads_bitwise_equal(threads, seed, variant):
    opt, cfg = variant
    results = []
    for nt in (1, 2):
        nnforge.set_num_threads(nt)
        params, st, grads = _run_steps(opt, cfg, seed, 3)
        results.append((params, st, ops.grad_norm(grads)))
    (p1, s1, n1), (p2, s2, n2) = results
    for a, b in zip(p1, p2):
        np.testing.assert_array_equal(a, b)
    for name in s1:
        for a, b in zip(s1[name], s2[name]):
            np.testing.assert_array_equal(a, b)
    assert n1 == n2


@pytest.mark.parametrize("variant", VARIANTS[1::2], ids=VARIANT_IDS[1::2])
def test_zero_grad_same_step_and_zeroes(rng, variant):
    opt, cfg = variant
    shapes = [(7,), (4097,)]
    pa, sa = make_problem(rng, opt, cfg, shapes)
    pb = [p.copy() for p in pa]
    sb = {k: [x.copy() for x in v] for k, v in sa.items()}
    for t in (1, 2):
        g = [rng.standard_normal(s).astype(np.float32) for s in shapes]
        gb = [x.copy() for x in g]
        opt.call(pa, g, sa, t, cfg)
        opt.call(pb, gb, sb, t, cfg, zero_grad=True)
        for x in gb:
            assert not np.any(x)
        for a, b in zip(pa, pb):
            np.testing.assert_array_equal(a, b)


def _snapshot(*lists):
    return [[a.copy() for a in lst] for lst in lists if lst is not None]


def _assert_unchanged(before, *lists):
    for snap, lst in zip(before, [l for l in lists if l is not None]):
        for a, b in zip(snap, lst):
            np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("bad", [np.inf, -np.inf, np.nan])
@pytest.mark.parametrize("variant", [VARIANTS[1], VARIANTS[5], VARIANTS[8], VARIANTS[11], VARIANTS[15]],
                         ids=["sgd", "adam", "adamw", "rmsprop", "adagrad"])
def test_check_finite_skips_and_changes_nothing(rng, variant, bad):
    opt, cfg = variant
    shapes = [(4097,), (100003,), (5,)]
    params, st = make_problem(rng, opt, cfg, shapes)
    for t in (1, 2):  # a clean step first, so the state is non-trivial
        grads = [rng.standard_normal(s).astype(np.float32) for s in shapes]
        assert opt.call(params, grads, st, t, cfg, check_finite=True) is True
    grads[1][77777] = bad
    before = _snapshot(params, grads, *st.values())
    assert opt.call(params, grads, st, 3, cfg, check_finite=True, zero_grad=True) is False
    _assert_unchanged(before, params, grads, *st.values())
    grads[1][77777] = 0.0  # a non-finite grad_scale counts as non-finite too
    assert opt.call(params, grads, st, 3, {**cfg, "grad_scale": np.inf}, check_finite=True) is False
    _assert_unchanged(before[:1], params)


# ---- grad norm and clipping ----------------------------------------------------------
def test_grad_norm_matches_float64(isa, rng):
    shapes = [(1,), (7,), (4097,), (1000003,), (0,)]
    g = [rng.standard_normal(s).astype(np.float32) * 3 for s in shapes]
    n = sum(x.size for x in g)
    ref = np.sqrt(sum(np.dot(x.astype(np.float64).ravel(), x.astype(np.float64).ravel()) for x in g))
    got = ops.grad_norm(g)
    assert isinstance(got, float)
    assert abs(got - ref) <= (n + 2) * np.finfo(np.float64).eps * ref
    assert ops.grad_norm([]) == 0.0
    g[2][5] = np.inf
    assert ops.grad_norm(g) == np.inf


@pytest.mark.parametrize("max_norm", [0.5, 1e9])
def test_clip_grad_norm(isa, rng, max_norm):
    shapes = [(7,), (40009,), (3, 3)]
    g = [rng.standard_normal(s).astype(np.float32) for s in shapes]
    g0 = [x.copy() for x in g]
    norm = ops.clip_grad_norm(g, max_norm)
    assert norm == ops.grad_norm(g0)
    coef = min(1.0, max_norm / (norm + 1e-6))
    assert ops.clip_coef(norm, max_norm) == coef
    for a, b in zip(g, g0):
        np.testing.assert_array_equal(a, b * np.float32(coef) if coef < 1 else b)
    if coef < 1:
        assert abs(ops.grad_norm(g) - max_norm) <= 4 * EPS32 * max_norm


def test_clip_coef_edge_cases():
    assert ops.clip_coef(0.0, 1.0) == 1.0
    assert ops.clip_coef(np.inf, 1.0) == 0.0
    assert np.isnan(ops.clip_coef(np.nan, 1.0))
    with pytest.raises(ValueError, match="max_norm"):
        ops.clip_coef(1.0, -1.0)


@pytest.mark.parametrize("opt_name", ["adamw", "sgd", "adagrad"])
def test_clip_then_step_equals_grad_scale(isa, rng, opt_name):
    """n = grad_norm; step(grad_scale=clip_coef(n)) == clip_grad_norm then step.

    Equal to float32 rounding, not bitwise: the fused path may keep grad_scale * g
    unrounded inside an FMA, where clip_grad_norm rounds the scaled gradient.
    """
    opt, cfg = {"adamw": VARIANTS[8], "sgd": VARIANTS[2], "adagrad": VARIANTS[15]}[opt_name]
    shapes = [(4097,), (70001,), (1,)]
    pa, sa = make_problem(rng, opt, cfg, shapes)
    pb = [p.copy() for p in pa]
    sb = {k: [x.copy() for x in v] for k, v in sa.items()}
    ref = Reference(opt, cfg, pa)
    for t in (1, 2, 3):
        ga = [rng.standard_normal(s).astype(np.float32) for s in shapes]
        gb = [x.copy() for x in ga]
        norm = ops.clip_grad_norm(ga, 1.0)
        opt.call(pa, ga, sa, t, cfg)
        coef = ops.clip_coef(ops.grad_norm(gb), 1.0)
        assert coef < 1.0 and norm == ops.grad_norm(gb)
        c = {**cfg, "grad_scale": coef * cfg.get("grad_scale", 1.0)}
        opt.call(pb, gb, sb, t, c)
        ref.step(gb, t, c)
    for i in range(len(shapes)):
        assert_within(pa[i], pb[i].astype(np.float64), ref.tol(i, implementations=2), f"tensor {i}")


def test_stream_triad(isa, rng):
    for n in (1, 17, 1000003):
        b = rng.standard_normal(n).astype(np.float32)
        c = rng.standard_normal(n).astype(np.float32)
        a = np.empty_like(b)
        ops.stream_triad(a, b, c, 3.0)
        ref = b.astype(np.float64) + 3.0 * c.astype(np.float64)
        assert np.all(np.abs(a - ref) <= 2 * EPS32 * (np.abs(b) + 3 * np.abs(c)))
    with pytest.raises(ValueError, match="same 1-D shape"):
        ops.stream_triad(np.zeros(3, np.float32), np.zeros(4, np.float32), np.zeros(3, np.float32), 1.0)
    x = np.zeros(8, np.float32)
    with pytest.raises(ValueError, match="overlap"):
        ops.stream_triad(x, x, np.zeros(8, np.float32), 1.0)


def test_empty_lists_and_zero_size():
    assert ops.adamw_step([], [], [], [], step=1, lr=0.1) is True
    z = [np.zeros((0, 3), np.float32) for _ in range(4)]
    assert ops.adamw_step([z[0]], [z[1]], [z[2]], [z[3]], step=1, lr=0.1) is True


# ---- bad inputs: the right error, and nothing modified -------------------------------
def _adamw_args(rng):
    shapes = [(5,), (3, 4), (6,)]
    f = lambda: [rng.standard_normal(s).astype(np.float32) for s in shapes]  # noqa: E731
    return dict(params=f(), grads=f(), exp_avgs=f(), exp_avg_sqs=[np.abs(x) for x in f()])


def _call_adamw(a, **kw):
    base = dict(step=2, lr=0.1)
    base.update(kw)
    return ops.adamw_step(a["params"], a["grads"], a["exp_avgs"], a["exp_avg_sqs"],
                          a.get("max_exp_avg_sqs"), **base)


def _set(a, key, i, value):
    a[key][i] = value


def _readonly(x):
    x.flags.writeable = False
    return x


BAD_ADAMW = [
    # (id, mutation of the valid args, kwargs, exception, message regex)
    ("short-list", lambda a: a["exp_avgs"].pop(), {}, ValueError, "exp_avgs has 2 arrays but params has 3"),
    ("shape", lambda a: _set(a, "exp_avg_sqs", 2, np.zeros(7, np.float32)), {}, ValueError,
     r"exp_avg_sqs\[2\] must have the shape of params\[2\] \(6,\), got \(7,\)"),
    ("grad-shape", lambda a: _set(a, "grads", 1, np.zeros((4, 3), np.float32)), {}, ValueError,
     r"grads\[1\].*\(3, 4\).*\(4, 3\)"),
    ("float64", lambda a: _set(a, "grads", 2, np.zeros(6)), {}, TypeError, r"grads\[2\] must be float32, got float64"),
    ("not-array", lambda a: _set(a, "params", 2, [0.0] * 6), {}, TypeError, r"params\[2\] must be a numpy.ndarray"),
    ("not-list", lambda a: a.__setitem__("grads", np.zeros((3, 5), np.float32)), {}, TypeError, "grads must be a list"),
    ("non-contiguous", lambda a: _set(a, "exp_avgs", 2, np.zeros(12, np.float32)[::2]), {}, ValueError,
     r"exp_avgs\[2\] must be C-contiguous"),
    ("readonly-param", lambda a: _set(a, "params", 2, _readonly(np.zeros(6, np.float32))), {}, ValueError,
     r"params\[2\] is read-only"),
    ("readonly-state", lambda a: _set(a, "exp_avg_sqs", 2, _readonly(np.zeros(6, np.float32))), {}, ValueError,
     r"exp_avg_sqs\[2\] is read-only"),
    ("readonly-grad-zero", lambda a: _set(a, "grads", 2, _readonly(np.zeros(6, np.float32))), {"zero_grad": True},
     ValueError, r"grads\[2\] is read-only"),
    ("alias-param-state", lambda a: _set(a, "exp_avgs", 2, a["params"][2]), {}, ValueError,
     r"params\[2\] \(6,\) and exp_avgs\[2\] \(6,\) share memory"),
    ("alias-two-params", lambda a: (lambda base: (_set(a, "params", 0, base[:5]), _set(a, "params", 2, base[4:])))(
        np.zeros(10, np.float32)), {}, ValueError, r"params\[0\] \(5,\) and params\[2\] \(6,\) share memory"),
    ("alias-grad-state", lambda a: _set(a, "grads", 2, a["exp_avg_sqs"][1].reshape(-1)[3:9]), {}, ValueError,
     r"exp_avg_sqs\[1\] \(3, 4\) and grads\[2\] \(6,\) share memory"),
    ("negative-lr", None, {"lr": -0.1}, ValueError, "lr must be in"),
    ("nan-lr", None, {"lr": float("nan")}, ValueError, "lr must be in"),
    ("beta1-one", None, {"beta1": 1.0}, ValueError, "beta1 must be in"),
    ("beta2-neg", None, {"beta2": -0.1}, ValueError, "beta2 must be in"),
    ("eps-neg", None, {"eps": -1e-8}, ValueError, "eps must be in"),
    ("wd-neg", None, {"weight_decay": -0.1}, ValueError, "weight_decay must be in"),
    ("step-zero", None, {"step": 0}, ValueError, "step must be >= 1"),
    ("amsgrad-no-max", None, {"amsgrad": True}, ValueError, "amsgrad=True needs max_exp_avg_sqs"),
]


@pytest.mark.parametrize("case", BAD_ADAMW, ids=[c[0] for c in BAD_ADAMW])
def test_bad_adamw_input_changes_nothing(rng, case):
    _, mutate, kw, exc, msg = case
    a = _adamw_args(rng)
    if mutate is not None:
        mutate(a)
    arrays = [x for lst in a.values() if isinstance(lst, list) for x in lst if isinstance(x, np.ndarray)]
    before = [x.copy() for x in arrays]
    with pytest.raises(exc, match=msg):
        _call_adamw(a, check_finite=False, **kw)
    for x, y in zip(before, arrays):
        np.testing.assert_array_equal(x, y)


def _f(rng, n=5):
    return rng.standard_normal(n).astype(np.float32)


BAD_OTHER = [
    ("sgd-nesterov-no-momentum", lambda r: ops.sgd_step([_f(r)], [_f(r)], [_f(r)], lr=0.1, step=1, nesterov=True),
     "nesterov requires momentum > 0"),
    ("sgd-nesterov-dampening", lambda r: ops.sgd_step([_f(r)], [_f(r)], [_f(r)], lr=0.1, step=1, momentum=0.9,
                                                      nesterov=True, dampening=0.1), "dampening == 0"),
    ("sgd-momentum-neg", lambda r: ops.sgd_step([_f(r)], [_f(r)], [_f(r)], lr=0.1, step=1, momentum=-0.5),
     "momentum must be in"),
    ("sgd-momentum-no-buffers", lambda r: ops.sgd_step([_f(r)], [_f(r)], lr=0.1, step=1, momentum=0.9),
     "needs momentum_buffers"),
    ("sgd-step-zero", lambda r: ops.sgd_step([_f(r)], [_f(r)], lr=0.1, step=0), "step must be >= 1"),
    ("sgd-buffer-shape", lambda r: ops.sgd_step([_f(r), _f(r)], [_f(r), _f(r)], [_f(r), _f(r, 4)], lr=0.1, step=2,
                                                momentum=0.9), r"momentum_buffers\[1\]"),
    ("rmsprop-centered-no-avgs", lambda r: ops.rmsprop_step([_f(r)], [_f(r)], [_f(r)], lr=0.1, centered=True),
     "centered=True needs grad_avgs"),
    ("rmsprop-alpha", lambda r: ops.rmsprop_step([_f(r)], [_f(r)], [_f(r)], lr=0.1, alpha=1.5), "alpha must be in"),
    ("rmsprop-momentum-neg", lambda r: ops.rmsprop_step([_f(r)], [_f(r)], [_f(r)], lr=0.1, momentum=-1.0),
     "momentum must be in"),
    ("adagrad-lr-decay", lambda r: ops.adagrad_step([_f(r)], [_f(r)], [_f(r)], step=1, lr=0.1, lr_decay=-1.0),
     "lr_decay must be in"),
    ("adagrad-step", lambda r: ops.adagrad_step([_f(r)], [_f(r)], [_f(r)], step=0, lr=0.1), "step must be >= 1"),
    ("adagrad-alias", lambda r: (lambda x: ops.adagrad_step([_f(r), x], [_f(r), _f(r)], [_f(r), x], step=1, lr=0.1))(
        _f(r)), r"params\[1\] \(5,\) and state_sums\[1\] \(5,\) share memory"),
    ("clip-negative", lambda r: ops.clip_grad_norm([_f(r)], -1.0), "max_norm must be in"),
    ("clip-alias", lambda r: (lambda x: ops.clip_grad_norm([x, x], 0.1))(_f(r)), "share memory"),
    ("norm-float64", lambda r: ops.grad_norm([_f(r), np.zeros(3)]), r"grads\[1\] must be float32"),
]


@pytest.mark.parametrize("case", BAD_OTHER, ids=[c[0] for c in BAD_OTHER])
def test_bad_other_input(rng, case):
    _, call, msg = case
    with pytest.raises((ValueError, TypeError), match=msg):
        call(rng)


def test_late_bad_index_updates_nothing(rng):
    """A shape error at the last index must not leave the first tensors stepped."""
    shapes = [(100003,), (4097,), (6,)]
    p = [rng.standard_normal(s).astype(np.float32) for s in shapes]
    g = [rng.standard_normal(s).astype(np.float32) for s in shapes]
    b = [np.zeros(s, np.float32) for s in shapes[:2]] + [np.zeros(5, np.float32)]
    before = _snapshot(p, g, b)
    with pytest.raises(ValueError, match=r"momentum_buffers\[2\]"):
        ops.sgd_step(p, g, b, lr=0.1, step=2, momentum=0.9, zero_grad=True)
    _assert_unchanged(before, p, g, b)


# ---- torch.optim, 50 steps -------------------------------------------------------------
TORCH_CASES = [
    ("SGD", {"lr": 0.05, "momentum": 0.9, "nesterov": True, "weight_decay": 0.01},
     SGD, {"lr": 0.05, "momentum": 0.9, "nesterov": True, "weight_decay": 0.01}),
    ("Adam", {"lr": 1e-2, "amsgrad": True, "weight_decay": 0.01},
     Adam, {"lr": 1e-2, "amsgrad": True, "weight_decay": 0.01}),
    ("AdamW", {"lr": 1e-2, "weight_decay": 0.05}, AdamW, {"lr": 1e-2, "weight_decay": 0.05}),
    ("RMSprop", {"lr": 1e-2, "centered": True, "momentum": 0.9},
     RMSprop, {"lr": 1e-2, "centered": True, "momentum": 0.9}),
    ("Adagrad", {"lr": 0.1, "lr_decay": 0.01}, Adagrad, {"lr": 0.1, "lr_decay": 0.01}),
]


@pytest.mark.parametrize("case", TORCH_CASES, ids=[c[0] for c in TORCH_CASES])
def test_matches_torch_optim(rng, case):
    torch = pytest.importorskip("torch")
    tname, tkw, opt, cfg = case
    shapes = [(1,), (7,), (4097,), (33, 31)]
    steps = 50
    params, st = make_problem(rng, opt, cfg, shapes)
    tparams = [torch.from_numpy(p.copy()).requires_grad_(True) for p in params]
    topt = getattr(torch.optim, tname)(tparams, foreach=False, **tkw)
    ref = Reference(opt, cfg, params)
    for t in range(1, steps + 1):
        grads = [rng.standard_normal(s).astype(np.float32) for s in shapes]
        opt.call(params, grads, st, t, cfg)
        for tp, g in zip(tparams, grads):
            tp.grad = torch.from_numpy(g.copy())
        topt.step()
        ref.step(grads, t)
    for i in range(len(shapes)):
        # both are within the float32 bound of the float64 reference, so within twice it of each other
        got = tparams[i].detach().numpy()
        assert_within(got, ref.p[i], ref.tol(i), f"torch tensor {i}")
        assert_within(params[i], got.astype(np.float64), ref.tol(i, implementations=2), f"tensor {i}")


@pytest.mark.parametrize("schedule", ["static", "dynamic"])
def test_schedules_bitwise_equal(threads, seed, schedule):
    """Both ways of sharing chunks among threads give the 1-thread result exactly."""
    from nnforge import _core

    opt, cfg = VARIANTS[8]
    nnforge.set_num_threads(1)
    want = _run_steps(opt, cfg, seed, 2)
    nnforge.set_num_threads(2)
    before = _core._optim_schedule(schedule)
    try:
        got = _run_steps(opt, cfg, seed, 2)
        norms = ops.grad_norm(got[2]), ops.grad_norm(want[2])
    finally:
        _core._optim_schedule(before)
    for a, b in zip(want[0] + want[1]["exp_avgs"], got[0] + got[1]["exp_avgs"]):
        np.testing.assert_array_equal(a, b)
    assert norms[0] == norms[1]
