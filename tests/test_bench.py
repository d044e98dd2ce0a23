"""nnforge bench without timing: the cost models each family divides by, the one table
printer, the measured FP32 peak, and every family's run() with its timer replaced by a
constant (so nothing here depends on how fast the machine is)."""
from __future__ import annotations

import argparse
import math

import pytest

import nnforge
from nnforge import bench, registry
from nnforge.bench import _table, conv, gemm, nn, optim, train


def _args(module, argv):
    p = argparse.ArgumentParser()
    module.add_arguments(p)
    return p.parse_args(argv)


# --- cost models ----------------------------------------------------------------------------
def test_gemm_cases_count_2mnk():
    table = gemm.cases()
    assert len(table) == len(gemm.SQUARE) + len(gemm.MLP)
    for _, m, k, n, _, _ in table:
        assert gemm.flops(m, k, n) == 2 * m * n * k
        assert registry.bytes("matmul", {"m": m, "k": k, "n": n}) == 4 * (m * k + k * n + m * n)


def test_conv_cases_count_the_definition():
    for case in conv.CASES:
        n, c, h, w, k, r, st, p = case
        ho, wo = (h + 2 * p - r) // st + 1, (w + 2 * p - r) // st + 1
        assert conv.flops(case) == 2 * n * k * c * r * r * ho * wo
        assert conv.flops_fwd_bwd(case) == 3 * conv.flops(case)


def test_optim_bytes_per_parameter():
    n = 1000
    assert [optim.bytes_per_step(o, n) / n for o in ("AdamW", "SGD momentum", "Adagrad")] == [28, 20, 20]
    assert optim.bytes_clip_step(n) / n == 32


def test_nn_bytes_and_mlp_flops():
    shape = (4, 10)
    per_elem = {("softmax", ()): 8, ("gelu", ()): 8, ("gelu_backward", ()): 12, ("layer_norm", ()): 8,
                ("layer_norm_backward", ()): 12, ("sum_rows", ()): 4}
    for (name, _), b in per_elem.items():
        assert registry.bytes(name, {"shape": shape}) == b * 40, name
    assert registry.bytes("cross_entropy", {"shape": shape, "return_grad": True}) == 8 * 40
    assert registry.bytes("batch_norm", {"shape": shape, "training": True}) == 12 * 40
    assert registry.bytes("dropout", {"shape": shape, "p": 0.1}) == 9 * 40
    assert nn.mlp_step_flops() == 2 * 128 * (2 * 784 * 256 + 3 * 256 * 128 + 3 * 128 * 10)


def test_train_flops_per_sample():
    assert train.CASES["mlp"].flops_per_sample == 2 * (2 * (784 * 256 + 256 * 128 + 128 * 10)) + \
        2 * (256 * 128 + 128 * 10)
    conv1 = 2 * 32 * 1 * 9 * 28 * 28
    fwd = conv1 + 2 * 64 * 32 * 9 * 14 * 14 + 2 * 64 * 7 * 7 * 128 + 2 * 128 * 10
    assert train.CASES["cnn"].flops_per_sample == 3 * fwd - conv1


def test_train_cnn_is_built_from_public_layers():
    import numpy as np
    model = train.CASES["cnn"].build_nnforge()
    assert isinstance(model, nnforge.nn.Sequential)
    assert all(type(layer).__name__ in nnforge.nn.__all__ for layer in model)
    assert model.forward(np.zeros((2, 1, 28, 28), np.float32)).shape == (2, 10)
    train.skip_first_input_grad(model)
    assert model[0].needs_input_grad is False


# --- the table --------------------------------------------------------------------------------
def test_table_rates_ratio_and_peak(capsys):
    rows = [_table.Row("a", "2x2", 2e9, {"nnforge": 0.5, "numpy": 1.0, "torch": 2.0}),
            _table.Row("b", "3x3", 1e9, {"nnforge": 1.0, "numpy": None}, unit="byte")]
    text = _table.print_rows("T", rows, ["nnforge", "numpy", "torch"], peak=8.0)
    assert text == capsys.readouterr().out.rstrip("\n")
    head, _, first, second = text.splitlines()[1:5]
    assert head.split()[:3] == ["case", "shape", "unit"]
    cells = first.split()
    # nnforge 4 GF/s vs best peer 2 GF/s -> 2.00; 4 / 8 GF/s peak -> 50 %
    assert cells[-2:] == ["2.00", "50"] and "4.0" in cells
    assert second.split()[-2:] == ["-", "-"]  # no peer ran; % peak only for FLOP rows


# --- the peak ---------------------------------------------------------------------------------
def test_cpu_peak_is_measured_and_cached():
    p = bench.cpu_peak()
    assert p["isa"] == nnforge.get_isa()
    assert p["cores"] == nnforge.get_num_threads()
    assert p["flops_per_cycle_per_core"] % (2 * p["lanes"]) == 0
    if p["clock_ghz"] > 0:
        assert 0.2 < p["clock_ghz"] <= p["add_clock_ghz"] < 10
        assert math.isclose(p["peak_gflops"], p["flops_per_cycle_per_core"] * p["cores"] * p["clock_ghz"])
    assert bench.cpu_peak() == p  # cached per process


def test_cpu_peak_per_isa_and_errors():
    for isa in nnforge.available_isas():
        assert bench.cpu_peak(isa)["isa"] == isa
    with pytest.raises(ValueError):
        bench.cpu_peak("sse9")


def test_peak_override_and_header():
    from nnforge.bench import _peak
    assert _peak.resolve(123.0) == (123.0, "peak=123 GFLOP/s (--peak)")
    value, text = _peak.resolve(None)
    if value is not None:
        assert text.startswith(f"peak={value:.0f} GFLOP/s ({nnforge.get_isa()}: ") and "measured" in text


# --- every family's run() with a constant timer -------------------------------------------------
def _fake_rounds(fns, **kw):
    return [{key: 1e-3 for key in case} for case in fns]


@pytest.mark.parametrize("module, argv", [(gemm, ["--sizes", "64", "--no-mlp", "--peak", "100"]),
                                          (conv, ["--quick"]), (nn, ["--quick"]), (optim, ["--quick"])])
def test_family_prints_a_table_without_timing(module, argv, monkeypatch, capsys):
    monkeypatch.setattr(module, "time_rounds", _fake_rounds)
    if module is conv:  # conv primes every callable once: skip the real kernels here too
        monkeypatch.setattr(conv, "CASES", conv.CASES[:1])
    if module is optim:
        monkeypatch.setattr(optim, "triad_gbs", lambda n: 10.0)
        monkeypatch.setattr(optim, "QUICK_LAYOUTS", [("1k x 1", [1000])])
    assert module.run(_args(module, argv)) == 0
    out = capsys.readouterr().out
    assert "peak=" in out and "nnf/best" in out and "% peak" in out
    if module is gemm:
        assert "peak=100 GFLOP/s (--peak)" in out


# --- recurrent layers and the text models' steps -------------------------------------------------
def test_rnn_cases_count_gates_and_layers():
    from nnforge.bench import rnn
    assert len(rnn.CASES) == 3 * 3 * 2
    assert rnn.flops(("lstm", (64, 32, 256, 256), 1)) == 2 * 64 * 32 * 4 * 256 * (256 + 256)
    # layer 2 reads the first layer's H-wide output
    assert rnn.flops(("gru", (128, 12, 128, 256), 2)) == 2 * 128 * 12 * 3 * 256 * ((128 + 256) + (256 + 256))
    assert rnn.flops_fwd_bwd(("rnn", (32, 64, 512, 512), 1)) == 3 * 2 * 32 * 64 * 512 * 1024


def test_rnn_bench_prints_a_table_without_timing(monkeypatch, capsys):
    from nnforge.bench import rnn
    monkeypatch.setattr(rnn, "time_rounds", _fake_rounds)
    assert rnn.run(_args(rnn, ["--quick", "--settle", "0"])) == 0
    out = capsys.readouterr().out
    assert "nnf/best" in out and "lstm T8 B4 I16 H16 L1" in out and "fwd+bwd" in out


def test_lstm_step_flops():
    from nnforge.bench.lstm_step import lstm_lm_flops
    per_token = 2 * 4 * 256 * (64 + 256) + 2 * 4 * 256 * (256 + 256) + 2 * 256 * 100
    assert lstm_lm_flops(32, 64, 100, 64, 256, 2) == 3 * 32 * 64 * per_token


@pytest.mark.parametrize("name", ["gpt", "lstm"])
def test_train_step_rows_run_with_tiny_models(name, monkeypatch, capsys):
    """`nnforge bench train --case gpt / lstm --quick` on tiny models (real steps, both libraries)."""
    from nnforge.bench import gpt_step, lstm_step
    tiny = {"gpt": lambda torch: gpt_step.gpt_step_case(vocab=11, context=8, n_layer=1, n_head=2, n_embd=16,
                                                        batch_size=2, torch=torch),
            "lstm": lambda torch: lstm_step.lstm_step_case(vocab=11, context=8, n_layer=1, n_embd=8, hidden=16,
                                                          batch_size=2, torch=torch)}
    monkeypatch.setitem(train.STEP_CASES, name, tiny[name])

    def one_step_each(case, rounds=1):  # a real step of each library, a constant time
        case.nnforge_step()
        if case.torch_step is not None:
            case.torch_step()
        return 1e-3, (None if case.torch_step is None else 1e-3)

    monkeypatch.setattr(gpt_step, "step_seconds", one_step_each)
    assert train.run(_args(train, ["--case", name, "--quick", "--no-profile", "--peak", "100"])) == 0
    out = capsys.readouterr().out
    assert f"{name} " in out and "nnforge step" in out and "ms/step" in out


# --- int8 quantisation ------------------------------------------------------------------------
def test_quant_bench_prints_a_table_with_tiny_repeats(monkeypatch, capsys):
    from nnforge.bench import quant

    def run_once(fns, **kw):  # every callable runs (the real kernels), timed as 1 ms
        return [{key: (fn(), 1e-3)[1] for key, fn in case.items()} for case in fns]
    monkeypatch.setattr(quant, "time_rounds", run_once)
    assert quant.run(_args(quant, ["--sizes", "3", "--repeats", "1", "--rounds", "1", "--settle", "0"])) == 0
    out = capsys.readouterr().out
    for text in ("3x3x3", "mlp fc1", "gpt fc proj", "int8/fp32", "bf16/fp32", "nnf s32 gemm GOP/s",
                 "nnf bf16 GOP/s", "one library per phase"):
        assert text in out


# --- sparse crossover sweep -------------------------------------------------------------------
def test_sparse_sweep_reports_crossovers(monkeypatch, capsys):
    from nnforge.bench import sparse
    monkeypatch.setattr(sparse, "SWEEP_SHAPES", [(5, 7, 3), (2, 9, 4)])
    # a fake timer: sparse (timed first) takes 0.5 from 90% zeros on the first shape, else 2; dense 1
    times = iter([t for s in sparse.SWEEP_SPARSITIES for t in (0.5 if s >= 0.9 else 2.0, 1.0)] +
                 [t for _ in sparse.SWEEP_SPARSITIES for t in (2.0, 1.0)])
    monkeypatch.setattr(sparse, "median_seconds", lambda fn, **kw: (fn(), next(times))[1])
    assert sparse.run(_args(sparse, ["--sweep", "--repeats", "1", "--settle", "0"])) == 0
    out = capsys.readouterr().out
    assert "crossover 5x7x3: sparse first faster at 90% sparsity, faster at every sparsity from 90%" in out
    assert "crossover 2x9x4: sparse never beats dense here" in out


def test_crossover_wording():
    from nnforge.bench.sparse import _crossover
    assert _crossover([(0.5, True), (0.8, False), (0.9, True), (0.99, True)]) == \
        "sparse first faster at 50% sparsity, faster at every sparsity from 90%"
    assert _crossover([(0.5, True), (0.9, False)]) == "sparse first faster at 50% sparsity, but not at the highest"
