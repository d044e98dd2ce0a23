"""Every registered op x every ISA path x its awkward cases against the op's float64
reference and tolerance, plus each op's gradient check (nnforge.registry).

Later backends add devices: each case carries a device, and the device axis below
then lists more than the CPU.
"""
from __future__ import annotations

import numpy as np
import pytest

from nnforge import ops, registry
from nnforge.registry import assert_close, to64

DEVICES = ["cpu"]
CASES = [(op, case) for op in registry.all_ops() for case in op.all_cases()]
GRAD_CASES = [(op, case) for op, case in CASES if op.grad_check is not None]


def _ids(pairs):
    return [case.id for _, case in pairs]


def _on(device, case):
    if case.device != device:
        pytest.skip(f"{case.id} runs on {case.device}")


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("op_case", CASES, ids=_ids(CASES))
def test_op_matches_reference(isa, device, op_case, rng):
    op, case = op_case
    _on(device, case)
    args, kwargs = case.make(rng)
    args64 = tuple(to64(a) for a in args)  # before run: steps update their inputs in place
    kw64 = {k: to64(v) for k, v in kwargs.items()}
    got = op.run(*args, **kwargs)
    if op.reference is not None:
        want = op.reference(*args64, **kw64)
        assert_close(got, want, op.tolerance(case, args64, want), f"{case.id} on {isa}")
    if op.check is not None:
        op.check(case, args, got)


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("op_case", GRAD_CASES, ids=_ids(GRAD_CASES))
def test_gradient(isa, device, op_case, rng):
    op, case = op_case
    _on(device, case)
    op.grad_check(rng, case)


def test_every_public_op_is_registered_or_covered():
    missing = [name for name in ops.__all__ if name not in registry.OPS and name not in registry.COVERED]
    assert not missing, f"ops without a registry entry or a covering one: {missing}"
    stale = [name for name in list(registry.OPS) + list(registry.COVERED) if name not in ops.__all__]
    assert not stale, f"registry names that are not public ops: {stale}"


def test_every_op_has_cases_and_a_cost():
    for op in registry.all_ops():
        cases = op.all_cases()
        assert cases, f"{op.name} has no cases"
        for case in cases:
            assert case.device in DEVICES
            assert op.flops(case.params) > 0 and op.bytes(case.params) > 0, case.id


def test_tolerance_catches_a_wrong_answer(rng):
    """The tolerance is tight enough that a kernel off by one dropped term would fail."""
    op = registry.get("matmul")
    case = op.all_cases()[4]
    args, kw = case.make(rng)
    args64 = tuple(to64(a) for a in args)
    want = op.reference(*args64, **kw)
    bad = want.copy()
    bad[0, 0] += abs(args64[0][0, 0] * args64[1][0, 0]) + 1e-3
    with pytest.raises(AssertionError, match="off"):
        assert_close(bad, want, op.tolerance(case, args64, want), case.id)


def test_layouts_are_what_they_say(rng):
    x = registry.f32(rng, (5, 7), "misaligned")
    assert x.flags.c_contiguous and x.ctypes.data % 64 == 4
    assert not registry.f32(rng, (5, 7), "sliced").flags.c_contiguous
    assert registry.f32(rng, (5, 7), "transposed").flags.f_contiguous
    pr = registry.f32(rng, (5, 7), "padded_rows")
    assert pr.strides == (40, 4)
    with pytest.raises(ValueError, match="layout"):
        registry.f32(rng, (2,), "diagonal")
    assert np.array_equal(registry.f32(np.random.default_rng(1), (3,)), registry.f32(np.random.default_rng(1), (3,)))
