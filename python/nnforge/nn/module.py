"""Module and Parameter: explicit forward/backward, no autograd tape.

forward(x) caches what backward needs; backward(grad_out) returns the gradient
with respect to the input and *accumulates* into each Parameter's .grad.
"""
from __future__ import annotations

from collections import OrderedDict
from typing import Iterator

import numpy as np


class Parameter:
    """A trainable float32 array and its gradient (same shape, C-contiguous)."""

    __slots__ = ("data", "grad")

    def __init__(self, data: np.ndarray):
        self.data = np.ascontiguousarray(data, dtype=np.float32)
        self.grad = np.zeros_like(self.data)

    @property
    def shape(self) -> tuple[int, ...]:
        return self.data.shape

    @property
    def size(self) -> int:
        return self.data.size

    def __repr__(self) -> str:
        return f"Parameter(shape={self.data.shape})"


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
    def forward(self, x):
        raise NotImplementedError

    def backward(self, grad_out):
        raise NotImplementedError

    def __call__(self, x):
        return self.forward(x)

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
        for p in self.parameters():
            p.grad.fill(0.0)

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
        """Load arrays by name. Everything is validated before anything is written,
        so a mismatch leaves the model unchanged; the error names the first
        mismatched entry and both shapes."""
        targets: list[tuple[str, np.ndarray]] = [(n, p.data) for n, p in self.named_parameters()]
        targets += self.named_buffers()
        expected = {n for n, _ in targets}
        if strict:
            missing = [n for n in expected if n not in state]
            unexpected = [n for n in state if n not in expected]
            if missing or unexpected:
                raise ValueError(f"state_dict mismatch: missing {sorted(missing)}, unexpected {sorted(unexpected)}")
        plan = []
        for name, dst in targets:
            if name not in state:
                continue
            src = np.asarray(state[name])
            if src.shape != dst.shape:
                raise ValueError(f"state_dict entry '{name}' has shape {src.shape}, model expects {dst.shape}")
            if not np.can_cast(src.dtype, dst.dtype, casting="same_kind"):
                raise ValueError(f"state_dict entry '{name}' has dtype {src.dtype}, model expects {dst.dtype}")
            plan.append((dst, src))
        for dst, src in plan:
            dst[...] = src

    # --- Keras-style training (nn/training.py) and checkpoints (nn/checkpoint.py) ---
    def compile(self, optimizer="adam", loss="cross_entropy", metrics=("accuracy",), **kwargs) -> "Module":
        """Attach an optimizer (instance or name; lr=... and other kwargs build it), a loss
        (instance or name) and metrics for fit/evaluate. Returns self."""
        from .training import Trainer
        object.__setattr__(self, "trainer", Trainer(self, optimizer, loss, metrics, **kwargs))
        return self

    def _trainer(self):
        trainer = self.__dict__.get("trainer")
        if trainer is None:
            raise RuntimeError(f"{type(self).__name__}: call compile(optimizer, loss, metrics) before fit/evaluate")
        return trainer

    @property
    def optimizer(self):
        return self._trainer().optimizer

    def fit(self, x, y, epochs: int = 1, batch_size: int = 32, **kwargs):
        """Train; returns a History (dict of per-epoch lists). See nnforge.nn.training.Trainer.fit."""
        return self._trainer().fit(x, y, epochs=epochs, batch_size=batch_size, **kwargs)

    def evaluate(self, x, y, batch_size: int = 256) -> dict:
        return self._trainer().evaluate(x, y, batch_size=batch_size)

    def predict(self, x, batch_size: int = 256) -> np.ndarray:
        from .training import predict
        return predict(self, x, batch_size=batch_size)

    def save(self, path, optimizer=None, extra=None, **kwargs) -> str:
        """Atomic .npz checkpoint of this model (and optimizer): nnforge.nn.checkpoint.save."""
        from . import checkpoint
        return checkpoint.save(path, self, optimizer, extra, **kwargs)

    def load(self, path, optimizer=None, **kwargs) -> dict:
        """Load a checkpoint written by save(); returns its extra values."""
        from . import checkpoint
        return checkpoint.load(path, self, optimizer, **kwargs)

    # --- reporting ---------------------------------------------------------------
    def extra_repr(self) -> str:
        return ""

    def __repr__(self) -> str:
        lines = [f"{type(self).__name__}({self.extra_repr()}"]
        for name, mod in self._modules.items():
            sub = repr(mod).replace("\n", "\n  ")
            lines.append(f"  ({name}): {sub}")
        return lines[0] + ")" if len(lines) == 1 else "\n".join(lines) + "\n)"

    def summary(self, input_shape: tuple[int, ...], print_fn=print) -> str:
        """Table of layers with output shapes and parameter counts.

        input_shape excludes the batch dimension; a forward pass on zeros (batch 2,
        eval mode) discovers the shapes.
        """
        rows = []
        was_training = self.training
        self.eval()
        try:
            x = np.zeros((2, *input_shape), dtype=np.float32)
            mods = list(self._modules.items()) if isinstance(self, Sequential) else [(type(self).__name__, self)]
            for name, mod in mods:
                x = mod.forward(x)
                n_params = sum(p.size for p in mod.parameters())
                rows.append((f"{name} ({type(mod).__name__})", str((None, *x.shape[1:])), f"{n_params:,}"))
        finally:
            self.train(was_training)
        headers = ("layer", "output shape", "params")
        widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(headers)]
        fmt = lambda r: "  ".join(c.ljust(w) for c, w in zip(r, widths))
        text = "\n".join([fmt(headers), "-" * (sum(widths) + 4), *map(fmt, rows), "-" * (sum(widths) + 4),
                          f"total parameters: {self.num_parameters():,}"])
        if print_fn is not None:
            print_fn(text)
        return text


class Sequential(Module):
    """Applies modules in order; backward runs them in reverse."""

    def __init__(self, *modules: Module):
        super().__init__()
        for i, m in enumerate(modules):
            if not isinstance(m, Module):
                raise TypeError(f"Sequential item {i} is {type(m).__name__}, not a Module")
            setattr(self, str(i), m)

    def __len__(self) -> int:
        return len(self._modules)

    def __getitem__(self, i: int) -> Module:
        return list(self._modules.values())[i]

    def __iter__(self):
        return iter(self._modules.values())

    def append(self, module: Module) -> "Sequential":
        setattr(self, str(len(self._modules)), module)
        return self

    def forward(self, x):
        for m in self._modules.values():
            x = m.forward(x)
        return x

    def backward(self, grad_out):
        for m in reversed(self._modules.values()):
            grad_out = m.backward(grad_out)
        return grad_out


class Residual(Module):
    """y = x + body(x); the gradient flows through both branches."""

    def __init__(self, body: Module):
        super().__init__()
        self.body = body

    def forward(self, x):
        y = self.body.forward(x)
        if y.shape != x.shape:
            raise ValueError(f"Residual body changed the shape from {x.shape} to {y.shape}")
        return x + y

    def backward(self, grad_out):
        return grad_out + self.body.backward(grad_out)
