"""`nnforge compress`: int8 compression of a tiny `nnforge train` run, end to end (main(argv))."""
from __future__ import annotations

import numpy as np
import pytest

from nnforge import cli, nn, quant


@pytest.fixture(scope="module")
def mlp_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("run")
    assert cli.main(["train", "--model", "mlp", "--epochs", "3", "--out", str(out), "--verbose", "0"]) == 0
    return out


def _table_rows(text: str) -> dict:
    rows = {}
    for line in text.splitlines():
        cells = line.split()
        if cells and cells[0] in ("float32", "int8"):
            rows[cells[0]] = cells
    return rows


def test_compress_mlp_run_end_to_end(mlp_run, tmp_path, capsys):
    capsys.readouterr()
    path = tmp_path / "elsewhere" / "small.npz"  # away from the run's history.json: the seed travels inside
    assert cli.main(["compress", str(mlp_run), "--out", str(path)]) == 0
    rows = _table_rows(capsys.readouterr().out)
    assert set(rows) == {"float32", "int8"}
    f_size, q_size = float(rows["float32"][1]), float(rows["int8"][1])
    assert q_size < 0.4 * f_size  # int8 weights: a quarter of float32, plus scales and the layout
    assert rows["float32"][2] == rows["int8"][2]  # same parameter count
    assert abs(float(rows["float32"][4]) - float(rows["int8"][4])) <= 1.0  # accuracy points
    template = nn.get_model_spec("mlp").build((64,), 10)
    model, extra = quant.checkpoint.load(path, template)
    assert extra == {"model": "mlp", "seed": 0} and all(isinstance(m, quant.QuantizedLinear) for m in model)
    assert cli.main(["compress", "--eval", str(path)]) == 0
    assert f"{float(rows['int8'][4]):.2f}%" in capsys.readouterr().out


def test_compress_errors_are_clear(mlp_run, tmp_path, capsys):
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
