"""One training epoch (forward, loss, backward, optimizer step) vs the same model and loop in PyTorch.

Each case in CASES: one epoch of synthetic data, shuffled mini-batches, an explicit
loop (the same loop in both libraries: gather batch, forward, loss, backward, fused
optimizer step). Timed: median of --repeats epochs after a warm-up of a few batches.
Printed: time per epoch, samples/s, GFLOP/s from the registry's flops() of each layer
(fwd+bwd = 3x forward, minus the first layer's skipped dX), % of the FP32 peak
(measured, or --peak), the ratio nnforge/torch time
(target <= 0.5), Module.fit() for the same epoch (metrics on, progress off), and a
profile of one extra instrumented epoch: time inside the GEMM, the other nn kernels,
the optimizer kernel, batch gathering, and the rest (Python).

Add a case with register_case(name, EpochCase(...)) (e.g. the conv team's "cnn"). The
text models' cases ("gpt", "lstm": STEP_CASES) time one training step of `nnforge train
--model gpt / lstm` instead (bench/gpt_step.py, bench/lstm_step.py).
"""
from __future__ import annotations

import statistics
import time
from dataclasses import dataclass
from typing import Callable, Optional

import numpy as np

from .. import registry
from ._peak import add_peak_argument, resolve
from ._timing import CategoryTimer, fmt, machine_line, print_table, torch_or_none

__all__ = ["CASES", "EpochCase", "add_arguments", "register_case", "run"]


@dataclass
class EpochCase:
    description: str
    n_samples: int
    batch_size: int
    input_shape: tuple            # one sample, e.g. (784,) or (1, 28, 28)
    num_classes: int
    lr: float                     # Adam
    build_nnforge: Callable       # () -> nnforge.nn.Module
    build_torch: Optional[Callable]  # (torch) -> torch.nn.Module with the same layer sizes
    flops_per_sample: float       # forward+backward FLOPs of one sample


CASES: dict[str, EpochCase] = {}


def register_case(name: str, case: EpochCase) -> None:
    CASES[name] = case


# --- MLP 784-256-128-10 ------------------------------------------------------------------

_MLP = (784, 256, 128, 10)


def _mlp_nnforge():
    from .. import nn
    a, b, c, d = _MLP
    return nn.Sequential(nn.Linear(a, b, activation="relu"), nn.Linear(b, c, activation="relu"), nn.Linear(c, d))


def _mlp_torch(torch):
    a, b, c, d = _MLP
    return torch.nn.Sequential(torch.nn.Linear(a, b), torch.nn.ReLU(), torch.nn.Linear(b, c), torch.nn.ReLU(),
                               torch.nn.Linear(c, d))


def _linear_flops(i: int, o: int) -> float:
    return registry.flops("matmul", {"m": 1, "k": i, "n": o})  # one sample


def _mlp_flops():
    # forward per layer; backward dW (one forward) and dX (one forward) except the first layer
    fwd = [_linear_flops(i, o) for i, o in zip(_MLP[:-1], _MLP[1:])]
    return sum(fwd) + sum(fwd) + sum(fwd[1:])


register_case("mlp", EpochCase("MLP 784-256-128-10 ReLU, Adam, bs 128, 60,000 samples", 60_000, 128, (784,), 10,
                               1e-3, _mlp_nnforge, _mlp_torch, _mlp_flops()))


# --- CNN conv32-pool-conv64-pool-fc128-fc10 on (1, 28, 28) ----------------------------------

def _cnn_nnforge():
    from .. import nn  # public layers only: 3x3 pad-1 convs with fused ReLU, 2x2 max pools
    return nn.Sequential(nn.Conv2d(1, 32, 3, padding=1, activation="relu"), nn.MaxPool2d(2),
                         nn.Conv2d(32, 64, 3, padding=1, activation="relu"), nn.MaxPool2d(2), nn.Flatten(),
                         nn.Linear(64 * 7 * 7, 128, activation="relu"), nn.Linear(128, 10))


def _cnn_torch(torch):
    tnn = torch.nn
    return tnn.Sequential(tnn.Conv2d(1, 32, 3, padding=1), tnn.ReLU(), tnn.MaxPool2d(2),
                          tnn.Conv2d(32, 64, 3, padding=1), tnn.ReLU(), tnn.MaxPool2d(2), tnn.Flatten(),
                          tnn.Linear(64 * 7 * 7, 128), tnn.ReLU(), tnn.Linear(128, 10))


def _conv_flops(c: int, hw: int, k: int) -> float:
    return registry.flops("conv2d", {"n": 1, "c": c, "h": hw, "w": hw, "k": k, "r": 3, "s": 3, "padding": 1})


def _cnn_flops():
    # conv and linear forwards; backward = dW + dX (one forward each), no dX for the first conv
    conv1 = _conv_flops(1, 28, 32)
    fwd = conv1 + _conv_flops(32, 14, 64) + _linear_flops(64 * 7 * 7, 128) + _linear_flops(128, 10)
    return fwd + fwd + (fwd - conv1)


register_case("cnn", EpochCase("CNN conv32-pool-conv64-pool-fc128-fc10 (3x3 pad 1, ReLU, 2x2 max pool), Adam, "
                               "bs 64, 6,400 samples (1, 28, 28)", 6_400, 64, (1, 28, 28), 10, 1e-3,
                               _cnn_nnforge, _cnn_torch, _cnn_flops()))


# --- the epoch loops ------------------------------------------------------------------------

def skip_first_input_grad(model) -> None:
    """As fit() does: the layer that sees the raw batch needs no dX (a Sequential's first
    item, descending through leading Sequentials)."""
    from .. import nn
    while isinstance(model, nn.Sequential) and len(model):
        model = model[0]
    if hasattr(model, "needs_input_grad"):
        model.needs_input_grad = False


def _synthetic(case: EpochCase, n: int, rng):
    x = rng.standard_normal((n, *case.input_shape), dtype=np.float32)
    y = rng.integers(0, case.num_classes, size=n).astype(np.int64)
    return x, y


def _nnforge_epoch(case, model, opt, loss_fn, x, y, order, limit=None):
    from ..data import batches
    for i, (xb, yb) in enumerate(batches(x, y, batch_size=case.batch_size, shuffle=True, rng=order)):
        if limit is not None and i >= limit:
            break
        out = model.forward(xb)
        loss_fn.forward(out, yb)
        model.backward(loss_fn.backward())
        opt.step(zero_grad=True)


def _torch_epoch(case, torch, model, opt, x, y, order, limit=None):
    tx, ty = torch.from_numpy(x), torch.from_numpy(y)
    perm = torch.from_numpy(np.random.default_rng(order).permutation(len(x)))
    loss_fn = torch.nn.CrossEntropyLoss()
    for i, start in enumerate(range(0, len(x), case.batch_size)):
        if limit is not None and i >= limit:
            break
        idx = perm[start:start + case.batch_size]
        xb, yb = tx[idx], ty[idx]
        opt.zero_grad(set_to_none=False)
        loss_fn(model(xb), yb).backward()
        opt.step()


def _median_epoch(fn, repeats: int) -> float:
    fn(limit=5)  # warm-up: first-touch buffers, thread pools
    times = []
    for r in range(repeats):
        t0 = time.perf_counter()
        fn(order=r)
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


# --- profile -------------------------------------------------------------------------------

def _profile(case, model, opt, loss_fn, x, y) -> tuple[float, list[tuple[str, int, float]]]:
    from .. import data, ops
    timer = CategoryTimer()
    categories = {"gemm": "GEMM (ops.matmul)", "nn": "other nn kernels", "conv": "conv2d kernels (ops.conv2d*)",
                  "pool": "pooling kernels (ops.*pool2d*)"}
    for op in registry.all_ops():
        if op.family in categories:
            for name in [op.name, *op.covers]:
                if name in ops.__all__ and not name.endswith(("_output_shape", "_algorithm")):
                    timer.wrap(ops, name, categories[op.family])
    # opt.step (public) rather than the kernel it holds: a few us of Python per step more
    timer.wrap(opt, "step", f"optimizer ({type(opt).__name__}.step)")
    orig_batches = data.batches

    def timed_batches(*args, **kwargs):
        it = orig_batches(*args, **kwargs)
        while True:
            t0 = time.perf_counter()
            try:
                item = next(it)
            except StopIteration:
                return
            finally:
                timer.seconds["batch gather + shuffle"] = timer.seconds.get("batch gather + shuffle", 0.0) + \
                    time.perf_counter() - t0
            timer.calls["batch gather + shuffle"] = timer.calls.get("batch gather + shuffle", 0) + 1
            yield item

    data.batches = timed_batches
    try:
        t0 = time.perf_counter()
        _nnforge_epoch(case, model, opt, loss_fn, x, y, order=123)
        total = time.perf_counter() - t0
    finally:
        data.batches = orig_batches
        timer.restore()
    # categories the model never called (conv/pool in an MLP) are left out
    rows = [(k, timer.calls[k], timer.seconds[k]) for k in timer.seconds if timer.calls[k]]
    rows.append(("Python (layers, loop, wrappers)", 0, total - sum(timer.seconds.values())))
    return total, rows


# --- command ---------------------------------------------------------------------------------

def add_arguments(parser) -> None:
    parser.add_argument("--case", action="append", choices=None,
                        help=f"case(s) to run (default: all registered: {', '.join([*CASES, *STEP_CASES])})")
    parser.add_argument("--repeats", type=int, default=3, help="timed epochs per library (median)")
    parser.add_argument("--quick", action="store_true", help="one tenth of the samples, one repeat")
    parser.add_argument("--no-torch", action="store_true", help="skip the PyTorch peer")
    parser.add_argument("--no-profile", action="store_true", help="skip the profile epoch")
    add_peak_argument(parser)


def run(args) -> int:
    import nnforge
    from .. import nn
    from ..cli import CliError

    names = args.case or [*CASES, *STEP_CASES]
    unknown = [n for n in names if n not in CASES and n not in STEP_CASES]
    if unknown:
        raise CliError(f"unknown --case {unknown[0]!r}; choose from {', '.join([*CASES, *STEP_CASES])}")
    step_names = [n for n in names if n in STEP_CASES]
    names = [n for n in names if n in CASES]
    if args.repeats < 1:
        raise CliError(f"--repeats must be >= 1, got {args.repeats}")
    torch = None if args.no_torch else torch_or_none()
    peak, peak_text = resolve(getattr(args, "peak", None))
    pct = lambda gflops: fmt(None if (peak is None or gflops is None) else 100.0 * gflops / peak, ".0f")
    print(f"nnforge bench train: {machine_line()}" + (f" torch={torch.__version__}" if torch else " (no torch)"))
    print(peak_text)
    print("method: one warm-up of 5 batches, then the median of the epoch times; same explicit loop in both "
          "libraries (shuffled gather, forward, cross-entropy, backward, Adam step)")
    repeats = 1 if args.quick else args.repeats
    rows, profiles = [], []
    for name in names:
        case = CASES[name]
        n = case.n_samples // 10 if args.quick else case.n_samples
        rng = np.random.default_rng(0)
        x, y = _synthetic(case, n, rng)
        gflop = case.flops_per_sample * n / 1e9

        nnforge.seed(0)
        model = case.build_nnforge()
        skip_first_input_grad(model)
        opt = nn.Adam(model, lr=case.lr)
        loss_fn = nn.CrossEntropyLoss()
        t_nnf = _median_epoch(lambda limit=None, order=0: _nnforge_epoch(case, model, opt, loss_fn, x, y, order,
                                                                          limit), repeats)
        fit_model = case.build_nnforge().compile("adam", lr=case.lr)
        fit_model.fit(x[:5 * case.batch_size], y[:5 * case.batch_size], batch_size=case.batch_size, verbose=0)
        t0 = time.perf_counter()
        fit_model.fit(x, y, epochs=1, batch_size=case.batch_size, verbose=0)
        t_fit = time.perf_counter() - t0

        t_torch = None
        if torch is not None and case.build_torch is not None:
            torch.manual_seed(0)
            tmodel = case.build_torch(torch)
            topt = torch.optim.Adam(tmodel.parameters(), lr=case.lr)
            t_torch = _median_epoch(lambda limit=None, order=0: _torch_epoch(case, torch, tmodel, topt, x, y, order,
                                                                             limit), repeats)
        ratio = None if t_torch is None else t_nnf / t_torch
        rows.append((name, f"{n:,}", f"{case.batch_size}", "nnforge loop", f"{t_nnf:.3f}", f"{n / t_nnf:,.0f}",
                     fmt(gflop / t_nnf), fmt(ratio, ".2f"), pct(gflop / t_nnf)))
        rows.append(("", "", "", "nnforge fit()", f"{t_fit:.3f}", f"{n / t_fit:,.0f}", fmt(gflop / t_fit),
                     fmt(None if t_torch is None else t_fit / t_torch, ".2f"), pct(gflop / t_fit)))
        rows.append(("", "", "", "torch loop", fmt(t_torch, ".3f"), "-" if t_torch is None else f"{n / t_torch:,.0f}",
                     fmt(None if t_torch is None else gflop / t_torch), "-",
                     pct(None if t_torch is None else gflop / t_torch)))
        if not args.no_profile:
            profiles.append((name, case, _profile(case, model, opt, loss_fn, x, y)))
    if rows:
        print_table(["case", "samples", "batch", "loop", "s/epoch", "samples/s", "GFLOP/s", "vs torch", "% peak"], rows,
                    title="\n" + "; ".join(CASES[n].description for n in names)
                    + "\n(vs torch = nnforge time / torch time; target <= 0.50)")
    for name, case, (total, prof) in profiles:
        print_table(["component", "calls", "seconds", "% of epoch"],
                    [(k, f"{c:,}" if c else "-", f"{s:.3f}", f"{100 * s / total:.1f}") for k, c, s in prof]
                    + [("total (instrumented epoch)", "-", f"{total:.3f}", "100.0")],
                    title=f"\nprofile: {name}, one instrumented epoch (wrappers add ~1 us per call)")
        kernels = sum(sec for k, _, sec in prof if k.startswith(("GEMM", "other nn", "optimizer", "conv2d", "pooling")))
        print(f"kernels (GEMM + conv + pool + nn + optimizer) {100 * kernels / total:.1f}% of the epoch, "
              f"Python and batching {100 * (1 - kernels / total):.1f}%")
    for name in step_names:
        _run_step(name, torch, pct, quick=args.quick, profile=not args.no_profile)
    return 0


def _gpt_case(torch):
    from .gpt_step import gpt_step_case
    return gpt_step_case(torch=torch)


def _lstm_case(torch):
    from .lstm_step import lstm_step_case
    return lstm_step_case(torch=torch)


# text models: name -> (torch or None) -> a StepCase (bench/gpt_step.py); only gpt has a profile
STEP_CASES = {"gpt": _gpt_case, "lstm": _lstm_case}


def _run_step(name: str, torch, pct, *, quick: bool, profile: bool) -> None:
    """The `nnforge train --model NAME` step beside PyTorch eager."""
    from .gpt_step import profile_nnforge, step_seconds
    case = STEP_CASES[name](torch)
    t_n, t_t = step_seconds(case, rounds=1 if quick else 3)
    gflop = case.flops_per_step / 1e9
    rate = lambda t: (f"{t * 1e3:.1f}", f"{case.tokens_per_step / t:,.0f}", fmt(gflop / t), pct(gflop / t))
    rows = [(name, f"{case.tokens_per_step:,}", "nnforge step", *rate(t_n),
             fmt(None if t_t is None else t_n / t_t, ".2f"))]
    if t_t is not None:
        rows.append(("", "", "torch step", *rate(t_t), "-"))
    print_table(["case", "tokens", "loop", "ms/step", "tokens/s", "GFLOP/s", "% peak", "vs torch"], rows,
                title="\n" + "; ".join([case.description, *case.notes])
                + "\n(vs torch = nnforge time / torch time; target <= 0.50)")
    if profile and name == "gpt":
        steps = 20
        prof, total = profile_nnforge(case, steps)
        print_table(["component", "calls/step", "ms/step", "% of step"],
                    [(k, f"{c // steps:,}" if c else "-", f"{s / steps * 1e3:.2f}", f"{100 * s / total:.1f}")
                     for k, c, s in prof] + [("total (instrumented step)", "-", f"{total / steps * 1e3:.2f}", "100.0")],
                    title=f"\nprofile: gpt, {steps} instrumented steps (wrappers add ~1 us per call)")
