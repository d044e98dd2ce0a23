"""pytest-benchmark: nnforge.ops.attention forward and forward+backward vs torch SDPA (if
importable), one group per (shape, pass); shapes from nnforge.bench.attention.CASES.

    PYTHONPATH=python python -m pytest benchmarks/bench_attention.py --benchmark-only
"""
from __future__ import annotations

import numpy as np
import pytest

from nnforge.bench._timing import torch_or_none
from nnforge.bench.attention import CASES, case_fns, flops, flops_fwd_bwd, label

torch = torch_or_none()
PEERS = ["nnforge"] + (["torch"] if torch is not None else [])
PASSES = {"fwd": flops, "fb": flops_fwd_bwd}  # fwd+bwd FLOPs = 3.5x forward


@pytest.mark.parametrize("peer", PEERS)
@pytest.mark.parametrize("pass_", list(PASSES))
@pytest.mark.parametrize("case", CASES, ids=[label(c).replace(" ", "_") for c in CASES])
def test_attention(benchmark, case, pass_, peer):
    benchmark.group = f"attention {label(case)} {pass_}"
    benchmark.extra_info["gflop"] = PASSES[pass_](case) / 1e9
    fn = case_fns(case, torch, np.random.default_rng(0))[(peer, pass_)]
    benchmark.pedantic(fn, rounds=5, warmup_rounds=1, iterations=1)
