"""Model-level quantisation: quantize_dynamic, static PTQ (prepare / calibrate /
convert) and QAT (prepare_qat / fit / convert). Each walks the model's module tree and
swaps matching layers in place of the original child (same name, same position)."""
from __future__ import annotations

import copy
from typing import Callable, Iterable

from ..nn.conv import Conv2d
from ..nn.layers import Linear
from ..nn.module import Module
from .fake_quantize import QATWrapper
from .modules import QuantizedConv2d, QuantizedLinear
from .observers import MinMaxObserver

__all__ = ["Observed", "calibrate", "convert", "prepare", "prepare_qat", "quantize_dynamic"]


def _replace_children(model: Module, make: Callable[[Module], Module | None]) -> Module:
    """Replace every descendant `child` for which make(child) returns a module (not
    descending into replaced ones). The parent's child table keeps its order."""
    for _, parent in list(model.named_modules()):
        for name, child in list(parent._modules.items()):
            new = make(child)
            if new is not None:
                parent._modules[name] = new          # same key: same position (Sequential order)
                object.__setattr__(parent, name, new)
    return model


def _target(model: Module, inplace: bool) -> Module:
    return model if inplace else copy.deepcopy(model)


def quantize_dynamic(model: Module, *, layers=(Linear,), inplace: bool = False) -> Module:
    """Linear layers -> QuantizedLinear (per-channel int8 weights, per-row dynamic uint8
    inputs). Returns a copy (or model itself with inplace=True), in eval mode."""
    for kind in layers:
        if kind is not Linear:
            raise ValueError(f"quantize_dynamic quantises Linear layers only, got {kind!r} in layers")
    return _replace_children(_target(model, inplace),
                             lambda m: QuantizedLinear.from_float(m) if isinstance(m, Linear) else None).eval()


class Observed(Module):
    """A Linear or Conv2d whose inputs an observer watches (forward only)."""

    def __init__(self, layer: Module, observer):
        super().__init__()
        self.layer, self.observer = layer, observer

    def forward(self, x):
        self.observer.observe(x)
        return self.layer.forward(x)

    def backward(self, grad_out):
        raise RuntimeError("a prepared model is for calibration only: calibrate(model, batches), then convert")


def prepare(model: Module, observer: Callable[[], object] = MinMaxObserver, *, inplace: bool = False) -> Module:
    """Wrap every Linear and Conv2d (groups=1) so `observer()` instances record their
    input ranges; run calibrate(), then convert()."""
    def wrap(m):
        if isinstance(m, Linear) or (isinstance(m, Conv2d) and m.groups == 1):
            return Observed(m, observer())
        return None
    return _replace_children(_target(model, inplace), wrap)


def calibrate(model: Module, batches: Iterable) -> Module:
    """Run the prepared model (eval mode) over float32 batches to record input ranges."""
    model.eval()
    for batch in batches:
        model.forward(batch)
    return model


def prepare_qat(model: Module, *, inplace: bool = False) -> Module:
    """Wrap every Linear and Conv2d (groups=1) in a QATWrapper (fake-quantised input and
    weight, straight-through gradients); train with fit, then convert()."""
    def wrap(m):
        if isinstance(m, Linear) or (isinstance(m, Conv2d) and m.groups == 1):
            return QATWrapper(m)
        return None
    return _replace_children(_target(model, inplace), wrap)


def _quantized(layer: Module, input_range) -> Module:
    cls = QuantizedConv2d if isinstance(layer, Conv2d) else QuantizedLinear
    return cls.from_float(layer, input_range)


def convert(model: Module, *, inplace: bool = False) -> Module:
    """A prepared-and-calibrated or QAT-trained model -> QuantizedLinear / QuantizedConv2d
    with static input scales (observer ranges, or the FakeQuantize ranges). Eval mode."""
    def swap(m):
        if isinstance(m, Observed):
            return _quantized(m.layer, m.observer.range())
        if isinstance(m, QATWrapper):
            if int(m.input_fq.seen) == 0:
                raise ValueError("convert: a QAT layer has seen no training batch (fit the model first)")
            return _quantized(m.layer, (float(m.input_fq.range_min), float(m.input_fq.range_max)))
        return None
    return _replace_children(_target(model, inplace), swap).eval()
