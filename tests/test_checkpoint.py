"""Checkpoints: round trip, exact (bitwise) resume, atomic save, refusal of pickled data,
clear mismatch errors with nothing modified."""
import os

import numpy as np
import pytest

import nnforge
from nnforge import nn
from nnforge.nn import checkpoint, schedules
from nnforge.nn.checkpoint import CheckpointError
from nnforge.nn.callbacks import LRScheduler


def open_bytes(path):
    with open(path, "rb") as f:
        return f.read()


def _model(hidden=32, dropout=0.2):
    return nn.Sequential(nn.Linear(20, hidden, activation="relu"), nn.Dropout(dropout),
                         nn.BatchNorm1d(hidden), nn.Linear(hidden, 5))


def _data(rng):
    x = rng.normal(size=(150, 20)).astype(np.float32)
    y = (x[:, :5].argmax(axis=1)).astype(np.int64)
    return x, y


def _assert_same_state(a, b):
    sa, sb = a.state_dict(), b.state_dict()
    assert list(sa) == list(sb)
    for k in sa:
        np.testing.assert_array_equal(sa[k], sb[k], err_msg=k)


def test_round_trip_with_optimizer_and_extra(tmp_path, rng):
    x, y = _data(rng)
    model = _model().compile("adam", lr=1e-2)
    model.fit(x, y, epochs=1, batch_size=32, verbose=0)
    path = model.save(tmp_path / "ck.npz", model.optimizer, extra={"epoch": 1, "note": "hello", "arr": np.arange(3)})
    fresh = _model().compile("adam")
    extra = fresh.load(path, fresh.optimizer)
    assert extra["epoch"] == 1 and extra["note"] == "hello"
    np.testing.assert_array_equal(extra["arr"], np.arange(3))
    _assert_same_state(model, fresh)
    for k, v in model.optimizer.state_dict().items():
        np.testing.assert_array_equal(fresh.optimizer.state_dict()[k], v)
    assert fresh.optimizer.step_count == 5


@pytest.mark.parametrize("opt_name", ["adam", "sgd"])
def test_resume_is_bitwise_identical_to_an_uninterrupted_run(tmp_path, rng, opt_name):
    x, y = _data(rng)
    kw = {"lr": 0.05, "momentum": 0.9} if opt_name == "sgd" else {"lr": 1e-2}

    def setup(seed):
        nnforge.seed(seed)
        m = _model().compile(opt_name, **kw)
        return m, schedules.StepLR(m.optimizer, step_size=1, gamma=0.7)

    nnforge.seed(0)
    straight, sched = setup(0)
    straight.fit(x, y, epochs=4, batch_size=32, callbacks=[LRScheduler(sched)], verbose=0)

    first, sched1 = setup(0)
    first.fit(x, y, epochs=2, batch_size=32, callbacks=[LRScheduler(sched1)], verbose=0)
    path = checkpoint.save(tmp_path / "mid.npz", first, first.optimizer, extra={"epoch": 2}, schedule=sched1)
    nnforge.seed(12345)  # the checkpoint must bring back the RNG state (shuffling, dropout)
    first.fit(x, y, epochs=1, batch_size=32, verbose=0)  # disturb the process state further

    resumed, sched2 = setup(999)
    extra = checkpoint.load(path, resumed, resumed.optimizer, schedule=sched2)
    assert resumed.optimizer.lr == pytest.approx(0.7 ** 2 * kw["lr"])
    resumed.fit(x, y, epochs=4, batch_size=32, callbacks=[LRScheduler(sched2)], verbose=0,
                initial_epoch=extra["epoch"])
    _assert_same_state(straight, resumed)
    assert resumed.optimizer.step_count == straight.optimizer.step_count == 20


def test_atomic_save_keeps_the_old_file_on_failure(tmp_path, monkeypatch, rng):
    model = _model()
    path = tmp_path / "ck.npz"
    checkpoint.save(path, model, extra={"epoch": 1})
    good = model.state_dict()
    model[0].weight.data += 1.0

    def broken_savez(f, **arrays):
        f.write(b"PK\x03\x04 partial")  # a crash mid-write
        raise OSError("disk full")

    monkeypatch.setattr(np, "savez", broken_savez)
    with pytest.raises(OSError, match="disk full"):
        checkpoint.save(path, model, extra={"epoch": 2})
    monkeypatch.undo()
    assert os.listdir(tmp_path) == ["ck.npz"]  # no temp file left behind
    fresh = _model()
    assert fresh.load(path)["epoch"] == 1
    for k, v in fresh.state_dict().items():
        np.testing.assert_array_equal(v, good[k])


_EXECUTED = []


def _side_effect():
    _EXECUTED.append(True)
    return "boom"


class _Evil:
    def __reduce__(self):
        return (_side_effect, ())


def test_checkpoint_with_pickled_object_is_refused(tmp_path):
    model = _model()
    path = tmp_path / "evil.npz"
    arrays = {f"model/{k}": v for k, v in model.state_dict().items()}
    arrays["meta/format_version"] = np.array(1)
    arrays["extra/payload"] = np.array([_Evil()], dtype=object)
    np.savez(path, **arrays)
    before = model.state_dict()
    with pytest.raises(CheckpointError, match="pickled object array.*never execute code"):
        checkpoint.load(path, model)
    assert _EXECUTED == []
    _assert_same_state(model, model)
    for k, v in model.state_dict().items():
        np.testing.assert_array_equal(v, before[k])
    with pytest.raises(CheckpointError, match="object array"):
        checkpoint.save(tmp_path / "x.npz", model, extra={"bad": np.array([object()], dtype=object)})


def test_mismatched_model_names_parameter_and_shapes(tmp_path):
    path = checkpoint.save(tmp_path / "ck.npz", _model(hidden=32))
    other = _model(hidden=16)
    before = other.state_dict()
    with pytest.raises(CheckpointError, match=r"ck\.npz entry 'model/0\.weight'.*\(20, 32\).*\(20, 16\)"):
        other.load(path)
    for k, v in other.state_dict().items():
        np.testing.assert_array_equal(v, before[k])


def test_failed_optimizer_load_rolls_back_the_model(tmp_path, rng):
    x, y = _data(rng)
    src = _model().compile("adam")
    src.fit(x, y, epochs=1, batch_size=64, verbose=0)
    path = src.save(tmp_path / "ck.npz", src.optimizer)
    dst = _model()
    partial_opt = nn.Adam(dst[0].parameters())  # fewer parameters than saved
    before = dst.state_dict()
    with pytest.raises(CheckpointError, match=r"ck\.npz entry 'optim/exp_avg\.2' is unexpected"):
        checkpoint.load(path, dst, partial_opt)
    for k, v in dst.state_dict().items():
        np.testing.assert_array_equal(v, before[k])
    assert partial_opt.step_count == 0
    with pytest.raises(CheckpointError, match="holds Adam state"):
        checkpoint.load(path, dst, nn.SGD(dst.parameters(), lr=0.1))


def test_corrupt_and_missing_files(tmp_path):
    model = _model()
    with pytest.raises(CheckpointError, match="does not exist"):
        checkpoint.load(tmp_path / "none.npz", model)
    bad = tmp_path / "bad.npz"
    bad.write_bytes(b"this is not a zip file")
    with pytest.raises(CheckpointError, match="not a valid .npz"):
        checkpoint.load(bad, model)
    good = checkpoint.save(tmp_path / "good.npz", model)
    trunc = tmp_path / "trunc.npz"
    trunc.write_bytes(open_bytes(good)[:200])
    with pytest.raises(CheckpointError, match="not a valid .npz"):
        checkpoint.load(trunc, model)
    np.savez(tmp_path / "plain.npz", a=np.zeros(2))
    with pytest.raises(CheckpointError, match="not an nnforge checkpoint"):
        checkpoint.load(tmp_path / "plain.npz", model)


def test_single_npy_file_is_refused(tmp_path):
    path = tmp_path / "arr.npz"
    with open(path, "wb") as f:
        np.save(f, np.zeros(3))
    with pytest.raises(CheckpointError, match="single .npy"):
        checkpoint.load(path, _model())
