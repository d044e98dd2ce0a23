"""How long OpenMP threads spin after a parallel region: set before libgomp is loaded.

libgomp reads OMP_WAIT_POLICY and GOMP_SPINCOUNT once, when it is loaded. With neither set,
each idle thread spins GOMP_SPINCOUNT=300,000 iterations after a region before it sleeps,
holding its core all that while. That is harmless in a loop of nnforge calls, but a user
loop that calls NumPy between them finds the second core taken by nnforge's spinning
thread while OpenBLAS wants both (`nnforge bench mixed` measures it). nnforge therefore
sets a shorter GOMP_SPINCOUNT at import (still long enough to bridge the few microseconds
of Python between two nnforge calls), unless

- the user set OMP_WAIT_POLICY or GOMP_SPINCOUNT (their choice stands), or
- libgomp is already loaded (e.g. PyTorch, which bundles one under the same soname and
  then serves nnforge too): too late to change, and not ours to change.

NNFORGE_SPINCOUNT=N picks another count (0 = sleep at once; "default" = libgomp's own).
A process that imports torch after nnforge shares nnforge's libgomp, so the count then
applies to torch's pool as well. show_config() reports what took effect.
"""
from __future__ import annotations

import os

# Iterations of libgomp's spin loop (one `pause` each). Chosen with `nnforge bench mixed
# --policies spin=N,...` and `nnforge bench train` on Zen 4 (README, "Threads and other
# libraries").
DEFAULT_SPINCOUNT = 3000

_state = {"source": "not applied", "spincount": None}


def _libgomp_loaded() -> bool:
    try:
        with open("/proc/self/maps") as maps:
            return any("libgomp" in line for line in maps)
    except OSError:  # not Linux: nothing to find, nothing to change
        return False


def apply() -> None:
    """Set GOMP_SPINCOUNT for this process if nobody chose one; call before loading _core."""
    if "OMP_WAIT_POLICY" in os.environ or "GOMP_SPINCOUNT" in os.environ:
        _state.update(source="user (OMP_WAIT_POLICY / GOMP_SPINCOUNT)",
                      spincount=os.environ.get("GOMP_SPINCOUNT"))
        return
    if _libgomp_loaded():
        _state.update(source="libgomp already loaded (e.g. by torch): its settings stand")
        return
    wanted = os.environ.get("NNFORGE_SPINCOUNT", "").strip()
    if wanted == "default":
        _state.update(source="NNFORGE_SPINCOUNT=default (libgomp's own)")
        return
    if wanted and not wanted.isdigit():
        raise ValueError(f"NNFORGE_SPINCOUNT must be a count >= 0 or 'default', got {wanted!r}")
    count = wanted or str(DEFAULT_SPINCOUNT)
    os.environ["GOMP_SPINCOUNT"] = count
    _state.update(source="NNFORGE_SPINCOUNT" if wanted else "nnforge default", spincount=count)


def describe() -> str:
    """One line for show_config()."""
    count = _state["spincount"]
    return f"GOMP_SPINCOUNT={count} ({_state['source']})" if count is not None else _state["source"]
