"""nnforge.quant: int8 model quantisation (dynamic, static PTQ, QAT) and its checkpoints,
against float64 NumPy references written here (sharing no code with nnforge.quant)."""
from __future__ import annotations

import copy
from pathlib import Path

import numpy as np
import pytest

import nnforge
from nnforge import data, nn, quant
from nnforge.nn.checkpoint import CheckpointError

from conv_reference import conv2d_ref


def ref_act_qparams(lo, hi):
    lo, hi = min(float(lo), 0.0), max(float(hi), 0.0)
    scale = (hi - lo) / 255.0 if hi > lo else 1.0
    scale = float(np.float32(scale))
    return scale, int(np.clip(np.round(-lo / scale), 0, 255))


def ref_fake_quant(x, lo, hi):
    s, z = ref_act_qparams(lo, hi)
    q = np.clip(np.round(x.astype(np.float64) / s) + z, 0, 255)
    return (q - z) * s, s, z


def ref_weight_dequant(w, axis):
    """per-channel symmetric int8 quantise-dequantise, float64; also the scales."""
    other = tuple(a for a in range(w.ndim) if a != axis)
    amax = np.abs(w.astype(np.float64)).max(axis=other, keepdims=True)
    s = np.where(amax > 0, amax / 127.0, 1.0).astype(np.float32).astype(np.float64)
    return np.clip(np.round(w / s), -127, 127) * s, s


# --- observers ---------------------------------------------------------------------------------

def test_observers_ranges_match_numpy(rng):
    batches = [rng.standard_normal((n, 7)).astype(np.float32) * rng.uniform(0.5, 3) for n in (1, 13, 64)]
    mm, pc = quant.MinMaxObserver(), quant.PercentileObserver(99.0)
    for b in batches:
        mm.observe(b)
        pc.observe(b)
    allx = np.concatenate([b.ravel() for b in batches])
    assert mm.range() == (float(allx.min()), float(allx.max()))
    lo = min(np.percentile(b.astype(np.float64), 1.0) for b in batches)
    hi = max(np.percentile(b.astype(np.float64), 99.0) for b in batches)
    assert pc.range() == pytest.approx((lo, hi), rel=1e-12)


def test_observer_bad_input():
    with pytest.raises(ValueError, match="seen no data"):
        quant.MinMaxObserver().range()
    with pytest.raises(ValueError, match="p"):
        quant.PercentileObserver(40.0)
    with pytest.raises(TypeError):
        quant.PercentileObserver("99")


# --- the int8 layers against the dequantised float64 reference -------------------------------

@pytest.mark.parametrize("n,k,m", [(1, 1, 1), (7, 64, 10), (33, 131, 17)])
def test_quantized_linear_dynamic_matches_dequantised_reference(isa, rng, n, k, m):
    lin = nn.Linear(k, m, activation="relu")
    x = (rng.standard_normal((n, k)) * 2 + 0.3).astype(np.float32)
    y = quant.quantize_dynamic(nn.Sequential(lin))(x)
    wd, sw = ref_weight_dequant(lin.weight.data, axis=1)
    xd = np.stack([ref_fake_quant(row, row.min(), row.max())[0] for row in x])
    ref = np.maximum(xd @ wd + lin.bias.data, 0.0)
    assert y.dtype == np.float32 and y.shape == (n, m)
    np.testing.assert_allclose(y, ref, rtol=1e-5, atol=1e-5 * np.abs(ref).max() + 1e-6)
    # and against the float layer: the error each operand's rounding (half a step) allows
    sx = np.array([ref_fake_quant(row, row.min(), row.max())[1] for row in x])[:, None]
    bound = ((np.abs(x) + sx / 2).sum(axis=1, keepdims=True) * sw.ravel() / 2
             + sx / 2 * np.abs(lin.weight.data).sum(axis=0))
    yf = lin.forward(x)
    assert np.all(np.abs(y - yf) <= bound * (1 + 1e-5) + 1e-5)


@pytest.mark.parametrize("stride,padding,dilation", [(1, 1, 1), (2, 0, 1), ((1, 2), (2, 0, 1, 1), (2, 1))])
def test_quantized_conv2d_static_matches_dequantised_reference(isa, rng, stride, padding, dilation):
    conv = nn.Conv2d(3, 5, 3, stride=stride, padding=padding, dilation=dilation, activation="relu")
    x = rng.standard_normal((2, 3, 9, 7)).astype(np.float32)
    prepared = quant.prepare(nn.Sequential(conv))
    quant.calibrate(prepared, [x[:1], x[1:]])
    y = quant.convert(prepared)(x)
    xd, _, _ = ref_fake_quant(x, x.min(), x.max())
    wd, _ = ref_weight_dequant(conv.weight.data, axis=0)
    ref = conv2d_ref(xd, wd, conv.bias.data.astype(np.float64), stride=stride, padding=conv.padding,
                     dilation=dilation, activation="relu")
    assert y.shape == ref.shape
    np.testing.assert_allclose(y, ref, rtol=1e-5, atol=1e-5 * np.abs(ref).max() + 1e-6)


def test_quantized_weight_from_int8_packs_any_view_and_checks(rng):
    codes = rng.integers(-128, 128, (37, 11), dtype=np.int8)  # N = 37: off the 32-column tile
    scales = rng.uniform(0.01, 1.0, 37).astype(np.float32)
    qw = nnforge.ops.QuantizedWeight.from_int8(np.ascontiguousarray(codes.T).T, scales)  # a transposed view
    np.testing.assert_array_equal(qw.int8(), codes)
    np.testing.assert_array_equal(qw.col_sums, codes.sum(axis=1, dtype=np.int64))
    np.testing.assert_array_equal(qw.scales, scales)
    with pytest.raises(TypeError, match="codes must be int8"):
        nnforge.ops.QuantizedWeight.from_int8(codes.astype(np.int16), scales)
    with pytest.raises(TypeError, match="scales must be float32"):
        nnforge.ops.QuantizedWeight.from_int8(codes, scales.astype(np.float64))
    with pytest.raises(ValueError, match=r"2-D"):
        nnforge.ops.QuantizedWeight.from_int8(codes[0], scales[:1])
    with pytest.raises(ValueError, match=r"\(37,\)"):
        nnforge.ops.QuantizedWeight.from_int8(codes, scales[:-1])
    for bad in (0.0, -1.0, np.nan, np.inf):
        with pytest.raises(ValueError, match="finite and > 0"):
            nnforge.ops.QuantizedWeight.from_int8(codes, np.where(np.arange(37) == 5, bad, scales).astype(np.float32))


def test_quantized_layers_are_inference_only():
    q = quant.quantize_dynamic(nn.Sequential(nn.Linear(4, 3)))
    q.forward(np.ones((2, 4), np.float32))
    with pytest.raises(RuntimeError, match="inference-only"):
        q.backward(np.ones((2, 3), np.float32))
    with pytest.raises(TypeError, match="float32"):
        q.forward(np.ones((2, 4)))
    with pytest.raises(ValueError, match=r"\(N, 4\)"):
        q.forward(np.ones((2, 5), np.float32))
    with pytest.raises(ValueError, match="Linear layers only"):
        quant.quantize_dynamic(q, layers=(nn.Conv2d,))


def test_quantize_dynamic_copies_unless_inplace():
    model = nn.Sequential(nn.Linear(4, 3), nn.ReLU())
    q = quant.quantize_dynamic(model)
    assert isinstance(model[0], nn.Linear) and isinstance(q[0], quant.QuantizedLinear)
    assert isinstance(q[1], nn.ReLU) and list(q._modules) == ["0", "1"]
    assert quant.quantize_dynamic(model, inplace=True) is model and isinstance(model[0], quant.QuantizedLinear)


# --- FakeQuantize -----------------------------------------------------------------------------

def test_fake_quantize_forward_and_straight_through_gradient(rng):
    fq = quant.FakeQuantize(momentum=0.25)
    a = rng.standard_normal((5, 6)).astype(np.float32)
    b = (rng.standard_normal((4, 6)) * 3).astype(np.float32)
    fq.forward(a)
    y = fq.forward(b)  # range: EMA of the two batches' min/max
    lo = 0.75 * a.min() + 0.25 * b.min()
    hi = 0.75 * a.max() + 0.25 * b.max()
    ref, s, z = ref_fake_quant(b, lo, hi)
    np.testing.assert_allclose(y, ref, rtol=1e-6, atol=1e-6 * s)
    g = rng.standard_normal(b.shape).astype(np.float32)
    inside = (b >= -z * s) & (b <= (255 - z) * s)
    assert 0 < inside.sum() < b.size  # b's extremes lie outside the EMA range: some gradient is clipped
    np.testing.assert_array_equal(fq.backward(g), np.where(inside, g, 0.0))
    fq.eval()
    before = (fq.range_min.copy(), fq.range_max.copy())
    fq.forward(b * 10)
    assert (fq.range_min, fq.range_max) == before


# --- whole models on the digits ---------------------------------------------------------------

@pytest.fixture(scope="module")
def digits():
    x, y = data.load_digits()
    (xtr, ytr), _, (xte, yte) = data.train_val_test_split(x / 16.0, y, val_fraction=0.0, test_fraction=0.3,
                                                          rng=0, stratify=y)
    st = data.Standardizer().fit(xtr)
    return st.transform(xtr), ytr, st.transform(xte), yte


@pytest.fixture(scope="module")
def trained_mlp(digits):
    xtr, ytr, _, _ = digits
    nnforge.seed(1)
    model = nn.Sequential(nn.Linear(64, 64, activation="relu"), nn.Linear(64, 10)).compile("adam", lr=3e-3)
    model.fit(xtr, ytr, epochs=5, batch_size=32, verbose=0)
    return model.eval()


def _accuracy(model, x, y) -> float:
    return float(np.mean(np.argmax(model.forward(x), axis=1) == y))


def test_dynamic_and_static_int8_keep_digits_accuracy(digits, trained_mlp):
    xtr, _, xte, yte = digits
    base = _accuracy(trained_mlp, xte, yte)
    assert base > 0.9
    dynamic = quant.quantize_dynamic(trained_mlp)
    for observer in (quant.MinMaxObserver, lambda: quant.PercentileObserver(99.99)):
        prepared = quant.prepare(trained_mlp, observer=observer)
        quant.calibrate(prepared, [xtr[i:i + 256] for i in range(0, len(xtr), 256)])
        static = quant.convert(prepared)
        assert abs(_accuracy(static, xte, yte) - base) <= 0.005 + 1e-12
    assert abs(_accuracy(dynamic, xte, yte) - base) <= 0.005 + 1e-12


def test_qat_then_convert_matches_fake_quant_forward(digits, trained_mlp):
    xtr, ytr, xte, yte = digits
    qat = quant.prepare_qat(trained_mlp)
    qat.compile("adam", lr=1e-3)
    qat.fit(xtr, ytr, epochs=1, batch_size=32, verbose=0)
    qat.eval()
    fake = qat.forward(xte)
    converted = quant.convert(qat)
    assert all(isinstance(m, quant.QuantizedLinear) for m in converted)
    real = converted.forward(xte)
    # the same codes, scales and rounding: only float summation order differs, which can move an
    # activation across a rounding boundary of the next layer's input (one step) for a few rows
    step = float(converted[1].input_scale) * np.abs(converted[1].weight_q * converted[1].weight_scale).sum(0).max()
    assert np.all(np.abs(real - fake) <= step + 1e-4 * np.abs(fake).max())
    assert np.mean(np.abs(real - fake) <= 1e-4 * np.abs(fake).max()) > 0.95
    assert abs(_accuracy(converted, xte, yte) - _accuracy(trained_mlp, xte, yte)) <= 0.02


def test_convert_needs_calibration():
    with pytest.raises(ValueError, match="calibrate"):
        quant.convert(quant.prepare(nn.Sequential(nn.Linear(3, 2))))
    with pytest.raises(ValueError, match="fit"):
        quant.convert(quant.prepare_qat(nn.Sequential(nn.Linear(3, 2))))


# --- checkpoints ------------------------------------------------------------------------------

def _static_cnn(rng):
    model = nn.Sequential(nn.Conv2d(1, 4, 3, padding=1, activation="relu"), nn.Flatten(),
                          nn.Linear(4 * 6 * 6, 5)).eval()
    x = rng.standard_normal((3, 1, 6, 6)).astype(np.float32)
    prepared = quant.prepare(model)
    quant.calibrate(prepared, [x])
    return model, quant.convert(prepared), x


def test_checkpoint_round_trip_keeps_int8(tmp_path, rng):
    float_model, qmodel, x = _static_cnn(rng)
    path = quant.checkpoint.save(tmp_path / "q.npz", qmodel, extra={"note": "hi"})
    loaded, extra = quant.checkpoint.load(path, float_model)
    assert extra == {"note": "hi"}
    assert loaded[0].weight_q.dtype == np.int8 and loaded[2].static
    np.testing.assert_array_equal(loaded.forward(x), qmodel.forward(x))
    assert isinstance(float_model[0], nn.Conv2d)  # the template is not modified


def _entries(path) -> dict:
    with np.load(path) as f:
        return dict(f)


def test_checkpoint_damage_and_mismatch_are_clear_errors(tmp_path, rng):
    float_model, qmodel, _ = _static_cnn(rng)
    path = str(quant.checkpoint.save(tmp_path / "q.npz", qmodel))
    raw = Path(path).read_bytes()
    cut = tmp_path / "cut.npz"
    cut.write_bytes(raw[: len(raw) // 2])
    with pytest.raises(CheckpointError, match="cut.npz"):
        quant.checkpoint.load(cut, float_model)
    other = nn.Sequential(nn.Conv2d(1, 4, 3, padding=1, activation="relu"), nn.Flatten(), nn.Linear(144, 7))
    with pytest.raises(CheckpointError, match="shape"):
        quant.checkpoint.load(path, other)
    with pytest.raises(CheckpointError, match="different architecture"):
        quant.checkpoint.load(path, nn.Sequential(nn.Linear(3, 2)))
    plain = nn.checkpoint.save(tmp_path / "plain.npz", float_model)
    with pytest.raises(CheckpointError, match="not a quantised checkpoint"):
        quant.checkpoint.load(plain, float_model)
    entries = _entries(path)
    entries["model/0.weight_q"] = entries["model/0.weight_q"].astype(np.float32)
    np.savez(tmp_path / "retyped.npz", **entries)
    with pytest.raises(CheckpointError, match="weight_q.*dtype"):
        quant.checkpoint.load(tmp_path / "retyped.npz", float_model)
    entries = _entries(path)
    entries["model/0.weight_scale"][1] = 0.0
    np.savez(tmp_path / "scale.npz", **entries)
    with pytest.raises(CheckpointError, match=r"0\.weight_scale.*> 0"):
        quant.checkpoint.load(tmp_path / "scale.npz", float_model)
    entries = _entries(path)
    entries["extra/quant_layout"] = np.array("{not json")
    np.savez(tmp_path / "layout.npz", **entries)
    with pytest.raises(CheckpointError, match="quant_layout"):
        quant.checkpoint.load(tmp_path / "layout.npz", float_model)


def test_packed_weight_is_rebuilt_by_loads_and_never_saved(tmp_path, rng):
    x = rng.standard_normal((5, 13)).astype(np.float32)
    a, b = (quant.quantize_dynamic(nn.Sequential(nn.Linear(13, 6, activation="gelu_erf"))) for _ in range(2))
    ya = a.forward(x)
    assert not np.array_equal(b.forward(x), ya)
    b.load_state_dict(a.state_dict())  # writes b's int8 buffers in place: the packed weight must follow
    np.testing.assert_array_equal(b.forward(x), ya)
    np.testing.assert_array_equal(copy.deepcopy(a).forward(x), ya)
    path = quant.checkpoint.save(tmp_path / "q.npz", a)
    saved = {k[len("model/"):] for k in _entries(path) if k.startswith("model/")}
    assert saved == set(a.state_dict()) == {"0.weight_q", "0.weight_scale", "0.bias"}
