"""Callbacks for Module.fit: EarlyStopping, ModelCheckpoint, LRScheduler.

Hooks receive `logs`, a dict of the current values (loss, accuracy, val_loss, ...,
lr). `self.trainer` (set by fit) gives access to model, optimizer and schedules;
setting trainer.stop_training = True ends fit after the current epoch.
"""
from __future__ import annotations

import math
import os
from typing import Optional

import numpy as np

from . import checkpoint
from .schedules import LRSchedule

__all__ = ["Callback", "EarlyStopping", "LRScheduler", "ModelCheckpoint"]


class Callback:
    trainer = None

    def on_train_begin(self, logs: dict) -> None: ...
    def on_epoch_begin(self, epoch: int, logs: dict) -> None: ...
    def on_batch_end(self, batch: int, logs: dict) -> None: ...
    def on_epoch_end(self, epoch: int, logs: dict) -> None: ...
    def on_train_end(self, logs: dict) -> None: ...


def _mode(monitor: str, mode: str) -> str:
    if mode not in ("auto", "min", "max"):
        raise ValueError(f"mode must be 'auto', 'min' or 'max', got {mode!r}")
    if mode == "auto":
        return "max" if "acc" in monitor else "min"
    return mode


class _Monitor(Callback):
    def __init__(self, monitor: str, mode: str, min_delta: float = 0.0):
        self.monitor = monitor
        self.mode = _mode(monitor, mode)
        self.min_delta = abs(float(min_delta))
        self.best = math.inf if self.mode == "min" else -math.inf

    def _value(self, logs: dict) -> float:
        if self.monitor not in logs:
            raise KeyError(f"{type(self).__name__} monitors '{self.monitor}' but the epoch logs only have "
                           f"{sorted(logs)} (validation metrics need validation_data or validation_split)")
        return float(logs[self.monitor])

    def _improved(self, value: float) -> bool:
        if self.mode == "min":
            return value < self.best - self.min_delta
        return value > self.best + self.min_delta


class EarlyStopping(_Monitor):
    """Stop when `monitor` has not improved by more than min_delta for `patience` epochs;
    restore_best_weights puts back the parameters of the best epoch at the end."""

    def __init__(self, monitor: str = "val_loss", patience: int = 0, min_delta: float = 0.0, mode: str = "auto",
                 restore_best_weights: bool = False):
        super().__init__(monitor, mode, min_delta)
        if isinstance(patience, bool) or not isinstance(patience, int) or patience < 0:
            raise ValueError(f"patience must be a non-negative int, got {patience!r}")
        self.patience = patience
        self.restore_best_weights = restore_best_weights
        self.wait = 0
        self.best_epoch: Optional[int] = None
        self.stopped_epoch: Optional[int] = None
        self._best_state = None

    def on_train_begin(self, logs):
        self.wait, self.best_epoch, self.stopped_epoch, self._best_state = 0, None, None, None
        self.best = math.inf if self.mode == "min" else -math.inf

    def on_epoch_end(self, epoch, logs):
        value = self._value(logs)
        if self._improved(value):
            self.best, self.best_epoch, self.wait = value, epoch, 0
            if self.restore_best_weights:
                self._best_state = self.trainer.model.state_dict()
            return
        self.wait += 1
        if self.wait >= self.patience:
            self.stopped_epoch = epoch
            self.trainer.stop_training = True

    def on_train_end(self, logs):
        if self.restore_best_weights and self._best_state is not None:
            self.trainer.model.load_state_dict(self._best_state)


class ModelCheckpoint(_Monitor):
    """Save a checkpoint (model, optimizer, schedule, RNG, epoch) after each epoch, or
    only when `monitor` improves (save_best_only). `path` may contain {epoch}."""

    def __init__(self, path: str, monitor: str = "val_loss", save_best_only: bool = False, mode: str = "auto",
                 save_optimizer: bool = True):
        super().__init__(monitor, mode)
        self.path = os.fspath(path)
        self.save_best_only = save_best_only
        self.save_optimizer = save_optimizer
        self.saved: list[str] = []

    def on_epoch_end(self, epoch, logs):
        if self.save_best_only:
            value = self._value(logs)
            if not self._improved(value):
                return
            self.best = value
        t = self.trainer
        path = self.path.format(epoch=epoch + 1)
        extra = {"epoch": epoch + 1, **{f"logs.{k}": v for k, v in logs.items() if np.isscalar(v)}}
        checkpoint.save(path, t.model, t.optimizer if self.save_optimizer else None, extra=extra,
                        schedule=t.schedule if self.save_optimizer else None)
        self.saved.append(path)


class LRScheduler(Callback):
    """Steps an LRSchedule after every epoch or every optimizer step (its `interval`)."""

    def __init__(self, schedule: LRSchedule):
        if not isinstance(schedule, LRSchedule):
            raise TypeError(f"LRScheduler needs an LRSchedule, got {type(schedule).__name__}")
        self.schedule = schedule

    def on_batch_end(self, batch, logs):
        if self.schedule.interval == "step":
            self.schedule.step()

    def on_epoch_end(self, epoch, logs):
        if self.schedule.interval == "epoch":
            self.schedule.step()
