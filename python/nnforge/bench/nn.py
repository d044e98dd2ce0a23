"""nn training kernels (softmax, cross-entropy, GELU, layer/batch norm, dropout, sum_rows, MLP step) vs NumPy / PyTorch.

Each row: median time of nnforge and of the peers in the same run, an effective
rate from the registry's bytes() (memory-bound kernels: bytes read + written once;
the MLP step in GFLOP/s from its GEMMs' flops()), and nnforge's rate over the best
peer's (= best peer time / nnforge time, > 1: nnforge faster).
"""
from __future__ import annotations

import numpy as np

from .. import registry
from ._peak import add_peak_argument, resolve
from ._table import Row, print_rows
from ._timing import machine_line, time_rounds, torch_or_none


def add_arguments(parser) -> None:
    parser.add_argument("--quick", action="store_true", help="smaller shapes, fewer repeats")
    add_peak_argument(parser)


def _bytes(op: str, shape, **params) -> float:
    return registry.bytes(op, {"shape": tuple(shape), **params})


def mlp_step_flops(batch: int = 128, sizes=(784, 256, 128, 10)) -> float:
    """Forward + dW for every layer, dX for all but the first (it needs none)."""
    layers = list(zip(sizes[:-1], sizes[1:]))
    gemm = [registry.flops("matmul", {"m": batch, "k": i, "n": o}) for i, o in layers]
    return sum(gemm) * 2 + sum(gemm[1:])


def _cases(rng, quick):
    """(name, shape text, bytes (< 0: FLOPs), nnforge fn, numpy fn or None, torch fn builder or None)."""
    from nnforge import nn, ops

    s = 4 if quick else 1
    f32 = lambda *shape: rng.standard_normal(shape).astype(np.float32)
    cases = []

    x = f32(512 // s, 1000)
    def np_softmax():
        e = np.exp(x - x.max(axis=1, keepdims=True))
        return e / e.sum(axis=1, keepdims=True)
    cases.append(("softmax", f"{x.shape}", _bytes("softmax", x.shape), lambda: ops.softmax(x), np_softmax,
                  lambda t: (lambda tx=t.from_numpy(x): lambda: t.softmax(tx, dim=1))()))

    for n, c in [(128, 10), (512 // s, 1000)]:
        z = f32(n, c)
        lab = rng.integers(0, c, size=n)
        def torch_ce(t, z=z, lab=lab):
            tz = t.from_numpy(z).requires_grad_(True)
            tl = t.from_numpy(lab)
            def run():
                tz.grad = None
                t.nn.functional.cross_entropy(tz, tl).backward()
            return run
        cases.append(("cross_entropy fwd+grad", f"{z.shape}", _bytes("cross_entropy", z.shape, return_grad=True),
                      lambda z=z, lab=lab: ops.cross_entropy(z, lab, return_grad=True), None, torch_ce))

    g = f32(1 << (20 - (2 if quick else 0)))
    cases.append(("gelu tanh", f"({g.size},)", _bytes("gelu", g.shape), lambda: ops.gelu(g, "tanh"), None,
                  lambda t: (lambda tg=t.from_numpy(g): lambda: t.nn.functional.gelu(tg, approximate="tanh"))()))
    dy = f32(g.size)
    cases.append(("gelu tanh backward", f"({g.size},)", _bytes("gelu_backward", g.shape), lambda: ops.gelu_backward(dy, g, "tanh"), None,
                  lambda t: (lambda tg=t.from_numpy(g), td=t.from_numpy(dy):
                             lambda: t.ops.aten.gelu_backward(td, tg, approximate="tanh"))()))

    xl = f32(2048 // s, 512)
    gam, bet = f32(512), f32(512)
    y, mean, rstd = ops.layer_norm(xl, gam, bet)
    dyl = f32(*xl.shape)
    cases.append(("layer_norm fwd", f"{xl.shape}", _bytes("layer_norm", xl.shape), lambda: ops.layer_norm(xl, gam, bet), None,
                  lambda t: (lambda tx=t.from_numpy(xl), tg=t.from_numpy(gam), tb=t.from_numpy(bet):
                             lambda: t.nn.functional.layer_norm(tx, (512,), tg, tb))()))

    def torch_ln_bwd(t):
        tx = t.from_numpy(xl).requires_grad_(True)
        tg = t.from_numpy(gam).requires_grad_(True)
        tb = t.from_numpy(bet).requires_grad_(True)
        ty = t.nn.functional.layer_norm(tx, (512,), tg, tb)
        td = t.from_numpy(dyl)
        return lambda: t.autograd.grad(ty, (tx, tg, tb), td, retain_graph=True)
    cases.append(("layer_norm bwd", f"{xl.shape}", _bytes("layer_norm_backward", xl.shape),
                  lambda: ops.layer_norm_backward(dyl, xl, gam, mean, rstd), None, torch_ln_bwd))

    xb = f32(64 // s, 32, 14, 14)
    rm, rv = np.zeros(32, np.float32), np.ones(32, np.float32)
    gb, bb = f32(32), f32(32)
    cases.append(("batch_norm fwd train", f"{xb.shape}", _bytes("batch_norm", xb.shape, training=True),
                  lambda: ops.batch_norm(xb, gb, bb, rm, rv, training=True), None,
                  lambda t: (lambda tx=t.from_numpy(xb), trm=t.zeros(32), trv=t.ones(32), tg=t.from_numpy(gb),
                             tb=t.from_numpy(bb): lambda: t.nn.functional.batch_norm(tx, trm, trv, tg, tb, True))()))

    xd = f32(1 << (20 - (2 if quick else 0)))
    cases.append(("dropout p=0.1", f"({xd.size},)", _bytes("dropout", xd.shape, p=0.1), lambda: ops.dropout(xd, 0.1, 1), None,
                  lambda t: (lambda tx=t.from_numpy(xd): lambda: t.nn.functional.dropout(tx, 0.1, True))()))

    xs = f32(128, 256)
    cases.append(("sum_rows", f"{xs.shape}", _bytes("sum_rows", xs.shape), lambda: ops.sum_rows(xs), lambda: xs.sum(axis=0),
                  lambda t: (lambda tx=t.from_numpy(xs): lambda: tx.sum(dim=0))()))

    # MLP 784-256-128-10 training step without the optimizer: forward, loss, backward.
    xm = f32(128, 784)
    lm = rng.integers(0, 10, size=128)
    model = nn.Sequential(nn.Linear(784, 256, activation="relu"), nn.Linear(256, 128, activation="relu"),
                          nn.Linear(128, 10))
    model[0].needs_input_grad = False
    loss_fn = nn.CrossEntropyLoss()
    def step():
        loss_fn(model.forward(xm), lm)
        model.backward(loss_fn.backward())
    def torch_mlp(t):
        tm = t.nn.Sequential(t.nn.Linear(784, 256), t.nn.ReLU(), t.nn.Linear(256, 128), t.nn.ReLU(),
                             t.nn.Linear(128, 10))
        tx, tl = t.from_numpy(xm), t.from_numpy(lm)
        def run():
            for p in tm.parameters():
                p.grad = None
            t.nn.functional.cross_entropy(tm(tx), tl).backward()
        return run
    cases.append(("MLP step fwd+bwd (GFLOP/s)", "bs128 784-256-128-10", -mlp_step_flops(), step, None, torch_mlp))
    return cases


def run(args) -> int:
    rng = np.random.default_rng(0)
    torch = torch_or_none()
    repeats = 3 if args.quick else 7
    cases = _cases(rng, args.quick)
    fns = []
    for _, _, _, fn, np_fn, torch_fn in cases:
        f = {"nnforge": fn}
        if np_fn is not None:
            f["numpy"] = np_fn
        if torch_fn is not None and torch is not None:
            f["torch"] = torch_fn(torch)
        fns.append(f)
    best = time_rounds(fns, rounds=1, repeats=repeats)
    # work < 0 marks a FLOP count (GFLOP/s) instead of bytes (GB/s)
    rows = [Row(name, shape, abs(work), b, unit="flop" if work < 0 else "byte")
            for (name, shape, work, *_), b in zip(cases, best)]
    peak, peak_text = resolve(args.peak)
    print_rows(f"nn kernels  ({machine_line()} torch={'-' if torch is None else torch.__version__})\n{peak_text}\n"
               f"method: one phase per library, 2 warm-up calls, median of {repeats} samples of >= 50 ms loops",
               rows, ["nnforge", "numpy"] + (["torch"] if torch is not None else []), peak)
    return 0
