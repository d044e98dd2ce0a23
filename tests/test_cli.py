"""`nnforge train`: default run end to end, resume, and one-line errors with non-zero exit."""
import json
import os
import re
import subprocess
import sys

import numpy as np
import pytest

from nnforge import cli

PYTHON_DIR = os.path.dirname(os.path.dirname(os.path.abspath(cli.__file__)))


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
