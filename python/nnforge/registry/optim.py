"""Fused multi-tensor optimizer steps (torch.optim algorithms), grad_norm,
clip_grad_norm (and clip_coef through it), stream_triad.

A step's reference takes float64 copies of every list and returns them updated, as
run() returns the float32 lists after the step. Cases: tensors of 1 element, vector
width +- 1, several tensors in one call, misaligned buffers, non-zero state (a later
step), and the options each algorithm has. bytes = every buffer read once and every
updated one written once: SGD momentum 20 B/param, Adam(W) 28 B, Adagrad 20 B (what
nnforge bench optim divides by).
"""
from __future__ import annotations

import math

import numpy as np

from ._base import EPS32, Op, Scalar, f32


def _n(p):
    return float(sum(math.prod(s) if isinstance(s, tuple) else s for s in p["sizes"]))


def _grad(g, kw):
    d = kw.get("grad_scale", 1.0) * g
    return -d if kw.get("maximize", False) else d


# --- float64 references (torch.optim _single_tensor_* algorithms, one step) ----------------
def sgd_ref(params, grads, bufs=None, *, lr, step, momentum=0.0, dampening=0.0, weight_decay=0.0,
            nesterov=False, **kw):
    out_p, out_b = [], []
    for i, (p, g) in enumerate(zip(params, grads)):
        d = _grad(g, kw) + weight_decay * p
        if momentum:
            b = d if step == 1 else momentum * bufs[i] + (1 - dampening) * d
            out_b.append(b)
            d = d + momentum * b if nesterov else b
        out_p.append(p - lr * d)
    return (out_p, out_b) if momentum else (out_p,)


def _adam_ref(decoupled):
    def ref(params, grads, m, v, vmax=None, *, step, lr, beta1=0.9, beta2=0.999, eps=1e-8,
            weight_decay=0.01 if decoupled else 0.0, amsgrad=False, **kw):
        ps, ms, vs, vms = [], [], [], []
        bc1, bc2 = 1 - beta1 ** step, 1 - beta2 ** step
        for i, (p, g) in enumerate(zip(params, grads)):
            d = _grad(g, kw)
            if decoupled:
                p = p * (1 - lr * weight_decay)
            else:
                d = d + weight_decay * p
            mi = beta1 * m[i] + (1 - beta1) * d
            vi = beta2 * v[i] + (1 - beta2) * d * d
            den = vi
            if amsgrad:
                den = np.maximum(vmax[i], vi)
                vms.append(den)
            ps.append(p - lr / bc1 * mi / (np.sqrt(den) / math.sqrt(bc2) + eps))
            ms.append(mi)
            vs.append(vi)
        return (ps, ms, vs, vms) if amsgrad else (ps, ms, vs)
    return ref


def rmsprop_ref(params, grads, sq, bufs=None, gavg=None, *, lr, alpha=0.99, eps=1e-8, weight_decay=0.0,
                momentum=0.0, centered=False, **kw):
    ps, sqs, bs, gas = [], [], [], []
    for i, (p, g) in enumerate(zip(params, grads)):
        d = _grad(g, kw) + weight_decay * p
        s = alpha * sq[i] + (1 - alpha) * d * d
        sqs.append(s)
        if centered:
            ga = alpha * gavg[i] + (1 - alpha) * d
            gas.append(ga)
            avg = np.sqrt(s - ga * ga) + eps
        else:
            avg = np.sqrt(s) + eps
        if momentum > 0:
            b = momentum * bufs[i] + d / avg
            bs.append(b)
            ps.append(p - lr * b)
        else:
            ps.append(p - lr * d / avg)
    return (ps, sqs) + ((bs,) if momentum > 0 else ()) + ((gas,) if centered else ())


def adagrad_ref(params, grads, sums, *, step, lr, lr_decay=0.0, weight_decay=0.0, eps=1e-10, **kw):
    clr = lr / (1 + (step - 1) * lr_decay)
    ps, ss = [], []
    for p, g, s in zip(params, grads, sums):
        d = _grad(g, kw) + weight_decay * p
        s = s + d * d
        ps.append(p - clr * d / (np.sqrt(s) + eps))
        ss.append(s)
    return ps, ss


# --- running a step: the lists after it --------------------------------------------------------
def _stepper(name):
    def run(*lists, **kw):
        from nnforge import ops
        ok = getattr(ops, name)(*lists, **kw)
        assert ok is True, f"{name} returned {ok!r}"
        used = [lst for lst in lists[2:] if lst is not None]
        return (lists[0],) + tuple(used)
    return run


# Which state lists a step gets, from its options: (name, positional state slots) ->
# a function kw -> list of "zeros" / "random" / "nonneg" / None per slot.
def _sgd_states(kw):
    return ["random" if kw.get("momentum") else None]


def _adam_states(kw):
    return ["random", "nonneg"] + (["nonneg"] if kw.get("amsgrad") else [])


def _rmsprop_states(kw):
    return ["nonneg", "random" if kw.get("momentum", 0) > 0 else None, "zeros" if kw.get("centered") else None]


def _adagrad_states(kw):
    return ["nonneg"]


def _step_case(op, states, sizes, layout="contiguous", **kw):
    def make(rng):
        shp = [s if isinstance(s, tuple) else (s,) for s in sizes]
        params = [f32(rng, s, layout) for s in shp]
        grads = [f32(rng, s, layout) for s in shp]
        lists = []
        for kind in states(kw):
            if kind is None:
                lists.append(None)
            elif kind == "zeros":
                lists.append([np.zeros(s, np.float32) for s in shp])
            else:
                vals = [f32(rng, s, layout, scale=0.1) for s in shp]
                if kind == "nonneg":
                    for v in vals:
                        np.abs(v, out=v)
                lists.append(vals)
        while lists and lists[-1] is None:
            lists.pop()
        return (params, grads, *lists), dict(kw)
    opts = " ".join(f"{a}={v}" for a, v in kw.items())
    return op.case(f"{sizes} {layout} {opts}", make, sizes=sizes, **kw)


STEPS = {
    # name: (reference, states, bytes per param of the plain step, option sets)
    "sgd_step": (sgd_ref, _sgd_states, lambda p: 20 if p.get("momentum") else 12,
                 [dict(lr=0.05, step=1), dict(lr=0.05, step=3, momentum=0.9, dampening=0.1, weight_decay=0.01),
                  dict(lr=0.05, step=2, momentum=0.9, nesterov=True, maximize=True, grad_scale=0.5)]),
    "adam_step": (_adam_ref(False), _adam_states, lambda p: 28 + (8 if p.get("amsgrad") else 0),
                  [dict(lr=1e-2, step=1), dict(lr=1e-2, step=5, weight_decay=0.1, amsgrad=True, maximize=True)]),
    "adamw_step": (_adam_ref(True), _adam_states, lambda p: 28 + (8 if p.get("amsgrad") else 0),
                   [dict(lr=1e-2, step=1), dict(lr=3e-3, step=4, beta1=0.8, eps=1e-6, amsgrad=True, grad_scale=3.0)]),
    "rmsprop_step": (rmsprop_ref, _rmsprop_states,
                     lambda p: 20 + (8 if p.get("momentum", 0) > 0 else 0) + (8 if p.get("centered") else 0),
                     [dict(lr=1e-2), dict(lr=1e-2, centered=True, momentum=0.9, weight_decay=0.01)]),
    "adagrad_step": (adagrad_ref, _adagrad_states, lambda p: 20,
                     [dict(lr=0.1, step=1), dict(lr=0.1, step=3, lr_decay=0.01, weight_decay=0.01, maximize=True)]),
}


def _step_cases(name):
    states = STEPS[name][1]

    def cases(op):
        plain, *others = STEPS[name][3]
        cs = [_step_case(op, states, [1, 15, 16, 17, (3, 33)], **plain)]
        for kw in others:
            cs.append(_step_case(op, states, [(7,), 1000], "misaligned", **kw))
        return cs
    return cases


def _step_tol(case, args, ref):
    """Each updated value: a few ulps of itself plus a few ulps of the change (the update's
    own rounding, amplified by momentum / bias correction up to ~1 / (1 - beta))."""
    old = [args[0]] + [a for a in args[2:] if a is not None]
    tols = []
    for before, after in zip(old, ref):
        tols.append([64 * EPS32 * (np.abs(a) + np.abs(a - b) * 10) + 1e-30 for a, b in zip(after, before)])
    return tols


# --- norms and the triad --------------------------------------------------------------------------
def _norm_cases(op):
    def c(sizes, layout="contiguous", **kw):
        def make(rng):
            extra = dict(kw)
            args = ([f32(rng, (s,), layout) for s in sizes],)
            if "max_norm" in kw:
                args += (extra.pop("max_norm"),)
            return args, extra
        return op.case(f"{sizes} {layout}" + "".join(f" {a}={v}" for a, v in kw.items()), make, sizes=sizes, **kw)
    if op.name == "grad_norm":
        return [c([1]), c([15, 16, 17]), c([1000, 33], "misaligned")]
    return [c([1], max_norm=10.0), c([15, 16, 17], max_norm=0.5), c([1000, 33], "misaligned", max_norm=1.0)]


def grad_norm_ref(grads):
    return math.sqrt(sum(float((g * g).sum()) for g in grads))


def clip_ref(grads, max_norm, eps=1e-6):
    norm = grad_norm_ref(grads)
    coef = max_norm / (norm + eps)
    coef = 1.0 if coef >= 1.0 else coef  # a NaN norm gives NaN (torch.clamp), not min()'s 1.0
    return norm, [g * coef for g in grads]


def _grad_norm_run(grads):
    from nnforge import ops
    return ops.grad_norm(grads)


def _clip_run(grads, max_norm, **kw):
    from nnforge import ops
    return ops.clip_grad_norm(grads, max_norm, **kw), grads


def _norm_tol(case, args, ref):
    if isinstance(ref, tuple):
        return 8 * EPS32 * ref[0], [8 * EPS32 * np.abs(g) + 1e-30 for g in ref[1]]
    return 8 * EPS32 * ref  # squares summed in float64: the float32 inputs are exact


def _clip_coef_check(case, args, got):
    """clip_coef(norm, max_norm) is the factor clip_grad_norm applied."""
    from nnforge import ops
    norm = got[0]
    want = min(1.0, args[1] / (norm + 1e-6))
    assert abs(ops.clip_coef(norm, args[1]) - want) <= 4 * EPS32 * want, f"{case.id}: clip_coef"


def _triad_cases(op):
    def c(n, layout="contiguous"):
        return op.case(f"n={n} {layout}", lambda rng: ((np.zeros(n, np.float32), f32(rng, (n,), layout),
                                                        f32(rng, (n,), layout), 3.0), {}), n=n)
    return [c(1), c(17), c(1001, "misaligned")]


def _triad_run(a, b, c, s):
    from nnforge import ops
    ops.stream_triad(a, b, c, s)
    return a


# Argument domains (tests/test_arg_domains.py): the torch.optim ranges, finite everywhere.
def _real(name, **domain):
    return Scalar(name, "real", **domain)


_GRAD_OPTS = {"maximize": Scalar("maximize", "flag"), "zero_grad": Scalar("zero_grad", "flag"),
              "check_finite": Scalar("check_finite", "flag"),
              "grad_scale": _real("grad_scale", low=0.0, nonfinite=True)}  # check_finite skips inf / NaN
_ADAM = {"step": Scalar("step", "int", low=1), "lr": _real("lr", low=0.0),
         "beta1": _real("beta1", low=0.0, high=1.0, high_open=True),
         "beta2": _real("beta2", low=0.0, high=1.0, high_open=True), "eps": _real("eps", low=0.0),
         "weight_decay": _real("weight_decay", low=0.0), "amsgrad": Scalar("amsgrad", "flag"), **_GRAD_OPTS}
ARG_RULES = {
    "sgd_step": {"lr": _real("lr", low=0.0), "step": Scalar("step", "int", low=1),
                 "momentum": _real("momentum", low=0.0), "dampening": _real("dampening", low=0.0, high=1.0),
                 "weight_decay": _real("weight_decay", low=0.0), "nesterov": Scalar("nesterov", "flag"),
                 **_GRAD_OPTS},
    "adam_step": _ADAM, "adamw_step": _ADAM,
    "rmsprop_step": {"lr": _real("lr", low=0.0), "alpha": _real("alpha", low=0.0, high=1.0),
                     "eps": _real("eps", low=0.0), "weight_decay": _real("weight_decay", low=0.0),
                     "momentum": _real("momentum", low=0.0), "centered": Scalar("centered", "flag"), **_GRAD_OPTS},
    "adagrad_step": {"step": Scalar("step", "int", low=1), "lr": _real("lr", low=0.0),
                     "lr_decay": _real("lr_decay", low=0.0), "weight_decay": _real("weight_decay", low=0.0),
                     "eps": _real("eps", low=0.0), **_GRAD_OPTS},
    "clip_grad_norm": {"max_norm": _real("max_norm", low=0.0, position=1), "eps": _real("eps", low=0.0)},
    "stream_triad": {"s": _real("s", position=3)},
}


def register(add):
    for name, (ref, _, bpp, _) in STEPS.items():
        add(Op(name, "optim", _stepper(name), ref, lambda p: 10.0 * _n(p),
               lambda p, bpp=bpp: float(bpp(p)) * _n(p), _step_cases(name), _step_tol, scalars=ARG_RULES[name]))
    add(Op("grad_norm", "optim", _grad_norm_run, grad_norm_ref,
           lambda p: 2.0 * _n(p), lambda p: 4.0 * _n(p), _norm_cases, _norm_tol, ndim_free=(0,), shape_free=(0,)))
    add(Op("clip_grad_norm", "optim", _clip_run, clip_ref, lambda p: 3.0 * _n(p), lambda p: 12.0 * _n(p),
           _norm_cases, _norm_tol, check=_clip_coef_check, scalars=ARG_RULES["clip_grad_norm"],
           ndim_free=(0,), shape_free=(0,),
           covers={"clip_coef": "check: equals the factor clip_grad_norm applied"}))
    add(Op("stream_triad", "optim", _triad_run, lambda a, b, c, s: b + s * c, lambda p: 2.0 * p["n"],
           lambda p: 12.0 * p["n"], _triad_cases,
           lambda case, args, ref: 2 * EPS32 * (np.abs(ref) + 3 * np.abs(args[2])), scalars=ARG_RULES["stream_triad"]))
