"""Checkpoints of quantised models: nn.checkpoint's pickle-free, all-or-nothing format,
plus the layout (which layers are int8, with their geometry) as a JSON text entry.

load(path, float_model) rebuilds the quantised layers at their saved positions in a
float model of the same architecture, then loads every array through
nn.checkpoint.load (dtype must match exactly: int8 stays int8). Any fault is one
CheckpointError naming the file and entry, and the model is left untouched."""
from __future__ import annotations

import copy
import json
from typing import Optional

import numpy as np

from ..nn import checkpoint as _ckpt
from ..nn.checkpoint import CheckpointError
from ..nn.conv import Conv2d
from ..nn.layers import Linear
from ..nn.module import Module
from .modules import QuantizedConv2d, QuantizedLinear

__all__ = ["load", "save"]

_LAYOUT_KEY = "quant_layout"


def _describe(m: Module) -> Optional[dict]:
    if isinstance(m, QuantizedLinear):
        return {"kind": "linear", "shape": list(m.weight_q.shape), "bias": m.has_bias, "static": m.static,
                "activation": m.activation}
    if isinstance(m, QuantizedConv2d):
        return {"kind": "conv2d", "shape": list(m.weight_q.shape), "bias": m.has_bias, "activation": m.activation,
                "stride": list(m.stride), "padding": list(m.padding), "dilation": list(m.dilation)}
    return None


def save(path, model: Module, extra: Optional[dict] = None, *, state: Optional[dict] = None) -> str:
    """Write a quantised model (weights, scales, zero points, float layers) to path
    (state: its entries in an encoded form, as nn.checkpoint.save takes)."""
    layout = {name: d for name, m in model.named_modules() if (d := _describe(m)) is not None}
    return _ckpt.save(path, model, extra={**(extra or {}), _LAYOUT_KEY: json.dumps(layout)}, include_rng=False,
                      state=state)


def _shell(d: dict) -> Module:
    """A quantised layer of the described geometry (zeros: the load fills every buffer)."""
    shape = tuple(int(v) for v in d["shape"])
    if any(v < 1 for v in shape):
        raise ValueError(f"bad weight shape {shape}")
    bias = np.zeros(shape[0 if d["kind"] == "conv2d" else 1], np.float32) if d["bias"] else None
    act = d["activation"]
    if d["kind"] == "linear":
        static = {"input_scale": 1.0, "input_zero_point": 0} if d["static"] else {}
        return QuantizedLinear(np.zeros(shape, np.int8), np.ones(shape[1], np.float32), bias, activation=act,
                               **static)
    if d["kind"] == "conv2d":
        return QuantizedConv2d(np.zeros(shape, np.int8), np.ones(shape[0], np.float32), bias, input_scale=1.0,
                               input_zero_point=0, stride=d["stride"], padding=d["padding"], dilation=d["dilation"],
                               activation=act)
    raise ValueError(f"unknown layer kind {d['kind']!r}")


def _rebuilt(path: str, model: Module, layout_text) -> Module:
    try:
        layout = json.loads(str(layout_text))
        if not isinstance(layout, dict):
            raise ValueError("not a JSON object")
        shells = {name: _shell(d) for name, d in layout.items()}
    except (ValueError, KeyError, TypeError) as exc:
        raise CheckpointError(f"checkpoint {path} entry 'extra/{_LAYOUT_KEY}' is not a valid quantised "
                              f"layout ({type(exc).__name__}: {exc})") from None
    out = copy.deepcopy(model)
    modules = dict(out.named_modules())
    for name, shell in shells.items():
        parent_name, _, child = name.rpartition(".")
        parent = modules.get(parent_name)
        if parent is None or child not in parent._modules:
            raise CheckpointError(f"checkpoint {path} quantises layer '{name}', which this model does not have "
                                  f"(a different architecture?)")
        original = parent._modules[child]
        float_kind = Conv2d if isinstance(shell, QuantizedConv2d) else Linear
        if not isinstance(original, float_kind) or original.weight.shape != shell.weight_q.shape:
            got = getattr(getattr(original, "weight", None), "shape", None)
            raise CheckpointError(f"checkpoint {path} holds an int8 {float_kind.__name__} of weight shape "
                                  f"{shell.weight_q.shape} at '{name}', where this model has "
                                  f"{type(original).__name__} (weight shape {got}): a different architecture")
        parent._modules[child] = shell
        object.__setattr__(parent, child, shell)
    return out


def _check_scales(path: str, model: Module, entries: dict) -> None:
    """Every int8 layer's float scales finite and > 0, checked before the load writes
    anything (the layers pack their weight from them once loaded)."""
    for name, m in model.named_modules():
        if isinstance(m, (QuantizedLinear, QuantizedConv2d)):
            for field in ("weight_scale", "input_scale"):
                v = entries.get(f"model/{name}.{field}")
                if v is not None and v.dtype.kind == "f" and not np.all(np.isfinite(v) & (v > 0)):
                    raise CheckpointError(f"checkpoint {path} entry 'model/{name}.{field}' must be finite and > 0")


def load(path, float_model: Module, *, entries: Optional[dict] = None) -> tuple[Module, dict]:
    """(quantised model rebuilt on a copy of float_model's architecture, extra dict).
    entries: the file's entries already read (and decoded) by the caller."""
    if entries is None:
        entries = _ckpt.read(path)
    key = f"extra/{_LAYOUT_KEY}"
    if key not in entries:
        raise CheckpointError(f"checkpoint {path} is not a quantised checkpoint (no entry '{key}')")
    model = _rebuilt(str(path), float_model, entries[key])
    _check_scales(str(path), model, entries)
    extra = _ckpt.load(path, model, entries=entries, restore_rng=False)
    extra.pop(_LAYOUT_KEY)
    return model.eval(), extra
