"""float32 GEMM (nnforge.ops.matmul) against NumPy and PyTorch, GFLOP/s.

Shapes are m x k x n (a is m x k, b is k x n); the MLP rows are the forward
products of a 784-256-128-10 MLP at batch 128 and the transposed products its
backward pass needs (dW = x.T @ dy, dX = dy @ W.T), passed as transposed views.
FLOPs = 2 m n k. Every peer gets the same input arrays (views included).
"""
from __future__ import annotations

import numpy as np

from ._timing import fmt, machine_line, median_seconds, print_table, torch_or_none

# 2 Zen 4 cores x 32 FP32 FLOP/cycle x ~3.1 GHz (docs: /work/shared/ANCHORS.md).
FP32_PEAK_GFLOPS = 200.0

SQUARE = [64, 128, 256, 512, 1024, 2048]
# (label, m, k, n, a transposed?, b transposed?)
MLP = [
    ("fc1 x@W", 128, 784, 256, False, False),
    ("fc2 x@W", 128, 256, 128, False, False),
    ("fc3 x@W", 128, 128, 10, False, False),
    ("fc1 dW=x.T@dy", 784, 128, 256, True, False),
    ("fc2 dW=x.T@dy", 256, 128, 128, True, False),
    ("fc3 dW=x.T@dy", 128, 128, 10, True, False),
    ("fc2 dX=dy@W.T", 128, 128, 256, False, True),
    ("fc3 dX=dy@W.T", 128, 10, 128, False, True),
    ("fc1 dX=dy@W.T", 128, 256, 784, False, True),
]


def flops(m: int, k: int, n: int) -> float:
    return 2.0 * m * n * k


def add_arguments(parser) -> None:
    parser.add_argument("--sizes", type=int, nargs="*", default=SQUARE, help="square sizes n (n x n x n)")
    parser.add_argument("--no-mlp", action="store_true", help="skip the MLP-layer shapes")
    parser.add_argument("--repeats", type=int, default=7, help="timed repeats (median reported)")
    parser.add_argument("--variant", default=None,
                        help="GEMM micro-kernel variant (see nnforge._core.gemm_variants())")
    parser.add_argument("--peak", type=float, default=FP32_PEAK_GFLOPS,
                        help="FP32 peak GFLOP/s for the %%-of-peak column")


def _operands(rng, m, k, n, ta, tb):
    a = rng.standard_normal((k, m) if ta else (m, k), dtype=np.float32)
    b = rng.standard_normal((n, k) if tb else (k, n), dtype=np.float32)
    return (a.T if ta else a), (b.T if tb else b)


def _row(label, m, k, n, ta, tb, args, torch, rng):
    import nnforge.ops as ops

    a, b = _operands(rng, m, k, n, ta, tb)
    out = np.empty((m, n), np.float32)
    f = flops(m, k, n)
    t_nnf = median_seconds(lambda: ops.matmul(a, b, out), repeats=args.repeats)
    t_np = median_seconds(lambda: np.matmul(a, b, out=out), repeats=args.repeats)
    g_nnf, g_np = f / t_nnf / 1e9, f / t_np / 1e9
    g_t = None
    if torch is not None:
        ta_, tb_, to_ = torch.from_numpy(a), torch.from_numpy(b), torch.from_numpy(out)
        t_t = median_seconds(lambda: torch.matmul(ta_, tb_, out=to_), repeats=args.repeats)
        g_t = f / t_t / 1e9
    best = max(g_np, g_t or 0.0)
    return [label, f"{m}x{k}x{n}", fmt(g_nnf), fmt(g_np), fmt(g_t), fmt(g_nnf / best, ".2f"),
            fmt(100.0 * g_nnf / args.peak, ".0f")]


def run(args) -> int:
    import nnforge
    from nnforge import _core

    if args.variant:
        _core.set_gemm_variant(args.variant)
    torch = torch_or_none()
    rng = np.random.default_rng(0)
    rows = []
    for s in args.sizes:
        rows.append(_row("square", s, s, s, False, False, args, torch, rng))
    if not args.no_mlp:
        for label, m, k, n, ta, tb in MLP:
            rows.append(_row(label, m, k, n, ta, tb, args, torch, rng))
    title = (f"nnforge bench gemm  ({machine_line()} variant={_core.get_gemm_variant()} "
             f"torch={'-' if torch is None else torch.__version__} peak={args.peak:g} GFLOP/s)")
    print_table(["case", "m x k x n", "nnforge GF/s", "numpy GF/s", "torch GF/s",
                 "nnf/best", "% peak"], rows, title=title)
    return 0
