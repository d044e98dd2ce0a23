"""Named model builders: the library's list of ready-made models (mlp, cnn, ...).

Model families register here (nn/models.py, nn/cnn_models.py); the command line
(`nnforge train --model NAME`) and anyone else read the list. The library never
imports the command line.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

__all__ = ["ModelSpec", "build_model", "get_model_spec", "model_names", "register_model"]

_LAYOUTS = ("flat", "image", "text")


@dataclass
class ModelSpec:
    build: Callable  # (input_shape without batch, num_classes, **kwargs) -> nnforge.nn.Module
    layout: str = "flat"  # the input it takes: "flat" (N, features), "image" (N, C, H, W) or "text" (N, T) ids
    defaults: dict = field(default_factory=dict)  # training defaults: epochs / batch_size / optimizer / lr
    help: str = ""


_MODELS: dict[str, ModelSpec] = {}


def register_model(name: str, spec: ModelSpec) -> None:
    """Add (or replace) a named model."""
    if not isinstance(name, str) or not name:
        raise TypeError(f"model name must be a non-empty str, got {name!r}")
    if not isinstance(spec, ModelSpec):
        raise TypeError(f"register_model needs a ModelSpec, got {type(spec).__name__}")
    if spec.layout not in _LAYOUTS:
        raise ValueError(f"ModelSpec.layout must be one of {_LAYOUTS}, got {spec.layout!r}")
    if not callable(spec.build):
        raise TypeError(f"ModelSpec.build must be callable, got {type(spec.build).__name__}")
    _MODELS[name] = spec


def model_names() -> list[str]:
    return sorted(_MODELS)


def get_model_spec(name: str) -> ModelSpec:
    try:
        return _MODELS[name]
    except KeyError:
        raise ValueError(f"unknown model {name!r}; choose one of {', '.join(model_names())}") from None


def build_model(name: str, input_shape, num_classes: int, **kwargs):
    """A fresh model: get_model_spec(name).build(input_shape, num_classes, **kwargs)."""
    return get_model_spec(name).build(input_shape, num_classes, **kwargs)
