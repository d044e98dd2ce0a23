"""The bf16 copy the fused optimizer steps write (ops.*_step(bf16_copies=...),
Parameter.enable_bf16) : bit for bit the round-to-nearest-even bfloat16 of the updated
float32 parameter."""
import numpy as np
import pytest

import nnforge.ops as ops
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
