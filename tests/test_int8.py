"""INT8 kernels: exact integer GEMM, quantize / dequantize, packed weights, qlinear, qconv2d.

References are NumPy (int64 matmul, float64 quantisation) sharing no code with the
kernels; every ISA path (the `isa` fixture) and AVX512_VNNI forced off.
"""
from __future__ import annotations

import numpy as np
import pytest

import nnforge
from nnforge import ops

F32 = np.float32


# ---- references -------------------------------------------------------------------------
def quant_ref(x, scale, zp, lo, hi):
    return np.clip(np.rint(x.astype(np.float64) / np.float64(scale)) + zp, lo, hi)


def row_qparams_ref(x):
    """The documented dynamic rule, per row of x (M, K)."""
    lo = np.minimum(x.min(axis=-1), 0).astype(np.float64)
    hi = np.maximum(x.max(axis=-1), 0).astype(np.float64)
    scale = ((hi - lo) / 255.0).astype(F32)
    zero = ~(scale > 0)
    scale = np.where(zero, F32(1), scale).astype(F32)
    zp = np.where(zero, 0, np.clip(np.rint(-lo / scale.astype(np.float64)), 0, 255)).astype(np.int64)
    return scale, zp


def qlinear_ref(x, qw, bias=None, iscale=None, izp=None):
    """(y float64 from the float32 epilogue, exact integer part (M, N))."""
    if iscale is None:
        s, z = row_qparams_ref(x)
    else:
        s, z = np.full(x.shape[0], F32(iscale)), np.full(x.shape[0], izp, np.int64)
    q = quant_ref(x, s[:, None], z[:, None], 0, 255).astype(np.int64)
    codes = qw.int8().astype(np.int64)
    exact = (q - z[:, None]) @ codes.T
    y = exact.astype(F32) * (s[:, None] * qw.scales[None, :])
    if bias is not None:
        y = y + bias
    return y, exact


@pytest.fixture(params=["auto", "no_vnni"])
def vnni(request):
    if request.param == "auto":
        yield
        return
    with nnforge.disable_features("avx512_vnni"):
        yield


# ---- exact s32 GEMM -------------------------------------------------------------------------
@pytest.mark.parametrize("m,k,n", [(1, 1, 1), (3, 5, 7), (13, 31, 33), (97, 130, 65), (12, 4, 32), (25, 67, 1)])
def test_qgemm_s32_exact(isa, vnni, rng, m, k, n):
    a = rng.integers(0, 256, (m, k), dtype=np.uint8)
    b = rng.integers(-128, 128, (k, n), dtype=np.int8)
    got = ops.qgemm_s32(a, b)
    assert got.dtype == np.int32
    np.testing.assert_array_equal(got, a.astype(np.int64) @ b.astype(np.int64))


@pytest.mark.parametrize("bval", [-128, 127])
def test_qgemm_s32_extremes_do_not_saturate(isa, vnni, bval):
    k = 1027  # the worst case for a 16-bit intermediate: all 255 x all -128 / 127
    a = np.full((5, k), 255, np.uint8)
    b = np.full((k, 37), bval, np.int8)
    np.testing.assert_array_equal(ops.qgemm_s32(a, b), np.full((5, 37), 255 * bval * k, np.int64))


def test_qgemm_s32_views(isa, rng):
    a = rng.integers(0, 256, (40, 70), dtype=np.uint8)[::2, 3:]
    b = rng.integers(-128, 128, (50, 67), dtype=np.int8).T[:, ::3]  # (67, 17), transposed and strided
    np.testing.assert_array_equal(ops.qgemm_s32(a, b), a.astype(np.int64) @ b.astype(np.int64))


def test_qgemm_s32_threads_bitwise(threads, rng):
    a = rng.integers(0, 256, (200, 300), dtype=np.uint8)
    b = rng.integers(-128, 128, (300, 130), dtype=np.int8)
    nnforge.set_num_threads(1)
    one = ops.qgemm_s32(a, b)
    nnforge.set_num_threads(2)
    np.testing.assert_array_equal(one, ops.qgemm_s32(a, b))


def test_qgemm_s32_bad_input():
    a = np.zeros((3, 4), np.uint8)
    with pytest.raises(TypeError, match="uint8"):
        ops.qgemm_s32(a.astype(np.int8), np.zeros((4, 2), np.int8))
    with pytest.raises(TypeError, match="int8"):
        ops.qgemm_s32(a, np.zeros((4, 2), np.float32))
    with pytest.raises(ValueError, match="disagree on K"):
        ops.qgemm_s32(a, np.zeros((5, 2), np.int8))


# ---- quantize / dequantize ----------------------------------------------------------------------
@pytest.mark.parametrize("dtype,lo,hi", [("int8", -128, 127), ("uint8", 0, 255)])
def test_quantize_per_tensor(rng, dtype, lo, hi):
    scale, zp = 0.0173, (0 if dtype == "int8" else 131)
    x = (rng.standard_normal((7, 13)) * 3).astype(F32)
    # exact ties (round half even) and saturation
    x[0, :6] = np.array([0.5, 1.5, 2.5, -0.5, -2.5, 3.5]) * F32(scale)
    x[1, :4] = [1e6, -1e6, np.inf, -np.inf]
    got = ops.quantize(x, scale, zp, dtype)
    assert got.dtype == np.dtype(dtype)
    np.testing.assert_array_equal(got, quant_ref(x, F32(scale), zp, lo, hi))


def test_quantize_round_half_even_ties():
    x = np.array([0.5, 1.5, 2.5, -0.5, -1.5, -2.5], F32)
    np.testing.assert_array_equal(ops.quantize(x, 1.0, 0), [0, 2, 2, 0, -2, -2])


@pytest.mark.parametrize("axis", [0, 1, -1, 2])
def test_quantize_per_channel(rng, axis):
    x = rng.standard_normal((3, 5, 4)).astype(F32)
    c = x.shape[axis]
    scale = rng.uniform(0.01, 0.1, c).astype(F32)
    zp = rng.integers(0, 256, c).astype(np.int32)
    got = ops.quantize(x, scale, zp, "uint8", axis=axis)
    shape = [1] * 3
    shape[axis] = c
    np.testing.assert_array_equal(got, quant_ref(x, scale.reshape(shape), zp.reshape(shape), 0, 255))
    back = ops.dequantize(got, scale, zp, axis=axis)
    ref = ((got.astype(np.float64) - zp.reshape(shape)) * scale.reshape(shape)).astype(F32)
    np.testing.assert_array_equal(back, ref)


def test_quantize_views_and_out(rng):
    x = rng.standard_normal((9, 11)).astype(F32).T[::2]
    out = np.empty(x.shape, np.int8)
    assert ops.quantize(x, 0.05, 0, out=out) is out
    np.testing.assert_array_equal(out, quant_ref(x, F32(0.05), 0, -128, 127))


def test_quantize_bad_input(rng):
    x = rng.standard_normal((4, 3)).astype(F32)
    for bad in (0.0, -1.0, np.inf, np.nan):
        with pytest.raises(ValueError, match="scale"):
            ops.quantize(x, bad, 0)
    with pytest.raises(ValueError, match="zero_point"):
        ops.quantize(x, 0.1, 300, "uint8")
    with pytest.raises(ValueError, match="axis"):
        ops.quantize(x, np.ones(3, F32), np.zeros(3, np.int32), axis=5)
    with pytest.raises(ValueError, match="entries"):
        ops.quantize(x, np.ones(3, F32), np.zeros(3, np.int32), axis=0)
    with pytest.raises(TypeError, match="float32"):
        ops.quantize(x.astype(np.float64), 0.1, 0)
    with pytest.raises(ValueError, match="dtype"):
        ops.quantize(x, 0.1, 0, "int16")
    xn = x.copy()
    xn[2, 1] = np.nan
    out = np.full(x.shape, 7, np.int8)
    with pytest.raises(ValueError, match="NaN"):
        ops.quantize(xn, 0.1, 0, out=out)
    assert np.all(out == 7)  # nothing written
    with pytest.raises(TypeError, match="int8 or uint8"):
        ops.dequantize(x, 0.1, 0)


# ---- packed weights ---------------------------------------------------------------------------
@pytest.mark.parametrize("n,k", [(1, 1), (33, 7), (5, 64), (70, 129)])
@pytest.mark.parametrize("per_channel", [True, False])
def test_quantize_weight(rng, n, k, per_channel):
    w = rng.standard_normal((n, k)).astype(F32)
    w[0] = 0  # a zero row: scale 1, codes 0
    qw = ops.quantize_weight(w, per_channel=per_channel)
    amax = np.abs(w.astype(np.float64)).max(axis=1) if per_channel else np.full(n, np.abs(w).max())
    want_scale = np.where(amax > 0, amax / 127, 1).astype(F32)
    np.testing.assert_array_equal(qw.scales, want_scale)
    codes = quant_ref(w, want_scale[:, None], 0, -128, 127)
    np.testing.assert_array_equal(qw.int8(), codes)
    np.testing.assert_array_equal(qw.col_sums, codes.sum(axis=1))
    assert qw.shape == (n, k)
    np.testing.assert_array_equal(qw.dequantize(), (codes * want_scale[:, None]).astype(F32))
    # dequantised weight within half a step of w
    assert np.all(np.abs(qw.dequantize() - w) <= want_scale[:, None] * 0.5 * (1 + 1e-6))


def test_quantized_weight_round_trip_and_validation(rng):
    qw = ops.quantize_weight(rng.standard_normal((37, 11)).astype(F32))
    arrs = qw.to_arrays()
    again = ops.QuantizedWeight.from_arrays(**arrs)
    for f in ("data", "scales", "col_sums"):
        np.testing.assert_array_equal(getattr(again, f), getattr(qw, f))
    with pytest.raises(AttributeError):
        qw.scales = None
    with pytest.raises(ValueError):
        qw.data[0] = 1
    bad = dict(arrs, col_sums=arrs["col_sums"] + 1)
    with pytest.raises(ValueError, match="col_sums"):
        ops.QuantizedWeight.from_arrays(**bad)
    pad = arrs["data"].copy()
    pad[-1] = 5  # a padding byte (N = 37 is not a multiple of 32)
    with pytest.raises(ValueError, match="padding"):
        ops.QuantizedWeight.from_arrays(**dict(arrs, data=pad))
    with pytest.raises(ValueError):
        ops.QuantizedWeight.from_arrays(**dict(arrs, data=arrs["data"][:-4]))
    with pytest.raises(TypeError, match="float32"):
        ops.QuantizedWeight.from_arrays(**dict(arrs, scales=arrs["scales"].astype(np.float64)))
    with pytest.raises(ValueError, match="scales"):
        ops.QuantizedWeight.from_arrays(**dict(arrs, scales=np.zeros(37, F32)))
    with pytest.raises(ValueError, match="shape"):
        ops.QuantizedWeight.from_arrays(**dict(arrs, shape=np.array([37, 0])))
    with pytest.raises(ValueError, match="symmetric"):
        ops.quantize_weight(np.ones((2, 2), F32), symmetric=False)


# ---- qlinear --------------------------------------------------------------------------------------
@pytest.mark.parametrize("m,k,n", [(1, 1, 1), (7, 13, 33), (97, 67, 31), (130, 256, 65)])
def test_qlinear_dynamic(isa, vnni, rng, m, k, n):
    x = (rng.standard_normal((m, k)) + 0.3).astype(F32)
    if m > 2:
        x[1] = np.abs(x[1])  # all-positive row: range includes 0
        x[2] = 0             # all-zero row: scale 1, zero point 0
    w = rng.standard_normal((n, k)).astype(F32)
    b = rng.standard_normal(n).astype(F32)
    qw = ops.quantize_weight(w)
    got = ops.qlinear(x, qw, bias=b)
    ref, exact = qlinear_ref(x, qw, b)
    # the integer part is exact; the float epilogue is two float32 roundings
    bound = 4 * np.finfo(F32).eps * (np.abs(ref) + np.abs(b))
    assert np.all(np.abs(got - ref) <= bound)
    # against float32 x @ w.T: each product off by at most the two half-steps
    sx, _ = row_qparams_ref(x)
    err = 0.5 * sx[:, None] * np.abs(w).sum(axis=1)[None, :] + 0.5 * qw.scales[None, :] * (
        np.abs(x).sum(axis=1)[:, None] + 0.5 * sx[:, None] * k)
    full = x.astype(np.float64) @ w.T.astype(np.float64) + b
    assert np.all(np.abs(got - full) <= err * 1.01 + 1e-5 * np.abs(full) + 1e-6)


def test_qlinear_static_activation_batch_views(isa, rng):
    x = rng.standard_normal((2, 3, 40)).astype(F32)[:, :, ::2]  # (2, 3, 20), strided
    qw = ops.quantize_weight(rng.standard_normal((9, 20)).astype(F32))
    got = ops.qlinear(x, qw, activation="relu", input_scale=0.02, input_zero_point=120)
    assert got.shape == (2, 3, 9)
    ref, _ = qlinear_ref(x.reshape(6, 20), qw, None, 0.02, 120)
    ref = np.maximum(ref, 0).reshape(2, 3, 9)
    assert np.all(np.abs(got - ref) <= 4 * np.finfo(F32).eps * np.abs(ref))


@pytest.mark.parametrize("activation", [None, "relu", "gelu_erf"])
def test_qlinear_same_bits_every_path(rng, activation):
    """The row loops (range, rounding, dequant epilogue) reproduce the scalar definition
    bit for bit on every SIMD path, at widths just off the 8/16-lane vectors."""
    for k, n in [(1, 1), (15, 17), (33, 47), (129, 16)]:
        x = (rng.standard_normal((9, k)) * 3).astype(F32)
        x[0, : k // 2] = -0.0
        qw = ops.quantize_weight(rng.standard_normal((n, k)).astype(F32))
        b = rng.standard_normal(n).astype(F32)
        with nnforge.use_isa("generic"):
            want = ops.qlinear(x, qw, bias=b, activation=activation)
            want_q = ops.quantize(x, 0.037, 131, "uint8")
        for path in nnforge.available_isas():
            with nnforge.use_isa(path):
                np.testing.assert_array_equal(ops.qlinear(x, qw, bias=b, activation=activation), want)
                np.testing.assert_array_equal(ops.quantize(x, 0.037, 131, "uint8"), want_q)


@pytest.mark.parametrize("scale", [3.0, 3.890625, 45.5, 459.25, 7958.0, 0.75, 0.3, 1e-3, 7e-41])
def test_quantize_ties_round_half_even_every_path(isa, scale):
    """Exact half-integer quotients (and their float neighbours) round half to even of
    the exact quotient on every path (the SIMD loops multiply by 1 / scale and divide
    only near a tie)."""
    s = F32(scale)
    halves = (np.arange(-600, 601) * 0.5).astype(np.float64)
    x = (halves * np.float64(s)).astype(F32)
    x = np.concatenate([x, np.nextafter(x, F32(np.inf)), np.nextafter(x, F32(-np.inf))])
    want = quant_ref(x, s, 131, 0, 255).astype(np.uint8)
    np.testing.assert_array_equal(ops.quantize(x, s, 131, "uint8"), want)


def test_qlinear_threads_bitwise(threads, rng):
    x = rng.standard_normal((150, 200)).astype(F32)
    qw = ops.quantize_weight(rng.standard_normal((70, 200)).astype(F32))
    nnforge.set_num_threads(1)
    one = ops.qlinear(x, qw, activation="gelu_tanh")
    nnforge.set_num_threads(2)
    np.testing.assert_array_equal(one, ops.qlinear(x, qw, activation="gelu_tanh"))


def test_qlinear_bad_input(rng):
    qw = ops.quantize_weight(rng.standard_normal((4, 6)).astype(F32))
    x = rng.standard_normal((3, 6)).astype(F32)
    with pytest.raises(ValueError, match="K=6"):
        ops.qlinear(x[:, :5], qw)
    with pytest.raises(TypeError, match="QuantizedWeight"):
        ops.qlinear(x, np.zeros((4, 6), np.int8))
    with pytest.raises(TypeError, match="float32"):
        ops.qlinear(x.astype(np.float64), qw)
    with pytest.raises(ValueError, match="input_scale"):
        ops.qlinear(x, qw, input_scale=0.0, input_zero_point=0)
    with pytest.raises(ValueError, match="together"):
        ops.qlinear(x, qw, input_scale=0.1)
    with pytest.raises(ValueError, match="input_zero_point"):
        ops.qlinear(x, qw, input_scale=0.1, input_zero_point=-1)
    with pytest.raises(ValueError, match="bias"):
        ops.qlinear(x, qw, bias=np.zeros(5, F32))
    with pytest.raises(ValueError, match="activation"):
        ops.qlinear(x, qw, activation="tanh")
    xn = x.copy()
    xn[0, 0] = np.nan
    with pytest.raises(ValueError, match="finite"):
        ops.qlinear(xn, qw)


# ---- qconv2d --------------------------------------------------------------------------------------
def qconv_ref(x, qw, wshape, bias, stride, pad, dil, iscale=None, izp=None):
    """Direct convolution over the quantised input padded with the zero point."""
    if iscale is None:
        s, z = row_qparams_ref(x.reshape(1, -1))
        s, z = s[0], int(z[0])
    else:
        s, z = F32(iscale), izp
    q = quant_ref(x, s, z, 0, 255).astype(np.int64)
    n, c, h, w = x.shape
    kk, _, r, t = wshape
    qp = np.pad(q, ((0, 0), (0, 0), (pad, pad), (pad, pad)), constant_values=z)
    ho = (h + 2 * pad - dil * (r - 1) - 1) // stride + 1
    wo = (w + 2 * pad - dil * (t - 1) - 1) // stride + 1
    codes = qw.int8().astype(np.int64).reshape(wshape)
    acc = np.zeros((n, kk, ho, wo), np.int64)
    for i in range(r):
        for j in range(t):
            patch = qp[:, :, i * dil:i * dil + stride * (ho - 1) + 1:stride, j * dil:j * dil + stride * (wo - 1) + 1:stride]
            acc += np.einsum("nchw,kc->nkhw", patch - z, codes[:, :, i, j])
    y = acc.astype(F32) * (s * qw.scales)[None, :, None, None]
    return y + bias[None, :, None, None]


@pytest.mark.parametrize("shape,wshape,stride,pad,dil", [
    ((2, 3, 9, 11), (5, 3, 3, 3), 1, 1, 1),
    ((1, 4, 8, 7), (33, 4, 3, 2), 2, 2, 1),
    ((1, 2, 10, 10), (3, 2, 3, 3), 1, 2, 2),
    ((3, 5, 6, 6), (7, 5, 1, 1), 1, 0, 1),
])
def test_qconv2d(isa, vnni, rng, shape, wshape, stride, pad, dil):
    x = (rng.standard_normal(shape) + 0.5).astype(F32)  # a nonzero zero point, so padding matters
    wf = rng.standard_normal(wshape).astype(F32)
    b = rng.standard_normal(wshape[0]).astype(F32)
    qw = ops.quantize_conv_weight(wf)
    got = ops.qconv2d(x, qw, wshape, bias=b, stride=stride, padding=pad, dilation=dil)
    ref = qconv_ref(x, qw, wshape, b, stride, pad, dil)
    assert got.shape == ref.shape
    assert np.all(np.abs(got - ref) <= 4 * np.finfo(F32).eps * (np.abs(ref) + np.abs(b)[None, :, None, None]))
    st = ops.qconv2d(x, qw, wshape, bias=b, stride=stride, padding=pad, dilation=dil, input_scale=0.03,
                     input_zero_point=40)
    ref = qconv_ref(x, qw, wshape, b, stride, pad, dil, 0.03, 40)
    assert np.all(np.abs(st - ref) <= 4 * np.finfo(F32).eps * (np.abs(ref) + np.abs(b)[None, :, None, None]))


def test_qconv2d_bad_input(rng):
    qw = ops.quantize_conv_weight(rng.standard_normal((4, 3, 3, 3)).astype(F32))
    x = rng.standard_normal((1, 3, 5, 5)).astype(F32)
    with pytest.raises(ValueError, match="C=3"):
        ops.qconv2d(x[:, :2], qw, (4, 3, 3, 3))
    with pytest.raises(ValueError, match="weight_shape"):
        ops.qconv2d(x, qw, (4, 3, 3, 2))
    with pytest.raises(ValueError, match="groups"):
        ops.qconv2d(x, qw, (4, 3, 3, 3), groups=3)
    with pytest.raises(ValueError, match="stride"):
        ops.qconv2d(x, qw, (4, 3, 3, 3), stride=0)
