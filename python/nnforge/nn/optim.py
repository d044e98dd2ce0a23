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

Parameter groups (torch style): params may be a list of dicts {"params": [...], "lr": ...,
"weight_decay": ...}; a group's lr / weight_decay override the optimizer's (a schedule
changes the optimizer's lr, i.e. that of the groups without their own). decay_groups()
builds the usual "weight decay on matrices only" pair.

Flat models (Module.flatten_parameters, done by compile): when every parameter lives in
one flat buffer and each group is one contiguous segment of it, the state buffers get the
same flat layout and step() is one kernel call per group over one array each (the
per-parameter state stays visible as views, so state_dict is unchanged). Otherwise
step() passes the per-tensor lists (one call per group as well). The optimizer notices a
re-layout (nn/flat.py's epoch) and rebinds before its next step.

Pruning masks and bf16 copies (Parameter.mask / .bf16, nn/module.py) ride in the same
kernel pass (the kernels' masks= / bf16_copies=): once any parameter of a group has one,
the group passes one per parameter (ones / a fresh copy for the others; in the flat
layout, the segment of the flat mask / copy buffer). Setting or clearing one bumps the
epoch, so the optimizer rebinds.
"""
from __future__ import annotations

from collections import OrderedDict
from typing import Iterable, Optional

import numpy as np

from .. import ops
from .._args import flag_arg, float_arg
from . import _state
from . import flat as _flat
from .module import Module, Parameter

__all__ = ["Adagrad", "Adam", "AdamW", "Optimizer", "RMSprop", "SGD", "decay_groups", "get_optimizer",
           "OPTIMIZERS"]

# What a parameter group may set for itself; the other hyper-parameters change the state
# buffers an optimizer keeps, so they are the optimizer's own.
_GROUP_KEYS = ("lr", "weight_decay")


def _nonneg(value, name: str) -> float:
    """A finite hyper-parameter >= 0 (nnforge._args.float_arg; the step kernels check the same)."""
    return float_arg(value, name, low=0.0)


# The domain of each saved hyper-parameter (nnforge._args.float_arg bounds). One table for
# the constructors and for load_state_dict, so whatever can be built can be saved and loaded.
_HYPER_DOMAINS = {"lr": dict(low=0.0), "weight_decay": dict(low=0.0), "momentum": dict(low=0.0),
                  "dampening": dict(low=0.0, high=1.0), "lr_decay": dict(low=0.0),
                  "alpha": dict(low=0.0, high=1.0), "beta1": dict(low=0.0, high=1.0, high_open=True),
                  "beta2": dict(low=0.0, high=1.0, high_open=True), "eps": dict(low=0.0, low_open=True)}


def _hyper(name: str, value, label: Optional[str] = None) -> float:
    """A hyper-parameter in its _HYPER_DOMAINS domain (finite, real, not bool)."""
    return float_arg(value, label or name, **_HYPER_DOMAINS[name])


def _param_groups(params, kind: str) -> list[dict]:
    """[{"params": [Parameter, ...], override: value, ...}, ...] from a Module, an iterable of
    Parameters, or an iterable of group dicts."""
    if isinstance(params, Module):
        params = params.parameters()
    items = list(params)
    if items and all(isinstance(g, dict) for g in items):
        groups = []
        for gi, g in enumerate(items):
            if "params" not in g:
                raise ValueError(f"{kind}: parameter group {gi} has no 'params' entry")
            bad = sorted(k for k in g if k != "params" and k not in _GROUP_KEYS)
            if bad:
                raise ValueError(f"{kind}: parameter group {gi} sets {bad}; a group may set {list(_GROUP_KEYS)}")
            ps = g["params"]
            ps = ps.parameters() if isinstance(ps, Module) else list(ps)
            groups.append({"params": ps, **{k: _hyper(k, v, f"group {gi} {k}") for k, v in g.items() if k != "params"}})
    else:
        groups = [{"params": items}]
    flat = [p for g in groups for p in g["params"]]
    if not flat:
        raise ValueError(f"{kind} got an empty parameter list")
    for i, p in enumerate(flat):
        if not isinstance(p, Parameter):
            raise TypeError(f"{kind} expects nnforge Parameters; item {i} is {type(p).__name__}")
    if len({id(p) for p in flat}) != len(flat):
        raise ValueError(f"{kind}: a parameter appears more than once")
    return [g for g in groups if g["params"]]


def decay_groups(model, weight_decay: float) -> list[dict]:
    """Two groups: matrices and convolution kernels (ndim >= 2) with weight_decay, biases and
    norm scales (ndim < 2) without, as is usual for AdamW."""
    params = model.parameters() if isinstance(model, Module) else list(model)
    return [{"params": [p for p in params if p.data.ndim >= 2], "weight_decay": weight_decay},
            {"params": [p for p in params if p.data.ndim < 2], "weight_decay": 0.0}]


class _Bound:
    """One group as the kernel sees it: arrays (one flat segment, or one per tensor), and
    extras: the kernel's masks= / bf16_copies= lists when the group has them."""

    __slots__ = ("data", "grads", "bufs", "overrides", "extras")

    def __init__(self, data, grads, bufs, overrides, extras):
        self.data, self.grads, self.bufs, self.overrides, self.extras = data, grads, bufs, overrides, extras


# Parameter attribute -> the step kernels' keyword for the list of them.
_EXTRA_KWARGS = {"mask": "masks", "bf16": "bf16_copies"}


def _group_extras(ps: list[Parameter], flat, seg) -> dict:
    """{kernel keyword: list} for the extras any of ps has. Flat segment: one slice of the
    flat buffer. Per tensor: each parameter's own, or a stand-in (all-ones mask; a copy
    nobody reads) for those without."""
    out = {}
    for name, kwarg in _EXTRA_KWARGS.items():
        if all(getattr(p, name) is None for p in ps):
            continue
        if seg is not None:
            out[kwarg] = [flat.extras[name][seg]]
        else:
            dtype, fill = _flat.EXTRAS[name]
            out[kwarg] = [getattr(p, name) if getattr(p, name) is not None
                          else np.full(p.shape, fill, dtype=dtype()) for p in ps]
    return out


class Optimizer:
    """Base class. Subclasses declare _kernel_name, _buffer_names() and _run(group, hp, ...)."""

    _kernel_name = ""
    _hyper: tuple[str, ...] = ()  # hyper-parameters saved in state_dict besides lr

    def __init__(self, params, lr: float, *, clip_grad_norm: Optional[float] = None, l1: float = 0.0,
                 check_finite: bool = False, maximize: bool = False):
        kind = type(self).__name__
        self.param_groups = _param_groups(params, kind)
        for g in self.param_groups:
            if "weight_decay" in g and "weight_decay" not in self._hyper:
                raise ValueError(f"{kind} has no weight_decay for a parameter group to set")
        self.params: list[Parameter] = [p for g in self.param_groups for p in g["params"]]
        self.lr = _hyper("lr", lr)
        self.clip_grad_norm = None if clip_grad_norm is None else _nonneg(clip_grad_norm, "clip_grad_norm")
        self.l1 = _nonneg(l1, "l1")
        self.check_finite = flag_arg(check_finite, "check_finite")
        self.maximize = flag_arg(maximize, "maximize")
        self.step_count = 0          # steps taken (skipped steps are not counted)
        self.skipped_steps = 0
        self.last_grad_norm: Optional[float] = None
        self._buffers: "OrderedDict[str, list[np.ndarray]]" = OrderedDict(
            (name, [np.zeros_like(p.data) for p in self.params]) for name in self._buffer_names())
        self._step_fn = getattr(ops, self._kernel_name)
        self._grad_norm_fn = ops.grad_norm
        self._clip_coef_fn = ops.clip_coef
        self._bind()

    # --- binding to the parameters' current arrays ------------------------------------
    def _bind(self) -> None:
        """Build the arrays each kernel call walks: flat segments when the parameters are
        flattened and each group is contiguous, else per-tensor lists (prebuilt once, so
        step() has no per-tensor Python loop)."""
        self._epoch = _flat.layout_epoch()
        flat = self.params[0]._flat
        if flat is not None and not all(p._flat is flat for p in self.params):
            flat = None
        big_bufs: dict[str, np.ndarray] = {}
        if flat is not None:  # state in the same layout; per-parameter entries become views
            for name, bufs in list(self._buffers.items()):
                big = _flat.aligned_zeros(flat.data.size)
                views = [flat.view_like(big, p) for p in self.params]
                for v, old in zip(views, bufs):
                    v[...] = old
                self._buffers[name] = views
                big_bufs[name] = big
        index = {id(p): i for i, p in enumerate(self.params)}
        self._bound: list[_Bound] = []
        for g in self.param_groups:
            ps = g["params"]
            overrides = {k: v for k, v in g.items() if k != "params"}
            seg = flat.segment(ps) if flat is not None else None
            if seg is not None:
                bound = _Bound([flat.data[seg]], [flat.grad[seg]],
                               {n: [b[seg]] for n, b in big_bufs.items()}, overrides, _group_extras(ps, flat, seg))
            else:
                ids = [index[id(p)] for p in ps]
                bound = _Bound([p.data for p in ps], [p.grad for p in ps],
                               {n: [bufs[i] for i in ids] for n, bufs in self._buffers.items()}, overrides,
                               _group_extras(ps, None, None))
            self._bound.append(bound)
        self._grads = [a for b in self._bound for a in b.grads]
        self._data = [a for b in self._bound for a in b.data]

    def group_parameters(self) -> list[list[Parameter]]:
        """The parameters of each group, in order (compile flattens the model in this order)."""
        return [list(g["params"]) for g in self.param_groups]

    # --- subclass hooks ---------------------------------------------------------
    def _buffer_names(self) -> list[str]:
        return []

    def _run(self, group: _Bound, hp: dict, step: int, grad_scale: float, zero_grad: bool,
             check_finite: bool) -> bool:
        raise NotImplementedError

    # --- public ---------------------------------------------------------------
    def zero_grad(self) -> None:
        if self._epoch != _flat.layout_epoch():
            self._bind()
        for g in self._grads:
            g.fill(0.0)

    def step(self, zero_grad: bool = False) -> bool:
        """Apply one update from the accumulated gradients. zero_grad=True clears the
        gradients in the same pass. Returns False if the step was skipped (check_finite)."""
        if self._epoch != _flat.layout_epoch():
            self._bind()
        grad_scale = 1.0
        if self.clip_grad_norm is not None:
            self.last_grad_norm = float(self._grad_norm_fn(self._grads))
            grad_scale = float(self._clip_coef_fn(self.last_grad_norm, self.clip_grad_norm))
        if self.l1:
            grad_scale = self._add_l1(grad_scale)
        check = self.check_finite
        if check and len(self._bound) > 1:
            # the whole step is skipped, so look at every group before any kernel writes
            norm = self.last_grad_norm if self.clip_grad_norm is not None else self._grad_norm_fn(self._grads)
            ok = bool(np.isfinite(norm))
            check = False
        else:
            ok = True
        if ok:
            base = self.hyperparameters()
            for b in self._bound:
                hp = {**base, **b.overrides} if b.overrides else base
                ok = bool(self._run(b, hp, self.step_count + 1, grad_scale, zero_grad, check)) and ok
        if ok:
            self.step_count += 1
        else:
            self.skipped_steps += 1
            if zero_grad:
                self.zero_grad()
        return ok

    def _add_l1(self, grad_scale: float) -> float:
        # g <- grad_scale * g + l1 * sign(p): the L1 term is not clipped (like weight_decay).
        # One extra pass per array, only when l1 is used.
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
        """Flat {name: array}: step, lr, hyper-parameters, groups' overrides and copies of
        every buffer ("exp_avg.3" is the first moment of parameter 3)."""
        state: "OrderedDict[str, np.ndarray]" = OrderedDict()
        state["step"] = np.array(self.step_count, dtype=np.int64)
        state["skipped_steps"] = np.array(self.skipped_steps, dtype=np.int64)
        for name, value in self.hyperparameters().items():
            state[f"hyper.{name}"] = np.array(value, dtype=np.float64)
        for gi, g in enumerate(self.param_groups):
            for name in _GROUP_KEYS:
                if name in g:
                    state[f"hyper.group{gi}.{name}"] = np.array(g[name], dtype=np.float64)
        for name, bufs in self._buffers.items():
            for i, b in enumerate(bufs):
                state[f"{name}.{i}"] = b.copy()
        return state

    def load_state_dict(self, state) -> None:
        """Restore step count, hyper-parameters and buffers (in place); validated first, so
        a mismatch (ValueError naming the entry and shapes) changes nothing."""
        self._plan_load(state)()

    def _plan_load(self, state, casting: str = "same_kind") -> _state.Commit:
        """Check every entry of `state` (the keys state_dict writes, each in its domain);
        returns the assignment to run (nn/_state.py)."""
        kind = type(self).__name__
        hyper_keys = [f"hyper.{name}" for name in ("lr", *self._hyper)]
        group_keys = {(gi, name): f"hyper.group{gi}.{name}" for gi, g in enumerate(self.param_groups)
                      for name in _GROUP_KEYS if name in g}
        buffer_keys = [(f"{name}.{i}", b) for name, bufs in self._buffers.items() for i, b in enumerate(bufs)]
        _state.check_keys(state, ["step", "skipped_steps", *hyper_keys, *group_keys.values(),
                                  *(k for k, _ in buffer_keys)], kind)
        step = _state.int_entry(state, "step")
        skipped = _state.int_entry(state, "skipped_steps")

        def hyper_entry(key: str, name: str) -> float:
            value = _state.float_entry(state, key, lambda v: True, "")  # a finite real number
            try:
                return _hyper(name, value)
            except ValueError as exc:
                raise _state.StateEntryError(key, f"is outside its domain ({exc})") from None

        hyper = {key[len("hyper."):]: hyper_entry(key, key[len("hyper."):]) for key in hyper_keys}
        groups = {gk: hyper_entry(key, gk[1]) for gk, key in group_keys.items()}
        plan = [(b, _state.array_entry(state, key, b, casting)) for key, b in buffer_keys]

        def commit() -> None:
            for dst, src in plan:
                dst[...] = src
            for name, value in hyper.items():
                setattr(self, name, value)
            for (gi, name), value in groups.items():
                self.param_groups[gi][name] = value
                self._bound[gi].overrides[name] = value
            self.step_count, self.skipped_steps = step, skipped
        return commit

    def __repr__(self) -> str:
        hp = ", ".join(f"{k}={v}" for k, v in self.hyperparameters().items())
        return f"{type(self).__name__}({hp}, params={len(self.params)})"


class SGD(Optimizer):
    """SGD with optional momentum / dampening / Nesterov and L2 weight_decay (torch.optim.SGD rule)."""

    _kernel_name = "sgd_step"
    _hyper = ("momentum", "dampening", "weight_decay")

    def __init__(self, params, lr: float = 0.01, momentum: float = 0.0, dampening: float = 0.0,
                 weight_decay: float = 0.0, nesterov: bool = False, **options):
        self.momentum = _hyper("momentum", momentum)
        self.dampening = _hyper("dampening", dampening)
        self.weight_decay = _hyper("weight_decay", weight_decay)
        if nesterov and (self.momentum == 0.0 or self.dampening != 0.0):
            raise ValueError("Nesterov momentum needs momentum > 0 and dampening = 0")
        self.nesterov = flag_arg(nesterov, "nesterov")
        super().__init__(params, lr, **options)

    def _buffer_names(self):
        return ["momentum_buffer"] if self.momentum else []

    def _run(self, g, hp, step, grad_scale, zero_grad, check_finite):
        return self._step_fn(g.data, g.grads, g.bufs.get("momentum_buffer"), lr=hp["lr"], step=step,
                             momentum=self.momentum, dampening=self.dampening, weight_decay=hp["weight_decay"],
                             nesterov=self.nesterov, maximize=self.maximize, grad_scale=grad_scale,
                             zero_grad=zero_grad, check_finite=check_finite, **g.extras)


class Adam(Optimizer):
    """Adam (torch.optim.Adam rule; weight_decay is added to the gradient, i.e. L2)."""

    _kernel_name = "adam_step"
    _hyper = ("beta1", "beta2", "eps", "weight_decay")
    _default_weight_decay = 0.0

    def __init__(self, params, lr: float = 1e-3, betas: tuple[float, float] = (0.9, 0.999), eps: float = 1e-8,
                 weight_decay: Optional[float] = None, amsgrad: bool = False, **options):
        if not isinstance(betas, (tuple, list)) or len(betas) != 2:
            raise TypeError(f"betas must be a pair of floats, got {type(betas).__name__} {betas!r}")
        self.beta1, self.beta2 = _hyper("beta1", betas[0], "betas[0]"), _hyper("beta2", betas[1], "betas[1]")
        self.eps = _hyper("eps", eps)
        self.weight_decay = _hyper("weight_decay", self._default_weight_decay if weight_decay is None
                                   else weight_decay)
        self.amsgrad = flag_arg(amsgrad, "amsgrad")
        super().__init__(params, lr, **options)

    def _buffer_names(self):
        return ["exp_avg", "exp_avg_sq"] + (["max_exp_avg_sq"] if self.amsgrad else [])

    def _run(self, g, hp, step, grad_scale, zero_grad, check_finite):
        return self._step_fn(g.data, g.grads, g.bufs["exp_avg"], g.bufs["exp_avg_sq"], g.bufs.get("max_exp_avg_sq"),
                             step=step, lr=hp["lr"], beta1=self.beta1, beta2=self.beta2, eps=self.eps,
                             weight_decay=hp["weight_decay"], amsgrad=self.amsgrad, maximize=self.maximize,
                             grad_scale=grad_scale, zero_grad=zero_grad, check_finite=check_finite, **g.extras)


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
        self.alpha = _hyper("alpha", alpha)
        self.eps = _hyper("eps", eps)
        self.weight_decay = _hyper("weight_decay", weight_decay)
        self.momentum = _hyper("momentum", momentum)
        self.centered = flag_arg(centered, "centered")
        super().__init__(params, lr, **options)

    def _buffer_names(self):
        return (["square_avg"] + (["momentum_buffer"] if self.momentum else [])
                + (["grad_avg"] if self.centered else []))

    def _run(self, g, hp, step, grad_scale, zero_grad, check_finite):
        return self._step_fn(g.data, g.grads, g.bufs["square_avg"], g.bufs.get("momentum_buffer"),
                             g.bufs.get("grad_avg"), lr=hp["lr"], alpha=self.alpha, eps=self.eps,
                             weight_decay=hp["weight_decay"], momentum=self.momentum, centered=self.centered,
                             maximize=self.maximize, grad_scale=grad_scale, zero_grad=zero_grad,
                             check_finite=check_finite, **g.extras)


class Adagrad(Optimizer):
    """Adagrad (torch.optim.Adagrad rule, initial accumulator 0)."""

    _kernel_name = "adagrad_step"
    _hyper = ("lr_decay", "weight_decay", "eps")

    def __init__(self, params, lr: float = 0.01, lr_decay: float = 0.0, weight_decay: float = 0.0,
                 eps: float = 1e-10, **options):
        self.lr_decay = _hyper("lr_decay", lr_decay)
        self.weight_decay = _hyper("weight_decay", weight_decay)
        self.eps = _hyper("eps", eps)
        super().__init__(params, lr, **options)

    def _buffer_names(self):
        return ["sum"]

    def _run(self, g, hp, step, grad_scale, zero_grad, check_finite):
        return self._step_fn(g.data, g.grads, g.bufs["sum"], step=step, lr=hp["lr"], lr_decay=self.lr_decay,
                             weight_decay=hp["weight_decay"], eps=self.eps, maximize=self.maximize,
                             grad_scale=grad_scale, zero_grad=zero_grad, check_finite=check_finite, **g.extras)


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
