"""Damaged checkpoints: every fault (truncation, flipped header bytes, absurd shapes, wrong
JSON / metadata types, NaN or negative hyper-parameters, missing or extra entries, wrong
dtypes, pickles) gives one ValueError naming the file (and the entry where there is
one), with the model, optimizer, schedule and RNG bitwise as before. Saves killed by
SIGKILL keep the previous checkpoint loadable, and the next save removes their debris."""
import io
import json
import os
import signal
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import numpy as np
import pytest

import nnforge
from nnforge import _random, nn
from nnforge.nn import checkpoint, schedules
from nnforge.nn.checkpoint import CheckpointError

PYTHON_DIR = os.path.dirname(nnforge.__path__[0])  # the folder holding the nnforge under test (installed or in-place)


def _setup(seed):
    nnforge.seed(seed)
    model = nn.Sequential(nn.Linear(6, 8, activation="relu"), nn.BatchNorm1d(8), nn.Linear(8, 3))
    model.compile("adam", lr=1e-2)
    sched = schedules.StepLR(model.optimizer, step_size=1, gamma=0.5)
    return model, sched


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    """(path, entries) of a checkpoint with model, Adam state, schedule, RNG and extras."""
    model, sched = _setup(1)
    rng = np.random.default_rng(0)
    x = rng.normal(size=(40, 6)).astype(np.float32)
    model.fit(x, (x[:, :3].argmax(1)).astype(np.int64), epochs=2, batch_size=16, verbose=0)
    sched.step()
    path = checkpoint.save(tmp_path_factory.mktemp("ck") / "good.npz", model, model.optimizer, schedule=sched,
                           extra={"epoch": 2, "note": "x"})
    return path, checkpoint.read(path)


def _snapshot(model, sched):
    """Bytes of everything a load may change (NaN-safe, dtype-exact)."""
    opt = model.optimizer
    state = {f"model/{k}": v for k, v in model.state_dict().items()}
    state.update((f"optim/{k}", v) for k, v in opt.state_dict().items())
    state.update((f"schedule/{k}", v) for k, v in sched.state_dict().items())
    snap = {k: (np.asarray(v).dtype.str, np.asarray(v).shape, np.asarray(v).tobytes()) for k, v in state.items()}
    snap["lr"] = opt.lr
    snap["groups"] = repr(opt.param_groups[0].get("lr"))
    snap["rng"] = json.dumps(_random.generator().bit_generator.state)
    return snap


def _assert_refused(path, key=None):
    """Loading `path` raises CheckpointError naming it (and `key`); nothing changes."""
    model, sched = _setup(7)
    before = _snapshot(model, sched)
    with pytest.raises(CheckpointError) as info:
        checkpoint.load(path, model, model.optimizer, schedule=sched)
    assert isinstance(info.value, ValueError)
    msg = str(info.value)
    assert str(path) in msg, msg
    if key is not None:
        assert f"'{key}'" in msg, msg
    assert _snapshot(model, sched) == before, msg
    return msg


def _npy(arr) -> bytes:
    buf = io.BytesIO()
    np.lib.format.write_array(buf, np.asanyarray(arr), allow_pickle=True)
    return buf.getvalue()


def _raw_npy(header: str, data: bytes = b"", version: int = 1) -> bytes:
    """A .npy member with a hand-written header (padded as numpy pads)."""
    text = header.encode("latin1")
    pad = (-(10 + len(text) + 1)) % 64
    text = text + b" " * pad + b"\n"
    return b"\x93NUMPY" + bytes([version, 0]) + len(text).to_bytes(2, "little") + text + data


def _write(path, members: dict) -> str:
    """members: {key: array or raw .npy bytes}, stored like numpy.savez."""
    with zipfile.ZipFile(path, "w", zipfile.ZIP_STORED) as zf:
        for key, value in members.items():
            zf.writestr(f"{key}.npy", value if isinstance(value, bytes) else _npy(value))
    return str(path)


def _without(entries, key):
    return {k: v for k, v in entries.items() if k != key}


def test_good_file_loads_and_changes_everything(saved):
    path, _ = saved
    model, sched = _setup(7)
    before = _snapshot(model, sched)
    assert checkpoint.load(path, model, model.optimizer, schedule=sched) == {"epoch": 2, "note": "x"}
    assert _snapshot(model, sched) != before
    assert model.optimizer.step_count == 6 and sched.t == 1


def test_truncated_at_many_offsets(saved, tmp_path, rng):
    path, _ = saved
    data = Path(path).read_bytes()
    offsets = sorted({0, 1, 4, 29, 30, 64, len(data) - 1, len(data) - 22, len(data) - 23,
                      *rng.integers(1, len(data), size=40).tolist()})
    for off in offsets:
        bad = tmp_path / f"trunc{off}.npz"
        bad.write_bytes(data[:off])
        _assert_refused(bad)


def _member_spans(path):
    """[(key, start, end)] of each member's bytes (the .npy header first) in the file."""
    spans = []
    with zipfile.ZipFile(path) as zf:
        for info in zf.infolist():
            with open(path, "rb") as f:
                f.seek(info.header_offset)
                local = f.read(30)
            name_len = int.from_bytes(local[26:28], "little")
            extra_len = int.from_bytes(local[28:30], "little")
            start = info.header_offset + 30 + name_len + extra_len
            spans.append((info.filename[:-4], start, start + info.compress_size))
    return spans


def test_flipped_bytes_in_every_header(saved, tmp_path, rng):
    """A flipped byte in a member's .npy header (or just after it) is refused naming that
    member: unparsable, a size that does not match, or the zip CRC."""
    path, _ = saved
    data = Path(path).read_bytes()
    for key, start, end in _member_spans(path):
        for pos in {start, start + 6, start + 8, start + 12, *rng.integers(start, min(end, start + 128), 2).tolist()}:
            bad = bytearray(data)
            bad[pos] ^= 1 << int(rng.integers(0, 8))
            out = tmp_path / "flip.npz"
            out.write_bytes(bytes(bad))
            _assert_refused(out, key)


_BAD_HEADERS = [  # (header text, data bytes, what the error says)
    ("{'descr': '<f4', 'fortran_order': False, 'shape': (2**40,), }", b"\0" * 32, "unparsable"),  # no expressions
    ("{'descr': '<f4', 'fortran_order': False, 'shape': (1099511627776,), }", b"\0" * 32, "declares shape"),
    ("{'descr': '<f4', 'fortran_order': False, 'shape': (-1,), }", b"", "bad shape"),
    ("{'descr': '<f4', 'fortran_order': False, 'shape': (True,), }", b"\0" * 4, "bad shape"),
    ("{'descr': '<f4', 'fortran_order': 0, 'shape': (1,), }", b"\0" * 4, "fortran_order"),
    ("{'descr': '<f4', 'fortran_order': False, 'shape': (3,), }", b"\0" * 8, "declares shape"),
    ("{'descr': '<f4', 'fortran_order': False, 'shape': (2,)", b"\0" * 8, "unparsable"),
    ("{'descr': '<f4', 'fortran_order': False, 'shape': (2,), 'x': 1}", b"\0" * 8, "exactly"),
    ("[1, 2, 3]", b"", "exactly"),
    ("__import__('os').system('false')", b"", "unparsable"),
    ("{'descr': [('a', '<f4')], 'fortran_order': False, 'shape': (1,), }", b"\0" * 4, "structured"),
    ("{'descr': '(1099511627776,)f4', 'fortran_order': False, 'shape': (1,), }", b"\0" * 4, "dtype"),
    ("{'descr': 'nonsense', 'fortran_order': False, 'shape': (1,), }", b"\0" * 4, "unknown dtype"),
    ("{'descr': '<U0', 'fortran_order': False, 'shape': (%d,), }" % 2**60, b"", "dtype"),
    ("{'descr': '|O', 'fortran_order': False, 'shape': (1,), }", b"\0" * 8, "pickled"),
]


@pytest.mark.parametrize("header,data,why", _BAD_HEADERS, ids=[f"{i}-{w}" for i, (_, _, w) in enumerate(_BAD_HEADERS)])
def test_bad_npy_headers(saved, tmp_path, header, data, why):
    path, entries = saved
    bad = _write(tmp_path / "hdr.npz", {**entries, "optim/exp_avg.1": _raw_npy(header, data)})
    assert why in _assert_refused(bad, "optim/exp_avg.1")


def test_header_length_and_version_limits(saved, tmp_path):
    path, entries = saved
    huge = b"\x93NUMPY\x02\x00" + (1 << 30).to_bytes(4, "little") + b"{"
    assert "header" in _assert_refused(_write(tmp_path / "a.npz", {**entries, "model/0.bias": huge}),
                                       "model/0.bias")
    v9 = b"\x93NUMPY\x09\x00" + _raw_npy("{'descr': '<f4', 'fortran_order': False, 'shape': (8,), }")[8:]
    assert "version" in _assert_refused(_write(tmp_path / "b.npz", {**entries, "model/0.bias": v9}),
                                        "model/0.bias")
    short = _raw_npy("{'descr': '<f4', 'fortran_order': False, 'shape': (8,), }")[:20]
    _assert_refused(_write(tmp_path / "c.npz", {**entries, "model/0.bias": short}), "model/0.bias")
    _assert_refused(_write(tmp_path / "d.npz", {**entries, "model/0.bias": b"not npy at all"}),
                    "model/0.bias")


def test_pickle_member_is_never_executed(saved, tmp_path):
    path, entries = saved
    marker = tmp_path / "executed"
    payload = np.array([_Touch(str(marker))], dtype=object)
    msg = _assert_refused(_write(tmp_path / "evil.npz", {**entries, "extra/payload": payload}), "extra/payload")
    assert "pickled" in msg and not marker.exists()


class _Touch:
    def __init__(self, path):
        self.path = path

    def __reduce__(self):
        return (open, (self.path, "w"))


def test_archive_level_damage(saved, tmp_path):
    path, entries = saved
    with zipfile.ZipFile(tmp_path / "dup.npz", "w") as zf:
        for key, value in entries.items():
            zf.writestr(f"{key}.npy", _npy(value))
        import warnings
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            zf.writestr("model/0.bias.npy", _npy(entries["model/0.bias"]))
    _assert_refused(tmp_path / "dup.npz", "model/0.bias")
    with zipfile.ZipFile(tmp_path / "txt.npz", "w") as zf:
        for key, value in entries.items():
            zf.writestr(f"{key}.npy", _npy(value))
        zf.writestr("readme.txt", b"hello")
    _assert_refused(tmp_path / "txt.npz", "readme.txt")
    with zipfile.ZipFile(tmp_path / "bz.npz", "w") as zf:
        for key, value in entries.items():
            zf.writestr(f"{key}.npy", _npy(value), compress_type=zipfile.ZIP_BZIP2 if key == "meta/rng" else None)
    _assert_refused(tmp_path / "bz.npz", "meta/rng")
    # deflated members (numpy.savez_compressed) are read like stored ones
    np.savez_compressed(tmp_path / "z.npz", **entries)
    model, sched = _setup(3)
    checkpoint.load(tmp_path / "z.npz", model, model.optimizer, schedule=sched)
    assert model.optimizer.step_count == 6


def test_every_missing_entry(saved, tmp_path):
    path, entries = saved
    required = [k for k in entries if k.startswith(("model/", "optim/", "schedule/"))]
    assert len(required) > 20
    for key in required:
        _assert_refused(_write(tmp_path / "miss.npz", _without(entries, key)), key)
    msg = _assert_refused(_write(tmp_path / "nover.npz", _without(entries, "meta/format_version")))
    assert "not an nnforge checkpoint" in msg


@pytest.mark.parametrize("key", ["model/ghost", "model/0.weight2", "optim/exp_avg.99", "optim/hyper.gamma",
                                 "optim/ghost", "schedule/ghost", "meta/ghost", "ghost", "model/"])
def test_extra_entries(saved, tmp_path, key):
    path, entries = saved
    members = dict(entries)
    members[key] = np.zeros(2, np.float32)
    assert "unexpected" in _assert_refused(_write(tmp_path / "extra.npz", members), key)


@pytest.mark.parametrize("key,value", [
    ("meta/format_version", np.array(1.0)), ("meta/format_version", np.array(True)),
    ("meta/format_version", np.array("1")), ("meta/format_version", np.array([1])),
    ("meta/format_version", np.array(0)), ("meta/format_version", np.array(99)),
    ("meta/model_class", np.array(3)), ("meta/optimizer_class", np.array(["Adam"])),
    ("meta/rng", np.array("[1, 2]")), ("meta/rng", np.array("{not json")), ("meta/rng", np.array("3")),
    ("meta/rng", np.array(json.dumps({"bit_generator": "MT19937", "state": {}}))),
    ("meta/rng", np.array(json.dumps({"bit_generator": "PCG64", "state": [1, 2]}))),
    ("meta/rng", np.array(json.dumps({"bit_generator": "PCG64", "state": {"state": "x", "inc": 1},
                                      "has_uint32": 0, "uinteger": 0}))),
    ("meta/rng", np.array(5.0)),
])
def test_wrong_metadata_types(saved, tmp_path, key, value):
    path, entries = saved
    _assert_refused(_write(tmp_path / "meta.npz", {**entries, key: value}), key)


@pytest.mark.parametrize("key,value", [
    ("optim/hyper.lr", np.nan), ("optim/hyper.lr", -1e-3), ("optim/hyper.lr", np.inf),
    ("optim/hyper.beta1", 1.0), ("optim/hyper.beta2", -0.1), ("optim/hyper.beta2", np.nan),
    ("optim/hyper.eps", 0.0), ("optim/hyper.eps", -1e-8), ("optim/hyper.weight_decay", -0.5),
    ("optim/hyper.lr", "0.1"), ("optim/hyper.lr", np.array([0.1])), ("optim/hyper.lr", True),
    ("optim/step", -1), ("optim/step", 1.5), ("optim/step", np.array(True)), ("optim/step", np.array([3])),
    ("optim/skipped_steps", -2), ("schedule/t", -1), ("schedule/t", 2.0), ("schedule/base_lr", np.nan),
    ("schedule/base_lr", -1.0), ("schedule/t", np.int64(2**62)),
])
def test_bad_hyperparameters_and_counts(saved, tmp_path, key, value):
    """StepLR(gamma=0.5) at t = 2**62 underflows to lr 0, which is finite and allowed;
    the point is that no value is taken unchecked, and refused ones change nothing."""
    path, entries = saved
    out = _write(tmp_path / "hp.npz", {**entries, key: np.asarray(value)})
    if key == "schedule/t" and not isinstance(value, float) and np.asarray(value) > 0:
        model, sched = _setup(7)
        checkpoint.load(out, model, model.optimizer, schedule=sched)
        assert sched.t == 2**62 and model.optimizer.lr == 0.0
        return
    _assert_refused(out, key)


def test_schedule_whose_lr_overflows_is_refused(tmp_path):
    nnforge.seed(0)
    model = nn.Sequential(nn.Linear(2, 2)).compile("sgd", lr=0.1)
    sched = schedules.ExponentialLR(model.optimizer, gamma=2.0)
    path = checkpoint.save(tmp_path / "exp.npz", model, model.optimizer, schedule=sched)
    entries = checkpoint.read(path)
    bad = _write(tmp_path / "exp_bad.npz", {**entries, "schedule/t": np.array(10**6)})
    lr_before = model.optimizer.lr
    with pytest.raises(CheckpointError, match=r"exp_bad\.npz entry 'schedule/t'.*no finite learning rate"):
        checkpoint.load(bad, model, model.optimizer, schedule=sched)
    assert model.optimizer.lr == lr_before and sched.t == 0


@pytest.mark.parametrize("key,change", [
    ("model/0.weight", lambda a: a.astype(np.float64)), ("model/0.weight", lambda a: a.astype(np.int32)),
    ("model/0.weight", lambda a: a.T.copy()), ("model/0.weight", lambda a: a[:1]),
    ("model/1.running_mean", lambda a: a.astype(np.float16)), ("optim/exp_avg.0", lambda a: a.astype(np.float64)),
    ("optim/exp_avg_sq.2", lambda a: a.reshape(1, -1) if a.ndim == 1 else a.ravel()),
    ("model/0.bias", lambda a: a.astype(np.complex64)), ("model/0.bias", lambda a: a.astype("U8")),
])
def test_wrong_dtypes_and_shapes(saved, tmp_path, key, change):
    path, entries = saved
    _assert_refused(_write(tmp_path / "dt.npz", {**entries, key: change(entries[key])}), key)


def test_big_endian_members_load(saved, tmp_path):
    """An equivalent byte order is the same data: loaded, converted to native."""
    path, entries = saved
    swapped = {k: (v.astype(v.dtype.newbyteorder(">")) if v.dtype.kind == "f" else v) for k, v in entries.items()}
    model, sched = _setup(3)
    checkpoint.load(_write(tmp_path / "be.npz", swapped), model, model.optimizer, schedule=sched)
    for k, v in model.state_dict().items():
        np.testing.assert_array_equal(v, entries[f"model/{k}"])


# --- saves killed mid-write -----------------------------------------------------------

_WRITER = """
import sys
sys.path.insert(0, sys.argv[2])
from nnforge import nn
from nnforge.nn import checkpoint
model = nn.Sequential(nn.Linear(200, 800), nn.Linear(800, 200))
opt = nn.Adam(model.parameters())
print("ready", flush=True)
i = 0
while True:
    i += 1
    checkpoint.save(sys.argv[1], model, opt, extra={"i": i})
"""


def _debris(folder):
    return sorted(n for n in os.listdir(folder) if ".nnforge-tmp-" in n)


def test_save_killed_at_random_moments_keeps_the_previous_checkpoint(tmp_path, rng):
    path = tmp_path / "ck.npz"
    model = nn.Sequential(nn.Linear(200, 800), nn.Linear(800, 200))
    opt = nn.Adam(model.parameters())
    checkpoint.save(path, model, opt, extra={"i": 0})
    dead_pids = []
    for _ in range(3):
        child = subprocess.Popen([sys.executable, "-c", _WRITER, str(path), PYTHON_DIR], stdout=subprocess.PIPE)
        try:
            assert child.stdout.readline().strip() == b"ready"
            time.sleep(float(rng.uniform(0.0, 0.25)))
        finally:  # killed however the test ends: no writer outlives it
            child.send_signal(signal.SIGKILL)
            child.wait()
            child.stdout.close()
        dead_pids.append(child.pid)
        fresh = nn.Sequential(nn.Linear(200, 800), nn.Linear(800, 200))
        assert checkpoint.load(path, fresh, nn.Adam(fresh.parameters()))["i"] >= 0
        assert all(f".nnforge-tmp-{child.pid}-" in n for n in _debris(tmp_path))
    # a save killed before it wrote a byte, a live process's save in progress, an old
    # leftover whose PID may be alive again, and a file that only looks similar
    (tmp_path / f".ck.npz.nnforge-tmp-{dead_pids[0]}-00ff").write_bytes(b"")
    live = f".other.npz.nnforge-tmp-{os.getppid()}-abcd"
    (tmp_path / live).write_bytes(b"PK")
    old = tmp_path / f".old.npz.nnforge-tmp-{os.getppid()}-0123"
    old.write_bytes(b"PK")
    os.utime(old, (time.time() - 3 * 86400,) * 2)
    (tmp_path / "notes.nnforge-tmp-1-x").write_bytes(b"mine")
    checkpoint.save(path, model, opt, extra={"i": -1})
    assert _debris(tmp_path) == [live, "notes.nnforge-tmp-1-x"]
    assert checkpoint.load(path, model, opt)["i"] == -1
