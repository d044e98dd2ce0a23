"""The registry's building blocks: Op (one public op), Case (one input set), tolerances,
awkward layouts and the finite-difference gradient check.

An Op knows how to call nnforge (run), what the answer is in float64 NumPy
(reference, written from the op's definition, sharing no code with the kernels), what
one call costs (flops / bytes of a case's params) and which inputs are awkward for it
(cases). tests/test_registry.py walks every Op x ISA path x case; nnforge bench reads
the same flops / bytes.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Optional, Sequence

import numpy as np

EPS32 = float(np.finfo(np.float32).eps)
EPS_BF16 = 2.0 ** -7  # bfloat16: 8 significand bits

# What a case's make() returns: positional args and keyword args of the nnforge call.
Inputs = tuple[tuple, dict]


@dataclass(frozen=True)
class Case:
    """One input set of an op. params: the shape and options that flops() / bytes() read;
    make(rng) -> (args, kwargs) builds the (float32, possibly strided) inputs."""
    op: str
    label: str
    params: dict
    make: Callable[[np.random.Generator], Inputs]
    device: str = "cpu"  # the axis later device backends add cases along

    @property
    def id(self) -> str:
        return f"{self.op}[{self.label}]"


@dataclass
class Op:
    """One public nnforge.ops function (see the module docstring).

    run(*args, **kwargs) -> the op's outputs (arrays, a tuple, or a float);
    reference(*args64, **kwargs) -> the same structure in float64, where args64 are the
        inputs as float64 copies taken before run (integer arrays unchanged), so ops that
        update inputs in place (optimizer steps, running statistics) return them;
        None for a stochastic op (dropout), whose `check` verifies the output instead;
    cases(op) -> the op's awkward cases (op.case(...) builds one);
    tolerance(case, args64, ref) -> allowed |error| for each output (scalar or array, in
        the structure of ref), from float32 precision and the op's reduction length;
    grad_check(rng, case): raises AssertionError when the backward op disagrees with
        the float64 gradient; None when the op has no backward;
    covers: other ops.__all__ names this entry exercises (a backward checked by grad_check,
        a shape helper checked against the reference output).
    """
    name: str
    family: str
    run: Callable[..., Any]
    reference: Callable[..., Any]
    flops: Callable[[dict], float]
    bytes: Callable[[dict], float]
    cases: Callable[["Op"], list[Case]]
    tolerance: Callable[[Case, tuple, Any], Any]
    grad_check: Optional[Callable[[np.random.Generator, Case], None]] = None
    covers: dict[str, str] = field(default_factory=dict)  # name -> how it is covered
    check: Optional[Callable[[Case, tuple, Any], None]] = None  # extra checks on (case, args, got)
    # (flops, bytes) of the covered ops that have a cost of their own (a backward), from
    # the same params as this op's cases
    covered_costs: dict[str, tuple[Callable[[dict], float], Callable[[dict], float]]] = field(default_factory=dict)

    # The argument rules tests/test_arg_domains.py walks (see Scalar): one Scalar per scalar
    # parameter of the public function (a str instead: why the walk leaves it alone), and the
    # array arguments (positions or keyword names) whose ndim / shape may change without the
    # call becoming invalid (an elementwise op's input, matmul's batched 3-D form).
    scalars: dict[str, "Scalar | str"] = field(default_factory=dict)
    ndim_free: tuple = ()
    shape_free: tuple = ()

    def all_cases(self) -> list[Case]:
        return self.cases(self)

    def case(self, label: str, make: Callable[[np.random.Generator], Inputs], **params) -> Case:
        return Case(self.name, label, params, make)


@dataclass(frozen=True)
class Scalar:
    """One scalar parameter of an op and its domain; the malformed values come from it.

    kind: "real" (float_arg: low / high, open or closed; NaN and inf refused unless
    nonfinite, a value such as a gradient norm that carries them on), "int" (int_arg: >= low),
    "flag" (bool only) or "choice" (one of `choices`). position: its index in a case's
    positional arguments when the cases pass it positionally."""
    name: str
    kind: str
    low: Optional[float] = None
    high: Optional[float] = None
    low_open: bool = False
    high_open: bool = False
    choices: tuple = ()
    nonfinite: bool = False
    position: Optional[int] = None

    def bad_values(self) -> list[tuple[str, Any, type]]:
        """(label, value, the exception it must raise) for every malformed value."""
        wrong_type = {"real": [True, "1.0", 1j], "int": [True, 2.0, 2.5, "2"],
                      "flag": [None, 1, 0.0, "yes"], "choice": [1, 2.0]}[self.kind]
        bad = [(f"{type(v).__name__} {v!r}", v, TypeError) for v in wrong_type]
        if self.kind == "real":
            if not self.nonfinite:
                bad += [("nan", float("nan"), ValueError), ("inf", float("inf"), ValueError),
                        ("-inf", float("-inf"), ValueError)]
            if self.low is not None:
                v = self.low if self.low_open else float(np.nextafter(self.low, -np.inf))
                bad.append((f"below {self.low!r}", v, ValueError))
            if self.high is not None:
                v = self.high if self.high_open else float(np.nextafter(self.high, np.inf))
                bad.append((f"above {self.high!r}", v, ValueError))
        elif self.kind == "int" and self.low is not None:
            bad.append((f"below {int(self.low)}", int(self.low) - 1, ValueError))
        elif self.kind == "choice":
            bad.append(("unknown choice", "no-such-" + str(self.choices[0]), ValueError))
        return bad


# --- tolerances ------------------------------------------------------------------------
def reduction_tol(k: int, magnitude: float, c: float = 2.0) -> float:
    """|error| bound of a float32 sum of k terms of size <= magnitude: c * eps * (k + 2) * mag
    (between the worst case k*eps and the sqrt(k)*eps of blocked orders, so that a dropped
    or doubled term always exceeds it)."""
    return c * EPS32 * (k + 2) * magnitude


def elementwise_tol(ref, ulps: float = 4.0, floor: float = 0.0):
    """A few float32 ulps of each reference value (transcendentals, rescaling)."""
    return ulps * EPS32 * np.abs(np.asarray(ref, dtype=np.float64)) + floor


# --- awkward layouts ---------------------------------------------------------------------
LAYOUTS = ("contiguous", "transposed", "sliced", "padded_rows", "misaligned")


def f32(rng: np.random.Generator, shape: Sequence[int], layout: str = "contiguous", scale: float = 1.0):
    """A float32 array of `shape` with standard-normal values laid out as asked:
    transposed (a .T view of the reversed shape), sliced (every other column of a wider
    buffer), padded_rows (unit column stride, rows further apart than their length, a
    misaligned start: what row kernels read in place), misaligned (C-contiguous but
    starting 4 bytes past a 64-byte line)."""
    shape = tuple(int(s) for s in shape)
    vals = (rng.standard_normal(shape) * scale).astype(np.float32)
    if layout == "contiguous":
        return vals
    if layout == "transposed":
        return np.ascontiguousarray(vals.T).T
    if layout == "sliced":
        wide = np.zeros(shape[:-1] + (2 * shape[-1] + 1,), np.float32) if shape else np.zeros(1, np.float32)
        view = wide[..., 1::2]
        view[...] = vals
        return view
    if layout == "padded_rows":
        wide = np.zeros(shape[:-1] + (shape[-1] + 3,), np.float32)
        view = wide[..., 1:1 + shape[-1]]
        view[...] = vals
        return view
    if layout == "misaligned":
        buf = np.zeros(vals.size + 16 + 1, np.float32)
        base = (-buf.ctypes.data % 64) // 4  # first 64-byte boundary in the buffer
        view = buf[base + 1: base + 1 + vals.size].reshape(shape)
        view[...] = vals
        return view
    raise ValueError(f"unknown layout {layout!r}; choose from {LAYOUTS}")


def to64(a):
    """float32 arrays (and lists of them) -> float64 copies, bfloat16 arrays -> copies (the
    reference sees their dtype, and not what an op writes into them); anything else unchanged."""
    if isinstance(a, np.ndarray) and a.dtype == np.float32:
        return a.astype(np.float64)
    if isinstance(a, np.ndarray) and a.dtype.name == "bfloat16":
        return a.copy()
    if isinstance(a, (list, tuple)) and a and all(isinstance(x, np.ndarray) for x in a):
        return type(a)(to64(x) for x in a)
    return a


def bf16_rounded(a) -> np.ndarray:
    """a (float32/float64 or bfloat16) rounded to bfloat16 by ml_dtypes, as float64: the
    operands a bf16 kernel multiplies (shares no code with nnforge's conversion)."""
    import ml_dtypes
    return np.asarray(a).astype(ml_dtypes.bfloat16).astype(np.float64)


def tile_sizes(tile: int) -> list[int]:
    """tile - 1, tile, tile + 1: the edges of a register tile."""
    return [tile - 1, tile, tile + 1]


# --- comparison --------------------------------------------------------------------------
def assert_close(got, want, tol, what: str) -> None:
    """|got - want| <= tol elementwise, recursing into tuples/lists; reports the worst index."""
    if isinstance(want, (tuple, list)):
        tols = tol if isinstance(tol, (tuple, list)) else [tol] * len(want)
        assert isinstance(got, (tuple, list)) and len(got) == len(want), \
            f"{what}: got {type(got).__name__} of {len(got) if hasattr(got, '__len__') else '?'}, want {len(want)}"
        for i, (g, w, t) in enumerate(zip(got, want, tols)):
            assert_close(g, w, t, f"{what}[{i}]")
        return
    if want is None:
        assert got is None, f"{what}: got {type(got).__name__}, want None"
        return
    g = np.asarray(got, dtype=np.float64)
    w = np.asarray(want, dtype=np.float64)
    assert g.shape == w.shape, f"{what}: shape {g.shape} != reference {w.shape}"
    with np.errstate(invalid="ignore"):  # equal infinities, and NaN where the reference is NaN, are exact
        err = np.where((g == w) | (np.isnan(g) & np.isnan(w)), 0.0, np.abs(g - w))
    bad = ~(err <= tol)  # any other NaN counts as bad
    if bad.any():
        i = np.unravel_index(np.argmax(np.where(bad, np.nan_to_num(err, nan=np.inf), -np.inf)), g.shape)
        t = np.broadcast_to(tol, g.shape)[i] if np.ndim(tol) else tol
        raise AssertionError(f"{what}: {int(bad.sum())} of {g.size} off; worst at {i}: got {g[i]!r}, "
                             f"want {w[i]!r}, |err| {err[i]:.3g} > tol {float(t):.3g}")


# --- gradients -----------------------------------------------------------------------------
def central_diff(loss: Callable[[list], float], inputs: list, wrt: int, h: float = 1e-6) -> np.ndarray:
    """d loss / d inputs[wrt] by central differences (float64 inputs, modified and restored)."""
    x = inputs[wrt]
    g = np.zeros_like(x)
    for i in np.ndindex(x.shape):
        old = x[i]
        x[i] = old + h
        fp = loss(inputs)
        x[i] = old - h
        fm = loss(inputs)
        x[i] = old
        g[i] = (fp - fm) / (2 * h)
    return g


def fd_check(forward64: Callable[..., Any], inputs32: Sequence, wrt: Sequence[int], dy32, grads32,
             tols, what: str, out_index: Optional[int] = None) -> None:
    """Compare backward-kernel gradients grads32 (one per index in wrt) against central
    differences of the float64 reference forward: loss(x) = sum(forward64(x) * dy)."""
    x64 = [to64(np.array(a)) if isinstance(a, np.ndarray) else a for a in inputs32]
    dy = np.asarray(dy32, dtype=np.float64)

    def loss(xs):
        y = forward64(*xs)
        if out_index is not None:
            y = y[out_index]
        return float((np.asarray(y) * dy).sum())

    for j, (i, got) in enumerate(zip(wrt, grads32)):
        want = central_diff(loss, x64, i)
        t = tols[j] if isinstance(tols, (list, tuple)) else tols
        assert_close(got, want, t, f"{what}: d/d input {i}")
