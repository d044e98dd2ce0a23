"""Containers written with the layer contract alone (module.py): a layer's tuple of
outputs is the next layer's inputs, and backward hands each layer one gradient per
output it produced.

    Sequential(*layers)          chain (single values, or tuples between layers)
    Parallel(*branches)          every branch sees the same inputs -> tuple of outputs
    Residual(body, projection)   y = x + body(x), or projection(x) + body(x)
"""
from __future__ import annotations

from typing import Optional

from .merge import Add, add_grads
from .model import Model
from .module import Module

__all__ = ["Parallel", "Residual", "Sequential"]


def _call(fn, value):
    """Apply forward/backward to a value: a tuple spreads into several arguments."""
    return fn(*value) if isinstance(value, tuple) else fn(value)


def _check_modules(kind: str, modules) -> None:
    for i, m in enumerate(modules):
        if not isinstance(m, Module):
            raise TypeError(f"{kind} item {i} is {type(m).__name__}, not a Module")


class Sequential(Model):
    """Applies modules in order; backward runs them in reverse. A module returning a
    tuple feeds the next module's several inputs."""

    def __init__(self, *modules: Module):
        super().__init__()
        _check_modules("Sequential", modules)
        for i, m in enumerate(modules):
            setattr(self, str(i), m)

    def __len__(self) -> int:
        return len(self._modules)

    def __getitem__(self, i: int) -> Module:
        return list(self._modules.values())[i]

    def __iter__(self):
        return iter(self._modules.values())

    def append(self, module: Module) -> "Sequential":
        _check_modules("Sequential", (module,))
        setattr(self, str(len(self._modules)), module)
        return self

    def _input_layer(self) -> Module:
        return self[0]._input_layer() if len(self) else self

    def _summary_layers(self):
        return list(self._modules.items())

    def forward(self, *inputs):
        out = inputs[0] if len(inputs) == 1 else inputs
        for m in self._modules.values():
            out = _call(m.forward, out)
        return out

    def backward(self, *grad_outputs):
        grad = grad_outputs[0] if len(grad_outputs) == 1 else grad_outputs
        for m in reversed(self._modules.values()):
            grad = _call(m.backward, grad)
        return grad


class Parallel(Module):
    """Branches side by side: each gets the same inputs; the outputs are a tuple (one
    per branch), and each input's gradient is the sum over the branches."""

    def __init__(self, *branches: Module):
        super().__init__()
        if len(branches) < 1:
            raise ValueError("Parallel needs at least one branch")
        _check_modules("Parallel", branches)
        for i, m in enumerate(branches):
            setattr(self, str(i), m)
        self._n_inputs = None

    def forward(self, *inputs):
        self._n_inputs = len(inputs)
        return tuple(b.forward(*inputs) for b in self._modules.values())

    def backward(self, *grad_outputs):
        if self._n_inputs is None:
            raise RuntimeError("Parallel.backward called before forward")
        if len(grad_outputs) != len(self._modules):
            raise ValueError(f"Parallel.backward expects {len(self._modules)} gradients (one per branch), "
                             f"got {len(grad_outputs)}")
        total = None
        for b, g in zip(self._modules.values(), grad_outputs):
            d = _call(b.backward, g)
            d = d if isinstance(d, tuple) else (d,)
            total = d if total is None else tuple(add_grads(a, c) for a, c in zip(total, d))
        return total[0] if self._n_inputs == 1 else total


class Residual(Module):
    """y = x + body(x) (or projection(x) + body(x) when the body changes the shape); the
    gradient flows through both paths. The merge is an nn.Add, so its shape check and
    error are Add's."""

    def __init__(self, body: Module, projection: Optional[Module] = None):
        super().__init__()
        _check_modules("Residual", (body,) if projection is None else (body, projection))
        self.body = body
        if projection is not None:
            self.projection = projection
        object.__setattr__(self, "_merge", Add(what="Residual skip and body outputs"))

    def forward(self, x):
        y = self.body.forward(x)
        skip = x if "projection" not in self._modules else self.projection.forward(x)
        return self._merge.forward(skip, y)

    def backward(self, grad_out):
        g_skip, g_body = self._merge.backward(grad_out)
        dx = self.body.backward(g_body)
        ds = g_skip if "projection" not in self._modules else self.projection.backward(g_skip)
        return add_grads(ds, dx)
