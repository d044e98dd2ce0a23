"""nnforge bench sparse: ops.sparse_matmul (CSR weight) vs our dense GEMM (ops.matmul on
the same zero-filled weight) vs torch.sparse (CSR @ dense, when torch is installed), at
50..99% sparsity on the MLP's layer shapes and 1024^2; prints the crossover sparsity
(the lowest at which the sparse kernel beats the dense GEMM) per shape.

--sweep: sparse vs dense only, on a finer sparsity grid (SWEEP_SPARSITIES), on the digits
MLP's layers at its inference batches (the shapes `nnforge compress` serves; its
SPARSE_FROM rule comes from this sweep), the 784-input MLP's and 1024 / 2048 squares."""
from __future__ import annotations

import warnings

import numpy as np

from .. import ops
from ._timing import add_timing_arguments, fmt, machine_line, median_seconds, print_table, torch_or_none

# (batch M, in K, out N): the MLP's 784->256, 256->128 at batch 128 / 256, and 1024^2
SHAPES = [(128, 784, 256), (256, 784, 256), (256, 256, 128), (1024, 1024, 1024)]
QUICK_SHAPES = [(32, 64, 48)]
SPARSITIES = (0.5, 0.7, 0.8, 0.9, 0.95, 0.99)
# digits MLP 64-256-128-10 at batch 180 (compress's validation batch) and 32 (fit's), the
# 784-input MLP at 256, and squares
SWEEP_SHAPES = [(180, 64, 256), (180, 256, 128), (180, 128, 10), (32, 64, 256), (32, 256, 128),
                (256, 784, 256), (1024, 1024, 1024), (2048, 2048, 2048)]
SWEEP_SPARSITIES = (0.5, 0.6, 0.7, 0.8, 0.85, 0.9, 0.93, 0.95, 0.97, 0.99)


def add_arguments(parser) -> None:
    add_timing_arguments(parser)
    parser.add_argument("--quick", action="store_true", help="one tiny shape, 3 repeats (a smoke run)")
    parser.add_argument("--sweep", action="store_true",
                        help="sparse vs dense on a finer sparsity grid and more shapes (the crossover per shape)")


def _fns(m, k, n, s, rng, torch):
    x = rng.standard_normal((m, k)).astype(np.float32)
    w = rng.standard_normal((n, k)).astype(np.float32)
    w[rng.random((n, k)) < s] = 0.0
    csr, wt = ops.to_csr(w), np.ascontiguousarray(w.T)
    fns = {"sparse": lambda: ops.sparse_matmul(x, csr), "dense": lambda: ops.matmul(x, wt)}
    if torch is not None:
        with warnings.catch_warnings():  # "Sparse CSR tensor support is in beta state"
            warnings.simplefilter("ignore", UserWarning)
            tw = torch.from_numpy(w).to_sparse_csr()
        tx = torch.from_numpy(np.ascontiguousarray(x.T))
        fns["torch.sparse"] = lambda: tw @ tx  # (N, K) CSR @ (K, M) dense
    return fns


def _crossover(results: list) -> str:
    """The first sparsity at which sparse beat dense, and the one from which it always did
    (the robust figure when one noisy sample flips)."""
    first = next((s for s, win in results if win), None)
    if first is None:
        return "sparse never beats dense here"
    stays = None
    for s, win in reversed(results):
        if not win:
            break
        stays = s
    return (f"sparse first faster at {first:.0%} sparsity, " +
            (f"faster at every sparsity from {stays:.0%}" if stays is not None else "but not at the highest"))


def run(args) -> int:
    torch = None if args.sweep else torch_or_none()
    rng = np.random.default_rng(0)
    repeats = 3 if args.quick else args.repeats
    libs = ["sparse", "dense"] + (["torch.sparse"] if torch is not None else [])
    shapes = QUICK_SHAPES if args.quick else SWEEP_SHAPES if args.sweep else SHAPES
    rows, faster = [], {}
    for m, k, n in shapes:
        for s in SWEEP_SPARSITIES if args.sweep else SPARSITIES:
            secs = {lib: median_seconds(fn, repeats=repeats, settle=args.settle)
                    for lib, fn in _fns(m, k, n, s, rng, torch).items()}
            faster.setdefault((m, k, n), []).append((s, secs["sparse"] < secs["dense"]))
            rows.append([f"{m}x{k} @ {k}x{n}", f"{s:.0%}"] + [fmt(secs[lib] * 1e6) for lib in libs] +
                        [fmt(secs["dense"] / secs["sparse"], ".2f")])
    title = (f"nnforge bench sparse  ({machine_line()} torch={'-' if torch is None else torch.__version__})\n"
             f"y = x @ W^T, W pruned to the given sparsity; median of {repeats} samples, microseconds")
    print_table(["shape", "sparsity"] + [f"{lib} us" for lib in libs] + ["dense/sparse"], rows, title)
    for shape, results in faster.items():
        print(f"crossover {'x'.join(map(str, shape))}: {_crossover(results)}")
    return 0
