"""Losses: forward(pred, target) -> loss; backward() -> dL/dpred of the reduced loss.

reduction "mean" | "sum" (| "none" for CrossEntropyLoss: per-sample losses, and
backward gives the gradient of their sum).
"""
from __future__ import annotations

from typing import Optional

import numpy as np

from .. import ops
from .._args import choice_arg, float_arg

__all__ = ["BCEWithLogitsLoss", "CrossEntropyLoss", "L1Loss", "Loss", "MSELoss"]


class Loss:
    _reductions = ("mean", "sum")

    def __init__(self, reduction: str = "mean"):
        self.reduction = choice_arg(reduction, "reduction", self._reductions, op=type(self).__name__)
        self._grad = None

    def __call__(self, pred, target):
        return self.forward(pred, target)

    def forward(self, pred, target):
        raise NotImplementedError

    def backward(self) -> np.ndarray:
        if self._grad is None:
            raise RuntimeError(f"{type(self).__name__}.backward called before forward")
        return self._grad

    def _pred_target(self, pred, target):
        """Float32 pred and a float32 target of the same shape."""
        name = type(self).__name__
        if not isinstance(pred, np.ndarray) or pred.dtype != np.float32:
            raise TypeError(f"{name} expects float32 predictions, got "
                            f"{getattr(pred, 'dtype', type(pred).__name__)}")
        target = np.asarray(target)
        if target.shape != pred.shape:
            raise ValueError(f"{name}: target shape {target.shape} does not match prediction shape {pred.shape}")
        return pred, target.astype(np.float32, copy=False)

    def _scale(self, n: int) -> float:
        return 1.0 / n if self.reduction == "mean" else 1.0


class CrossEntropyLoss(Loss):
    """Fused log-softmax + NLL over logits (N, C) and int labels (N,); torch semantics
    for weight and label_smoothing. The gradient is computed in the same pass."""

    _reductions = ("mean", "sum", "none")

    def __init__(self, weight: Optional[np.ndarray] = None, label_smoothing: float = 0.0, reduction: str = "mean"):
        super().__init__(reduction)
        self.weight = None if weight is None else np.ascontiguousarray(weight, dtype=np.float32)
        self.label_smoothing = float_arg(label_smoothing, "label_smoothing", low=0.0, high=1.0,
                                         op="CrossEntropyLoss")

    def forward(self, logits, labels):
        loss, self._grad = ops.cross_entropy(logits, labels, weight=self.weight,
                                             label_smoothing=self.label_smoothing,
                                             reduction=self.reduction, return_grad=True)
        return loss


class MSELoss(Loss):
    """mean or sum of (pred - target)^2."""

    def forward(self, pred, target):
        pred, target = self._pred_target(pred, target)
        diff = pred - target
        self._grad = diff * np.float32(2.0 * self._scale(diff.size))
        return float(np.dot(diff.ravel(), diff.ravel()) * self._scale(diff.size))


class L1Loss(Loss):
    """mean or sum of |pred - target| (gradient sign(pred - target), 0 at ties like torch)."""

    def forward(self, pred, target):
        pred, target = self._pred_target(pred, target)
        diff = pred - target
        self._grad = np.sign(diff) * np.float32(self._scale(diff.size))
        return float(np.abs(diff).sum(dtype=np.float64) * self._scale(diff.size))


class BCEWithLogitsLoss(Loss):
    """Binary cross-entropy on logits, stable for any magnitude:
    loss = max(z, 0) - z t + log1p(exp(-|z|)); gradient sigmoid(z) - t.
    pos_weight (broadcast over the last axis) weights the positive term like torch."""

    def __init__(self, reduction: str = "mean", pos_weight: Optional[np.ndarray] = None):
        super().__init__(reduction)
        self.pos_weight = None if pos_weight is None else np.asarray(pos_weight, dtype=np.float32)

    def forward(self, logits, target):
        z, t = self._pred_target(logits, target)
        z64, t64 = z.astype(np.float64), t.astype(np.float64)
        # log(1 + exp(-|z|)) and softplus terms in float64 (cheap, elementwise)
        log_sig_neg = -(np.maximum(z64, 0) + np.log1p(np.exp(-np.abs(z64))))  # log sigmoid(-z)
        log_sig_pos = log_sig_neg + z64                                         # log sigmoid(z)
        if self.pos_weight is None:
            per = -(t64 * log_sig_pos + (1 - t64) * log_sig_neg)
            grad = ops.sigmoid(z) - t
        else:
            pw = self.pos_weight.astype(np.float64)
            per = -(pw * t64 * log_sig_pos + (1 - t64) * log_sig_neg)
            s = ops.sigmoid(z).astype(np.float64)
            grad = (s * (pw * t64 + 1 - t64) - pw * t64).astype(np.float32)
        scale = self._scale(z.size)
        self._grad = grad * np.float32(scale)
        return float(per.sum() * scale)
