"""INT8 quantisation (re-exported by nnforge.ops): quantize / dequantize, packed int8
weights (QuantizedWeight), qlinear, qconv2d and the exact integer GEMM qgemm_s32.

Conventions (csrc/cpu/quant/quant.h):
- q = clamp(round_half_even(x / scale) + zero_point, dtype range); the quotient is exact
  (double), so a float64 reference reproduces every code. +-inf saturate; NaN is a
  ValueError (no integer code stands for it). scale must be finite and > 0.
- Activations are uint8 with a zero point; weights int8 symmetric (zero point 0).
  Dynamic qlinear quantises each row of x over [min(row, 0), max(row, 0)] in 255 steps
  (scale = range / 255 rounded to float32, zero_point = rint(-lo / scale); an all-zero
  row gets scale 1, zero point 0); dynamic qconv2d does the same over the whole x.
- The int8 x uint8 products are summed exactly in int32 (K <= 65536), so every ISA path
  and thread count gives the same bits. Epilogue in float32:
  y = act(float32(acc - zp * col_sum) * (x_scale * w_scale) + bias).
"""
from __future__ import annotations

from typing import Optional

import numpy as np

from . import _core
from ._args import as_ndarray, axis_arg, c_contiguous, choice_arg, flag_arg, int_pair

__all__ = ["QuantizedWeight", "dequantize", "qconv2d", "qgemm_s32", "qlinear", "quantize", "quantize_conv_weight",
           "quantize_weight"]

_RANGES = {"int8": (-128, 127), "uint8": (0, 255)}


def _view(shape, axis, n_params: int, op: str):
    """(outer, c, inner) of a C-order array of `shape` for per-tensor (axis None) or
    per-channel parameters along axis."""
    size = int(np.prod(shape, dtype=np.int64))
    if axis is None:
        if n_params != 1:
            raise ValueError(f"{op}: {n_params} scales / zero points need an axis (per-channel)")
        return 1, 1, size
    ax = axis_arg(axis, len(shape), op=op)
    if shape[ax] != n_params:
        raise ValueError(f"{op}: axis {ax} of shape {tuple(shape)} has {shape[ax]} entries but {n_params} "
                         f"scales / zero points were given")
    outer = int(np.prod(shape[:ax], dtype=np.int64))
    return outer, int(shape[ax]), int(np.prod(shape[ax + 1:], dtype=np.int64))


def _params(scale, zero_point, op: str):
    """scale -> float32 1-D, zero_point -> int32 1-D of the same length."""
    s = np.asarray(scale)
    z = np.asarray(zero_point)
    if s.dtype.kind not in "fiu" or s.dtype == np.bool_:
        raise TypeError(f"{op}: scale must be a real number or array, got dtype {s.dtype}")
    if z.dtype.kind not in "iu" or z.dtype == np.bool_:
        raise TypeError(f"{op}: zero_point must be an int or integer array, got dtype {z.dtype}")
    if s.ndim > 1 or z.ndim > 1:
        raise ValueError(f"{op}: scale and zero_point must be scalars or 1-D, got shapes {s.shape} and {z.shape}")
    s, z = np.atleast_1d(s), np.atleast_1d(z)
    if z.size == 1 and s.size > 1:
        z = np.broadcast_to(z, s.shape)
    if s.shape != z.shape:
        raise ValueError(f"{op}: scale {s.shape} and zero_point {z.shape} disagree in length")
    if np.any(np.abs(z.astype(np.int64)) > 2**16):
        raise ValueError(f"{op}: zero_point out of range: {z}")
    return np.ascontiguousarray(s, np.float32), np.ascontiguousarray(z, np.int32)


def _into(result, out, op: str):
    if out is None:
        return result
    o = as_ndarray(out, "out")
    if o.shape != result.shape or o.dtype != result.dtype:
        raise ValueError(f"{op}: out must be {result.dtype} with shape {result.shape}, got {o.dtype} with shape "
                         f"{o.shape}")
    if not o.flags.writeable:
        raise ValueError(f"{op}: out is read-only")
    o[...] = result
    return out


def quantize(x, scale, zero_point=0, dtype: str = "int8", *, axis: Optional[int] = None, out=None):
    """q = clamp(round_half_even(x / scale) + zero_point) as int8 or uint8 (float32 x of
    any shape). Scalars: per-tensor; 1-D arrays: per-channel along `axis`. NaN in x is a
    ValueError (nothing written); +-inf saturate."""
    dtype = choice_arg(dtype, "dtype", tuple(_RANGES), op="quantize")
    xa = c_contiguous(x, "x")
    s, z = _params(scale, zero_point, "quantize")
    outer, c, inner = _view(xa.shape, axis, s.size, "quantize")
    return _into(_core.quantize(xa, outer, c, inner, s, z, dtype == "uint8"), out, "quantize")


def dequantize(q, scale, zero_point=0, *, axis: Optional[int] = None, out=None):
    """(q - zero_point) * scale as float32 (int8 or uint8 q), the exact product rounded once."""
    qa = c_contiguous(q, "q")
    s, z = _params(scale, zero_point, "dequantize")
    outer, c, inner = _view(qa.shape, axis, s.size, "dequantize")
    return _into(_core.dequantize(qa, outer, c, inner, s, z), out, "dequantize")


class QuantizedWeight:
    """An int8 symmetric weight (N, K) (Linear layout, out x in) in the GEMM's packed layout.

    Fields (read-only arrays): data int8 (packed, csrc/cpu/quant/qgemm_kernel.h), scales
    (N,) float32, col_sums (N,) int32 (sum over k of each row's codes: the uint8 zero-point
    compensation), shape (N, K). Build with quantize_weight, from_int8 (codes a layer keeps)
    or from_arrays (a packed weight saved with to_arrays).
    """

    __slots__ = ("_data", "_scales", "_col_sums", "_shape")

    def __init__(self, data, scales, col_sums, shape):
        for a in (data, scales, col_sums):
            a.flags.writeable = False
        object.__setattr__(self, "_data", data)
        object.__setattr__(self, "_scales", scales)
        object.__setattr__(self, "_col_sums", col_sums)
        object.__setattr__(self, "_shape", shape)

    def __setattr__(self, name, value):
        raise AttributeError("QuantizedWeight is immutable")

    data = property(lambda self: self._data)
    scales = property(lambda self: self._scales)
    col_sums = property(lambda self: self._col_sums)
    shape = property(lambda self: self._shape)

    def __repr__(self):
        return f"QuantizedWeight(shape={self._shape})"

    def int8(self) -> np.ndarray:
        """The (N, K) int8 codes."""
        return _core.qweight_unpack(self._data, *self._shape)

    def dequantize(self) -> np.ndarray:
        """(N, K) float32 = codes * scales[:, None]."""
        return dequantize(self.int8(), self._scales, 0, axis=0)

    def to_arrays(self) -> dict:
        """Plain arrays for np.savez: data, scales, col_sums, shape (int64 (2,))."""
        return {"data": self._data.copy(), "scales": self._scales.copy(), "col_sums": self._col_sums.copy(),
                "shape": np.asarray(self._shape, np.int64)}

    @classmethod
    def from_arrays(cls, data, scales, col_sums, shape) -> "QuantizedWeight":
        """Rebuild from to_arrays(); every field is checked (dtypes, lengths, finite positive
        scales, padding bytes zero, col_sums equal to the codes' sums)."""
        shp = np.asarray(shape)
        if shp.shape != (2,) or shp.dtype.kind not in "iu" or np.any(shp < 1):
            raise ValueError(f"QuantizedWeight: shape must be two positive ints, got {shape!r}")
        n, k = int(shp[0]), int(shp[1])
        d, s, cs = (np.asarray(as_ndarray(a, nm)) for a, nm in ((data, "data"), (scales, "scales"),
                                                               (col_sums, "col_sums")))
        for a, nm, dt in ((d, "data", np.int8), (s, "scales", np.float32), (cs, "col_sums", np.int32)):
            if a.dtype != dt:
                raise TypeError(f"QuantizedWeight: {nm} must be {np.dtype(dt).name}, got {a.dtype}")
        if cs.shape != (n,):
            raise ValueError(f"QuantizedWeight: col_sums {cs.shape} must have shape ({n},)")
        codes = _core.qweight_unpack(np.ascontiguousarray(d), n, k)  # checks data's length
        w = cls.from_int8(codes, s)
        if not np.array_equal(w.data, d):
            raise ValueError("QuantizedWeight: data has nonzero padding (not a packed weight of this shape)")
        if not np.array_equal(w.col_sums, cs):
            raise ValueError("QuantizedWeight: col_sums do not match the codes in data")
        return w

    @classmethod
    def from_int8(cls, codes, scales) -> "QuantizedWeight":
        """Pack (N, K) int8 codes (any strides) with their (N,) float32 scales (finite, > 0):
        how a layer holding its codes in a layout-free form builds the weight it reuses."""
        c, s = as_ndarray(codes, "codes"), np.asarray(as_ndarray(scales, "scales"))
        for a, nm, dt in ((c, "codes", np.int8), (s, "scales", np.float32)):
            if a.dtype != dt:
                raise TypeError(f"QuantizedWeight: {nm} must be {np.dtype(dt).name}, got {a.dtype}")
        if c.ndim != 2 or c.size == 0:
            raise ValueError(f"QuantizedWeight: codes must be a non-empty 2-D (N, K) array, got shape {c.shape}")
        if s.shape != (c.shape[0],):
            raise ValueError(f"QuantizedWeight: scales {s.shape} must have shape ({c.shape[0]},) for codes "
                             f"{c.shape}")
        if not np.all(np.isfinite(s) & (s > 0)):
            raise ValueError("QuantizedWeight: scales must be finite and > 0")
        return _pack(c, np.array(s), c.shape)

    def __copy__(self):
        return self  # immutable: copies may share it

    def __deepcopy__(self, memo):
        return self


def _pack(codes, scales, shape) -> QuantizedWeight:
    data, sums = _core.qweight_pack(codes)
    return QuantizedWeight(data, np.ascontiguousarray(scales, np.float32), sums, shape)


def quantize_weight(w, *, per_channel: bool = True, symmetric: bool = True) -> QuantizedWeight:
    """w (N, K) float32 -> QuantizedWeight: scale = max|w_row| / 127 per row (per_channel) or
    max|w| / 127 for all rows; an all-zero row (or tensor) gets scale 1 (its codes are 0).
    Only symmetric int8 weights are supported (the kernels assume weight zero point 0)."""
    op = "quantize_weight"
    per_channel = flag_arg(per_channel, "per_channel", op=op)
    if not flag_arg(symmetric, "symmetric", op=op):
        raise ValueError(f"{op}: only symmetric int8 weights are supported (symmetric=True)")
    wa = c_contiguous(w, "w")
    if wa.dtype != np.float32:
        raise TypeError(f"{op}: w must be float32, got {wa.dtype} with shape {wa.shape}")
    if wa.ndim != 2 or wa.size == 0:
        raise ValueError(f"{op}: w must be a non-empty 2-D (N, K) array, got shape {wa.shape}")
    if not np.all(np.isfinite(wa)):
        raise ValueError(f"{op}: w must be finite")
    amax = np.abs(wa).max(axis=1) if per_channel else np.full(wa.shape[0], np.abs(wa).max(), np.float32)
    scales = np.where(amax > 0, amax.astype(np.float64) / 127.0, 1.0).astype(np.float32)
    scales = np.where(scales > 0, scales, np.finfo(np.float32).smallest_subnormal).astype(np.float32)
    codes = quantize(wa, scales, 0, "int8", axis=0)
    return _pack(codes, scales, wa.shape)


def quantize_conv_weight(w, *, per_channel: bool = True) -> QuantizedWeight:
    """w (K, C, R, S) float32 -> the QuantizedWeight of its (K, C*R*S) reshape (one scale
    per output channel); qconv2d takes it with weight_shape=w.shape."""
    wa = c_contiguous(w, "w")
    if wa.ndim != 4:
        raise ValueError(f"quantize_conv_weight: w must be (K, C, R, S), got shape {wa.shape}")
    return quantize_weight(wa.reshape(wa.shape[0], -1), per_channel=per_channel)


def qgemm_s32(a, b) -> np.ndarray:
    """Exact a (M, K) uint8 x b (K, N) int8 -> int32 (M, N) (any strides; K <= 65536)."""
    return _core.qgemm_s32(as_ndarray(a, "a"), as_ndarray(b, "b"))


def _weight(qweight, op: str) -> QuantizedWeight:
    if not isinstance(qweight, QuantizedWeight):
        raise TypeError(f"{op}: qweight must be a QuantizedWeight (quantize_weight), got {type(qweight).__name__}")
    return qweight


def qlinear(x, qweight: QuantizedWeight, *, bias=None, activation=None, input_scale=None,
            input_zero_point=None, out=None) -> np.ndarray:
    """y (..., N) = act(dequant(quant_u8(x) @ codes.T) + bias) for x (..., K) float32 (any
    strides; finite). Dynamic (input_scale None): per-row uint8 quantisation; static:
    the calibrated per-tensor input_scale / input_zero_point (in [0, 255])."""
    op = "qlinear"
    w = _weight(qweight, op)
    xa = as_ndarray(x, "x")
    if xa.dtype != np.float32:
        raise TypeError(f"{op}: x must be float32, got {xa.dtype} with shape {xa.shape}")
    if xa.ndim < 1:
        raise ValueError(f"{op}: x must have at least one dimension (..., K), got shape {xa.shape}")
    lead = xa.shape[:-1]
    x2 = xa if xa.ndim == 2 else xa.reshape(-1, xa.shape[-1])
    y = _core.qlinear(x2, w.data, w.scales, w.col_sums, w.shape[0], w.shape[1], c_contiguous(bias, "bias"),
                      activation, input_scale, input_zero_point)
    return _into(y.reshape(*lead, w.shape[0]), out, op)


def qconv2d(x, qweight: QuantizedWeight, weight_shape, *, bias=None, stride=1, padding=0, dilation=1, groups=1,
            activation=None, input_scale=None, input_zero_point=None) -> np.ndarray:
    """NCHW float32 y = act(conv(quant_u8(x), codes) + bias) with the (K, C, R, S) weight of
    quantize_conv_weight; padding reads the input zero point (real 0). groups=1 only."""
    op = "qconv2d"
    w = _weight(qweight, op)
    if groups != 1:
        raise ValueError(f"{op}: only groups=1 is supported, got groups={groups!r}")
    shape = tuple(int(v) for v in weight_shape)
    if len(shape) != 4 or shape[0] != w.shape[0] or shape[1] * shape[2] * shape[3] != w.shape[1]:
        raise ValueError(f"{op}: weight_shape {weight_shape!r} does not match the QuantizedWeight {w.shape}")
    return _core.qconv2d(c_contiguous(x, "x"), w.data, w.scales, w.col_sums, list(shape),
                         int_pair(stride, "stride", op=op), int_pair(padding, "padding", op=op),
                         int_pair(dilation, "dilation", op=op), c_contiguous(bias, "bias"), activation,
                         input_scale, input_zero_point)
