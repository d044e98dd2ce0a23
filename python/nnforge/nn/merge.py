"""Layers that join or split values (the multi-input / multi-output side of the layer
contract, module.py): Identity, Add (n -> 1), Concat (n -> 1), Split (1 -> n), Fork
(1 -> n copies). They hold no parameters; gradients are returned, never written into
an incoming gradient (callers may pass one array to several layers)."""
from __future__ import annotations

from typing import Sequence, Union

import numpy as np

from .._args import axis_arg, int_arg
from ._checks import _need_forward
from .module import Module

__all__ = ["Add", "Concat", "Fork", "Identity", "Split", "add_grads"]


def add_grads(a, b):
    """a + b for gradients of the same value reached along two paths (None = no gradient)."""
    if a is None:
        return b
    if b is None:
        return a
    return a + b


def _arrays(inputs, layer: str) -> tuple:
    for i, x in enumerate(inputs):
        if not isinstance(x, np.ndarray):
            raise TypeError(f"{layer} input {i} must be a numpy.ndarray, got {type(x).__name__}")
    return inputs


class Identity(Module):
    """Returns its inputs unchanged (a skip path for Parallel)."""

    def forward(self, *inputs):
        return inputs[0] if len(inputs) == 1 else inputs

    def backward(self, *grad_outputs):
        return grad_outputs[0] if len(grad_outputs) == 1 else grad_outputs


class Add(Module):
    """y = x0 + x1 + ... (two or more inputs of one shape and dtype); each input's gradient
    is grad_out itself."""

    def __init__(self, what: str = "Add inputs"):
        super().__init__()
        self._what = what
        self._n = None

    def forward(self, *inputs):
        _arrays(inputs, "Add")
        if len(inputs) < 2:
            raise ValueError(f"Add takes two or more inputs, got {len(inputs)}")
        first = inputs[0]
        for x in inputs[1:]:
            if x.shape != first.shape or x.dtype != first.dtype:
                shapes = ", ".join(f"{a.shape} {a.dtype}" for a in inputs)
                raise ValueError(f"{self._what} must have one shape and dtype, got {shapes}")
        y = first + inputs[1]
        for x in inputs[2:]:
            y += x
        self._n = len(inputs)
        return y

    def backward(self, grad_out):
        n = _need_forward(self._n, "Add")
        return (grad_out,) * n


class Concat(Module):
    """Joins two or more inputs along `axis` (default 1, the feature / channel axis)."""

    def __init__(self, axis: int = 1):
        super().__init__()
        self.axis = int_arg(axis, "axis")
        self._sizes = None

    def forward(self, *inputs):
        _arrays(inputs, "Concat")
        if len(inputs) < 2:
            raise ValueError(f"Concat takes two or more inputs, got {len(inputs)}")
        ax = axis_arg(self.axis, inputs[0].ndim, op="Concat")
        self._sizes = [x.shape[ax] for x in inputs]
        try:
            return np.concatenate(inputs, axis=ax)
        except ValueError:
            raise ValueError(f"Concat along axis {self.axis} needs inputs that match on the other axes, got "
                             f"{', '.join(str(x.shape) for x in inputs)}") from None

    def backward(self, grad_out):
        sizes = _need_forward(self._sizes, "Concat")
        ax = axis_arg(self.axis, grad_out.ndim, op="Concat.backward")
        return tuple(np.split(grad_out, np.cumsum(sizes)[:-1], axis=ax))

    def extra_repr(self) -> str:
        return f"axis={self.axis}"


class Split(Module):
    """Splits one input along `axis` into parts of the given sizes (views); backward
    concatenates the parts' gradients (None -> zeros)."""

    def __init__(self, sizes: Union[int, Sequence[int]], axis: int = 1):
        super().__init__()
        if isinstance(sizes, (list, tuple)):
            self.sizes = tuple(int_arg(s, "sizes", min=1) for s in sizes)
            if len(self.sizes) < 2:
                raise ValueError(f"Split needs two or more sizes, got {sizes!r}")
        else:
            self.sizes = int_arg(sizes, "sizes", min=2)  # number of equal parts
        self.axis = int_arg(axis, "axis")
        self._shape = None

    def _parts(self, n: int) -> list[int]:
        if isinstance(self.sizes, int):
            if n % self.sizes:
                raise ValueError(f"Split into {self.sizes} equal parts needs axis {self.axis} of a multiple of "
                                 f"{self.sizes}, got {n}")
            return [n // self.sizes] * self.sizes
        if sum(self.sizes) != n:
            raise ValueError(f"Split sizes {self.sizes} add up to {sum(self.sizes)}, axis {self.axis} has {n}")
        return list(self.sizes)

    def forward(self, x):
        _arrays((x,), "Split")
        ax = axis_arg(self.axis, x.ndim, op="Split")
        parts = self._parts(x.shape[ax])
        self._shape = (x.shape, x.dtype, ax, parts)
        return tuple(np.split(x, np.cumsum(parts)[:-1], axis=ax))

    def backward(self, *grad_outputs):
        shape, dtype, ax, parts = _need_forward(self._shape, "Split")
        if len(grad_outputs) != len(parts):
            raise ValueError(f"Split.backward expects {len(parts)} gradients (one per part), got {len(grad_outputs)}")
        full = []
        for g, n in zip(grad_outputs, parts):
            want = shape[:ax] + (n,) + shape[ax + 1:]
            if g is None:
                g = np.zeros(want, dtype)
            elif g.shape != want:
                raise ValueError(f"Split.backward expects gradients of shapes {want} for that part, got {g.shape}")
            full.append(g)
        return np.concatenate(full, axis=ax)

    def extra_repr(self) -> str:
        return f"sizes={self.sizes}, axis={self.axis}"


class Fork(Module):
    """One input -> n references to it (for branches that each take the same value);
    backward sums the n gradients."""

    def __init__(self, n: int = 2):
        super().__init__()
        self.n = int_arg(n, "n", min=2)

    def forward(self, x):
        return (x,) * self.n

    def backward(self, *grad_outputs):
        if len(grad_outputs) != self.n:
            raise ValueError(f"Fork.backward expects {self.n} gradients, got {len(grad_outputs)}")
        total = None
        for g in grad_outputs:
            if g is None:
                continue
            if total is None:
                total = g.copy()  # a fresh array: never write into a caller's gradient
            else:
                total += g
        return total

    def extra_repr(self) -> str:
        return f"n={self.n}"

