"""`nnforge train --model lstm` then `nnforge generate`, end to end with tiny sizes (the
shared text-LM trainer, cli/train_text.py: resume with the carried state, option errors),
and nn.LSTMLanguageModel's loss and gradients against the same model in torch."""
import json
import os
import re

import numpy as np
import pytest

import nnforge
from nnforge import cli, nn

TINY = ["--steps", "12", "--eval-every", "6", "--context", "8", "--n-layer", "2", "--hidden", "16",
        "--n-embd", "8", "--batch-size", "4"]


@pytest.fixture(autouse=True)
def _restore_threads(threads):
    yield


@pytest.fixture
def corpus(tmp_path):
    p = tmp_path / "corpus.txt"
    p.write_text("the quick brown fox jumps over the lazy dog. " * 40 + "é✓\n", encoding="utf-8")
    return p


def _train(out, corpus, *extra):
    return cli.main(["--threads", "1", "train", "--model", "lstm", *TINY, "--data", str(corpus), "--out", str(out),
                     "--verbose", "0", *extra])


def test_train_then_generate(tmp_path, corpus, capsys):
    assert _train(tmp_path / "run", corpus) == 0
    out = capsys.readouterr().out
    m = re.search(r"val loss (\d+\.\d{4}) after 12 steps, training (\d+\.\d)s", out)
    assert m, out
    assert "sample:" in out
    run = tmp_path / "run"
    assert sorted(os.listdir(run)) == ["checkpoint.npz", "curves.png", "history.json", "sample.txt"]
    info = json.loads((run / "history.json").read_text())
    h = info["history"]
    assert len(h["loss"]) == 12 and h["eval_step"] == [6, 12]
    assert float(m.group(1)) == pytest.approx(h["val_loss"][-1], abs=1e-4)
    assert h["loss"][-1] < h["loss"][0]
    assert info["options"]["model"] == "lstm" and info["options"]["hidden"] == 16
    assert cli.main(["generate", str(run), "--prompt", "the ", "--tokens", "25", "--seed", "1"]) == 0
    sample = capsys.readouterr().out
    assert sample.startswith("the ") and len(sample.rstrip("\n")) >= 4 + 25 - 1
    assert cli.main(["generate", str(run / "checkpoint.npz"), "--prompt", "the ", "--tokens", "25",
                     "--seed", "1"]) == 0
    assert capsys.readouterr().out == sample


def test_resume_continues_bitwise(tmp_path, corpus, capsys):
    """Stopping at step 6 saves the stream position and the carried LSTM state."""
    straight, part = tmp_path / "a", tmp_path / "b"
    assert _train(straight, corpus, "--dropout", "0.1") == 0  # dropout: nnforge's RNG must be restored too
    assert _train(part, corpus, "--dropout", "0.1", "--steps", "6") == 0
    with np.load(part / "checkpoint.npz") as ck:
        assert ck["extra/carry_0"].shape == (2, 4, 16) and ck["extra/carry_1"].shape == (2, 4, 16)
    assert _train(part, corpus, "--dropout", "0.1", "--resume", str(part / "checkpoint.npz")) == 0
    a = json.loads((straight / "history.json").read_text())["history"]
    b = json.loads((part / "history.json").read_text())["history"]
    assert a == b and len(b["loss"]) == 12
    with np.load(straight / "checkpoint.npz") as x, np.load(part / "checkpoint.npz") as y:
        for k in x.files:
            if k.startswith(("model/", "optim/", "extra/carry")):
                np.testing.assert_array_equal(x[k], y[k], err_msg=k)
    capsys.readouterr()
    assert _train(part, corpus, "--dropout", "0.1", "--hidden", "32", "--steps", "20",
                  "--resume", str(part / "checkpoint.npz")) == 2
    assert "hidden=16, this run hidden=32" in capsys.readouterr().err


def test_resume_refuses_the_other_text_model(tmp_path, corpus, capsys):
    assert _train(tmp_path / "run", corpus, "--steps", "2", "--eval-every", "2") == 0
    capsys.readouterr()
    assert cli.main(["--threads", "1", "train", "--model", "gpt", "--steps", "4", "--context", "8", "--n-layer", "1",
                     "--n-head", "1", "--n-embd", "8", "--data", str(corpus), "--out", str(tmp_path / "g"),
                     "--verbose", "0", "--resume", str(tmp_path / "run" / "checkpoint.npz")]) == 2
    assert "--model lstm`, not --model gpt" in capsys.readouterr().err


@pytest.mark.parametrize("args,message", [
    (["--n-head", "2"], "--n-head: only for --model gpt"),
    (["--hidden", "0"], "--hidden must be >= 1"),
    (["--epochs", "3"], "--model lstm counts --steps, not --epochs"),
    (["--optimizer", "sgd"], "AdamW"),
    (["--batch-size", "400"], "--data: TextStream needs"),
])
def test_train_errors(tmp_path, corpus, capsys, args, message):
    assert _train(tmp_path / "run", corpus, *args) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1


def test_lstm_options_refused_elsewhere(tmp_path, capsys):
    assert cli.main(["train", "--model", "gpt", "--hidden", "8", "--out", str(tmp_path / "g")]) == 2
    assert "--hidden: only for --model lstm" in capsys.readouterr().err
    assert cli.main(["train", "--model", "mlp", "--hidden", "8", "--out", str(tmp_path / "m")]) == 2
    assert "--hidden: only for --model gpt or --model lstm" in capsys.readouterr().err


def test_language_model_matches_torch(rng):
    """Loss, every gradient and the final state of two consecutive windows (state carried,
    detached) against bench/lstm_step's torch model with copied weights."""
    torch = pytest.importorskip("torch")
    from nnforge.bench.lstm_step import copy_weights, torch_lstm_lm
    vocab, e, h, layers, b, t = 13, 6, 10, 2, 3, 7
    nnforge.seed(int(rng.integers(1 << 30)))
    model = nn.LSTMLanguageModel(vocab, e, h, layers)
    tmodel = torch_lstm_lm(torch, vocab, e, h, layers)
    copy_weights(model, tmodel, torch)
    ids = rng.integers(0, vocab, (b, 2 * t + 1))
    state, tstate = None, None
    for w in range(2):
        x, y = ids[:, w * t:(w + 1) * t], ids[:, w * t + 1:(w + 1) * t + 1]
        model.zero_grad()
        loss = model.loss(x, y, state)
        model.backward()
        state = model.final_state
        tmodel.zero_grad()
        tloss, tstate = tmodel(torch.from_numpy(x), torch.from_numpy(y), tstate)
        tloss.backward()
        tstate = tuple(s.detach() for s in tstate)
        assert loss == pytest.approx(tloss.item(), rel=1e-5)
        for a, ta in zip(state, tstate):
            np.testing.assert_allclose(a, ta.numpy(), atol=1e-5, rtol=0)
        grads = {"embed.weight": tmodel.embed.weight.grad, "head.weight": tmodel.head.weight.grad.T,
                 "head.bias": tmodel.head.bias.grad,
                 **{f"lstm.{n}": p.grad for n, p in tmodel.lstm.named_parameters()}}
        for name, p in model.named_parameters():
            want = np.asarray(grads[name])
            np.testing.assert_allclose(p.grad, want, atol=1e-5 * (1 + np.abs(want).max()), rtol=0, err_msg=name)
    logits, _ = model.forward(ids[:, :t])
    assert logits.shape == (b, t, vocab)
    out = model.generate(ids[0, :3], 5, temperature=0.0)
    assert out.shape == (8,) and (out[:3] == ids[0, :3]).all()
