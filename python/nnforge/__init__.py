"""nnforge: hand-written CPU (and optional CUDA) neural-network kernels for NumPy users.

Public API:
    nnforge.ops        fast ops on NumPy float32 arrays (matmul, optimizer steps, ...)
    nnforge.cuda       optional CUDA module status
    show_config()      ISA path, threads, build and CUDA facts for bug reports
"""
from __future__ import annotations

from . import _core
from ._config import (
    available_isas,
    get_isa,
    get_num_threads,
    set_isa,
    set_num_threads,
    show_config,
    use_isa,
)
from . import cuda, ops
from ._random import seed

__version__ = "0.1.0"

__all__ = [
    "available_isas",
    "cuda",
    "get_isa",
    "get_num_threads",
    "ops",
    "seed",
    "set_isa",
    "set_num_threads",
    "show_config",
    "use_isa",
    "__version__",
]
