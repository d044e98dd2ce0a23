"""Metrics over batches: accuracy and top-k accuracy.

A Metric accumulates update(pred, target) over batches and reports result().
Predictions are logits/scores (N, C); targets are int labels (N,) or one-hot (N, C).
Binary outputs (N,) or (N, 1) are thresholded at 0 (logits) against 0/1 targets.
"""
from __future__ import annotations

import numpy as np

__all__ = ["Accuracy", "Metric", "TopKAccuracy", "accuracy", "get_metric", "top_k_accuracy"]


def _labels(pred: np.ndarray, target) -> np.ndarray:
    target = np.asarray(target)
    if target.ndim == pred.ndim and target.shape == pred.shape and pred.ndim == 2 and pred.shape[1] > 1:
        return target.argmax(axis=1)  # one-hot / probabilities
    if target.shape[:1] != pred.shape[:1]:
        raise ValueError(f"metric: {len(target)} targets for {len(pred)} predictions "
                         f"(shapes {target.shape} and {pred.shape})")
    return target.reshape(len(target), -1)[:, 0] if target.ndim > 1 else target


def _correct(pred: np.ndarray, target, k: int = 1) -> int:
    pred = np.asarray(pred)
    labels = _labels(pred, target)
    if pred.ndim == 1 or (pred.ndim == 2 and pred.shape[1] == 1):
        return int(((pred.reshape(-1) > 0) == (labels > 0.5)).sum())
    if pred.ndim != 2:
        raise ValueError(f"metric expects predictions of shape (N, C), got {pred.shape}")
    if k == 1:
        return int((pred.argmax(axis=1) == labels).sum())
    k = min(k, pred.shape[1])
    # top-k by comparison with the label's own score: ties counted against the label,
    # (a label is in the top k when fewer than k classes score strictly higher).
    label_scores = pred[np.arange(len(pred)), labels.astype(np.int64)]
    higher = (pred > label_scores[:, None]).sum(axis=1)
    return int((higher < k).sum())


def accuracy(pred: np.ndarray, target) -> float:
    """Fraction of rows whose argmax matches the target."""
    n = len(pred)
    return _correct(pred, target) / n if n else 0.0


def top_k_accuracy(pred: np.ndarray, target, k: int = 5) -> float:
    """Fraction of rows whose target is among the k highest scores."""
    n = len(pred)
    return _correct(pred, target, k) / n if n else 0.0


class Metric:
    name = "metric"

    def reset(self) -> None:
        self.correct = 0
        self.count = 0

    def __init__(self):
        self.reset()

    def update(self, pred, target) -> None:
        raise NotImplementedError

    def result(self) -> float:
        return self.correct / self.count if self.count else 0.0


class Accuracy(Metric):
    name = "accuracy"

    def update(self, pred, target) -> None:
        self.correct += _correct(pred, target)
        self.count += len(pred)


class TopKAccuracy(Metric):
    def __init__(self, k: int = 5):
        if isinstance(k, bool) or not isinstance(k, int) or k < 1:
            raise ValueError(f"k must be a positive int, got {k!r}")
        self.k = k
        self.name = f"top{k}_accuracy"
        super().__init__()

    def update(self, pred, target) -> None:
        self.correct += _correct(pred, target, self.k)
        self.count += len(pred)


def get_metric(spec) -> Metric:
    """'accuracy' / 'acc', 'top5' / 'top_5_accuracy' / 'top5_accuracy', or a Metric instance."""
    if isinstance(spec, Metric):
        return spec
    if isinstance(spec, str):
        key = spec.lower().replace("_", "")
        if key in ("accuracy", "acc"):
            return Accuracy()
        if key.startswith("top"):
            digits = key[3:].replace("accuracy", "").replace("k", "")
            if digits.isdigit():
                return TopKAccuracy(int(digits))
    raise ValueError(f"unknown metric {spec!r}; use 'accuracy', 'top5' (any k) or a Metric instance")
