"""`nnforge train`: default run end to end, resume, and one-line errors with non-zero exit."""
import json
import os
import re
import subprocess
import sys

import numpy as np
import pytest

import nnforge
from nnforge import cli

PYTHON_DIR = os.path.dirname(os.path.dirname(os.path.abspath(nnforge.__file__)))  # the folder holding nnforge/


@pytest.fixture(autouse=True)
def _one_thread(threads):
    # The runs below pass --threads 1 (which sets the process-wide count; the `threads`
    # fixture restores it): tiny digits batches gain nothing from a second thread, and on
    # a loaded machine OpenMP barriers make them far slower.
    yield


def _train(tmp_path, *extra):
    return cli.main(["--threads", "1", "train", "--out", str(tmp_path / "run"), "--verbose", "0", *extra])


def test_default_run_end_to_end(tmp_path, capsys):
    assert _train(tmp_path, "--epochs", "5") == 0
    out = capsys.readouterr().out
    m = re.search(r"test accuracy ([\d.]+)%", out)
    assert m and float(m.group(1)) >= 90.0  # 5 epochs of the default MLP: typically ~96%
    run = tmp_path / "run"
    assert sorted(os.listdir(run)) == ["checkpoint.npz", "curves.png", "history.json"]
    with open(run / "curves.png", "rb") as f:
        assert f.read(8) == b"\x89PNG\r\n\x1a\n"
    info = json.loads((run / "history.json").read_text())
    assert len(info["history"]["val_accuracy"]) == 5 and info["options"]["model"] == "mlp"
    assert info["history"]["loss"][-1] < info["history"]["loss"][0]


def test_resume_continues_to_the_same_result(tmp_path, capsys):
    straight = tmp_path / "a"
    assert cli.main(["--threads", "1", "train", "--epochs", "3", "--out", str(straight), "--verbose", "0"]) == 0
    part = tmp_path / "b"
    assert cli.main(["--threads", "1", "train", "--epochs", "2", "--out", str(part), "--verbose", "0"]) == 0
    assert cli.main(["--threads", "1", "train", "--epochs", "3", "--out", str(part), "--verbose", "0",
                     "--resume", str(part / "checkpoint.npz")]) == 0
    a = json.loads((straight / "history.json").read_text())
    b = json.loads((part / "history.json").read_text())
    assert a["history"] == b["history"] and a["test"] == b["test"]
    with np.load(straight / "checkpoint.npz") as x, np.load(part / "checkpoint.npz") as y:
        for k in x.files:
            if k.startswith(("model/", "optim/")):
                np.testing.assert_array_equal(x[k], y[k], err_msg=k)


@pytest.mark.parametrize("args,message", [
    (["--epochs", "0"], "--epochs must be >= 1"),
    (["--batch-size", "-3"], "--batch-size must be >= 1"),
    (["--lr", "-1"], "--lr must be a positive number"),
    (["--optimizer", "lbfgs"], "--optimizer must be one of"),
    (["--data", "/nonexistent/mnist"], "--data: MNIST folder /nonexistent/mnist does not exist"),
])
def test_bad_options_give_one_line_and_nonzero_exit(tmp_path, capsys, args, message):
    assert _train(tmp_path, *args) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and message in err and "Traceback" not in err


def test_corrupt_checkpoint_and_missing_mnist_files(tmp_path, capsys):
    bad = tmp_path / "bad.npz"
    bad.write_bytes(b"garbage")
    assert _train(tmp_path, "--resume", str(bad)) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "--resume" in err and "not a valid .npz" in err
    (tmp_path / "mnist").mkdir()
    assert _train(tmp_path, "--data", str(tmp_path / "mnist")) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "train-images-idx3-ubyte" in err


def test_subprocess_module_entry_point(tmp_path):
    env = dict(os.environ, PYTHONPATH=PYTHON_DIR + os.pathsep + os.environ.get("PYTHONPATH", ""))
    proc = subprocess.run([sys.executable, "-m", "nnforge", "--threads", "1", "train", "--epochs", "1",
                           "--out", str(tmp_path / "run")], capture_output=True, text=True, env=env, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert "test accuracy" in proc.stdout and "epoch 1/1" in proc.stderr
    assert (tmp_path / "run" / "checkpoint.npz").exists()
    bad = subprocess.run([sys.executable, "-m", "nnforge", "train", "--epochs", "0"], capture_output=True,
                         text=True, env=env, timeout=120)
    assert bad.returncode == 2 and bad.stderr.strip().count("\n") == 0 and "--epochs" in bad.stderr


def test_mnist_idx_folder(tmp_path, capsys, rng):
    import gzip
    import struct

    def idx(arr):
        return bytes([0, 0, 8, arr.ndim]) + struct.pack(f">{arr.ndim}I", *arr.shape) + arr.tobytes()

    folder = tmp_path / "mnist"
    folder.mkdir()
    for stem, n in (("train", 120), ("t10k", 30)):
        labels = rng.integers(0, 10, size=n).astype(np.uint8)
        images = np.zeros((n, 28, 28), np.uint8)
        images[np.arange(n), labels, :] = 255  # the label is the bright row: learnable in one epoch
        with gzip.open(folder / f"{stem}-images-idx3-ubyte.gz", "wb") as f:
            f.write(idx(images))
        (folder / f"{stem}-labels-idx1-ubyte").write_bytes(idx(labels))
    assert _train(tmp_path, "--data", str(folder), "--epochs", "2", "--batch-size", "16") == 0
    out = capsys.readouterr().out
    assert "test accuracy" in out
    info = json.loads((tmp_path / "run" / "history.json").read_text())
    assert info["options"]["dataset"] == "mnist" and len(info["history"]["loss"]) == 2


def test_without_matplotlib_the_plot_is_skipped_with_a_note(tmp_path, capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    assert _train(tmp_path, "--epochs", "1") == 0
    out = capsys.readouterr().out
    assert "note: matplotlib not installed" in out
    assert not (tmp_path / "run" / "curves.png").exists()


def test_resume_into_another_model_or_finished_run(tmp_path, capsys):
    assert _train(tmp_path, "--epochs", "1") == 0
    ckpt = str(tmp_path / "run" / "checkpoint.npz")
    assert _train(tmp_path, "--epochs", "1", "--resume", ckpt) == 2
    assert "already at epoch 1" in capsys.readouterr().err
    with np.load(ckpt) as z:
        arrays = {k: z[k] for k in z.files}
    arrays["extra/model"] = np.array("other")
    np.savez(tmp_path / "other.npz", **arrays)
    assert _train(tmp_path, "--epochs", "2", "--resume", str(tmp_path / "other.npz")) == 2
    assert "written for --model other" in capsys.readouterr().err


def test_resume_refuses_bad_extra_values_in_one_line(tmp_path, capsys):
    assert _train(tmp_path, "--epochs", "1") == 0
    with np.load(tmp_path / "run" / "checkpoint.npz") as z:
        arrays = {k: z[k] for k in z.files}
    capsys.readouterr()
    for key, value in [("extra/history", "[1, 2]"), ("extra/history", "{no"), ("extra/history", 3),
                       ("extra/epoch", 1.5), ("extra/epoch", -1), ("extra/epoch", "1")]:
        np.savez(tmp_path / "bad.npz", **{**arrays, key: np.array(value)})
        assert _train(tmp_path, "--epochs", "2", "--resume", str(tmp_path / "bad.npz")) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and "bad.npz" in err and f"'{key}'" in err, err


def test_cnn_model_on_digits(tmp_path, capsys):
    # 3 epochs of the CNN (conv-BN-pool x2, fc): over seeds 0-11 the test accuracy after
    # 3 epochs ranged 96.4-99.2% (12 epochs, the default: 98.3-99.7%); 95% leaves margin.
    assert _train(tmp_path, "--model", "cnn", "--epochs", "3") == 0
    out = capsys.readouterr().out
    m = re.search(r"test accuracy ([\d.]+)%", out)
    assert m and float(m.group(1)) >= 95.0
    info = json.loads((tmp_path / "run" / "history.json").read_text())
    assert info["options"]["model"] == "cnn" and len(info["history"]["val_accuracy"]) == 3
    with np.load(tmp_path / "run" / "checkpoint.npz") as z:
        assert z["model/0.weight"].shape == (32, 1, 3, 3)  # image layout (N, 1, 8, 8)


def test_cnn_model_on_mnist_idx(tmp_path, capsys, rng):
    import gzip
    import struct

    def idx(arr):
        return bytes([0, 0, 8, arr.ndim]) + struct.pack(f">{arr.ndim}I", *arr.shape) + arr.tobytes()

    folder = tmp_path / "mnist"
    folder.mkdir()
    for stem, n in (("train", 96), ("t10k", 24)):
        labels = rng.integers(0, 10, size=n).astype(np.uint8)
        images = np.zeros((n, 28, 28), np.uint8)
        images[np.arange(n), 2 * labels + 4, :] = 255
        (folder / f"{stem}-images-idx3-ubyte").write_bytes(idx(images))
        (folder / f"{stem}-labels-idx1-ubyte").write_bytes(idx(labels))
    assert _train(tmp_path, "--model", "cnn", "--data", str(folder), "--epochs", "1", "--batch-size", "16") == 0
    assert "test accuracy" in capsys.readouterr().out
    with np.load(tmp_path / "run" / "checkpoint.npz") as z:
        assert z["model/9.weight"].shape == (64 * 7 * 7, 128)  # (N, 1, 28, 28) -> 7x7 after two pools


def test_cnn_with_augment_and_its_errors(tmp_path, capsys):
    assert _train(tmp_path, "--model", "cnn", "--epochs", "1", "--augment") == 0
    assert "test accuracy" in capsys.readouterr().out
    assert _train(tmp_path, "--model", "mlp", "--epochs", "1", "--augment") == 2
    assert "--augment needs an image model" in capsys.readouterr().err


def test_models_come_from_the_nn_registry(tmp_path, capsys):
    from nnforge import nn

    assert {"mlp", "cnn"} <= set(nn.model_names())
    calls = []

    def tiny(input_shape, num_classes):
        calls.append(tuple(input_shape))
        return nn.Sequential(nn.Linear(int(np.prod(input_shape)), num_classes))

    nn.register_model("tiny-test", nn.ModelSpec(tiny, "flat", {"epochs": 1}, "a one-layer test model"))
    try:
        assert _train(tmp_path, "--model", "tiny-test") == 0
        assert calls == [(64,)]
    finally:
        nn.registry._MODELS.pop("tiny-test")
    with pytest.raises(ValueError, match="layout"):
        nn.register_model("bad", nn.ModelSpec(tiny, "volume"))
