"""Fast ops on NumPy float32 arrays, backed by nnforge's own kernels.

Each function validates its inputs in the compiled binding (clear TypeError /
ValueError naming shapes and dtypes), releases the GIL and runs the kernel.
"""
from __future__ import annotations

from typing import Optional

import numpy as np

from . import _core

__all__: list[str] = ["matmul"]


def matmul(a: np.ndarray, b: np.ndarray, out: Optional[np.ndarray] = None, *,
           alpha: float = 1.0, beta: float = 0.0, bias: Optional[np.ndarray] = None,
           activation: Optional[str] = None) -> np.ndarray:
    """out = act(alpha * a @ b + beta * out + bias), float32, on nnforge's own GEMM.

    Shapes: a (m, k) @ b (k, n) -> (m, n); batched a (B, m, k) with b (k, n) or
    (B, k, n), and a (m, k) with b (B, k, n) -> (B, m, n) (a batch of 1 broadcasts,
    as in numpy.matmul). Any strides (a.T, slices, negative steps) are read in place.

    out:        float32, writeable, exactly the result shape, any strides, not
                overlapping a, b or bias; written in place and returned. Without it a
                new C-contiguous array is returned (beta must then be 0).
    beta:       0 means out is not read (its old contents, even NaN, do not matter).
    bias:       float32 (n,), added to every row after the alpha/beta terms.
    activation: None; "relu" max(x, 0); "gelu" or "gelu_tanh"
                0.5x(1 + tanh(sqrt(2/pi)(x + 0.044715x^3))); "gelu_erf" 0.5x(1 + erf(x/sqrt2)).
    k == 0 gives beta * out (+ bias, activation). Inputs are never cast: float64 or
    integer arrays raise TypeError (convert with .astype(numpy.float32)).
    """
    return _core.matmul(a, b, out, alpha=alpha, beta=beta, bias=bias, activation=activation)


# Training kernels other than GEMM (softmax, losses, activations, norms, dropout, ...).
from . import _nn_ops  # noqa: E402
from ._nn_ops import *  # noqa: E402,F401,F403

__all__ += _nn_ops.__all__
