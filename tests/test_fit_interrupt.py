"""KeyboardInterrupt during fit: it propagates (as in Keras), the progress bar is closed,
and the model, optimizer and RNG equal the state after exactly optimizer.step_count
steps of an uninterrupted run (a step is never cut, whatever moment the interrupt hits).
The references are replayed: one uninterrupted run records its state after every step."""
import json
import signal
import threading
import time

import numpy as np
import pytest

import nnforge
from nnforge import _random, nn

EPOCHS, BATCH = 3, 8


def _data():
    rng = np.random.default_rng(5)
    x = rng.normal(size=(60, 12)).astype(np.float32)
    return x, (x[:, :4].argmax(1)).astype(np.int64)


def _setup():
    """A model with BatchNorm statistics and dropout draws, and an optimizer whose step is
    two kernel calls (two parameter groups): all of it must move together."""
    nnforge.seed(11)
    model = nn.Sequential(nn.Linear(12, 512, activation="relu"), nn.Dropout(0.3), nn.BatchNorm1d(512),
                          nn.Linear(512, 4))
    model.compile(nn.AdamW(nn.decay_groups(model, 0.05), lr=1e-2), loss="cross_entropy")
    return model


def _state(model):
    opt = model.optimizer
    arrays = {**{f"m.{k}": v for k, v in model.state_dict().items()},
              **{f"o.{k}": v for k, v in opt.state_dict().items()}}
    out = {k: np.asarray(v).tobytes() for k, v in arrays.items()}
    out["rng"] = json.dumps(_random.generator().bit_generator.state)
    return out


class _Record(nn.Callback):
    def __init__(self, model):
        self.states = [_state(model)]

    def on_batch_end(self, batch, logs):
        self.states.append(_state(self.trainer.model))


@pytest.fixture(scope="module")
def references():
    """references[s]: the state after s steps of an uninterrupted fit."""
    model = _setup()
    rec = _Record(model)
    model.fit(*_data(), epochs=EPOCHS, batch_size=BATCH, callbacks=[rec], verbose=0)
    assert len(rec.states) == model.optimizer.step_count + 1 == EPOCHS * 8 + 1
    return rec.states


class _RaiseAt(nn.Callback):
    def __init__(self, hook, at):
        self.hook, self.at, self.calls = hook, at, 0

    def _maybe(self, hook):
        if hook == self.hook:
            if self.calls == self.at:
                raise KeyboardInterrupt
            self.calls += 1

    def on_epoch_begin(self, epoch, logs):
        self._maybe("epoch_begin")

    def on_batch_end(self, batch, logs):
        self._maybe("batch_end")

    def on_epoch_end(self, epoch, logs):
        self._maybe("epoch_end")


def _open_bars():
    tqdm = pytest.importorskip("tqdm")
    return len(getattr(tqdm.tqdm, "_instances", ()))


@pytest.mark.parametrize("hook,at,steps,epochs_done", [
    ("batch_end", 0, 1, 0), ("batch_end", 5, 6, 0), ("batch_end", 8, 9, 1), ("batch_end", 23, 24, 2),
    ("epoch_begin", 1, 8, 1), ("epoch_end", 1, 16, 2)])
def test_interrupt_from_a_callback(references, hook, at, steps, epochs_done):
    model = _setup()
    with pytest.raises(KeyboardInterrupt):
        model.fit(*_data(), epochs=EPOCHS, batch_size=BATCH, callbacks=[_RaiseAt(hook, at)], verbose=1)
    assert model.optimizer.step_count == steps
    assert _state(model) == references[steps]
    assert _open_bars() == 0
    assert model._trainer().epoch == epochs_done
    assert model[0].needs_input_grad  # fit's temporary settings are put back


class _SigintAfter(nn.Callback):
    """Sends SIGINT to the main thread `delay` seconds after training starts."""

    def __init__(self, delay):
        self.timer = threading.Timer(delay, signal.pthread_kill, (threading.main_thread().ident, signal.SIGINT))

    def on_train_begin(self, logs):
        self.timer.start()


def test_real_sigint_at_random_moments(references, rng):
    """Many runs, each interrupted by a real SIGINT at a random moment (inside kernels,
    between the two groups' updates, in forward...): the state always matches a whole
    number of steps."""
    model = _setup()
    t0 = time.perf_counter()
    model.fit(*_data(), epochs=EPOCHS, batch_size=BATCH, verbose=0)
    duration = time.perf_counter() - t0
    for _ in range(12):
        model = _setup()
        cb = _SigintAfter(float(rng.uniform(0.0, duration)))
        interrupted = False
        try:
            try:
                model.fit(*_data(), epochs=EPOCHS, batch_size=BATCH, callbacks=[cb], verbose=1)
            finally:
                cb.timer.cancel()
                cb.timer.join()
        except KeyboardInterrupt:
            interrupted = True
        steps = model.optimizer.step_count
        assert _state(model) == references[steps], f"interrupted={interrupted} after {steps} steps"
        assert _open_bars() == 0
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler
