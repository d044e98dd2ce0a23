"""conv2d forward and gradients (nnforge.ops.conv2d*) against the float64 reference in
conv_reference.py: every algorithm (direct_smallc, implicit_gemm, depthwise, gemm_1x1,
im2col_tiles; also each forced onto every shape it can run),
every ISA path, odd sizes, strides, dilations, groups, asymmetric padding, views,
fused ReLU, out=, 1-vs-2-thread bitwise equality, bad input, and PyTorch agreement.

Tolerance: the float32 error bound of a sum of k terms, 2 eps (k + 2) * sum|terms|
(conftest.fp32_dot_tol with magnitude = sum|terms|), where sum|terms| comes from the
same reference run on |x|, |w|, |dy|. A dropped or doubled term exceeds it.
"""
from __future__ import annotations

import numpy as np
import pytest

import nnforge
from nnforge import ops

from conftest import fp32_dot_tol
from conv_reference import conv2d_backward_ref, conv2d_ref

# (N, C, H, W, K, R, S, stride, padding, dilation, groups)
CONFIGS = [
    (2, 1, 9, 11, 5, 3, 3, 1, 1, 1, 1),            # C=1, odd sizes
    (3, 3, 13, 10, 8, 3, 3, 1, 1, 1, 1),           # C=3
    (1, 3, 17, 19, 64, 5, 5, 1, 2, 1, 1),          # C=3, 5x5, N=1
    (1, 3, 8, 40, 17, 3, 3, (2, 1), 1, 1, 1),      # direct, stride_h 2, 5 vectors wide, K tail
    (3, 2, 5, 70, 9, 1, 3, 1, (0, 0, 1, 1), (1, 3), 1),  # direct, wide rows, dilation_w 3
    (2, 17, 9, 7, 6, 3, 3, 2, 1, 1, 1),            # C=17, stride 2
    (2, 64, 7, 7, 33, 3, 3, 1, 1, 1, 1),           # C=64, K=33
    (2, 17, 30, 30, 5, 3, 3, 1, 1, 1, 1),          # several im2col tiles per image
    (1, 16, 8, 8, 16, 1, 1, 1, 0, 1, 1),           # 1x1 GEMM
    (2, 40, 6, 6, 24, 1, 1, 1, 0, 1, 4),           # 1x1 GEMM, groups 4
    (2, 32, 15, 15, 16, 1, 1, 2, 0, 1, 1),         # 1x1 stride 2 (im2col)
    (2, 8, 9, 9, 8, 3, 3, 1, 1, 1, 8),             # depthwise
    (2, 6, 9, 9, 6, 3, 3, 2, 1, 1, 6),             # depthwise, stride 2
    (2, 5, 10, 11, 5, 3, 3, 1, (2, 0, 0, 1), 2, 5),  # depthwise, asymmetric padding, dilation
    (2, 6, 11, 12, 4, 3, 3, 1, 2, 2, 2),           # groups 2 (direct), dilation 2
    (2, 12, 11, 12, 6, 3, 3, 1, (0, 2, 1, 0), 1, 3),  # asymmetric padding, groups 3
    (2, 20, 10, 9, 10, 3, 2, (2, 1), (1, 2, 0, 1), (1, 2), 2),  # mixed everything, im2col
    (2, 5, 6, 7, 4, 6, 7, 1, 0, 1, 1),             # kernel = whole input: Ho = Wo = 1
    (1, 1, 1, 1, 1, 1, 1, 1, 0, 1, 1),             # everything 1
    (2, 7, 4, 5, 3, 1, 1, 1, (1, 2, 0, 3), 1, 1),   # 1x1 with padding > extent (dx via col2im)
    (2, 3, 15, 17, 10, 3, 3, 2, 1, 1, 1),          # small C, stride 2 (phase-split rows)
    (1, 2, 9, 23, 5, 2, 3, (1, 3), (0, 1, 2, 0), (2, 1), 1),  # small C, stride_w 3
]
IDS = ["N{}C{}H{}W{}K{}R{}S{}-st{}-p{}-d{}-g{}".format(*c).replace(" ", "") for c in CONFIGS]


def make(rng, cfg, bias=True):
    n, c, h, w, k, r, s, stride, padding, dilation, groups = cfg
    x = rng.standard_normal((n, c, h, w), dtype=np.float32)
    wt = rng.standard_normal((k, c // groups, r, s), dtype=np.float32)
    b = rng.standard_normal(k, dtype=np.float32) if bias else None
    kw = dict(stride=stride, padding=padding, dilation=dilation, groups=groups)
    return x, wt, b, kw


def red_len(wt):
    return int(np.prod(wt.shape[1:]))


def check_forward(y, x, wt, b, kw, activation=None):
    want = conv2d_ref(x, wt, b, activation=activation, **kw)
    mag = conv2d_ref(np.abs(x), np.abs(wt), None if b is None else np.abs(b), **kw)
    assert y.dtype == np.float32 and y.shape == want.shape
    err = np.abs(y - want)
    tol = fp32_dot_tol(red_len(wt), 1.0) * mag + 1e-30
    assert (err <= tol).all(), f"max err {err.max():.3g}, tol there {tol.flat[err.argmax()]:.3g}"


def check_backward(got, dy, x, wt, kw):
    dx, dw, db = got
    want = conv2d_backward_ref(dy, x, wt, **kw)
    mag = conv2d_backward_ref(np.abs(dy), np.abs(x), np.abs(wt), **kw)
    n, k, ho, wo = dy.shape
    lengths = {"dx": k * red_len(wt), "dw": n * ho * wo, "db": n * ho * wo}
    for name, g, wnt, m in zip(("dx", "dw", "db"), (dx, dw, db), want, mag):
        if g is None:
            continue
        assert g.dtype == np.float32 and g.shape == wnt.shape, name
        err = np.abs(g - wnt)
        tol = fp32_dot_tol(lengths[name], 1.0) * m + 1e-30
        assert (err <= tol).all(), f"{name}: max err {err.max():.3g}, tol there {tol.flat[err.argmax()]:.3g}"


@pytest.mark.parametrize("cfg", CONFIGS, ids=IDS)
def test_forward_matches_reference(isa, rng, cfg):
    x, wt, b, kw = make(rng, cfg)
    check_forward(ops.conv2d(x, wt, b, **kw), x, wt, b, kw)
    check_forward(ops.conv2d(x, wt, None, **kw), x, wt, None, kw)


@pytest.mark.parametrize("cfg", CONFIGS, ids=IDS)
def test_fused_relu(isa, rng, cfg):
    x, wt, b, kw = make(rng, cfg)
    y = ops.conv2d(x, wt, b, activation="relu", **kw)
    check_forward(y, x, wt, b, kw, activation="relu")
    assert (y >= 0).all()


@pytest.mark.parametrize("cfg", CONFIGS, ids=IDS)
def test_backward_matches_reference(isa, rng, cfg):
    x, wt, b, kw = make(rng, cfg)
    y = ops.conv2d(x, wt, b, **kw)
    dy = rng.standard_normal(y.shape, dtype=np.float32)
    check_backward(ops.conv2d_backward(dy, x, wt, **kw), dy, x, wt, kw)


def test_backward_returns_only_what_is_asked(rng):
    x, wt, b, kw = make(rng, CONFIGS[5])
    dy = rng.standard_normal(ops.conv2d_output_shape(x.shape, wt.shape, **kw), dtype=np.float32)
    full = ops.conv2d_backward(dy, x, wt, **kw)
    for mask in [(True, False, False), (False, True, False), (False, False, True), (False, False, False)]:
        got = ops.conv2d_backward(dy, x, wt, need_input=mask[0], need_weight=mask[1], need_bias=mask[2], **kw)
        for want_it, g, f in zip(mask, got, full):
            if want_it:
                assert np.array_equal(g, f)
            else:
                assert g is None


def test_reference_gradients_match_central_differences(rng):
    """The float64 reference's gradients are the adjoint of its forward (checked in float64)."""
    cfg = (2, 4, 5, 6, 4, 3, 2, (2, 1), (1, 0, 2, 1), (1, 2), 2)
    n, c, h, w, k, r, s, stride, padding, dilation, groups = cfg
    x = rng.standard_normal((n, c, h, w))
    wt = rng.standard_normal((k, c // groups, r, s))
    b = rng.standard_normal(k)
    kw = dict(stride=stride, padding=padding, dilation=dilation, groups=groups)
    dy = rng.standard_normal(conv2d_ref(x, wt, b, **kw).shape)
    dx, dw, db = conv2d_backward_ref(dy, x, wt, **kw)
    h_ = 1e-6

    def loss(xx, ww, bb):
        return float((conv2d_ref(xx, ww, bb, **kw) * dy).sum())

    for arr, grad, args in ((x, dx, 0), (wt, dw, 1), (b, db, 2)):
        for idx in [tuple(rng.integers(0, d) for d in arr.shape) for _ in range(6)]:
            plus, minus = [x.copy(), wt.copy(), b.copy()], [x.copy(), wt.copy(), b.copy()]
            plus[args][idx] += h_
            minus[args][idx] -= h_
            fd = (loss(*plus) - loss(*minus)) / (2 * h_)
            assert abs(fd - grad[idx]) <= 1e-6 * (1 + abs(fd))


ALGOS = ["direct_smallc", "implicit_gemm", "depthwise", "gemm_1x1", "im2col_tiles"]


@pytest.fixture
def forced_algorithm():
    yield nnforge._core.conv2d_set_algorithm
    nnforge._core.conv2d_set_algorithm("auto")


@pytest.mark.parametrize("algo", ALGOS)
def test_every_algorithm_on_every_shape_it_runs(isa, rng, forced_algorithm, algo):
    """Forcing an algorithm (where it applies) gives the same accuracy, e.g. im2col tiles
    on the shapes the direct kernel normally takes, the direct kernel on 1x1 layers, and
    the dx-as-forward path of the backward on every forward kernel; dW follows (direct
    kernel for the direct algorithms, GEMM for the GEMM ones)."""
    forced_algorithm(algo)
    assert nnforge._core.conv2d_get_algorithm() == algo
    used = set()
    for cfg in CONFIGS:
        x, wt, b, kw = make(rng, cfg)
        used.add(ops.conv2d_algorithm(x.shape, wt.shape, **kw))
        y = ops.conv2d(x, wt, b, activation="relu", **kw)
        check_forward(y, x, wt, b, kw, activation="relu")
        dy = rng.standard_normal(y.shape, dtype=np.float32)
        check_backward(ops.conv2d_backward(dy, x, wt, **kw), dy, x, wt, kw)
    assert algo in used
    with pytest.raises(ValueError, match="unknown conv2d algorithm"):
        forced_algorithm("winograd")


# --- views ---------------------------------------------------------------------------
@pytest.mark.parametrize("cfg", [CONFIGS[1], CONFIGS[6], CONFIGS[8], CONFIGS[11], CONFIGS[16]],
                         ids=["direct", "im2col", "gemm_1x1", "depthwise", "mixed"])
def test_strided_and_transposed_views(isa, rng, cfg):
    x, wt, b, kw = make(rng, cfg)
    n, c, h, w = x.shape
    # x as a transposed NHWC array, w sliced from a bigger array, bias strided.
    x_view = np.ascontiguousarray(x.transpose(0, 2, 3, 1)).transpose(0, 3, 1, 2)
    big_w = rng.standard_normal((wt.shape[0] * 2,) + wt.shape[1:], dtype=np.float32)
    big_w[::2] = wt
    w_view = big_w[::2]
    big_b = np.zeros(2 * b.size, np.float32)
    big_b[1::2] = b
    b_view = big_b[1::2]
    assert not x_view.flags.c_contiguous and not w_view.flags.c_contiguous
    y = ops.conv2d(x_view, w_view, b_view, **kw)
    assert np.array_equal(y, ops.conv2d(x, wt, b, **kw))
    check_forward(y, x, wt, b, kw)
    dy = rng.standard_normal(y.shape, dtype=np.float32)
    dy_view = np.ascontiguousarray(dy[..., ::-1])[..., ::-1]
    got = ops.conv2d_backward(dy_view, x_view, w_view, **kw)
    for g, want in zip(got, ops.conv2d_backward(dy, x, wt, **kw)):
        assert np.array_equal(g, want)


def test_inputs_are_not_modified(rng):
    x, wt, b, kw = make(rng, CONFIGS[6])
    copies = [a.copy() for a in (x, wt, b)]
    y = ops.conv2d(x, wt, b, activation="relu", **kw)
    ops.conv2d_backward(np.ones_like(y), x, wt, **kw)
    for a, cpy in zip((x, wt, b), copies):
        assert np.array_equal(a, cpy)


# --- threads -------------------------------------------------------------------------
@pytest.mark.parametrize("cfg", [CONFIGS[1], CONFIGS[3], CONFIGS[6], CONFIGS[5], CONFIGS[7],
                                 CONFIGS[9], CONFIGS[11], CONFIGS[16],
                                 (5, 24, 12, 12, 20, 3, 3, 1, 1, 1, 1), (1, 40, 30, 30, 13, 3, 3, 1, 1, 1, 1)],
                         ids=["direct", "direct-s2", "implicit", "im2col", "tiles", "gemm_1x1",
                              "depthwise", "mixed", "N5", "N1-rowblocks"])
def test_bitwise_equal_for_1_and_2_threads(isa, threads, rng, cfg):
    x, wt, b, kw = make(rng, cfg)
    dy = rng.standard_normal(ops.conv2d_output_shape(x.shape, wt.shape, **kw), dtype=np.float32)
    results = []
    for nt in (1, 2):
        nnforge.set_num_threads(nt)
        results.append((ops.conv2d(x, wt, b, activation="relu", **kw),) + ops.conv2d_backward(dy, x, wt, **kw))
    for a, c in zip(*results):
        assert a.tobytes() == c.tobytes()


# --- out= ----------------------------------------------------------------------------
def test_out_is_filled_and_returned(isa, rng):
    for cfg in (CONFIGS[1], CONFIGS[6], CONFIGS[8], CONFIGS[11]):
        x, wt, b, kw = make(rng, cfg)
        out = np.full(ops.conv2d_output_shape(x.shape, wt.shape, **kw), np.nan, np.float32)
        y = ops.conv2d(x, wt, b, out=out, **kw)
        assert y is out
        check_forward(out, x, wt, b, kw)


def test_bad_out(rng):
    x, wt, b, kw = make(rng, CONFIGS[6])
    shape = ops.conv2d_output_shape(x.shape, wt.shape, **kw)
    with pytest.raises(ValueError, match="shape"):
        ops.conv2d(x, wt, b, out=np.empty(shape[:3] + (shape[3] + 1,), np.float32), **kw)
    with pytest.raises(TypeError, match="float32"):
        ops.conv2d(x, wt, b, out=np.empty(shape, np.float64), **kw)
    with pytest.raises(ValueError, match="C-contiguous"):
        ops.conv2d(x, wt, b, out=np.empty(shape[::-1], np.float32).T, **kw)
    ro = np.empty(shape, np.float32)
    ro.flags.writeable = False
    with pytest.raises(ValueError, match="read-only"):
        ops.conv2d(x, wt, b, out=ro, **kw)
    # out aliasing the input (same-shape 1x1 convolution): refused, not silently wrong.
    x2 = rng.standard_normal((2, 8, 5, 5), dtype=np.float32)
    w2 = rng.standard_normal((8, 8, 1, 1), dtype=np.float32)
    with pytest.raises(ValueError, match="overlaps"):
        ops.conv2d(x2, w2, out=x2)
    with pytest.raises(TypeError):
        ops.conv2d(x, wt, b, out=[0.0], **kw)


# --- bad input -----------------------------------------------------------------------
def test_bad_shapes_raise_value_error_naming_shapes(rng):
    x = rng.standard_normal((2, 6, 8, 8), dtype=np.float32)
    w = rng.standard_normal((4, 6, 3, 3), dtype=np.float32)
    with pytest.raises(ValueError, match=r"channel mismatch.*\(2, 6, 8, 8\).*\(4, 3, 3, 3\)"):
        ops.conv2d(x, w[:, :3].copy())
    with pytest.raises(ValueError, match="channel mismatch"):
        ops.conv2d(x, w, groups=2)
    with pytest.raises(ValueError, match=r"K=5 are not divisible by groups=2"):
        ops.conv2d(x, rng.standard_normal((5, 3, 3, 3), dtype=np.float32), groups=2)
    with pytest.raises(ValueError, match="larger than the padded input"):
        ops.conv2d(x, rng.standard_normal((4, 6, 9, 3), dtype=np.float32))
    with pytest.raises(ValueError, match="larger than the padded input"):
        ops.conv2d(x, w, dilation=(1, 5))
    for bad in (0, -1, (1, 0)):
        with pytest.raises(ValueError, match="stride must be positive"):
            ops.conv2d(x, w, stride=bad)
        with pytest.raises(ValueError, match="dilation must be positive"):
            ops.conv2d(x, w, dilation=bad)
    with pytest.raises(ValueError, match="padding must be non-negative"):
        ops.conv2d(x, w, padding=(0, -1))
    with pytest.raises(ValueError, match="padding"):
        ops.conv2d(x, w, padding=(1, 1, 1))
    with pytest.raises(ValueError, match="groups must be positive"):
        ops.conv2d(x, w, groups=0)
    with pytest.raises(ValueError, match="4 dimensions"):
        ops.conv2d(x[0], w)
    with pytest.raises(ValueError, match="4 dimensions"):
        ops.conv2d(x, w[0])
    with pytest.raises(ValueError, match=r"bias must have shape \(4,\).*got \(3,\)"):
        ops.conv2d(x, w, np.zeros(3, np.float32))
    with pytest.raises(ValueError, match=r"bias must have shape"):
        ops.conv2d(x, w, np.zeros((4, 1), np.float32))
    y = ops.conv2d(x, w)
    with pytest.raises(ValueError, match=r"dy must have the output shape \(2, 4, 6, 6\)"):
        ops.conv2d_backward(y[:, :, :5].copy(), x, w)
    with pytest.raises(ValueError, match="activation"):
        ops.conv2d(x, w, activation="gelu")


def test_wrong_dtype_raises_type_error(rng):
    x = rng.standard_normal((2, 3, 8, 8), dtype=np.float32)
    w = rng.standard_normal((4, 3, 3, 3), dtype=np.float32)
    with pytest.raises(TypeError, match="x must be float32, got float64"):
        ops.conv2d(x.astype(np.float64), w)
    with pytest.raises(TypeError, match="w must be float32"):
        ops.conv2d(x, w.astype(np.float16))
    with pytest.raises(TypeError, match="bias must be float32"):
        ops.conv2d(x, w, np.zeros(4, np.int32))
    with pytest.raises(TypeError, match="numpy.ndarray"):
        ops.conv2d(x.tolist(), w)
    with pytest.raises(TypeError, match="dy must be float32"):
        ops.conv2d_backward(np.zeros((2, 4, 6, 6)), x, w)
    with pytest.raises(TypeError, match="stride must be an int"):
        ops.conv2d(x, w, stride=1.5)
    with pytest.raises(TypeError, match="groups must be an int"):
        ops.conv2d(x, w, groups=True)
    with pytest.raises(TypeError, match="activation"):
        ops.conv2d(x, w, activation=1)


def test_size_overflow_is_refused():
    huge = 2 ** 40
    with pytest.raises(ValueError, match="overflow"):
        ops.conv2d_output_shape((huge, 1, huge, huge), (huge, 1, 1, 1))
    # values past 2**62 are refused by nnforge._args before any size arithmetic
    with pytest.raises(ValueError, match="overflow|out of range"):
        ops.conv2d_output_shape((1, 1, 8, 8), (1, 1, 3, 3), dilation=2 ** 62)
    with pytest.raises(ValueError, match="overflow|out of range"):
        ops.conv2d_output_shape((1, 1, 8, 8), (1, 1, 3, 3), padding=2 ** 63 - 2)


def test_output_shape_and_algorithm():
    assert ops.conv2d_output_shape((2, 3, 32, 32), (8, 3, 3, 3), padding=1) == (2, 8, 32, 32)
    assert ops.conv2d_output_shape((2, 3, 32, 31), (8, 3, 3, 3), stride=2) == (2, 8, 15, 15)
    assert ops.conv2d_output_shape((1, 4, 10, 10), (4, 2, 3, 3), padding=(1, 0, 2, 0), dilation=2,
                                   groups=2) == (1, 4, 7, 8)
    alg = ops.conv2d_algorithm
    assert alg((64, 1, 28, 28), (32, 1, 3, 3), padding=1) == "direct_smallc"
    assert alg((32, 3, 32, 32), (64, 3, 3, 3), padding=1) == "direct_smallc"
    assert alg((8, 64, 56, 56), (64, 64, 3, 3), padding=1) == "implicit_gemm"
    assert alg((8, 64, 56, 56), (64, 64, 3, 3), padding=1, stride=2) == "im2col_tiles"
    assert alg((8, 64, 56, 56), (64, 64, 3, 3), padding=1, stride=(2, 1)) == "implicit_gemm"
    assert alg((8, 3, 56, 56), (64, 3, 3, 3), padding=1, stride=2) == "direct_smallc"
    assert alg((8, 3, 56, 56), (64, 3, 3, 3), stride=9) == "im2col_tiles"
    assert alg((8, 64, 56, 56), (64, 64, 1, 1)) == "gemm_1x1"
    assert alg((8, 64, 56, 56), (64, 64, 1, 1), stride=2) == "im2col_tiles"
    assert alg((8, 32, 56, 56), (32, 1, 3, 3), padding=1, groups=32) == "depthwise"


def test_huge_stride_and_dilation(isa, rng):
    """Strides / dilations far beyond the image: one output, no giant padded rows."""
    x = rng.standard_normal((2, 3, 7, 9), dtype=np.float32)
    w = rng.standard_normal((4, 3, 2, 2), dtype=np.float32)
    for kw in (dict(stride=2 ** 40), dict(stride=(1, 2 ** 40)), dict(dilation=(6, 8)),
               dict(stride=(3, 1000), padding=(0, 5, 0, 7))):
        y = ops.conv2d(x, w, **kw)
        check_forward(y, x, w, None, kw)
        dy = rng.standard_normal(y.shape, dtype=np.float32)
        check_backward(ops.conv2d_backward(dy, x, w, **kw), dy, x, w, kw)


def test_empty_batch(rng):
    x = np.zeros((0, 3, 8, 8), np.float32)
    w = rng.standard_normal((4, 3, 3, 3), dtype=np.float32)
    y = ops.conv2d(x, w, np.ones(4, np.float32))
    assert y.shape == (0, 4, 6, 6)
    dx, dw, db = ops.conv2d_backward(y, x, w)
    assert dx.shape == x.shape and (dw == 0).all() and (db == 0).all()


# --- PyTorch -------------------------------------------------------------------------
@pytest.mark.parametrize("cfg", CONFIGS, ids=IDS)
def test_matches_torch(rng, cfg):
    torch = pytest.importorskip("torch")
    F = torch.nn.functional
    x, wt, b, kw = make(rng, cfg)
    pad = kw["padding"]
    if isinstance(pad, tuple) and len(pad) == 4:
        t, bo, l, r = pad
        tx = F.pad(torch.from_numpy(x), (l, r, t, bo))
        tpad = 0
    else:
        tx, tpad = torch.from_numpy(x), pad
    gx = tx.clone().requires_grad_(True)
    gw = torch.from_numpy(wt).requires_grad_(True)
    gb = torch.from_numpy(b).requires_grad_(True)
    ty = F.conv2d(gx, gw, gb, stride=kw["stride"], padding=tpad, dilation=kw["dilation"], groups=kw["groups"])
    y = ops.conv2d(x, wt, b, **kw)
    mag = conv2d_ref(np.abs(x), np.abs(wt), np.abs(b), **kw)
    # Two float32 results, each within the bound of the exact value.
    assert (np.abs(y - ty.detach().numpy()) <= 2 * fp32_dot_tol(red_len(wt), 1.0) * mag + 1e-30).all()
    dy = rng.standard_normal(y.shape, dtype=np.float32)
    ty.backward(torch.from_numpy(dy))
    dx, dw, db = ops.conv2d_backward(dy, x, wt, **kw)
    tdx = gx.grad.numpy()
    if tpad == 0 and isinstance(pad, tuple) and len(pad) == 4:
        tdx = tdx[:, :, pad[0]:pad[0] + x.shape[2], pad[2]:pad[2] + x.shape[3]]
    _, mw, mb = conv2d_backward_ref(np.abs(dy), np.abs(x), np.abs(wt), **kw)
    mx = conv2d_backward_ref(np.abs(dy), np.abs(x), np.abs(wt), **kw)[0]
    n, k, ho, wo = dy.shape
    assert (np.abs(dx - tdx) <= 2 * fp32_dot_tol(k * red_len(wt), 1.0) * mx + 1e-30).all()
    assert (np.abs(dw - gw.grad.numpy()) <= 2 * fp32_dot_tol(n * ho * wo, 1.0) * mw + 1e-30).all()
    assert (np.abs(db - gb.grad.numpy()) <= 2 * fp32_dot_tol(n * ho * wo, 1.0) * mb + 1e-30).all()


@pytest.mark.parametrize("cfg", [CONFIGS[0], CONFIGS[1], CONFIGS[3], CONFIGS[20], CONFIGS[6]],
                         ids=["C1", "C3", "C3-stride_h2", "C3-stride2", "C64"])
def test_inf_in_x_poisons_only_the_weights_that_touch_it(isa, rng, cfg):
    """An inf at a row's right edge reaches exactly the dW entries whose taps read it.
    The vector kernels run past the output window on the last vector of a row (dy is 0
    there); those lanes must not turn 0 * inf into NaN in a neighbouring entry."""
    x, wt, b, kw = make(rng, cfg)
    x[0, 0, x.shape[2] // 2, -1] = np.inf
    x[-1, -1, -1, -1] = -np.inf
    dy = rng.standard_normal(ops.conv2d_output_shape(x.shape, wt.shape, **kw), dtype=np.float32)
    _, dw, _ = ops.conv2d_backward(dy, x, wt, need_input=False, need_bias=False, **kw)
    with np.errstate(invalid="ignore"):
        _, want, _ = conv2d_backward_ref(dy, x, wt, **kw)
    np.testing.assert_array_equal(np.isfinite(dw), np.isfinite(want))
    finite = np.isfinite(want)
    assert finite.any() and not finite.all()
    xf = np.where(np.isfinite(x), x, 0).astype(np.float32)
    _, dw_clean, _ = ops.conv2d_backward(dy, xf, wt, need_input=False, need_bias=False, **kw)
    np.testing.assert_array_equal(dw[finite], dw_clean[finite])
