"""Pooling kernels (nnforge.ops max_pool2d / avg_pool2d / global_avg_pool2d and their
backwards) against float64 NumPy references on every ISA path, 1-vs-2-thread
bitwise equality, bad inputs, and torch agreement when torch is installed."""
from __future__ import annotations

import numpy as np
import pytest

import nnforge
from nnforge import ops

import pool_reference as ref
from nn_reference import EPS32, assert_close, bitwise_equal

# (N, C, H, W, kernel, stride, padding, ceil_mode): odd sizes, primes, stride != kernel,
# padding, partial ceil windows, N = 1, C = 1, 1x1 planes and windows.
CASES = [
    (2, 3, 7, 9, 3, 2, 1, False),
    (2, 3, 7, 9, 3, 2, 1, True),
    (1, 1, 5, 5, 2, 2, 0, True),
    (1, 1, 5, 5, 2, 2, 1, True),        # ceil would add a window starting in the right padding: dropped
    (3, 2, 11, 13, (3, 2), (2, 1), (1, 0), True),
    (2, 5, 28, 28, 2, 2, 0, False),
    (2, 3, 9, 7, 2, 2, 0, False),       # 2x2/s2 one-pass path with a dropped last row and column
    (3, 2, 6, 38, 2, 2, 0, False),      # 2x2/s2: two 8-wide steps and a masked 3-wide tail per row
    (1, 1, 1, 1, 1, 1, 0, False),
    (2, 3, 17, 31, 3, 1, 1, False),
    (1, 2, 6, 7, 4, 3, 2, True),
    (2, 1, 9, 8, 2, 3, 1, True),
    (1, 3, 13, 41, (5, 3), (4, 2), (2, 1), False),
    (2, 2, 2, 37, (2, 3), (1, 3), (1, 1), True),
]
IDS = [f"{c[0]}x{c[1]}x{c[2]}x{c[3]}-k{c[4]}-s{c[5]}-p{c[6]}-{'ceil' if c[7] else 'floor'}" for c in CASES]


def randn(rng, *shape):
    return rng.standard_normal(shape).astype(np.float32)


def overlap(k, s):
    """Most windows one input element can belong to."""
    (kh, kw), (sh, sw) = ref.pair(k), ref.pair(s)
    return -(-kh // sh) * -(-kw // sw)


@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_max_pool2d_matches_reference(isa, rng, case):
    n, c, h, w, k, s, p, ceil = case
    x = randn(rng, n, c, h, w)
    y, idx = ops.max_pool2d(x, k, s, p, ceil_mode=ceil)
    want, want_idx = ref.max_pool2d(x, k, s, p, ceil)
    assert y.dtype == np.float32 and idx.dtype == np.int64
    assert y.shape == want.shape == ops.pool2d_output_shape(x.shape, k, s, p, ceil)
    np.testing.assert_array_equal(y, want.astype(np.float32))  # a maximum is exact
    np.testing.assert_array_equal(idx, want_idx)
    np.testing.assert_array_equal(ops.max_pool2d(x, k, s, p, ceil_mode=ceil, return_indices=False), y)

    dy = randn(rng, *y.shape)
    dx = ops.max_pool2d_backward(dy, idx, x.shape)
    # an element collects at most overlap(k, s) gradients
    tol = EPS32 * overlap(k, s) * np.abs(dy).max()
    assert_close(dx, ref.max_pool2d_backward(dy, want_idx, x.shape), tol, "max_pool2d_backward")


@pytest.mark.parametrize("count_include_pad", [True, False])
@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_avg_pool2d_matches_reference(isa, rng, case, count_include_pad):
    n, c, h, w, k, s, p, ceil = case
    x = randn(rng, n, c, h, w)
    kk = ref.pair(k)[0] * ref.pair(k)[1]
    y = ops.avg_pool2d(x, k, s, p, ceil_mode=ceil, count_include_pad=count_include_pad)
    want = ref.avg_pool2d(x, k, s, p, ceil, count_include_pad)
    assert y.shape == want.shape
    assert_close(y, want, 2 * EPS32 * (kk + 2) * np.abs(x).max(), "avg_pool2d")

    dy = randn(rng, *y.shape)
    dx = ops.avg_pool2d_backward(dy, x.shape, k, s, p, ceil, count_include_pad)
    want_dx = ref.avg_pool2d_backward(dy, x.shape, k, s, p, ceil, count_include_pad)
    assert_close(dx, want_dx, 2 * EPS32 * (overlap(k, s) + 2) * np.abs(dy).max(), "avg_pool2d_backward")


@pytest.mark.parametrize("shape", [(1, 1, 1, 1), (2, 3, 7, 5), (3, 1, 31, 29), (1, 4, 56, 56)])
def test_global_avg_pool2d_matches_reference(isa, rng, shape):
    x = randn(rng, *shape) + 3.0  # an offset: the mean must not lose the small part
    y = ops.global_avg_pool2d(x)
    want = x.astype(np.float64).mean(axis=(2, 3))
    assert y.shape == shape[:2]
    assert_close(y, want, 2 * EPS32 * np.abs(want), "global_avg_pool2d")
    dy = randn(rng, *shape[:2])
    dx = ops.global_avg_pool2d_backward(dy, shape)
    want_dx = np.broadcast_to((dy.astype(np.float64) / (shape[2] * shape[3]))[:, :, None, None], shape)
    assert_close(dx, want_dx, EPS32 * np.abs(want_dx), "global_avg_pool2d_backward")


def test_max_pool2d_nan_propagates_and_ties_pick_first(isa):
    x = np.zeros((1, 1, 4, 4), np.float32)
    x[0, 0, 1, 1] = np.nan
    x[0, 0, 2, 3] = 5.0
    x[0, 0, 3, 3] = 5.0
    y, idx = ops.max_pool2d(x, 2)
    assert np.isnan(y[0, 0, 0, 0]) and idx[0, 0, 0, 0] == 5
    assert y[0, 0, 1, 1] == 5.0 and idx[0, 0, 1, 1] == 2 * 4 + 3
    assert y[0, 0, 0, 1] == 0.0 and idx[0, 0, 0, 1] == 2  # all zeros: first of the window
    # all -inf window still points into the window
    x = np.full((1, 1, 2, 2), -np.inf, np.float32)
    y, idx = ops.max_pool2d(x, 2)
    assert y[0, 0, 0, 0] == -np.inf and idx[0, 0, 0, 0] == 0


def torch_rule_max_pool(x, k, s, p):
    """Scalar loop with torch's CPU rule: start at -inf / the first tap; take a tap if it
    is greater or NaN (first maximum wins ties, the last NaN wins)."""
    n, c, h, w = x.shape
    wins, ho, wo = ref.windows(h, w, k, s, p, False)
    y = np.zeros((n, c, ho, wo), np.float32)
    idx = np.zeros((n, c, ho, wo), np.int64)
    for b in range(n):
        for ch in range(c):
            for oh, ow, (hs, he, ws, we), _ in wins:
                best, bi = -np.inf, hs * w + ws
                for ih in range(hs, he):
                    for iw in range(ws, we):
                        v = x[b, ch, ih, iw]
                        if v > best or np.isnan(v):
                            best, bi = v, ih * w + iw
                y[b, ch, oh, ow], idx[b, ch, oh, ow] = best, bi
    return y, idx


@pytest.mark.parametrize("k,s,p", [(2, 2, 0), (3, 2, 1), (2, 1, 0)])
def test_max_pool2d_ties_and_nans_follow_torch_rule_on_every_path(isa, rng, k, s, p):
    # small integers: many ties inside windows; a sprinkle of NaN
    x = rng.integers(-2, 3, size=(2, 3, 7, 37)).astype(np.float32)
    x[rng.random(x.shape) < 0.04] = np.nan
    y, idx = ops.max_pool2d(x, k, s, p)
    want, want_idx = torch_rule_max_pool(x, k, s, p)
    np.testing.assert_array_equal(idx, want_idx)
    np.testing.assert_array_equal(y, want)  # NaN positions compare equal in assert_array_equal


def test_non_contiguous_input_is_copied(isa, rng):
    base = randn(rng, 2, 6, 15, 22)
    x = base[:, ::2, 1:, ::2]
    assert not x.flags.c_contiguous
    xc = np.ascontiguousarray(x)
    for fn in (lambda a: ops.max_pool2d(a, 3, 2, 1)[0], lambda a: ops.avg_pool2d(a, 2, 1),
               ops.global_avg_pool2d):
        assert bitwise_equal(fn(x), fn(xc))


@pytest.mark.parametrize("case", [(4, 16, 41, 37, 3, 2, 1, True), (8, 16, 28, 28, 2, 2, 0, False)])
def test_bitwise_equal_for_1_and_2_threads(isa, rng, threads, case):
    n, c, h, w, k, s, p, ceil = case
    x = randn(rng, n, c, h, w)
    y, idx = ops.max_pool2d(x, k, s, p, ceil_mode=ceil)
    dy = randn(rng, *y.shape)
    dyg = randn(rng, n, c)

    def everything():
        return [*ops.max_pool2d(x, k, s, p, ceil_mode=ceil), ops.max_pool2d_backward(dy, idx, x.shape),
                ops.avg_pool2d(x, k, s, p, ceil_mode=ceil), ops.avg_pool2d_backward(dy, x.shape, k, s, p, ceil),
                ops.global_avg_pool2d(x), ops.global_avg_pool2d_backward(dyg, x.shape)]

    nnforge.set_num_threads(1)
    one = everything()
    nnforge.set_num_threads(2)
    two = everything()
    for a, b in zip(one, two):
        assert bitwise_equal(a, b), "result differs between 1 and 2 threads"
    # planes split between threads: row-tail stores must not spill into another thread's plane
    want, want_idx = ref.max_pool2d(x, k, s, p, ceil)
    np.testing.assert_array_equal(two[0], want.astype(np.float32))
    np.testing.assert_array_equal(two[1], want_idx)


def test_empty_batch(isa):
    x = np.zeros((0, 3, 8, 8), np.float32)
    y, idx = ops.max_pool2d(x, 2)
    assert y.shape == idx.shape == (0, 3, 4, 4)
    assert ops.max_pool2d_backward(y, idx, x.shape).shape == x.shape
    assert ops.avg_pool2d(x, 3, 1, 1).shape == (0, 3, 8, 8)
    assert ops.global_avg_pool2d(x).shape == (0, 3)


# --- bad inputs -----------------------------------------------------------------------
def test_bad_inputs_raise_clear_errors(rng):
    x = randn(rng, 2, 3, 6, 6)
    with pytest.raises(TypeError, match="float32.*float64"):
        ops.max_pool2d(x.astype(np.float64), 2)
    with pytest.raises(TypeError, match="numpy.ndarray"):
        ops.avg_pool2d(x.tolist(), 2)
    with pytest.raises(ValueError, match=r"\(N, C, H, W\).*\(3, 6, 6\)"):
        ops.max_pool2d(x[0], 2)
    with pytest.raises(ValueError, match=r"kernel_size \(7, 7\) is larger than the padded input \(6, 6\)"):
        ops.max_pool2d(x, 7)
    with pytest.raises(ValueError, match=r"kernel_size \(9, 9\) is larger than the padded input \(8, 8\)"):
        ops.avg_pool2d(x, 9, padding=1)
    with pytest.raises(ValueError, match="stride must be positive"):
        ops.max_pool2d(x, 2, 0)
    with pytest.raises(ValueError, match="stride must be positive"):
        ops.avg_pool2d(x, 2, (1, -1))
    with pytest.raises(ValueError, match=r"at most half the kernel size.*padding \(2, 2\).*\(3, 3\)"):
        ops.max_pool2d(x, 3, 1, 2)
    with pytest.raises(ValueError, match="kernel_size must be positive"):
        ops.avg_pool2d(x, 0)
    with pytest.raises(ValueError, match=r"kernel_size must be positive \(and at most 2\^31\), got \(2, 4398"):
        ops.max_pool2d(x, (2, 2**42))
    with pytest.raises(ValueError, match="stride must be positive"):
        ops.max_pool2d(x, 2, (2**40, 1))
    with pytest.raises(ValueError, match="kernel_size .* is out of range"):
        ops.max_pool2d(x, 2**70)
    with pytest.raises(ValueError, match="padding .* is out of range"):
        ops.avg_pool2d_backward(x, x.shape, 2, 1, (0, -2**63))
    with pytest.raises(TypeError, match="kernel_size must be an int or a pair"):
        ops.max_pool2d(x, 2.0)
    # a sequence of the wrong length is a wrong value (nnforge._args' convention)
    with pytest.raises(ValueError, match="stride must be an int or a pair"):
        ops.max_pool2d(x, 2, (1, 2, 3))
    with pytest.raises(ValueError, match="empty spatial plane"):
        ops.global_avg_pool2d(np.zeros((2, 3, 0, 4), np.float32))
    with pytest.raises(ValueError, match=r"\(N, C, H, W\)"):
        ops.global_avg_pool2d(x[0])


def test_bad_backward_inputs_raise_clear_errors(rng):
    x = randn(rng, 2, 3, 6, 6)
    y, idx = ops.max_pool2d(x, 2)
    with pytest.raises(TypeError, match="indices must be int64.*int32"):
        ops.max_pool2d_backward(y, idx.astype(np.int32), x.shape)
    with pytest.raises(ValueError, match=r"indices must have shape \(2, 3, 3, 3\), got \(2, 3, 3, 2\)"):
        ops.max_pool2d_backward(y, idx[..., :2], x.shape)
    with pytest.raises(ValueError, match=r"disagree on \(N, C\)"):
        ops.max_pool2d_backward(y, idx, (2, 4, 6, 6))
    with pytest.raises(ValueError, match="x_shape must have 4 entries"):
        ops.max_pool2d_backward(y, idx, (2, 3, 36))
    for bad in (-1, 36, 2**40):
        bad_idx = idx.copy()
        bad_idx[1, 2, 0, 1] = bad
        with pytest.raises(ValueError, match=rf"index {bad} at plane 5, output \(0, 1\) is outside the input "
                                             r"plane of \(6, 6\)"):
            ops.max_pool2d_backward(y, bad_idx, x.shape)
    # an index valid for a bigger plane is out of range for the x_shape given
    with pytest.raises(ValueError, match="outside the input plane of"):
        ops.max_pool2d_backward(y, idx, (2, 3, 2, 2))
    with pytest.raises(ValueError, match=r"dy must have shape \(2, 3, 3, 3\), got \(2, 3, 3, 2\)"):
        ops.avg_pool2d_backward(y[..., :2], x.shape, 2)
    with pytest.raises(TypeError, match="float32"):
        ops.avg_pool2d_backward(y.astype(np.float64), x.shape, 2)
    with pytest.raises(ValueError, match=r"dy must have shape \(2, 3\)"):
        ops.global_avg_pool2d_backward(np.zeros((3, 2), np.float32), x.shape)
    with pytest.raises(ValueError, match="x_shape must be >= 0"):
        ops.global_avg_pool2d_backward(np.zeros((2, 3), np.float32), (2, 3, -6, 6))


# --- torch agreement ----------------------------------------------------------------------
@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_agrees_with_torch(rng, case):
    torch = pytest.importorskip("torch")
    F = torch.nn.functional
    n, c, h, w, k, s, p, ceil = case
    x = randn(rng, n, c, h, w)
    tx = torch.from_numpy(x).requires_grad_(True)
    ty, tidx = F.max_pool2d(tx, k, s, p, ceil_mode=ceil, return_indices=True)
    y, idx = ops.max_pool2d(x, k, s, p, ceil_mode=ceil)
    np.testing.assert_array_equal(y, ty.detach().numpy())
    np.testing.assert_array_equal(idx, tidx.numpy())
    dy = randn(rng, *y.shape)
    ty.backward(torch.from_numpy(dy))
    assert_close(ops.max_pool2d_backward(dy, idx, x.shape), tx.grad.numpy(),
                 EPS32 * overlap(k, s) * np.abs(dy).max(), "max_pool2d_backward vs torch")
    for cip in (True, False):
        tx.grad = None
        ta = F.avg_pool2d(tx, k, s, p, ceil_mode=ceil, count_include_pad=cip)
        a = ops.avg_pool2d(x, k, s, p, ceil_mode=ceil, count_include_pad=cip)
        kk = ref.pair(k)[0] * ref.pair(k)[1]
        assert_close(a, ta.detach().numpy(), 4 * EPS32 * (kk + 2) * np.abs(x).max(), "avg_pool2d vs torch")
        ta.backward(torch.from_numpy(dy))
        assert_close(ops.avg_pool2d_backward(dy, x.shape, k, s, p, ceil, cip), tx.grad.numpy(),
                     4 * EPS32 * (overlap(k, s) + 2) * np.abs(dy).max(), "avg_pool2d_backward vs torch")


@pytest.mark.parametrize("at_end", [True, False])
def test_pool_reads_stay_inside_guarded_input(isa, rng, at_end):
    from test_edges import guarded_buffer  # mmap'd data between inaccessible pages
    for shape in [(1, 1, 2, 2), (2, 3, 6, 37), (1, 2, 9, 17), (3, 1, 4, 16)]:
        x = guarded_buffer(int(np.prod(shape)), at_end=at_end).reshape(shape)
        x[...] = randn(rng, *shape)
        for k, s, p in [(2, 2, 0), (3, 2, 1), (2, 1, 1)]:
            y, idx = ops.max_pool2d(x, k, s, p)
            want, want_idx = ref.max_pool2d(x, k, s, p)
            np.testing.assert_array_equal(idx, want_idx)
            dy = guarded_buffer(y.size, at_end=at_end).reshape(y.shape)
            dy[...] = 1.0
            assert ops.max_pool2d_backward(dy, idx, shape).sum() == y.size
            a = ops.avg_pool2d(x, k, s, p)
            assert_close(a, ref.avg_pool2d(x, k, s, p), 2 * EPS32 * 11 * np.abs(x).max(), "avg_pool2d")
            assert ops.avg_pool2d_backward(dy, shape, k, s, p).shape == shape
        assert_close(ops.global_avg_pool2d(x), f64_mean(x), 4 * EPS32 * np.abs(x).max(), "global_avg_pool2d")


def f64_mean(x):
    return x.astype(np.float64).mean(axis=(2, 3))
