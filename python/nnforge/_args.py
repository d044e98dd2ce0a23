"""Argument parsing shared by every op wrapper and layer: one error convention.

TypeError: the argument has the wrong type (a float where an int is needed, a bool, a
string, a list where an array is needed, a dtype we do not convert). ValueError: the
type is right but the value is not (a pair of length 3, a stride of 0, a negative
padding, an axis out of range, a NaN or a number outside its domain). Nothing is
silently "fixed": 2.0 is not an int, True is not a size and 1.0 is not a flag's True.

Scalars: `int_arg` (sizes, seeds: Python or NumPy integers, never bool or float),
`float_arg` (real numbers, never bool or str; NaN always refused, inf only where the
domain says so; bounds open or closed), `flag_arg` (bool or numpy.bool_ only),
`choice_arg` (one of a few strings).

Arrays: `as_ndarray` is the one place where non-NumPy arrays enter. It takes, without a
copy, a NumPy array, any object exporting DLPack on the CPU (torch / JAX CPU tensors) or
the buffer protocol; an object on another device is a TypeError naming that device.
The C++ bindings call it too (csrc/bindings/array_arg.h), so the rule is written once.
"""
from __future__ import annotations

import math
import numbers
from typing import Optional, Sequence, Tuple, Union

import numpy as np

__all__ = ["as_ndarray", "int_arg", "int_pair", "padding4", "shape_arg", "axis_arg", "float_arg",
           "flag_arg", "choice_arg", "c_contiguous", "rows_layout"]

IntOrPair = Union[int, Sequence[int]]

# DLPack's DLDeviceType codes (dlpack.h) and the names users know them by.
_DL_DEVICE_NAMES = {1: "cpu", 2: "cuda", 3: "cuda_host", 4: "opencl", 7: "vulkan", 8: "metal",
                    9: "vpi", 10: "rocm", 11: "rocm_host", 13: "cuda_managed", 14: "oneapi"}
_HOST_DEVICES = (1, 3, 11)  # plain, CUDA-pinned and ROCm-pinned host memory are CPU-readable

# Sizes at or beyond this would not fit the kernels' int64 arithmetic once multiplied.
_MAX_INT_ARG = 2 ** 62


def _type_name(v) -> str:
    return type(v).__name__


def _is_int(v) -> bool:
    return isinstance(v, numbers.Integral) and not isinstance(v, (bool, np.bool_))


def int_arg(v, name: str, *, min: Optional[int] = None, op: str = "") -> int:
    """An int (Python or NumPy integer, never bool or float) >= min."""
    where = f"{op}: " if op else ""
    if not _is_int(v):
        raise TypeError(f"{where}{name} must be an int, got {_type_name(v)} {v!r}")
    i = int(v)
    if min is not None and i < min:
        raise ValueError(f"{where}{name} must be >= {min}, got {i}")
    if abs(i) >= _MAX_INT_ARG:
        raise ValueError(f"{where}{name} {i} is out of range")
    return i


def float_arg(v, name: str, *, low: Optional[float] = None, high: Optional[float] = None,
              low_open: bool = False, high_open: bool = False, allow_inf: bool = False, op: str = "") -> float:
    """A real number (Python or NumPy int / float, never bool, str or complex) in the domain
    low <= v <= high (< where *_open; None = unbounded). NaN is always refused; +-inf only
    with allow_inf (and then still against the bounds)."""
    where = f"{op}: " if op else ""
    if isinstance(v, (bool, np.bool_)) or not isinstance(v, numbers.Real):
        raise TypeError(f"{where}{name} must be a real number, got {_type_name(v)} {v!r}")
    f = float(v)
    if math.isnan(f) or (math.isinf(f) and not allow_inf):
        raise ValueError(f"{where}{name} must be a finite number, got {f!r}")
    if low is not None and not (f > low if low_open else f >= low) or \
            high is not None and not (f < high if high_open else f <= high):
        lo = "(-inf" if low is None else f"{'(' if low_open else '['}{low:g}"
        hi = "inf)" if high is None else f"{high:g}{')' if high_open else ']'}"
        raise ValueError(f"{where}{name} must be in {lo}, {hi}, got {f!r}")
    return f


def flag_arg(v, name: str, *, op: str = "") -> bool:
    """A bool (or numpy.bool_); 0, 1, None and strings are refused, not truth-tested."""
    if not isinstance(v, (bool, np.bool_)):
        where = f"{op}: " if op else ""
        raise TypeError(f"{where}{name} must be a bool, got {_type_name(v)} {v!r}")
    return bool(v)


def choice_arg(v, name: str, choices: Sequence[str], *, op: str = "") -> str:
    """One of `choices` (strings)."""
    where = f"{op}: " if op else ""
    if not isinstance(v, str):
        raise TypeError(f"{where}{name} must be one of {list(choices)}, got {_type_name(v)} {v!r}")
    if v not in choices:
        raise ValueError(f"{where}{name} must be one of {list(choices)}, got {v!r}")
    return v


def int_pair(v, name: str, *, min: Optional[int] = None, op: str = "") -> Tuple[int, int]:
    """An int or a length-2 sequence of ints -> (h, w)."""
    where = f"{op}: " if op else ""
    if isinstance(v, (tuple, list)):
        if len(v) != 2:
            raise ValueError(f"{where}{name} must be an int or a pair of ints, got {v!r} (length {len(v)})")
        return int_arg(v[0], name, min=min, op=op), int_arg(v[1], name, min=min, op=op)
    if not _is_int(v):
        raise TypeError(f"{where}{name} must be an int or a pair of ints, got {_type_name(v)} {v!r}")
    i = int_arg(v, name, min=min, op=op)
    return i, i


def padding4(v, name: str = "padding", *, min: Optional[int] = 0, op: str = "") -> Tuple[int, int, int, int]:
    """int, (ph, pw) or (top, bottom, left, right) -> (top, bottom, left, right), each >= min
    (min=None leaves the value rule to the kernel's own shape check)."""
    where = f"{op}: " if op else ""
    if isinstance(v, (tuple, list)):
        if len(v) == 2:
            ph, pw = (int_arg(e, name, min=min, op=op) for e in v)
            return ph, ph, pw, pw
        if len(v) == 4:
            t, b, l, r = (int_arg(e, name, min=min, op=op) for e in v)
            return t, b, l, r
        raise ValueError(f"{where}{name} must be an int, (ph, pw) or (top, bottom, left, right), "
                         f"got {v!r} (length {len(v)})")
    if not _is_int(v):
        raise TypeError(f"{where}{name} must be an int, (ph, pw) or (top, bottom, left, right), "
                        f"got {_type_name(v)} {v!r}")
    p = int_arg(v, name, min=min, op=op)
    return p, p, p, p


def shape_arg(v, name: str, *, ndim: Optional[int] = None, op: str = "") -> Tuple[int, ...]:
    """A sequence of non-negative ints (a shape tuple); floats are refused, not truncated."""
    where = f"{op}: " if op else ""
    if isinstance(v, (str, bytes)) or not isinstance(v, (tuple, list, np.ndarray)) and not hasattr(v, "__len__"):
        raise TypeError(f"{where}{name} must be a sequence of ints, got {_type_name(v)} {v!r}")
    dims = tuple(v)
    for d in dims:
        if not _is_int(d):
            raise TypeError(f"{where}{name} must be a sequence of ints, got {v!r} "
                            f"(entry {d!r} is {_type_name(d)})")
    if ndim is not None and len(dims) != ndim:
        raise ValueError(f"{where}{name} must have {ndim} entries, got {v!r}")
    return tuple(int_arg(d, name, min=0, op=op) for d in dims)


def axis_arg(axis, ndim: int, *, op: str = "") -> int:
    """An axis in [-ndim, ndim) -> its non-negative value."""
    where = f"{op}: " if op else ""
    if not _is_int(axis):
        raise TypeError(f"{where}axis must be an int, got {_type_name(axis)} {axis!r}")
    if not -ndim <= int(axis) < ndim:
        raise ValueError(f"{where}axis {int(axis)} is out of range for an array with {ndim} dimensions")
    return int(axis) % ndim


def as_ndarray(obj, name: str):
    """A NumPy view of `obj` (no copy): ndarray, CPU DLPack exporter, or buffer.

    Anything else (lists, scalars, GPU arrays) is a TypeError; dtypes are not converted.
    The view shares the exporter's memory and keeps it alive, so an `out=` tensor
    receives the result. A torch tensor that requires grad is refused (DLPack would
    not export it; reading it behind autograd's back is the caller's decision).
    """
    if isinstance(obj, np.ndarray):
        return obj
    if hasattr(obj, "__dlpack_device__") and hasattr(obj, "__dlpack__"):
        dev_type, dev_id = obj.__dlpack_device__()
        dev_type = int(dev_type)
        if dev_type not in _HOST_DEVICES:
            dev = _DL_DEVICE_NAMES.get(dev_type, f"DLPack device type {dev_type}")
            raise TypeError(f"{name} is a {_type_name(obj)} on device {dev}:{int(dev_id)}; nnforge's CPU "
                            f"ops take arrays in host memory (copy it to the CPU first)")
        if getattr(obj, "requires_grad", False) is True:
            raise TypeError(f"{name} is a {_type_name(obj)} with requires_grad=True; pass {name}.detach() "
                            f"(nnforge's kernels are not recorded by autograd)")
        try:
            return np.from_dlpack(obj)
        except (BufferError, RuntimeError, TypeError) as e:
            raise TypeError(f"{name} ({_type_name(obj)}, dtype {getattr(obj, 'dtype', '?')}) could not be "
                            f"shared through DLPack without a copy: {e}") from None
    if hasattr(obj, "__cuda_array_interface__"):
        raise TypeError(f"{name} is a {_type_name(obj)} on a CUDA device; nnforge's CPU ops take arrays "
                        f"in host memory (copy it to the CPU first)")
    if isinstance(obj, (bytes, bytearray, memoryview)) or _has_buffer(obj):
        try:
            return np.asarray(memoryview(obj))
        except (TypeError, ValueError) as e:
            raise TypeError(f"{name} ({_type_name(obj)}) exports a buffer NumPy cannot view: {e}") from None
    raise TypeError(f"{name} must be a numpy.ndarray, a CPU tensor exporting DLPack (torch, JAX) or an "
                    f"object with the buffer protocol, got {_type_name(obj)}")


def _has_buffer(obj) -> bool:
    try:
        memoryview(obj)
    except TypeError:
        return False
    return True


def c_contiguous(a, name: str = "x"):
    """An input as a C-order ndarray: `a` itself when it already is one, else a copy of
    its NumPy view (inputs only: an out= argument is never copied). None stays None."""
    if a is None:
        return None
    if not isinstance(a, np.ndarray):
        a = as_ndarray(a, name)
    if not a.flags.c_contiguous:
        return np.ascontiguousarray(a)
    return a


def rows_layout(a, name: str = "x"):
    """The row kernels' layout rule: C-contiguous, or a 2-D view with unit stride along
    its last axis (rows may be padded apart); anything else is copied to C order.
    (csrc/bindings/bind_nn.cpp's row_layout reads exactly these without a copy.)"""
    if a is None:
        return None
    if not isinstance(a, np.ndarray):
        a = as_ndarray(a, name)
    if not a.flags.c_contiguous:
        if not (a.ndim == 2 and (a.shape[1] <= 1 or a.strides[1] == a.itemsize)):
            return np.ascontiguousarray(a)
    return a
