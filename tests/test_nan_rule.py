"""The NaN / inf rule (README "NaN and inf"): NaN and inf propagate as PyTorch propagates
them, which is what the float64 reference computes in IEEE arithmetic: an output is NaN
exactly where the registry's float64 reference is NaN, and +-inf exactly where it is +-inf
(relu(NaN) = NaN, a max-pool window holding NaN gives NaN, a softmax row with NaN is NaN).

Every registered op with a reference on its first cases, with NaN written into its float
inputs, on every ISA path; +inf and -inf too for the elementwise ops, the activation
epilogues of matmul and conv2d, pooling, softmax and the losses. Not walked: the optimizer
steps (a non-finite gradient is what check_finite / grad_norm exist for) and attention
(NaN in q or k is not yet propagated to the whole row: a known gap).
"""
from __future__ import annotations

import numpy as np
import pytest

from nnforge import registry
from nnforge.registry import to64

NAN_ONLY = (np.nan,)
WITH_INF = (np.nan, np.inf, -np.inf)
INF_FAMILIES = {"gemm", "conv", "pool"}
INF_OPS = {"softmax", "log_softmax", "cross_entropy", "relu", "leaky_relu", "tanh", "sigmoid", "gelu", "sum_rows"}
NOT_WALKED = {"optim", "attention"}  # families (see the module docstring)
CASES_PER_OP = 4


def _poison(args, kwargs, rng, specials):
    """Write NaN / +inf / -inf at random places of every float32 input (in place)."""
    def arrays(obj):
        if isinstance(obj, np.ndarray):
            yield obj
        elif isinstance(obj, (list, tuple)):
            for x in obj:
                yield from arrays(x)
        elif isinstance(obj, dict):
            for x in obj.values():
                yield from arrays(x)
    for a in arrays((args, kwargs)):
        if a.dtype == np.float32 and a.size and a.flags.writeable:
            flat_idx = rng.choice(a.size, size=min(a.size, len(specials)), replace=False)
            for i, v in zip(flat_idx, specials):
                a[np.unravel_index(i, a.shape)] = v


def _flat(x):
    if isinstance(x, (tuple, list)):
        return [y for e in x for y in _flat(e)]
    return [] if x is None else [np.asarray(x, dtype=np.float64)]


CASES = [(op, case) for op in registry.all_ops() if op.reference is not None and op.family not in NOT_WALKED
         for case in op.all_cases()[:CASES_PER_OP]]
CASES += [(registry.get("grad_norm"), c) for c in registry.get("grad_norm").all_cases()]
CASES += [(registry.get("clip_grad_norm"), c) for c in registry.get("clip_grad_norm").all_cases()]


@pytest.mark.parametrize("op_case", CASES, ids=[c.id for _, c in CASES])
def test_nan_and_inf_propagate_as_the_reference(isa, op_case, rng):
    op, case = op_case
    args, kwargs = case.make(rng)
    _poison(args, kwargs, rng, WITH_INF if op.family in INF_FAMILIES or op.name in INF_OPS else NAN_ONLY)
    args64 = tuple(to64(a) for a in args)
    kw64 = {k: to64(v) for k, v in kwargs.items()}
    got = op.run(*args, **kwargs)
    with np.errstate(all="ignore"):
        want = op.reference(*args64, **kw64)
    for i, (g, w) in enumerate(zip(_flat(got), _flat(want))):
        what = f"{case.id} on {isa}, output {i}"
        assert g.shape == w.shape, what
        bad = np.isnan(g) != np.isnan(w)
        assert not bad.any(), (f"{what}: NaN at {np.argwhere(np.isnan(g))[:4].tolist()} but the reference "
                               f"has NaN at {np.argwhere(np.isnan(w))[:4].tolist()}")
        inf = np.isinf(w)
        assert np.array_equal(g[inf], w[inf]), f"{what}: +-inf where the reference has them: {g[inf]} vs {w[inf]}"


@pytest.mark.parametrize("activation", ["relu", "gelu_tanh", "gelu_erf"])
def test_matmul_epilogue_keeps_nan(isa, activation):
    """An activation fused into the GEMM epilogue (register tiles and edge tiles) keeps NaN."""
    from nnforge import ops
    a = np.ones((37, 19), np.float32)
    a[5, 3] = np.nan
    got = ops.matmul(a, np.ones((19, 41), np.float32), activation=activation)
    assert np.isnan(got[5]).all() and not np.isnan(np.delete(got, 5, axis=0)).any()


def test_relu_of_nan_is_nan(isa):
    from nnforge import ops
    x = np.array([np.nan, -np.inf, np.inf, -1.0, 0.0, 2.0] * 7, np.float32)
    y = ops.relu(x)
    assert np.isnan(y[::6]).all() and (y[1::6] == 0).all() and np.isinf(y[2::6]).all()
