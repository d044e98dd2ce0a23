"""Every registered op through the same malformed-argument cases (the issue's argument rule).

Arrays (derived for any op, present or future, from its first registry case): each float32
input as float64 / int32 (TypeError), each integer input as float32 (TypeError), each as a
nested list or a str (TypeError), with an extra leading axis and with its last axis one
longer (ValueError, unless the op's ndim_free / shape_free allow it), an in-place input or
out= read-only (ValueError). Scalars (from each op's Scalar specs): wrong types (bool for a
number, float for an int, 1 for a flag: TypeError), NaN / inf and each side of the domain
(ValueError). After every refused call no input array has changed.
"""
from __future__ import annotations

import inspect
import re

import numpy as np
import pytest

from nnforge import ops, registry
from nnforge.registry import Scalar

SCALAR_TYPES = {"float", "int", "bool", "str"}
_PYBIND_SIG = re.compile(r"^\w+\((.*)\)")


def _params(fn):
    """[(name, annotation, has_default)] of a public op (Python function or pybind11 builtin)."""
    try:
        sig = inspect.signature(fn)
    except (TypeError, ValueError):  # pybind11: the first docstring line is the signature
        m = _PYBIND_SIG.match(fn.__doc__.splitlines()[0])
        out = []
        for part in m.group(1).split(", "):
            if part in ("*", "/"):
                continue
            name, _, rest = part.partition(": ")
            ann, _, default = rest.partition(" = ")
            out.append((name, ann, bool(default)))
        return out
    return [(p.name, str(p.annotation) if p.annotation is not p.empty else "", p.default is not p.empty)
            for p in sig.parameters.values()]


def _scalar_params(fn):
    """Parameter names a scalar spec must cover: those annotated float / int / bool / str
    (plain or Optional; pybind11 builtins show exactly these for Real / Index / Flag / str)."""
    names = []
    for name, ann, _ in _params(fn):
        base = ann.replace("Optional[", "").rstrip("]").strip("'")
        if base in SCALAR_TYPES:
            names.append(name)
    return names


OPS = registry.all_ops()


def test_every_scalar_parameter_has_a_domain():
    """A new op with scalar keyword arguments must say their domains (registry Scalar specs)."""
    missing = {op.name: [n for n in _scalar_params(getattr(ops, op.name)) if n not in op.scalars]
               for op in OPS}
    missing = {k: v for k, v in missing.items() if v}
    assert not missing, (f"ops whose scalar parameters have no registry Scalar spec (add scalars={{name: "
                         f"Scalar(...)}} to the Op, or a str saying why it is not walked): {missing}")
    stale = {op.name: [n for n in op.scalars if n not in {p[0] for p in _params(getattr(ops, op.name))}]
             for op in OPS}
    stale = {k: v for k, v in stale.items() if v}
    assert not stale, f"Scalar specs naming no parameter of the public op: {stale}"


# --- helpers ---------------------------------------------------------------------------
def _arrays(obj):
    """Every ndarray inside args / kwargs (lists of arrays included)."""
    if isinstance(obj, np.ndarray):
        yield obj
    elif isinstance(obj, (list, tuple)):
        for x in obj:
            yield from _arrays(x)
    elif isinstance(obj, dict):
        for x in obj.values():
            yield from _arrays(x)


def _snapshot(args, kwargs):
    return [(a, a.copy()) for a in _arrays((args, kwargs))]


def _unchanged(snap, what):
    for a, before in snap:
        assert a.tobytes() == before.tobytes(), f"{what}: a refused call modified an input of shape {a.shape}"


def _first_case(op, rng):
    return op.all_cases()[0].make(rng)


def _refused(op, args, kwargs, exc, what):
    snap = _snapshot(args, kwargs)
    with pytest.raises(exc):
        op.run(*args, **kwargs)
    _unchanged(snap, what)


def _slots(args, kwargs):
    """(key, value) of every array argument: positions, keywords; lists of arrays by their
    first element (key (position, 0))."""
    for i, a in enumerate(args):
        if isinstance(a, np.ndarray):
            yield i, a
        elif isinstance(a, list) and a and isinstance(a[0], np.ndarray):
            yield (i, 0), a[0]
    for k, a in kwargs.items():
        if isinstance(a, np.ndarray):
            yield k, a


def _with(args, kwargs, key, value):
    args, kwargs = list(args), dict(kwargs)
    if isinstance(key, tuple):
        i, j = key
        lst = list(args[i])
        lst[j] = value
        args[i] = lst
    elif isinstance(key, int):
        args[key] = value
    else:
        kwargs[key] = value
    return args, kwargs


def _base_key(key):
    return key[0] if isinstance(key, tuple) else key


def _array_cases(op, args, kwargs):
    for key, a in _slots(args, kwargs):
        if a.dtype == np.float32:
            yield key, "float64", a.astype(np.float64), TypeError
            yield key, "int32", a.astype(np.int32), TypeError
        elif a.dtype.kind in "iu":
            yield key, "float32", a.astype(np.float32), TypeError
        yield key, "nested list", a.tolist(), TypeError
        yield key, "str", "not an array", TypeError
        if _base_key(key) not in op.ndim_free:
            yield key, "extra leading axis", a[None].copy(), ValueError
        if _base_key(key) not in op.shape_free and a.ndim >= 1:
            yield key, "last axis + 1", np.concatenate([a, a[..., :1]], axis=-1), ValueError


ARRAY_CASES = [(op, key, label) for op in OPS
               for key, label, _, _ in _array_cases(op, *_first_case(op, np.random.default_rng(0)))]


@pytest.mark.parametrize("op_key_label", ARRAY_CASES, ids=[f"{o.name}-{k}-{lab}" for o, k, lab in ARRAY_CASES])
def test_malformed_array_is_refused(op_key_label, rng):
    op, key, label = op_key_label
    args, kwargs = _first_case(op, rng)
    (_, _, bad, exc), = [c for c in _array_cases(op, args, kwargs) if c[0] == key and c[1] == label]
    a2, k2 = _with(args, kwargs, key, bad)
    _refused(op, a2, k2, exc, f"{op.name} {key} {label}")


@pytest.mark.parametrize("op", OPS, ids=[op.name for op in OPS])
def test_read_only_outputs_are_refused(op, rng):
    """An input the op updates in place, or an out= array, that is read-only: ValueError,
    and nothing written."""
    args, kwargs = _first_case(op, rng)
    snap = _snapshot(args, kwargs)
    got = op.run(*args, **kwargs)
    written = [i for i, (a, before) in enumerate(snap) if a.tobytes() != before.tobytes()]
    tried = 0
    for i in written:
        args, kwargs = _first_case(op, np.random.default_rng(1))
        target = list(_arrays((args, kwargs)))[i]
        target.flags.writeable = False
        _refused(op, args, kwargs, ValueError, f"{op.name}: read-only in-place input {i}")
        tried += 1
    if "out" in {p[0] for p in _params(getattr(ops, op.name))} and not written:
        first = got[0] if isinstance(got, tuple) else got
        if isinstance(first, np.ndarray):
            args, kwargs = _first_case(op, np.random.default_rng(1))
            out = np.zeros_like(first)
            out.flags.writeable = False
            if len(args) > 2 and args[2] is None and op.name == "matmul":
                args = list(args[:2])
            _refused(op, args, {**kwargs, "out": out,
                                **({"return_grad": True} if op.name == "cross_entropy" else {})},
                     ValueError, f"{op.name}: read-only out")
            tried += 1
    if not tried:
        pytest.skip(f"{op.name} writes no caller array")


SCALAR_CASES = [(op, spec, label) for op in OPS for spec in op.scalars.values() if isinstance(spec, Scalar)
                for label, _, _ in spec.bad_values()]


@pytest.mark.parametrize("op_spec_label", SCALAR_CASES,
                         ids=[f"{o.name}-{s.name}-{lab}" for o, s, lab in SCALAR_CASES])
def test_malformed_scalar_is_refused(op_spec_label, rng):
    op, spec, label = op_spec_label
    (_, bad, exc), = [b for b in spec.bad_values() if b[0] == label]
    args, kwargs = _first_case(op, rng)
    if spec.name in kwargs or spec.position is None or spec.position >= len(args):
        args, kwargs = list(args), {**kwargs, spec.name: bad}
    else:
        args, kwargs = _with(args, kwargs, spec.position, bad)
    _refused(op, args, kwargs, exc, f"{op.name} {spec.name}={bad!r}")


def test_scalar_bad_values_cover_the_domain():
    """The generated cases: both sides of a closed / open bound, NaN and inf, wrong types."""
    vals = {lab: (v, e) for lab, v, e in Scalar("p", "real", low=0.0, high=1.0, high_open=True).bad_values()}
    assert vals["below 0.0"][0] < 0.0 and vals["above 1.0"][0] == 1.0
    assert {"nan", "inf", "-inf", "bool True"} <= set(vals) and vals["bool True"][1] is TypeError
    ints = {lab for lab, _, _ in Scalar("k", "int", low=1).bad_values()}
    assert {"float 2.0", "float 2.5", "bool True", "below 1"} <= ints
    assert not [v for _, v, _ in Scalar("n", "real", nonfinite=True).bad_values() if isinstance(v, float)
                and not np.isfinite(v)]
