"""Learning-rate schedules: closed-form lr(t) written into optimizer.lr.

t counts schedule steps taken (0 at construction, which already sets lr(0), as torch).
interval="epoch" (default) means fit() calls step() after every epoch, "step" after
every optimizer step. state_dict() holds t and the base lr, so a resumed run continues
the same curve.
"""
from __future__ import annotations

import math
from typing import Optional

import numpy as np

from .._args import choice_arg, float_arg, int_arg
from . import _state

__all__ = ["CosineAnnealingLR", "ExponentialLR", "LRSchedule", "LinearWarmup", "OneCycleLR", "StepLR"]


def _positive_int(value, name: str) -> int:
    return int_arg(value, name, min=1)


class LRSchedule:
    def __init__(self, optimizer, interval: str = "epoch"):
        choice_arg(interval, "interval", ("epoch", "step"))
        self.optimizer = optimizer
        self.interval = interval
        self.base_lr = float(optimizer.lr)
        self.t = 0
        self._apply()

    def lr_at(self, t: int) -> float:
        raise NotImplementedError

    def _apply(self) -> None:
        self.optimizer.lr = float(self.lr_at(self.t))

    def step(self) -> float:
        """Advance one epoch/step; sets and returns the new lr."""
        self.t += 1
        self._apply()
        return self.optimizer.lr

    def get_last_lr(self) -> float:
        return self.optimizer.lr

    def state_dict(self) -> dict:
        return {"t": np.array(self.t, dtype=np.int64), "base_lr": np.array(self.base_lr, dtype=np.float64)}

    def load_state_dict(self, state) -> None:
        """Restore t and the base lr (and so the optimizer's lr); checked first, so a bad
        entry (ValueError naming it) changes nothing."""
        self._plan_load(state)()

    def _plan_load(self, state, casting: str = "same_kind") -> _state.Commit:
        """Check `state` (t >= 0, a finite base lr >= 0, a finite lr at t); returns the
        assignment to run (nn/_state.py)."""
        _state.check_keys(state, ["t", "base_lr"], type(self).__name__)
        t = _state.int_entry(state, "t")
        base_lr = _state.float_entry(state, "base_lr", lambda v: v >= 0.0, ">= 0")
        old = self.base_lr
        try:  # the lr this state means, computed before anything changes for good
            self._set_base_lr(base_lr)
            lr = float(self.lr_at(t))
        except (ArithmeticError, ValueError):
            lr = math.nan
        finally:
            self._set_base_lr(old)
        if not math.isfinite(lr):
            raise _state.StateEntryError("t", f"= {t} gives no finite learning rate")

        def commit() -> None:
            self._set_base_lr(base_lr)
            self.t = t
            self.optimizer.lr = lr
        return commit

    def _set_base_lr(self, value: float) -> None:
        self.base_lr = value


class StepLR(LRSchedule):
    """lr = base * gamma ** (t // step_size)."""

    def __init__(self, optimizer, step_size: int, gamma: float = 0.1, interval: str = "epoch"):
        self.step_size = _positive_int(step_size, "step_size")
        self.gamma = float_arg(gamma, "gamma", low=0.0)
        super().__init__(optimizer, interval)

    def lr_at(self, t):
        return self.base_lr * self.gamma ** (t // self.step_size)


class ExponentialLR(LRSchedule):
    """lr = base * gamma ** t."""

    def __init__(self, optimizer, gamma: float, interval: str = "epoch"):
        self.gamma = float_arg(gamma, "gamma", low=0.0)
        super().__init__(optimizer, interval)

    def lr_at(self, t):
        return self.base_lr * self.gamma ** t


class CosineAnnealingLR(LRSchedule):
    """lr = eta_min + (base - eta_min) * (1 + cos(pi * t / t_max)) / 2, held at eta_min after t_max."""

    def __init__(self, optimizer, t_max: int, eta_min: float = 0.0, interval: str = "epoch"):
        self.t_max = _positive_int(t_max, "t_max")
        self.eta_min = float_arg(eta_min, "eta_min", low=0.0)
        super().__init__(optimizer, interval)

    def lr_at(self, t):
        t = min(t, self.t_max)
        return self.eta_min + (self.base_lr - self.eta_min) * (1.0 + math.cos(math.pi * t / self.t_max)) / 2.0


class OneCycleLR(LRSchedule):
    """torch.optim.lr_scheduler.OneCycleLR (two phases, cosine annealing): from
    max_lr/div_factor up to max_lr over pct_start of total_steps, then down to
    max_lr/(div_factor*final_div_factor) at step total_steps - 1. Usually interval="step"."""

    def __init__(self, optimizer, max_lr: float, total_steps: int, pct_start: float = 0.3,
                 div_factor: float = 25.0, final_div_factor: float = 1e4, interval: str = "step"):
        self.max_lr = float_arg(max_lr, "max_lr", low=0.0)
        self.total_steps = _positive_int(total_steps, "total_steps")
        pct_start = float_arg(pct_start, "pct_start", low=0.0, high=1.0, low_open=True, high_open=True)
        div_factor = float_arg(div_factor, "div_factor", low=0.0, low_open=True)
        final_div_factor = float_arg(final_div_factor, "final_div_factor", low=0.0, low_open=True)
        self.initial_lr = self.max_lr / div_factor
        self.min_lr = self.initial_lr / final_div_factor
        self.peak_step = float(pct_start * self.total_steps) - 1.0
        super().__init__(optimizer, interval)

    @staticmethod
    def _cos(start, end, pct):
        return end + (start - end) / 2.0 * (math.cos(math.pi * pct) + 1.0)

    def lr_at(self, t):
        if t <= self.peak_step:
            return self._cos(self.initial_lr, self.max_lr, t / self.peak_step if self.peak_step > 0 else 1.0)
        span = (self.total_steps - 1) - self.peak_step
        return self._cos(self.max_lr, self.min_lr, min(1.0, (t - self.peak_step) / span) if span > 0 else 1.0)


class LinearWarmup(LRSchedule):
    """Linear ramp from start_factor * lr(0) to lr(0) of `after` over warmup steps, then
    `after` continues from its own t = 0 (after.lr_at(t - warmup))."""

    def __init__(self, after: LRSchedule, warmup: int, start_factor: float = 0.0, interval: Optional[str] = None):
        self.after = after
        self.warmup = _positive_int(warmup, "warmup")
        self.start_factor = float_arg(start_factor, "start_factor", low=0.0, high=1.0)
        super().__init__(after.optimizer, interval or after.interval)
        self.base_lr = after.base_lr

    def lr_at(self, t):
        if t < self.warmup:
            frac = self.start_factor + (1.0 - self.start_factor) * t / self.warmup
            return self.after.lr_at(0) * frac
        return self.after.lr_at(t - self.warmup)

    def _set_base_lr(self, value: float) -> None:
        self.base_lr = self.after.base_lr = value
