"""nn training kernels (nnforge.ops: softmax family, cross_entropy, activations,
layer/batch norm, dropout, sum_rows, embedding_backward) against float64 NumPy
references, central differences, every ISA path, and 1-vs-2-thread bitwise equality."""
from __future__ import annotations

import math

import numpy as np
import pytest

import nnforge
from nnforge import ops

import nn_reference as ref
from nn_reference import EPS32, TINY, assert_close, bitwise_equal, central_diff, f64

ODD_SHAPES = [(1, 1), (1, 7), (7, 33), (3, 1023), (13, 17), (2, 1031)]


def randn(rng, *shape, scale=1.0):
    return (rng.standard_normal(shape) * scale).astype(np.float32)


def same_for_1_and_2_threads(fn):
    nnforge.set_num_threads(1)
    a = fn()
    nnforge.set_num_threads(2)
    b = fn()
    assert bitwise_equal(a, b), "result differs between 1 and 2 threads"


# --- softmax family ------------------------------------------------------------------
def softmax_tol(want, n):
    # exp is ~2 ulp; the row sum adds up to n roundings (log-depth in practice).
    return EPS32 * (8 + n) * np.abs(want) + 1e-37


@pytest.mark.parametrize("shape", ODD_SHAPES)
def test_softmax_matches_reference(isa, rng, shape):
    x = randn(rng, *shape, scale=3.0)
    n = shape[-1]
    assert_close(ops.softmax(x), ref.softmax(x), softmax_tol(ref.softmax(x), n), "softmax")
    want = ref.log_softmax(x)
    tol = EPS32 * (8 + n) * (np.abs(f64(x)) + np.abs(x).max() + 1 + math.log(n))
    assert_close(ops.log_softmax(x), want, tol, "log_softmax")


@pytest.mark.parametrize("outlier", [1e4, -1e4, 3e38])
def test_softmax_huge_outliers_do_not_overflow(isa, rng, outlier):
    x = randn(rng, 5, 37)
    x[1, 3] = outlier
    x[4, :] = outlier  # a whole row of the same huge value
    y = ops.softmax(x)
    assert np.isfinite(y).all()
    assert_close(y, ref.softmax(x), softmax_tol(ref.softmax(x), 37), "softmax")
    ly = ops.log_softmax(x)
    assert np.isfinite(ly).all()
    assert_close(ly, ref.log_softmax(x), EPS32 * 64 * (np.abs(f64(x)) + abs(outlier)), "log_softmax")


def test_softmax_views_axes_and_out(isa, rng):
    base = randn(rng, 11, 40, scale=2.0)
    view = base[1:-1, 3:-4]  # sliced rows: used without a copy
    assert_close(ops.softmax(view), ref.softmax(view), softmax_tol(ref.softmax(view), 33), "view")
    xt = base.T  # transposed: copied to C order
    assert_close(ops.softmax(xt), ref.softmax(xt), softmax_tol(ref.softmax(xt), 11), "transposed")
    x3 = randn(rng, 3, 5, 7)
    for axis in (0, 1, -1):
        want = ref.softmax(x3, axis=axis)
        assert_close(ops.softmax(x3, axis=axis), want, softmax_tol(want, 7), f"axis {axis}")
        lw = ref.log_softmax(x3, axis=axis)
        assert_close(ops.log_softmax(x3, axis=axis), lw, EPS32 * 64 * (1 + np.abs(lw)), f"log axis {axis}")
    inplace = base.copy()
    out = ops.softmax(inplace, out=inplace)
    assert out is inplace
    assert_close(inplace, ref.softmax(base), softmax_tol(ref.softmax(base), 40), "in place")
    with pytest.raises(ValueError, match="axis"):
        ops.softmax(x3, axis=3)


@pytest.mark.parametrize("log", [False, True])
def test_softmax_backward_vs_analytic_and_central_differences(isa, rng, log):
    x = randn(rng, 4, 9)
    w = randn(rng, 4, 9)  # upstream gradient dL/dy for L = sum(w * f(x))
    f = ref.log_softmax if log else ref.softmax
    y = (ops.log_softmax if log else ops.softmax)(x)
    dx = (ops.log_softmax_backward if log else ops.softmax_backward)(y, w)
    y64 = f(x)
    if log:
        want = f64(w) - np.exp(y64) * f64(w).sum(axis=1, keepdims=True)
    else:
        want = y64 * (f64(w) - (f64(w) * y64).sum(axis=1, keepdims=True))
    tol = EPS32 * 32 * (np.abs(f64(w)).sum(axis=1, keepdims=True) + 1)
    assert_close(dx, want, tol, "analytic")
    fd = central_diff(lambda v: float((f64(w) * f(v)).sum()), x)
    assert_close(dx, fd, tol + 1e-7, "central differences")


def test_softmax_family_thread_invariant(threads, rng):
    x = randn(rng, 301, 1023, scale=4.0)
    dy = randn(rng, 301, 1023)
    same_for_1_and_2_threads(lambda: (ops.softmax(x), ops.log_softmax(x)))
    y = ops.softmax(x)
    same_for_1_and_2_threads(lambda: (ops.softmax_backward(y, dy), ops.log_softmax_backward(y, dy)))


# --- cross entropy -------------------------------------------------------------------
def ce_cases(rng):
    for n, c in [(1, 1), (1, 7), (7, 10), (33, 3), (13, 1023)]:
        yield n, c


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
@pytest.mark.parametrize("weighted", [False, True])
@pytest.mark.parametrize("smoothing", [0.0, 0.1, 1.0])
def test_cross_entropy_matches_reference(isa, rng, reduction, weighted, smoothing):
    for n, c in ce_cases(rng):
        z = randn(rng, n, c, scale=3.0)
        labels = rng.integers(0, c, size=n)
        w = (rng.random(c) + 0.25).astype(np.float32) if weighted else None
        loss, grad = ops.cross_entropy(z, labels, weight=w, label_smoothing=smoothing,
                                       reduction=reduction, return_grad=True)
        want = ref.cross_entropy(z, labels, w, smoothing, reduction)
        scale = np.abs(f64(z)).max() + math.log(c) + 1
        assert_close(loss, want, EPS32 * (16 + 2 * c) * scale * (n if reduction == "sum" else 1),
                     f"loss n={n} c={c}")
        if reduction == "none":
            assert loss.dtype == np.float32 and loss.shape == (n,)
            target = lambda v: float(ref.cross_entropy(v, labels, w, smoothing, "none").sum())
        else:
            target = lambda v: float(ref.cross_entropy(v, labels, w, smoothing, reduction))
            assert ops.cross_entropy(z, labels, weight=w, label_smoothing=smoothing,
                                     reduction=reduction) == loss
        if n * c <= 400:
            fd = central_diff(target, z)
            assert_close(grad, fd, EPS32 * 64 * (1 + np.abs(fd)) + 1e-7, f"grad n={n} c={c}")


def test_cross_entropy_agrees_with_torch(rng):
    torch = pytest.importorskip("torch")
    z = randn(rng, 17, 11, scale=2.0)
    labels = rng.integers(0, 11, size=17)
    w = (rng.random(11) + 0.1).astype(np.float32)
    for kw in [{}, {"weight": w}, {"label_smoothing": 0.2}, {"weight": w, "label_smoothing": 0.3}]:
        tz = torch.tensor(f64(z), requires_grad=True)
        tkw = {k: (torch.tensor(f64(v)) if k == "weight" else v) for k, v in kw.items()}
        tl = torch.nn.functional.cross_entropy(tz, torch.tensor(labels), **tkw)
        tl.backward()
        loss, grad = ops.cross_entropy(z, labels, return_grad=True, **kw)
        assert abs(loss - tl.item()) <= 1e-5 * (1 + abs(tl.item()))
        assert_close(grad, tz.grad.numpy(), 1e-6, str(kw))


def test_cross_entropy_labels_and_layouts(isa, rng):
    z = randn(rng, 9, 40)
    labels = rng.integers(0, 33, size=9)
    want = ref.cross_entropy(z[:, 2:35], labels)
    got32 = ops.cross_entropy(z[:, 2:35], labels.astype(np.int32))  # sliced view, int32 labels
    assert abs(got32 - want) <= EPS32 * 200 * (1 + abs(want))
    strided = np.repeat(labels, 2)[::2]
    assert ops.cross_entropy(z[:, 2:35], strided) == ops.cross_entropy(np.ascontiguousarray(z[:, 2:35]), labels)
    with pytest.raises(ValueError, match="label 33 at position 4"):
        bad = labels.copy()
        bad[4] = 33
        ops.cross_entropy(z[:, 2:35], bad)
    with pytest.raises(ValueError, match="label -1"):
        ops.cross_entropy(z, np.full(9, -1))
    with pytest.raises(TypeError, match="int64 or int32"):
        ops.cross_entropy(z, labels.astype(np.float32))
    with pytest.raises(ValueError, match=r"\(9,\)"):
        ops.cross_entropy(z, labels[:5])
    with pytest.raises(ValueError, match="label_smoothing"):
        ops.cross_entropy(z, labels, label_smoothing=1.5)
    with pytest.raises(ValueError, match="reduction"):
        ops.cross_entropy(z, labels, reduction="avg")
    with pytest.raises(ValueError, match="weight must have shape"):
        ops.cross_entropy(z, labels, weight=np.ones(3, np.float32))
    with pytest.raises(TypeError, match="float32"):
        ops.cross_entropy(z.astype(np.float64), labels)


@pytest.mark.parametrize("weighted", [False, True])
def test_cross_entropy_out_in_place(isa, rng, weighted):
    """out=logits overwrites the logits with dlogits, bitwise equal to a fresh result."""
    z = randn(rng, 37, 103, scale=3.0)
    labels = rng.integers(0, 103, size=37)
    kw = dict(weight=rng.random(103).astype(np.float32) + 0.5) if weighted else {}
    want_loss, want = ops.cross_entropy(z, labels, return_grad=True, label_smoothing=0.1, **kw)
    zz = z.copy()
    loss, dz = ops.cross_entropy(zz, labels, return_grad=True, label_smoothing=0.1, out=zz, **kw)
    assert loss == want_loss and dz is zz and bitwise_equal(zz, want)
    padded = np.zeros((37, 128), np.float32)  # a separate out with padded rows
    loss, dz = ops.cross_entropy(z, labels, return_grad=True, label_smoothing=0.1, out=padded[:, 5:108], **kw)
    assert bitwise_equal(padded[:, 5:108], want) and not padded[:, :5].any() and not padded[:, 108:].any()


def test_cross_entropy_out_refused_untouched(rng):
    z = randn(rng, 8, 10)
    labels = rng.integers(0, 10, size=8)
    keep = z.copy()
    with pytest.raises(ValueError, match="return_grad"):
        ops.cross_entropy(z, labels, out=z)
    with pytest.raises(ValueError, match="out"):
        ops.cross_entropy(z, labels, return_grad=True, out=np.empty((8, 9), np.float32))
    big = np.concatenate([z, z], axis=1)
    with pytest.raises(ValueError, match="overlap"):  # overlaps the logits without being them
        ops.cross_entropy(big[:, :10], labels, return_grad=True, out=big[:, 1:11])
    with pytest.raises(TypeError, match="float32"):
        ops.cross_entropy(z, labels, return_grad=True, out=np.empty((8, 10)))
    assert bitwise_equal(z, keep) and bitwise_equal(big[:, :10], keep)


def test_cross_entropy_thread_invariant(threads, rng):
    z = randn(rng, 517, 1000, scale=2.0)
    labels = rng.integers(0, 1000, size=517)
    same_for_1_and_2_threads(lambda: ops.cross_entropy(z, labels, label_smoothing=0.1, return_grad=True))


# --- activations -------------------------------------------------------------------
def activation_inputs(rng, n):
    x = randn(rng, n, scale=3.0)
    x[: min(n, 6)] = np.array([0.0, -0.0, 1e-6, -1e-6, 30.0, -30.0], np.float32)[: min(n, 6)]
    return x


def gelu_tanh_cond(x):
    """Conditioning of x * sigmoid(2u): float32 rounding of u propagates as |x s (1-s) 2u|."""
    x = f64(x)
    u2 = 2 * math.sqrt(2 / math.pi) * (x + 0.044715 * x ** 3)
    s = ref.sigmoid(u2)
    return np.abs(x * s) + np.abs(x * s * (1 - s) * u2)


def gelu_erf_cond(x):
    """Conditioning of x * Phi(x) under a relative perturbation of x: |x| Phi + x^2 phi."""
    x = f64(x)
    phi = np.exp(-x ** 2 / 2) / math.sqrt(2 * math.pi)
    return np.abs(ref.gelu_erf(x)) + x ** 2 * phi


@pytest.mark.parametrize("n", [1, 7, 33, 1023, 4099])
def test_activation_forwards(isa, rng, n):
    x = activation_inputs(rng, n)
    x64 = f64(x)
    cases = [
        ("relu", ops.relu(x), np.maximum(x64, 0), 0.0),
        ("leaky", ops.leaky_relu(x, 0.2), np.where(x64 > 0, x64, 0.2 * x64), EPS32 * np.abs(x64)),
        ("tanh", ops.tanh(x), np.tanh(x64), 4 * EPS32 * np.abs(np.tanh(x64)) + 1e-37),
        ("sigmoid", ops.sigmoid(x), ref.sigmoid(x), 4 * EPS32 * ref.sigmoid(x) + 1e-37),
        # exp() flushes results below the smallest normal float to 0 (sigmoid(2u) * x)
        ("gelu_tanh", ops.gelu(x), ref.gelu_tanh(x), 8 * EPS32 * gelu_tanh_cond(x) + TINY * (1 + np.abs(x64))),
        ("gelu_erf", ops.gelu(x, "none"), ref.gelu_erf(x), 8 * EPS32 * gelu_erf_cond(x) + 1e-37),
    ]
    for name, got, want, tol in cases:
        assert got.dtype == np.float32 and got.shape == x.shape
        assert_close(got, want, tol, name)


def test_activation_forward_torch_gelu(rng):
    torch = pytest.importorskip("torch")
    x = activation_inputs(rng, 999)
    for approx in ("tanh", "none"):
        want = torch.nn.functional.gelu(torch.tensor(f64(x)), approximate=approx).numpy()
        # torch's float64 tanh form cancels for x << 0 (error ~ 1e-16 |x|)
        cond = gelu_tanh_cond(x) if approx == "tanh" else gelu_erf_cond(x)
        assert_close(ops.gelu(x, approx), want, 8 * EPS32 * cond + 1e-15 * np.abs(f64(x)), approx)


@pytest.mark.parametrize("name", ["relu", "leaky_relu", "tanh", "sigmoid", "gelu_tanh", "gelu_erf"])
def test_activation_backwards_vs_central_differences(isa, rng, name):
    x = randn(rng, 5, 7, scale=2.0)
    x[np.abs(x) < 1e-3] = 0.5  # keep FD away from the ReLU kink
    dy = randn(rng, 5, 7)
    fwd = {
        "relu": (lambda v: np.maximum(v, 0)),
        "leaky_relu": (lambda v: np.where(v > 0, v, 0.1 * v)),
        "tanh": np.tanh,
        "sigmoid": ref.sigmoid,
        "gelu_tanh": ref.gelu_tanh,
        "gelu_erf": ref.gelu_erf,
    }[name]
    if name == "relu":
        got = ops.relu_backward(dy, ops.relu(x))
    elif name == "leaky_relu":
        got = ops.leaky_relu_backward(dy, x, 0.1)
    elif name == "tanh":
        got = ops.tanh_backward(dy, ops.tanh(x))
    elif name == "sigmoid":
        got = ops.sigmoid_backward(dy, ops.sigmoid(x))
    else:
        got = ops.gelu_backward(dy, x, "tanh" if name == "gelu_tanh" else "none")
    fd = central_diff(lambda v: float((f64(dy) * fwd(v)).sum()), x)
    assert_close(got, fd, 16 * EPS32 * np.abs(f64(dy)) * (1 + np.abs(f64(x)) ** 2) + 1e-7, name)


def test_activation_out_and_layout(isa, rng):
    x = randn(rng, 6, 10)
    buf = x.copy()
    assert ops.tanh(buf, out=buf) is buf
    assert_close(buf, np.tanh(f64(x)), 4 * EPS32, "tanh in place")
    xt = x.T  # transposed input is copied to C order
    assert_close(ops.sigmoid(xt), ref.sigmoid(xt), 4 * EPS32, "sigmoid transposed")
    dy = randn(rng, 10, 6)
    assert_close(ops.relu_backward(dy, xt), np.where(f64(xt) > 0, dy, 0), 0.0, "relu_backward transposed")
    with pytest.raises(ValueError, match="overlaps"):
        big = randn(rng, 20)
        ops.relu(big[:10], out=big[5:15])
    with pytest.raises(ValueError, match="out must have shape"):
        ops.relu(x, out=np.empty((6, 9), np.float32))
    with pytest.raises(ValueError, match="read-only"):
        ro = np.empty_like(x)
        ro.flags.writeable = False
        ops.relu(x, out=ro)
    with pytest.raises(ValueError, match="approximate"):
        ops.gelu(x, "erf")
    with pytest.raises(ValueError, match=r"dy \(6, 10\)"):
        ops.tanh_backward(x, x[:, :5])
    with pytest.raises(TypeError, match="float32"):
        ops.relu(x.astype(np.float16))
    with pytest.raises(TypeError, match="numpy.ndarray"):
        ops.relu([1.0, 2.0])


def test_activations_thread_invariant(threads, rng):
    x = randn(rng, 700_001, scale=3.0)
    dy = randn(rng, 700_001)
    same_for_1_and_2_threads(lambda: (ops.relu(x), ops.tanh(x), ops.sigmoid(x), ops.gelu(x),
                                      ops.gelu(x[:200_001], "none"), ops.leaky_relu(x)))
    same_for_1_and_2_threads(lambda: (ops.gelu_backward(dy, x), ops.tanh_backward(dy, x),
                                      ops.sigmoid_backward(dy, x), ops.relu_backward(dy, x)))


# --- layer norm -----------------------------------------------------------------------
@pytest.mark.parametrize("shape", [(1, 1), (7, 33), (3, 1023), (2, 3, 17), (65, 8)])
@pytest.mark.parametrize("affine", [True, False])
def test_layer_norm_forward(isa, rng, shape, affine):
    d = shape[-1]
    x = randn(rng, *shape, scale=2.0) + np.float32(1000.0)  # |mean| >> std: two-pass variance
    g = randn(rng, d) if affine else None
    b = randn(rng, d) if affine else None
    y, mean, rstd = ops.layer_norm(x, g, b, eps=1e-5)
    wy, wm, wr = ref.layer_norm(x, g, b, 1e-5)
    assert mean.shape == shape[:-1] and rstd.shape == shape[:-1]
    assert_close(mean, wm, EPS32 * (4 + d) * 1000, "mean")
    assert_close(rstd, wr, EPS32 * (8 + d) * 1000 * wr, "rstd")
    gamma_mag = np.abs(f64(g)) if affine else 1.0
    assert_close(y, wy, EPS32 * (8 + d) * 1000 * wr[..., None] * gamma_mag + 4 * EPS32 * np.abs(wy), "y")


@pytest.mark.parametrize("affine", [True, False])
def test_layer_norm_backward_vs_central_differences(isa, rng, affine):
    rows, d = 6, 9
    x = randn(rng, rows, d)
    g = randn(rng, d) if affine else None
    b = randn(rng, d) if affine else None
    w = randn(rng, rows, d)
    _, mean, rstd = ops.layer_norm(x, g, b)
    dx, dg, db = ops.layer_norm_backward(w, x, g, mean, rstd)
    loss = lambda xv, gv, bv: float((f64(w) * ref.layer_norm(xv, gv, bv)[0]).sum())
    tol = EPS32 * 64 * (1 + np.abs(f64(w)).max() * d) + 1e-7
    assert_close(dx, central_diff(lambda v: loss(v, g, b), x), tol, "dx")
    if affine:
        assert_close(dg, central_diff(lambda v: loss(x, v, b), g), tol * rows, "dgamma")
        assert_close(db, central_diff(lambda v: loss(x, g, v), b), tol * rows, "dbeta")
    else:
        assert dg is None and db is None


def test_layer_norm_views_errors_and_threads(threads, rng):
    base = randn(rng, 9, 30)
    view = base[2:8, 1:-2]
    y, m, r = ops.layer_norm(view, None, None)
    assert_close(y, ref.layer_norm(view, None, None)[0], 64 * EPS32, "view")
    with pytest.raises(ValueError, match="gamma must have shape"):
        ops.layer_norm(base, np.ones(29, np.float32), None)
    with pytest.raises(ValueError, match="eps"):
        ops.layer_norm(base, None, None, eps=-1.0)
    with pytest.raises(ValueError, match="mean must have shape"):
        ops.layer_norm_backward(base, base, None, m, r)
    big = randn(rng, 1201, 333)
    gb = randn(rng, 333)
    same_for_1_and_2_threads(lambda: ops.layer_norm(big, gb, gb))
    _, m, r = ops.layer_norm(big, gb, gb)
    dy = randn(rng, 1201, 333)
    same_for_1_and_2_threads(lambda: ops.layer_norm_backward(dy, big, gb, m, r))


# --- batch norm ---------------------------------------------------------------------
@pytest.mark.parametrize("shape", [(2, 1), (7, 33), (128, 10), (3, 5, 7), (2, 3, 5, 7), (4, 1, 13, 1)])
def test_batch_norm_training_forward_and_running_stats(isa, rng, shape):
    c = shape[1]
    m = shape[0] * int(np.prod(shape[2:], dtype=np.int64))
    x = randn(rng, *shape, scale=3.0) + np.float32(50.0)
    g, b = randn(rng, c), randn(rng, c)
    rm, rv = randn(rng, c), (rng.random(c) + 0.5).astype(np.float32)
    rm0, rv0 = rm.copy(), rv.copy()
    y, sm, sr = ops.batch_norm(x, g, b, rm, rv, training=True, momentum=0.3, eps=1e-5)
    wy, wm, wv = ref.batch_norm_train(x, g, b, 1e-5)
    wr = 1 / np.sqrt(wv + 1e-5)
    assert_close(sm, wm, EPS32 * 16 * 53, "save_mean")
    assert_close(sr, wr, EPS32 * 16 * 53 * wr * wr * 3 + EPS32 * wr * 8, "save_rstd")
    bshape = [1, c] + [1] * (len(shape) - 2)
    assert_close(y, wy, EPS32 * 64 * 53 * (wr * np.abs(f64(g))).reshape(bshape) + 8 * EPS32 * np.abs(wy), "y")
    assert_close(rm, 0.7 * f64(rm0) + 0.3 * wm, EPS32 * 64 * (np.abs(rm0) + 53), "running_mean")
    assert_close(rv, 0.7 * f64(rv0) + 0.3 * wv * m / (m - 1), EPS32 * 64 * (rv0 + wv * 4), "running_var")


def test_batch_norm_eval_uses_running_stats(isa, rng):
    x = randn(rng, 5, 4, 3)
    g, b = randn(rng, 4), randn(rng, 4)
    rm, rv = randn(rng, 4), (rng.random(4) + 0.5).astype(np.float32)
    rm0, rv0 = rm.copy(), rv.copy()
    y, sm, sr = ops.batch_norm(x, g, b, rm, rv, training=False)
    want = (f64(x) - f64(rm)[None, :, None]) / np.sqrt(f64(rv)[None, :, None] + 1e-5) * f64(g)[None, :, None] \
        + f64(b)[None, :, None]
    assert_close(y, want, 16 * EPS32 * (1 + np.abs(want)), "eval y")
    assert np.array_equal(rm, rm0) and np.array_equal(rv, rv0)
    dy = randn(rng, 5, 4, 3)
    dx, dg, db = ops.batch_norm_backward(dy, x, g, sm, sr, training=False)
    assert_close(dx, f64(dy) * (f64(g) / np.sqrt(f64(rv) + 1e-5))[None, :, None], 8 * EPS32 * (1 + np.abs(f64(dy)) * 4), "eval dx")


@pytest.mark.parametrize("shape", [(5, 3), (3, 2, 4), (2, 2, 3, 2)])
@pytest.mark.parametrize("affine", [True, False])
def test_batch_norm_backward_vs_central_differences(isa, rng, shape, affine):
    c = shape[1]
    x = randn(rng, *shape)
    w = randn(rng, *shape)
    g = randn(rng, c) if affine else None
    b = randn(rng, c) if affine else None
    _, sm, sr = ops.batch_norm(x, g, b, None, None, training=True)
    dx, dg, db = ops.batch_norm_backward(w, x, g, sm, sr)
    loss = lambda xv, gv, bv: float((f64(w) * ref.batch_norm_train(xv, gv, bv)[0]).sum())
    tol = EPS32 * 256 * (1 + np.abs(f64(w)).sum() / c) + 1e-7
    assert_close(dx, central_diff(lambda v: loss(v, g, b), x), tol, "dx")
    if affine:
        assert_close(dg, central_diff(lambda v: loss(x, v, b), g), tol, "dgamma")
        assert_close(db, central_diff(lambda v: loss(x, g, v), b), tol, "dbeta")
    else:
        assert dg is None and db is None


def test_batch_norm_errors_and_threads(threads, rng):
    x = randn(rng, 4, 3)
    rm, rv = np.zeros(3, np.float32), np.ones(3, np.float32)
    with pytest.raises(ValueError, match="more than 1 value per channel"):
        ops.batch_norm(x[:1], None, None, rm, rv, training=True)
    assert np.array_equal(rm, np.zeros(3)) and np.array_equal(rv, np.ones(3))
    with pytest.raises(ValueError, match="needs running_mean"):
        ops.batch_norm(x, None, None, None, None, training=False)
    with pytest.raises(ValueError, match="running_mean must have shape"):
        ops.batch_norm(x, None, None, np.zeros(4, np.float32), rv, training=True)
    with pytest.raises(ValueError, match="read-only"):
        ro = rm.copy()
        ro.flags.writeable = False
        ops.batch_norm(x, None, None, ro, rv, training=True)
    with pytest.raises(ValueError, match="2 to"):
        ops.batch_norm(x[0], None, None, rm, rv, training=True)
    with pytest.raises(TypeError, match="float32"):
        ops.batch_norm(x.astype(np.float64), None, None, rm, rv, training=True)
    with pytest.raises(ValueError, match="dy must have the shape"):
        ops.batch_norm_backward(x[:2], x, None, rm, rv)
    for shape in [(1025, 300), (16, 32, 28, 28)]:  # large enough for 2 threads
        big = randn(rng, *shape)
        c = shape[1]
        g = randn(rng, c)

        def fwd():
            r1, r2 = np.zeros(c, np.float32), np.ones(c, np.float32)
            return ops.batch_norm(big, g, g, r1, r2, training=True) + (r1, r2)

        same_for_1_and_2_threads(fwd)
        _, sm, sr = ops.batch_norm(big, g, g, None, None, training=True)
        same_for_1_and_2_threads(lambda: ops.batch_norm_backward(big, big, g, sm, sr))


# --- dropout -------------------------------------------------------------------------
@pytest.mark.parametrize("p", [0.0, 0.1, 0.5, 0.9])
def test_dropout_forward_backward(isa, rng, seed, p):
    x = randn(rng, 301, 331)
    y, mask = ops.dropout(x, p, seed)
    assert mask.dtype == np.uint8 and mask.shape == x.shape and set(np.unique(mask)) <= {0, 1}
    kept = mask.mean()
    sigma = math.sqrt(p * (1 - p) / x.size)
    assert abs(kept - (1 - p)) <= 6 * sigma + 1e-12, f"kept fraction {kept} for p={p}"
    assert_close(y, np.where(mask == 1, f64(x) / (1 - p), 0.0), 2 * EPS32 * np.abs(f64(x)) / (1 - p), "y")
    dy = randn(rng, 301, 331)
    dx = ops.dropout_backward(dy, mask, p)
    assert_close(dx, np.where(mask == 1, f64(dy) / (1 - p), 0.0), 2 * EPS32 * np.abs(f64(dy)) / (1 - p), "dx")
    assert np.array_equal(ops.dropout_backward(dy, mask.astype(bool), p), dx)


def test_dropout_seeding_isa_and_threads(threads, rng):
    x = randn(rng, 1_000_003)
    y1, m1 = ops.dropout(x, 0.3, 12345)
    y2, m2 = ops.dropout(x, 0.3, 12345)
    assert np.array_equal(m1, m2) and np.array_equal(y1, y2)
    _, m3 = ops.dropout(x, 0.3, 12346)
    assert (m1 != m3).mean() > 0.3  # independent masks differ in ~42% of places
    for isa in nnforge.available_isas():
        with nnforge.use_isa(isa):
            assert np.array_equal(ops.dropout(x, 0.3, 12345)[1], m1), isa
    # the mask of a prefix is the prefix of the mask (counter-based, not sequential)
    assert np.array_equal(ops.dropout(x[:1000], 0.3, 12345)[1], m1[:1000])
    same_for_1_and_2_threads(lambda: ops.dropout(x, 0.3, 2**64 - 1))


def test_dropout_errors(rng):
    x = randn(rng, 4, 5)
    for p in (1.0, -0.1, float("nan"), 1.5):
        with pytest.raises(ValueError, match=r"\[0, 1\)"):
            ops.dropout(x, p, 1)
    with pytest.raises(ValueError, match="seed"):
        ops.dropout(x, 0.5, -1)
    with pytest.raises(ValueError, match="seed"):
        ops.dropout(x, 0.5, 2**64)
    _, mask = ops.dropout(x, 0.5, 1)
    with pytest.raises(TypeError, match="uint8 or bool"):
        ops.dropout_backward(x, mask.astype(np.int32), 0.5)
    with pytest.raises(ValueError, match="mask must have the shape"):
        ops.dropout_backward(x, mask[:2], 0.5)


# --- sum_rows and embedding_backward ------------------------------------------------------
@pytest.mark.parametrize("shape", [(1, 1), (1, 7), (7, 33), (128, 10), (1031, 3), (33, 1023), (300, 257)])
def test_sum_rows(isa, rng, shape):
    x = randn(rng, *shape)
    want = f64(x).sum(axis=0)
    tol = EPS32 * (shape[0] + 2) * np.abs(f64(x)).sum(axis=0)
    assert_close(ops.sum_rows(x), want, tol, "sum_rows")
    out = np.ones(shape[1], np.float32)
    assert ops.sum_rows(x, out, accumulate=True) is out
    assert_close(out, want + 1, tol + EPS32 * 2, "accumulate")
    base = randn(rng, shape[0] + 3, shape[1] + 5)
    view = base[1:-2, 2:-3]
    assert_close(ops.sum_rows(view), f64(view).sum(axis=0), tol * 4 + 1e-6, "sliced view")
    assert_close(ops.sum_rows(view.T), f64(view).sum(axis=1), EPS32 * (shape[1] + 2) * np.abs(f64(view)).sum(1), "transposed")


def test_sum_rows_errors_and_threads(threads, rng):
    x = randn(rng, 4, 6)
    with pytest.raises(ValueError, match="2 dimensions"):
        ops.sum_rows(x[0])
    with pytest.raises(ValueError, match="accumulate=True needs out"):
        ops.sum_rows(x, accumulate=True)
    with pytest.raises(ValueError, match=r"out must have shape \(6,\)"):
        ops.sum_rows(x, np.zeros(4, np.float32))
    big = randn(rng, 3001, 513)
    same_for_1_and_2_threads(lambda: ops.sum_rows(big))


@pytest.mark.parametrize("itype", [np.int64, np.int32])
def test_embedding_backward(isa, rng, itype):
    num, d = 17, 33
    idx = rng.integers(0, num, size=(5, 7)).astype(itype)
    idx[0, :3] = 4  # repeated index: contributions add in order
    dy = randn(rng, 5, 7, d)
    want = np.zeros((num, d))
    np.add.at(want, idx.ravel(), f64(dy).reshape(-1, d))
    counts = np.bincount(idx.ravel(), minlength=num)[:, None]
    tol = EPS32 * (counts + 1) * np.abs(want).max()
    assert_close(ops.embedding_backward(idx, dy, num), want, tol, "dW")
    out = np.ones((num, d), np.float32)
    assert ops.embedding_backward(idx, dy, num, out, accumulate=True) is out
    assert_close(out, want + 1, tol + 4 * EPS32, "accumulate")
    idx1 = idx.ravel()[::2]  # strided 1-D indices, sliced dy rows
    dy1 = f64(dy).reshape(-1, d)[::2]
    want1 = np.zeros((num, d))
    np.add.at(want1, idx1, dy1)
    got1 = ops.embedding_backward(idx1, np.ascontiguousarray(dy.reshape(-1, d))[::2], num)
    assert_close(got1, want1, tol, "strided")


def test_embedding_backward_errors_and_threads(threads, rng):
    idx = np.array([0, 3, 9])
    dy = randn(rng, 3, 4)
    with pytest.raises(ValueError, match="index 9 at position 2 is out of range"):
        ops.embedding_backward(idx, dy, 9)
    out = np.full((9, 4), 7.0, np.float32)
    with pytest.raises(ValueError, match="index 9"):
        ops.embedding_backward(idx, dy, 9, out, accumulate=True)
    assert (out == 7.0).all()  # nothing written when validation fails
    with pytest.raises(ValueError, match="indices.shape"):
        ops.embedding_backward(idx, dy[:2], 10)
    with pytest.raises(TypeError, match="int64 or int32"):
        ops.embedding_backward(idx.astype(np.float64), dy, 10)
    big_idx = rng.integers(0, 50, size=2000)
    big_dy = randn(rng, 2000, 257)
    same_for_1_and_2_threads(lambda: ops.embedding_backward(big_idx, big_dy, 50))


def test_rows_layout_rule_matches_the_binding(rng):
    """_args.rows_layout (Python, decides whether to copy) and bind_nn.cpp's row_layout (C++,
    reads without a copy) state one rule: an array is kept exactly when the binding takes it."""
    from nnforge import _args, _core
    base = randn(rng, 6, 10, 12)
    layouts = [base, base[0], base[0][:, 2:9], base[0].T, base[:, 1], base[0][::2], base[0][:, ::2],
               base[0][:, :1], base[0][:1], base.reshape(-1), base.reshape(-1)[::3], base[:, :, 3:5],
               np.zeros((0, 4), np.float32)[:, 1:3]]
    for a in layouts:
        kept = _args.rows_layout(a) is a
        try:
            _core.softmax(a, None)
            taken = True
        except ValueError as e:
            assert "C-contiguous" in str(e) or "at least one" in str(e), str(e)
            taken = "C-contiguous" not in str(e)
        assert kept == taken, f"shape {a.shape} strides {a.strides}: Python keeps {kept}, binding takes {taken}"
