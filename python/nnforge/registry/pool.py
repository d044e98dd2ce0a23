"""2-D pooling: max_pool2d (values and indices), avg_pool2d, global_avg_pool2d; each
backward through its forward's gradient check; pool2d_output_shape by every case's
output shape.

The reference enumerates windows from the definition (torch semantics): window o
starts at o * s - p; floor mode keeps windows that fit the padded input, ceil mode
also a last partial one that starts inside the input or the left padding; max pads
with -inf, avg divides by the window clipped to the padded input (count_include_pad)
or by the real elements it covers. FLOPs: one per window element; bytes: x and y
once (and the int64 indices of max).
"""
from __future__ import annotations

import numpy as np

from nnforge._args import int_pair

from ._base import Op, Scalar, f32, fd_check, reduction_tol


def _starts(n, k, s, p, ceil_mode):
    out, o = [], 0
    while True:
        start = o * s - p
        if not (start + k <= n + p or (ceil_mode and start < n and start + k - s < n + p)):
            return out
        out.append(start)
        o += 1


def _windows(h, w, k, s, p, ceil_mode):
    (kh, kw), (sh, sw), (ph, pw) = int_pair(k, "kernel_size"), int_pair(s, "stride"), int_pair(p, "padding")
    rows, cols = _starts(h, kh, sh, ph, ceil_mode), _starts(w, kw, sw, pw, ceil_mode)
    for i, r0 in enumerate(rows):
        for j, c0 in enumerate(cols):
            padded = (min(r0 + kh, h + ph) - r0) * (min(c0 + kw, w + pw) - c0)
            yield i, j, (max(r0, 0), min(r0 + kh, h), max(c0, 0), min(c0 + kw, w)), padded
    return len(rows), len(cols)


def _out_hw(h, w, k, s, p, ceil_mode):
    (kh, kw), (sh, sw), (ph, pw) = int_pair(k, "kernel_size"), int_pair(s, "stride"), int_pair(p, "padding")
    return len(_starts(h, kh, sh, ph, ceil_mode)), len(_starts(w, kw, sw, pw, ceil_mode))


def max_ref(x, kernel_size, stride=None, padding=0, *, ceil_mode=False, return_indices=True):
    n, c, h, w = x.shape
    s = kernel_size if stride is None else stride
    ho, wo = _out_hw(h, w, kernel_size, s, padding, ceil_mode)
    y, idx = np.zeros((n, c, ho, wo)), np.zeros((n, c, ho, wo), np.int64)
    for i, j, (r0, r1, c0, c1), _ in _windows(h, w, kernel_size, s, padding, ceil_mode):
        win = x[:, :, r0:r1, c0:c1].reshape(n, c, -1)
        a = win.argmax(axis=2)  # first maximum in row-major window order
        y[:, :, i, j] = win.max(axis=2)
        idx[:, :, i, j] = (r0 + a // (c1 - c0)) * w + c0 + a % (c1 - c0)
    return (y, idx) if return_indices else y


def avg_ref(x, kernel_size, stride=None, padding=0, *, ceil_mode=False, count_include_pad=True):
    n, c, h, w = x.shape
    s = kernel_size if stride is None else stride
    ho, wo = _out_hw(h, w, kernel_size, s, padding, ceil_mode)
    y = np.zeros((n, c, ho, wo))
    for i, j, (r0, r1, c0, c1), padded in _windows(h, w, kernel_size, s, padding, ceil_mode):
        div = padded if count_include_pad else (r1 - r0) * (c1 - c0)
        y[:, :, i, j] = x[:, :, r0:r1, c0:c1].sum(axis=(2, 3)) / div
    return y


def global_ref(x):
    return x.mean(axis=(2, 3))


def _out(p):
    from nnforge import ops
    if "kernel_size" not in p:
        return (p["n"], p["c"], 1, 1)
    return ops.pool2d_output_shape((p["n"], p["c"], p["h"], p["w"]), p["kernel_size"], p.get("stride"),
                                   p.get("padding", 0), p.get("ceil_mode", False))


def flops(p):
    n, c, ho, wo = _out(p)
    if "kernel_size" not in p:
        return float(n * c * p["h"] * p["w"])
    kh, kw = int_pair(p["kernel_size"], "kernel_size")
    return float(n * c * ho * wo * kh * kw)


def bytes_max(p):
    n, c, ho, wo = _out(p)
    return 4.0 * n * c * p["h"] * p["w"] + 12.0 * n * c * ho * wo  # x, y and int64 indices


def bytes_avg(p):
    n, c, ho, wo = _out(p)
    return 4.0 * (n * c * p["h"] * p["w"] + n * c * ho * wo)


def _case(op, shape, layout="contiguous", **kw):
    n, c, h, w = shape

    def make(rng):
        args = (f32(rng, shape, layout),)
        if "kernel_size" in kw:
            args += (kw["kernel_size"], kw.get("stride"), kw.get("padding", 0))
        extra = {a: v for a, v in kw.items() if a not in ("kernel_size", "stride", "padding")}
        return args, extra
    opts = "".join(f" {a}={v}" for a, v in kw.items())
    return op.case(f"{'x'.join(map(str, shape))} {layout}{opts}", make, n=n, c=c, h=h, w=w, **kw)


def _window_cases(op):
    return [_case(op, (1, 1, 1, 1), kernel_size=1),
            _case(op, (2, 3, 8, 8), kernel_size=2),                         # the CNN's 2x2 pool
            _case(op, (1, 5, 7, 9), "misaligned", kernel_size=2),           # odd sizes drop a row
            _case(op, (2, 2, 11, 13), "sliced", kernel_size=3, stride=2, padding=1),
            _case(op, (1, 3, 10, 7), kernel_size=(3, 2), stride=(2, 3), padding=(1, 0), ceil_mode=True)]


def _cases_avg(op):
    return _window_cases(op) + [
        _case(op, (1, 2, 9, 8), kernel_size=3, stride=2, padding=1, ceil_mode=True, count_include_pad=False)]


def _cases_global(op):
    return [_case(op, (1, 1, 1, 1)), _case(op, (2, 3, 7, 5), "misaligned"), _case(op, (3, 17, 4, 4), "sliced")]


def _tol_window(case, args, ref):
    kh, kw = int_pair(case.params.get("kernel_size", 1), "kernel_size")
    mag = float(np.abs(args[0]).max()) if args[0].size else 1.0
    t = reduction_tol(kh * kw, mag)
    return (t, 0) if isinstance(ref, tuple) else t


def _tol_global(case, args, ref):
    p = case.params
    return reduction_tol(p["h"] * p["w"], float(np.abs(args[0]).max()))


def _check_shape(case, args, got):
    from nnforge import ops
    y = got[0] if isinstance(got, tuple) else got
    if "kernel_size" in case.params:
        p = case.params
        want = ops.pool2d_output_shape(args[0].shape, p["kernel_size"], p.get("stride"), p.get("padding", 0),
                                       p.get("ceil_mode", False))
        assert tuple(want) == y.shape, f"{case.id}: pool2d_output_shape {want} != output {y.shape}"


def _grad_tol(dy, k):
    return reduction_tol(k, float(np.abs(dy).max())) + 1e-6


def _grad_max(rng, case):
    from nnforge import ops
    args, kw = case.make(rng)
    x = args[0]
    # Distinct values on a grid (in the case's own layout): two window entries closer than the
    # finite-difference step would swap the argmax inside the difference and fail a correct kernel.
    x[...] = ((rng.permutation(x.size) - x.size / 2) * (4.0 / x.size)).reshape(x.shape)
    y, idx = ops.max_pool2d(*args, **kw)
    dy = f32(rng, y.shape)
    dx = ops.max_pool2d_backward(dy, idx, x.shape)
    kh, kw_ = int_pair(case.params["kernel_size"], "kernel_size")
    fd_check(lambda v: max_ref(v, *args[1:], **kw), [x], [0], dy, [dx], _grad_tol(dy, kh * kw_), case.id, 0)


def _grad_avg(rng, case):
    from nnforge import ops
    args, kw = case.make(rng)
    x = args[0]
    y = ops.avg_pool2d(*args, **kw)
    dy = f32(rng, y.shape)
    dx = ops.avg_pool2d_backward(dy, x.shape, *args[1:], **kw)
    kh, kw_ = int_pair(case.params["kernel_size"], "kernel_size")
    fd_check(lambda v: avg_ref(v, *args[1:], **kw), [x], [0], dy, [dx], _grad_tol(dy, kh * kw_), case.id)


def _grad_global(rng, case):
    from nnforge import ops
    (x,), _ = case.make(rng)
    dy = f32(rng, x.shape[:2])
    dx = ops.global_avg_pool2d_backward(dy, x.shape)
    fd_check(global_ref, [x], [0], dy, [dx], _grad_tol(dy, 1), case.id)


# Argument domains (tests/test_arg_domains.py): windows of 0, negative padding, non-bool flags.
_WINDOW = {"kernel_size": Scalar("kernel_size", "int", low=1, position=1),
           "stride": Scalar("stride", "int", low=1, position=2),
           "padding": Scalar("padding", "int", low=0, position=3),
           "ceil_mode": Scalar("ceil_mode", "flag")}
ARG_RULES = {"max_pool2d": dict(scalars={**_WINDOW, "return_indices": Scalar("return_indices", "flag")},
                                shape_free=(0,)),
             "avg_pool2d": dict(scalars={**_WINDOW, "count_include_pad": Scalar("count_include_pad", "flag")},
                                shape_free=(0,)),
             "global_avg_pool2d": dict(shape_free=(0,))}


def register(add):
    from nnforge import ops
    add(Op("max_pool2d", "pool", ops.max_pool2d, max_ref, flops, bytes_max, _window_cases, _tol_window,
           _grad_max, covers={"max_pool2d_backward": "grad_check vs central differences",
                              "pool2d_output_shape": "equals every max/avg case's output shape"},
           check=_check_shape,
           # read dy and the indices, write dx: the forward's bytes
           covered_costs={"max_pool2d_backward": (flops, bytes_max)}, **ARG_RULES["max_pool2d"]))
    add(Op("avg_pool2d", "pool", ops.avg_pool2d, avg_ref, flops, bytes_avg, _cases_avg, _tol_window, _grad_avg,
           covers={"avg_pool2d_backward": "grad_check vs central differences"}, check=_check_shape,
           **ARG_RULES["avg_pool2d"]))
    add(Op("global_avg_pool2d", "pool", ops.global_avg_pool2d, global_ref, flops, bytes_avg, _cases_global,
           _tol_global, _grad_global, covers={"global_avg_pool2d_backward": "grad_check vs central differences"},
           **ARG_RULES["global_avg_pool2d"]))
