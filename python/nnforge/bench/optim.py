"""Fused multi-tensor optimizer steps (AdamW, SGD momentum, Adagrad; clip + AdamW) vs PyTorch fused / foreach.

Each row: one optimizer on one parameter layout; median step time; effective
GB/s from the registry's bytes() (every buffer read once, every updated one written
once: AdamW 28 B/param, SGD momentum 20 B, Adagrad 20 B); the STREAM triad
bandwidth measured in the same run and the ratio to it; PyTorch's fused and
foreach optimizers (when importable) and the ratio nnforge / best torch in
GB/s (> 1: nnforge faster). Each library is timed in its own phase (a short
sleep, then all its repeats) so thread pools do not interfere.

Reading the ratios: the triad counts 12 B per element but its store also pulls
each line of `a` in first (write-allocate, 16 B of traffic), while an in-place
optimizer step has no such hidden traffic, so "x triad" can exceed 1. Clip +
AdamW moves 32 B/param here (norm read + step) against 40 B/param for
clip_grad_norm_ (norm read, scale read+write) + fused AdamW: 1.25x is the
bandwidth-bound limit when both run at full bandwidth.
"""
from __future__ import annotations

import numpy as np

from .. import registry
from ._peak import add_peak_argument, resolve
from ._table import Row, print_rows
from ._timing import fmt, machine_line, time_rounds, torch_or_none, triad_gbs

# (label, tensor sizes)
LAYOUTS = [
    ("10M x 1", [10_000_000]),
    ("10M in 100", [100_000] * 100),
    ("1M in 50", [20_000] * 50),
]
QUICK_LAYOUTS = [("2M x 1", [2_000_000]), ("2M in 100", [20_000] * 100), ("1M in 50", [20_000] * 50)]

# optimizer -> (registry op, the options the benchmark uses)
OPTIMIZERS = {"AdamW": ("adamw_step", {}), "SGD momentum": ("sgd_step", {"momentum": 0.9}),
              "Adagrad": ("adagrad_step", {})}
LR = {"AdamW": 1e-3, "SGD momentum": 1e-2, "Adagrad": 1e-2}
PAUSE_S = 0.2


def add_arguments(parser) -> None:
    parser.add_argument("--quick", action="store_true", help="smaller layouts, fewer repeats")
    parser.add_argument("--repeats", type=int, default=7, help="timed repeats per measurement")
    add_peak_argument(parser)


def bytes_per_step(opt: str, n: int) -> float:
    """Bytes one step moves (nnforge.registry): AdamW 28 B/param, SGD momentum 20, Adagrad 20."""
    op, options = OPTIMIZERS[opt]
    return registry.bytes(op, {"sizes": [n], **options})


def bytes_clip_step(n: int) -> float:
    """grad_norm (reads the grads) + AdamW with grad_scale: 32 B/param."""
    return registry.bytes("grad_norm", {"sizes": [n]}) + bytes_per_step("AdamW", n)


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


def run(args) -> int:
    rng = np.random.default_rng(0)
    torch = torch_or_none()
    quick = getattr(args, "quick", False)
    repeats = max(3, getattr(args, "repeats", 7) // (2 if quick else 1))
    layouts = QUICK_LAYOUTS if quick else LAYOUTS
    peak, peak_text = resolve(getattr(args, "peak", None))
    print(machine_line() + (f" torch={torch.__version__}" if torch else " torch=-"), flush=True)
    triad = triad_gbs(n=20_000_000 if not quick else 5_000_000)
    # each phase: PAUSE_S idle first (the previous phase's pool parks), 2 warm-up steps, median
    timing = dict(rounds=1, repeats=repeats, settle=PAUSE_S)

    # Each case's buffers are built just before it is timed and freed after: all of them
    # at once (nnforge + two torch copies of 10M-parameter layouts) would take gigabytes.
    cases, best = [], []
    for opt in OPTIMIZERS:
        for label, sizes in layouts:
            f = {"nnforge": nnforge_step(opt, sizes, rng)}
            if torch is not None:
                for impl in ("fused", "foreach"):
                    fn = torch_step(torch, opt, sizes, rng, impl)
                    if fn is not None:
                        f[f"torch {impl}"] = fn
            cases.append((opt, label, sizes))
            best += time_rounds([f], **timing)
            del f
    rows = []
    for (opt, label, sizes), b in zip(cases, best):
        n = sum(sizes)
        row = Row(f"{opt} {label}", f"{n / 1e6:.0f}M x {len(sizes)}", bytes_per_step(opt, n), b, unit="byte")
        row.extra["x triad"] = fmt(row.rate("nnforge") / triad, ".2f")
        rows.append(row)
    libs = ["nnforge"] + (["torch fused", "torch foreach"] if torch is not None else [])
    print_rows(f"optimizer steps (effective GB/s; nnf/best and x triad: ratios, > 1 better)\n"
               f"triad {triad:.1f} GB/s (STREAM a = b + s*c, 12 B/element); {peak_text}",
               rows, libs, peak, tail_columns=["x triad"])

    best = []
    for label, sizes in layouts:
        f = {"nnforge": nnforge_clip_step(sizes, rng)}
        if torch is not None:
            fn = torch_step(torch, "AdamW", sizes, rng, "fused", clip=True)
            if fn is not None:
                f["torch"] = fn
        best += time_rounds([f], **timing)
        del f
    rows = [Row(f"clip + AdamW {label}", f"{sum(sizes) / 1e6:.0f}M x {len(sizes)}", bytes_clip_step(sum(sizes)), b,
                unit="byte") for (label, sizes), b in zip(layouts, best)]
    print_rows("clip + AdamW step (nnforge: grad_norm, then adamw_step(grad_scale=clip_coef); "
               "torch: clip_grad_norm_ + fused AdamW; GB/s at nnforge's 32 B/param, so nnf/best is the speed-up)",
               rows, ["nnforge"] + (["torch"] if torch is not None else []), peak)
    return 0
