"""pytest-benchmark: int8 qlinear, the exact u8 x s8 -> s32 GEMM and bf16 matmul vs our fp32 GEMM
(and torch fp32 / bf16 / torch.ao dynamic int8 Linear if importable), one group per shape.

    PYTHONPATH=python python -m pytest benchmarks/bench_quant.py --benchmark-only

Shapes and peers are bench.quant's (`nnforge bench quant`): squares, the digits MLP's
layers at batch 128 and the default GPT's at 768 tokens; bf16 = ops.matmul on bfloat16
operands (fp32 accumulation); x is m x k, the weight n x k as Linear stores it. extra_info["gop"] is 2 m n k
for every peer, so GOP/s = gop / mean time. Each result is checked once after timing:
fp32 and bf16 against float64 (bf16 on the bf16-rounded operands), s32 exactly, qlinear
within the int8 rounding error, on a sample of rows (an exact int64 product of 2048^3
would take longer than the benchmark).
"""
from __future__ import annotations

import numpy as np
import pytest

import nnforge.ops as ops
from nnforge.bench._timing import torch_or_none
from nnforge.bench.quant import GPT, MLP, SQUARE, _torch_fns

torch = torch_or_none()
CASES = [(f"{n}x{n}x{n}", n, n, n) for n in SQUARE] + MLP + GPT
PEERS = ["nnf fp32", "nnf int8 qlinear", "nnf s32 gemm", "nnf bf16"] + (
    ["torch fp32", "torch bf16", "torch int8"] if torch is not None else [])
ROWS = 8  # rows checked against the float64 / int64 reference


def _rounds(m, k, n):
    return max(3, int(2e8 / (2 * m * n * k)) // 10 + 3)


@pytest.mark.parametrize("peer", PEERS)
@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
def test_quant(benchmark, case, peer):
    name, m, k, n = case
    benchmark.group = f"quant {name}"
    benchmark.extra_info["gop"] = 2 * m * n * k / 1e9
    rng = np.random.default_rng(0)
    x = rng.standard_normal((m, k), dtype=np.float32)
    w = rng.standard_normal((n, k), dtype=np.float32)
    wt = np.ascontiguousarray(w.T)
    rows = rng.choice(m, min(m, ROWS), replace=False)
    if peer.startswith("torch"):
        fn = _torch_fns(torch, x, w)[peer]
        benchmark.pedantic(fn, rounds=_rounds(m, k, n), warmup_rounds=2, iterations=1)
        return
    if peer == "nnf s32 gemm":
        xq = rng.integers(0, 256, (m, k), dtype=np.uint8)
        bq = np.ascontiguousarray(ops.quantize_weight(w).int8().T)
        out = benchmark.pedantic(lambda: ops.qgemm_s32(xq, bq), rounds=_rounds(m, k, n), warmup_rounds=2)
        np.testing.assert_array_equal(out[rows], xq[rows].astype(np.int64) @ bq.astype(np.int64))
        return
    if peer == "nnf int8 qlinear":
        qw = ops.quantize_weight(w)
        out = benchmark.pedantic(lambda: ops.qlinear(x, qw), rounds=_rounds(m, k, n), warmup_rounds=2)
        ref = x[rows].astype(np.float64) @ w.T.astype(np.float64)
        # per-channel weight codes err <= scale/2 and per-row u8 inputs <= range/510 each:
        # a random-sign sum of k such errors, ~ sqrt(k) times one; 6 sigma
        step = np.abs(w).max() / 127 * np.abs(x[rows]).max() + np.abs(x[rows]).max() * 2 / 255 * np.abs(w).max()
        np.testing.assert_allclose(out[rows], ref, rtol=0, atol=6 * np.sqrt(k) * step)
        return
    if peer == "nnf bf16":
        xb, wtb = ops.to_bfloat16(x), ops.to_bfloat16(wt)
        a, b = ops.to_float32(xb).astype(np.float64), ops.to_float32(wtb).astype(np.float64)
        fn = lambda: ops.matmul(xb, wtb)
    else:
        a, b = x.astype(np.float64), wt.astype(np.float64)
        fn = lambda: ops.matmul(x, wt)
    out = benchmark.pedantic(fn, rounds=_rounds(m, k, n), warmup_rounds=2)
    np.testing.assert_allclose(out[rows], a[rows] @ b, rtol=0,
                               atol=1e-5 * k * float(np.abs(a).max() * np.abs(b).max()) + 1e-4)
