"""pytest-benchmark: fused optimizer steps vs torch.optim fused / foreach, one group per optimizer and layout.

    PYTHONPATH=python python -m pytest benchmarks/bench_optim.py --benchmark-only

extra_info["gb"] is the bytes one step moves (AdamW 28 B/param, SGD momentum and
Adagrad 20 B/param), so GB/s = gb / mean time.
"""
from __future__ import annotations

import numpy as np
import pytest

from nnforge.bench._timing import torch_or_none
from nnforge.bench.optim import (LAYOUTS, OPTIMIZERS, bytes_per_step, nnforge_clip_step, nnforge_step,
                                 torch_step)

torch = torch_or_none()
PEERS = ["nnforge"] + (["torch fused", "torch foreach"] if torch is not None else [])


def _rounds(n):
    return 10 if n >= 5_000_000 else 30


@pytest.mark.parametrize("peer", PEERS)
@pytest.mark.parametrize("layout", LAYOUTS, ids=[l[0] for l in LAYOUTS])
@pytest.mark.parametrize("opt", list(OPTIMIZERS))
def test_optimizer_step(benchmark, opt, layout, peer):
    label, sizes = layout
    benchmark.group = f"{opt} {label}"
    benchmark.extra_info["gb"] = bytes_per_step(opt, sum(sizes)) / 1e9
    rng = np.random.default_rng(0)
    if peer == "nnforge":
        fn = nnforge_step(opt, sizes, rng)
    else:
        fn = torch_step(torch, opt, sizes, rng, peer.split()[1])
        if fn is None:
            pytest.skip(f"torch has no {peer} {opt} on this device")
    benchmark.pedantic(fn, rounds=_rounds(sum(sizes)), warmup_rounds=2, iterations=1)


@pytest.mark.parametrize("peer", ["nnforge"] + (["torch"] if torch is not None else []))
@pytest.mark.parametrize("layout", LAYOUTS, ids=[l[0] for l in LAYOUTS])
def test_clip_then_adamw(benchmark, layout, peer):
    label, sizes = layout
    benchmark.group = f"clip + AdamW {label}"
    rng = np.random.default_rng(0)
    fn = (nnforge_clip_step(sizes, rng) if peer == "nnforge"
          else torch_step(torch, "AdamW", sizes, rng, "fused", clip=True))
    benchmark.pedantic(fn, rounds=_rounds(sum(sizes)), warmup_rounds=2, iterations=1)
