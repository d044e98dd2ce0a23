"""Edge-tile and memory-safety stress for the C++ kernels (GEMM and nn).

Arrays here are placed in guarded memory: an mmap'd buffer with an inaccessible
page right after (or right before) the array's last (first) element, so a kernel
that reads or writes one element past an edge tile crashes the test instead of
passing silently. Padded layouts put the last element of a strided view at the
very end of its buffer (row stride > row length), which catches kernels that
touch the whole leading dimension of the last row. Outputs given as out= start
as NaN so any element a kernel forgets to write shows up.

The same sweeps, run on an AddressSanitizer/UBSan build, found the binding bugs
that the error tests at the bottom pin.
"""
from __future__ import annotations

import ctypes
import mmap

import numpy as np
import pytest
from numpy.lib.stride_tricks import as_strided

import nnforge
from nnforge import _core
from nnforge.ops import matmul
from conftest import fp32_dot_tol
import nn_reference as R

EPS = float(np.finfo(np.float32).eps)
PAGE = mmap.PAGESIZE
_libc = ctypes.CDLL(None, use_errno=True)
_libc.mprotect.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int]


# ---- guarded allocation ------------------------------------------------------------
def guarded_buffer(count: int, dtype=np.float32, at_end: bool = True) -> np.ndarray:
    """A writeable 1-D array of `count` items with a PROT_NONE page touching its end
    (at_end) or its start. Keeps the mapping alive through the array's base."""
    nbytes = max(count, 1) * np.dtype(dtype).itemsize
    data_pages = -(-nbytes // PAGE)
    mm = mmap.mmap(-1, (data_pages + 2) * PAGE)
    base = ctypes.addressof(ctypes.c_char.from_buffer(mm))
    for off in (0, (data_pages + 1) * PAGE):  # a guard page before and after the data
        if _libc.mprotect(base + off, PAGE, 0) != 0:
            pytest.skip("mprotect unavailable")
    start = PAGE + (data_pages * PAGE - nbytes if at_end else 0)
    return np.frombuffer(mm, dtype=dtype, count=max(count, 1), offset=start)[:count]


LAYOUTS = ("c", "f", "padded", "padded_t", "reversed")
ROW_LAYOUTS = ("c", "padded", "reversed")  # unit stride along the last axis


def place(values: np.ndarray, layout: str, rng) -> np.ndarray:
    """Copy a 2-D float32 matrix into guarded memory with the given layout."""
    r, c = values.shape
    at_end = layout != "reversed"
    if layout == "c":
        v = guarded_buffer(r * c, at_end=bool(rng.integers(0, 2))).reshape(r, c)
    elif layout == "f":
        v = guarded_buffer(r * c).reshape(c, r).T
    elif layout in ("padded", "reversed"):  # row stride > c; last (or first) row ends the buffer
        ld = c + 1 + int(rng.integers(0, 4))
        buf = guarded_buffer((r - 1) * ld + c, at_end=at_end)
        v = as_strided(buf, (r, c), (ld * 4, 4))
        if layout == "reversed":  # negative row stride: row 0 is the end of the buffer
            v = v[::-1]
    elif layout == "padded_t":  # column-major with a padded leading dimension
        ld = r + 1 + int(rng.integers(0, 4))
        v = as_strided(guarded_buffer((c - 1) * ld + r), (r, c), (4, ld * 4))
    else:
        raise AssertionError(layout)
    v[...] = values
    return v


def randn(rng, *shape):
    return rng.standard_normal(shape, dtype=np.float32)


# ---- GEMM: every m, n in 1..40 with random k and layouts -------------------------------
def gemm_ref_check(out, a, b, beta=0.0, c0=None, bias=None, relu=False):
    a64, b64 = a.astype(np.float64), b.astype(np.float64)
    ref = a64 @ b64
    tol = fp32_dot_tol(a.shape[1], np.abs(a64) @ np.abs(b64)) + 2 * EPS * np.abs(ref)
    if beta:
        ref = ref + beta * c0.astype(np.float64)
        tol = tol + 2 * EPS * (np.abs(ref) + np.abs(beta * c0))
    if bias is not None:
        ref = ref + bias
        tol = tol + 2 * EPS * (np.abs(ref) + np.abs(bias))
    if relu:
        ref = np.maximum(ref, 0.0)
    err = np.abs(out.astype(np.float64) - ref)
    assert (err <= 1.2 * tol + 1e-37).all(), f"worst err {np.nanmax(err):.3g}, nan {np.isnan(out).sum()}"


def test_gemm_small_sizes_guarded(isa, rng):
    """m, n in 1..40 (all 1600 pairs), k random in 1..40, random operand/out layouts."""
    for m in range(1, 41):
        for n in range(1, 41):
            k = int(rng.integers(1, 41))
            la, lb, lo = (LAYOUTS[i] for i in rng.integers(0, len(LAYOUTS), 3))
            a, b = place(randn(rng, m, k), la, rng), place(randn(rng, k, n), lb, rng)
            bias = randn(rng, n) if (m + n) % 3 == 0 else None
            if (m * n) % 2:
                c0 = randn(rng, m, n)
                out = place(c0, lo, rng)
                matmul(a, b, out, beta=0.5, bias=bias, activation="relu")
                gemm_ref_check(out, a, b, 0.5, c0, bias, relu=True)
            else:
                out = place(np.full((m, n), np.nan, np.float32), lo, rng)
                matmul(a, b, out, bias=bias)
                gemm_ref_check(out, a, b, bias=bias)


@pytest.mark.parametrize("k", [1, 2, 3, 7, 16, 17, 31, 40, 255, 257])
def test_gemm_tile_edges_guarded(isa, rng, k):
    """Every tile edge +-1 for the 4x8 / 6x16 / 14x32 kernels in both m and n."""
    sizes = sorted({1, 2, 3, 5, 7, 8, 9, 13, 14, 15, 16, 17, 27, 28, 29, 31, 32, 33})
    for m in sizes[:: 1 if k < 100 else 3]:
        for n in sizes[:: 1 if k < 100 else 3]:
            la, lb = (LAYOUTS[i] for i in rng.integers(0, len(LAYOUTS), 2))
            a, b = place(randn(rng, m, k), la, rng), place(randn(rng, k, n), lb, rng)
            gemm_ref_check(matmul(a, b), a, b)


def test_gemm_each_variant_guarded(rng):
    """Every forced micro-kernel variant on tile-edge sizes and padded/transposed layouts."""
    sizes = (1, 2, 5, 7, 8, 13, 14, 15, 16, 17, 29, 31, 32, 33)
    prev = _core.get_gemm_variant()
    try:
        for v in _core.gemm_variants():
            if v == "auto":
                continue
            _core.set_gemm_variant(v)
            with nnforge.use_isa(v.split("_")[0]):
                for m in sizes:
                    for n in sizes:
                        k = (1, 17, 257)[(m + n) % 3]
                        la, lb, lo = (LAYOUTS[i] for i in rng.integers(0, len(LAYOUTS), 3))
                        a, b = place(randn(rng, m, k), la, rng), place(randn(rng, k, n), lb, rng)
                        out = place(np.full((m, n), np.nan, np.float32), lo, rng)
                        matmul(a, b, out)
                        gemm_ref_check(out, a, b)
    finally:
        _core.set_gemm_variant(prev)


def test_gemm_batched_guarded(isa, rng):
    for bsz, m, k, n in [(3, 1, 1, 1), (2, 7, 5, 9), (4, 15, 33, 17), (1, 29, 3, 31)]:
        a = guarded_buffer(bsz * m * k).reshape(bsz, m, k)
        a[...] = randn(rng, bsz, m, k)
        b = guarded_buffer(bsz * k * n).reshape(bsz, n, k).transpose(0, 2, 1)
        b[...] = randn(rng, bsz, k, n)
        out = guarded_buffer(bsz * m * n).reshape(bsz, m, n)
        out[...] = np.nan
        matmul(a, b, out)
        for i in range(bsz):
            gemm_ref_check(out[i], a[i], b[i])


def test_gemm_threads_bitwise_guarded(isa, threads, rng):
    a = place(randn(rng, 37, 41), "padded", rng)
    b = place(randn(rng, 41, 45), "padded_t", rng)
    res = []
    for t in (1, 2):
        nnforge.set_num_threads(t)
        res.append(matmul(a, b, activation="gelu"))
    assert res[0].tobytes() == res[1].tobytes()


# ---- nn row kernels: n in 1..70 ---------------------------------------------------------
ROWS = (1, 2, 3, 7, 33)


def _row_cases(rng, nmax=70):
    for n in range(1, nmax + 1):
        rows = ROWS[n % len(ROWS)]
        yield rows, n, ROW_LAYOUTS[int(rng.integers(0, len(ROW_LAYOUTS)))]


def _tol(k, mag):
    return fp32_dot_tol(k, mag) * 4 + 1e-30


def test_softmax_family_guarded(isa, rng):
    for rows, n, lay in _row_cases(rng):
        base = randn(rng, rows, n) * 4
        x = place(base, lay, rng)
        sm, lsm = R.softmax(base), R.log_softmax(base)
        R.assert_close(_core.softmax(x), sm, _tol(n, sm + 1e-3), f"softmax {rows}x{n} {lay}")
        out = place(np.full((rows, n), np.nan, np.float32), lay, rng)
        _core.log_softmax(x, out)
        R.assert_close(out, lsm, _tol(n, 1 + np.abs(lsm)), f"log_softmax {rows}x{n} {lay}")
        _core.softmax(x, x)  # exactly in place
        R.assert_close(x, sm, _tol(n, sm + 1e-3), f"softmax in place {rows}x{n}")
        dy = place(randn(rng, rows, n), ROW_LAYOUTS[n % 3], rng)
        y = place(sm.astype(np.float32), lay, rng)
        want = sm * (dy - (dy * sm).sum(1, keepdims=True))
        mag = np.abs(sm) * (np.abs(dy) + (np.abs(dy) * sm).sum(1, keepdims=True))
        R.assert_close(_core.softmax_backward(y, dy), want, _tol(n, mag + 1e-3), f"softmax_backward {rows}x{n}")
        ly = place(lsm.astype(np.float32), lay, rng)
        want = dy - sm * dy.sum(1, keepdims=True)
        mag = np.abs(dy) + sm * np.abs(dy).sum(1, keepdims=True)
        R.assert_close(_core.log_softmax_backward(ly, dy), want, _tol(n, mag + 1e-3),
                       f"log_softmax_backward {rows}x{n}")


def test_cross_entropy_guarded(isa, rng):
    for rows, n, lay in _row_cases(rng):
        base = randn(rng, rows, n) * 3
        z = place(base, lay, rng)
        labels = rng.integers(0, n, rows)
        lab = guarded_buffer(2 * rows, np.int32 if n % 2 else np.int64)[::2]  # strided, ends the buffer
        lab[...] = labels
        weight = rng.random(n).astype(np.float32) + 0.1 if n % 3 == 0 else None
        loss, dz = _core.cross_entropy(z, lab, weight=weight, label_smoothing=0.1, reduction="none",
                                       return_grad=True)
        want = R.cross_entropy(base, labels, weight, 0.1, "none")
        R.assert_close(loss, want, _tol(n, 1 + np.abs(want)) * 8, f"cross_entropy {rows}x{n}")
        assert np.isfinite(dz).all()


def test_layer_norm_guarded(isa, rng):
    for rows, n, lay in _row_cases(rng):
        base = randn(rng, rows, n) * 2 + 1
        x = place(base, lay, rng)
        gamma = place(randn(rng, 1, n), "c", rng)[0]
        beta = place(randn(rng, 1, n), "c", rng)[0]
        y, mean, rstd = _core.layer_norm(x, gamma, beta, 1e-5)
        ry, rm, rr = R.layer_norm(base, gamma, beta)
        R.assert_close(mean, rm, _tol(n, np.abs(base).max(1)), f"layer_norm mean {rows}x{n}")
        R.assert_close(rstd, rr, 8 * _tol(n, rr), f"layer_norm rstd {rows}x{n}")
        R.assert_close(y, ry, 8 * _tol(n, np.abs(ry) + np.abs(gamma) * 4 + 1), f"layer_norm {rows}x{n}")
        dy = place(randn(rng, rows, n), lay, rng)
        dx, dg, db = _core.layer_norm_backward(dy, x, gamma, mean, rstd)
        assert np.isfinite(dx).all()
        xhat = (base - rm[:, None]) * rr[:, None]
        R.assert_close(db, dy.astype(np.float64).sum(0), _tol(rows, np.abs(dy).sum(0)), "dbeta")
        R.assert_close(dg, (dy * xhat).sum(0), 8 * _tol(rows * n, (np.abs(dy) * (np.abs(xhat) + 1)).sum(0)),
                       "dgamma")


def test_sum_rows_and_embedding_guarded(isa, rng):
    for rows, n, lay in _row_cases(rng):
        base = randn(rng, rows, n)
        x = place(base, lay, rng)
        want = base.astype(np.float64).sum(0)
        out = guarded_buffer(n)
        out[...] = np.nan
        _core.sum_rows(x, out)
        R.assert_close(out, want, _tol(rows, np.abs(base).sum(0)), f"sum_rows {rows}x{n} {lay}")
        num = int(rng.integers(1, 6))
        idx = guarded_buffer(rows, np.int64)
        idx[...] = rng.integers(0, num, rows)
        acc = randn(rng, num, n)
        dw = guarded_buffer(num * n).reshape(num, n)
        dw[...] = acc
        _core.embedding_backward(idx, x, num, dw, accumulate=True)
        want = acc.astype(np.float64)
        np.add.at(want, idx, base.astype(np.float64))
        R.assert_close(dw, want, _tol(rows + 1, np.abs(want) + np.abs(base).sum()), f"embedding {rows}x{n}")


@pytest.mark.parametrize("op", ["relu", "tanh", "sigmoid", "gelu"])
def test_eltwise_sizes_guarded(isa, rng, op):
    fwd = {"relu": lambda v: np.maximum(v, 0), "tanh": np.tanh, "sigmoid": R.sigmoid, "gelu": R.gelu_tanh}[op]
    for size in list(range(1, 70)) + [127, 128, 129, 1023, 1025]:
        xv = randn(rng, size) * 3
        x = guarded_buffer(size, at_end=bool(size % 2))
        x[...] = xv
        out = guarded_buffer(size)
        out[...] = np.nan
        getattr(_core, op)(x, out=out)
        R.assert_close(out, fwd(xv), 8 * EPS * (np.abs(fwd(xv)) + np.abs(xv)) + 1e-30, f"{op} size {size}")
        dx = getattr(_core, op + "_backward")(x, out)
        assert np.isfinite(dx).all()
        y, mask = _core.dropout(x, 0.25, size)
        np.testing.assert_array_equal(y, np.where(mask, xv * np.float32(1 / 0.75), 0))


def test_batch_norm_guarded(isa, rng):
    for shape in [(2, 1), (2, 63), (3, 64), (5, 65), (2, 3, 1), (3, 17, 5), (2, 2, 3, 3)]:
        xv = randn(rng, *shape) + 1
        x = guarded_buffer(xv.size).reshape(shape)
        x[...] = xv
        c = shape[1]
        rm, rv = guarded_buffer(c), guarded_buffer(c)
        rm[...], rv[...] = 0.0, 1.0
        y, mean, rstd = _core.batch_norm(x, None, None, rm, rv, training=True)
        ry, rmean, rvar = R.batch_norm_train(xv, None, None)
        # y = (x - mean) * rstd: the rounding of x - mean is scaled by rstd, which is
        # large when a channel's few values happen to be close together.
        bshape = [1, c] + [1] * (len(shape) - 2)
        cond = (np.abs(xv) + np.abs(rmean).reshape(bshape)) / np.sqrt(rvar.reshape(bshape) + 1e-5)
        R.assert_close(y, ry, 32 * EPS * (np.abs(ry) + cond), f"batch_norm {shape}")
        dx, dg, db = _core.batch_norm_backward(x, x, np.ones(c, np.float32), mean, rstd, training=True)
        assert np.isfinite(dx).all() and np.isfinite(dg).all() and np.isfinite(db).all()


def test_nn_threads_bitwise_guarded(threads, rng):
    x = place(randn(rng, 333, 67), "padded", rng)
    res = []
    for t in (1, 2):
        nnforge.set_num_threads(t)
        res.append((_core.softmax(x), _core.layer_norm(x, None, None), _core.sum_rows(x),
                    _core.layer_norm_backward(x, x, np.ones(67, np.float32),
                                              *_core.layer_norm(x, None, None)[1:])))
    assert R.bitwise_equal(res[0], res[1])


# ---- binding checks for what the sanitizer sweeps found -----------------------------------
def _unaligned(count, dtype=np.float32):
    raw = np.zeros(count * np.dtype(dtype).itemsize + 1, np.uint8)
    return np.frombuffer(raw, dtype, count, offset=1)


def test_unaligned_arrays_refused():
    x = _unaligned(12).reshape(3, 4)
    assert not x.flags.aligned
    for call in (lambda: _core.softmax(x), lambda: _core.relu(x), lambda: _core.sum_rows(x),
                 lambda: _core.layer_norm(x, None, None),
                 lambda: _core.cross_entropy(np.zeros((3, 4), np.float32), _unaligned(3, np.int64))):
        with pytest.raises(ValueError, match="not aligned"):
            call()


def test_out_with_overlapping_rows_refused(rng):
    buf = np.zeros(64 + 63, np.float32)
    out = as_strided(buf, (64, 64), (4, 4))  # row i starts at element i
    with pytest.raises(ValueError, match="overlapping elements"):
        _core.softmax(randn(rng, 64, 64), out)
    with pytest.raises(ValueError, match="overlapping elements"):
        _core.softmax(randn(rng, 3, 1), as_strided(buf, (3, 1), (0, 4)))


def test_batch_norm_running_stats_overlapping_gamma_refused(rng):
    g = np.ones(4, np.float32)
    before = g.copy()
    with pytest.raises(ValueError, match="must not overlap"):
        _core.batch_norm(randn(rng, 8, 4), g, None, g, np.ones(4, np.float32), training=True)
    np.testing.assert_array_equal(g, before)


def test_embedding_out_overlapping_indices_refused(rng):
    idx = np.array([[0, 1], [1, 0]], np.int32)
    with pytest.raises(ValueError, match="must not overlap"):
        _core.embedding_backward(idx, randn(rng, 2, 2, 2), 2, idx.view(np.float32), accumulate=True)
    np.testing.assert_array_equal(idx, [[0, 1], [1, 0]])


def test_layer_norm_empty_rows_give_nan_stats():
    # Mean/variance of an empty row are 0/0 (torch.native_layer_norm gives NaN too);
    # they used to be returned uninitialised.
    y, mean, rstd = _core.layer_norm(np.zeros((4, 0), np.float32), None, None)
    assert y.shape == (4, 0) and mean.shape == (4,) and rstd.shape == (4,)
    assert np.isnan(mean).all() and np.isnan(rstd).all()


def test_unaligned_arrays_refused_by_gemm_and_optimizers():
    b = _unaligned(35).reshape(5, 7)
    with pytest.raises(ValueError, match="not aligned"):
        nnforge.ops.matmul(np.ones((3, 5), np.float32), b)
    p = np.zeros(152, np.uint8)[1:149].view(np.float32)
    assert not p.flags.aligned
    g = np.zeros(37, np.float32)
    before = p.copy()
    with pytest.raises(ValueError, match="not aligned"):
        nnforge.ops.sgd_step([p], [g], lr=0.1, step=1)
    np.testing.assert_array_equal(p, before)


def test_matmul_out_with_overlapping_elements_refused(rng):
    out = as_strided(np.zeros(1023, np.float32), (512, 512), (4, 4))
    a, b = randn(rng, 512, 8), randn(rng, 8, 512)
    with pytest.raises(ValueError, match="overlapping elements"):
        nnforge.ops.matmul(a, b, out=out)
    with pytest.raises(ValueError, match="overlapping elements"):
        nnforge.ops.matmul(a[:3], b, out=as_strided(np.zeros(512, np.float32), (3, 512), (0, 4)))
