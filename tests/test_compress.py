"""`nnforge compress`: every option end to end on tiny `nnforge train` runs (main(argv)),
the compressed checkpoint's encodings (bitwise round trips) and its validation."""
from __future__ import annotations

import json

import numpy as np
import pytest

from nnforge import cli, compress, nn, ops, prune, quant
from nnforge.nn import checkpoint
from nnforge.nn.sparse import SparseLinear

_TEMPLATES = {"mlp": ((64,), 10), "cnn": ((1, 8, 8), 10)}


def _train_run(tmp_path_factory, model: str, epochs: int):
    out = tmp_path_factory.mktemp(model)
    assert cli.main(["train", "--model", model, "--epochs", str(epochs), "--out", str(out), "--verbose", "0"]) == 0
    return out


@pytest.fixture(scope="module")
def mlp_run(tmp_path_factory):
    return _train_run(tmp_path_factory, "mlp", 3)


@pytest.fixture(scope="module")
def cnn_run(tmp_path_factory):
    return _train_run(tmp_path_factory, "cnn", 1)


def _template(name: str):
    return nn.get_model_spec(name).build(*_TEMPLATES[name])


def _compress(capsys, run, path, *options) -> dict:
    """Run `nnforge compress`; returns its table rows (before / after) split into cells
    and the notes printed under it."""
    capsys.readouterr()
    assert cli.main(["compress", str(run), "--out", str(path), *options]) == 0
    text = capsys.readouterr().out
    rows = {cells[0]: cells for line in text.splitlines() if (cells := line.split()) and
            cells[0] in ("before", "after")}
    assert set(rows) == {"before", "after"}
    rows["notes"] = [line for line in text.splitlines() if line.startswith(("pruned", "served"))]
    return rows


def _eval_accuracy(capsys, path) -> str:
    assert cli.main(["compress", "--eval", str(path)]) == 0
    return capsys.readouterr().out


def _float_model(run, name="mlp"):
    model = _template(name)
    checkpoint.load(run / "checkpoint.npz", model, restore_rng=False)
    return model.eval()


def test_compress_int8_end_to_end(mlp_run, tmp_path, capsys):
    path = tmp_path / "elsewhere" / "small.npz"  # away from the run's history.json: the seed travels inside
    rows = _compress(capsys, mlp_run, path)
    before, after = rows["before"], rows["after"]
    assert (before[1], after[1]) == ("float32", "int8")
    assert float(after[2]) < 0.4 * float(before[2])  # int8 weights: a quarter of float32, plus scales and layout
    assert before[3] == after[3]  # same parameter count
    assert abs(float(before[5]) - float(after[5])) <= 1.0  # accuracy points
    model, extra = compress.checkpoint.load(path, _template("mlp"))
    assert extra == {"model": "mlp", "seed": 0} and all(isinstance(m, quant.QuantizedLinear) for m in model)
    assert f"{float(after[5]):.2f}%" in _eval_accuracy(capsys, path)


def test_prune_finetune_then_eval_stays_sparse(mlp_run, tmp_path, capsys):
    path = tmp_path / "pruned.npz"
    rows = _compress(capsys, mlp_run, path, "--quantize", "none", "--prune", "0.9", "--finetune-epochs", "2")
    total, nonzero = int(rows["after"][3]), int(rows["after"][4])
    weights, biases = 64 * 256 + 256 * 128 + 128 * 10, 256 + 128 + 10
    assert total == int(rows["before"][3]) == weights + biases
    assert nonzero <= round(0.1 * weights) + biases  # biases are not pruned
    assert any("90% of the weights (global magnitude)" in n and "after 2 fine-tune epochs" in n
               for n in rows["notes"])
    model, _ = compress.checkpoint.load(path, _template("mlp"))
    assert prune.sparsity(model).total == pytest.approx(0.9, abs=1e-4)
    report = prune.sparsity(model)
    for name, layer in model.named_modules():  # the serving rule: SparseLinear exactly from SPARSE_FROM zeros
        if name:
            assert isinstance(layer, SparseLinear) == (report[f"{name}.weight"] >= compress.SPARSE_FROM), name
    assert float(rows["after"][2]) < 0.2 * float(rows["before"][2])  # bitmaps: 1 bit + 4 B per nonzero
    assert f"{float(rows['after'][5]):.2f}%" in _eval_accuracy(capsys, path)


def test_sparse_serving_matches_the_dense_pruned_model(mlp_run, tmp_path, capsys):
    path = tmp_path / "sparse.npz"
    rows = _compress(capsys, mlp_run, path, "--quantize", "none", "--prune", "0.8", "--scope", "layer",
                     "--sparse-from", "0.5")
    assert rows["after"][1] == "float32+sparse" and "layers 0, 1, 2" in rows["notes"][-1]
    model, _ = compress.checkpoint.load(path, _template("mlp"))
    assert all(isinstance(m, SparseLinear) for m in model)
    dense = _float_model(mlp_run)
    prune.magnitude(dense, 0.8, scope="layer")  # no fine-tune: the same weights the file holds
    x = np.random.default_rng(1).standard_normal((37, 64)).astype(np.float32)
    ref = dense.forward(x).astype(np.float64)
    scale = np.abs(x).max() * 64  # one fp32 rounding per product and per add, tiny layers
    np.testing.assert_allclose(model.forward(x), ref, rtol=0, atol=1e-5 * scale * np.abs(ref).max())


def test_structured_shrinks_layers(mlp_run, cnn_run, tmp_path, capsys):
    path = tmp_path / "mlp_structured.npz"
    rows = _compress(capsys, mlp_run, path, "--prune", "0.5", "--structured", "--finetune-epochs", "1")
    model, _ = compress.checkpoint.load(path, _template("mlp"))
    assert [m.weight_q.shape for m in model] == [(64, 128), (128, 64), (64, 10)]
    assert int(rows["after"][3]) == 64 * 128 + 128 + 128 * 64 + 64 + 64 * 10 + 10
    cpath = tmp_path / "cnn_structured.npz"
    _compress(capsys, cnn_run, cpath, "--quantize", "bf16", "--prune", "0.5", "--structured")
    cnn, _ = compress.checkpoint.load(cpath, _template("cnn"))
    convs = [m for m in cnn if isinstance(m, nn.Conv2d)]
    assert [c.weight.shape[:2] for c in convs] == [(16, 1), (32, 16)] and cnn.precision == "bf16"
    assert cnn.forward(np.zeros((2, 1, 8, 8), np.float32)).shape == (2, 10)
    assert "%" in _eval_accuracy(capsys, cpath)


def test_finetune_keeps_pruned_weights_zero_and_recovers(mlp_run):
    from nnforge.cli import compress as cli_compress
    train, _, test, _ = cli_compress._data_and_template("mlp", 0)
    model = compress.prune_model(_float_model(mlp_run), 0.9)
    pruned = [p.mask == 0 for p in model.parameters() if p.mask is not None]
    start = [p.data.copy() for p in model.parameters()]
    before = cli_compress._accuracy(model, *test)
    compress.finetune(model, train, epochs=2, lr=1e-3, batch_size=32)
    weights = [p for p in model.parameters() if p.data.ndim == 2]
    assert len(pruned) == len(weights) == 3 and all(p.mask is None for p in weights)  # masks dropped at the end
    for p, zero in zip(weights, pruned):
        assert np.all(_bits(p.data[zero]) == 0)  # exactly +0.0
    assert not all(np.array_equal(p.data, s) for p, s in zip(model.parameters(), start))  # it did train
    assert cli_compress._accuracy(model, *test) >= before - 0.02  # loose: a one-shot 90% prune loses ~30 pt


def test_gradual_reaches_the_sparsity(mlp_run, tmp_path, capsys):
    path = tmp_path / "gradual.npz"
    rows = _compress(capsys, mlp_run, path, "--quantize", "none", "--prune", "0.9", "--gradual",
                     "--finetune-epochs", "2")
    assert "gradual" in rows["notes"][0]
    model, _ = compress.checkpoint.load(path, _template("mlp"))
    assert prune.sparsity(model).total == pytest.approx(0.9, abs=1e-4)


def _bits(a):
    return np.asarray(a).view(np.dtype(f"u{a.dtype.itemsize}"))


def _entries_equal(a: dict, b: dict) -> bool:
    same = lambda x, y: x.dtype == y.dtype and np.array_equal(*((_bits(x), _bits(y)) if x.dtype.kind in "fiu"
                                                                 else (x, y)))
    return a.keys() == b.keys() and all(same(a[k], b[k]) for k in a)


def test_bf16_checkpoint_round_trip_is_bitwise(mlp_run, tmp_path, capsys):
    path = tmp_path / "bf16.npz"
    rows = _compress(capsys, mlp_run, path, "--quantize", "bf16")
    assert rows["after"][1] == "bf16" and float(rows["after"][2]) < 0.55 * float(rows["before"][2])
    model, extra = compress.checkpoint.load(path, _template("mlp"))
    original = _float_model(mlp_run)
    for p, q in zip(model.parameters(), original.parameters()):
        assert np.array_equal(_bits(p.data), _bits(ops.to_float32(ops.to_bfloat16(q.data))))
        assert np.array_equal(_bits(p.bf16), _bits(ops.to_bfloat16(q.data)))
    assert model.precision == "bf16" and checkpoint.read(path)["model/0.weight"].dtype == np.uint16
    again = compress.checkpoint.save(tmp_path / "again.npz", model, quantize="bf16", extra=extra)
    assert _entries_equal(checkpoint.read(path), checkpoint.read(again))


def test_bitmap_encoding_is_bitwise_for_signed_zeros_and_nan(tmp_path, rng):
    model = nn.Sequential(nn.Linear(97, 61), nn.Linear(61, 3))
    w = model[0].weight.data
    w[rng.random(w.shape) < 0.93] = 0.0
    w[0, :5] = [-0.0, np.nan, np.inf, -np.inf, 1e-45]
    path = compress.checkpoint.save(tmp_path / "m.npz", model, quantize="none")
    entries = checkpoint.read(path)
    assert "model/0.weight@bitmap" in entries and "model/1.weight" in entries  # small layers stay dense
    loaded, _ = compress.checkpoint.load(path, nn.Sequential(nn.Linear(97, 61), nn.Linear(61, 3)))
    for p, q in zip(loaded.parameters(), model.parameters()):
        assert np.array_equal(_bits(p.data), _bits(q.data))
    pruned = nn.Sequential(nn.Linear(97, 61))
    prune.magnitude(pruned, 0.95)
    int8 = quant.quantize_dynamic(pruned)  # int8 weights: a bitmap on weight_q too
    ipath = compress.checkpoint.save(tmp_path / "q.npz", int8, quantize="int8")
    assert "model/0.weight_q@bitmap" in checkpoint.read(ipath)
    qloaded, _ = compress.checkpoint.load(ipath, nn.Sequential(nn.Linear(97, 61)))
    assert np.array_equal(qloaded[0].weight_q, int8[0].weight_q)


def _rewrite(tmp_path, path, change) -> str:
    entries = dict(checkpoint.read(path))
    change(entries)
    out = tmp_path / "damaged.npz"
    np.savez(out, **entries)
    return str(out)


def _layout_edit(**fields):
    def change(entries):
        layout = json.loads(str(entries["extra/compress"]))
        layout.update(fields)
        entries["extra/compress"] = np.array(json.dumps(layout))
    return change


def test_damaged_or_mismatched_compressed_checkpoints(mlp_run, cnn_run, tmp_path, capsys):
    good = tmp_path / "good.npz"
    _compress(capsys, mlp_run, good, "--quantize", "bf16", "--prune", "0.9")
    template = _template("mlp")
    before = [p.data.copy() for p in template.parameters()]
    bitmap = "model/0.weight@bitmap"
    cases = [
        (lambda e: e.update({"extra/compress": np.array("{not json")}), "not a valid compressed layout"),
        (_layout_edit(format=2), "format 2"),
        (_layout_edit(quantize="fp8"), "'quantize' must be one of"),
        (_layout_edit(structured=1.5), "'structured' must be in [0, 1)"),
        (_layout_edit(encodings={"0.weight": {"dtype": "float64", "shape": [1], "bitmap": True}}), "unknown dtype"),
        (lambda e: e.pop("extra/compress"), "not a compressed checkpoint"),
        (lambda e: e.pop(bitmap), f"no entry '{bitmap}'"),
        (lambda e: e.update({bitmap: e[bitmap][:-1]}), f"'{bitmap}' has"),
        (lambda e: e.update({bitmap: e[bitmap] | np.uint8(1)}), "nonzeros"),
        (lambda e: e.update({"model/0.weight@values": e["model/0.weight@values"].astype(np.float32)}),
         "must be a 1-D uint16 array"),
        (lambda e: e.update({"model/2.bias": e["model/2.bias"][:3]}), "model/2.bias"),
        (_layout_edit(structured=0.5), "shape"),  # shapes of a shrunk model do not match the file's
    ]
    for change, message in cases:
        bad = _rewrite(tmp_path, good, change)
        with pytest.raises(checkpoint.CheckpointError) as info:
            compress.checkpoint.load(bad, template)
        assert message in str(info.value) and "damaged.npz" in str(info.value), (message, str(info.value))
        assert cli.main(["compress", "--eval", bad]) == 2
        assert "damaged.npz" in capsys.readouterr().err
    assert all(np.array_equal(p.data, b) for p, b in zip(template.parameters(), before))  # never modified
    with pytest.raises(checkpoint.CheckpointError, match="missing|shape|different architecture"):
        compress.checkpoint.load(good, _template("cnn"))
    truncated = tmp_path / "truncated.npz"
    truncated.write_bytes(good.read_bytes()[:300])
    assert cli.main(["compress", "--eval", str(truncated)]) == 2
    assert "truncated.npz" in capsys.readouterr().err
    assert cli.main(["compress", str(good)]) == 2  # compressing a compressed file
    assert "already a compressed checkpoint" in capsys.readouterr().err


@pytest.mark.parametrize("options, message", [
    (["--prune", "1.5"], "--prune must be a fraction in (0, 1), got 1.5"),
    (["--prune", "0"], "--prune must be a fraction in (0, 1)"),
    (["--prune", "nan"], "--prune must be a fraction in (0, 1)"),
    (["--structured"], "--structured needs --prune S"),
    (["--finetune-epochs", "2"], "--finetune-epochs needs --prune S"),
    (["--prune", "0.5", "--finetune-epochs", "-1"], "--finetune-epochs must be >= 0"),
    (["--prune", "0.5", "--gradual"], "--gradual prunes during fine-tuning"),
    (["--prune", "0.5", "--structured", "--scope", "layer"], "not --structured"),
    (["--sparse-from", "2"], "--sparse-from must be in [0, 1]"),
])
def test_bad_options_are_clear_errors(mlp_run, tmp_path, capsys, options, message):
    capsys.readouterr()
    assert cli.main(["compress", str(mlp_run), "--out", str(tmp_path / "x.npz"), *options]) == 2
    assert message in capsys.readouterr().err
    assert not (tmp_path / "x.npz").exists()


def test_compress_errors_are_clear(mlp_run, tmp_path, capsys):
    with pytest.raises(SystemExit):  # argparse's choices
        cli.main(["compress", str(mlp_run), "--quantize", "fp8"])
    assert "invalid choice: 'fp8'" in capsys.readouterr().err
    assert cli.main(["compress"]) == 2
    assert "needs a run folder" in capsys.readouterr().err
    assert cli.main(["compress", str(tmp_path / "missing.npz")]) == 2
    assert "does not exist" in capsys.readouterr().err
    bad = tmp_path / "bad.npz"
    bad.write_bytes((mlp_run / "checkpoint.npz").read_bytes()[:300])
    assert cli.main(["compress", "--eval", str(bad)]) == 2
    assert "bad.npz" in capsys.readouterr().err
    np.savez(tmp_path / "other.npz", x=np.zeros(2))
    assert cli.main(["compress", str(tmp_path / "other.npz")]) == 2
    assert "not an nnforge checkpoint" in capsys.readouterr().err


def test_compression_report_quick_run(capsys):
    from nnforge.bench import compression
    assert compression.main(["--quick"]) == 0
    out = capsys.readouterr().out
    for variant in ("fp32", "int8 dynamic", "int8 static", "bf16", "90% pruned, no FT", "90% pruned + FT",
                    "90% gradual + FT"):
        assert f"mlp {variant}" in " ".join(out.split()), variant
    assert "cnn int8 static" in " ".join(out.split()) and "-0.5" in out and "-1.0" in out
