"""Low-precision GEMMs against our fp32 matmul and PyTorch, GOP/s (`nnforge bench quant`).

Cases are m x k -> n (x is m x k, the weight n x k as Linear stores it): square GEMMs
(--sizes), the forward layers of the bundled digits MLP at batch 128 (64-256-128-10)
and of the default GPT (batch 12 x context 64 = 768 tokens, n_embd 128, 65 characters).
Libraries: nnforge fp32 (ops.matmul), nnforge bf16 (ops.matmul on bfloat16 operands,
fp32 accumulation), nnforge int8 (ops.qlinear: dynamic per-row u8 activations,
per-channel s8 weights, float32 in and out; ops.qgemm_s32: the exact integer product on
ready u8/s8 operands, weight packed per call), torch fp32 / bf16 (torch.matmul) and torch
int8 (torch.ao.quantization.quantize_dynamic of a Linear, x86/fbgemm engine: float32 in
and out, as qlinear). Operations = 2 m n k for every library. One library per timing
phase (all cases of one library, then the next), best median over --rounds sweeps.
"""
from __future__ import annotations

import warnings

import numpy as np

from .. import ops
from ._timing import add_timing_arguments, machine_line, print_table, time_rounds, torch_or_none

SQUARE = [256, 512, 1024, 2048]
MLP = [("mlp fc1", 128, 64, 256), ("mlp fc2", 128, 256, 128), ("mlp fc3", 128, 128, 10)]
GPT = [("gpt qkv", 768, 128, 384), ("gpt proj", 768, 128, 128), ("gpt fc", 768, 128, 512),
       ("gpt fc proj", 768, 512, 128), ("gpt head", 768, 128, 65)]
NNF = ("nnf fp32", "nnf bf16", "nnf int8 qlinear", "nnf s32 gemm")
TORCH = ("torch fp32", "torch bf16", "torch int8")
RATIOS = (("bf16/fp32", "nnf bf16", "nnf fp32"), ("int8/fp32", "nnf int8 qlinear", "nnf fp32"),
          ("bf16/torch bf16", "nnf bf16", "torch bf16"), ("int8/torch int8", "nnf int8 qlinear", "torch int8"))


def add_arguments(parser) -> None:
    parser.add_argument("--sizes", type=int, nargs="*", default=SQUARE, help="square sizes n (n x n -> n)")
    parser.add_argument("--no-layers", "--no-mlp", dest="no_layers", action="store_true",
                        help="skip the MLP and GPT layer shapes")
    add_timing_arguments(parser, repeats=5)


def _cases(args) -> list[tuple[str, int, int, int]]:
    cases = [(f"{n}x{n}x{n}", n, n, n) for n in args.sizes]
    return cases + ([] if args.no_layers else MLP + GPT)


def _nnf_fns(x: np.ndarray, w: np.ndarray, rng) -> dict:
    wt = np.ascontiguousarray(w.T)
    xb, wtb = ops.to_bfloat16(x), ops.to_bfloat16(wt)
    qw = ops.quantize_weight(w)
    xq = rng.integers(0, 256, x.shape, dtype=np.uint8)
    bq = np.ascontiguousarray(qw.int8().T)
    return {"nnf fp32": lambda: ops.matmul(x, wt), "nnf bf16": lambda: ops.matmul(xb, wtb),
            "nnf int8 qlinear": lambda: ops.qlinear(x, qw), "nnf s32 gemm": lambda: ops.qgemm_s32(xq, bq)}


def _torch_fns(torch, x: np.ndarray, w: np.ndarray) -> dict:
    tx, tw = torch.from_numpy(x), torch.from_numpy(np.ascontiguousarray(w.T))
    txb, twb = tx.bfloat16(), tw.bfloat16()
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
    return {"torch fp32": lambda: torch.matmul(tx, tw), "torch bf16": lambda: torch.matmul(txb, twb),
            "torch int8": int8}


def run(args) -> int:
    torch = torch_or_none()
    rng = np.random.default_rng(0)
    cases = _cases(args)
    operands = [(rng.standard_normal((m, k), dtype=np.float32), rng.standard_normal((n, k), dtype=np.float32))
                for _, m, k, n in cases]
    nnf = [_nnf_fns(x, w, rng) for x, w in operands]
    libraries = NNF
    best = [{} for _ in cases]
    for lib in NNF:  # one library per phase
        for b, got in zip(best, time_rounds([{lib: f[lib]} for f in nnf], rounds=args.rounds,
                                            repeats=args.repeats, settle=args.settle, prime=True)):
            b.update(got)
    if torch is not None:
        libraries = NNF + TORCH
        tfns = [_torch_fns(torch, x, w) for x, w in operands]
        for lib in TORCH:
            for b, got in zip(best, time_rounds([{lib: f[lib]} for f in tfns], rounds=args.rounds,
                                                repeats=args.repeats, settle=args.settle, prime=True)):
                b.update(got)
    rows = []
    for (label, m, k, n), secs in zip(cases, best):
        gops = {lib: 2.0 * m * n * k / s / 1e9 for lib, s in secs.items()}
        ratio = lambda a, b: f"{gops[a] / gops[b]:.2f}" if a in gops and b in gops else ""
        rows.append([label] + [f"{gops[lib]:.1f}" for lib in libraries]
                    + [ratio(a, b) for _, a, b in RATIOS])
    print_table(["case (m x k -> n)"] + [f"{lib} GOP/s" for lib in libraries] + [r[0] for r in RATIOS],
                rows, title=f"nnforge bench quant ({machine_line()}; torch {'missing' if torch is None else 'ok'})\n"
                            f"method: one library per phase after {args.settle:g} s idle, median of {args.repeats} "
                            f">= 50 ms loops, best of {args.rounds} rounds; ops = 2 m n k")
    return 0
