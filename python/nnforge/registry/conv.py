"""conv2d (NCHW, cross-correlation as torch) and, through its gradient check,
conv2d_backward; conv2d_output_shape / conv2d_algorithm are checked by the output
shape of every case and by naming a known algorithm.

Cases reach each forward algorithm (direct_smallc C/g <= 4, implicit_gemm, depthwise,
gemm_1x1, im2col_tiles for strides / dilation), with 1x1 images, primes, asymmetric
padding, non-square kernels, and strided / misaligned inputs. FLOPs = 2 N K (C/g) R S
Ho Wo; bytes = x, w, bias and y once.
"""
from __future__ import annotations

import numpy as np

from nnforge._args import int_pair, padding4

from ._base import Op, Scalar, assert_close, bf16_rounded, f32, fd_check, reduction_tol

ALGORITHMS = {"direct_smallc", "implicit_gemm", "depthwise", "gemm_1x1", "im2col_tiles"}


def output_shape(p: dict) -> tuple:
    """(N, K, Ho, Wo) from nnforge's own shape rule (the one place it lives)."""
    from nnforge import ops
    return ops.conv2d_output_shape((p["n"], p["c"], p["h"], p["w"]),
                                   (p["k"], p["c"] // p.get("groups", 1), p["r"], p["s"]),
                                   stride=p.get("stride", 1), padding=p.get("padding", 0),
                                   dilation=p.get("dilation", 1), groups=p.get("groups", 1))


def flops(p: dict) -> float:
    n, k, ho, wo = output_shape(p)
    return 2.0 * n * k * (p["c"] // p.get("groups", 1)) * p["r"] * p["s"] * ho * wo


def bytes_(p: dict) -> float:
    n, k, ho, wo = output_shape(p)
    x = p["n"] * p["c"] * p["h"] * p["w"]
    w = p["k"] * (p["c"] // p.get("groups", 1)) * p["r"] * p["s"]
    return 4.0 * (x + w + p["k"] + n * k * ho * wo)


def conv2d_ref(x, w, bias=None, *, stride=1, padding=0, dilation=1, groups=1, activation=None, precision="fp32"):
    """Float64 convolution from the definition: y[n,k,i,j] = sum_{c,r,s} x_pad[n, c,
    i*sh + r*dh, j*sw + s*dw] w[k,c,r,s] over the channels of k's group (precision="bf16":
    of x and w rounded to bfloat16 first)."""
    if precision == "bf16":
        x, w = bf16_rounded(x), bf16_rounded(w)
    (sh, sw), (dh, dw) = int_pair(stride, "stride"), int_pair(dilation, "dilation")
    top, bottom, left, right = padding4(padding)
    n, c, h, wd = x.shape
    k, cg, r, s = w.shape
    xp = np.zeros((n, c, h + top + bottom, wd + left + right))
    xp[:, :, top:top + h, left:left + wd] = x
    ho = (xp.shape[2] - dh * (r - 1) - 1) // sh + 1
    wo = (xp.shape[3] - dw * (s - 1) - 1) // sw + 1
    kg = k // groups
    y = np.zeros((n, k, ho, wo))
    for g in range(groups):
        xg, wg = xp[:, g * cg:(g + 1) * cg], w[g * kg:(g + 1) * kg]
        for i in range(r):
            for j in range(s):
                patch = xg[:, :, i * dh: i * dh + sh * (ho - 1) + 1: sh, j * dw: j * dw + sw * (wo - 1) + 1: sw]
                y[:, g * kg:(g + 1) * kg] += np.einsum("nchw,kc->nkhw", patch, wg[:, :, i, j])
    if bias is not None:
        y += bias[None, :, None, None]
    return np.maximum(y, 0.0) if activation == "relu" else y


def run(x, w, bias=None, **kw):
    from nnforge import ops
    return ops.conv2d(x, w, bias, **kw)


def _case(op, n, c, h, w, k, r, s=None, *, layout="contiguous", bias=True, **kw):
    s = r if s is None else s
    groups = kw.get("groups", 1)

    def make(rng):
        x = f32(rng, (n, c, h, w), layout)
        wt = f32(rng, (k, c // groups, r, s), scale=1.0 / np.sqrt(c // groups * r * s))
        return (x, wt, f32(rng, (k,)) if bias else None), dict(kw)
    opts = "".join(f" {a}={v}" for a, v in kw.items())
    return op.case(f"N{n} C{c} {h}x{w} K{k} {r}x{s} {layout}{opts}", make,
                   n=n, c=c, h=h, w=w, k=k, r=r, s=s, **kw)


def cases(op):
    return [
        _case(op, 1, 1, 1, 1, 1, 1),                                      # the smallest
        _case(op, 2, 3, 7, 11, 5, 3, padding=1),                          # direct_smallc, primes
        _case(op, 2, 1, 13, 5, 3, 3, 2, padding=(1, 0), activation="relu"),
        _case(op, 1, 7, 9, 9, 17, 3, padding=1, layout="misaligned"),     # implicit_gemm
        _case(op, 2, 6, 5, 7, 6, 3, padding=1, groups=6),                 # depthwise
        _case(op, 2, 9, 5, 5, 33, 1, layout="sliced"),                    # gemm_1x1
        _case(op, 1, 5, 11, 10, 4, 3, stride=2, padding=(1, 2, 0, 1)),    # im2col_tiles
        _case(op, 1, 4, 9, 9, 6, 3, dilation=2, groups=2, bias=False),
        _case(op, 2, 7, 9, 9, 17, 3, padding=1, precision="bf16"),       # bf16 operands
        _case(op, 1, 5, 11, 10, 4, 3, stride=2, layout="sliced", precision="bf16", activation="relu"),
    ]


def tolerance(case, args, ref):
    x, w, b = args[:3]
    p = case.params
    taps = p["c"] // p.get("groups", 1) * p["r"] * p["s"]
    mag = float(np.abs(x).max() * np.abs(w).max()) + (0.0 if b is None else float(np.abs(b).max()))
    return reduction_tol(taps, mag, c=4.0) + 1e-6


def check_shape_helpers(case, args, got) -> None:
    """conv2d_output_shape agrees with the output, conv2d_algorithm names a known route."""
    from nnforge import ops
    x, w = args[:2]
    kw = {a: case.params[a] for a in ("stride", "padding", "dilation", "groups") if a in case.params}
    assert tuple(ops.conv2d_output_shape(x.shape, w.shape, **kw)) == got.shape, case.id
    assert ops.conv2d_algorithm(x.shape, w.shape, **kw) in ALGORITHMS, case.id


def grad_check(rng, case):
    """conv2d_backward's (dx, dw, db) against central differences of conv2d_ref."""
    from nnforge import ops
    args, kw = case.make(rng)
    x, w, b = args
    # The gradient before the activation; bf16 gradients: tests/test_bf16.py (rounding
    # is piecewise constant, no finite differences through it).
    kw = {a: v for a, v in kw.items() if a not in ("activation", "precision")}
    if (x.size + w.size) * w.shape[2] * w.shape[3] > 10_000:
        return  # finite differences cost one reference conv per input element: keep them small
    y = conv2d_ref(x.astype(np.float64), w.astype(np.float64), **kw)
    dy = f32(rng, y.shape)
    dx, dw, db = ops.conv2d_backward(dy, x, w, **kw)
    taps = max(w.shape[0] * w.shape[2] * w.shape[3], y.shape[0] * y.shape[2] * y.shape[3])
    tol = reduction_tol(taps, 4.0 * float(np.abs(dy).max()) * max(1.0, float(np.abs(x).max()),
                                                                    float(np.abs(w).max())), c=4.0) + 1e-6
    fd_check(lambda xx, ww: conv2d_ref(xx, ww, **kw), [x, w], [0, 1], dy, [dx, dw], tol, case.id)
    if b is not None:
        assert_close(db, dy.astype(np.float64).sum(axis=(0, 2, 3)), tol, f"{case.id}: db")


# Argument domains (tests/test_arg_domains.py): x's width and w's S may grow.
ARG_RULES = dict(scalars={"stride": Scalar("stride", "int", low=1), "padding": Scalar("padding", "int", low=0),
                          "dilation": Scalar("dilation", "int", low=1), "groups": Scalar("groups", "int", low=1),
                          "activation": Scalar("activation", "choice", choices=("relu",)),
                          "precision": Scalar("precision", "choice", choices=("fp32", "bf16"))},
                 shape_free=(0,))


def register(add):
    add(Op("conv2d", "conv", run, conv2d_ref, flops, bytes_, cases, tolerance, grad_check,
           covers={"conv2d_backward": "grad_check: (dx, dw, db) vs central differences",
                   "conv2d_output_shape": "check_shape_helpers: equals every case's output shape",
                   "conv2d_algorithm": "check_shape_helpers: names a known algorithm"},
           check=check_shape_helpers,
           # dx and dw each cost one forward (db is negligible): fwd+bwd = 3x forward
           covered_costs={"conv2d_backward": (lambda p: 2.0 * flops(p), lambda p: 2.0 * bytes_(p))}, **ARG_RULES))
