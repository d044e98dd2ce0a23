"""Process-wide random state for initialisation, dropout and shuffling.

nnforge.seed(n) makes parameter initialisation, dropout masks and data shuffling
reproducible; without it each process starts from fresh OS entropy.
"""
from __future__ import annotations

import numpy as np

_generator = np.random.default_rng()


def seed(n: int) -> None:
    """Seed nnforge's generator (initialisation, dropout, shuffling)."""
    global _generator
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 0:
        raise ValueError(f"seed must be a non-negative int, got {n!r}")
    _generator = np.random.default_rng(int(n))


def generator() -> np.random.Generator:
    """The generator every nnforge component draws from."""
    return _generator


def next_seed() -> int:
    """A 63-bit seed drawn from the generator (for kernels that take an integer seed)."""
    return int(_generator.integers(0, 2**63 - 1))
