"""pytest-benchmark: ops.sparse_matmul (CSR weight) vs our dense GEMM on the same pruned weight
(and torch.sparse CSR @ dense if importable), one group per shape and sparsity.

    PYTHONPATH=python python -m pytest benchmarks/bench_sparse.py --benchmark-only

Shapes and sparsities are `nnforge bench sparse`'s (bench.sparse.SHAPES, SPARSITIES):
y = x @ W^T, x (M, K), W (N, K) with the given fraction of zeros. extra_info["dense_gflop"]
is 2 M N K (the dense work), extra_info["nnz"] the stored weights. Each nnforge result is
checked once against float64 on the same pruned weight.
"""
from __future__ import annotations

import warnings

import numpy as np
import pytest

import nnforge.ops as ops
from nnforge.bench._timing import torch_or_none
from nnforge.bench.sparse import SHAPES, SPARSITIES

torch = torch_or_none()
CASES = [(m, k, n, s) for m, k, n in SHAPES for s in SPARSITIES]
PEERS = ["sparse", "dense"] + (["torch.sparse"] if torch is not None else [])


def _id(case):
    m, k, n, s = case
    return f"{m}x{k}x{n} {s:.0%}"


@pytest.mark.parametrize("peer", PEERS)
@pytest.mark.parametrize("case", CASES, ids=[_id(c) for c in CASES])
def test_sparse_matmul(benchmark, case, peer):
    m, k, n, s = case
    benchmark.group = f"sparse {_id(case)}"
    rng = np.random.default_rng(0)
    x = rng.standard_normal((m, k), dtype=np.float32)
    w = rng.standard_normal((n, k), dtype=np.float32)
    w[rng.random((n, k)) < s] = 0.0
    benchmark.extra_info.update(dense_gflop=2 * m * n * k / 1e9, nnz=int(np.count_nonzero(w)))
    rounds = max(3, int(1e8 / (2 * m * n * k * (1 - s))) // 10 + 3)
    if peer == "torch.sparse":
        with warnings.catch_warnings():  # "Sparse CSR tensor support is in beta state"
            warnings.simplefilter("ignore", UserWarning)
            tw = torch.from_numpy(w).to_sparse_csr()
        tx = torch.from_numpy(np.ascontiguousarray(x.T))
        benchmark.pedantic(lambda: tw @ tx, rounds=rounds, warmup_rounds=2)
        return
    if peer == "sparse":
        csr = ops.to_csr(w)
        out = benchmark.pedantic(lambda: ops.sparse_matmul(x, csr), rounds=rounds, warmup_rounds=2)
    else:
        wt = np.ascontiguousarray(w.T)
        out = benchmark.pedantic(lambda: ops.matmul(x, wt), rounds=rounds, warmup_rounds=2)
    ref = x.astype(np.float64) @ w.T.astype(np.float64)
    np.testing.assert_allclose(out, ref, rtol=0, atol=1e-5 * k * float(np.abs(x).max() * np.abs(w).max()) + 1e-4)
