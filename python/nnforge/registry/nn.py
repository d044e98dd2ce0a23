"""nn kernels: softmax family, cross_entropy, activations, layer / batch norm, dropout,
sum_rows, embedding_backward. Each backward is checked by its forward's gradient
check (the backward kernel against central differences of the float64 forward).

Sizes sit around the vector widths (16 lanes avx512, 8 avx2: 15, 16, 17, 33), rows
come as padded / transposed / misaligned views, softmax rows carry large outliers.
Costs: memory-bound kernels count bytes read + written once (what nnforge bench
divides by); flops are a nominal few per element.
"""
from __future__ import annotations

import math

import numpy as np

from ._base import EPS32, Op, Scalar, assert_close, f32, fd_check, reduction_tol

TINY = float(np.finfo(np.float32).tiny)


def _size(p):
    return math.prod(p["shape"])


def _bytes_per_elem(nbytes):
    return lambda p: float(nbytes * _size(p))


def _flops_per_elem(n):
    return lambda p: float(n * _size(p))


def _ops():
    from nnforge import ops
    return ops


# --- references (float64, from the definitions) ------------------------------------------
def softmax_ref(x, axis=-1):
    e = np.exp(x - x.max(axis=axis, keepdims=True))
    return e / e.sum(axis=axis, keepdims=True)


def log_softmax_ref(x, axis=-1):
    m = x.max(axis=axis, keepdims=True)
    return x - m - np.log(np.exp(x - m).sum(axis=axis, keepdims=True))


def sigmoid_ref(x):
    e = np.exp(-np.abs(x))  # never overflows
    return np.where(x >= 0, 1.0 / (1.0 + e), e / (1.0 + e))


def gelu_ref(x, approximate="tanh"):
    if approximate == "tanh":
        # 0.5 x (1 + tanh(u)) == x sigmoid(2u), without the cancellation for x << 0
        return x * sigmoid_ref(2.0 * math.sqrt(2.0 / math.pi) * (x + 0.044715 * x ** 3))
    erfc = np.vectorize(math.erfc)
    return 0.5 * x * erfc(-x / math.sqrt(2.0))


def cross_entropy_ref(logits, labels, *, weight=None, label_smoothing=0.0, reduction="mean", return_grad=False):
    """torch.nn.functional.cross_entropy: per row (1 - ls) w_y nll + ls / C sum_c w_c (-logp_c);
    the mean divides by the summed target weights."""
    n, c = logits.shape
    lp = log_softmax_ref(logits)
    w = np.ones(c) if weight is None else weight
    y = np.asarray(labels, np.int64)
    row = (1.0 - label_smoothing) * -(w[y] * lp[np.arange(n), y]) + label_smoothing / c * -(lp * w).sum(axis=1)
    if reduction == "none":
        return row
    return row.sum() if reduction == "sum" else row.sum() / w[y].sum()


def layer_norm_ref(x, gamma, beta, eps=1e-5):
    mean = x.mean(axis=-1, keepdims=True)
    rstd = 1.0 / np.sqrt(((x - mean) ** 2).mean(axis=-1, keepdims=True) + eps)
    y = (x - mean) * rstd
    y = y if gamma is None else y * gamma
    y = y if beta is None else y + beta
    return y, mean[..., 0], rstd[..., 0]


def batch_norm_ref(x, gamma, beta, running_mean, running_var, *, training, momentum=0.1, eps=1e-5):
    """Training: batch statistics over every axis but 1, running stats updated with the
    unbiased variance; returns (y, mean, rstd, running_mean, running_var). Eval: y."""
    axes = (0,) + tuple(range(2, x.ndim))
    bshape = (1, x.shape[1]) + (1,) * (x.ndim - 2)
    if training:
        mean = x.mean(axis=axes)
        var = ((x - mean.reshape(bshape)) ** 2).mean(axis=axes)
    else:
        mean, var = running_mean, running_var
    rstd = 1.0 / np.sqrt(var + eps)
    y = (x - mean.reshape(bshape)) * rstd.reshape(bshape)
    y = y if gamma is None else y * gamma.reshape(bshape)
    y = y if beta is None else y + beta.reshape(bshape)
    if not training:
        return y
    m = x.size // x.shape[1]
    rm = (1 - momentum) * running_mean + momentum * mean
    rv = (1 - momentum) * running_var + momentum * var * m / max(m - 1, 1)
    return y, mean, rstd, rm, rv


# --- softmax family -----------------------------------------------------------------------
def _row_case(op, shape, layout="contiguous", outlier=0.0, **kw):
    def make(rng):
        x = f32(rng, shape, layout, scale=3.0)
        if outlier:
            x[..., 0] += np.float32(outlier)
        return (x,), dict(kw)
    extra = (f" outlier={outlier:g}" if outlier else "") + "".join(f" {a}={v}" for a, v in kw.items())
    return op.case(f"{'x'.join(map(str, shape))} {layout}{extra}", make, shape=shape, **kw)


def _softmax_cases(op):
    return [_row_case(op, (1, 1)), _row_case(op, (3, 7)), _row_case(op, (4, 17), "padded_rows"),
            _row_case(op, (5, 33), outlier=80.0), _row_case(op, (11, 5), "transposed"),
            _row_case(op, (2, 16), "misaligned", outlier=-60.0), _row_case(op, (2, 3, 17), axis=1)]


def _row_len(case):
    return case.params["shape"][case.params.get("axis", -1)]


def _softmax_tol(case, args, ref):
    """A few ulps per row term, plus exp's condition number |x - max| (a small probability
    far below the row's maximum has its argument's rounding amplified by it)."""
    x = args[0]
    axis = case.params.get("axis", -1)
    cond = np.abs(x - x.max(axis=axis, keepdims=True))
    return EPS32 * (8 + _row_len(case) + 2 * cond) * np.abs(ref) + 1e-37


def _log_softmax_tol(case, args, ref):
    n = _row_len(case)
    return EPS32 * (8 + n) * (np.abs(ref) + np.abs(args[0]).max() + 1 + math.log(n))


def _softmax_grad(fwd_name, bwd_name, ref):
    def check(rng, case):
        ops = _ops()
        (x,), kw = case.make(rng)
        y = getattr(ops, fwd_name)(x, **kw)
        dy = f32(rng, x.shape)
        dx = getattr(ops, bwd_name)(y, dy, **kw)
        n = _row_len(case)
        tol = EPS32 * 32 * (n + 2) * (1 + float(np.abs(dy).max())) + 1e-7
        fd_check(lambda v: ref(v, **kw), [x], [0], dy, [dx], tol, case.id)
    return check


# --- activations: (name, reference, backward reads "x" or "y", extra args) ---------------------
ACTIVATIONS = [
    ("relu", lambda x: np.maximum(x, 0.0), "y", {}),
    ("leaky_relu", lambda x, negative_slope=0.01: np.where(x > 0, x, negative_slope * x), "x",
     {"negative_slope": 0.2}),
    ("tanh", np.tanh, "y", {}),
    ("sigmoid", sigmoid_ref, "y", {}),
    ("gelu", gelu_ref, "x", {"approximate": "tanh"}),
]


def _elem_cases(extra):
    def cases(op):
        cs = [_row_case(op, s, lay) for s, lay in
              [((1,), "contiguous"), ((17,), "contiguous"), ((15,), "misaligned"), ((3, 33), "transposed"),
               ((2, 5, 7), "sliced"), ((65,), "contiguous")]]
        if op.name == "gelu":
            cs.append(_row_case(op, (33,), approximate="none"))
        elif extra:
            cs.append(_row_case(op, (33,), **extra))
        return cs
    return cases


def _elem_tol(case, args, ref):
    x = np.abs(args[0])
    return 16 * EPS32 * (np.abs(ref) + x) + TINY


def _activation_grad(name, ref, reads):
    def check(rng, case):
        ops = _ops()
        (x,), kw = case.make(rng)
        x[np.abs(x) < 1e-3] = 1e-3  # central differences across relu's kink would be wrong
        dy = f32(rng, x.shape)
        saved = getattr(ops, name)(x, **kw) if reads == "y" else x
        dx = getattr(ops, f"{name}_backward")(dy, saved, **kw)
        tol = 32 * EPS32 * np.abs(dy.astype(np.float64)) * (1 + np.abs(x.astype(np.float64)) ** 2) + 1e-7
        fd_check(lambda v: ref(v, **kw), [x], [0], dy, [dx], tol, case.id)
    return check


# --- cross entropy ----------------------------------------------------------------------------
def _ce_case(op, n, c, layout="contiguous", label_dtype=np.int64, weighted=False, **kw):
    def make(rng):
        logits = f32(rng, (n, c), layout, scale=3.0)
        labels = rng.integers(0, c, size=n).astype(label_dtype)
        extra = dict(kw)
        if weighted:
            extra["weight"] = (rng.random(c) + 0.5).astype(np.float32)
        return (logits, labels), extra
    opts = "".join(f" {a}={v}" for a, v in kw.items()) + (" weighted" if weighted else "")
    return op.case(f"{n}x{c} {layout} {np.dtype(label_dtype).name}{opts}", make, shape=(n, c), **kw)


def _ce_cases(op):
    return [_ce_case(op, 1, 1), _ce_case(op, 3, 7), _ce_case(op, 5, 10, weighted=True, label_smoothing=0.1),
            _ce_case(op, 4, 33, "padded_rows", reduction="sum"), _ce_case(op, 6, 17, label_dtype=np.int32, reduction="none"),
            _ce_case(op, 2, 16, "misaligned", weighted=True, reduction="mean")]


def _ce_tol(case, args, ref):
    n, c = case.params["shape"]
    scale = float(np.abs(args[0]).max()) + 1 + math.log(c)
    if args[1:] and case.params.get("reduction") == "sum":
        scale *= n
    return EPS32 * (16 + 2 * c) * scale * 4


def _ce_grad(rng, case):
    ops = _ops()
    (logits, labels), kw = case.make(rng)
    _, grad = ops.cross_entropy(logits, labels, return_grad=True, **kw)

    def loss(z):
        v = cross_entropy_ref(z, labels, **{a: (b.astype(np.float64) if isinstance(b, np.ndarray) else b)
                                              for a, b in kw.items()})
        return np.sum(v)  # the gradient of the sum for reduction="none"
    tol = EPS32 * 64 * (1 + np.abs(grad).max()) + 1e-7
    fd_check(loss, [logits], [0], np.float64(1.0), [grad], tol, case.id)


# --- norms ------------------------------------------------------------------------------------
def _ln_case(op, shape, layout="contiguous", affine=True):
    def make(rng):
        d = shape[-1]
        x = f32(rng, shape, layout, scale=2.0)
        return (x, f32(rng, (d,)) if affine else None, f32(rng, (d,)) if affine else None), {}
    return op.case(f"{'x'.join(map(str, shape))} {layout}{'' if affine else ' no affine'}", make, shape=shape)


def _ln_cases(op):
    return [_ln_case(op, (1, 1)), _ln_case(op, (3, 17)), _ln_case(op, (4, 64), affine=False),
            _ln_case(op, (5, 33), "padded_rows"), _ln_case(op, (2, 3, 15), "misaligned")]


def _ln_tol(case, args, ref):
    x, g, b = args
    d = case.params["shape"][-1]
    y, mean, rstd = ref
    gmag = 1.0 if g is None else float(np.abs(g).max())
    return (EPS32 * (8 + d) * 64 * (1 + gmag) * (1 + np.abs(y)),
            reduction_tol(d, float(np.abs(x).max()), c=4.0),
            EPS32 * (8 + d) * 64 * rstd)


def _ln_grad(rng, case):
    ops = _ops()
    (x, g, b), _ = case.make(rng)
    y, mean, rstd = ops.layer_norm(x, g, b)
    dy = f32(rng, x.shape)
    dx, dg, db = ops.layer_norm_backward(dy, x, g, mean, rstd)
    d = x.shape[-1]
    rows = x.size // d
    tol = EPS32 * 64 * (1 + (1 if g is None else float(np.abs(g).max())) * d) * float(rstd.max()) + 1e-6
    if g is None:
        assert dg is None and db is None, f"{case.id}: dgamma / dbeta without gamma"
        fd_check(lambda v: layer_norm_ref(v, None, None)[0], [x], [0], dy, [dx], tol, case.id)
    else:
        fd_check(lambda v, gg, bb: layer_norm_ref(v, gg, bb)[0], [x, g, b], [0, 1, 2], dy, [dx, dg, db],
                 [tol, tol * rows, tol * rows], case.id)


def _bn_case(op, shape, layout="contiguous", training=True, affine=True):
    c = shape[1]

    def make(rng):
        x = f32(rng, shape, layout, scale=2.0)
        rm = f32(rng, (c,))
        rv = (rng.random(c) + 0.5).astype(np.float32)
        g, b = (f32(rng, (c,)), f32(rng, (c,))) if affine else (None, None)
        return (x, g, b, rm, rv), {"training": training}
    label = f"{'x'.join(map(str, shape))} {layout} {'train' if training else 'eval'}{'' if affine else ' no affine'}"
    return op.case(label, make, shape=shape, training=training)


def _bn_cases(op):
    return [_bn_case(op, (2, 1)), _bn_case(op, (4, 3, 5, 7)), _bn_case(op, (3, 17), "misaligned"),
            _bn_case(op, (2, 5, 3, 3), affine=False), _bn_case(op, (3, 4, 2, 5), training=False)]


def _bn_tol(case, args, ref):
    x, g = args[0], args[1]
    m = x.size // x.shape[1]
    gm = 1.0 if g is None else float(np.abs(g).max())
    if not case.params["training"]:
        return 16 * EPS32 * (1 + np.abs(ref)) * (1 + gm)
    y, mean, rstd, rm, rv = ref
    return (EPS32 * 64 * (8 + m) * (1 + gm) * (1 + np.abs(y)), reduction_tol(m, float(np.abs(x).max()), 4.0),
            EPS32 * 64 * (8 + m) * rstd ** 3, EPS32 * 64 * (8 + m) * (1 + np.abs(rm)),
            EPS32 * 64 * (8 + m) * (1 + np.abs(rv)))


def _bn_run(x, gamma, beta, running_mean, running_var, **kw):
    res = _ops().batch_norm(x, gamma, beta, running_mean, running_var, **kw)
    return tuple(res) + (running_mean, running_var) if kw.get("training") else res[0]


def _bn_grad(rng, case):
    if not case.params["training"]:
        return
    ops = _ops()
    (x, g, b, rm, rv), kw = case.make(rng)
    y, sm, sr = ops.batch_norm(x, g, b, rm, rv, training=True)
    dy = f32(rng, x.shape)
    dx, dg, db = ops.batch_norm_backward(dy, x, g, sm, sr, training=True)
    m = x.size // x.shape[1]
    tol = EPS32 * 256 * (1 + (1 if g is None else float(np.abs(g).max())) * m) * float(sr.max()) + 1e-6
    zeros = np.zeros(x.shape[1])
    fwd = lambda v, gg=None, bb=None: batch_norm_ref(v, gg, bb, zeros, zeros + 1, training=True)[0]
    if g is None:
        fd_check(fwd, [x], [0], dy, [dx], tol, case.id)
    else:
        fd_check(fwd, [x, g, b], [0, 1, 2], dy, [dx, dg, db], [tol, tol * m, tol * m], case.id)


# --- dropout, reductions ------------------------------------------------------------------------
def _dropout_cases(op):
    def c(shape, p, layout="contiguous"):
        return op.case(f"{'x'.join(map(str, shape))} {layout} p={p}",
                       lambda rng: ((f32(rng, shape, layout), p, 1234), {}), shape=shape, p=p)
    return [c((1,), 0.5), c((17,), 0.1), c((3, 33), 0.5, "transposed"), c((1000,), 0.3, "misaligned"), c((64,), 0.0)]


def _dropout_check(case, args, got):
    """y = x * mask / (1 - p) with a 0/1 mask; p = 0 keeps everything."""
    x, p, seed = args
    y, mask = got
    assert mask.dtype == np.uint8 and mask.shape == x.shape, f"{case.id}: mask {mask.dtype} {mask.shape}"
    assert set(np.unique(mask)) <= {0, 1}, f"{case.id}: mask values {np.unique(mask)}"
    if p == 0.0:
        assert mask.all(), f"{case.id}: p=0 dropped elements"
    want = np.where(mask == 1, x.astype(np.float64) / (1 - p), 0.0)
    assert_close(y, want, 2 * EPS32 * np.abs(want), f"{case.id}: y")
    again = _ops().dropout(x, p, seed)[1]
    assert np.array_equal(again, mask), f"{case.id}: the mask depends on more than (seed, index)"


def _dropout_grad(rng, case):
    ops = _ops()
    (x, p, seed), _ = case.make(rng)
    _, mask = ops.dropout(x, p, seed)
    dy = f32(rng, x.shape)
    dx = ops.dropout_backward(dy, mask, p)
    keep = mask.astype(np.float64) / (1 - p)
    fd_check(lambda v: v * keep, [x], [0], dy, [dx], 4 * EPS32 * np.abs(dy.astype(np.float64)) * keep + 1e-7,
             case.id)


def _sum_rows_cases(op):
    def c(shape, layout="contiguous"):
        return op.case(f"{'x'.join(map(str, shape))} {layout}", lambda rng: ((f32(rng, shape, layout),), {}),
                       shape=shape)
    return [c((1, 1)), c((7, 17)), c((128, 33), "padded_rows"), c((5, 16), "misaligned"), c((9, 4), "transposed")]


def _sum_rows_tol(case, args, ref):
    return EPS32 * (case.params["shape"][0] + 2) * 2 * np.abs(args[0]).sum(axis=0) + 1e-7


def _emb_cases(op):
    def c(idx_shape, d, num, dtype=np.int64, layout="contiguous"):
        def make(rng):
            idx = rng.integers(0, num, size=idx_shape).astype(dtype)
            return (idx, f32(rng, idx_shape + (d,), layout), num), {}
        return op.case(f"idx {idx_shape} {np.dtype(dtype).name} D{d} V{num} {layout}", make,
                       shape=idx_shape + (d,), num=num)
    return [c((1,), 1, 1), c((13,), 17, 5), c((3, 7), 33, 4, np.int32), c((20,), 16, 3, layout="misaligned")]


def _emb_ref(indices, dy, num_embeddings):
    dw = np.zeros((num_embeddings, dy.shape[-1]))
    np.add.at(dw, np.asarray(indices).reshape(-1), dy.reshape(-1, dy.shape[-1]))
    return dw


def _emb_tol(case, args, ref):
    idx, dy, num = args
    counts = np.bincount(np.asarray(idx).reshape(-1), minlength=num)[:, None]
    return EPS32 * (counts + 2) * 2 * float(np.abs(dy).max()) + 1e-7


# Argument domains (tests/test_arg_domains.py). Elementwise and row ops take any leading
# shape; cross_entropy's logits may have more classes, embedding_backward's dy a wider D.
_ELEMENTWISE = dict(ndim_free=(0,), shape_free=(0,))
_NONNEG = dict(low=0.0)
ARG_RULES = {
    "softmax": dict(scalars={"axis": Scalar("axis", "int")}, **_ELEMENTWISE),
    "log_softmax": dict(scalars={"axis": Scalar("axis", "int")}, **_ELEMENTWISE),
    "cross_entropy": dict(scalars={"label_smoothing": Scalar("label_smoothing", "real", low=0.0, high=1.0),
                                   "reduction": Scalar("reduction", "choice", choices=("mean", "sum", "none")),
                                   "return_grad": Scalar("return_grad", "flag")}, shape_free=(0,)),
    "relu": _ELEMENTWISE, "tanh": _ELEMENTWISE, "sigmoid": _ELEMENTWISE,
    "leaky_relu": dict(scalars={"negative_slope": Scalar("negative_slope", "real", position=1)}, **_ELEMENTWISE),
    "gelu": dict(scalars={"approximate": Scalar("approximate", "choice", choices=("tanh", "none"), position=1)},
                 **_ELEMENTWISE),
    "layer_norm": dict(scalars={"eps": Scalar("eps", "real", position=3, **_NONNEG)}, ndim_free=(0,)),
    "batch_norm": dict(scalars={"training": Scalar("training", "flag"),
                                "momentum": Scalar("momentum", "real", low=0.0, high=1.0),
                                "eps": Scalar("eps", "real", **_NONNEG)}),
    "dropout": dict(scalars={"p": Scalar("p", "real", low=0.0, high=1.0, high_open=True, position=1),
                             "seed": Scalar("seed", "int", low=0, position=2)}, **_ELEMENTWISE),
    "sum_rows": dict(scalars={"accumulate": Scalar("accumulate", "flag")}, shape_free=(0,)),
    "embedding_backward": dict(scalars={"num_embeddings": Scalar("num_embeddings", "int", low=0, position=2),
                                        "accumulate": Scalar("accumulate", "flag")}, shape_free=(1,)),
}


def register(add):
    ops = _ops()
    add(Op("softmax", "nn", ops.softmax, softmax_ref, _flops_per_elem(5), _bytes_per_elem(8), _softmax_cases,
           _softmax_tol, _softmax_grad("softmax", "softmax_backward", softmax_ref),
           covers={"softmax_backward": "grad_check vs central differences"},
           covered_costs={"softmax_backward": (_flops_per_elem(4), _bytes_per_elem(12))}, **ARG_RULES["softmax"]))
    add(Op("log_softmax", "nn", ops.log_softmax, log_softmax_ref, _flops_per_elem(5), _bytes_per_elem(8),
           _softmax_cases, _log_softmax_tol, _softmax_grad("log_softmax", "log_softmax_backward", log_softmax_ref),
           covers={"log_softmax_backward": "grad_check vs central differences"}, **ARG_RULES["log_softmax"]))
    # fwd+grad reads the logits and writes dlogits: 8 B / element (the loss alone reads 4)
    add(Op("cross_entropy", "nn", ops.cross_entropy, cross_entropy_ref, _flops_per_elem(6),
           lambda p: float((8 if p.get("return_grad") else 4) * _size(p)), _ce_cases, _ce_tol, _ce_grad,
           **ARG_RULES["cross_entropy"]))
    for name, ref, reads, extra in ACTIVATIONS:
        add(Op(name, "nn", getattr(ops, name), ref, _flops_per_elem(1 if name == "relu" else 10),
               _bytes_per_elem(8), _elem_cases(extra), _elem_tol, _activation_grad(name, ref, reads),
               covers={f"{name}_backward": "grad_check vs central differences"},
               # backward: read dy and x (or y), write dx
               covered_costs={f"{name}_backward": (_flops_per_elem(10), _bytes_per_elem(12))}, **ARG_RULES[name]))
    add(Op("layer_norm", "nn", ops.layer_norm, layer_norm_ref, _flops_per_elem(8), _bytes_per_elem(8), _ln_cases,
           _ln_tol, _ln_grad, covers={"layer_norm_backward": "grad_check vs central differences"},
           # read dy and x, write dx (the per-row statistics are small)
           covered_costs={"layer_norm_backward": (_flops_per_elem(10), _bytes_per_elem(12))},
           **ARG_RULES["layer_norm"]))
    # training: statistics pass + normalising pass read x twice, write y: 12 B / element
    add(Op("batch_norm", "nn", _bn_run, batch_norm_ref, _flops_per_elem(8), _bytes_per_elem(12), _bn_cases,
           _bn_tol, _bn_grad, covers={"batch_norm_backward": "grad_check vs central differences"},
           **ARG_RULES["batch_norm"]))
    # read x, write y and the uint8 mask: 9 B / element
    add(Op("dropout", "nn", ops.dropout, None, _flops_per_elem(2), _bytes_per_elem(9), _dropout_cases,
           lambda c, a, r: None, _dropout_grad, check=_dropout_check,
           covers={"dropout_backward": "grad_check vs central differences with the mask fixed"},
           **ARG_RULES["dropout"]))
    add(Op("sum_rows", "nn", ops.sum_rows, lambda x: x.sum(axis=0), _flops_per_elem(1), _bytes_per_elem(4),
           _sum_rows_cases, _sum_rows_tol, **ARG_RULES["sum_rows"]))
    add(Op("embedding_backward", "nn", ops.embedding_backward, _emb_ref, _flops_per_elem(1), _bytes_per_elem(8),
           _emb_cases, _emb_tol, **ARG_RULES["embedding_backward"]))
