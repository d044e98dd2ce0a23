"""Range observers for static post-training quantisation: each sees float32 batches
(observe) and reports the range to quantise to (range -> (lo, hi))."""
from __future__ import annotations

import numpy as np

from .._args import float_arg

__all__ = ["MinMaxObserver", "PercentileObserver"]


class MinMaxObserver:
    """The smallest and largest value seen over every batch."""

    def __init__(self):
        self.lo = self.hi = None

    def _merge(self, lo: float, hi: float) -> None:
        self.lo = lo if self.lo is None else min(self.lo, lo)
        self.hi = hi if self.hi is None else max(self.hi, hi)

    def observe(self, x: np.ndarray) -> None:
        x = np.asarray(x)
        if x.size:
            self._merge(float(x.min()), float(x.max()))

    def range(self) -> tuple[float, float]:
        if self.lo is None:
            raise ValueError(f"{type(self).__name__} has seen no data: run calibrate(model, batches) first")
        return self.lo, self.hi


class PercentileObserver(MinMaxObserver):
    """The (100 - p)th and pth percentiles of each batch, widened over the batches:
    clips rare outliers so the remaining values get a finer scale."""

    def __init__(self, p: float = 99.99):
        super().__init__()
        self.p = float_arg(p, "p", low=50.0, high=100.0, low_open=True, op="PercentileObserver")

    def observe(self, x: np.ndarray) -> None:
        x = np.asarray(x, np.float64).ravel()
        if x.size:
            lo, hi = np.percentile(x, [100.0 - self.p, self.p])
            self._merge(float(lo), float(hi))
