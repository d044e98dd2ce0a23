"""nnforge.ops.matmul (csrc/cpu/gemm) against a float64 NumPy reference.

Error bound per element: |C - C_ref| <= fp32_dot_tol(k, (|a| @ |b|)_ij) * |alpha| plus the
beta/bias rounding, then propagated through the activation (|f'| <= 1.13 for every
activation here) plus the activation's own evaluation error, a few eps relative to
|f(x)| + |x f'(x)| (the condition of f at x).
"""
from __future__ import annotations

import math

import numpy as np
import pytest

import nnforge
from nnforge import _core
from nnforge.ops import matmul
from conftest import fp32_dot_tol

EPS = float(np.finfo(np.float32).eps)
SQRT_2_OVER_PI = math.sqrt(2.0 / math.pi)
_erfc = np.vectorize(math.erfc, otypes=[np.float64])
ACTIVATIONS = [None, "relu", "gelu", "gelu_tanh", "gelu_erf"]

# Tile shapes (MR, NR) of every micro-kernel and the k-block KC they use.
TILES = [(4, 8), (6, 16), (14, 32)]
KC = 256


# ---- float64 reference ------------------------------------------------------
def act_ref(x: np.ndarray, name):
    """Activation and x*f'(x) in float64, in forms without cancellation for x << 0."""
    if name is None:
        return x, x
    if name == "relu":
        return np.maximum(x, 0.0), np.where(x > 0, x, 0.0)
    if name in ("gelu", "gelu_tanh"):
        z = SQRT_2_OVER_PI * (x + 0.044715 * x**3)
        s = 1.0 / (1.0 + np.exp(np.clip(-2.0 * z, -700, 700)))  # sigmoid(2z)
        dz = SQRT_2_OVER_PI * (1.0 + 3 * 0.044715 * x**2)
        return x * s, x * (s + 2.0 * x * dz * s * (1.0 - s))
    if name == "gelu_erf":
        cdf = 0.5 * _erfc(-x / math.sqrt(2.0))
        pdf = np.exp(-0.5 * x * x) / math.sqrt(2.0 * math.pi)
        return x * cdf, x * (cdf + x * pdf)
    raise AssertionError(name)


def check(out, a, b, *, alpha=1.0, beta=0.0, c0=None, bias=None, activation=None):
    """Assert out matches the float64 reference within the derived bound."""
    a64, b64 = a.astype(np.float64), b.astype(np.float64)
    k = a.shape[-1]
    pre = alpha * np.matmul(a64, b64)
    mag = abs(alpha) * np.matmul(np.abs(a64), np.abs(b64))
    err = fp32_dot_tol(k, mag) + 2 * EPS * np.abs(pre)
    if beta != 0.0:
        bc = beta * c0.astype(np.float64)
        pre = pre + bc
        err = err + 2 * EPS * (np.abs(pre) + np.abs(bc))
    if bias is not None:
        pre = pre + bias.astype(np.float64)
        err = err + 2 * EPS * (np.abs(pre) + np.abs(bias))
    ref, x_dfdx = act_ref(pre, activation)
    tol = 1.2 * err + 8 * EPS * (np.abs(ref) + np.abs(x_dfdx)) + 1e-37
    assert out.shape == ref.shape and out.dtype == np.float32
    bad = np.abs(out.astype(np.float64) - ref) > tol
    assert not bad.any(), (
        f"{bad.sum()} of {bad.size} elements off; worst |err|/tol = "
        f"{(np.abs(out - ref) / tol).max():.3g} at {np.unravel_index((np.abs(out - ref) / tol).argmax(), ref.shape)}")


def randn(rng, *shape):
    return rng.standard_normal(shape, dtype=np.float32)


# ---- shapes: 1, primes, tile and block edges for every kernel ----------------
def _edge_shapes():
    shapes = [(1, 1, 1), (1, 7, 1), (2, 3, 5), (13, 17, 11), (31, 1, 37), (64, 64, 64),
              (97, 101, 103)]
    for mr, nr in TILES:
        for m in (mr - 1, mr, mr + 1, 2 * mr + 1):
            for n in (nr - 1, nr, nr + 1):
                shapes.append((m, 5, n))
        shapes.append((mr + 1, KC - 1, nr - 1))
        shapes.append((mr, KC, nr))
        shapes.append((mr - 1, KC + 1, nr + 1))
        shapes.append((2 * mr, 2 * KC + 3, 2 * nr + 1))
    return sorted(set(shapes))


@pytest.mark.parametrize("m,k,n", _edge_shapes())
def test_matmul_shapes(isa, rng, m, k, n):
    a, b = randn(rng, m, k), randn(rng, k, n)
    check(matmul(a, b), a, b)


def test_matmul_random_shapes(isa, rng):
    for _ in range(6):
        m, k, n = (int(v) for v in rng.integers(1, 90, size=3))
        a, b = randn(rng, m, k), randn(rng, k, n)
        check(matmul(a, b), a, b)


def test_matmul_multiple_blocks(isa, rng):
    # Crosses the MC (128..168), KC (256) and NC (1024..2048) block edges of every kernel.
    m, k, n = 171, 259, 2083
    a, b = randn(rng, m, k), randn(rng, k, n)
    check(matmul(a, b), a, b)


def test_matmul_each_variant(rng):
    a, b = randn(rng, 47, 300), randn(rng, 300, 75)
    prev = _core.get_gemm_variant()
    try:
        for v in _core.gemm_variants():
            if v == "auto":
                continue
            _core.set_gemm_variant(v)
            with nnforge.use_isa(v.split("_")[0]):
                check(matmul(a, b, activation="gelu_erf"), a, b, activation="gelu_erf")
    finally:
        _core.set_gemm_variant(prev)


def _variant_family(prefix):
    return [v for v in _core.gemm_variants() if v.startswith(prefix)]


def _by_k_blocks(variants):
    """The variants grouped by k blocking (kc); a group of one is still checked against the
    reference on every layout."""
    groups = {}
    for v in variants:
        groups.setdefault(_core.gemm_variant_blocking(v)[2], []).append(v)
    return list(groups.values())


def test_variant_blocking_names_tiles_and_blocks():
    for v in _core.gemm_variants():
        mr, nr, kc, mc, nc = _core.gemm_variant_blocking(v)
        assert 1 <= mr <= 16 and nr % 8 == 0 and kc >= 1 and mc % mr == 0 and nc % nr == 0, v
    in_use = next(r["variant"] for r in nnforge.dispatch_table() if (r["family"], r["op"]) == ("gemm", "sgemm"))
    assert _core.gemm_variant_blocking("auto") == _core.gemm_variant_blocking(in_use)
    with pytest.raises(ValueError, match="unknown GEMM variant 'nope'"):
        _core.gemm_variant_blocking("nope")


# Remainders of 14 rows / 16 and 32 columns, in place and packed (A + B > 320K floats),
# and MLP shapes.
VARIANT_SHAPES = [(1, 3, 1), (2, 9, 16), (10, 128, 10), (13, 40, 17), (15, 33, 48), (27, 5, 31),
                  (29, 70, 33), (128, 128, 10), (128, 10, 128), (128, 256, 784), (157, 1100, 150)]


@pytest.mark.parametrize("family", ["avx512", "avx2"])
@pytest.mark.parametrize("m,k,n", VARIANT_SHAPES)
def test_variants_bitwise_equal(rng, family, m, k, n):
    # Variants of one ISA with the same k blocking differ in tiling, prefetch and packing
    # only, never in per-element arithmetic (each variant also meets the reference below
    # and in test_matmul_each_variant).
    groups = _by_k_blocks(_variant_family(family))
    if sum(map(len, groups)) < 2:
        pytest.skip(f"needs {family}")
    for variants in groups:
        _check_variants_agree(rng, family, variants, m, k, n)


def _check_variants_agree(rng, family, variants, m, k, n):
    a_rm, b_rm = randn(rng, m, k), randn(rng, k, n)
    a_t, b_t = np.ascontiguousarray(a_rm.T).T, np.ascontiguousarray(b_rm.T).T
    bias, c0 = randn(rng, n), randn(rng, m, n)
    prev = _core.get_gemm_variant()
    try:
        with nnforge.use_isa(family):
            for layout, (a, b) in enumerate([(a_rm, b_rm), (a_t, b_rm), (a_rm, b_t), (a_t, b_t)]):
                res = []
                for v in variants:
                    _core.set_gemm_variant(v)
                    out = c0.copy()
                    matmul(a, b, out, beta=0.5, bias=bias, activation="gelu_tanh")
                    res.append(out)
                    res.append(matmul(a, b))
                # res = [epilogue, plain] per variant; compare each with the first variant's.
                for i in range(2, len(res)):
                    np.testing.assert_array_equal(res[i], res[i % 2], err_msg=f"variant {variants[i // 2]}")
                if layout == 0 or len(variants) == 1:  # the reference is the slow part
                    check(res[1], a, b)
                    check(res[0], a, b, beta=0.5, c0=c0, bias=bias, activation="gelu_tanh")
    finally:
        _core.set_gemm_variant(prev)


def test_variant_errors():
    with pytest.raises(ValueError, match="unknown GEMM variant"):
        _core.set_gemm_variant("avx9000_1x1")


# ---- strides ------------------------------------------------------------------
def _views(rng, rows, cols):
    """The same logical (rows, cols) matrix as several strided layouts."""
    base = randn(rng, rows, cols)
    yield "contig", base
    yield "transposed", np.ascontiguousarray(base.T).T
    big = randn(rng, 2 * rows + 1, 3 * cols + 2)
    v = big[1::2, 2::3][:rows, :cols]
    v[...] = base
    yield "sliced", v
    big2 = randn(rng, rows, cols)
    neg = big2[::-1, ::-1]
    neg[...] = base
    yield "negative", neg


@pytest.mark.parametrize("m,k,n", [(19, 33, 37), (15, 257, 31)])
def test_matmul_strided_inputs(isa, rng, m, k, n):
    for _, a in _views(rng, m, k):
        for _, b in _views(rng, k, n):
            check(matmul(a, b), a, b)


def test_matmul_strided_inputs_packed_path(isa, rng):
    # Large enough that operands are packed rather than read in place (A + B > 320K floats).
    m, k, n = 300, 600, 310
    for _, a in list(_views(rng, m, k))[1:3]:
        for _, b in list(_views(rng, k, n))[1:3]:
            bias = randn(rng, n)
            check(matmul(a, b, bias=bias, activation="relu"), a, b, bias=bias, activation="relu")


@pytest.mark.parametrize("layout", ["sliced", "transposed", "negative", "column"])
def test_matmul_strided_out(isa, rng, layout):
    m, k, n = 29, 45, 35
    a, b = randn(rng, m, k), randn(rng, k, n)
    c0 = randn(rng, m, n)
    if layout == "sliced":
        big = randn(rng, 2 * m + 3, 3 * n + 1)
        out = big[2::2, 1::3][:m, :n]
    elif layout == "transposed":
        big = randn(rng, n, m)
        out = big.T
    elif layout == "negative":
        big = randn(rng, m, n)
        out = big[::-1, ::-1]
    else:  # column vector result, non-unit stride
        b = b[:, :1]
        c0 = c0[:, :1]
        big = randn(rng, m, 3)
        out = big[:, 1:2]
    before = big.copy()
    out[...] = c0
    mask = np.ones(big.shape, bool)
    mask_view = mask[2::2, 1::3][:m, :n] if layout == "sliced" else (
        mask.T if layout == "transposed" else mask[::-1, ::-1] if layout == "negative" else mask[:, 1:2])
    mask_view[...] = False
    res = matmul(a, b, out, alpha=0.5, beta=-1.5, bias=randn(rng, out.shape[1]) * 0, activation="relu")
    assert res is out or np.shares_memory(res, out)
    check(out, a, b, alpha=0.5, beta=-1.5, c0=c0, bias=np.zeros(out.shape[1], np.float32),
          activation="relu")
    # Nothing outside the view was touched.
    np.testing.assert_array_equal(big[mask], before[mask])


# ---- alpha, beta, bias, activations -------------------------------------------
@pytest.mark.parametrize("activation", ACTIVATIONS)
@pytest.mark.parametrize("m,k,n", [(1, 1, 1), (15, 31, 33), (29, 260, 17)])
def test_matmul_epilogue(isa, rng, activation, m, k, n):
    a, b = randn(rng, m, k), randn(rng, k, n)
    bias = randn(rng, n)
    c0 = randn(rng, m, n)
    for alpha, beta, use_bias in [(1.0, 0.0, True), (-0.75, 0.0, False), (1.25, 0.5, True),
                                  (2.0, -1.0, False), (1.0, 1.0, True)]:
        out = c0.copy()
        matmul(a, b, out, alpha=alpha, beta=beta, bias=bias if use_bias else None,
               activation=activation)
        check(out, a, b, alpha=alpha, beta=beta, c0=c0, bias=bias if use_bias else None,
              activation=activation)


def test_beta_zero_ignores_nan_in_out(isa, rng):
    a, b = randn(rng, 20, 40), randn(rng, 40, 35)
    out = np.full((20, 35), np.nan, np.float32)
    matmul(a, b, out)
    check(out, a, b)


@pytest.mark.parametrize("activation", ["gelu_erf", "gelu_tanh"])
def test_gelu_accuracy(isa, activation):
    """Each kernel's SIMD gelu on exact inputs (k = 1, b = 1): erf-based within 1e-6
    relative everywhere; tanh-based within a few eps times its condition number."""
    x = np.linspace(-10.0, 10.0, 40001, dtype=np.float32)
    one = np.ones((1, 1), np.float32)
    y = matmul(x[:, None], one, activation=activation)[:, 0].astype(np.float64)
    ref, x_dfdx = act_ref(x.astype(np.float64), activation)
    live = np.abs(ref) > 1e-30  # below that float32 is denormal / zero
    if activation == "gelu_erf":
        rel = np.abs(y - ref)[live] / np.abs(ref)[live]
        assert rel.max() <= 1e-6, f"max rel error {rel.max():.3g}"
    else:
        tol = 16 * EPS * (np.abs(ref) + np.abs(x_dfdx))
        assert (np.abs(y - ref)[live] <= tol[live]).all()
    assert np.all(np.abs(y[~live]) <= 1e-30)


# ---- batched --------------------------------------------------------------------
@pytest.mark.parametrize("sa,sb", [((5, 13, 21), (21, 17)), ((4, 13, 21), (4, 21, 17)),
                                   ((13, 21), (3, 21, 17)), ((1, 13, 21), (3, 21, 17)),
                                   ((3, 13, 21), (1, 21, 17)), ((0, 4, 5), (5, 6)),
                                   ((6, 40, 70), (6, 70, 33))])
def test_matmul_batched(isa, rng, sa, sb):
    a, b = randn(rng, *sa), randn(rng, *sb)
    out = matmul(a, b, activation="relu")
    assert out.shape == np.matmul(a, b).shape
    check(out, np.broadcast_to(a, out.shape[:-1] + (a.shape[-1],)) if a.ndim == 3 else a, b,
          activation="relu")


def test_matmul_batched_strided_out(isa, rng):
    a = randn(rng, 4, 30, 50)[:, ::-1, :]
    b = randn(rng, 4, 17, 50).transpose(0, 2, 1)  # (4, 50, 17), column-major matrices
    big = randn(rng, 4, 17, 60)
    out = big.transpose(0, 2, 1)[:, ::2, :]  # (4, 30, 17), non-contiguous, batch stride != m*n
    c0 = out.copy()
    bias = randn(rng, 17)
    matmul(a, b, out, alpha=2.0, beta=0.5, bias=bias)
    check(out, a, b, alpha=2.0, beta=0.5, c0=c0, bias=bias)


# ---- zero sizes -----------------------------------------------------------------
def test_zero_sizes(isa, rng):
    assert matmul(np.zeros((0, 5), np.float32), randn(rng, 5, 3)).shape == (0, 3)
    assert matmul(randn(rng, 4, 5), np.zeros((5, 0), np.float32)).shape == (4, 0)
    z = matmul(np.zeros((4, 0), np.float32), np.zeros((0, 3), np.float32))
    np.testing.assert_array_equal(z, np.zeros((4, 3), np.float32))
    # k == 0: beta * out + bias, then activation.
    c0 = randn(rng, 4, 3)
    bias = randn(rng, 3)
    out = c0.copy()
    matmul(np.zeros((4, 0), np.float32), np.zeros((0, 3), np.float32), out, beta=2.0, bias=bias,
           activation="relu")
    np.testing.assert_allclose(out, np.maximum(2.0 * c0 + bias, 0), rtol=2 * EPS, atol=0)
    assert matmul(np.zeros((0, 4, 5), np.float32), randn(rng, 5, 3)).shape == (0, 4, 3)


# ---- threads: bitwise identical for 1 and 2 -------------------------------------
@pytest.mark.parametrize("m,k,n", [(300, 600, 200), (64, 64, 64), (7, 1000, 2100), (2100, 30, 5),
                                   (128, 128, 10), (128, 784, 256), (128, 256, 784)])
def test_threads_bitwise(isa, threads, rng, m, k, n):
    a, b = randn(rng, m, k), randn(rng, k, n)
    bias = randn(rng, n)
    res = []
    for t in (1, 2):
        nnforge.set_num_threads(t)
        res.append(matmul(a, b, bias=bias, activation="gelu_erf"))
    np.testing.assert_array_equal(res[0], res[1])
    check(res[1], a, b, bias=bias, activation="gelu_erf")


# Packed path (A + B > 320K floats) with transposed operands and output, slabs that span
# several MC blocks, and thread counts that leave uneven or empty slabs.
@pytest.mark.parametrize("m,k,n", [(700, 300, 517), (5, 1500, 3001), (3001, 700, 9)])
def test_threads_bitwise_layouts(isa, threads, rng, m, k, n):
    a = np.ascontiguousarray(randn(rng, m, k).T).T  # column-major A (x.T)
    b = np.ascontiguousarray(randn(rng, k, n).T).T  # column-major B (W.T)
    c0 = randn(rng, n, m).T  # column-major out
    res = []
    for t in (1, 2, 3):
        nnforge.set_num_threads(t)
        for a_, b_ in ((a, b), (np.ascontiguousarray(a), np.ascontiguousarray(b))):
            out = c0.copy(order="F")
            matmul(a_, b_, out, beta=0.5, activation="relu")
            res.append(out)
    for r in res[1:]:
        np.testing.assert_array_equal(r, res[0])
    check(res[0], a, b, beta=0.5, c0=c0, activation="relu")


def test_threads_bitwise_batched(threads, rng):
    a, b = randn(rng, 16, 24, 40), randn(rng, 16, 40, 36)
    res = []
    for t in (1, 2):
        nnforge.set_num_threads(t)
        res.append(matmul(a, b))
    np.testing.assert_array_equal(res[0], res[1])
    np.testing.assert_array_equal(res[0][3], matmul(a[3], b[3]))


# ---- bad input ------------------------------------------------------------------
def test_bad_dtype_and_type(rng):
    a32, b32 = randn(rng, 3, 4), randn(rng, 4, 5)
    for bad in (a32.astype(np.float64), a32.astype(np.int32)):
        with pytest.raises(TypeError, match=rf"a must be float32 or bfloat16, got {bad.dtype}.*astype"):
            matmul(bad, b32)
    with pytest.raises(TypeError, match="b must be float32 or bfloat16, got float64"):
        matmul(a32, b32.astype(np.float64))
    with pytest.raises(TypeError, match="numpy.ndarray"):
        matmul(a32.tolist(), b32)
    with pytest.raises(TypeError, match="bias must be float32"):
        matmul(a32, b32, bias=np.zeros(5))
    with pytest.raises(TypeError, match="out must be float32"):
        matmul(a32, b32, np.zeros((3, 5)))
    with pytest.raises(TypeError, match="activation"):
        matmul(a32, b32, activation=1)


def test_bad_shapes(rng):
    a, b = randn(rng, 3, 4), randn(rng, 5, 6)
    with pytest.raises(ValueError, match=r"\(3, 4\).*\(5, 6\)"):
        matmul(a, b)
    with pytest.raises(ValueError, match="dimensions"):
        matmul(randn(rng, 4), randn(rng, 4, 2))
    with pytest.raises(ValueError, match="dimensions"):
        matmul(randn(rng, 2, 2, 3, 4), randn(rng, 4, 2))
    with pytest.raises(ValueError, match="do not broadcast"):
        matmul(randn(rng, 2, 3, 4), randn(rng, 3, 4, 5))
    with pytest.raises(ValueError, match="bias has shape"):
        matmul(randn(rng, 3, 4), randn(rng, 4, 5), bias=randn(rng, 4))
    with pytest.raises(ValueError, match="bias must have 1"):
        matmul(randn(rng, 3, 4), randn(rng, 4, 5), bias=randn(rng, 1, 5))
    with pytest.raises(ValueError, match=r"out has shape \(5, 3\).*\(3, 5\)"):
        matmul(randn(rng, 3, 4), randn(rng, 4, 5), np.zeros((5, 3), np.float32))
    with pytest.raises(ValueError, match="activation must be"):
        matmul(randn(rng, 3, 4), randn(rng, 4, 5), activation="tanh")


def test_bad_out_and_beta(rng):
    a, b = randn(rng, 4, 4), randn(rng, 4, 4)
    with pytest.raises(ValueError, match="needs out"):
        matmul(a, b, beta=1.0)
    ro = np.zeros((4, 4), np.float32)
    ro.flags.writeable = False
    with pytest.raises(ValueError, match="read-only"):
        matmul(a, b, ro)
    a_before = a.copy()
    with pytest.raises(ValueError, match="overlaps"):
        matmul(a, b, a)
    with pytest.raises(ValueError, match="overlaps"):
        matmul(a, b, b.T)
    np.testing.assert_array_equal(a, a_before)
    # Validation failures leave out untouched.
    out = randn(rng, 4, 4)
    before = out.copy()
    with pytest.raises(ValueError):
        matmul(a, b, out, bias=randn(rng, 3))
    np.testing.assert_array_equal(out, before)


def test_size_overflow_checked():
    # Each array is small in memory (zero strides) but batch*m*n overflows int64.
    s = np.lib.stride_tricks.as_strided
    a = s(np.zeros(1, np.float32), shape=(2**20, 2**22, 1), strides=(0, 0, 0), writeable=False)
    b = s(np.zeros(1, np.float32), shape=(2**20, 1, 2**22), strides=(0, 0, 0), writeable=False)
    with pytest.raises(ValueError, match="overflow"):
        matmul(a, b)
