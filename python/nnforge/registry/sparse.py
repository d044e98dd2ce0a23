"""Sparse x dense: sparse_matmul (x (M, K) @ W^T for W (N, K) as a CSRMatrix), with
to_csr and CSRMatrix exercised by every case (the weight is built through them).

Reference: per output n, the float64 dot of x's stored columns with W's stored values
(sparse semantics, as torch.sparse and SciPy: a pruned weight is absent, not 0 * x, so
a NaN in x reaches only the outputs whose rows store its column). FLOPs: 2 per
nonzero per row of x plus 1 per output (bias / epilogue); bytes: x, the CSR arrays
(int64 indptr, int32 indices, float32 values) and y once each.
"""
from __future__ import annotations

import numpy as np

from ._base import Op, Scalar, f32, reduction_tol


def reference(x, w_csr, *, bias=None, activation=None):
    n = w_csr.shape[0]
    y = np.zeros((x.shape[0], n))
    for i in range(n):
        lo, hi = int(w_csr.indptr[i]), int(w_csr.indptr[i + 1])
        y[:, i] = x[:, w_csr.indices[lo:hi]] @ w_csr.values[lo:hi].astype(np.float64)
    if bias is not None:
        y = y + bias
    return np.maximum(y, 0.0) if activation == "relu" else y


def flops(p):
    return 2.0 * p["m"] * p["nnz"] + p["m"] * p["n"]


def bytes_(p):
    return 4.0 * p["m"] * (p["k"] + p["n"]) + 8.0 * (p["n"] + 1) + 8.0 * p["nnz"]


def _case(op, m, k, n, density, layout="contiguous", bias=False, activation=None, seed=0):
    from nnforge import ops
    w = np.random.default_rng(seed).standard_normal((n, k)).astype(np.float32)
    w[np.random.default_rng(seed + 1).random((n, k)) >= density] = 0.0
    w_csr = ops.to_csr(w)

    def make(rng):
        kw = {"activation": activation} if activation else {}
        if bias:
            kw["bias"] = f32(rng, (n,))
        return (f32(rng, (m, k), layout), w_csr), kw
    label = f"{m}x{k} @ ({n}x{k}) density={density} {layout}" + (" bias" if bias else "") + \
        (f" {activation}" if activation else "")
    return op.case(label, make, m=m, k=k, n=n, nnz=w_csr.nnz)


def cases(op):
    return [_case(op, 1, 1, 1, 1.0),
            _case(op, 17, 33, 15, 0.0, bias=True),                      # all-zero weight: y = bias
            _case(op, 15, 97, 31, 0.1, "transposed", activation="relu"),
            _case(op, 33, 784, 67, 0.05, "sliced", bias=True, activation="relu"),
            _case(op, 128, 256, 128, 0.2, "misaligned")]


def tolerance(case, args, ref):
    x, w_csr = args[0], args[1]
    mag = (float(np.abs(x).max()) if x.size else 1.0) * max(float(np.abs(w_csr.values).max(initial=0.0)), 1.0)
    return reduction_tol(case.params["k"], mag) + 1e-6


def register(add):
    from nnforge import ops
    add(Op("sparse_matmul", "sparse", ops.sparse_matmul, reference, flops, bytes_, cases, tolerance,
           covers={"to_csr": "builds every case's weight", "CSRMatrix": "every case's weight; tests/test_sparse.py checks "
                   "its validation and to_dense"},
           scalars={"activation": Scalar("activation", "choice", choices=("relu",))}, shape_free=(0,)))
