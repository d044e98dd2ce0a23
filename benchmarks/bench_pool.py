"""pytest-benchmark: nnforge.ops.max_pool2d (with indices) forward and backward vs PyTorch
(if importable), one group per (shape, pass): the two pools of the CNN training case.

    PYTHONPATH=python python -m pytest benchmarks/bench_pool.py --benchmark-only
"""
from __future__ import annotations

import numpy as np
import pytest

import nnforge.ops as ops
from nnforge import registry
from nnforge.bench._timing import torch_or_none

torch = torch_or_none()
PEERS = ["nnforge"] + (["torch"] if torch is not None else [])
SHAPES = [(64, 32, 28, 28), (64, 64, 14, 14)]  # conv32 and conv64 outputs, 2x2 pools


def _bytes(shape):
    """fwd: read x, write y (4 B) and indices (8 B); bwd: read dy and indices, write dx: the same total."""
    n, c, h, w = shape
    return registry.bytes("max_pool2d", {"n": n, "c": c, "h": h, "w": w, "kernel_size": 2})


def _fns(shape, peer):
    x = np.random.default_rng(0).standard_normal(shape, dtype=np.float32)
    if peer == "nnforge":
        y, idx = ops.max_pool2d(x, 2)
        return (lambda: ops.max_pool2d(x, 2)), (lambda: ops.max_pool2d_backward(y, idx, shape))
    tx = torch.from_numpy(x)
    ty, tidx = torch.nn.functional.max_pool2d(tx, 2, return_indices=True)
    return ((lambda: torch.nn.functional.max_pool2d(tx, 2, return_indices=True)),
            (lambda: torch.ops.aten.max_pool2d_with_indices_backward(ty, tx, [2, 2], [2, 2], [0, 0], [1, 1],
                                                                     False, tidx)))


@pytest.mark.parametrize("peer", PEERS)
@pytest.mark.parametrize("pass_", ["fwd", "bwd"])
@pytest.mark.parametrize("shape", SHAPES, ids=["x".join(map(str, s)) for s in SHAPES])
def test_max_pool2d(benchmark, shape, pass_, peer):
    benchmark.group = f"max_pool2d 2x2 {'x'.join(map(str, shape))} {pass_}"
    benchmark.extra_info["gbytes"] = _bytes(shape) / 1e9
    fwd, bwd = _fns(shape, peer)
    benchmark.pedantic(fwd if pass_ == "fwd" else bwd, rounds=20, warmup_rounds=2, iterations=1)
