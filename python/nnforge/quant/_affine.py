"""The quantisation arithmetic every quant module shares (one definition, so a
fake-quantised forward and the converted model round identically).

Activations: asymmetric uint8, q = clip(round(x / scale) + zero_point, 0, 255), with the
range widened to contain 0 (so 0 and ReLU outputs are exact). Weights: symmetric int8
per output channel, q = clip(round(w / scale), -127, 127), scale = max|w| / 127.
round() is NumPy's half-to-even of the exact quotient (float64 division of float32
operands is exact enough to round as the true quotient would), the kernels' rule
(csrc/cpu/quant/quant.h), so fake-quantised codes are the ones the int8 layers compute.
"""
from __future__ import annotations

import numpy as np

U8_MIN, U8_MAX = 0, 255
S8_MAX = 127


def activation_params(lo, hi) -> tuple[np.ndarray, np.ndarray]:
    """(scale float32, zero_point int32) for the range [lo, hi] (scalars or arrays)."""
    lo = np.minimum(np.asarray(lo, np.float64), 0.0)
    hi = np.maximum(np.asarray(hi, np.float64), 0.0)
    span = hi - lo
    scale = np.where(span > 0, span / (U8_MAX - U8_MIN), 1.0).astype(np.float32)
    zero = np.clip(np.round(-lo / scale.astype(np.float64)), U8_MIN, U8_MAX).astype(np.int32)
    return scale, zero


def quantize_u8(x: np.ndarray, scale, zero_point) -> np.ndarray:
    """uint8 codes of float32 x under (scale, zero_point) broadcast against x."""
    q = np.round(np.asarray(x, np.float64) / np.asarray(scale, np.float64)) + np.asarray(zero_point, np.float64)
    return np.clip(q, U8_MIN, U8_MAX).astype(np.uint8)


def dequantize_u8(q: np.ndarray, scale, zero_point) -> np.ndarray:
    return ((q.astype(np.float32) - np.asarray(zero_point, np.float32)) * np.asarray(scale, np.float32))


def weight_scales(w: np.ndarray, channel_axis: int) -> np.ndarray:
    """Per-channel symmetric scales (float32, one per index of channel_axis)."""
    axes = tuple(a for a in range(w.ndim) if a != channel_axis % w.ndim)
    amax = np.abs(w).max(axis=axes) if axes else np.abs(w)
    return np.where(amax > 0, amax / S8_MAX, 1.0).astype(np.float32)


def quantize_s8(w: np.ndarray, scales: np.ndarray, channel_axis: int) -> np.ndarray:
    shape = [1] * w.ndim
    shape[channel_axis % w.ndim] = -1
    q = np.round(np.asarray(w, np.float64) / scales.reshape(shape).astype(np.float64))
    return np.clip(q, -S8_MAX, S8_MAX).astype(np.int8)


def dequantize_s8(q: np.ndarray, scales: np.ndarray, channel_axis: int) -> np.ndarray:
    shape = [1] * q.ndim
    shape[channel_axis % q.ndim] = -1
    return q.astype(np.float32) * scales.reshape(shape)
