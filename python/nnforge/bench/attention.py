"""Fused attention forward and forward+backward (nnforge.ops.attention*) vs torch SDPA, GFLOP/s.

Cases (B, H, Lq, Lk, D, causal): the issue's table, including the GPT's own shape and
decoding one query against a 1024-key cache. FLOPs (FlashAttention's convention,
from nnforge.registry): forward 4*B*H*Lq*Lk*D, halved when causal; backward 2.5x
forward, so forward+backward counts 3.5x. One row per (shape, pass). Both libraries get the same float32 arrays; torch runs
F.scaled_dot_product_attention (is_causal; Lq = Lk wherever causal is used, so its
top-left alignment equals nnforge's bottom-right one) and autograd for the backward.
nnforge's fwd+bwd is attention(return_lse=True) then attention_backward.

Method (as bench conv): each library and pass is timed in its own phase, --settle s
idle first so the other library's spinning pool parks, 2 warm-up calls, the median
of --repeats samples each looping >= 50 ms, best of --rounds sweeps.
--variant picks the forward variant timed ("qk", "kq"; default: the active one);
--variants adds a forward row per variant, as a cross-check.
"""
from __future__ import annotations

import numpy as np

from .. import registry
from ._peak import add_peak_argument, resolve
from ._table import Row, print_rows
from ._timing import add_timing_arguments, machine_line, time_rounds, torch_or_none

# (B, H, Lq, Lk, D, causal)
CASES = [
    (4, 8, 256, 256, 64, False),
    (4, 8, 512, 512, 64, True),
    (1, 8, 2048, 2048, 64, True),
    (8, 4, 128, 128, 32, False),
    (12, 4, 64, 64, 32, True),
    (1, 8, 1, 1024, 64, False),
]


def params(case) -> dict:
    """The registry's attention params of a CASES entry."""
    b, h, lq, lk, d, causal = case
    return {"B": b, "H": h, "Hkv": h, "Lq": lq, "Lk": lk, "D": d, "causal": causal}


def flops(case) -> float:
    """Forward FLOPs 4*B*H*Lq*Lk*D, causal halved (nnforge.registry)."""
    return registry.flops("attention", params(case))


def flops_fwd_bwd(case) -> float:
    """Forward + backward (2.5x forward): 3.5x forward (nnforge.registry)."""
    return flops(case) + registry.flops("attention_backward", params(case))


def label(case) -> str:
    b, h, lq, lk, d, causal = case
    ls = f"L{lq}" if lq == lk else f"Lq{lq} Lk{lk}"
    return f"B{b} H{h} {ls} D{d}" + (" causal" if causal else "")


def add_arguments(parser) -> None:
    add_timing_arguments(parser)
    add_peak_argument(parser)
    parser.add_argument("--variant", default=None, choices=["qk", "kq", "auto"],
                        help="forward variant to time (default: the active one)")
    parser.add_argument("--variants", action="store_true", help="also time every forward variant")
    parser.add_argument("--quick", action="store_true", help="1 round, 3 repeats")


def case_fns(case, torch, rng):
    """{(library, pass): callable} on the same input arrays for every library."""
    import nnforge.ops as ops

    b, h, lq, lk, d, causal = case
    q = rng.standard_normal((b, h, lq, d), dtype=np.float32)
    k = rng.standard_normal((b, h, lk, d), dtype=np.float32)
    v = rng.standard_normal((b, h, lk, d), dtype=np.float32)
    dout = rng.standard_normal((b, h, lq, d), dtype=np.float32)
    out = np.empty_like(q)

    def nnf_fb():
        o, lse = ops.attention(q, k, v, causal=causal, return_lse=True, out=out)
        ops.attention_backward(dout, q, k, v, o, lse, causal=causal)

    fns = {("nnforge", "fwd"): lambda: ops.attention(q, k, v, causal=causal, out=out),
           ("nnforge", "fb"): nnf_fb}
    if torch is not None:
        import torch.nn.functional as F

        tq, tk, tv, tdo = (torch.from_numpy(a) for a in (q, k, v, dout))
        gq, gk, gv = (t.clone().requires_grad_(True) for t in (tq, tk, tv))

        def torch_fwd():
            with torch.no_grad():
                F.scaled_dot_product_attention(tq, tk, tv, is_causal=causal)

        def torch_fb():
            gq.grad = gk.grad = gv.grad = None
            F.scaled_dot_product_attention(gq, gk, gv, is_causal=causal).backward(tdo)

        fns[("torch", "fwd")] = torch_fwd
        fns[("torch", "fb")] = torch_fb
    return fns


def _variant_fns(fns):
    """Forward of every variant as its own phase (keys ("nnforge", "fwd <variant>"))."""
    from nnforge import _core

    def with_variant(fn, name):
        def run():
            before = _core.attention_variant(name)
            try:
                fn()
            finally:
                _core.attention_variant(before)
        return run

    return [{("nnforge", f"fwd {var}"): with_variant(f[("nnforge", "fwd")], var) for var in ("qk", "kq")}
            for f in fns]


def run(args) -> int:
    from nnforge import _core

    torch = torch_or_none()
    rng = np.random.default_rng(0)
    repeats, rounds = (3, 1) if args.quick else (args.repeats, args.rounds)
    if args.variant:
        _core.attention_variant(args.variant)
    active = _core.attention_variant()
    fns = [case_fns(case, torch, rng) for case in CASES]
    if args.variants:
        fns = [{**f, **extra} for f, extra in zip(fns, _variant_fns(fns))]
    best = time_rounds(fns, rounds=rounds, repeats=repeats, settle=args.settle, prime=True)
    rows = []
    for case, b in zip(CASES, best):
        passes = [("fwd", flops(case), "fwd", active), ("fb", flops_fwd_bwd(case), "fwd+bwd", active)]
        if args.variants:
            passes += [(f"fwd {var}", flops(case), "fwd", var) for var in ("qk", "kq")]
        for pass_, work, pass_label, var in passes:
            secs = {lib: t for (lib, ps), t in b.items() if ps == pass_}
            if pass_.startswith("fwd "):  # a variant row: torch's forward for the ratio
                secs["torch"] = b.get(("torch", "fwd"))
            b_, h, lq, lk, d, causal = case
            rows.append(Row(label(case), f"q {b_}x{h}x{lq}x{d} kv {b_}x{h}x{lk}x{d}", work, secs,
                            extra={"pass": pass_label, "variant": var}))
    peak, peak_text = resolve(args.peak)
    title = (f"nnforge bench attention  ({machine_line()} torch={'-' if torch is None else torch.__version__})\n"
             f"{peak_text}\n"
             f"method: one phase per library and pass (same inputs), {args.settle:g} s idle before each, "
             f"2 warm-up calls, median of {repeats} samples of >= 50 ms loops, best of {rounds} rounds; "
             f"FLOPs 4*B*H*Lq*Lk*D (causal: half), fwd+bwd = 3.5x fwd")
    print_rows(title, rows, ["nnforge"] + (["torch"] if torch is not None else []), peak,
               extra_columns=["pass", "variant"])
    return 0
