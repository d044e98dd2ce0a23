"""ISA path, thread count and build facts (what a bug report needs)."""
from __future__ import annotations

import contextlib
import os
from typing import Iterator

from . import _core


def get_isa() -> str:
    """The SIMD path kernels dispatch to now: 'avx512', 'avx2' or 'generic'."""
    return _core.get_isa()


def set_isa(name: str) -> None:
    """Force a SIMD path for this process (ValueError if the CPU lacks it).

    NNFORGE_ISA=avx512|avx2|generic does the same at import time.
    """
    _core.set_isa(name)


def available_isas() -> list[str]:
    """SIMD paths this CPU and OS support, best last."""
    return list(_core.available_isas())


@contextlib.contextmanager
def use_isa(name: str) -> Iterator[None]:
    """Run a block on one ISA path, restoring the previous one afterwards."""
    previous = get_isa()
    set_isa(name)
    try:
        yield
    finally:
        set_isa(previous)


def get_num_threads() -> int:
    return _core.get_num_threads()


def set_num_threads(n: int) -> None:
    """Threads used by every kernel (default: OMP_NUM_THREADS, else the CPUs this
    process may run on, capped by a cgroup CPU quota)."""
    if isinstance(n, bool) or not isinstance(n, int):
        raise TypeError(f"set_num_threads expects an int, got {type(n).__name__}")
    _core.set_num_threads(n)


def config() -> dict:
    """The facts show_config() prints, as a dict."""
    from . import cuda

    info = dict(_core.build_info())
    info.update(
        isa=get_isa(),
        isas_available=available_isas(),
        isa_forced_by_env=os.environ.get("NNFORGE_ISA") or None,
        num_threads=get_num_threads(),
        default_num_threads=_core.default_num_threads(),
        cuda=cuda.status(),
    )
    for name in ("conv_algorithms",):
        fn = getattr(_core, name, None)
        if fn is not None:
            info[name] = fn()
    return info


def show_config() -> dict:
    """Print and return the configuration (ISA, threads, OpenMP, build, CUDA)."""
    from . import __version__

    info = config()
    lines = [f"nnforge {__version__}"]
    for key, value in info.items():
        lines.append(f"  {key:22s} {value}")
    print("\n".join(lines))
    return info
