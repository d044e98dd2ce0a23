"""Input checks the layers share (one wording for every layer's errors)."""
from __future__ import annotations

from typing import Optional

import numpy as np

from .._args import int_arg


def _positive_int(value, name: str) -> int:
    """A layer size (features, channels, groups): an int >= 1 (nnforge._args conventions)."""
    return int_arg(value, name, min=1)


def _float32_input(x, layer: str) -> np.ndarray:
    if not isinstance(x, np.ndarray):
        raise TypeError(f"{layer} expects a numpy.ndarray, got {type(x).__name__}")
    if x.dtype != np.float32:
        raise TypeError(f"{layer} expects float32 input, got dtype {x.dtype} with shape {x.shape}; "
                        f"convert it with x.astype(numpy.float32)")
    return x


def _nchw(x, layer: str, channels: Optional[int] = None) -> np.ndarray:
    x = _float32_input(x, layer)
    if x.ndim != 4 or (channels is not None and x.shape[1] != channels):
        want = f"(N, {channels}, H, W)" if channels is not None else "(N, C, H, W)"
        raise ValueError(f"{layer} expected input of shape {want}, got {x.shape}")
    return x


def _check_grad(grad_out, shape, layer: str) -> np.ndarray:
    if not isinstance(grad_out, np.ndarray) or grad_out.shape != shape:
        got = grad_out.shape if isinstance(grad_out, np.ndarray) else type(grad_out).__name__
        raise ValueError(f"{layer}.backward expects grad_out of shape {shape} (the forward output), got {got}")
    return grad_out


def _need_forward(cache, layer: str):
    if cache is None:
        raise RuntimeError(f"{layer}.backward called before forward")
    return cache
