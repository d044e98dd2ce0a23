"""conv2d forward and forward+backward (nnforge.ops.conv2d*) vs PyTorch, GFLOP/s.

Cases (N, C, H, W, K, R, stride, padding): the four CNN layers of the issue (3x3,
padding 1, stride 1), a stride-2 3x3 layer and a 1x1 layer. FLOPs: forward
2*N*K*(C/groups)*R*S*Ho*Wo; forward+backward = 3x forward (dx, dw each cost one
forward; db is negligible), both from nnforge.registry. One row per (shape, pass). Both libraries compute y, then dx, dw and db from the
same dy (torch: autograd with x, w, b requiring grad).

Method: each library is timed in its own phase (2 warm-up calls, then the median of
--repeats samples, each a loop of >= 50 ms), with --settle seconds of idle before each
phase so the previous library's spinning thread pool parks; --rounds sweeps the table
again and each (case, library, pass) keeps its best median. Same thread count for both.
Every timed callable runs once before the first round (PyTorch's small-C forward is
several times faster after its backward has run once in the process).

--clock cpu times with the process CPU clock instead of the wall clock: on a shared,
oversubscribed machine a one-thread run (`nnforge --threads 1 bench conv --clock cpu`)
then no longer counts the time it was descheduled. Meaningless with several threads
(spinning workers add CPU time), so it is refused unless the thread count is 1.
"""
from __future__ import annotations

import statistics
import time

import numpy as np

from .. import registry
from ._peak import add_peak_argument, resolve
from ._table import Row, print_rows
from ._timing import add_timing_arguments, machine_line, median_seconds, time_rounds, torch_or_none

# (N, C, H, W, K, R, stride, padding)
CASES = [
    (64, 1, 28, 28, 32, 3, 1, 1),
    (32, 3, 32, 32, 64, 3, 1, 1),
    (64, 32, 14, 14, 64, 3, 1, 1),
    (8, 64, 56, 56, 64, 3, 1, 1),
    (16, 64, 28, 28, 128, 3, 2, 1),
    (16, 128, 28, 28, 64, 1, 1, 0),
]


def params(case) -> dict:
    """The registry's conv2d params of a CASES entry."""
    n, c, h, w, k, r, st, p = case
    return {"n": n, "c": c, "h": h, "w": w, "k": k, "r": r, "s": r, "stride": st, "padding": p}


def flops(case) -> float:
    """Forward FLOPs 2 N K C R S Ho Wo (nnforge.registry)."""
    return registry.flops("conv2d", params(case))


def flops_fwd_bwd(case) -> float:
    """Forward + backward (dx, dw: one forward each): 3x forward (nnforge.registry)."""
    return flops(case) + registry.flops("conv2d_backward", params(case))


def label(case) -> str:
    n, c, h, w, k, r, st, p = case
    return f"N{n} C{c} {h}x{w} K{k} {r}x{r} s{st} p{p}"


def add_arguments(parser) -> None:
    add_timing_arguments(parser)
    add_peak_argument(parser)
    parser.add_argument("--quick", action="store_true", help="1 round, 3 repeats")
    parser.add_argument("--clock", choices=["wall", "cpu"], default="wall",
                        help="wall clock (default) or process CPU time (one thread only)")


def median_cpu_seconds(fn, *, repeats: int = 7, warmup: int = 2, min_time: float = 0.05,
                       settle: float = 0.0) -> float:
    """median_seconds with time.process_time: CPU seconds of this process per call."""
    if settle > 0:
        time.sleep(settle)
    for _ in range(warmup):
        fn()
    t0 = time.process_time()
    fn()
    one = max(time.process_time() - t0, 1e-6)
    inner = max(1, int(min_time / one))
    samples = []
    for _ in range(repeats):
        t0 = time.process_time()
        for _ in range(inner):
            fn()
        samples.append((time.process_time() - t0) / inner)
    return statistics.median(samples)


def case_fns(case, torch, rng):
    """{(library, pass): callable} on the same input arrays for every library."""
    import nnforge.ops as ops

    n, c, h, w, k, r, st, p = case
    x = rng.standard_normal((n, c, h, w), dtype=np.float32)
    wt = (rng.standard_normal((k, c, r, r), dtype=np.float32) / np.sqrt(c * r * r)).astype(np.float32)
    b = rng.standard_normal(k, dtype=np.float32)
    y = ops.conv2d(x, wt, b, stride=st, padding=p)
    dy = rng.standard_normal(y.shape, dtype=np.float32)

    def nnf_fb():
        ops.conv2d(x, wt, b, stride=st, padding=p, out=y)
        ops.conv2d_backward(dy, x, wt, stride=st, padding=p)

    fns = {("nnforge", "fwd"): lambda: ops.conv2d(x, wt, b, stride=st, padding=p, out=y),
           ("nnforge", "fb"): nnf_fb}
    if torch is not None:
        import torch.nn.functional as F

        tx, tw, tb, tdy = (torch.from_numpy(a) for a in (x, wt, b, dy))
        gx, gw, gb = (t.clone().requires_grad_(True) for t in (tx, tw, tb))

        def torch_fwd():
            with torch.no_grad():
                F.conv2d(tx, tw, tb, stride=st, padding=p)

        def torch_fb():
            gx.grad = gw.grad = gb.grad = None
            F.conv2d(gx, gw, gb, stride=st, padding=p).backward(tdy)

        fns[("torch", "fwd")] = torch_fwd
        fns[("torch", "fb")] = torch_fb
    return fns


def run(args) -> int:
    import nnforge
    import nnforge.ops as ops

    if args.clock == "cpu" and nnforge.get_num_threads() != 1:
        raise SystemExit("nnforge bench conv: --clock cpu needs one thread (nnforge --threads 1 bench conv ...)")
    timer = median_cpu_seconds if args.clock == "cpu" else median_seconds
    torch = torch_or_none()
    rng = np.random.default_rng(0)
    repeats, rounds = (3, 1) if args.quick else (args.repeats, args.rounds)
    fns = [case_fns(case, torch, rng) for case in CASES]
    # prime: PyTorch's forward for the C=1 / C=3 layers runs 4-8x faster once an autograd
    # backward of the same shapes has run in the process (seen with torch 2.13 CPU), so
    # round 1 would otherwise time a cold path.
    best = time_rounds(fns, rounds=rounds, repeats=repeats, settle=args.settle, timer=timer, prime=True)
    rows = []
    for case, b in zip(CASES, best):
        n, c, h, w, k, r, st, p = case
        alg = ops.conv2d_algorithm((n, c, h, w), (k, c, r, r), stride=st, padding=p)
        for pass_, work, pass_label in (("fwd", flops(case), "fwd"), ("fb", flops_fwd_bwd(case), "fwd+bwd")):
            secs = {lib: t for (lib, ps), t in b.items() if ps == pass_}
            rows.append(Row(label(case), f"{n}x{c}x{h}x{w} * {k}x{c}x{r}x{r}", work, secs,
                            extra={"pass": pass_label, "algorithm": alg}))
    peak, peak_text = resolve(args.peak)
    title = (f"nnforge bench conv  ({machine_line()} torch={'-' if torch is None else torch.__version__})\n"
             f"{peak_text}\n"
             f"method: one phase per library and pass (same inputs), {args.settle:g} s idle before each, "
             f"2 warm-up calls, median of {repeats} samples of >= 50 ms loops ({args.clock} clock), "
             f"best of {rounds} rounds; fwd+bwd = y, dx, dw, db (3x fwd FLOPs)")
    print_rows(title, rows, ["nnforge"] + (["torch"] if torch is not None else []), peak,
               extra_columns=["pass", "algorithm"])
    return 0
