"""Image augmentation for training batches: random crop with padding, horizontal flip,
small shifts, on (N, C, H, W) float32 arrays (nnforge.data.Augment).

Each sample draws its own crop offset, shift and flip from one generator, in this order
per call: crop offsets (N, 2) in [0, 2 * crop_padding], shifts (N, 2) in [-max_shift,
max_shift], flips (N,) Bernoulli(flip); a fixed seed therefore replays the same batches.
Every step is one vectorised gather over the batch (no Python loop over samples).
"""
from __future__ import annotations

from typing import Optional

import numpy as np

from . import _random
from ._args import float_arg, int_arg

__all__ = ["Augment"]


def _window(padded: np.ndarray, top: np.ndarray, left: np.ndarray, h: int, w: int) -> np.ndarray:
    """out[n] = padded[n, :, top[n]:top[n]+h, left[n]:left[n]+w] for every n at once."""
    n = padded.shape[0]
    rows = top[:, None] + np.arange(h)  # (N, H)
    cols = left[:, None] + np.arange(w)  # (N, W)
    return padded[np.arange(n)[:, None, None, None], np.arange(padded.shape[1])[None, :, None, None],
                  rows[:, None, :, None], cols[:, None, None, :]]


class Augment:
    """Callable transform for fit(..., augment=Augment(...)): returns a new augmented batch.

    crop_padding  pad each side with zeros, then crop a random H x W window (torchvision's
                  RandomCrop(size, padding)); 0 = off
    flip          probability of a horizontal flip per sample (True = 0.5); 0 = off
    max_shift     translate by a random integer in [-max_shift, max_shift] along each axis,
                  the border repeating the edge pixels; 0 = off
    seed          None: draw from nnforge's generator (nnforge.seed fixes it); an int: a
                  private generator, so the augmentation replays independently of the rest
    """

    def __init__(self, crop_padding: int = 0, flip=0.0, max_shift: int = 0, seed: Optional[int] = None):
        self.crop_padding = int_arg(crop_padding, "crop_padding", min=0, op="Augment")
        self.max_shift = int_arg(max_shift, "max_shift", min=0, op="Augment")
        if isinstance(flip, bool):  # flip=True: the usual coin; False: never
            flip = 0.5 if flip else 0.0
        self.flip = float_arg(flip, "flip (a probability)", low=0.0, high=1.0, op="Augment")
        self.seed = None if seed is None else int_arg(seed, "seed", min=0, op="Augment")
        self._rng = None if seed is None else np.random.default_rng(self.seed)

    def _gen(self) -> np.random.Generator:
        return _random.generator() if self._rng is None else self._rng

    def __call__(self, x: np.ndarray) -> np.ndarray:
        if not isinstance(x, np.ndarray):
            raise TypeError(f"Augment expects a numpy.ndarray batch, got {type(x).__name__}")
        if x.dtype != np.float32:
            raise TypeError(f"Augment expects float32 input, got dtype {x.dtype} with shape {x.shape}")
        if x.ndim != 4:
            raise ValueError(f"Augment expects images of shape (N, C, H, W), got {x.shape}")
        n, _, h, w = x.shape
        gen = self._gen()
        out = x
        if self.crop_padding:
            p = self.crop_padding
            off = gen.integers(0, 2 * p + 1, size=(n, 2))
            padded = np.pad(out, ((0, 0), (0, 0), (p, p), (p, p)))
            out = _window(padded, off[:, 0], off[:, 1], h, w)
        if self.max_shift:
            s = self.max_shift
            shift = gen.integers(-s, s + 1, size=(n, 2))
            padded = np.pad(out, ((0, 0), (0, 0), (s, s), (s, s)), mode="edge")
            out = _window(padded, s - shift[:, 0], s - shift[:, 1], h, w)  # content moves by +shift
        if self.flip:
            flips = gen.random(n) < self.flip
            if out is x:
                out = x.copy()
            out[flips] = out[flips, :, :, ::-1]
        return out if out is not x else x.copy()

    def __repr__(self) -> str:
        return (f"Augment(crop_padding={self.crop_padding}, flip={self.flip}, max_shift={self.max_shift}, "
                f"seed={self.seed})")
