"""Optimizers on the fused multi-tensor kernels (nnforge.ops.sgd_step, adam_step, ...).

Each optimizer builds its parameter / gradient / state lists once, so step() is one
kernel call over every tensor (no per-tensor Python loop). Options shared by all:
    clip_grad_norm  max global L2 norm: the norm is computed in one pass over the
                    gradients and applied as the kernel's grad_scale (no second copy)
    l1              adds l1 * sign(param) to the gradient (L1 regularisation; L2 is
                    weight_decay)
    check_finite    skip the whole step (return False) when any gradient is NaN/inf
    maximize        ascend instead of descend
The update rules are PyTorch's. Parameters must be updated in place (as
Module.load_state_dict does) because the lists hold the arrays themselves.
state_dict() is a flat {name: ndarray} (step, lr, hyper-parameters, buffers) ready for
nnforge.nn.checkpoint.
"""
from __future__ import annotations

from collections import OrderedDict
from typing import Iterable, Optional

import numpy as np

from .. import ops
from .module import Module, Parameter

__all__ = ["Adagrad", "Adam", "AdamW", "Optimizer", "RMSprop", "SGD", "get_optimizer", "OPTIMIZERS"]


def _nonneg(value, name: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float, np.floating)) or not value >= 0.0:
        raise ValueError(f"{name} must be a non-negative number, got {value!r}")
    return float(value)


class Optimizer:
    """Base class. Subclasses declare _kernel_name, _buffer_names() and _call(grad_scale, zero_grad)."""

    _kernel_name = ""
    _hyper: tuple[str, ...] = ()  # hyper-parameters saved in state_dict besides lr

    def __init__(self, params, lr: float, *, clip_grad_norm: Optional[float] = None, l1: float = 0.0,
                 check_finite: bool = False, maximize: bool = False):
        if isinstance(params, Module):
            params = params.parameters()
        params = list(params)
        if not params:
            raise ValueError(f"{type(self).__name__} got an empty parameter list")
        for i, p in enumerate(params):
            if not isinstance(p, Parameter):
                raise TypeError(f"{type(self).__name__} expects nnforge Parameters; item {i} is {type(p).__name__}")
        if len({id(p) for p in params}) != len(params):
            raise ValueError(f"{type(self).__name__}: a parameter appears more than once")
        self.params: list[Parameter] = params
        self.lr = _nonneg(lr, "lr")
        self.clip_grad_norm = None if clip_grad_norm is None else _nonneg(clip_grad_norm, "clip_grad_norm")
        self.l1 = _nonneg(l1, "l1")
        self.check_finite = bool(check_finite)
        self.maximize = bool(maximize)
        self.step_count = 0          # steps taken (skipped steps are not counted)
        self.skipped_steps = 0
        self.last_grad_norm: Optional[float] = None
        self._data = [p.data for p in params]   # prebuilt once: the kernel walks these lists
        self._grads = [p.grad for p in params]
        self._buffers: "OrderedDict[str, list[np.ndarray]]" = OrderedDict(
            (name, [np.zeros_like(d) for d in self._data]) for name in self._buffer_names())
        self._step_fn = getattr(ops, self._kernel_name)
        self._grad_norm_fn = ops.grad_norm
        self._clip_coef_fn = ops.clip_coef

    # --- subclass hooks ---------------------------------------------------------
    def _buffer_names(self) -> list[str]:
        return []

    def _call(self, step: int, grad_scale: float, zero_grad: bool) -> bool:
        raise NotImplementedError

    # --- public ---------------------------------------------------------------
    def zero_grad(self) -> None:
        for g in self._grads:
            g.fill(0.0)

    def step(self, zero_grad: bool = False) -> bool:
        """Apply one update from the accumulated gradients. zero_grad=True clears the
        gradients in the same pass. Returns False if the step was skipped (check_finite)."""
        grad_scale = 1.0
        if self.clip_grad_norm is not None:
            self.last_grad_norm = float(self._grad_norm_fn(self._grads))
            grad_scale = float(self._clip_coef_fn(self.last_grad_norm, self.clip_grad_norm))
        if self.l1:
            grad_scale = self._add_l1(grad_scale)
        ok = bool(self._call(self.step_count + 1, grad_scale, zero_grad))
        if ok:
            self.step_count += 1
        else:
            self.skipped_steps += 1
            if zero_grad:
                self.zero_grad()
        return ok

    def _add_l1(self, grad_scale: float) -> float:
        # g <- grad_scale * g + l1 * sign(p): the L1 term is not clipped (like weight_decay).
        # One extra pass per tensor, only when l1 is used.
        if self.check_finite and not all(np.isfinite(g).all() for g in self._grads):
            return grad_scale  # let the kernel see the non-finite gradient and skip
        for p, g in zip(self._data, self._grads):
            if grad_scale != 1.0:
                g *= np.float32(grad_scale)
            g += np.float32(self.l1) * np.sign(p)
        return 1.0

    @property
    def buffers(self) -> "OrderedDict[str, list[np.ndarray]]":
        return self._buffers

    def hyperparameters(self) -> dict:
        return {name: getattr(self, name) for name in ("lr", *self._hyper)}

    def state_dict(self) -> "OrderedDict[str, np.ndarray]":
        """Flat {name: array}: step, lr, hyper-parameters, and copies of every buffer
        ("exp_avg.3" is the first moment of parameter 3)."""
        state: "OrderedDict[str, np.ndarray]" = OrderedDict()
        state["step"] = np.array(self.step_count, dtype=np.int64)
        state["skipped_steps"] = np.array(self.skipped_steps, dtype=np.int64)
        for name, value in self.hyperparameters().items():
            state[f"hyper.{name}"] = np.array(value, dtype=np.float64)
        for name, bufs in self._buffers.items():
            for i, b in enumerate(bufs):
                state[f"{name}.{i}"] = b.copy()
        return state

    def load_state_dict(self, state) -> None:
        """Restore step count, hyper-parameters and buffers; validated first, so a
        mismatch (ValueError naming the entry and shapes) changes nothing."""
        kind = type(self).__name__
        if "step" not in state:
            raise ValueError(f"{kind} state has no 'step' entry")
        plan = []
        for name, bufs in self._buffers.items():
            for i, b in enumerate(bufs):
                key = f"{name}.{i}"
                if key not in state:
                    raise ValueError(f"{kind} state is missing '{key}' (saved from a different optimizer or model?)")
                src = np.asarray(state[key])
                if src.shape != b.shape:
                    raise ValueError(f"{kind} state entry '{key}' has shape {src.shape}, parameter {i} has {b.shape}")
                plan.append((b, src))
        expected = {f"{n}.{i}" for n, bufs in self._buffers.items() for i in range(len(bufs))}
        extra = sorted(k for k in state if "." in k and not k.startswith("hyper.") and k not in expected)
        if extra:
            raise ValueError(f"{kind} state has unexpected entries {extra[:3]} (saved from a different optimizer "
                             f"or model?)")
        hyper = {}
        for name in ("lr", *self._hyper):
            key = f"hyper.{name}"
            if key in state:
                hyper[name] = np.asarray(state[key]).item()
        for dst, src in plan:
            dst[...] = src
        for name, value in hyper.items():
            setattr(self, name, type(getattr(self, name))(value))
        self.step_count = int(np.asarray(state["step"]))
        self.skipped_steps = int(np.asarray(state.get("skipped_steps", 0)))

    def __repr__(self) -> str:
        hp = ", ".join(f"{k}={v}" for k, v in self.hyperparameters().items())
        return f"{type(self).__name__}({hp}, params={len(self.params)})"


class SGD(Optimizer):
    """SGD with optional momentum / dampening / Nesterov and L2 weight_decay (torch.optim.SGD rule)."""

    _kernel_name = "sgd_step"
    _hyper = ("momentum", "dampening", "weight_decay")

    def __init__(self, params, lr: float = 0.01, momentum: float = 0.0, dampening: float = 0.0,
                 weight_decay: float = 0.0, nesterov: bool = False, **options):
        self.momentum = _nonneg(momentum, "momentum")
        self.dampening = _nonneg(dampening, "dampening")
        self.weight_decay = _nonneg(weight_decay, "weight_decay")
        if nesterov and (self.momentum == 0.0 or self.dampening != 0.0):
            raise ValueError("Nesterov momentum needs momentum > 0 and dampening = 0")
        self.nesterov = bool(nesterov)
        super().__init__(params, lr, **options)
        self._momentum_buffers = self._buffers.get("momentum_buffer")

    def _buffer_names(self):
        return ["momentum_buffer"] if self.momentum else []

    def _call(self, step, grad_scale, zero_grad):
        return self._step_fn(self._data, self._grads, self._momentum_buffers, lr=self.lr, step=step,
                             momentum=self.momentum, dampening=self.dampening, weight_decay=self.weight_decay,
                             nesterov=self.nesterov, maximize=self.maximize, grad_scale=grad_scale,
                             zero_grad=zero_grad, check_finite=self.check_finite)


class Adam(Optimizer):
    """Adam (torch.optim.Adam rule; weight_decay is added to the gradient, i.e. L2)."""

    _kernel_name = "adam_step"
    _hyper = ("beta1", "beta2", "eps", "weight_decay")
    _default_weight_decay = 0.0

    def __init__(self, params, lr: float = 1e-3, betas: tuple[float, float] = (0.9, 0.999), eps: float = 1e-8,
                 weight_decay: Optional[float] = None, amsgrad: bool = False, **options):
        beta1, beta2 = betas
        if not (0.0 <= beta1 < 1.0 and 0.0 <= beta2 < 1.0):
            raise ValueError(f"betas must be in [0, 1), got {betas!r}")
        self.beta1, self.beta2 = float(beta1), float(beta2)
        self.eps = _nonneg(eps, "eps")
        self.weight_decay = _nonneg(self._default_weight_decay if weight_decay is None else weight_decay,
                                    "weight_decay")
        self.amsgrad = bool(amsgrad)
        super().__init__(params, lr, **options)
        self._m, self._v = self._buffers["exp_avg"], self._buffers["exp_avg_sq"]
        self._vmax = self._buffers.get("max_exp_avg_sq")

    def _buffer_names(self):
        return ["exp_avg", "exp_avg_sq"] + (["max_exp_avg_sq"] if self.amsgrad else [])

    def _call(self, step, grad_scale, zero_grad):
        return self._step_fn(self._data, self._grads, self._m, self._v, self._vmax, step=step, lr=self.lr,
                             beta1=self.beta1, beta2=self.beta2, eps=self.eps, weight_decay=self.weight_decay,
                             amsgrad=self.amsgrad, maximize=self.maximize, grad_scale=grad_scale,
                             zero_grad=zero_grad, check_finite=self.check_finite)


class AdamW(Adam):
    """Adam with decoupled weight decay (torch.optim.AdamW rule, default weight_decay 0.01)."""

    _kernel_name = "adamw_step"
    _default_weight_decay = 0.01


class RMSprop(Optimizer):
    """RMSprop (torch.optim.RMSprop rule), optionally centered and with momentum."""

    _kernel_name = "rmsprop_step"
    _hyper = ("alpha", "eps", "weight_decay", "momentum")

    def __init__(self, params, lr: float = 0.01, alpha: float = 0.99, eps: float = 1e-8, weight_decay: float = 0.0,
                 momentum: float = 0.0, centered: bool = False, **options):
        self.alpha = _nonneg(alpha, "alpha")
        self.eps = _nonneg(eps, "eps")
        self.weight_decay = _nonneg(weight_decay, "weight_decay")
        self.momentum = _nonneg(momentum, "momentum")
        self.centered = bool(centered)
        super().__init__(params, lr, **options)
        self._sq = self._buffers["square_avg"]
        self._mom = self._buffers.get("momentum_buffer")
        self._gavg = self._buffers.get("grad_avg")

    def _buffer_names(self):
        return (["square_avg"] + (["momentum_buffer"] if self.momentum else [])
                + (["grad_avg"] if self.centered else []))

    def _call(self, step, grad_scale, zero_grad):
        return self._step_fn(self._data, self._grads, self._sq, self._mom, self._gavg, lr=self.lr, alpha=self.alpha,
                             eps=self.eps, weight_decay=self.weight_decay, momentum=self.momentum,
                             centered=self.centered, maximize=self.maximize, grad_scale=grad_scale,
                             zero_grad=zero_grad, check_finite=self.check_finite)


class Adagrad(Optimizer):
    """Adagrad (torch.optim.Adagrad rule, initial accumulator 0)."""

    _kernel_name = "adagrad_step"
    _hyper = ("lr_decay", "weight_decay", "eps")

    def __init__(self, params, lr: float = 0.01, lr_decay: float = 0.0, weight_decay: float = 0.0,
                 eps: float = 1e-10, **options):
        self.lr_decay = _nonneg(lr_decay, "lr_decay")
        self.weight_decay = _nonneg(weight_decay, "weight_decay")
        self.eps = _nonneg(eps, "eps")
        super().__init__(params, lr, **options)
        self._sums = self._buffers["sum"]

    def _buffer_names(self):
        return ["sum"]

    def _call(self, step, grad_scale, zero_grad):
        return self._step_fn(self._data, self._grads, self._sums, step=step, lr=self.lr, lr_decay=self.lr_decay,
                             weight_decay=self.weight_decay, eps=self.eps, maximize=self.maximize,
                             grad_scale=grad_scale, zero_grad=zero_grad, check_finite=self.check_finite)


OPTIMIZERS = {"sgd": SGD, "adam": Adam, "adamw": AdamW, "rmsprop": RMSprop, "adagrad": Adagrad}


def get_optimizer(name_or_optimizer, params: Optional[Iterable[Parameter]] = None, **kwargs) -> Optimizer:
    """An Optimizer instance as is, or one built by name ("adam", "sgd", ...) over params."""
    if isinstance(name_or_optimizer, Optimizer):
        return name_or_optimizer
    if isinstance(name_or_optimizer, str):
        key = name_or_optimizer.lower()
        if key not in OPTIMIZERS:
            raise ValueError(f"unknown optimizer {name_or_optimizer!r}; choose one of {sorted(OPTIMIZERS)}")
        if params is None:
            raise ValueError("building an optimizer by name needs the parameters")
        return OPTIMIZERS[key](params, **kwargs)
    raise TypeError(f"optimizer must be an Optimizer or a name, got {type(name_or_optimizer).__name__}")
