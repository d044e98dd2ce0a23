"""Fused multi-tensor optimizer steps (AdamW, SGD momentum, Adagrad; clip + AdamW) vs PyTorch fused / foreach.

Each row: one optimizer on one parameter layout; median step time; effective
GB/s from explicit bytes() (every buffer read once, every updated one written
once: AdamW 28 B/param, SGD momentum 20 B, Adagrad 20 B); the STREAM triad
bandwidth measured in the same run and the ratio to it; PyTorch's fused and
foreach optimizers (when importable) and the ratio nnforge / best torch in
GB/s (> 1: nnforge faster). Each library is timed in its own phase (all its
repeats, a short sleep, then the next) so thread pools do not interfere.
"""
from __future__ import annotations

import time

import numpy as np

from ._timing import fmt, machine_line, median_seconds, print_table, torch_or_none, triad_gbs

# (label, tensor sizes)
LAYOUTS = [
    ("10M x 1", [10_000_000]),
    ("10M in 100", [100_000] * 100),
    ("1M in 50", [20_000] * 50),
]
QUICK_LAYOUTS = [("2M x 1", [2_000_000]), ("2M in 100", [20_000] * 100), ("1M in 50", [20_000] * 50)]

# optimizer -> (bytes per parameter, nnforge state buffers per parameter)
OPTIMIZERS = {"AdamW": (28, 2), "SGD momentum": (20, 1), "Adagrad": (20, 1)}
LR = {"AdamW": 1e-3, "SGD momentum": 1e-2, "Adagrad": 1e-2}
PAUSE_S = 0.2


def add_arguments(parser) -> None:
    parser.add_argument("--quick", action="store_true", help="smaller layouts, fewer repeats")
    parser.add_argument("--repeats", type=int, default=7, help="timed repeats per measurement")


def bytes_per_step(opt: str, n: int) -> int:
    return OPTIMIZERS[opt][0] * n


def _arrays(rng, sizes, count):
    return [[rng.standard_normal(s).astype(np.float32) * 0.1 for s in sizes] for _ in range(count)]


def nnforge_step(opt, sizes, rng):
    """A closure running one nnforge step of `opt` on fresh buffers."""
    from nnforge import ops

    p, g = _arrays(rng, sizes, 2)
    if opt == "AdamW":
        m = [np.zeros(s, np.float32) for s in sizes]
        v = [np.zeros(s, np.float32) for s in sizes]
        return lambda: ops.adamw_step(p, g, m, v, step=10, lr=LR[opt], weight_decay=0.01)
    if opt == "SGD momentum":
        b = [np.zeros(s, np.float32) for s in sizes]
        return lambda: ops.sgd_step(p, g, b, lr=LR[opt], step=10, momentum=0.9)
    s_ = [np.zeros(s, np.float32) for s in sizes]
    return lambda: ops.adagrad_step(p, g, s_, step=10, lr=LR[opt])


def nnforge_clip_step(sizes, rng, max_norm=1.0):
    """grad_norm, then AdamW with grad_scale = clip_coef: grads read twice, never written."""
    from nnforge import ops

    p, g = _arrays(rng, sizes, 2)
    m = [np.zeros(s, np.float32) for s in sizes]
    v = [np.zeros(s, np.float32) for s in sizes]

    def run():
        coef = ops.clip_coef(ops.grad_norm(g), max_norm)
        ops.adamw_step(p, g, m, v, step=10, lr=1e-3, weight_decay=0.01, grad_scale=coef)
    return run


def torch_step(torch, opt, sizes, rng, impl, clip=False):
    """A closure running torch.optim's `impl` ('fused' or 'foreach') step, or None if unsupported."""
    p, g = _arrays(rng, sizes, 2)
    params = [torch.from_numpy(x).requires_grad_(True) for x in p]
    for tp, x in zip(params, g):
        tp.grad = torch.from_numpy(x)
    kw = {impl: True}
    try:
        if opt == "AdamW":
            o = torch.optim.AdamW(params, lr=LR[opt], weight_decay=0.01, **kw)
        elif opt == "SGD momentum":
            o = torch.optim.SGD(params, lr=LR[opt], momentum=0.9, **kw)
        else:
            o = torch.optim.Adagrad(params, lr=LR[opt], **kw)
        o.step()  # creates the state; fails here if this impl is unsupported
    except (RuntimeError, ValueError, TypeError):
        return None
    if clip:
        clip_fn = torch.nn.utils.clip_grad_norm_
        return lambda: (clip_fn(params, 1.0), o.step())
    return o.step


def _time(fn, repeats):
    t = median_seconds(fn, repeats=repeats, warmup=2)
    time.sleep(PAUSE_S)
    return t


def run(args) -> int:
    import nnforge

    rng = np.random.default_rng(0)
    torch = torch_or_none()
    quick = getattr(args, "quick", False)
    repeats = max(3, getattr(args, "repeats", 7) // (2 if quick else 1))
    layouts = QUICK_LAYOUTS if quick else LAYOUTS
    print(machine_line() + (f" torch={torch.__version__}" if torch else " torch=-"), flush=True)
    triad = triad_gbs(n=20_000_000 if not quick else 5_000_000)
    time.sleep(PAUSE_S)

    headers = ["case", "params", "time ms", "GB/s", "triad GB/s", "x triad", "torch fused GB/s",
               "torch foreach GB/s", "x best torch"]
    rows = []
    for opt in OPTIMIZERS:
        for label, sizes in layouts:
            n = sum(sizes)
            nbytes = bytes_per_step(opt, n)
            t_nnf = _time(nnforge_step(opt, sizes, rng), repeats)
            gbs = nbytes / t_nnf / 1e9
            peers = {}
            if torch is not None:
                for impl in ("fused", "foreach"):
                    fn = torch_step(torch, opt, sizes, rng, impl)
                    peers[impl] = None if fn is None else nbytes / _time(fn, repeats) / 1e9
            best = max((v for v in peers.values() if v is not None), default=None)
            rows.append([f"{opt} {label}", f"{n / 1e6:.0f}M x {len(sizes)}", fmt(t_nnf * 1e3, ".2f"),
                         fmt(gbs), fmt(triad), fmt(gbs / triad, ".2f"), fmt(peers.get("fused")),
                         fmt(peers.get("foreach")), fmt(None if best is None else gbs / best, ".2f")])
    print_table(headers, rows, title="optimizer steps (effective GB/s; x = ratio, > 1 better)")

    headers = ["case", "nnforge ms", "torch clip_grad_norm_ + fused AdamW ms", "speed-up"]
    rows = []
    for label, sizes in layouts:
        t_nnf = _time(nnforge_clip_step(sizes, rng), repeats)
        t_torch = None
        if torch is not None:
            fn = torch_step(torch, "AdamW", sizes, rng, "fused", clip=True)
            t_torch = None if fn is None else _time(fn, repeats)
        rows.append([f"clip + AdamW {label}", fmt(t_nnf * 1e3, ".2f"),
                     fmt(None if t_torch is None else t_torch * 1e3, ".2f"),
                     fmt(None if t_torch is None else t_torch / t_nnf, ".2f")])
    print_table(headers, rows, title="clip + AdamW step (nnforge: grad_norm, then adamw_step(grad_scale=clip_coef))")
    return 0
