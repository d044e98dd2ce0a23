"""The op registry: every public nnforge.ops function, with a float64 reference, its
cost model and its awkward cases (in the spirit of ggml's test-backend-ops).

    from nnforge import registry
    op = registry.get("matmul")
    for case in op.all_cases():
        args, kwargs = case.make(rng)
        got = op.run(*args, **kwargs)
    op.flops({"m": 128, "k": 784, "n": 256})     # what nnforge bench divides by

One file per family (gemm, conv, pool, nn, optim, attention, rnn) registers its ops; COVERED lists the
ops.__all__ names exercised through another entry (a backward by its forward's
gradient check, a shape helper by the output shape it predicts).
"""
from __future__ import annotations

from ._base import (EPS32, LAYOUTS, Case, Op, Scalar, assert_close, central_diff, elementwise_tol, f32, fd_check,
                    reduction_tol, to64)

# flops() / bytes() stay out of __all__: a star import must not shadow the builtin bytes.
__all__ = ["COVERED", "Case", "EPS32", "LAYOUTS", "Op", "OPS", "Scalar", "all_ops", "assert_close", "central_diff",
           "elementwise_tol", "f32", "fd_check", "get", "reduction_tol", "to64"]

OPS: dict[str, Op] = {}
COVERED: dict[str, str] = {}  # ops.__all__ name -> "entry: how"


def _add(op: Op) -> None:
    if op.name in OPS:
        raise ValueError(f"op {op.name!r} registered twice")
    OPS[op.name] = op
    for name, how in op.covers.items():
        COVERED[name] = f"{op.name}: {how}"


def get(name: str) -> Op:
    try:
        return OPS[name]
    except KeyError:
        raise KeyError(f"no op {name!r} in the registry; registered: {', '.join(sorted(OPS))}") from None


def all_ops() -> list[Op]:
    return list(OPS.values())


def _cost(name: str, params: dict, which: int) -> float:
    if name in OPS:
        return (OPS[name].flops, OPS[name].bytes)[which](params)
    for op in OPS.values():
        if name in op.covered_costs:
            return op.covered_costs[name][which](params)
    raise KeyError(f"no cost model for {name!r}")


def flops(name: str, params: dict) -> float:
    """FLOPs of one call of op `name` (a registered op or a backward with its own cost)."""
    return _cost(name, params, 0)


def bytes(name: str, params: dict) -> float:  # noqa: A001 - the registry's bytes(), as Op.bytes
    """Bytes one call of op `name` moves (each input read once, each output written once)."""
    return _cost(name, params, 1)


from . import attention, conv, gemm, lowp, nn, optim, pool, quant, rnn, sparse  # noqa: E402

for _family in (gemm, lowp, conv, pool, nn, optim, attention, rnn, sparse, quant):
    _family.register(_add)
