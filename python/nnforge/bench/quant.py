"""int8 qlinear and the raw u8 x s8 -> s32 GEMM against our fp32 matmul and PyTorch, GOP/s.

Cases are m x k -> n (x is m x k, the weight n x k as Linear stores it): square GEMMs
(--sizes) and the forward layers of the bundled digits MLP at batch 128 (64-256-128-10).
Libraries: nnforge fp32 (ops.matmul), nnforge int8 (ops.qlinear: dynamic per-row
activations, per-channel weights; and ops.qgemm_s32, the exact integer product),
torch fp32 (torch.matmul) and torch int8 (torch.ao.quantization.quantize_dynamic of a
Linear, the x86/fbgemm engine). Operations = 2 m n k for every library. Torch columns
are empty when torch is missing. bf16 columns are not here yet.
"""
from __future__ import annotations

import warnings

import numpy as np

from .. import ops
from ._timing import add_timing_arguments, machine_line, median_seconds, print_table, torch_or_none

SQUARE = [256, 512, 1024, 2048]
MLP = [("mlp fc1", 128, 64, 256), ("mlp fc2", 128, 256, 128), ("mlp fc3", 128, 128, 10)]
LIBRARIES = ("nnf fp32", "nnf int8 qlinear", "nnf s32 gemm", "torch fp32", "torch int8")


def add_arguments(parser) -> None:
    parser.add_argument("--sizes", type=int, nargs="*", default=SQUARE, help="square sizes n (n x n -> n)")
    parser.add_argument("--no-mlp", action="store_true", help="skip the MLP-layer shapes")
    add_timing_arguments(parser, repeats=5)


def _cases(args) -> list[tuple[str, int, int, int]]:
    cases = [(f"{n}x{n}x{n}", n, n, n) for n in args.sizes]
    return cases + ([] if args.no_mlp else MLP)


def _torch_fns(torch, x: np.ndarray, w: np.ndarray) -> dict:
    tx, tw = torch.from_numpy(x), torch.from_numpy(np.ascontiguousarray(w.T))
    lin = torch.nn.Linear(w.shape[1], w.shape[0], bias=False)
    with torch.no_grad():
        lin.weight.copy_(torch.from_numpy(w))
    engines = torch.backends.quantized.supported_engines
    torch.backends.quantized.engine = "x86" if "x86" in engines else "fbgemm"
    with warnings.catch_warnings():  # torch 2.13 deprecates torch.ao for torchao; still the fbgemm peer
        warnings.simplefilter("ignore", DeprecationWarning)
        warnings.simplefilter("ignore", UserWarning)  # and its quantized-tensor creation functions
        qlin = torch.ao.quantization.quantize_dynamic(torch.nn.Sequential(lin), {torch.nn.Linear},
                                                      dtype=torch.qint8)

    def int8():
        with torch.no_grad(), warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)
            qlin(tx)
    return {"torch fp32": lambda: torch.matmul(tx, tw), "torch int8": int8}


def _functions(m: int, k: int, n: int, torch, rng) -> dict:
    x = rng.standard_normal((m, k), dtype=np.float32)
    w = rng.standard_normal((n, k), dtype=np.float32)
    wt = np.ascontiguousarray(w.T)
    qw = ops.quantize_weight(w)
    xq = rng.integers(0, 256, (m, k), dtype=np.uint8)
    bq = np.ascontiguousarray(qw.int8().T)
    fns = {"nnf fp32": lambda: ops.matmul(x, wt), "nnf int8 qlinear": lambda: ops.qlinear(x, qw),
           "nnf s32 gemm": lambda: ops.qgemm_s32(xq, bq)}
    if torch is not None:
        fns.update(_torch_fns(torch, x, w))
    return fns


def run(args) -> int:
    torch = torch_or_none()
    rng = np.random.default_rng(0)
    rows = []
    for label, m, k, n in _cases(args):
        gops = {}
        for lib, fn in _functions(m, k, n, torch, rng).items():
            seconds = min(median_seconds(fn, repeats=args.repeats, settle=args.settle) for _ in range(args.rounds))
            gops[lib] = 2.0 * m * n * k / seconds / 1e9
        ratio = lambda a, b: f"{gops[a] / gops[b]:.2f}" if a in gops and b in gops else ""
        rows.append([label] + [f"{gops[lib]:.1f}" if lib in gops else "" for lib in LIBRARIES]
                    + [ratio("nnf int8 qlinear", "nnf fp32"), ratio("nnf int8 qlinear", "torch int8")])
    print_table(["case (m x k -> n)"] + [f"{lib} GOP/s" for lib in LIBRARIES] + ["int8/fp32", "int8/torch int8"],
                rows, title=f"nnforge bench quant ({machine_line()}; torch {'missing' if torch is None else 'ok'})")
    return 0
