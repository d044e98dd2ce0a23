"""Weight pruning: masks on Linear / Conv2d weights, structured removal of whole units,
the gradual (Zhu & Gupta) schedule, and conversion of pruned Linear layers to CSR.

    magnitude(model, 0.9)                 mask the 90% smallest |w| of each layer
    magnitude(model, 0.9, scope="global") ... of all targeted weights together
    random(model, 0.5, seed=0)            a random 50% of each layer
    structured(model, 0.5)                remove half the neurons / output channels, shrinking layers
    GradualPruning(PruningSchedule(0.9, start=0, frequency=100, steps=10))  fit callback
    sparsity(model)                       zeros per layer and in total
    remove(model)                         drop the masks, keep the zeros
    to_sparse(model, min_sparsity=0.8)    pruned Linear -> nn.SparseLinear (inference)

Masks are Parameter.mask (uint8, 1 keep / 0 pruned, set with Parameter.set_mask, which
zeroes the pruned data); the fused optimizer steps keep masked weights exactly 0 and
checkpoints save the masks. `amount` is always the fraction of a target's weights that
is pruned after the call (weights already pruned stay pruned and count towards it); a
count is round(amount * size) (Python's round). Ties in the score are broken by
position (already pruned first, then flat index, layer order for scope="global").
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional, Sequence, Union

import numpy as np

from .nn.callbacks import Callback
from .nn.containers import Sequential
from .nn.conv import Conv2d
from .nn.layers import Dropout, Flatten, GELU, LeakyReLU, Linear, ReLU, Sigmoid, Tanh
from .nn.module import Module, Parameter
from .nn.norm import BatchNorm1d, BatchNorm2d
from .nn.pool import AvgPool2d, MaxPool2d
from .nn.sparse import SparseLinear

__all__ = ["GradualPruning", "PruningSchedule", "SparsityReport", "gradual_prune", "magnitude", "random",
           "remove", "sparsity", "structured", "to_sparse"]

_PRUNABLE = (Linear, Conv2d)
Target = Union[Module, Sequence[Parameter]]


# --- arguments ---------------------------------------------------------------------------
def _amount(amount, what: str = "amount", high_open: bool = False) -> float:
    if isinstance(amount, bool) or not isinstance(amount, (int, float, np.floating, np.integer)):
        raise TypeError(f"{what} must be a number in [0, 1], got {type(amount).__name__}")
    a = float(amount)
    if not (0.0 <= a < 1.0 if high_open else 0.0 <= a <= 1.0):
        raise ValueError(f"{what} must be in [0, {'1)' if high_open else '1]'}, got {amount!r}")
    return a


def _include(include) -> tuple[type, ...]:
    if include is None:
        return _PRUNABLE
    include = tuple(include) if isinstance(include, (list, tuple)) else (include,)
    for cls in include:
        if not (isinstance(cls, type) and issubclass(cls, _PRUNABLE)):
            name = cls.__name__ if isinstance(cls, type) else repr(cls)
            raise ValueError(f"include: {name} is not a prunable layer type (Linear or Conv2d, or a subclass)")
    return include


def _targets(target: Target, include) -> list[tuple[str, Parameter]]:
    """(name, weight Parameter) of every targeted layer, in model order."""
    if isinstance(target, Module):
        kinds = _include(include)
        found = [(f"{n}.weight" if n else "weight", m.weight) for n, m in target.named_modules()
                 if isinstance(m, kinds)]
        if not found:
            raise ValueError(f"{type(target).__name__} has no prunable layer "
                             f"({', '.join(k.__name__ for k in kinds)})")
        return found
    if include is not None:
        raise ValueError("include applies to a model; pass either a model or a list of Parameters")
    if not isinstance(target, (list, tuple)) or not target:
        raise TypeError(f"expected a Module or a non-empty list of Parameters, got {type(target).__name__}")
    for i, p in enumerate(target):
        if not isinstance(p, Parameter):
            raise TypeError(f"parameter {i} is {type(p).__name__}, not a Parameter")
    return [(f"param{i}", p) for i, p in enumerate(target)]


# --- unstructured masks ----------------------------------------------------------------
def _keep_mask(p: Parameter) -> np.ndarray:
    return np.ones(p.shape, np.uint8) if p.mask is None else p.mask


def _apply(params: list[Parameter], scores: list[np.ndarray], amount: float, scope: str) -> None:
    """Prune round(amount * n) entries of lowest score per parameter (scope "layer") or over
    all of them (scope "global"); already pruned entries score -1, so they go first."""
    if scope not in ("layer", "global"):
        raise ValueError(f"scope must be 'layer' or 'global', got {scope!r}")
    keeps = [_keep_mask(p).ravel() for p in params]
    ranked = [np.where(k != 0, s.ravel(), -1.0) for k, s in zip(keeps, scores)]
    groups = [[i] for i in range(len(params))] if scope == "layer" else [list(range(len(params)))]
    new = [k.copy() for k in keeps]
    for group in groups:
        flat = np.concatenate([ranked[i] for i in group])
        count = round(amount * flat.size)
        order = np.argsort(flat, kind="stable")[:count]  # stable: ties in position order
        drop = np.zeros(flat.size, bool)
        drop[order] = True
        start = 0
        for i in group:
            n = ranked[i].size
            new[i][drop[start:start + n]] = 0
            start += n
    for p, m in zip(params, new):
        p.set_mask(m.reshape(p.shape))


def magnitude(target: Target, amount: float, *, scope: str = "layer", include=None) -> None:
    """Mask the fraction `amount` of smallest-|w| weights of each targeted layer (scope
    "layer") or of all of them together ("global"). target: a model (its Linear and Conv2d
    weights, or the layer types in `include`; biases and norms are never pruned) or a list
    of Parameters."""
    a = _amount(amount)
    named = _targets(target, include)
    params = [p for _, p in named]
    _apply(params, [np.abs(p.data.astype(np.float64)) for p in params], a, scope)


def random(target: Target, amount: float, *, seed: int, scope: str = "layer", include=None) -> None:
    """Mask a random fraction `amount` of the targeted weights (same targets and scopes as
    magnitude); `seed` makes the choice reproducible."""
    a = _amount(amount)
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)):
        raise TypeError(f"seed must be an int, got {type(seed).__name__}")
    named = _targets(target, include)
    params = [p for _, p in named]
    rng = np.random.default_rng(int(seed))
    _apply(params, [rng.random(p.shape) for p in params], a, scope)


def remove(target: Target) -> None:
    """Drop the masks of every Parameter of `target`; the pruned weights stay 0 but may
    train again."""
    params = target.parameters() if isinstance(target, Module) else [p for _, p in _targets(target, None)]
    for p in params:
        p.clear_mask()


# --- reporting -------------------------------------------------------------------------
@dataclass
class SparsityReport:
    """layers: name -> (zero weights, weights) for every prunable layer's weight."""
    layers: dict

    @property
    def total(self) -> float:
        zeros = sum(z for z, _ in self.layers.values())
        size = sum(n for _, n in self.layers.values())
        return zeros / size if size else 0.0

    def __getitem__(self, name: str) -> float:
        z, n = self.layers[name]
        return z / n if n else 0.0

    def __str__(self) -> str:
        width = max([len(n) for n in self.layers] + [5])
        rows = [f"{n:<{width}}  {z:>10d} / {t:<10d} {self[n]:7.2%}" for n, (z, t) in self.layers.items()]
        zeros = sum(z for z, _ in self.layers.values())
        size = sum(n for _, n in self.layers.values())
        rows.append(f"{'total':<{width}}  {zeros:>10d} / {size:<10d} {self.total:7.2%}")
        return "\n".join(rows)


def sparsity(model: Module) -> SparsityReport:
    """Zeros in the weight of every Linear, Conv2d and SparseLinear of `model`."""
    if not isinstance(model, Module):
        raise TypeError(f"sparsity expects a Module, got {type(model).__name__}")
    layers = {}
    for name, m in model.named_modules():
        key = f"{name}.weight" if name else "weight"
        if isinstance(m, _PRUNABLE):
            layers[key] = (int(m.weight.size - np.count_nonzero(m.weight.data)), int(m.weight.size))
        elif isinstance(m, SparseLinear):
            size = m.in_features * m.out_features
            layers[key] = (int(size - np.count_nonzero(m.weight.values)), size)
    return SparsityReport(layers)


# --- gradual pruning -------------------------------------------------------------------
class PruningSchedule:
    """Zhu & Gupta (2017, "To prune, or not to prune") cubic sparsity schedule:
    s_t = s_f + (s_i - s_f) (1 - (t - t0) / (n dt))^3, pruning at t = t0, t0 + dt, ...,
    t0 + n dt (t counts optimizer steps completed); s_i before t0, s_f after."""

    def __init__(self, final: float, *, initial: float = 0.0, start: int = 0, frequency: int = 100,
                 steps: int = 10):
        self.final = _amount(final, "final")
        self.initial = _amount(initial, "initial")
        if self.initial > self.final:
            raise ValueError(f"initial sparsity ({initial}) must not exceed final ({final})")
        for name, v, low in (("start", start, 0), ("frequency", frequency, 1), ("steps", steps, 1)):
            if isinstance(v, bool) or not isinstance(v, (int, np.integer)):
                raise TypeError(f"{name} must be an int, got {type(v).__name__}")
            if v < low:
                raise ValueError(f"{name} must be >= {low}, got {v}")
        self.start, self.frequency, self.steps = int(start), int(frequency), int(steps)

    def sparsity(self, t: int) -> float:
        span = self.steps * self.frequency
        progress = min(max(t - self.start, 0), span) / span
        return self.final + (self.initial - self.final) * (1.0 - progress) ** 3

    def is_pruning_step(self, t: int) -> bool:
        k, r = divmod(t - self.start, self.frequency)
        return r == 0 and 0 <= k <= self.steps


def gradual_prune(target: Target, step: int, schedule: PruningSchedule, *, scope: str = "layer",
                  include=None) -> Optional[float]:
    """The function form of GradualPruning for plain loops: call after optimizer step
    number `step` (1, 2, ...); prunes by magnitude to schedule.sparsity(step) when it is a
    pruning step and returns that sparsity, else returns None."""
    if not isinstance(schedule, PruningSchedule):
        raise TypeError(f"schedule must be a PruningSchedule, got {type(schedule).__name__}")
    if not schedule.is_pruning_step(step):
        return None
    s = schedule.sparsity(step)
    magnitude(target, s, scope=scope, include=include)
    return s


class GradualPruning(Callback):
    """fit callback: gradual_prune after every optimizer step (counted from the start of
    fit); the last applied sparsity is in `self.current`."""

    def __init__(self, schedule: PruningSchedule, *, scope: str = "layer", include=None):
        if not isinstance(schedule, PruningSchedule):
            raise TypeError(f"schedule must be a PruningSchedule, got {type(schedule).__name__}")
        self.schedule, self.scope, self.include = schedule, scope, include
        self.step, self.current = 0, None

    def on_train_begin(self, logs: dict) -> None:
        self.step = 0

    def on_batch_end(self, batch: int, logs: dict) -> None:
        self.step += 1
        s = gradual_prune(self.trainer.model, self.step, self.schedule, scope=self.scope, include=self.include)
        if s is not None:
            self.current = s


# --- structured pruning ----------------------------------------------------------------
_PASS_THROUGH = (ReLU, LeakyReLU, GELU, Tanh, Sigmoid, Dropout, MaxPool2d, AvgPool2d)


def _unit_scores(layer, criterion: str) -> np.ndarray:
    """One score per output unit: the l1 / l2 norm of its incoming weights."""
    w = layer.weight.data.astype(np.float64)
    w = w.T if isinstance(layer, Linear) else w.reshape(w.shape[0], -1)  # (units, fan_in)
    return np.abs(w).sum(axis=1) if criterion == "l1" else np.sqrt((w * w).sum(axis=1))


def _replace(owner: Module, name: str, value) -> None:
    """owner.name = value in the entry's old place (Module.__setattr__ re-appends it, which
    would reorder a Sequential's layers or a layer's parameters)."""
    table = owner._modules if isinstance(value, Module) else owner._params
    if value is not None and name in table:
        table[name] = value
        object.__setattr__(owner, name, value)
    else:
        setattr(owner, name, value)


def _sliced(p: Optional[Parameter], index, axis: int) -> Optional[Parameter]:
    """A new Parameter holding p's entries at `index` along `axis` (its mask too)."""
    if p is None:
        return None
    q = Parameter(np.take(p.data, index, axis=axis))
    if p.mask is not None:
        q.set_mask(np.take(p.mask, index, axis=axis))
    return q


def _shrink_outputs(layer, keep: np.ndarray) -> None:
    if isinstance(layer, Linear):
        _replace(layer, "weight", _sliced(layer.weight, keep, 1))
        layer.out_features = len(keep)
    else:
        _replace(layer, "weight", _sliced(layer.weight, keep, 0))
        layer.out_channels = len(keep)
    _replace(layer, "bias", _sliced(layer.bias, keep, 0))


def _shrink_norm(norm, keep: np.ndarray) -> None:
    _replace(norm, "weight", _sliced(norm.weight, keep, 0))
    _replace(norm, "bias", _sliced(norm.bias, keep, 0))
    for name in ("running_mean", "running_var"):
        if name in norm._buffers:
            norm._set_buffer(name, np.ascontiguousarray(getattr(norm, name)[keep]))
    norm.num_features = len(keep)


def _shrink_inputs(layer, keep: np.ndarray, units: int) -> None:
    """The consumer's inputs: `units` producer units, each `block` consecutive inputs
    (a Flatten of conv channels gives H*W per channel)."""
    if isinstance(layer, Linear):
        block = layer.in_features // units
        rows = (keep[:, None] * block + np.arange(block)).ravel()
        _replace(layer, "weight", _sliced(layer.weight, rows, 0))
        layer.in_features = len(rows)
    else:
        _replace(layer, "weight", _sliced(layer.weight, keep, 1))
        layer.in_channels = len(keep)


def _plan(layers: list, i: int):
    """(norms, consumer) after producer layers[i] when its units can be removed: every
    layer in between acts per unit, and the consumer reads the units in order."""
    producer, norms, flattened = layers[i], [], False
    units = producer.out_features if isinstance(producer, Linear) else producer.out_channels
    if isinstance(producer, Conv2d) and producer.groups != 1:
        return None
    for m in layers[i + 1:]:
        if isinstance(m, (BatchNorm1d, BatchNorm2d)):
            if flattened or m.num_features != units:
                return None
            norms.append(m)
        elif isinstance(m, Flatten):
            if isinstance(producer, Linear):
                return None
            flattened = True
        elif isinstance(m, _PASS_THROUGH):
            if flattened and not isinstance(m, (Dropout, ReLU, LeakyReLU, GELU, Tanh, Sigmoid)):
                return None
        elif isinstance(m, Linear):
            ok = (flattened or isinstance(producer, Linear)) and m.in_features % units == 0
            return (norms, m) if ok and (flattened or m.in_features == units) else None
        elif isinstance(m, Conv2d):
            ok = not flattened and isinstance(producer, Conv2d) and m.groups == 1 and m.in_channels == units
            return (norms, m) if ok else None
        else:
            return None
    return None


def structured(model: Sequential, amount: float, *, criterion: str = "l1") -> Sequential:
    """Remove the fraction `amount` (round(amount * units), at least one unit kept) of the
    neurons of each Linear / output channels of each Conv2d in `model` that feeds another
    Linear / Conv2d through per-unit layers only (activations, Dropout, pools, BatchNorm,
    a Flatten of conv channels); the lowest l1 / l2 weight norms go (ties: lowest index).
    The layers really shrink: the producer's weight and bias, BatchNorm's channels and
    statistics, the consumer's input features. The model computes the same function when
    the removed units' outputs were already 0 (zero weights and bias, e.g. after a
    structured fine-tune). Layers are given new Parameters: compile again (a new
    optimizer) before training. Returns model (changed in place)."""
    if not isinstance(model, Sequential):
        raise TypeError(f"structured pruning needs a Sequential model, got {type(model).__name__}")
    a = _amount(amount, high_open=True)
    if criterion not in ("l1", "l2"):
        raise ValueError(f"criterion must be 'l1' or 'l2', got {criterion!r}")
    layers = list(model)
    plans = [(layers[i], _plan(layers, i)) for i in range(len(layers)) if isinstance(layers[i], _PRUNABLE)]
    plans = [(producer, plan) for producer, plan in plans if plan is not None]
    if not plans:
        raise ValueError("structured: no Linear / Conv2d layer of this model feeds another one through per-unit "
                         "layers, so no unit can be removed")
    for producer, (norms, consumer) in plans:
        scores = _unit_scores(producer, criterion)
        units = len(scores)
        drop = min(round(a * units), units - 1)
        keep = np.sort(np.argsort(scores, kind="stable")[drop:])
        _shrink_outputs(producer, keep)
        for norm in norms:
            _shrink_norm(norm, keep)
        _shrink_inputs(consumer, keep, units)
    return model


# --- sparse inference ------------------------------------------------------------------
def _replace_linears(parent: Module, min_sparsity: float) -> int:
    count = 0
    for name, child in list(parent._modules.items()):
        if type(child) is Linear:
            w = child.weight.data
            if (w.size - np.count_nonzero(w)) >= min_sparsity * w.size:
                _replace(parent, name, SparseLinear.from_linear(child))
                count += 1
        else:
            count += _replace_linears(child, min_sparsity)
    return count


def to_sparse(model: Module, min_sparsity: float = 0.8) -> Module:
    """Replace every Linear of `model` whose weight is at least `min_sparsity` zeros by an
    nn.SparseLinear (CSR weight, inference only: no backward). Returns model (changed in
    place)."""
    if not isinstance(model, Module):
        raise TypeError(f"to_sparse expects a Module, got {type(model).__name__}")
    _replace_linears(model, _amount(min_sparsity, "min_sparsity"))
    return model
