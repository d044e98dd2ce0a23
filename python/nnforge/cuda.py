"""Status of the optional CUDA module.

Importing nnforge never initialises CUDA; the runtime starts on the first call
here that needs a device. Every function answers (False / 0) rather than raising
when there is no CUDA build, no driver or no device.
"""
from __future__ import annotations

from types import ModuleType
from typing import Optional

__all__ = ["built", "device_count", "is_available", "status"]


def _module() -> Optional[ModuleType]:
    try:
        from . import _cuda  # type: ignore[attr-defined]
    except ImportError:
        return None
    return _cuda


def built() -> bool:
    """True when this install includes the CUDA module (nnforge._cuda)."""
    return _module() is not None


def device_count() -> int:
    mod = _module()
    if mod is None:
        return 0
    try:
        return int(mod.device_count())
    except Exception:
        return 0


def is_available() -> bool:
    """True when the CUDA module is built and at least one GPU is usable."""
    return device_count() > 0


def status() -> str:
    mod = _module()
    if mod is None:
        return "not built (no CUDA toolkit at build time, or NNFORGE_CUDA=OFF)"
    n = device_count()
    if n == 0:
        try:
            why = mod.runtime_status()
        except Exception as exc:  # pragma: no cover - defensive
            why = str(exc)
        return f"built, no usable device ({why})"
    names = []
    for i in range(n):
        try:
            names.append(mod.device_properties(i)["name"])
        except Exception:
            names.append("?")
    return f"built, {n} device(s): {', '.join(names)}"
