"""Timing and table helpers shared by every benchmark family.

Method: warm-up first, then the median of repeats, peers timed in the same
process and run so that ratios hold while absolute times drift.
"""
from __future__ import annotations

import statistics
import time
from typing import Callable, Optional, Sequence

import numpy as np


def median_seconds(fn: Callable[[], object], *, repeats: int = 7, warmup: int = 2,
                   min_time: float = 0.05, settle: float = 0.0) -> float:
    """Median wall time of fn(); each sample loops fn enough to last >= min_time.

    settle: seconds to sleep first, so thread pools of the previously timed library
    (OpenBLAS, PyTorch, libgomp spin-wait after each call) park and stop stealing a core.
    """
    if settle > 0:
        time.sleep(settle)
    for _ in range(warmup):
        fn()
    t0 = time.perf_counter()
    fn()
    one = max(time.perf_counter() - t0, 1e-7)
    inner = max(1, int(min_time / one))
    samples = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        for _ in range(inner):
            fn()
        samples.append((time.perf_counter() - t0) / inner)
    return statistics.median(samples)


def time_rounds(fns: Sequence[dict], *, rounds: int = 1, repeats: int = 7, settle: float = 0.0,
                timer: Callable = median_seconds, prime: bool = False) -> list[dict]:
    """Best median per (case, library) over `rounds` sweeps of the table.

    fns: per case, {key: callable}. Each key is one timing phase (its warm-up and all its
    repeats, after `settle` s idle). Rounds sweep the whole table again and each entry
    keeps its best median: a burst of foreign load on a shared machine can stall
    multi-threaded calls (barrier waits on a preempted core) for whole seconds.
    prime: run every callable once first (some libraries take a faster path once a
    related call has run in the process).
    """
    if prime:
        for case in fns:
            for fn in case.values():
                fn()
    best = [{} for _ in fns]
    for _ in range(rounds):
        for case, b in zip(fns, best):
            for key, fn in case.items():
                t = timer(fn, repeats=repeats, settle=settle)
                b[key] = min(t, b.get(key, t))
    return best


def torch_or_none():
    """PyTorch if installed (never a dependency), set to the same thread count as nnforge."""
    try:
        import torch  # type: ignore
    except Exception:
        return None
    import nnforge

    torch.set_num_threads(nnforge.get_num_threads())
    return torch


def triad_gbs(n: int = 20_000_000, repeats: int = 5) -> float:
    """STREAM-style triad a = b + s*c through nnforge's kernel if present, else NumPy.

    Bytes counted: read b, c and write a = 12 bytes per element.
    """
    import nnforge

    b = np.random.default_rng(0).random(n, dtype=np.float32)
    c = np.random.default_rng(1).random(n, dtype=np.float32)
    a = np.empty_like(b)
    triad = getattr(nnforge._core, "stream_triad", None)
    if triad is not None:
        fn = lambda: triad(a, b, c, 3.0)
    else:
        def fn():
            np.multiply(c, np.float32(3.0), out=a)
            np.add(a, b, out=a)
    t = median_seconds(fn, repeats=repeats, warmup=1)
    return 12.0 * n / t / 1e9


def fmt(value: Optional[float], spec: str = ".1f") -> str:
    return "-" if value is None else format(value, spec)


def print_table(headers: Sequence[str], rows: Sequence[Sequence[str]], title: str = "") -> str:
    widths = [max(len(str(h)), *(len(str(r[i])) for r in rows)) if rows else len(str(h))
              for i, h in enumerate(headers)]
    line = "  ".join(str(h).rjust(w) for h, w in zip(headers, widths))
    out = []
    if title:
        out.append(title)
    out.append(line)
    out.append("-" * len(line))
    for r in rows:
        out.append("  ".join(str(c).rjust(w) for c, w in zip(r, widths)))
    text = "\n".join(out)
    print(text, flush=True)
    return text


def limit_numpy_threads() -> str:
    """Give NumPy's BLAS pool nnforge's thread count (through threadpoolctl, when installed),
    so that `nnforge --threads 1 bench gemm` times one OpenBLAS thread too; a header note."""
    import nnforge

    try:
        from threadpoolctl import threadpool_info, threadpool_limits
    except ImportError:
        return "numpy blas threads: not limited (pip install threadpoolctl, or set OPENBLAS_NUM_THREADS)"
    threadpool_limits(limits=nnforge.get_num_threads(), user_api="blas")
    counts = sorted({p["num_threads"] for p in threadpool_info() if p.get("user_api") == "blas"})
    return f"numpy blas threads={','.join(map(str, counts)) or '?'}"


def machine_line() -> str:
    import nnforge

    return (f"isa={nnforge.get_isa()} threads={nnforge.get_num_threads()} "
            f"numpy={np.__version__}")


class CategoryTimer:
    """Wraps functions on a module object to sum their wall time by category."""

    def __init__(self):
        self.seconds: dict[str, float] = {}
        self.calls: dict[str, int] = {}
        self._undo = []

    def wrap(self, owner, name: str, category: str) -> None:
        fn = getattr(owner, name)
        seconds, calls = self.seconds, self.calls
        seconds.setdefault(category, 0.0)
        calls.setdefault(category, 0)

        def timed(*args, **kwargs):
            t0 = time.perf_counter()
            try:
                return fn(*args, **kwargs)
            finally:
                seconds[category] += time.perf_counter() - t0
                calls[category] += 1

        had = name in vars(owner) if hasattr(owner, "__dict__") else True
        setattr(owner, name, timed)
        self._undo.append((owner, name, fn, had))

    def restore(self) -> None:
        for owner, name, fn, had in reversed(self._undo):
            if had:
                setattr(owner, name, fn)
            else:
                delattr(owner, name)
        self._undo.clear()


def add_timing_arguments(parser, repeats: int = 5) -> None:
    """--repeats / --rounds / --settle, the timing knobs every table bench shares."""
    parser.add_argument("--repeats", type=int, default=repeats, help="timed repeats (median reported)")
    parser.add_argument("--rounds", type=int, default=2,
                        help="sweeps over the table; each (case, library) keeps its best median")
    parser.add_argument("--settle", type=float, default=0.15,
                        help="idle seconds before each library's timing phase (pools park)")
