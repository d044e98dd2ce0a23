"""bfloat16: what the registry walk (registry/gemm.py, conv.py, lowp.py) leaves out.

- every bf16 GEMM path (each ISA level, and AVX512 with avx512_bf16 disabled: the
  vdpbf16ps pair kernel and each widening variant) bitwise the same for 1 and 2 threads
  on the 14x32 tile's edges, odd k, views and bf16 operands, and within the float32
  summation bound of a float64 product of the bf16-rounded operands;
- conv2d_backward(precision="bf16") against the float64 reference on bf16-rounded
  operands (float32 summation bound) and on the unrounded ones (bf16 rounding bound);
- to_bfloat16 on every tie and its neighbours for every upper half (ml_dtypes' rounding),
  NaNs whose payload lies below bf16's mantissa, and to_float32 on every bf16 pattern;
- bad dtypes, shapes and names: clear errors, nothing written.

Error model: bf16 keeps 8 significant bits (unit roundoff UB = 2^-8, round to nearest
even); a product of two bf16 values is exact in float32, so the only other error is the
float32 sum of k terms, |err| <= (k - 1) * 2^-24 * sum|terms| to first order in any order.
"""
from __future__ import annotations

import contextlib

import ml_dtypes
import numpy as np
import pytest

import nnforge
from nnforge import _core, ops

from conv_reference import conv2d_backward_ref

BF16 = np.dtype(ml_dtypes.bfloat16)
U32 = 2.0 ** -24  # float32 unit roundoff
UB = 2.0 ** -8    # bfloat16 unit roundoff
FEATURES = nnforge.cpu_features()
PATHS = [(isa, False) for isa in nnforge.available_isas()]
PATHS += [("avx512", True)] if "avx512" in nnforge.available_isas() else []


@pytest.fixture(params=PATHS, ids=lambda p: p[0] + ("-no_avx512_bf16" if p[1] else ""))
def bf16_path(request):
    """Each bf16 GEMM / conversion path: an ISA level, and AVX512 without avx512_bf16.
    Yields the GEMM variant the dispatch table must report (auto selection restated)."""
    isa, off = request.param
    assert _core.get_bf16_gemm_variant() == "auto"
    with nnforge.use_isa(isa), (nnforge.disable_features("avx512_bf16") if off else contextlib.nullcontext()):
        pair = isa == "avx512" and FEATURES["avx512_bf16"] and not off
        want = "avx512bf16_14x32k" if pair else f"bf16_widen_{isa}"
        assert next(r for r in nnforge.dispatch_table() if r["op"] == "bf16")["variant"] == want
        yield want


def sum_tol(k: int, abs_sum) -> np.ndarray:
    """First-order bound of any float32 summation of k exact terms with sum|terms| = abs_sum
    (plus the absolute error vdpbf16ps' flush of denormal partial sums may add)."""
    return k * U32 * np.asarray(abs_sum) + k * 2.0 ** -126


def bf16_f64(x) -> np.ndarray:
    """x (float32 or bfloat16) rounded to bf16 by ml_dtypes, as float64."""
    return np.asarray(x).astype(BF16).astype(np.float64)


# layout -> (shape of the array to draw for a (rows, cols) operand, the view taken of it)
LAYOUTS = {
    "contiguous": (lambda r, c: (r, c), lambda big: big),
    "transposed": (lambda r, c: (c, r), lambda big: big.T),
    "sliced": (lambda r, c: (2 * r + 1, 3 * c), lambda big: big[1::2, ::3]),
    "reversed": (lambda r, c: (r, c), lambda big: big[::-1, ::-1]),
}


def operand(rng, rows: int, cols: int, layout: str) -> np.ndarray:
    """A (rows, cols) float32 operand, or bfloat16 for "bf16-<layout>", in that layout."""
    shape, view = LAYOUTS[layout.removeprefix("bf16-")]
    big = rng.standard_normal(shape(rows, cols)).astype(np.float32)
    return view(big.astype(BF16) if layout.startswith("bf16-") else big)


# (m, k, n, a layout, b layout): 14x32 tile +-1, k = 1 and odd (bf16 pairs), prime sizes,
# shapes big enough for 2 threads (2mnk >= 2e6) over uneven row panels and several k blocks.
MATMUL_CASES = [
    (1, 1, 1, "contiguous", "contiguous"),
    (13, 7, 31, "transposed", "contiguous"),
    (14, 2, 32, "contiguous", "sliced"),
    (15, 33, 33, "reversed", "transposed"),
    (29, 257, 3, "bf16-contiguous", "bf16-sliced"),
    (97, 131, 127, "sliced", "bf16-transposed"),
    (15, 601, 257, "bf16-transposed", "contiguous"),
    (43, 263, 97, "contiguous", "reversed"),
]


@pytest.mark.parametrize("m,k,n,la,lb", MATMUL_CASES)
def test_bf16_matmul_threads_bitwise_and_within_bound(bf16_path, threads, rng, m, k, n, la, lb):
    a, b = operand(rng, m, k, la), operand(rng, k, n, lb)
    got, got_bf16 = [], []
    for t in (1, 2):
        nnforge.set_num_threads(t)
        got.append(ops.matmul(a, b, precision="bf16"))
        out = np.asfortranarray(np.full((m, n), np.nan, BF16))  # beta 0: never read; any strides
        assert ops.matmul(a, b, out, precision="bf16") is out
        got_bf16.append(out)
    np.testing.assert_array_equal(got[0], got[1], err_msg=bf16_path)
    np.testing.assert_array_equal(got_bf16[0].view(np.uint16), got_bf16[1].view(np.uint16), err_msg=bf16_path)
    a64, b64 = bf16_f64(a), bf16_f64(b)
    ref = a64 @ b64
    err = np.abs(got[0] - ref)
    assert np.all(err <= sum_tol(k, np.abs(a64) @ np.abs(b64))), f"{bf16_path}: max error {err.max()}"
    # a bf16 out is the float32 result rounded once (to nearest even)
    np.testing.assert_array_equal(got_bf16[0].view(np.uint16), got[0].astype(BF16).view(np.uint16))


@pytest.mark.parametrize("variant", [v for v in _core.bf16_gemm_variants() if v != "auto"])
def test_every_bf16_variant_within_bound_and_thread_independent(variant, threads, rng):
    # Variants of one kernel differ in blocking (kc): each must meet the bound on shapes
    # that cross its k blocks, tile edges and views, bitwise for 1 and 2 threads.
    prev = _core.get_bf16_gemm_variant()
    isa = "avx512" if variant.startswith("avx512") else variant.rsplit("_", 1)[-1]
    try:
        with nnforge.use_isa(isa):
            _core.set_bf16_gemm_variant(variant)
            for m, k, n, la, lb in [(29, 2100, 45, "contiguous", "transposed"), (15, 1025, 33, "bf16-contiguous", "contiguous")]:
                a, b = operand(rng, m, k, la), operand(rng, k, n, lb)
                got = []
                for t in (1, 2):
                    nnforge.set_num_threads(t)
                    got.append(ops.matmul(a, b, precision="bf16"))
                np.testing.assert_array_equal(got[0], got[1], err_msg=variant)
                a64, b64 = bf16_f64(a), bf16_f64(b)
                err = np.abs(got[0] - a64 @ b64)
                assert np.all(err <= sum_tol(k, np.abs(a64) @ np.abs(b64))), f"{variant}: max error {err.max()}"
    finally:
        _core.set_bf16_gemm_variant(prev)


CONV_CASES = [  # (N, C, H, W), (K, C/groups, R, S), geometry, x layout
    ((2, 3, 9, 7), (5, 3, 3, 3), dict(padding=1), "contiguous"),
    ((1, 4, 11, 10), (6, 4, 3, 2), dict(stride=2, padding=(1, 2, 0, 1)), "sliced"),
    ((2, 4, 9, 9), (6, 2, 3, 3), dict(dilation=2, groups=2), "contiguous"),
    ((3, 17, 5, 4), (33, 17, 1, 1), {}, "contiguous"),  # 1x1: GEMM with N = 33 off the tile
]


def _taps_per_output(shape_y, shape_w, groups):
    """Reduction lengths: dx sums over (K/groups, R, S), dw and db over (N, Ho, Wo)."""
    return shape_w[0] // groups * shape_w[2] * shape_w[3], shape_y[0] * shape_y[2] * shape_y[3]


@pytest.mark.parametrize("xshape,wshape,geom,layout", CONV_CASES)
def test_conv2d_backward_bf16_against_float64(isa, threads, rng, xshape, wshape, geom, layout):
    if layout == "sliced":
        x = rng.standard_normal(xshape[:3] + (2 * xshape[3],)).astype(np.float32)[..., ::2]
    else:
        x = rng.standard_normal(xshape).astype(np.float32)
    w = rng.standard_normal(wshape).astype(np.float32)
    yshape = ops.conv2d_output_shape(x.shape, w.shape, **geom)
    dy = rng.standard_normal(yshape).astype(np.float32)
    got = []
    for t in (1, 2):
        nnforge.set_num_threads(t)
        got.append(ops.conv2d_backward(dy, x, w, precision="bf16", **geom))
    for g1, g2, name in zip(*got, ("dx", "dw", "db")):
        np.testing.assert_array_equal(g1, g2, err_msg=f"{name} on {isa}")
    kdx, kdw = _taps_per_output(yshape, wshape, geom.get("groups", 1))
    rounded = [bf16_f64(v) for v in (dy, x, w)]
    want = conv2d_backward_ref(*rounded, **geom)
    abs_sum = conv2d_backward_ref(*(np.abs(v) for v in rounded), **geom)
    exact = conv2d_backward_ref(dy, x, w, **geom)
    exact_abs = conv2d_backward_ref(np.abs(dy), np.abs(x), np.abs(w), **geom)
    for name, g, ref, s, ref0, s0, k in zip(("dx", "dw", "db"), got[0], want, abs_sum, exact, exact_abs,
                                            (kdx, kdw, kdw)):
        assert g.dtype == np.float32 and g.shape == ref.shape, name
        tol = sum_tol(k, s)
        assert np.all(np.abs(g - ref) <= tol), f"{name} on {isa}: max error {np.abs(g - ref).max()}"
        # against the unrounded operands: each product's operands off by <= UB relative
        # (db sums dy alone: UB), plus the float32 summation
        rel = UB if name == "db" else 2 * UB + UB * UB
        assert np.all(np.abs(g - ref0) <= rel * s0 * (1 + UB) + tol), f"{name} on {isa}"


def _every_tie_and_neighbour() -> np.ndarray:
    """float32 patterns: each of the 2^16 upper halves with lower halves 0, 1 (just above a
    truncation), 0x7fff / 0x8000 / 0x8001 (below, at, above the tie) and 0xffff."""
    hi = np.arange(1 << 16, dtype=np.uint32) << 16
    lo = np.array([0x0000, 0x0001, 0x7FFF, 0x8000, 0x8001, 0xFFFF], np.uint32)
    return (hi[:, None] | lo).ravel().view(np.float32)


VIEWS = {"misaligned tail": lambda v: v[3:], "transposed": lambda v: v.reshape(-1, 6).T,
         "strided": lambda v: v[::-7]}


@pytest.mark.parametrize("view", VIEWS)
def test_to_bfloat16_every_tie_matches_ml_dtypes(bf16_path, view):
    x = _every_tie_and_neighbour()
    idx = VIEWS[view](np.arange(x.size))
    got = ops.to_bfloat16(VIEWS[view](x)).view(np.uint16)
    want = np.where(np.isnan(x), np.float32(0), x).astype(BF16).view(np.uint16)[idx]  # NaNs: below
    nan = np.isnan(x)[idx]
    np.testing.assert_array_equal(got[~nan], want[~nan], err_msg=f"{view} on {bf16_path}")
    # a NaN, however small its payload (0x7f800001 must not round to inf), stays a quiet NaN
    assert np.all((got[nan] & 0x7F80) == 0x7F80) and np.all(got[nan] & 0x0040), f"{view} on {bf16_path}"


def test_to_float32_every_pattern_is_exact(bf16_path):
    bits = np.arange(1 << 16, dtype=np.uint32).astype(np.uint16)
    x = bits.view(BF16)
    got = ops.to_float32(x[5:]).view(np.uint32)
    want = bits[5:].astype(np.uint32) << 16
    nan = np.isnan(x[5:].astype(np.float32))
    np.testing.assert_array_equal(got[~nan], want[~nan], err_msg=bf16_path)
    assert np.all(np.isnan(got[nan].view(np.float32)))
    out = np.zeros((1 << 16) - 5, np.float32)[::-1]  # into a reversed out view
    assert ops.to_float32(x[5:], out) is out
    np.testing.assert_array_equal(out.view(np.uint32)[~nan], want[~nan])


def test_bf16_bad_inputs_are_clear_errors_and_write_nothing():
    a, b = np.ones((3, 4), BF16), np.ones((4, 5), BF16)
    with pytest.raises(TypeError, match=r"b must be float32 or bfloat16, got float64 with shape \(4, 5\)"):
        ops.matmul(a, b.astype(np.float64))
    with pytest.raises(TypeError, match="out must be float32 or bfloat16, got float16"):
        ops.matmul(a, b, np.zeros((3, 5), np.float16))
    with pytest.raises(TypeError, match="bias must be float32, got bfloat16"):
        ops.matmul(a, b, bias=np.zeros(5, BF16))
    with pytest.raises(ValueError, match="precision must be 'fp32' or 'bf16', got 'fp16'"):
        ops.matmul(a, b, precision="fp16")
    out = np.full((3, 4), 7.0, BF16)
    with pytest.raises(ValueError, match=r"out has shape \(3, 4\) but .* has shape \(3, 5\)"):
        ops.matmul(a, b, out)
    assert np.all(out.astype(np.float32) == 7.0)

    x = np.ones(8, np.float32)
    with pytest.raises(TypeError, match="to_bfloat16: x must be float32, got float64"):
        ops.to_bfloat16(x.astype(np.float64))
    with pytest.raises(TypeError, match="to_bfloat16: out must be bfloat16, got float32"):
        ops.to_bfloat16(x, np.zeros(8, np.float32))
    with pytest.raises(ValueError, match=r"out must have shape \(8,\), got \(7,\)"):
        ops.to_bfloat16(x, np.zeros(7, BF16))
    with pytest.raises(ValueError, match="overlaps x"):
        ops.to_bfloat16(x, x.view(BF16)[:8])
    assert np.all(x == 1.0)
    with pytest.raises(TypeError, match="to_float32: x must be bfloat16, got float32"):
        ops.to_float32(x)
    with pytest.raises(TypeError, match="to_float32: out must be float32, got float64"):
        ops.to_float32(x.astype(BF16), np.zeros(8))

    x4, w4, dy4 = np.ones((1, 2, 5, 5), np.float32), np.ones((3, 2, 3, 3), np.float32), np.ones((1, 3, 3, 3),
                                                                                                 np.float32)
    with pytest.raises(TypeError, match="conv2d_backward: dy must be float32, got float64"):
        ops.conv2d_backward(dy4.astype(np.float64), x4, w4, precision="bf16")
    with pytest.raises(TypeError, match="conv2d_backward: dy must be float32, got bfloat16"):
        ops.conv2d_backward(dy4.astype(BF16), x4, w4)  # bf16 operands need precision="bf16"
    with pytest.raises(ValueError, match="precision must be one of"):
        ops.conv2d_backward(dy4, x4, w4, precision="fp8")
    with pytest.raises(TypeError, match="conv2d: w must be float32, got float64"):
        ops.conv2d(x4, w4.astype(np.float64), precision="bf16")
    with pytest.raises(ValueError, match="unknown bf16 GEMM variant 'avx9000'"):
        _core.set_bf16_gemm_variant("avx9000")
    assert _core.get_bf16_gemm_variant() == "auto"
