"""Mixed precision. The bf16 copy the fused optimizer steps write (ops.*_step(bf16_copies=...),
Parameter.enable_bf16): bit for bit the round-to-nearest-even bfloat16 of the updated
float32 parameter. Layers computing in bf16 (Module.set_precision): Linear, Conv2d and a
TransformerBlock against float64 references on bf16-rounded operands, the fp32 path
unchanged. `nnforge train --precision`: accuracy near fp32, resume, errors."""
import json
import re

import numpy as np
import pytest

import nnforge
import nnforge.ops as ops
from conv_reference import conv2d_backward_ref, conv2d_ref
from layer_check import randn
from nn_reference import EPS32, assert_close, f64
from nnforge import nn
from test_flat_params import OPTIMIZERS, _data, _model, _train
from test_optim import VARIANT_IDS, VARIANTS, make_problem

ml_dtypes = pytest.importorskip("ml_dtypes")
BF16 = np.dtype(ml_dtypes.bfloat16)


def to_bf16_bits(x: np.ndarray) -> np.ndarray:
    """The reference rounding: ops.to_bfloat16 once it exists, ml_dtypes' cast until then."""
    fn = getattr(ops, "to_bfloat16", None)
    out = fn(x) if fn is not None else x.astype(BF16)
    return np.asarray(out).view(np.uint16)


SHAPES = [(1,), (7,), (4097,), (211, 190)]


@pytest.mark.parametrize("variant", VARIANTS, ids=VARIANT_IDS)
@pytest.mark.parametrize("masked", [False, True], ids=["bf16", "bf16+mask"])
def test_bf16_copy_is_the_rounded_master_after_each_step(isa, rng, variant, masked):
    opt, cfg = variant
    params, st = make_problem(rng, opt, cfg, SHAPES)
    copies = [np.zeros(s, BF16) for s in SHAPES]
    extra = {"bf16_copies": copies}
    if masked:
        extra["masks"] = [(rng.random(s) < 0.5).astype(np.uint8) for s in SHAPES]
    for t in range(1, 4):
        grads = [rng.standard_normal(s).astype(np.float32) for s in SHAPES]
        assert opt.call(params, grads, st, t, cfg, **extra) is True
        for i, (p, c) in enumerate(zip(params, copies)):
            np.testing.assert_array_equal(c.view(np.uint16), to_bf16_bits(p), err_msg=f"step {t} tensor {i}")


def test_bf16_rounding_edge_cases(isa):
    """lr = 0 leaves p as it is, so the copy must be exactly the rounding of these bits:
    ties to even both ways, just off ties, the largest finite float (rounds to inf),
    subnormals, signed zeros, inf and NaNs of both signs."""
    bits = np.array([0x3F808000, 0x3F818000, 0x3F808001, 0x3F807FFF, 0x7F7FFFFF, 0x00000001, 0x00018000,
                     0x80000000, 0x00000000, 0x7F800000, 0xFF800000, 0x7FC00001, 0xFFFFFFFF, 0x7F800001,
                     0xC0490FDB], dtype=np.uint32)
    p = bits.view(np.float32).copy()
    copy = np.zeros(p.shape, BF16)
    assert ops.sgd_step([p], [np.zeros_like(p)], lr=0.0, step=1, bf16_copies=[copy]) is True
    finite = ~np.isnan(p)
    np.testing.assert_array_equal(p.view(np.uint32)[finite], bits[finite])  # (a signalling NaN is quieted)
    want = to_bf16_bits(p)
    np.testing.assert_array_equal(copy.view(np.uint16)[finite], want[finite])
    got_nan = copy.view(np.uint16)[~finite]
    assert np.isnan(copy[~finite].astype(np.float32)).all()
    np.testing.assert_array_equal(got_nan >> 15, p.view(np.uint32)[~finite] >> 31)  # sign kept


@pytest.mark.parametrize("bad,err,words", [
    (lambda: [np.zeros(5, np.float16)], TypeError, "bf16_copies[0]"),
    (lambda: [np.zeros(4, BF16)], ValueError, "bf16_copies[0] must have the shape"),
    (lambda: [np.zeros(10, BF16)[::2]], ValueError, "bf16_copies[0]"),
    (lambda: [np.zeros(5, BF16)], ValueError, "read-only"),
])
def test_bad_bf16_copies_change_nothing(rng, bad, err, words):
    p = rng.standard_normal(5).astype(np.float32)
    before = p.copy()
    copies = bad()
    if words == "read-only":
        copies[0].flags.writeable = False
    with pytest.raises(err) as info:
        ops.adamw_step([p], [np.ones_like(p)], [np.zeros_like(p)], [np.zeros_like(p)], step=1, lr=0.1,
                       bf16_copies=copies)
    assert words in str(info.value)
    np.testing.assert_array_equal(p, before)


@pytest.mark.parametrize("name,kw", OPTIMIZERS)
@pytest.mark.parametrize("flat", [False, True], ids=["per-tensor", "flat"])
def test_optimizer_keeps_parameter_bf16_copies(name, kw, flat, rng):
    x, y = _data(rng)
    model = _model()
    opt = nn.optim.OPTIMIZERS[name](model, **kw)
    if flat:
        model.flatten_parameters()
    params = model.parameters()
    for p in params[::2]:  # some with a copy, some without
        p.enable_bf16()
    _train(model, opt, x, y)
    for i, p in enumerate(params):
        if i % 2:
            assert p.bf16 is None
            continue
        np.testing.assert_array_equal(p.bf16.view(np.uint16), to_bf16_bits(p.data), err_msg=str(i))
        if flat:
            assert np.shares_memory(p.bf16, p._flat.extras["bf16"])
    params[0].disable_bf16()
    assert params[0].bf16 is None


# ---- Module.set_precision / Model.compile(precision=) ---------------------------------------
def test_set_precision_gives_every_parameter_a_synced_copy(rng):
    x, y = _data(rng)
    model = _model()  # a Sequential is an nn.Model
    model.compile("adamw", lr=1e-2, precision="bf16")
    assert all(m.precision == "bf16" for _, m in model.named_modules())
    model.fit(x, y, epochs=1, batch_size=8, verbose=0)
    for n, p in model.named_parameters():
        np.testing.assert_array_equal(p.bf16.view(np.uint16), to_bf16_bits(p.data), err_msg=n)
        assert np.shares_memory(p.bf16, p._flat.extras["bf16"]), n
    model.set_precision("fp32")
    assert all(p.bf16 is None for p in model.parameters()) and model.precision == "fp32"


def test_unknown_precision_is_a_clear_error():
    model = _model()
    with pytest.raises(ValueError, match=r"precision must be one of \['fp32', 'bf16'\], got 'fp16'"):
        model.set_precision("fp16")
    with pytest.raises(ValueError, match="precision must be one of"):
        model.compile("sgd", lr=0.1, precision="bf8")
    assert model.precision == "fp32" and "trainer" not in model.__dict__


def test_checkpoint_records_precision_and_resume_keeps_it(tmp_path, rng):
    x, y = _data(rng)
    a = _model().compile("adam", lr=1e-2, precision="bf16")
    a.fit(x, y, epochs=1, batch_size=8, verbose=0)
    path = a.save(tmp_path / "bf16.npz", a.optimizer)
    b = _model(4).compile("adam", lr=1e-2)
    b.load(path, b.optimizer)
    assert b.precision == "bf16"
    for n, p in b.named_parameters():
        np.testing.assert_array_equal(p.bf16.view(np.uint16), to_bf16_bits(p.data), err_msg=n)
    fp32 = _model().compile("adam", lr=1e-2).save(tmp_path / "fp32.npz")
    b.load(fp32)
    assert b.precision == "fp32" and all(p.bf16 is None for p in b.parameters())


# ---- layers computing in bf16 (Module.precision == "bf16") -------------------------------
# The reference rounds every GEMM / convolution operand with ml_dtypes (round to nearest
# even) and multiplies in float64. Products of bf16 values are exact in float32, so a
# layer whose kernel rounds the same operands differs from it only by float32
# accumulation: |err| <= gamma_k * sum_i |a_i b_i| with gamma_k ~ k * eps32 / 2 (Higham,
# Accuracy and Stability, 3.1). We allow twice that, plus one float32 rounding of the
# result (bias add, activation, accumulation into .grad). Leaving out the bf16 rounding
# of an operand costs ~2^-8 |a_i b_i| per term instead, far above this bound, and
# test_bf16_rounding_was_applied checks the layers really round.


def bf16_round(a) -> np.ndarray:
    """a rounded to bfloat16 by ml_dtypes, as float64."""
    return np.asarray(a, np.float32).astype(BF16).astype(np.float64)


def accumulation_tol(k: int, abs_products, result) -> np.ndarray:
    """Elementwise bound for float32 sums of k exact products (abs_products = sum |a_i b_i|
    per output) followed by one float32 rounding of the result."""
    return (k + 2) * EPS32 * f64(abs_products) + EPS32 * np.abs(f64(result))


def _view(a, how: str):
    """a (2-D float32) as a C-contiguous array, a transposed copy's view or a sliced view."""
    if how == "transposed":
        return np.ascontiguousarray(a.T).T
    if how == "sliced":
        wide = np.zeros((a.shape[0], 2 * a.shape[1] + 1), np.float32)
        wide[:, 1::2] = a
        return wide[:, 1::2]
    return a


@pytest.mark.parametrize("n,i,o", [(1, 1, 1), (7, 33, 17), (32, 64, 10), (13, 129, 31)])
@pytest.mark.parametrize("activation", [None, "relu"])
@pytest.mark.parametrize("layout", ["contiguous", "transposed", "sliced"])
def test_linear_bf16_forward_backward(isa, rng, n, i, o, activation, layout):
    lin = nn.Linear(i, o, activation=activation).set_precision("bf16")
    x = _view(randn(rng, n, i), layout)
    dy = randn(rng, n, o)
    g0 = randn(rng, i, o)  # .grad accumulates onto what is there
    lin.weight.grad[...] = g0
    y = lin.forward(x)
    xr, wr = bf16_round(x), bf16_round(lin.weight.data)
    z = xr @ wr + f64(lin.bias.data)
    want = np.maximum(z, 0.0) if activation == "relu" else z
    assert y.dtype == np.float32
    assert_close(y, want, accumulation_tol(i, np.abs(xr) @ np.abs(wr), want), "y")
    dx = lin.backward(dy)
    dz = f64(dy) * (want > 0) if activation == "relu" else f64(dy)  # ReLU's mask is exact
    dzr = bf16_round(dz)
    dw_want = f64(g0) + xr.T @ dzr
    assert_close(lin.weight.grad, dw_want, accumulation_tol(n, np.abs(xr.T) @ np.abs(dzr), dw_want) +
                 EPS32 * np.abs(f64(g0)), "dW")
    assert_close(lin.bias.grad, dz.sum(axis=0), accumulation_tol(n, np.abs(dz).sum(axis=0), dz.sum(axis=0)), "db")
    dx_want = dzr @ wr.T
    assert_close(dx, dx_want, accumulation_tol(o, np.abs(dzr) @ np.abs(wr.T), dx_want), "dx")


CONV_CASES = [  # (n, c, h, w, k, r, geometry): small-C direct, implicit GEMM, strided, grouped, 1x1, depthwise
    (2, 1, 8, 8, 4, 3, {"padding": 1}),
    (1, 7, 9, 11, 5, 3, {"padding": (1, 2)}),
    (2, 6, 10, 9, 4, 3, {"stride": 2, "dilation": (1, 2)}),
    (1, 6, 7, 7, 9, 3, {"groups": 3, "padding": 1}),
    (3, 17, 5, 6, 3, 1, {}),
    (1, 5, 8, 7, 5, 3, {"groups": 5, "padding": 1}),
]


@pytest.mark.parametrize("n,c,h,w,k,r,geo", CONV_CASES)
@pytest.mark.parametrize("activation", [None, "relu"])
def test_conv2d_bf16_forward_backward(isa, rng, n, c, h, w, k, r, geo, activation):
    conv = nn.Conv2d(c, k, r, activation=activation, **geo).set_precision("bf16")
    x = randn(rng, n, c, h, w)
    conv.weight.data[...] = randn(rng, *conv.weight.shape)
    y = conv.forward(x)
    xr, wr = bf16_round(x), bf16_round(conv.weight.data)
    want = conv2d_ref(xr, wr, conv.bias.data, activation=activation, **geo)
    taps = (c // conv.groups) * r * r
    abs_fwd = conv2d_ref(np.abs(xr), np.abs(wr), **geo)
    assert_close(y, want, accumulation_tol(taps, abs_fwd, want), "y")
    dy = randn(rng, *y.shape)
    dx = conv.backward(dy)
    dz = f64(dy) * (want > 0) if activation == "relu" else f64(dy)
    dzr = bf16_round(dz)
    dx_want, dw_want, db_want = conv2d_backward_ref(dzr, xr, wr, **geo)
    abs_dx, abs_dw, _ = conv2d_backward_ref(np.abs(dzr), np.abs(xr), np.abs(wr), **geo)
    ho_wo = y.shape[2] * y.shape[3]
    assert_close(dx, dx_want, accumulation_tol((k // conv.groups) * r * r, abs_dx, dx_want), "dx")
    assert_close(conv.weight.grad, dw_want, accumulation_tol(n * ho_wo, abs_dw, dw_want), "dW")
    # ops.conv2d_backward(precision="bf16") sums the rounded dy for db (Linear sums the float32 dz)
    assert_close(conv.bias.grad, db_want, accumulation_tol(n * ho_wo, np.abs(dzr).sum(axis=(0, 2, 3)), db_want), "db")


def test_bf16_rounding_was_applied(rng):
    """The bounds above are tight enough to tell: against the unrounded float64 product a
    bf16 layer is off by far more than float32 accumulation allows, an fp32 layer is not."""
    x = randn(rng, 16, 96)
    for precision, rounded in (("bf16", True), ("fp32", False)):
        lin = nn.Linear(96, 24).set_precision(precision)
        y = lin.forward(x)
        exact = f64(x) @ f64(lin.weight.data) + f64(lin.bias.data)
        tol = accumulation_tol(96, np.abs(f64(x)) @ np.abs(f64(lin.weight.data)), exact)
        assert bool((np.abs(f64(y) - exact) > tol).any()) is rounded, precision


def test_bf16_layers_are_thread_count_independent(rng, threads):
    x, dy = randn(rng, 37, 45), randn(rng, 37, 19)
    results = []
    for n in (1, 2):
        nnforge.set_num_threads(n)
        nnforge.seed(1)  # the same initial weights
        lin = nn.Linear(45, 19, activation="relu").set_precision("bf16")
        y = lin.forward(x)
        results.append((y, lin.backward(dy), lin.weight.grad.copy()))
    for a, b in zip(*results):
        np.testing.assert_array_equal(a, b)


def test_fp32_layers_are_the_plain_kernels(rng):
    """precision "fp32" (the default) is bitwise the ops' own results without a precision
    argument: the fp32 path is unchanged."""
    lin = nn.Linear(29, 11, activation="relu")
    x, dy = randn(rng, 9, 29), randn(rng, 9, 11)
    y = lin.forward(x)
    np.testing.assert_array_equal(y, ops.matmul(x, lin.weight.data, bias=lin.bias.data, activation="relu"))
    dx = lin.backward(dy)
    dz = ops.relu_backward(dy, y)
    np.testing.assert_array_equal(lin.weight.grad, ops.matmul(x.T, dz))
    np.testing.assert_array_equal(dx, ops.matmul(dz, lin.weight.data.T))
    conv = nn.Conv2d(3, 4, 3, padding=1)
    xc = randn(rng, 2, 3, 6, 5)
    yc = conv.forward(xc)
    np.testing.assert_array_equal(yc, ops.conv2d(xc, conv.weight.data, conv.bias.data, padding=1))
    dyc = randn(rng, *yc.shape)
    dxc = conv.backward(dyc)
    want = ops.conv2d_backward(dyc, xc, conv.weight.data, padding=1)
    for got, w in zip((dxc, conv.weight.grad, conv.bias.grad), want):
        np.testing.assert_array_equal(got, w)


def _gpt(precision: str):
    nnforge.seed(3)
    return nn.GPT(vocab_size=11, context=8, n_layer=1, n_head=2, n_embd=8).set_precision(precision)


@pytest.mark.parametrize("precision", ["fp32", "bf16"])
def test_every_gpt_gemm_runs_in_the_model_precision(monkeypatch, rng, precision):
    """Every ops.matmul of a GPT training step and of generation (projections, MLP, head;
    forward and backward) is asked for the model's precision."""
    seen = []
    matmul = ops.matmul

    def spy(*args, **kw):
        seen.append(kw.get("precision", "fp32 (not passed)"))
        return matmul(*args, **kw)
    model = _gpt(precision)
    idx, tgt = rng.integers(0, 11, (2, 8)), rng.integers(0, 11, (2, 8))
    monkeypatch.setattr(ops, "matmul", spy)
    model.loss(idx, tgt)
    model.backward()
    model.generate(idx[0, :3], 2)
    # per block: forward 4 + backward 8 GEMMs; head forward 1 + backward 2; generation more
    assert len(seen) > 15 and set(seen) == {precision}


def _torch_block_reference(torch, blk, x, dy):
    """(y, dx, grads by parameter name) of TransformerBlock `blk` in float64 torch, every
    GEMM operand (forward: x and W; backward: dY, W and X) rounded to bf16 by ml_dtypes as
    nnforge's bf16 layers round them; LayerNorm, attention, GELU and residuals exact."""
    rnd = lambda t: torch.from_numpy(bf16_round(t.detach().numpy()))

    class BF16Matmul(torch.autograd.Function):
        @staticmethod
        def forward(ctx, a, b):
            ctx.save_for_backward(a, b)
            return rnd(a) @ rnd(b)

        @staticmethod
        def backward(ctx, g):
            a, b = ctx.saved_tensors
            return rnd(g) @ rnd(b).T, rnd(a).T @ rnd(g)

    mm = BF16Matmul.apply
    p = {n: torch.tensor(f64(q.data), requires_grad=True) for n, q in blk.named_parameters()}
    xt = torch.tensor(f64(x), requires_grad=True)
    b, l, e = x.shape
    h = blk.attn.num_heads
    d = e // h
    ln = lambda v, name: torch.nn.functional.layer_norm(v, (e,), p[name + ".weight"], p[name + ".bias"], 1e-5)
    h1 = ln(xt, "ln1").reshape(b * l, e)
    qkv = (mm(h1, p["attn.w_qkv"]) + p["attn.b_qkv"]).reshape(b, l, 3, h, d).permute(2, 0, 3, 1, 4)
    att = (qkv[0] @ qkv[1].transpose(-1, -2)) / np.sqrt(d)
    att = att.masked_fill(torch.triu(torch.ones(l, l, dtype=torch.bool), 1), float("-inf")).softmax(-1)
    ctx = (att @ qkv[2]).permute(0, 2, 1, 3).reshape(b * l, e)
    x1 = xt + (mm(ctx, p["attn.w_out"]) + p["attn.b_out"]).reshape(b, l, e)
    z = mm(ln(x1, "ln2").reshape(b * l, e), p["fc1.weight"]) + p["fc1.bias"]
    m = mm(torch.nn.functional.gelu(z, approximate="tanh"), p["fc2.weight"]) + p["fc2.bias"]
    y = x1 + m.reshape(b, l, e)
    y.backward(torch.from_numpy(f64(dy)))
    return y.detach().numpy(), xt.grad.numpy(), {n: t.grad.numpy() for n, t in p.items()}


def test_transformer_block_bf16_against_rounded_reference(isa, rng):
    """A bf16 TransformerBlock (attention projections and MLP in bf16; LayerNorm, softmax
    core, GELU in float32) against float64 with the same operands rounded. Both round the
    same values except where a float32 intermediate (relative error rho ~ a few eps32
    against float64) lies within rho of a bf16 rounding boundary: a fraction ~2 rho / 2^-7
    ~ 1e-4 of its elements, so rarely more than one per operand here. One such element
    moves its operand by one bf16 ulp (2^-7 relative), 2^-7 / sqrt(224) ~ 5e-4 in norm for
    the smallest operand (14 x 16); we allow 2^-10 ~ 9.8e-4 relative in norm per tensor.
    Without such a flip the difference is float32 arithmetic (~1e-7); an fp32 block is
    ~4e-3 away from this reference, one missing rounding alone ~2^-8 / sqrt(3) ~ 2.3e-3."""
    torch = pytest.importorskip("torch")
    e, b, l = 16, 2, 7
    blk = nn.TransformerBlock(e, 2)
    for name, p in blk.named_parameters():
        scale = 0.3 if p.data.ndim == 2 else 0.1
        p.data[...] = randn(rng, *p.shape, scale=scale) + (1.0 if name.endswith(("ln1.weight", "ln2.weight")) else 0.0)
    blk.set_precision("bf16")
    x, dy = randn(rng, b, l, e), randn(rng, b, l, e)
    y = blk.forward(x)
    dx = blk.backward(dy)
    y_ref, dx_ref, g_ref = _torch_block_reference(torch, blk, x, dy)
    rel = lambda got, want: float(np.linalg.norm(f64(got) - want) / np.linalg.norm(want))
    bound = 2.0 ** -10
    assert rel(y, y_ref) <= bound and rel(dx, dx_ref) <= bound, (rel(y, y_ref), rel(dx, dx_ref))
    for name, p in blk.named_parameters():
        assert rel(p.grad, g_ref[name]) <= bound, (name, rel(p.grad, g_ref[name]))


# ---- nnforge train --precision ---------------------------------------------------------
def _cli(tmp_path, name, *extra):
    from nnforge import cli
    return cli.main(["--threads", "1", "train", "--out", str(tmp_path / name), "--verbose", "0", *extra])


def _history(tmp_path, name) -> dict:
    return json.loads((tmp_path / name / "history.json").read_text())


def test_train_bf16_reaches_fp32_accuracy(tmp_path, capsys, threads):
    """The default MLP, 5 epochs, same seed in both precisions. The test split has n = 360
    digits; at accuracy p ~ 0.96 one run's sampling error is sqrt(p (1 - p) / n) ~ 1 point,
    so two independent runs differ by more than 3 sqrt(2) ~ 4.4 points with probability
    < 0.3%; same-seed runs are correlated, which only narrows it. We allow 5 points."""
    accuracy = {}
    for precision in ("fp32", "bf16"):
        assert _cli(tmp_path, precision, "--epochs", "5", "--precision", precision) == 0
        line = capsys.readouterr().out.splitlines()[0]
        assert line.endswith(f", {precision}"), line
        info = _history(tmp_path, precision)
        assert info["options"]["precision"] == precision
        accuracy[precision] = info["test"]["accuracy"]
    assert accuracy["bf16"] >= 0.9 and abs(accuracy["bf16"] - accuracy["fp32"]) <= 0.05, accuracy


def test_train_resume_keeps_bf16(tmp_path, capsys, threads):
    assert _cli(tmp_path, "straight", "--epochs", "3", "--precision", "bf16") == 0
    assert _cli(tmp_path, "part", "--epochs", "2", "--precision", "bf16") == 0
    ckpt = str(tmp_path / "part" / "checkpoint.npz")
    with np.load(ckpt) as z:
        assert str(z["meta/precision"]) == "bf16"
    assert _cli(tmp_path, "part", "--epochs", "3", "--resume", ckpt) == 0  # no --precision: the checkpoint's
    a, b = _history(tmp_path, "straight"), _history(tmp_path, "part")
    assert b["options"]["precision"] == "bf16" and a["history"] == b["history"] and a["test"] == b["test"]
    capsys.readouterr()
    assert _cli(tmp_path, "part", "--epochs", "4", "--resume", ckpt, "--precision", "fp32") == 2
    err = capsys.readouterr().err
    assert "was trained with --precision bf16, this run asks for --precision fp32" in err and err.count("\n") == 1


def test_train_precision_errors(tmp_path, capsys):
    with pytest.raises(SystemExit) as info:
        _cli(tmp_path, "r", "--precision", "fp16")
    assert info.value.code == 2
    assert "argument --precision: invalid choice: 'fp16' (choose from 'fp32', 'bf16')" in capsys.readouterr().err
    assert _cli(tmp_path, "r", "--model", "lstm", "--precision", "bf16", "--steps", "2") == 2
    err = capsys.readouterr().err
    assert "--precision bf16 is not supported for --model lstm" in err and err.count("\n") == 1


def test_train_gpt_bf16_and_resume(tmp_path, capsys, threads):
    corpus = tmp_path / "corpus.txt"
    corpus.write_text("the quick brown fox jumps over the lazy dog. " * 40, encoding="utf-8")
    tiny = ["--model", "gpt", "--data", str(corpus), "--eval-every", "4", "--context", "16", "--n-layer", "1",
            "--n-head", "2", "--n-embd", "16", "--batch-size", "4"]
    assert _cli(tmp_path, "g", *tiny, "--steps", "4", "--precision", "bf16") == 0
    assert "after 4 steps, training" in capsys.readouterr().out
    ckpt = str(tmp_path / "g" / "checkpoint.npz")
    assert _cli(tmp_path, "g", *tiny, "--steps", "8", "--resume", ckpt) == 0
    out = capsys.readouterr().out
    assert re.search(r"val loss \d+\.\d{4} after 8 steps, training \d+\.\ds, bf16", out), out
    info = _history(tmp_path, "g")
    assert info["options"]["precision"] == "bf16" and len(info["history"]["loss"]) == 8


def test_precision_bench_prints_one_table(capsys, threads):
    from nnforge import cli
    assert cli.main(["--threads", "1", "bench", "precision", "--models", "mlp", "--epochs", "1"]) == 0
    out = capsys.readouterr().out
    fp32, bf16, diff = [line.split() for line in out.splitlines() if line.lstrip().startswith("mlp")]
    assert fp32[1:4] == ["1", "epoch", "fp32"] and bf16[3] == "bf16" and diff[1:4] == ["bf16", "-", "fp32"], out
    assert float(diff[-2]) == pytest.approx(float(bf16[-2]) - float(fp32[-2]), abs=0.011)  # test acc %
    assert _cli_error(["bench", "precision", "--models", "mlp,vgg"], capsys) == "--models: choose from mlp,cnn,gpt"


def _cli_error(argv, capsys) -> str:
    from nnforge import cli
    assert cli.main(argv) == 2
    return capsys.readouterr().err.strip().split("error: ", 1)[1].split(", got")[0]
