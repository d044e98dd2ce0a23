"""Sparse x dense products for pruned layers (re-exported by nnforge.ops).

    w_csr = to_csr(w)                       w (N, K) float32 -> CSRMatrix (zeros dropped)
    y = sparse_matmul(x, w_csr, bias=b, activation="relu")   x (M, K) -> y (M, N) = act(x @ w^T + b)

W is (N, K): row n holds output feature n's weights (nn.Linear stores the transpose,
(in, out), so SparseLinear.from_linear converts weight.data.T). The kernel
(csrc/cpu/sparse) packs 16-row tiles of x^T and does one broadcast FMA per nonzero;
x may be any strided float32 view (no copy). Results are bitwise identical for any
thread count. There is no backward: this is an inference op. NaN / inf in x reach only
the outputs whose weight rows store that column (a pruned weight is absent, not 0 * x:
torch.sparse's and SciPy's semantics); relu(NaN) is NaN.
"""
from __future__ import annotations

from typing import Optional

import numpy as np

from . import _core
from ._args import as_ndarray, choice_arg, int_arg

__all__ = ["CSRMatrix", "sparse_matmul", "to_csr"]

_INT32_MAX = np.iinfo(np.int32).max


def _array(a, name: str, dtypes: tuple, ndim: int) -> np.ndarray:
    a = a if isinstance(a, np.ndarray) else as_ndarray(a, name)
    if a.dtype not in dtypes:
        raise TypeError(f"CSRMatrix: {name} must be {' or '.join(str(np.dtype(d)) for d in dtypes)}, got {a.dtype}")
    if a.ndim != ndim:
        raise ValueError(f"CSRMatrix: {name} must be {ndim}-D, got shape {a.shape}")
    return a


class CSRMatrix:
    """A validated (N, K) float32 matrix in compressed sparse rows: indptr int64 (N + 1,)
    (int32 is accepted and widened), indices int32 (nnz,) column of each value, sorted
    within a row, values float32 (nnz,). The arrays are copied and read-only, so a
    validated matrix stays valid. to_arrays / from_arrays round-trip it (checkpoints)."""

    __slots__ = ("indptr", "indices", "values", "shape")

    def __init__(self, indptr, indices, values, shape):
        if not isinstance(shape, (tuple, list)) or len(shape) != 2:
            raise TypeError(f"CSRMatrix: shape must be a pair (N, K), got {shape!r}")
        n, k = (int_arg(v, "shape", min=0, op="CSRMatrix") for v in shape)
        if k > _INT32_MAX:
            raise ValueError(f"CSRMatrix: K = {k} does not fit the int32 column indices")
        indptr = _array(indptr, "indptr", (np.int64, np.int32), 1).astype(np.int64)
        indices = _array(indices, "indices", (np.int32,), 1).copy()
        values = _array(values, "values", (np.float32,), 1).copy()
        if indptr.shape != (n + 1,):
            raise ValueError(f"CSRMatrix: indptr must have shape ({n + 1},) for {n} rows, got {indptr.shape}")
        if values.shape != indices.shape:
            raise ValueError(f"CSRMatrix: values {values.shape} and indices {indices.shape} must have the same shape")
        if indptr[0] != 0 or indptr[-1] != indices.size or np.any(np.diff(indptr) < 0):
            raise ValueError(f"CSRMatrix: indptr must start at 0, not decrease and end at nnz = {indices.size}")
        if indices.size and (indices.min() < 0 or indices.max() >= k):
            raise ValueError(f"CSRMatrix: column indices must lie in [0, {k})")
        rows = np.repeat(np.arange(n), np.diff(indptr))
        if indices.size > 1 and np.any((np.diff(indices) <= 0) & (rows[1:] == rows[:-1])):
            raise ValueError("CSRMatrix: column indices must be strictly increasing within each row")
        for a in (indptr, indices, values):
            a.flags.writeable = False
        self.indptr, self.indices, self.values, self.shape = indptr, indices, values, (n, k)

    @property
    def nnz(self) -> int:
        return int(self.indices.size)

    @property
    def density(self) -> float:
        n, k = self.shape
        return self.nnz / (n * k) if n * k else 0.0

    def to_dense(self) -> np.ndarray:
        n, k = self.shape
        dense = np.zeros((n, k), np.float32)
        dense[np.repeat(np.arange(n), np.diff(self.indptr)), self.indices] = self.values
        return dense

    def to_arrays(self) -> dict:
        """{"indptr", "indices", "values", "shape"} as arrays (np.savez-ready)."""
        return {"indptr": self.indptr, "indices": self.indices, "values": self.values,
                "shape": np.array(self.shape, np.int64)}

    @classmethod
    def from_arrays(cls, arrays) -> "CSRMatrix":
        shape = np.asarray(arrays["shape"])
        if shape.shape != (2,) or shape.dtype.kind not in "iu":
            raise ValueError(f"CSRMatrix.from_arrays: shape must be 2 integers, got {shape!r}")
        return cls(arrays["indptr"], arrays["indices"], arrays["values"], (int(shape[0]), int(shape[1])))

    def __repr__(self) -> str:
        return f"CSRMatrix(shape={self.shape}, nnz={self.nnz}, density={self.density:.3f})"


def to_csr(w) -> CSRMatrix:
    """w (N, K) float32 -> CSRMatrix of its nonzeros (row n = output feature n)."""
    w = w if isinstance(w, np.ndarray) else as_ndarray(w, "w")
    if w.dtype != np.float32:
        raise TypeError(f"to_csr: w must be float32, got {w.dtype}")
    if w.ndim != 2:
        raise ValueError(f"to_csr: w must be 2-D (N, K), got shape {w.shape}")
    rows, cols = np.nonzero(w)
    indptr = np.zeros(w.shape[0] + 1, np.int64)
    np.cumsum(np.bincount(rows, minlength=w.shape[0]), out=indptr[1:])
    if w.shape[1] > _INT32_MAX:
        raise ValueError(f"to_csr: K = {w.shape[1]} does not fit the int32 column indices")
    return CSRMatrix(indptr, cols.astype(np.int32), w[rows, cols], w.shape)


def sparse_matmul(x, w_csr: CSRMatrix, *, bias=None, activation: Optional[str] = None) -> np.ndarray:
    """y (M, N) = act(x (M, K) @ W^T + bias) for W = w_csr (N, K); activation None or "relu"
    (fused). x: float32, any strides; bias: float32 (N,) or None."""
    if not isinstance(w_csr, CSRMatrix):
        raise TypeError(f"sparse_matmul: w_csr must be a CSRMatrix (ops.to_csr), got {type(w_csr).__name__}")
    relu = activation is not None and choice_arg(activation, "activation", ("relu",), op="sparse_matmul") == "relu"
    x = x if isinstance(x, np.ndarray) else as_ndarray(x, "x")
    n, k = w_csr.shape
    if x.ndim == 2 and x.shape[1] != k:
        raise ValueError(f"sparse_matmul: x {x.shape} {x.dtype} needs K = {k} columns for the ({n}, {k}) weight")
    if isinstance(bias, np.ndarray) and bias.dtype == np.float32:
        bias = np.ascontiguousarray(bias)  # N values: a strided bias view costs one small copy
    return _core.sparse_matmul(x, w_csr.indptr, w_csr.indices, w_csr.values, n, bias, relu)
