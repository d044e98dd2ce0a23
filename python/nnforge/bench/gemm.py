"""float32 GEMM (nnforge.ops.matmul) against NumPy and PyTorch, GFLOP/s.

Shapes are m x k x n (a is m x k, b is k x n); the MLP rows are the forward
products of a 784-256-128-10 MLP at batch 128 and the transposed products its
backward pass needs (dW = x.T @ dy, dX = dy @ W.T), passed as transposed views.
FLOPs = 2 m n k (nnforge.registry). Every peer gets the same input arrays (views
included). The %-of-peak column divides by the FP32 peak measured on this CPU
(bench.cpu_peak()) or by --peak.

Method: each library is timed in its own phase (2 warm-up calls, then the median of
--repeats samples, each a loop of >= 50 ms), with --settle seconds of idle before each
phase: OpenBLAS, PyTorch and libgomp threads spin-wait after a call, and if phases
interleave with no pause, a peer's spinning pool steals the second core from whoever
runs next. --rounds sweeps the whole table again and each (case, library) keeps its
best median: on the shared machine a burst of foreign load can stall 2-thread calls
(barrier waits on a preempted core) by 10-100x for whole seconds.
"""
from __future__ import annotations

import numpy as np

from .. import registry
from ._peak import add_peak_argument, resolve
from ._table import Row, print_rows
from ._timing import add_timing_arguments, limit_numpy_threads, machine_line, time_rounds, torch_or_none

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
    """2 m n k, from the op registry."""
    return registry.flops("matmul", {"m": m, "k": k, "n": n})


def add_arguments(parser) -> None:
    parser.add_argument("--sizes", type=int, nargs="*", default=SQUARE, help="square sizes n (n x n x n)")
    parser.add_argument("--no-mlp", action="store_true", help="skip the MLP-layer shapes")
    add_timing_arguments(parser, repeats=7)
    parser.add_argument("--variant", default=None,
                        help="GEMM micro-kernel variant (see nnforge._core.gemm_variants())")
    add_peak_argument(parser)


def _operands(rng, m, k, n, ta, tb):
    a = rng.standard_normal((k, m) if ta else (m, k), dtype=np.float32)
    b = rng.standard_normal((n, k) if tb else (k, n), dtype=np.float32)
    return (a.T if ta else a), (b.T if tb else b)


def _case_fns(m, k, n, ta, tb, torch, rng):
    """The timed callables of one case, every library on the same input arrays."""
    import nnforge.ops as ops

    a, b = _operands(rng, m, k, n, ta, tb)
    out = np.empty((m, n), np.float32)
    fns = {"nnforge": lambda: ops.matmul(a, b, out), "numpy": lambda: np.matmul(a, b, out=out)}
    if torch is not None:
        ta_, tb_, to_ = torch.from_numpy(a), torch.from_numpy(b), torch.from_numpy(out)
        fns["torch"] = lambda: torch.matmul(ta_, tb_, out=to_)
    return fns


def cases(sizes=SQUARE, mlp=True) -> list[tuple]:
    """(label, m, k, n, a transposed?, b transposed?) of the table."""
    return [("square", s, s, s, False, False) for s in sizes] + (MLP if mlp else [])


def run(args) -> int:
    from nnforge import _core

    if args.variant:
        _core.set_gemm_variant(args.variant)
    torch = torch_or_none()
    blas = limit_numpy_threads()
    rng = np.random.default_rng(0)
    table = cases(args.sizes, not args.no_mlp)
    fns = [_case_fns(m, k, n, ta, tb, torch, rng) for _, m, k, n, ta, tb in table]
    best = time_rounds(fns, rounds=args.rounds, repeats=args.repeats, settle=args.settle)
    rows = [Row(label, f"{m}x{k}x{n}", flops(m, k, n), b) for (label, m, k, n, _, _), b in zip(table, best)]
    peak, peak_text = resolve(args.peak)
    title = (f"nnforge bench gemm  ({machine_line()} variant={_core.get_gemm_variant()} "
             f"torch={'-' if torch is None else torch.__version__}; {blas})\n{peak_text}\n"
             f"method: one phase per library (same inputs), {args.settle:g} s idle before each, "
             f"2 warm-up calls, median of {args.repeats} samples of >= 50 ms loops, "
             f"best of {args.rounds} rounds")
    print_rows(title, rows, ["nnforge", "numpy"] + (["torch"] if torch is not None else []), peak)
    return 0
