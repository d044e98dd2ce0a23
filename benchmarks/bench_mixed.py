"""pytest-benchmark: nnforge calls alternating with NumPy calls in one loop (see
`nnforge bench mixed`, which also times each library alone and per wait policy).

    PYTHONPATH=python python -m pytest benchmarks/bench_mixed.py --benchmark-only

Groups: "mixed matmul N^3": ops.matmul then np.matmul per round, with GEMM threading on
the claimed-slab pool ("pool") and on an OpenMP region ("omp"); "mixed MLP step": the
nnforge MLP step with its loss in NumPy.
"""
from __future__ import annotations

import numpy as np
import pytest

from nnforge import _core
from nnforge.bench.mixed import _matmul_pair, _mlp_pair


@pytest.mark.parametrize("threading", ["pool", "omp"])
@pytest.mark.parametrize("n", [256, 512])
def test_mixed_matmul(benchmark, n, threading):
    benchmark.group = f"mixed matmul {n}^3"
    nnf, peer = _matmul_pair(np.random.default_rng(0), n, "numpy", None)
    previous = _core.get_gemm_threading()
    _core.set_gemm_threading(threading)
    try:
        benchmark.pedantic(lambda: (nnf(), peer()), rounds=30, warmup_rounds=3, iterations=5)
    finally:
        _core.set_gemm_threading(previous)


def test_mixed_mlp_step(benchmark):
    benchmark.group = "mixed MLP step"
    nnf, peer = _mlp_pair(np.random.default_rng(0))
    benchmark.pedantic(lambda: (nnf(), peer()), rounds=30, warmup_rounds=3, iterations=5)
