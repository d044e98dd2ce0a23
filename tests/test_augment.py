"""nnforge.data.Augment: shapes kept, crops / shifts / flips exact against a per-sample
NumPy reference drawing the same numbers, seeded, and applied to training batches only."""
import numpy as np
import pytest

import nnforge
from layer_check import randn
from nnforge import data, nn


def _reference(x, crop_padding, flip, max_shift, seed):
    """Sample by sample, in Augment's documented draw order."""
    g = np.random.default_rng(seed)
    n, _, h, w = x.shape
    out = x.copy()
    if crop_padding:
        p = crop_padding
        off = g.integers(0, 2 * p + 1, size=(n, 2))
        for i in range(n):
            padded = np.pad(out[i], ((0, 0), (p, p), (p, p)))
            out[i] = padded[:, off[i, 0]:off[i, 0] + h, off[i, 1]:off[i, 1] + w]
    if max_shift:
        s = max_shift
        sh = g.integers(-s, s + 1, size=(n, 2))
        for i in range(n):
            dy, dx = sh[i]
            src_y = np.clip(np.arange(h) - dy, 0, h - 1)  # content moves by +shift, edges repeat
            src_x = np.clip(np.arange(w) - dx, 0, w - 1)
            out[i] = out[i][:, src_y][:, :, src_x]
    if flip:
        flips = g.random(n) < flip
        for i in np.flatnonzero(flips):
            out[i] = out[i][:, :, ::-1]
    return out


@pytest.mark.parametrize("crop,flip,shift", [(2, 0.0, 0), (0, 0.5, 0), (0, 0.0, 1), (1, 0.5, 2), (3, 1.0, 0)])
def test_matches_reference_and_keeps_shape(rng, crop, flip, shift):
    x = randn(rng, 9, 2, 5, 7)
    got = data.Augment(crop_padding=crop, flip=flip, max_shift=shift, seed=11)(x)
    assert got.shape == x.shape and got.dtype == np.float32 and not np.shares_memory(got, x)
    np.testing.assert_array_equal(got, _reference(x, crop, flip, shift, 11))


def test_flip_and_shift_exact_cases(rng):
    x = randn(rng, 4, 1, 3, 3)
    np.testing.assert_array_equal(data.Augment(flip=1.0, seed=0)(x), x[:, :, :, ::-1])
    np.testing.assert_array_equal(data.Augment(seed=0)(x), x)  # everything off: a copy


def test_same_seed_same_result_and_nnforge_seed(rng):
    x = randn(rng, 6, 3, 4, 4)
    a, b = data.Augment(2, True, 1, seed=5), data.Augment(2, True, 1, seed=5)
    first = a(x)
    np.testing.assert_array_equal(first, b(x))
    assert not np.array_equal(a(x), first)  # the next batch draws anew
    nnforge.seed(3)
    c = data.Augment(crop_padding=2)(x)
    nnforge.seed(3)
    np.testing.assert_array_equal(data.Augment(crop_padding=2)(x), c)


def test_bad_arguments(rng):
    with pytest.raises(TypeError, match="float32"):
        data.Augment(1)(np.zeros((2, 1, 3, 3)))
    with pytest.raises(ValueError, match=r"\(N, C, H, W\), got \(2, 3\)"):
        data.Augment(1)(np.zeros((2, 3), np.float32))
    with pytest.raises(ValueError, match="crop_padding must be >= 0"):
        data.Augment(-1)
    with pytest.raises(ValueError, match="probability"):
        data.Augment(flip=1.5)
    with pytest.raises(TypeError, match="augment must be a callable"):
        nn.Sequential(nn.Flatten(), nn.Linear(4, 2)).compile("sgd").fit(np.zeros((4, 1, 2, 2), np.float32),
                                                                      np.zeros(4, np.int64), augment=3, verbose=0)


class _Spy(nn.Module):
    """Records every batch the model sees."""

    def __init__(self, log):
        super().__init__()
        self.log = log

    def forward(self, x):
        self.log.append((self.training, x.copy()))
        return x

    def backward(self, g):
        return g


def test_fit_augments_training_batches_only(rng):
    x = randn(rng, 12, 1, 4, 4)
    y = rng.integers(0, 2, 12)
    log = []
    model = nn.Sequential(_Spy(log), nn.Flatten(), nn.Linear(16, 2)).compile("sgd", lr=0.0)
    calls = []

    def mark(xb):
        calls.append(len(xb))
        return xb + np.float32(100.0)

    model.fit(x, y, epochs=1, batch_size=4, validation_data=(x, y), shuffle=False, verbose=0, augment=mark)
    train = [b for t, b in log if t]
    val = [b for t, b in log if not t]
    assert calls == [4, 4, 4] and len(train) == 3 and len(val) == 1
    np.testing.assert_array_equal(np.concatenate(train), x + np.float32(100.0))
    np.testing.assert_array_equal(val[0], x)  # validation never augmented
    log.clear()
    model.evaluate(x, y)
    model.predict(x)
    assert all(not t and np.array_equal(b, x) for t, b in log)
