"""Property-based tests (Hypothesis) for every registered op against its float64 reference.

Each op: Hypothesis picks one of the op's registry cases, a seed, a power-of-two value scale
(2**-20 .. 2**20: tiny and large magnitudes, exact in float32) and a layout for every float
input (as given, a strided view of a wider buffer, or a copy starting one element past an
aligned line), then compares with the reference under the registry's tolerance on every ISA
path. Elementwise ops and row ops also get arbitrary shapes (0 and 1 included) and arbitrary
float32 values: subnormals, huge magnitudes, NaN and inf (the NaN rule of test_nan_rule.py).

Example counts come from the Hypothesis profile: "nnforge" (default, bounded so the suite
stays fast) or "long" (python -m pytest tests/test_properties.py --hypothesis-profile=long);
both are registered in tests/conftest.py. A failing example is printed by Hypothesis.
"""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import nnforge
from nnforge import ops, registry
from nnforge.registry import assert_close, to64

ISAS = nnforge.available_isas()
# Registry tolerances written for unit-scale inputs: batch_norm's rstd bound falls below an
# ulp, attention's below the float32 error of scores scaled by scale**2 (softmax amplifies it),
# the recurrent cells' (scaled by the result) below the error of pre-activations that cancel
# from terms of size scale**2 (a gate near 1/2 from terms of 4096 at scale 64).
UNIT_SCALE = {"batch_norm", "attention", "lstm", "gru", "rnn"}
OPS = registry.all_ops()


def _relayout(a: np.ndarray, how: str) -> np.ndarray:
    """The same values as a strided view ("strided") or at a misaligned start ("offset")."""
    if how == "strided" and a.ndim >= 1 and a.size:
        wide = np.zeros(a.shape[:-1] + (2 * a.shape[-1],), a.dtype)
        view = wide[..., ::2]
        view[...] = a
        return view
    if how == "offset" and a.size:
        buf = np.zeros(a.size + 1, a.dtype)
        view = buf[1:].reshape(a.shape)
        view[...] = a
        return view
    return a


def _transform(obj, scale, layouts):
    if isinstance(obj, np.ndarray) and obj.dtype == np.float32:
        return _relayout((obj * np.float32(scale)).astype(np.float32), layouts.pop(0) if layouts else "as given")
    if isinstance(obj, list) and obj and all(isinstance(x, np.ndarray) for x in obj):
        return [_transform(x, scale, layouts) for x in obj]
    return obj


@pytest.mark.parametrize("name", [op.name for op in OPS])
@given(data=st.data())
def test_op_matches_reference_on_drawn_inputs(name, data):
    op = registry.get(name)
    cases = op.all_cases()
    case = cases[data.draw(st.integers(0, len(cases) - 1), label="case")]
    seed = data.draw(st.integers(0, 2**32 - 1), label="seed")
    # optimizer states must stay valid (v >= 0), so their steps keep the scale at 1
    scale = 1.0 if op.family == "optim" or op.name in UNIT_SCALE else \
        2.0 ** data.draw(st.integers(-20, 20), label="log2 scale")
    layouts = data.draw(st.lists(st.sampled_from(["as given", "strided", "offset"]), min_size=8, max_size=8),
                        label="layouts")
    if op.family == "optim" or op.name in ("batch_norm", "dropout"):
        layouts = []  # in-place updates need writeable C-contiguous buffers; dropout has no reference
    for isa in ISAS:
        args, kwargs = case.make(np.random.default_rng(seed))
        lay = list(layouts)
        args = tuple(_transform(a, scale, lay) for a in args)
        kwargs = {k: _transform(v, scale, lay) for k, v in kwargs.items()}
        args64 = tuple(to64(a) for a in args)
        kw64 = {k: to64(v) for k, v in kwargs.items()}
        with nnforge.use_isa(isa):
            got = op.run(*args, **kwargs)
        if op.reference is not None:
            with np.errstate(over="ignore", under="ignore"):  # exp(-2z) of large z: the limit is right
                want = op.reference(*args64, **kw64)
            assert_close(got, want, op.tolerance(case, args64, want), f"{case.id} scale {scale} on {isa}")
        if op.check is not None:
            op.check(case, args, got)


FLOAT32_VALUES = st.floats(width=32, allow_nan=True, allow_infinity=True, allow_subnormal=True)
SHAPES = hnp.array_shapes(min_dims=1, max_dims=3, min_side=0, max_side=9)
ELEMENTWISE = ["relu", "leaky_relu", "tanh", "sigmoid", "gelu"]


@pytest.mark.parametrize("name", ELEMENTWISE)
@given(x=hnp.arrays(np.float32, SHAPES, elements=FLOAT32_VALUES), transpose=st.booleans())
def test_elementwise_any_shape_and_value(name, x, transpose):
    """Any shape (0 and 1 included), any float32 value: NaN where the reference is NaN, +-inf
    where it is +-inf, the registry tolerance elsewhere."""
    op = registry.get(name)
    x = x.T if transpose else x
    with np.errstate(all="ignore"):
        want = op.reference(x.astype(np.float64))
    for isa in ISAS:
        with nnforge.use_isa(isa):
            got = getattr(ops, name)(x).astype(np.float64)
        assert np.array_equal(np.isnan(got), np.isnan(want)), f"{name} on {isa}: NaN pattern differs"
        fin = np.isfinite(want)
        assert np.array_equal(got[~fin & ~np.isnan(want)], want[~fin & ~np.isnan(want)]), f"{name} on {isa}: inf"
        with np.errstate(all="ignore"):
            tol = 8 * registry.EPS32 * np.abs(want[fin]) + 1e-37  # a few ulps, subnormal outputs to 1e-37
            assert (np.abs(got[fin] - want[fin]) <= tol).all(), f"{name} on {isa}: values"


@pytest.mark.parametrize("name", ["softmax", "log_softmax", "sum_rows"])
@given(x=hnp.arrays(np.float32, hnp.array_shapes(min_dims=2, max_dims=2, min_side=1, max_side=40),
                    elements=st.floats(-1e4, 1e4, width=32, allow_subnormal=True)), sliced=st.booleans())
def test_row_ops_any_shape(name, x, sliced):
    op = registry.get(name)
    x = x[:, ::2] if sliced else x
    want = op.reference(x.astype(np.float64))
    case = registry.Case(name, "drawn", {"shape": x.shape}, lambda rng: ((x,), {}))
    tol = op.tolerance(case, (x.astype(np.float64),), want)
    for isa in ISAS:
        with nnforge.use_isa(isa):
            assert_close(getattr(ops, name)(x), want, tol, f"{name} {x.shape} on {isa}")
