"""`nnforge train --model gpt` then `nnforge generate`, end to end with tiny sizes, and
the one-line errors (exit status 2)."""
import json
import os
import re

import numpy as np
import pytest

from nnforge import cli

TINY = ["--steps", "12", "--eval-every", "6", "--context", "16", "--n-layer", "1", "--n-head", "2",
        "--n-embd", "16", "--batch-size", "4"]


@pytest.fixture(autouse=True)
def _restore_threads(threads):
    yield


@pytest.fixture
def corpus(tmp_path):
    p = tmp_path / "corpus.txt"
    p.write_text("the quick brown fox jumps over the lazy dog. " * 40 + "é✓\n", encoding="utf-8")
    return p


def _train(tmp_path, *extra):
    return cli.main(["--threads", "1", "train", "--model", "gpt", "--out", str(tmp_path / "run"), "--verbose", "0",
                     *extra])


def test_train_then_generate(tmp_path, corpus, capsys):
    assert _train(tmp_path, *TINY, "--data", str(corpus)) == 0
    out = capsys.readouterr().out
    m = re.search(r"val loss (\d+\.\d{4}) after 12 steps, training (\d+\.\d)s", out)
    assert m, out
    assert "sample:" in out
    run = tmp_path / "run"
    assert sorted(os.listdir(run)) == ["checkpoint.npz", "curves.png", "history.json", "sample.txt"]
    with open(run / "curves.png", "rb") as f:
        assert f.read(8) == b"\x89PNG\r\n\x1a\n"
    info = json.loads((run / "history.json").read_text())
    h = info["history"]
    assert len(h["loss"]) == 12 and h["eval_step"] == [6, 12]
    assert float(m.group(1)) == pytest.approx(h["val_loss"][-1], abs=1e-4)
    assert h["loss"][-1] < h["loss"][0]
    assert info["options"]["model"] == "gpt" and info["options"]["n_embd"] == 16

    assert cli.main(["generate", str(run), "--prompt", "the ", "--tokens", "25", "--seed", "1"]) == 0
    sample = capsys.readouterr().out
    assert sample.startswith("the ") and len(sample.rstrip("\n")) >= 4 + 25 - 1
    # a checkpoint path works too, and the same seed gives the same text
    assert cli.main(["generate", str(run / "checkpoint.npz"), "--prompt", "the ", "--tokens", "25",
                     "--seed", "1"]) == 0
    assert capsys.readouterr().out == sample
    assert cli.main(["generate", str(run), "--prompt", "the ", "--tokens", "10", "--temperature", "0"]) == 0


def test_train_on_bundled_corpus_byte_tokenizer(tmp_path, capsys):
    assert _train(tmp_path, "--steps", "2", "--eval-every", "2", "--context", "8", "--n-layer", "1", "--n-head", "1",
                  "--n-embd", "8", "--batch-size", "2", "--tokenizer", "byte") == 0
    assert "val loss" in capsys.readouterr().out
    assert cli.main(["generate", str(tmp_path / "run"), "--prompt", "é", "--tokens", "5"]) == 0
    assert capsys.readouterr().out.startswith("é")


def test_same_seed_same_run(tmp_path, corpus, capsys):
    a, b = tmp_path / "a", tmp_path / "b"
    for out in (a, b):
        assert cli.main(["--threads", "1", "train", "--model", "gpt", *TINY, "--data", str(corpus), "--out",
                         str(out), "--verbose", "0"]) == 0
    ha = json.loads((a / "history.json").read_text())["history"]
    hb = json.loads((b / "history.json").read_text())["history"]
    assert ha == hb
    with np.load(a / "checkpoint.npz") as x, np.load(b / "checkpoint.npz") as y:
        for k in x.files:
            if k.startswith("model/"):
                np.testing.assert_array_equal(x[k], y[k], err_msg=k)


def test_resume_continues_bitwise(tmp_path, corpus, capsys):
    straight, part = tmp_path / "a", tmp_path / "b"
    base = ["--threads", "1", "train", "--model", "gpt", *TINY, "--data", str(corpus), "--verbose", "0",
            "--dropout", "0.1"]  # dropout: nnforge's RNG must be restored too
    assert cli.main([*base, "--out", str(straight)]) == 0
    assert cli.main([*base, "--steps", "6", "--out", str(part)]) == 0
    assert cli.main([*base, "--resume", str(part / "checkpoint.npz")]) == 0
    a = json.loads((straight / "history.json").read_text())["history"]
    b = json.loads((part / "history.json").read_text())["history"]
    assert a == b and len(b["loss"]) == 12
    with np.load(straight / "checkpoint.npz") as x, np.load(part / "checkpoint.npz") as y:
        for k in x.files:
            if k.startswith(("model/", "optim/")):
                np.testing.assert_array_equal(x[k], y[k], err_msg=k)
    capsys.readouterr()
    assert cli.main([*base, "--resume", str(part / "checkpoint.npz")]) == 2
    assert "already at step 12" in capsys.readouterr().err
    assert cli.main([*base, "--n-embd", "32", "--resume", str(part / "checkpoint.npz"), "--steps", "20"]) == 2
    assert "n_embd=16, this run n_embd=32" in capsys.readouterr().err
    for changed in (["--batch-size", "3"], ["--lr", "0.01"]):  # training options must match too
        assert cli.main([*base, *changed, "--resume", str(part / "checkpoint.npz"), "--steps", "20"]) == 2
        assert changed[0][2:].replace("-", "_") in capsys.readouterr().err


@pytest.mark.parametrize("args,message", [
    (["--steps", "0"], "--steps must be >= 1"),
    (["--n-embd", "10", "--n-head", "4"], "multiple of --n-head"),
    (["--epochs", "3"], "--steps, not --epochs"),
    (["--optimizer", "sgd"], "AdamW"),
    (["--lr", "-1"], "--lr must be a positive"),
    (["--seed", "-1"], "--seed must be >= 0"),
])
def test_train_errors(tmp_path, corpus, capsys, args, message):
    assert _train(tmp_path, *TINY, "--data", str(corpus), *args) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1


def test_gpt_options_refused_for_other_models(tmp_path, capsys):
    assert cli.main(["train", "--model", "mlp", "--steps", "5", "--out", str(tmp_path / "r")]) == 2
    assert "--steps: only for --model gpt" in capsys.readouterr().err


def test_data_errors(tmp_path, capsys):
    assert _train(tmp_path, *TINY, "--data", str(tmp_path / "missing.txt")) == 2
    assert "--data" in capsys.readouterr().err
    short = tmp_path / "short.txt"
    short.write_text("abc" * 20, encoding="utf-8")
    assert _train(tmp_path, *TINY, "--data", str(short)) == 2
    assert "--context 16" in capsys.readouterr().err


def test_generate_errors(tmp_path, corpus, capsys):
    assert cli.main(["generate", str(tmp_path / "nothing"), "--tokens", "3"]) == 2
    assert "does not exist" in capsys.readouterr().err
    assert _train(tmp_path, *TINY, "--data", str(corpus)) == 0
    capsys.readouterr()
    assert cli.main(["generate", str(tmp_path / "run"), "--prompt", "Z", "--tokens", "3"]) == 2
    assert "'Z' is not in" in capsys.readouterr().err
    assert cli.main(["generate", str(tmp_path / "run"), "--tokens", "-1"]) == 2
    mlp = tmp_path / "mlp"
    assert cli.main(["--threads", "1", "train", "--epochs", "1", "--out", str(mlp), "--verbose", "0"]) == 0
    capsys.readouterr()
    assert cli.main(["generate", str(mlp), "--tokens", "3"]) == 2
    assert "--model gpt" in capsys.readouterr().err
