"""Fused attention forward and forward+backward (nnforge.ops.attention*) vs torch SDPA, GFLOP/s.

Cases (B, H, Lq, Lk, D, causal): the issue's table, including the GPT's own shape and
decoding one query against a 1024-key cache. FLOPs (FlashAttention's convention):
forward 4*B*H*Lq*Lk*D, halved when causal; backward 2.5x forward, so forward+backward
counts 3.5x. Both libraries get the same float32 arrays; torch runs
F.scaled_dot_product_attention (is_causal; Lq = Lk wherever causal is used, so its
top-left alignment equals nnforge's bottom-right one) and autograd for the backward.
nnforge's fwd+bwd is attention(return_lse=True) then attention_backward.

Method (as bench conv): each library and pass is timed in its own phase, --settle s
idle first so the other library's spinning pool parks, 2 warm-up calls, the median
of --repeats samples each looping >= 50 ms, best of --rounds sweeps.
--variant times one forward variant ("qk", "kq"; default: the active one) and
--variants adds a row per variant for the forward, as a cross-check.
"""
from __future__ import annotations

import numpy as np

from ._timing import fmt, machine_line, median_seconds, print_table, torch_or_none

# 2 cores x 2 FMA x 16 lanes x 2 FLOP x ~3 GHz with AVX-512 (override with --peak).
FP32_PEAK_GFLOPS = 380.0

# (B, H, Lq, Lk, D, causal)
CASES = [
    (4, 8, 256, 256, 64, False),
    (4, 8, 512, 512, 64, True),
    (1, 8, 2048, 2048, 64, True),
    (8, 4, 128, 128, 32, False),
    (12, 4, 64, 64, 32, True),
    (1, 8, 1, 1024, 64, False),
]


def flops(case) -> float:
    """Forward FLOPs: 4*B*H*Lq*Lk*D, halved when causal."""
    b, h, lq, lk, d, causal = case
    f = 4.0 * b * h * lq * lk * d
    return 0.5 * f if causal else f


def label(case) -> str:
    b, h, lq, lk, d, causal = case
    ls = f"L{lq}" if lq == lk else f"Lq{lq} Lk{lk}"
    return f"B{b} H{h} {ls} D{d}" + (" causal" if causal else "")


def add_arguments(parser) -> None:
    parser.add_argument("--repeats", type=int, default=5, help="timed repeats (median reported)")
    parser.add_argument("--rounds", type=int, default=2,
                        help="sweeps over the table; each (case, library) keeps its best median")
    parser.add_argument("--settle", type=float, default=0.15,
                        help="idle seconds before each library's timing phase (pools park)")
    parser.add_argument("--peak", type=float, default=FP32_PEAK_GFLOPS,
                        help="FP32 peak GFLOP/s for the %%-of-peak column")
    parser.add_argument("--variant", default=None, help="forward variant: qk, kq or auto")
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


def run(args) -> int:
    from nnforge import _core

    torch = torch_or_none()
    rng = np.random.default_rng(0)
    repeats, rounds = (3, 1) if args.quick else (args.repeats, args.rounds)
    if args.variant:
        _core.attention_variant(args.variant)
    active = _core.attention_variant()
    fns = [case_fns(case, torch, rng) for case in CASES]
    for case_f in fns:  # everything once: lazy initialisation out of the timings
        for fn in case_f.values():
            fn()
    best = [{} for _ in CASES]
    extra = [{} for _ in CASES]
    for _ in range(rounds):
        for case_f, b in zip(fns, best):
            for key, fn in case_f.items():
                t = median_seconds(fn, repeats=repeats, settle=args.settle)
                b[key] = min(t, b.get(key, t))
        if args.variants:
            for case_f, e in zip(fns, extra):
                for var in ("qk", "kq"):
                    _core.attention_variant(var)
                    t = median_seconds(case_f[("nnforge", "fwd")], repeats=repeats, settle=args.settle)
                    e[var] = min(t, e.get(var, t))
            _core.attention_variant(active)
    rows = []
    for case, b, e in zip(CASES, best, extra):
        f = flops(case)
        g = {key: (3.5 if key[1] == "fb" else 1.0) * f / t / 1e9 for key, t in b.items()}
        tf, tfb = g.get(("torch", "fwd")), g.get(("torch", "fb"))
        nf, nfb = g[("nnforge", "fwd")], g[("nnforge", "fb")]
        row = [label(case), active, fmt(nf), fmt(tf), fmt(None if tf is None else nf / tf, ".2f"),
               fmt(nfb), fmt(tfb), fmt(None if tfb is None else nfb / tfb, ".2f"),
               fmt(100.0 * nf / args.peak, ".0f")]
        if args.variants:
            row += [fmt(f / e[var] / 1e9) for var in ("qk", "kq")]
        rows.append(row)
    headers = ["shape", "variant", "nnf fwd GF/s", "torch fwd GF/s", "fwd ratio", "nnf f+b GF/s",
               "torch f+b GF/s", "f+b ratio", "fwd % peak"]
    if args.variants:
        headers += ["qk fwd", "kq fwd"]
    title = (f"nnforge bench attention  ({machine_line()} torch={'-' if torch is None else torch.__version__} "
             f"peak={args.peak:g} GFLOP/s)\n"
             f"method: one phase per library and pass (same inputs), {args.settle:g} s idle before each, "
             f"2 warm-up calls, median of {repeats} samples of >= 50 ms loops, best of {rounds} rounds; "
             f"FLOPs 4*B*H*Lq*Lk*D (causal: half), fwd+bwd = 3.5x fwd")
    print_table(headers, rows, title=title)
    return 0
