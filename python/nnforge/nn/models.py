"""The MLP builder, registered as model "mlp" (nn/registry.py)."""
from __future__ import annotations

import numpy as np

from .containers import Sequential
from .layers import Linear
from .registry import ModelSpec, register_model

__all__ = ["build_mlp"]


def build_mlp(input_shape, num_classes: int, hidden=(256, 128)) -> Sequential:
    """in-256-128-classes with ReLU fused into each hidden Linear; input_shape excludes the batch."""
    sizes = (int(np.prod(input_shape)), *hidden)
    layers = [Linear(a, b, activation="relu") for a, b in zip(sizes[:-1], sizes[1:])]
    return Sequential(*layers, Linear(sizes[-1], num_classes))


register_model("mlp", ModelSpec(build_mlp, "flat", {"epochs": 20, "batch_size": 32, "optimizer": "adam",
                                                     "lr": 1e-3}, "MLP in-256-128-classes, ReLU"))
