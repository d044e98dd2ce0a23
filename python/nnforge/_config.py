"""ISA level, CPU features, the dispatch table, threads and build facts (what a bug
report needs)."""
from __future__ import annotations

import contextlib
import os
from typing import Iterable, Iterator

from . import _core, _wait_policy
from ._args import int_arg


def get_isa() -> str:
    """The ISA level kernels dispatch to now: 'avx512', 'avx2' or 'generic'."""
    return _core.get_isa()


def set_isa(name: str) -> None:
    """Force an ISA level for this process (ValueError if the CPU lacks it).

    NNFORGE_ISA=avx512|avx2|generic does the same at import time.
    """
    _core.set_isa(name)


def available_isas() -> list[str]:
    """ISA levels this CPU and OS support, best last."""
    return list(_core.available_isas())


@contextlib.contextmanager
def use_isa(name: str) -> Iterator[None]:
    """Run a block on one ISA level, restoring the previous one afterwards."""
    previous = get_isa()
    set_isa(name)
    try:
        yield
    finally:
        set_isa(previous)


def cpu_features() -> dict[str, bool]:
    """Every CPU feature flag nnforge reads (cpuid, with the OS-state checks)."""
    return dict(_core.cpu_features())


def known_features() -> list[str]:
    """Extension features a dispatch slot may need; the names the disable calls take."""
    return list(_core.known_features())


def _feature_names(names: Iterable[str], what: str) -> list[str]:
    if isinstance(names, str):
        raise TypeError(f"{what} expects a list of feature names, got the str {names!r}")
    out = list(names)
    for n in out:
        if not isinstance(n, str):
            raise TypeError(f"{what}: feature names are str, got {type(n).__name__}")
    return out


def set_disabled_features(names: Iterable[str]) -> None:
    """Replace the set of extension features kernels may not use (e.g.
    ['avx512_bf16']): their dispatch slots fall back to the next usable one.
    ValueError for an unknown name (nothing changes then).

    NNFORGE_DISABLE=avx512_bf16,avx512_vnni does the same at import time.
    """
    _core.set_disabled_features(_feature_names(names, "set_disabled_features"))


def disabled_features() -> list[str]:
    return list(_core.disabled_features())


@contextlib.contextmanager
def disable_features(*names: str) -> Iterator[None]:
    """Run a block with these extension features disabled too, then restore."""
    previous = disabled_features()
    set_disabled_features(sorted(set(previous) | set(_feature_names(names, "disable_features"))))
    try:
        yield
    finally:
        set_disabled_features(previous)


def dispatch_table() -> list[dict]:
    """One dict per family/op: 'family', 'op', 'active' (the slot it runs now),
    'registered' (every slot with an implementation) and 'variant' (GEMM)."""
    return [dict(row) for row in _core.dispatch_table()]


def get_num_threads() -> int:
    return _core.get_num_threads()


def set_num_threads(n: int) -> None:
    """Threads used by every kernel (default: OMP_NUM_THREADS, else the CPUs this
    process may run on, capped by a cgroup CPU quota)."""
    _core.set_num_threads(int_arg(n, "n", min=1, op="set_num_threads"))


def config() -> dict:
    """The facts show_config() prints, as a dict."""
    from . import cuda

    info = dict(_core.build_info())
    info.update(
        isa=get_isa(),
        isas_available=available_isas(),
        isa_forced_by_env=os.environ.get("NNFORGE_ISA") or None,
        cpu_features=cpu_features(),
        disabled_features=disabled_features(),
        gemm_variant=_core.get_gemm_variant(),
        gemm_threading=_core.get_gemm_threading(),
        dispatch=dispatch_table(),
        num_threads=get_num_threads(),
        default_num_threads=_core.default_num_threads(),
        omp_wait=_wait_policy.describe(),
        cuda=cuda.status(),
    )
    return info


def _dispatch_lines(rows: list[dict]) -> list[str]:
    names = [f"{r['family']}.{r['op']}" for r in rows]
    width = max((len(n) for n in names), default=0)
    lines = []
    for name, r in zip(names, rows):
        line = f"    {name:{width}s}  {r['active'] or 'none':11s}  [{' '.join(r['registered'])}]"
        if r["variant"]:
            line += f"  variant {r['variant']}"
        lines.append(line)
    return lines


def show_config() -> dict:
    """Print and return the configuration (ISA level, CPU features, dispatch table,
    threads, OpenMP, build, CUDA)."""
    from . import __version__

    info = config()
    lines = [f"nnforge {__version__}"]
    for key, value in info.items():
        if key == "cpu_features":
            value = " ".join(f"{k}={'yes' if v else 'no'}" for k, v in value.items())
        elif key == "disabled_features":
            value = ", ".join(value) or "none"
        elif key == "dispatch":
            lines.append(f"  {key:22s} family.op, active slot, [registered slots]")
            lines.extend(_dispatch_lines(value))
            continue
        lines.append(f"  {key:22s} {value}")
    print("\n".join(lines))
    return info
