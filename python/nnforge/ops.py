"""Fast ops on NumPy float32 arrays, backed by nnforge's own kernels.

Each function validates its inputs in the compiled binding (clear TypeError /
ValueError naming shapes and dtypes), releases the GIL and runs the kernel.
"""
from __future__ import annotations

from . import _core

__all__: list[str] = []
