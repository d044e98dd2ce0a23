"""Module and Parameter: explicit forward/backward, no autograd tape.

The layer contract (what every layer and container keeps):
    forward(*inputs)          -> one output array, or a tuple of outputs
    backward(*grad_outputs)   -> one gradient per input: a bare array when the layer
                                 has one input, a tuple when it has several (None for
                                 an input that has no gradient, e.g. integer indices)
forward caches what backward needs; backward takes one gradient per forward output
and *accumulates* into each Parameter's .grad. Containers chain layers by this rule
alone (nn/containers.py), so multi-input and multi-output layers (attention's q, k, v;
an LSTM's x and (h, c)) need no special case.

The Keras facade (compile / fit / evaluate / predict / save / load / summary) is not
here: it lives in nn/model.py (nn.Model), so this base class imports nothing from
training, optimizers or checkpoints.
"""
from __future__ import annotations

import types
from collections import OrderedDict
from typing import Callable, Iterator, Optional, Sequence

import numpy as np

from . import _state
from . import flat as _flat


class Parameter:
    """A trainable float32 array and its gradient (same shape, C-contiguous).

    After Module.flatten_parameters() both are views into the model's flat buffers
    (_flat names them); they are only ever updated in place, never re-bound."""

    __slots__ = ("data", "grad", "_flat")

    def __init__(self, data: np.ndarray):
        self.data = np.ascontiguousarray(data, dtype=np.float32)
        self.grad = np.zeros_like(self.data)
        self._flat: Optional[_flat.FlatParameters] = None

    def __deepcopy__(self, memo) -> "Parameter":
        # a copy owns its arrays: it leaves the flat buffer (a copied view would not be one)
        p = Parameter.__new__(Parameter)
        p.data, p.grad, p._flat = self.data.copy(), self.grad.copy(), None
        memo[id(self)] = p
        return p

    @property
    def shape(self) -> tuple[int, ...]:
        return self.data.shape

    @property
    def size(self) -> int:
        return self.data.size

    def __repr__(self) -> str:
        return f"Parameter(shape={self.data.shape})"


def _forward_with_hooks(self, *inputs):
    """A hooked module's forward (Module.register_forward_hook): its class's forward, then the hooks."""
    out = type(self).forward(self, *inputs)
    for fn in list(self.__dict__.get("_forward_hooks", ())):
        fn(self)
    return out


def _backward_with_hooks(self, *grad_outputs):
    """A hooked module's backward (Module.register_backward_hook): its class's backward, then the hooks."""
    grads = type(self).backward(self, *grad_outputs)
    for fn in list(self.__dict__.get("_backward_hooks", ())):
        fn(self)
    return grads


_HOOKED = {"forward": _forward_with_hooks, "backward": _backward_with_hooks}


class Module:
    """Base class: registers Parameters, sub-Modules and buffers assigned as attributes."""

    def __init__(self) -> None:
        object.__setattr__(self, "_params", OrderedDict())
        object.__setattr__(self, "_modules", OrderedDict())
        object.__setattr__(self, "_buffers", OrderedDict())
        object.__setattr__(self, "training", True)

    # --- registration -----------------------------------------------------
    def __setattr__(self, name: str, value) -> None:
        if "_params" not in self.__dict__:
            raise AttributeError(f"{type(self).__name__}.__init__ must call super().__init__() first")
        for table in (self._params, self._modules, self._buffers):
            table.pop(name, None)
        if isinstance(value, Parameter):
            self._params[name] = value
        elif isinstance(value, Module):
            self._modules[name] = value
        object.__setattr__(self, name, value)

    def register_buffer(self, name: str, array: np.ndarray) -> None:
        """A non-trainable array saved in state_dict (e.g. BatchNorm running stats)."""
        setattr(self, name, array)
        self._buffers[name] = array

    def _set_buffer(self, name: str, array: np.ndarray) -> None:
        object.__setattr__(self, name, array)
        self._buffers[name] = array

    # --- the contract ---------------------------------------------------------
    def forward(self, *inputs):
        raise NotImplementedError

    def backward(self, *grad_outputs):
        raise NotImplementedError

    def __call__(self, *inputs):
        return self.forward(*inputs)

    # --- hooks ------------------------------------------------------------------------
    def register_forward_hook(self, fn: Callable[["Module"], None]) -> Callable[[], None]:
        """Call fn(self) each time this module's forward has returned, whoever calls it.
        Returns a function that removes the hook (see register_backward_hook)."""
        return self._add_hook("forward", fn)

    def register_backward_hook(self, fn: Callable[["Module"], None]) -> Callable[[], None]:
        """Call fn(self) each time this module's backward has returned (its own Parameters'
        gradients then hold this pass's contribution: data-parallel training starts their
        all-reduce once backward has run as often as forward). Works whoever calls backward
        (a container, a model's own backward). Returns a function that removes the hook. A
        module without hooks pays nothing: the wrapper exists only while a hook is registered."""
        return self._add_hook("backward", fn)

    def _add_hook(self, kind: str, fn) -> Callable[[], None]:
        hooks = self.__dict__.setdefault(f"_{kind}_hooks", [])
        hooks.append(fn)
        object.__setattr__(self, kind, types.MethodType(_HOOKED[kind], self))  # shadows the class's method

        def remove() -> None:
            if fn in hooks:
                hooks.remove(fn)
            if not hooks:
                self.__dict__.pop(kind, None)
        return remove

    def _input_layer(self) -> "Module":
        """The layer that receives the model's raw input (fit switches off its dX);
        containers that hand their input straight to a first child override this."""
        return self

    # --- traversal ------------------------------------------------------------
    def named_modules(self, prefix: str = "") -> Iterator[tuple[str, "Module"]]:
        yield prefix, self
        for name, mod in self._modules.items():
            yield from mod.named_modules(f"{prefix}.{name}" if prefix else name)

    def children(self) -> list["Module"]:
        return list(self._modules.values())

    def named_parameters(self) -> list[tuple[str, Parameter]]:
        out = []
        for prefix, mod in self.named_modules():
            for name, p in mod._params.items():
                out.append((f"{prefix}.{name}" if prefix else name, p))
        return out

    def parameters(self) -> list[Parameter]:
        return [p for _, p in self.named_parameters()]

    def named_buffers(self) -> list[tuple[str, np.ndarray]]:
        out = []
        for prefix, mod in self.named_modules():
            for name in mod._buffers:
                out.append((f"{prefix}.{name}" if prefix else name, getattr(mod, name)))
        return out

    def num_parameters(self) -> int:
        return sum(p.size for p in self.parameters())

    # --- modes and gradients ------------------------------------------------------
    def train(self, mode: bool = True) -> "Module":
        for _, mod in self.named_modules():
            object.__setattr__(mod, "training", bool(mode))
        return self

    def eval(self) -> "Module":
        return self.train(False)

    def zero_grad(self) -> None:
        params = self.parameters()
        flat = _flat.owner(params)
        if flat is not None:  # one fill over the flat gradient buffer
            flat.grad.fill(0.0)
            return
        for p in params:
            p.grad.fill(0.0)

    # --- flat parameters (nn/flat.py) ------------------------------------------------
    def flatten_parameters(self, groups: Optional[Sequence[Sequence[Parameter]]] = None) -> "Module":
        """Make every Parameter's data and grad views into one contiguous, 64-byte aligned
        float32 buffer each, so an optimizer step, zero_grad or an all-reduce is one call.
        groups (lists of this model's Parameters, e.g. an optimizer's parameter groups)
        orders the buffer so each group is one contiguous segment. Names, values and
        state_dict are unchanged; calling it again with the same order does nothing.
        Returns self."""
        _flat.flatten(self.parameters(), groups)
        return self

    def flat_parameters(self) -> Optional[tuple[np.ndarray, np.ndarray]]:
        """(data, grad) 1-D float32 buffers holding every parameter, or None when the
        model is not flattened (see flatten_parameters)."""
        flat = _flat.owner(self.parameters())
        return None if flat is None else (flat.data, flat.grad)

    # --- state ------------------------------------------------------------------
    def state_dict(self) -> "OrderedDict[str, np.ndarray]":
        """Copies of every parameter and buffer, keyed by dotted name."""
        state = OrderedDict()
        for name, p in self.named_parameters():
            state[name] = p.data.copy()
        for name, b in self.named_buffers():
            state[name] = np.array(b, copy=True)
        return state

    def load_state_dict(self, state, strict: bool = True) -> None:
        """Load arrays by name, in place (flat-parameter views stay views). Everything is
        validated before anything is written, so a mismatch leaves the model unchanged;
        the ValueError names the first mismatched entry and both shapes."""
        self._plan_load(state, strict)()

    def _plan_load(self, state, strict: bool = True, casting: str = "same_kind") -> _state.Commit:
        """Check `state` against this model (nn/_state.py); returns the assignment to run.
        casting: which dtypes may load into a parameter's (numpy.can_cast's rule)."""
        targets: list[tuple[str, np.ndarray]] = [(n, p.data) for n, p in self.named_parameters()]
        targets += self.named_buffers()
        if strict:
            _state.check_keys(state, [n for n, _ in targets], type(self).__name__)
        plan = [(dst, _state.array_entry(state, name, dst, casting)) for name, dst in targets if name in state]

        def commit() -> None:
            for dst, src in plan:
                dst[...] = src
        return commit

    # --- reporting ---------------------------------------------------------------
    def extra_repr(self) -> str:
        return ""

    def __repr__(self) -> str:
        lines = [f"{type(self).__name__}({self.extra_repr()}"]
        for name, mod in self._modules.items():
            sub = repr(mod).replace("\n", "\n  ")
            lines.append(f"  ({name}): {sub}")
        return lines[0] + ")" if len(lines) == 1 else "\n".join(lines) + "\n)"
