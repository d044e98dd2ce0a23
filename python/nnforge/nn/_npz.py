"""A bounded reader for .npz archives (numpy.savez's format) from untrusted files.

numpy.load trusts each member's .npy header: a header that declares shape (2**40,)
makes it allocate that much before it notices the member is short. Here every header is
parsed with a size limit and ast.literal_eval (never code), the declared
shape x itemsize must equal the bytes the member holds, and a member must lie inside
the file; only then is anything allocated (at most the file's own size). Object dtypes
(pickles) are refused without reading their payload. The zip CRC of each member is
checked as it is read.
"""
from __future__ import annotations

import ast
import os
import struct
import zipfile
import zlib
from typing import Optional

import numpy as np

__all__ = ["NpzError", "read_npz"]

_MAGIC = b"\x93NUMPY"
_MAX_HEADER_BYTES = 1 << 16  # numpy writes < 200 bytes; its own reader stops at 10000
_PLAIN_KINDS = "biufcUS"     # bool, ints, floats, complex, str, bytes: no objects, no records
_MAX_DEFLATE_RATIO = 1100    # deflate cannot expand more than ~1032x: a bigger claim is a bomb


class NpzError(ValueError):
    """The archive (key None) or one member (key: its name without .npy) cannot be read;
    .reason says why."""

    def __init__(self, key: Optional[str], reason: str):
        super().__init__(reason if key is None else f"entry '{key}' {reason}")
        self.key, self.reason = key, reason


def _read_exact(f, n: int, key: str, what: str) -> bytes:
    data = f.read(n)
    if len(data) != n:
        raise NpzError(key, f"is truncated in its {what}")
    return data


def _parse_header(f, key: str) -> tuple[np.dtype, tuple, bool, int]:
    """(dtype, shape, fortran_order, header bytes) of the .npy member open as f."""
    if _read_exact(f, 6, key, "magic") != _MAGIC:
        raise NpzError(key, "is not a .npy array (bad magic)")
    major, _minor = _read_exact(f, 2, key, "version")
    if major not in (1, 2, 3):
        raise NpzError(key, f"has unknown .npy format version {major}")
    size_bytes = 2 if major == 1 else 4
    (length,) = struct.unpack("<H" if major == 1 else "<I", _read_exact(f, size_bytes, key, "header"))
    if length > _MAX_HEADER_BYTES:
        raise NpzError(key, f"declares a {length}-byte header (more than {_MAX_HEADER_BYTES})")
    raw = _read_exact(f, length, key, "header")
    try:
        header = ast.literal_eval(raw.decode("utf8" if major == 3 else "latin1"))
    except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError, UnicodeDecodeError):
        raise NpzError(key, "has an unparsable .npy header") from None
    if not isinstance(header, dict) or set(header) != {"descr", "shape", "fortran_order"}:
        raise NpzError(key, f"has a .npy header without exactly descr/shape/fortran_order: {str(header)[:80]}")
    descr, shape, fortran = header["descr"], header["shape"], header["fortran_order"]
    if not isinstance(descr, str):
        # a list descr is a structured dtype, which may hold objects: nnforge never writes one
        raise NpzError(key, f"has a structured or unknown dtype {str(descr)[:80]}")
    try:
        dtype = np.dtype(descr)
    except (TypeError, ValueError, SyntaxError):
        raise NpzError(key, f"has an unknown dtype {descr[:80]!r}") from None
    if dtype.hasobject:
        raise NpzError(key, "is a pickled object array; refusing to load it (loading a checkpoint must never "
                            "execute code)")
    if dtype.kind not in _PLAIN_KINDS or dtype.itemsize == 0 or dtype.fields is not None or dtype.subdtype:
        raise NpzError(key, f"has dtype {dtype} (only plain numbers and strings are read)")
    if (not isinstance(shape, tuple) or not isinstance(fortran, bool)
            or not all(isinstance(d, int) and not isinstance(d, bool) and d >= 0 for d in shape)):
        raise NpzError(key, f"has a bad shape {str(shape)[:80]} or fortran_order {fortran!r} in its header")
    return dtype, shape, fortran, 6 + 2 + size_bytes + length


def _read_member(zf: zipfile.ZipFile, info: zipfile.ZipInfo, key: str, file_size: int) -> np.ndarray:
    if info.flag_bits & 0x1:
        raise NpzError(key, "is encrypted")
    if info.compress_type == zipfile.ZIP_STORED:
        if info.compress_size != info.file_size:
            raise NpzError(key, f"is stored with {info.compress_size} bytes but declares {info.file_size}")
    elif info.compress_type == zipfile.ZIP_DEFLATED:
        if info.file_size > _MAX_DEFLATE_RATIO * info.compress_size + 1024:
            raise NpzError(key, f"declares {info.file_size} bytes from {info.compress_size} compressed")
    else:
        raise NpzError(key, f"uses zip compression method {info.compress_type} (stored or deflated only)")
    if info.header_offset + info.compress_size > file_size:
        raise NpzError(key, f"extends past the end of the file ({file_size} bytes): truncated?")
    with zf.open(info) as f:
        dtype, shape, fortran, header_bytes = _parse_header(f, key)
        count = 1
        for d in shape:
            count *= d
        nbytes = count * dtype.itemsize  # Python ints: no overflow
        if header_bytes + nbytes != info.file_size:
            raise NpzError(key, f"declares shape {shape} of {dtype} ({nbytes} bytes) but holds "
                                f"{info.file_size - header_bytes} bytes of data")
        buf = bytearray(nbytes)
        if f.readinto(buf) != nbytes or f.read(1):
            raise NpzError(key, "is truncated")
    arr = np.frombuffer(buf, dtype=dtype).reshape(shape, order="F" if fortran else "C")
    return arr if dtype.isnative else arr.astype(dtype.newbyteorder("="))


def read_npz(path: str) -> dict[str, np.ndarray]:
    """{member name without .npy: array}; NpzError for anything that is not a plain
    .npz archive of plain arrays (a zip's CRC errors included)."""
    file_size = os.path.getsize(path)
    with open(path, "rb") as fh:
        try:
            zf = zipfile.ZipFile(fh)
        except (zipfile.BadZipFile, OSError, ValueError, EOFError, struct.error) as exc:
            raise NpzError(None, f"not a zip archive ({type(exc).__name__}: {exc})") from None
        out: dict[str, np.ndarray] = {}
        with zf:
            for info in zf.infolist():
                name = info.filename
                if not name.endswith(".npy"):
                    raise NpzError(name, "is not a .npy member")
                key = name[:-4]
                if key in out:
                    raise NpzError(key, "appears twice in the archive")
                try:
                    out[key] = _read_member(zf, info, key, file_size)
                except NpzError:
                    raise
                except (zipfile.BadZipFile, OSError, ValueError, EOFError, struct.error, NotImplementedError,
                        RuntimeError, zlib.error) as exc:  # bad CRC, bad local header, bad deflate stream
                    raise NpzError(key, f"cannot be read ({type(exc).__name__}: {exc})") from None
    return out
