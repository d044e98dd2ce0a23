"""pytest-benchmark: nnforge.ops.matmul vs NumPy (and PyTorch if importable), one group per shape.

    PYTHONPATH=python python -m pytest benchmarks/bench_gemm.py --benchmark-only
"""
from __future__ import annotations

import numpy as np
import pytest

import nnforge.ops as ops
from nnforge import _core
from nnforge.bench._timing import torch_or_none
from nnforge.bench.gemm import MLP, SQUARE, _operands, flops

torch = torch_or_none()
CASES = [(f"{s}^3", s, s, s, False, False) for s in SQUARE] + [
    (f"{label} {m}x{k}x{n}", m, k, n, ta, tb) for label, m, k, n, ta, tb in MLP]
# nnforge-omp: the same kernels with the OpenMP region instead of the claimed-slab pool
# (gemm_variants.h: the old threading, kept selectable until measured worse everywhere).
PEERS = ["nnforge", "nnforge-omp", "numpy"] + (["torch"] if torch is not None else [])


@pytest.mark.parametrize("peer", PEERS)
@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
def test_gemm(benchmark, case, peer):
    name, m, k, n, ta, tb = case
    benchmark.group = f"gemm {name}"
    benchmark.extra_info["gflop"] = flops(m, k, n) / 1e9
    a, b = _operands(np.random.default_rng(0), m, k, n, ta, tb)
    out = np.empty((m, n), np.float32)
    if peer.startswith("nnforge"):
        fn = lambda: ops.matmul(a, b, out)
    elif peer == "numpy":
        fn = lambda: np.matmul(a, b, out=out)
    else:
        ta_, tb_, to_ = torch.from_numpy(a), torch.from_numpy(b), torch.from_numpy(out)
        fn = lambda: torch.matmul(ta_, tb_, out=to_)
    previous = _core.get_gemm_threading()
    _core.set_gemm_threading("omp" if peer == "nnforge-omp" else previous)
    try:
        benchmark.pedantic(fn, rounds=max(3, int(2e8 / (2 * m * n * k)) // 10 + 3), warmup_rounds=2,
                           iterations=1 if m * n * k > 1e7 else 10)
    finally:
        _core.set_gemm_threading(previous)
    np.testing.assert_allclose(out, a.astype(np.float64) @ b, rtol=0,
                               atol=1e-5 * k * float(np.abs(a).max() * np.abs(b).max()) + 1e-4)
