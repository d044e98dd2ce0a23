"""Checks for load_state_dict (modules, optimizers, schedules): one wording, and the
rule that a load is planned (every entry checked) before anything is assigned.

Each object's `_plan_load(state)` raises StateEntryError (a ValueError naming the entry)
or returns a commit function that only assigns already-checked values, so a caller that
loads several objects (nn.checkpoint.load) plans them all and then commits them all.
"""
from __future__ import annotations

import math
from typing import Callable, Iterable

import numpy as np

__all__ = ["StateEntryError", "check_keys", "float_entry", "int_entry", "array_entry"]

Commit = Callable[[], None]


class StateEntryError(ValueError):
    """A state entry is missing, unexpected or holds a bad value; .key names it."""

    def __init__(self, key: str, reason: str):
        super().__init__(f"entry '{key}' {reason}")
        self.key, self.reason = key, reason


def check_keys(state, expected: Iterable[str], owner: str) -> None:
    """Exactly the expected entries: the first missing (or else unexpected) one is named."""
    expected = list(expected)
    wanted = set(expected)
    missing = [k for k in expected if k not in state]
    if missing:
        more = f" (and {len(missing) - 1} more: {missing[1:4]})" if len(missing) > 1 else ""
        raise StateEntryError(missing[0], f"is missing: {owner} needs it{more}")
    unexpected = sorted(str(k) for k in state if k not in wanted)
    if unexpected:
        more = f" (and {len(unexpected) - 1} more)" if len(unexpected) > 1 else ""
        raise StateEntryError(unexpected[0], f"is unexpected: {owner} has no such entry{more} (saved from a "
                                             f"different model or optimizer?)")


def _scalar(state, key: str) -> np.ndarray:
    value = np.asarray(state[key])
    if value.ndim != 0:
        raise StateEntryError(key, f"must be a scalar, got an array of shape {value.shape}")
    return value


def int_entry(state, key: str, minimum: int = 0) -> int:
    """A 0-d integer (never bool, never a float) >= minimum."""
    value = _scalar(state, key)
    if value.dtype.kind not in "iu":
        raise StateEntryError(key, f"must be an integer, got dtype {value.dtype}")
    out = int(value)
    if out < minimum:
        raise StateEntryError(key, f"must be >= {minimum}, got {out}")
    return out


def float_entry(state, key: str, check: Callable[[float], bool], domain: str) -> float:
    """A finite 0-d real number (integers accepted, bool refused) for which check() holds."""
    value = _scalar(state, key)
    if value.dtype.kind not in "iuf":
        raise StateEntryError(key, f"must be a real number, got dtype {value.dtype}")
    out = float(value)
    if not math.isfinite(out) or not check(out):
        raise StateEntryError(key, f"must be a finite number {domain}, got {out!r}")
    return out


def array_entry(state, key: str, like: np.ndarray, casting: str) -> np.ndarray:
    """An array of like's shape whose dtype casts to like's under `casting`."""
    src = np.asarray(state[key])
    if src.shape != like.shape:
        raise StateEntryError(key, f"has shape {src.shape}, expected {like.shape}")
    if not np.can_cast(src.dtype, like.dtype, casting=casting):
        raise StateEntryError(key, f"has dtype {src.dtype}, expected {like.dtype}")
    return src
