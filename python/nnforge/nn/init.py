"""Parameter initialisers drawing from nnforge's generator (nnforge.seed(n) makes
them reproducible). Each returns a new float32 array of `shape`.

Fan convention: a 2-D shape is nnforge's Linear layout (in_features, out_features),
so fan_in = shape[0]; a shape with 3+ dims is a convolution weight
(out_channels, in_channels, *kernel): fan_in = in_channels * prod(kernel).
Pass fan_in / fan_out explicitly for anything else.
"""
from __future__ import annotations

import math
from typing import Optional, Sequence

import numpy as np

from .._args import float_arg, int_arg, shape_arg
from .._random import generator

__all__ = ["calculate_gain", "fans", "kaiming_normal", "kaiming_uniform", "ones", "uniform",
           "xavier_normal", "xavier_uniform", "zeros"]


def _shape(shape) -> tuple[int, ...]:
    dims = shape_arg((shape,) if isinstance(shape, (int, np.integer)) else shape, "shape")
    if not dims:
        raise ValueError(f"shape must be a non-empty tuple of non-negative ints, got {shape!r}")
    return dims


def fans(shape: Sequence[int]) -> tuple[int, int]:
    """(fan_in, fan_out) under the convention in the module docstring."""
    shape = _shape(shape)
    if len(shape) == 1:
        return shape[0], shape[0]
    if len(shape) == 2:
        return shape[0], shape[1]
    receptive = int(np.prod(shape[2:]))
    return shape[1] * receptive, shape[0] * receptive


def calculate_gain(nonlinearity: str, param: Optional[float] = None) -> float:
    """Recommended gain (same table as torch.nn.init.calculate_gain)."""
    if nonlinearity in ("linear", "identity", "sigmoid") or nonlinearity.startswith("conv"):
        return 1.0
    if nonlinearity == "tanh":
        return 5.0 / 3.0
    if nonlinearity == "relu":
        return math.sqrt(2.0)
    if nonlinearity == "leaky_relu":
        slope = 0.01 if param is None else float_arg(param, "param", op="calculate_gain")
        return math.sqrt(2.0 / (1.0 + slope ** 2))
    if nonlinearity == "selu":
        return 3.0 / 4.0
    raise ValueError(f"unsupported nonlinearity {nonlinearity!r}")


def _fan(shape, mode, fan_in, fan_out) -> int:
    fi, fo = fans(shape)
    fi = fi if fan_in is None else int_arg(fan_in, "fan_in", min=1)
    fo = fo if fan_out is None else int_arg(fan_out, "fan_out", min=1)
    if mode not in ("fan_in", "fan_out"):
        raise ValueError(f"mode must be 'fan_in' or 'fan_out', got {mode!r}")
    fan = fi if mode == "fan_in" else fo
    if fan <= 0:
        raise ValueError(f"cannot initialise shape {tuple(shape)}: {mode} is {fan}")
    return fan


def uniform(shape, low: float, high: float) -> np.ndarray:
    low, high = float_arg(low, "low", op="uniform"), float_arg(high, "high", op="uniform")
    if low > high:
        raise ValueError(f"uniform: low must be <= high, got low={low!r}, high={high!r}")
    return generator().uniform(low, high, size=_shape(shape)).astype(np.float32)


def zeros(shape) -> np.ndarray:
    return np.zeros(_shape(shape), dtype=np.float32)


def ones(shape) -> np.ndarray:
    return np.ones(_shape(shape), dtype=np.float32)


def kaiming_uniform(shape, a: float = 0.0, mode: str = "fan_in", nonlinearity: str = "leaky_relu", *,
                    fan_in: Optional[int] = None, fan_out: Optional[int] = None) -> np.ndarray:
    """U(-b, b) with b = gain * sqrt(3 / fan) (He et al. 2015)."""
    bound = calculate_gain(nonlinearity, a) * math.sqrt(3.0 / _fan(shape, mode, fan_in, fan_out))
    return uniform(shape, -bound, bound)


def kaiming_normal(shape, a: float = 0.0, mode: str = "fan_in", nonlinearity: str = "leaky_relu", *,
                   fan_in: Optional[int] = None, fan_out: Optional[int] = None) -> np.ndarray:
    """N(0, std^2) with std = gain / sqrt(fan)."""
    std = calculate_gain(nonlinearity, a) / math.sqrt(_fan(shape, mode, fan_in, fan_out))
    return (generator().standard_normal(_shape(shape)) * std).astype(np.float32)


def xavier_uniform(shape, gain: float = 1.0, *, fan_in: Optional[int] = None,
                   fan_out: Optional[int] = None) -> np.ndarray:
    """U(-b, b) with b = gain * sqrt(6 / (fan_in + fan_out)) (Glorot & Bengio 2010)."""
    gain = float_arg(gain, "gain", low=0.0)
    fi = _fan(shape, "fan_in", fan_in, fan_out)
    fo = _fan(shape, "fan_out", fan_in, fan_out)
    bound = gain * math.sqrt(6.0 / (fi + fo))
    return uniform(shape, -bound, bound)


def xavier_normal(shape, gain: float = 1.0, *, fan_in: Optional[int] = None,
                  fan_out: Optional[int] = None) -> np.ndarray:
    gain = float_arg(gain, "gain", low=0.0)
    fi = _fan(shape, "fan_in", fan_in, fan_out)
    fo = _fan(shape, "fan_out", fan_in, fan_out)
    std = gain * math.sqrt(2.0 / (fi + fo))
    return (generator().standard_normal(_shape(shape)) * std).astype(np.float32)
