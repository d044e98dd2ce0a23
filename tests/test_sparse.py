"""ops.sparse_matmul / to_csr / CSRMatrix and nn.SparseLinear against float64 NumPy."""
import numpy as np
import pytest

import nnforge
from nnforge import nn, ops
from conftest import fp32_dot_tol


def _pruned(rng, n, k, density):
    w = rng.standard_normal((n, k)).astype(np.float32)
    w[rng.random((n, k)) >= density] = 0.0
    return w


def _reference(x, w, bias=None, relu=False):
    y = x.astype(np.float64) @ w.astype(np.float64).T
    if bias is not None:
        y += bias
    return np.maximum(y, 0.0) if relu else y


def _check(y, x, w, bias=None, relu=False):
    ref = _reference(x, w, bias, relu)
    mag = np.abs(x).max(initial=1.0) * np.abs(w).max(initial=1.0)
    np.testing.assert_allclose(y, ref, rtol=0, atol=fp32_dot_tol(w.shape[1], mag) + 1e-6 * np.abs(ref).max(initial=0))


@pytest.mark.parametrize("m,k,n", [(1, 1, 1), (15, 7, 17), (16, 33, 16), (17, 97, 31), (33, 784, 67), (128, 61, 1)])
@pytest.mark.parametrize("density", [0.0, 0.05, 0.2, 1.0])
def test_sparse_matmul_matches_reference(isa, rng, m, k, n, density):
    w, x = _pruned(rng, n, k, density), rng.standard_normal((m, k)).astype(np.float32)
    bias = rng.standard_normal(n).astype(np.float32)
    c = ops.to_csr(w)
    _check(ops.sparse_matmul(x, c), x, w)
    _check(ops.sparse_matmul(x, c, bias=bias, activation="relu"), x, w, bias, relu=True)


def test_empty_rows_single_nonzero_and_empty_batch(isa, rng):
    w = np.zeros((19, 23), np.float32)
    w[7, 11] = 2.5  # one nonzero; every other row empty
    x = rng.standard_normal((21, 23)).astype(np.float32)
    bias = rng.standard_normal(19).astype(np.float32)
    c = ops.to_csr(w)
    assert c.nnz == 1
    _check(ops.sparse_matmul(x, c, bias=bias), x, w, bias)
    assert ops.sparse_matmul(np.zeros((0, 23), np.float32), c).shape == (0, 19)


def test_views_are_read_in_place(isa, rng):
    w = _pruned(rng, 29, 41, 0.1)
    c = ops.to_csr(w)
    big = rng.standard_normal((90, 130)).astype(np.float32)
    for x in (big[3:50:2, 5:46], big[:41, :37].T, big[::-3, 1:83:2][:, :41]):
        assert x.shape[1] == 41
        _check(ops.sparse_matmul(x, c), x, w)


def test_bitwise_identical_for_any_thread_count(isa, rng, threads):
    w, x = _pruned(rng, 257, 300, 0.1), rng.standard_normal((131, 300)).astype(np.float32)
    c = ops.to_csr(w)
    outs = []
    for t in (1, 2):
        nnforge.set_num_threads(t)
        outs.append(ops.sparse_matmul(x, c, activation="relu"))
    assert np.array_equal(outs[0], outs[1])


def test_csr_round_trips(rng):
    w = _pruned(rng, 13, 9, 0.3)
    c = ops.to_csr(w)
    assert np.array_equal(c.to_dense(), w)
    assert c.nnz == np.count_nonzero(w)
    d = ops.CSRMatrix.from_arrays(dict(np.load(_saved(c.to_arrays()))))
    assert np.array_equal(d.to_dense(), w) and d.shape == c.shape
    e = ops.CSRMatrix(c.indptr.astype(np.int32), c.indices, c.values, c.shape)  # int32 indptr accepted
    assert e.indptr.dtype == np.int64 and np.array_equal(e.to_dense(), w)


def _saved(arrays):
    import io
    buf = io.BytesIO()
    np.savez(buf, **arrays)
    buf.seek(0)
    return buf


def test_bad_inputs_raise_clear_errors(rng):
    w = _pruned(rng, 5, 4, 0.5)
    c = ops.to_csr(w)
    with pytest.raises(TypeError, match="float32"):
        ops.to_csr(w.astype(np.float64))
    with pytest.raises(ValueError, match="2-D"):
        ops.to_csr(w.ravel())
    with pytest.raises(TypeError, match="CSRMatrix"):
        ops.sparse_matmul(np.ones((2, 4), np.float32), w)
    with pytest.raises(ValueError, match=r"K = 4"):
        ops.sparse_matmul(np.ones((2, 5), np.float32), c)
    with pytest.raises(TypeError, match="float32"):
        ops.sparse_matmul(np.ones((2, 4), np.float64), c)
    with pytest.raises(ValueError, match="activation"):
        ops.sparse_matmul(np.ones((2, 4), np.float32), c, activation="tanh")
    with pytest.raises(ValueError, match="bias"):
        ops.sparse_matmul(np.ones((2, 4), np.float32), c, bias=np.ones(4, np.float32))
    with pytest.raises(ValueError, match=r"\[0, 4\)"):
        ops.CSRMatrix(np.array([0, 1, 1, 1, 1, 1]), np.array([4], np.int32), np.ones(1, np.float32), (5, 4))
    with pytest.raises(ValueError, match="indptr"):
        ops.CSRMatrix(np.array([0, 2, 1, 2, 2, 2]), np.array([0, 1], np.int32), np.ones(2, np.float32), (5, 4))
    with pytest.raises(TypeError, match="int32"):
        ops.CSRMatrix(c.indptr, c.indices.astype(np.int64), c.values, c.shape)
    with pytest.raises(ValueError, match="increasing"):
        ops.CSRMatrix(np.array([0, 2, 2, 2, 2, 2]), np.array([1, 1], np.int32), np.ones(2, np.float32), (5, 4))
    # the compiled op checks the CSR structure itself (a raw call cannot read out of bounds)
    with pytest.raises(ValueError, match="out of range"):
        nnforge._core.sparse_matmul(np.ones((2, 4), np.float32), np.array([0, 1, 1, 1, 1, 1], np.int64),
                                    np.array([9], np.int32), np.ones(1, np.float32), 5, None, False)


@pytest.mark.parametrize("activation", [None, "relu", "gelu_tanh"])
def test_sparse_linear_matches_linear(isa, rng, activation):
    lin = nn.Linear(53, 29, activation=activation)
    lin.weight.data[rng.random(lin.weight.shape) < 0.85] = 0.0
    x = rng.standard_normal((37, 53)).astype(np.float32)
    sp = nn.SparseLinear.from_linear(lin)
    np.testing.assert_allclose(sp.forward(x), lin.forward(x), rtol=1e-5, atol=1e-5)
    with pytest.raises(NotImplementedError, match="inference-only"):
        sp.backward(np.ones((37, 29), np.float32))
    with pytest.raises(TypeError, match="nn.Linear"):
        nn.SparseLinear.from_linear(nn.ReLU())
