"""pytest-benchmark: nnforge.ops.conv2d forward and forward+backward vs PyTorch (if importable),
one group per (shape, pass); shapes from nnforge.bench.conv.CASES.

    PYTHONPATH=python python -m pytest benchmarks/bench_conv.py --benchmark-only
"""
from __future__ import annotations

import numpy as np
import pytest

import nnforge.ops as ops
from nnforge.bench._timing import torch_or_none
from nnforge.bench.conv import CASES, case_fns, flops, label

torch = torch_or_none()
PEERS = ["nnforge"] + (["torch"] if torch is not None else [])
PASSES = {"fwd": 1.0, "fb": 3.0}  # fwd+bwd FLOPs = 3x forward


@pytest.mark.parametrize("peer", PEERS)
@pytest.mark.parametrize("pass_", list(PASSES))
@pytest.mark.parametrize("case", CASES, ids=[label(c).replace(" ", "_") for c in CASES])
def test_conv(benchmark, case, pass_, peer):
    benchmark.group = f"conv {label(case)} {pass_}"
    benchmark.extra_info["gflop"] = PASSES[pass_] * flops(case) / 1e9
    n, c, h, w, k, r, st, p = case
    benchmark.extra_info["algorithm"] = ops.conv2d_algorithm((n, c, h, w), (k, c, r, r), stride=st, padding=p)
    fn = case_fns(case, torch, np.random.default_rng(0))[(peer, pass_)]
    benchmark.pedantic(fn, rounds=5, warmup_rounds=1, iterations=1)


def test_conv_benchmark_inputs_agree_with_torch():
    """The benchmarked nnforge call computes the same convolution as the torch call."""
    if torch is None:
        pytest.skip("torch not installed")
    import torch.nn.functional as F

    rng = np.random.default_rng(1)
    n, c, h, w, k, r, st, p = CASES[2]
    x = rng.standard_normal((2, c, h, w), dtype=np.float32)
    wt = rng.standard_normal((k, c, r, r), dtype=np.float32)
    y = ops.conv2d(x, wt, stride=st, padding=p)
    ty = F.conv2d(torch.from_numpy(x), torch.from_numpy(wt), stride=st, padding=p).numpy()
    np.testing.assert_allclose(y, ty, rtol=0, atol=1e-4 * c * r * r)
