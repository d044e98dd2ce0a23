"""Fast ops on NumPy float32 arrays, backed by nnforge's own kernels.

Each function validates its inputs in the compiled binding (clear TypeError /
ValueError naming shapes and dtypes), releases the GIL and runs the kernel.
"""
from __future__ import annotations

from . import _core

__all__: list[str] = []

# Training kernels other than GEMM (softmax, losses, activations, norms, dropout, ...).
from . import _nn_ops
from ._nn_ops import *  # noqa: E402,F401,F403

__all__ += _nn_ops.__all__
