"""pytest-benchmark: nn.LSTM / GRU / RNN forward and forward+backward vs torch.nn (if
importable), one group per (case, pass); cases from nnforge.bench.rnn.CASES.

    PYTHONPATH=python python -m pytest benchmarks/bench_rnn.py --benchmark-only
"""
from __future__ import annotations

import numpy as np
import pytest

from nnforge.bench._timing import torch_or_none
from nnforge.bench.rnn import CASES, case_fns, flops, flops_fwd_bwd, label

torch = torch_or_none()
PEERS = ["nnforge"] + (["torch"] if torch is not None else [])
PASSES = {"fwd": flops, "fb": flops_fwd_bwd}  # fwd+bwd FLOPs = 3x forward


@pytest.mark.parametrize("peer", PEERS)
@pytest.mark.parametrize("pass_", list(PASSES))
@pytest.mark.parametrize("case", CASES, ids=[label(c).replace(" ", "_") for c in CASES])
def test_rnn(benchmark, case, pass_, peer):
    benchmark.group = f"rnn {label(case)} {pass_}"
    benchmark.extra_info["gflop"] = PASSES[pass_](case) / 1e9
    fn = case_fns(case, torch, np.random.default_rng(0))[(peer, pass_)]
    benchmark.pedantic(fn, rounds=5, warmup_rounds=1, iterations=1)
