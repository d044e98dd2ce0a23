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
    (_flat names them); they are only ever updated in place, never re-bound.

    Two optional companions of the same shape, kept up to date by the optimizer's fused
    step (nn/optim.py) and, when flattened, views into flat buffers too:
        mask  uint8 pruning mask, 1 keep / 0 pruned (set_mask / clear_mask): pruned
              weights stay exactly 0 through every step; saved in checkpoints
        bf16  ml_dtypes.bfloat16 copy of data, round to nearest even (enable_bf16 /
              disable_bf16; Module.set_precision("bf16") does it for a model)"""

    __slots__ = ("data", "grad", "mask", "bf16", "_flat")

    def __init__(self, data: np.ndarray):
        self.data = np.ascontiguousarray(data, dtype=np.float32)
        self.grad = np.zeros_like(self.data)
        self.mask: Optional[np.ndarray] = None
        self.bf16: Optional[np.ndarray] = None
        self._flat: Optional[_flat.FlatParameters] = None

    def __deepcopy__(self, memo) -> "Parameter":
        # a copy owns its arrays: it leaves the flat buffer (a copied view would not be one)
        p = Parameter.__new__(Parameter)
        p.data, p.grad, p._flat = self.data.copy(), self.grad.copy(), None
        p.mask = None if self.mask is None else self.mask.copy()
        p.bf16 = None if self.bf16 is None else self.bf16.copy()
        memo[id(self)] = p
        return p

    @property
    def shape(self) -> tuple[int, ...]:
        return self.data.shape

    @property
    def size(self) -> int:
        return self.data.size

    # --- pruning mask -----------------------------------------------------------------
    def set_mask(self, mask) -> None:
        """Prune: keep data where mask is 1, set it to 0 (in place) where mask is 0.
        mask: a uint8 (or bool) array of data's shape holding only 0 and 1; validated before
        anything changes (TypeError for the dtype, ValueError for shape or values)."""
        mask = _checked_mask(mask, self.data.shape)
        dst = self._own_extra("mask")
        dst[...] = mask
        self.mask = dst
        self.data[dst == 0] = 0.0
        self.refresh_bf16()

    def clear_mask(self) -> None:
        """Stop pruning (the weights pruned so far stay 0 until updated)."""
        self._drop_extra("mask")

    # --- bf16 copy ------------------------------------------------------------------
    def enable_bf16(self) -> None:
        """Keep a bfloat16 copy of data in .bf16 (written by every optimizer step)."""
        if self.bf16 is None:
            self.bf16 = self._own_extra("bf16")
        self.refresh_bf16()

    def disable_bf16(self) -> None:
        self._drop_extra("bf16")

    def refresh_bf16(self) -> None:
        """Re-round .bf16 from data (after data changed outside an optimizer step)."""
        if self.bf16 is not None:
            self.bf16[...] = self.data.astype(self.bf16.dtype)

    def _own_extra(self, name: str) -> np.ndarray:
        current = getattr(self, name)
        if current is not None:
            return current
        dtype, _ = _flat.EXTRAS[name]
        out = self._flat.extra_view(name, self) if self._flat is not None else np.empty(self.data.shape, dtype())
        _flat.bump_epoch()  # optimizers bind the new array before their next step
        return out

    def _drop_extra(self, name: str) -> None:
        if getattr(self, name) is None:
            return
        setattr(self, name, None)
        if self._flat is not None:
            self._flat.release_extra(name, self)
        _flat.bump_epoch()

    def __repr__(self) -> str:
        return f"Parameter(shape={self.data.shape})"


# Module.set_precision's choices
PRECISIONS = ("fp32", "bf16")

# state_dict key of a parameter's pruning mask: "<parameter name>.mask"
MASK_SUFFIX = ".mask"


def _mask_entry(state, key: str, p: Parameter) -> np.ndarray:
    """state[key] checked as p's pruning mask (StateEntryError naming the entry)."""
    try:
        return _checked_mask(np.asarray(state[key]), p.data.shape)
    except (TypeError, ValueError) as exc:
        raise _state.StateEntryError(key, f"is not a valid pruning mask ({exc})") from None


def _checked_mask(mask, shape: tuple[int, ...]) -> np.ndarray:
    """A pruning mask as uint8 of `shape` with only 0 / 1 in it, or a clear error."""
    if not isinstance(mask, np.ndarray):
        raise TypeError(f"a pruning mask must be a numpy array (uint8 or bool), got {type(mask).__name__}")
    if mask.dtype not in (np.uint8, np.bool_):
        raise TypeError(f"a pruning mask must have dtype uint8 or bool, got {mask.dtype}")
    if mask.shape != shape:
        raise ValueError(f"a pruning mask must have the parameter's shape {shape}, got {mask.shape}")
    mask = mask.astype(np.uint8, copy=False)
    if mask.size and mask.max(initial=0) > 1:
        raise ValueError(f"a pruning mask holds only 0 (pruned) and 1 (kept), got the value {int(mask.max())}")
    return mask


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
        object.__setattr__(self, "precision", "fp32")  # set_precision

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

    def set_precision(self, precision: str) -> "Module":
        """The compute precision of this module and every sub-module (their .precision):
        "fp32", or "bf16" (mixed precision: every Parameter keeps a bfloat16 copy of its
        float32 master weights, written by the optimizer's fused step; gradients,
        accumulation and optimizer state stay float32).
        Model.compile(precision=...) calls it. Returns self.

        How layers compute in bf16 (one mechanism): every weight GEMM / convolution of a
        layer (nn.Linear, nn.Conv2d, MultiheadAttention's projections, GPT's head), forward
        and backward, passes the layer's .precision to ops.matmul / ops.conv2d[_backward],
        which round the float32 operands (master weights, activations, gradients) to bf16
        (nearest even) and accumulate in float32 into float32 outputs and .grad. Reading
        the master weights, not Parameter.bf16, costs little (rounding happens while
        packing) and can never see a stale copy: weights edited by hand, DataParallel's
        broadcast or ZeRO's all-gather write .data only. Everything else (softmax and
        attention core, norms, embeddings' lookup, losses, activations) stays float32."""
        if precision not in PRECISIONS:
            raise ValueError(f"precision must be one of {list(PRECISIONS)}, got {precision!r}")
        for _, mod in self.named_modules():
            object.__setattr__(mod, "precision", precision)
        for p in self.parameters():
            if precision == "bf16":
                p.enable_bf16()
            else:
                p.disable_bf16()
        return self

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
        """Copies of every parameter and buffer, keyed by dotted name, and of every pruning
        mask as "<parameter>.mask" (uint8)."""
        state = OrderedDict()
        for name, p in self.named_parameters():
            state[name] = p.data.copy()
        for name, b in self.named_buffers():
            state[name] = np.array(b, copy=True)
        for name, p in self.named_parameters():
            if p.mask is not None:
                state[name + MASK_SUFFIX] = p.mask.copy()
        return state

    def load_state_dict(self, state, strict: bool = True) -> None:
        """Load arrays by name, in place (flat-parameter views stay views). Everything is
        validated before anything is written, so a mismatch leaves the model unchanged;
        the ValueError names the first mismatched entry and both shapes. Pruning masks
        follow the state: a parameter with a "<name>.mask" entry gets that mask, one
        without loses its mask (strict) or keeps it (strict=False)."""
        self._plan_load(state, strict)()

    def _plan_load(self, state, strict: bool = True, casting: str = "same_kind") -> _state.Commit:
        """Check `state` against this model (nn/_state.py); returns the assignment to run.
        casting: which dtypes may load into a parameter's (numpy.can_cast's rule)."""
        named = self.named_parameters()
        targets: list[tuple[str, np.ndarray]] = [(n, p.data) for n, p in named]
        targets += self.named_buffers()
        mask_keys = [(n + MASK_SUFFIX, p) for n, p in named if n + MASK_SUFFIX in state]
        if strict:
            _state.check_keys(state, [n for n, _ in targets] + [k for k, _ in mask_keys], type(self).__name__)
        plan = [(dst, _state.array_entry(state, name, dst, casting)) for name, dst in targets if name in state]
        masks = [(p, _mask_entry(state, key, p)) for key, p in mask_keys]
        unmask = [p for _, p in named if strict and p.mask is not None and all(p is not q for q, _ in masks)]

        def commit() -> None:
            for dst, src in plan:
                dst[...] = src
            for p in unmask:
                p.clear_mask()
            for p, mask in masks:
                p.set_mask(mask)  # after the data: the loaded weights are zeroed where pruned
            for _, p in named:
                p.refresh_bf16()
            for _, mod in self.named_modules():
                mod._state_loaded()
        return commit

    def _state_loaded(self) -> None:
        """Called on every module once a load has written its arrays in place: a module
        that keeps something derived from them (an int8 layer's packed weight) rebuilds it."""

    # --- reporting ---------------------------------------------------------------
    def extra_repr(self) -> str:
        return ""

    def __repr__(self) -> str:
        lines = [f"{type(self).__name__}({self.extra_repr()}"]
        for name, mod in self._modules.items():
            sub = repr(mod).replace("\n", "\n  ")
            lines.append(f"  ({name}): {sub}")
        return lines[0] + ")" if len(lines) == 1 else "\n".join(lines) + "\n)"
