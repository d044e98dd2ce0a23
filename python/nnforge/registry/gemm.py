"""matmul: out = act(alpha * a @ b + beta * out + bias).

bf16 cases (precision="bf16", bfloat16 operands, bfloat16 out): the reference multiplies
the operands rounded to bf16 by ml_dtypes in float64; a bf16 out adds its own rounding.

Cases walk the register tiles of every path (14x32 on avx512, 6x16 on avx2, 4x8
generic) at tile - 1 / tile / tile + 1, k = 1 and primes, and a / b given as
transposed, sliced (non-unit stride) and misaligned views. FLOPs = 2 m n k (the
epilogue is not counted); bytes = a, b and out once.
"""
from __future__ import annotations

import numpy as np

from ._base import EPS_BF16, Op, Scalar, bf16_rounded, fd_check, f32, reduction_tol, tile_sizes


def flops(p: dict) -> float:
    return 2.0 * p["m"] * p["n"] * p["k"] * p.get("batch", 1)


def bytes_(p: dict) -> float:
    b = p.get("batch", 1)
    return 4.0 * b * (p["m"] * p["k"] + p["k"] * p["n"] + p["m"] * p["n"])


def _gelu_tanh(x):
    u = np.sqrt(2.0 / np.pi) * (x + 0.044715 * x ** 3)
    with np.errstate(over="ignore"):  # x <~ -20: exp(-2u) = inf, and x / inf = -0 is the limit
        return x / (1.0 + np.exp(-2.0 * u))  # 0.5 x (1 + tanh u), without cancellation for x << 0


def _is_bf16(x) -> bool:
    return isinstance(x, np.ndarray) and x.dtype.name == "bfloat16"


def reference(a, b, out=None, *, alpha=1.0, beta=0.0, bias=None, activation=None, precision="fp32"):
    if precision == "bf16" or _is_bf16(a) or _is_bf16(b):
        a, b = bf16_rounded(a), bf16_rounded(b)
    if _is_bf16(out):
        out = out.astype(np.float64)
    y = alpha * np.matmul(a, b)
    if beta != 0.0:
        y = y + beta * out
    if bias is not None:
        y = y + bias
    if activation == "relu":
        y = np.maximum(y, 0.0)
    elif activation in ("gelu", "gelu_tanh"):
        y = _gelu_tanh(y)
    return y


def run(a, b, out=None, **kw):
    from nnforge import ops
    return ops.matmul(a, b, out, **kw)


def operand(rng, rows, cols, layout):
    """A (rows, cols) float32 operand; "transposed" stores it as the .T of (cols, rows)."""
    return f32(rng, (rows, cols), layout)


def _case(op, m, k, n, la="contiguous", lb="contiguous", dtypes="", **kw):
    """dtypes: which of a, b, out are bfloat16 ("a", "ab", "abo", "o", ...)."""
    def make(rng):
        from nnforge import ops
        a, b = operand(rng, m, k, la), operand(rng, k, n, lb)
        extra = dict(kw)
        out = None
        if kw.get("beta", 0.0) != 0.0 or "o" in dtypes:
            out = f32(rng, (m, n))
        if kw.get("bias"):
            extra["bias"] = f32(rng, (n,))
        # bf16 views keep the layout of their float32 source (same strides in elements)
        bf = lambda x: ops.to_bfloat16(x, np.empty_like(x, dtype=ops.bfloat16))  # noqa: E731
        a = bf(a) if "a" in dtypes else a
        b = bf(b) if "b" in dtypes else b
        out = bf(out) if "o" in dtypes else out
        return (a, b, out), extra
    opts = "".join(f" {k_}={v}" for k_, v in kw.items()) + (f" bf16:{dtypes}" if dtypes else "")
    return op.case(f"{m}x{k}x{n} a:{la} b:{lb}{opts}", make, m=m, k=k, n=n, bf16=dtypes)


def cases(op):
    cs = []
    # tile edges of each path: m around the tile's rows, n around its columns
    for mr, nr in ((14, 32), (6, 16), (4, 8)):
        for m, n in zip(tile_sizes(mr), tile_sizes(nr)):
            cs.append(_case(op, m, 7, n))
    cs += [_case(op, 1, 1, 1), _case(op, 1, 61, 1), _case(op, 29, 257, 3),
           _case(op, 15, 13, 33, la="transposed", lb="transposed"),
           _case(op, 13, 11, 31, la="sliced", lb="misaligned"),
           _case(op, 7, 5, 17, la="misaligned", lb="sliced"),
           _case(op, 14, 9, 32, alpha=0.5, beta=2.0),
           _case(op, 6, 19, 17, bias=True, activation="relu"),
           _case(op, 5, 23, 33, bias=True, activation="gelu_tanh")]
    # bf16: the 14x32 pair kernel's edges, k odd, views, bf16 operands and out
    cs += [_case(op, 13, 7, 31, precision="bf16"), _case(op, 15, 33, 33, precision="bf16"),
           _case(op, 29, 257, 3, dtypes="ab"), _case(op, 1, 1, 1, dtypes="a"),
           _case(op, 15, 13, 33, la="transposed", lb="sliced", dtypes="b"),
           _case(op, 14, 9, 32, alpha=0.5, beta=2.0, dtypes="abo"),
           _case(op, 6, 19, 17, la="misaligned", bias=True, activation="relu", precision="bf16", dtypes="o")]
    return cs


def tolerance(case, args, ref):
    a, b, out = args[:3]
    k = case.params["k"]
    a, b = a.astype(np.float64), b.astype(np.float64)
    mag = float(np.abs(a).max() * np.abs(b).max()) if a.size and b.size else 1.0
    if out is not None:
        mag += float(np.abs(out.astype(np.float64)).max())
    tol = reduction_tol(k, mag, c=2.0) + 1e-6
    if "o" in case.params["bf16"]:  # a bf16 out: its rounding, half a bf16 ulp of the result
        tol = tol + EPS_BF16 / 2 * (np.abs(np.asarray(ref, dtype=np.float64)) + tol)
    return tol


def grad_check(rng, case):
    """The two GEMMs of Linear's backward: dA = dY @ B.T and dB = A.T @ dY, each through
    ops.matmul on transposed views, against central differences of the float64 product."""
    from nnforge import ops

    m, k, n = 5, 7, 3
    a, b, dy = f32(rng, (m, k)), f32(rng, (k, n)), f32(rng, (m, n))
    da, db = ops.matmul(dy, b.T), ops.matmul(a.T, dy)
    tol = reduction_tol(max(m, n), 8.0)
    fd_check(lambda x, w: x @ w, [a, b], [0, 1], dy, [da, db], tol, "matmul")


# Argument domains (tests/test_arg_domains.py): a and b may be 3-D (batched), b's N is free.
ARG_RULES = dict(scalars={"alpha": Scalar("alpha", "real"), "beta": Scalar("beta", "real"),
                          "precision": Scalar("precision", "choice", choices=("fp32", "bf16"))},
                 ndim_free=(0, 1), shape_free=(1,))


def register(add):
    add(Op("matmul", "gemm", run, reference, flops, bytes_, cases, tolerance, grad_check, **ARG_RULES))
