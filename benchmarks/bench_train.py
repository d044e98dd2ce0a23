"""pytest-benchmark: a tenth of a training epoch of each case in
nnforge.bench.train.CASES, nnforge vs PyTorch (if importable), one group per case.

    PYTHONPATH=python python -m pytest benchmarks/bench_train.py --benchmark-only
"""
from __future__ import annotations

import numpy as np
import pytest

import nnforge
from nnforge import nn
from nnforge.bench._timing import torch_or_none
from nnforge.bench.train import CASES, _nnforge_epoch, _synthetic, _torch_epoch, skip_first_input_grad

torch = torch_or_none()
PEERS = ["nnforge"] + (["torch"] if torch is not None else [])
EPOCH_FRACTION = 10  # time 1/10 of an epoch per round to keep the suite short


@pytest.mark.parametrize("peer", PEERS)
@pytest.mark.parametrize("name", list(CASES))
def test_train_epoch(benchmark, name, peer):
    case = CASES[name]
    n = case.n_samples // EPOCH_FRACTION
    x, y = _synthetic(case, n, np.random.default_rng(0))
    benchmark.group = f"train epoch/{EPOCH_FRACTION} {name}"
    benchmark.extra_info["samples"] = n
    benchmark.extra_info["gflop"] = case.flops_per_sample * n / 1e9
    if peer == "nnforge":
        nnforge.seed(0)
        model = case.build_nnforge()
        skip_first_input_grad(model)
        opt, loss_fn = nn.Adam(model, lr=case.lr), nn.CrossEntropyLoss()
        fn = lambda: _nnforge_epoch(case, model, opt, loss_fn, x, y, 0)
    else:
        if case.build_torch is None:
            pytest.skip(f"{name} has no PyTorch twin")
        torch.manual_seed(0)
        tmodel = case.build_torch(torch)
        topt = torch.optim.Adam(tmodel.parameters(), lr=case.lr)
        fn = lambda: _torch_epoch(case, torch, tmodel, topt, x, y, 0)
    benchmark.pedantic(fn, rounds=5, warmup_rounds=1, iterations=1)
