"""Compressed checkpoints: nn.checkpoint's pickle-free, all-or-nothing format with the
model's entries stored in a smaller encoding, described by one JSON text entry
(extra/compress):

    {"format": 1, "quantize": "int8" | "bf16" | "none",
     "structured": null | amount,    prune.structured(template, amount) gives the shapes
     "sparse_from": null | s,        prune.to_sparse(model, s) after loading (SparseLinear)
     "encodings": {entry: {"dtype": "float32" | "bfloat16" | "int8", "shape": [...], "bitmap": bool}}}

An entry named in "encodings" is stored as
    dtype "bfloat16"  the float32 weight's bf16 bit patterns (uint16; the weights were
                      rounded to bf16 before saving, so decoding is exact)
    bitmap true       "model/<entry>@bitmap" (np.packbits of "bits != 0", C order) and
                      "model/<entry>@values" (the nonzero elements in order): a pruned
                      weight costs 1 bit per element plus its nonzero values; zeros are
                      compared bit-wise, so -0.0 and NaN survive exactly
and any other entry as nn.checkpoint writes it. int8 models keep quant.checkpoint's
layout entry too (the int8 layers' geometry).

load(path, template) reads and checks the JSON, decodes every encoded entry (checking
its sizes before allocating), then hands the dense entries to quant.checkpoint.load /
nn.checkpoint.load, which check every entry against the template (shrunk first when
"structured"): any fault is one CheckpointError naming the file and the entry, and the
template is never modified.
"""
from __future__ import annotations

import copy
import json
from typing import Optional

import numpy as np

from .. import ops, prune
from .. import quant
from ..nn import checkpoint as _ckpt
from ..nn.checkpoint import CheckpointError
from ..nn.module import Module

__all__ = ["FORMAT", "QUANTIZE", "load", "read_layout", "save"]

FORMAT = 1
QUANTIZE = ("int8", "bf16", "none")
LAYOUT_KEY = "compress"
_DTYPES = {"float32": np.float32, "bfloat16": np.uint16, "int8": np.int8}  # name -> dtype on disk
_MIN_SAVING = 1024  # bytes: a bitmap must save at least this much (each extra .npz member costs ~250 B)


# --- encoding ------------------------------------------------------------------------
def _bits(a: np.ndarray) -> np.ndarray:
    """a's elements as unsigned integers of the same width (zero test that keeps -0.0 / NaN)."""
    return a.view(np.dtype(f"u{a.dtype.itemsize}"))


def _encode(state: dict, bf16_names: set) -> tuple[dict, dict]:
    """(entries to write, encodings) of a state dict: bf16 for `bf16_names`, a bitmap
    where it saves at least _MIN_SAVING bytes."""
    out, encodings = {}, {}
    for name, value in state.items():
        a = np.asarray(value)  # state_dict's own C-contiguous copies (ascontiguousarray would make 0-d 1-d)
        dtype = "bfloat16" if name in bf16_names else a.dtype.name
        if dtype == "bfloat16":
            a = ops.to_bfloat16(a).view(np.uint16)
        keep = _bits(a) != 0 if dtype in _DTYPES else None
        bitmap = keep is not None and (a.size + 7) // 8 + int(keep.sum()) * a.itemsize + _MIN_SAVING < a.nbytes
        if bitmap:
            out[f"{name}@bitmap"] = np.packbits(keep.ravel())
            out[f"{name}@values"] = a[keep]
        else:
            out[name] = a
        if bitmap or dtype == "bfloat16":
            encodings[name] = {"dtype": dtype, "shape": list(a.shape), "bitmap": bool(bitmap)}
    return out, encodings


def save(path, model: Module, *, quantize: str, structured: Optional[float] = None,
         sparse_from: Optional[float] = None, extra: Optional[dict] = None) -> str:
    """Write `model` compressed. quantize: "int8" (model already converted by quant),
    "bf16" (every Parameter stored as bf16: its values must be bf16-exact, as
    compress.steps.quantize leaves them) or "none"; structured: the unit fraction
    prune.structured removed (rebuilds the shapes at load); sparse_from: load serves
    Linear layers at least this sparse by nn.SparseLinear."""
    if quantize not in QUANTIZE:
        raise ValueError(f"quantize must be one of {', '.join(QUANTIZE)}, got {quantize!r}")
    bf16 = {name for name, _ in model.named_parameters()} if quantize == "bf16" else set()
    if bf16:
        for name, p in model.named_parameters():
            if not np.array_equal(ops.to_float32(ops.to_bfloat16(p.data)), p.data, equal_nan=True):
                raise ValueError(f"save: parameter {name} is not bf16-exact; round it first (compress.steps.quantize)")
    state, encodings = _encode(model.state_dict(), bf16)
    layout = {"format": FORMAT, "quantize": quantize, "structured": structured, "sparse_from": sparse_from,
              "encodings": encodings}
    extra = {**(extra or {}), LAYOUT_KEY: json.dumps(layout)}
    if quantize == "int8":
        return quant.checkpoint.save(path, model, extra, state=state)
    return _ckpt.save(path, model, extra=extra, include_rng=False, state=state)


# --- decoding ------------------------------------------------------------------------
def _fraction(value, name: str, *, high_open: bool):
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValueError(f"'{name}' must be a number or null, got {value!r}")
    if not (0.0 <= value < 1.0 if high_open else 0.0 <= value <= 1.0):
        raise ValueError(f"'{name}' must be in [0, {'1)' if high_open else '1]'}, got {value!r}")
    return float(value)


def _checked_encoding(name, e) -> dict:
    if not isinstance(e, dict) or set(e) != {"dtype", "shape", "bitmap"}:
        raise ValueError(f"encoding of '{name}' must be an object with dtype, shape and bitmap, got {e!r}")
    if e["dtype"] not in _DTYPES or not isinstance(e["bitmap"], bool):
        raise ValueError(f"encoding of '{name}' has an unknown dtype {e['dtype']!r} or a non-boolean bitmap")
    shape = e["shape"]
    if not isinstance(shape, list) or not all(isinstance(v, int) and not isinstance(v, bool) and v >= 0
                                              for v in shape):
        raise ValueError(f"encoding of '{name}' has a bad shape {shape!r}")
    return e


def read_layout(path, entries: dict) -> dict:
    """The checked extra/compress JSON of a compressed checkpoint's entries."""
    key = f"extra/{LAYOUT_KEY}"
    if key not in entries:
        raise CheckpointError(f"checkpoint {path} is not a compressed checkpoint (no entry '{key}')")
    try:
        value = entries[key]
        if value.ndim != 0 or value.dtype.kind != "U":
            raise ValueError(f"must be a text scalar, got dtype {value.dtype} shape {value.shape}")
        layout = json.loads(str(value))
        if not isinstance(layout, dict) or set(layout) != {"format", "quantize", "structured", "sparse_from",
                                                           "encodings"}:
            raise ValueError("must be an object with format, quantize, structured, sparse_from and encodings")
        if layout["format"] != FORMAT or isinstance(layout["format"], bool):
            raise ValueError(f"has format {layout['format']!r}; this nnforge reads format {FORMAT}")
        if layout["quantize"] not in QUANTIZE:
            raise ValueError(f"'quantize' must be one of {', '.join(QUANTIZE)}, got {layout['quantize']!r}")
        layout["structured"] = _fraction(layout["structured"], "structured", high_open=True)
        layout["sparse_from"] = _fraction(layout["sparse_from"], "sparse_from", high_open=False)
        if not isinstance(layout["encodings"], dict):
            raise ValueError("'encodings' must be an object")
        for name, e in layout["encodings"].items():
            _checked_encoding(name, e)
    except ValueError as exc:
        raise CheckpointError(f"checkpoint {path} entry '{key}' is not a valid compressed layout: {exc}") from None
    return layout


def _entry(path, entries: dict, key: str, dtype, ndim: int) -> np.ndarray:
    if key not in entries:
        raise CheckpointError(f"checkpoint {path} has no entry '{key}' (its compressed layout names it)")
    a = entries[key]
    if a.dtype != dtype or a.ndim != ndim:
        raise CheckpointError(f"checkpoint {path} entry '{key}' must be a {ndim}-D {np.dtype(dtype)} array, "
                              f"got {a.dtype} of shape {a.shape}")
    return a


def _decoded(path, entries: dict, name: str, e: dict) -> np.ndarray:
    """The dense array of one encoded entry (float32 for bf16), sizes checked first."""
    disk, shape = _DTYPES[e["dtype"]], tuple(e["shape"])
    size = int(np.prod(shape, dtype=object))
    if e["bitmap"]:
        bitmap = _entry(path, entries, f"model/{name}@bitmap", np.uint8, 1)
        values = _entry(path, entries, f"model/{name}@values", disk, 1)
        if bitmap.size != (size + 7) // 8:  # bounds size by the file's own length before allocating
            raise CheckpointError(f"checkpoint {path} entry 'model/{name}@bitmap' has {bitmap.size} bytes; shape "
                                  f"{shape} needs {(size + 7) // 8}")
        keep = np.unpackbits(bitmap)
        if keep[size:].any() or int(keep.sum()) != values.size:
            raise CheckpointError(f"checkpoint {path} entry 'model/{name}@bitmap' marks {int(keep.sum())} "
                                  f"nonzeros (padding bits set?) but 'model/{name}@values' holds {values.size}")
        if np.any(_bits(values) == 0):
            raise CheckpointError(f"checkpoint {path} entry 'model/{name}@values' holds zeros: not a bitmap encoding")
        dense = np.zeros(size, disk)
        dense[keep[:size].astype(bool)] = values
        a = dense.reshape(shape)
    else:
        a = _entry(path, entries, f"model/{name}", disk, len(shape))
        if a.shape != shape:
            raise CheckpointError(f"checkpoint {path} entry 'model/{name}' has shape {a.shape}, its encoding "
                                  f"says {shape}")
    return ops.to_float32(a.view(ops.bfloat16)) if e["dtype"] == "bfloat16" else a


def _decode(path, entries: dict, encodings: dict) -> dict:
    out = dict(entries)
    for name, e in encodings.items():
        dense = _decoded(path, entries, name, e)
        for key in (f"model/{name}@bitmap", f"model/{name}@values"):
            out.pop(key, None)
        out[f"model/{name}"] = dense
    return out


def load(path, template: Module) -> tuple[Module, dict]:
    """(compressed model, extra dict) from `path`, rebuilt on a copy of `template`: the
    float model of the run's architecture (shrunk here when the layout says structured).
    Int8 layers come back as quant's layers, bf16 models with precision "bf16"."""
    path = str(path)
    entries = _ckpt.read(path)
    layout = read_layout(path, entries)
    decoded = _decode(path, entries, layout["encodings"])
    model = copy.deepcopy(template)
    if layout["structured"] is not None:
        try:
            prune.structured(model, layout["structured"])
        except (TypeError, ValueError) as exc:
            raise CheckpointError(f"checkpoint {path}: structured pruning of this architecture failed "
                                  f"({exc}): a different architecture?") from None
    if layout["quantize"] == "int8":
        model, extra = quant.checkpoint.load(path, model, entries=decoded)
    else:
        extra = _ckpt.load(path, model, entries=decoded, restore_rng=False)
    extra.pop(LAYOUT_KEY)
    if layout["sparse_from"] is not None:
        prune.to_sparse(model, layout["sparse_from"])
    return model.eval(), extra
