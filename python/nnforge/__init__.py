"""nnforge: hand-written CPU (and optional CUDA) neural-network kernels for NumPy users.

Public API:
    nnforge.ops        fast ops on NumPy float32 arrays (matmul, optimizer steps, ...)
    nnforge.cuda       optional CUDA module status
    show_config()      ISA level, CPU features, dispatch table, threads, build and CUDA facts
"""
from __future__ import annotations

from . import _wait_policy

_wait_policy.apply()  # before _core loads libgomp: how long its threads spin after a region

from . import _core  # noqa: E402
from ._config import (
    available_isas,
    cpu_features,
    disable_features,
    disabled_features,
    dispatch_table,
    get_isa,
    get_num_threads,
    set_disabled_features,
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
    "cpu_features",
    "cuda",
    "disable_features",
    "disabled_features",
    "dispatch_table",
    "get_isa",
    "get_num_threads",
    "ops",
    "seed",
    "set_disabled_features",
    "set_isa",
    "set_num_threads",
    "show_config",
    "use_isa",
    "__version__",
]
