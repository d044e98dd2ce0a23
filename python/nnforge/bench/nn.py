"""nn training kernels (softmax, cross-entropy, GELU, layer/batch norm, dropout, sum_rows, MLP step) vs NumPy / PyTorch.

Each row: median time of nnforge and of the peers in the same run, an effective
rate from explicit bytes() (memory-bound kernels: bytes read + written once), and
the ratio peer_time / nnforge_time (> 1: nnforge faster).
"""
from __future__ import annotations

import numpy as np

from ._timing import fmt, machine_line, median_seconds, print_table, torch_or_none


def add_arguments(parser) -> None:
    parser.add_argument("--quick", action="store_true", help="smaller shapes, fewer repeats")


def _cases(rng, quick):
    """(name, shape text, bytes, nnforge fn, numpy fn or None, torch fn builder or None)."""
    from nnforge import nn, ops

    s = 4 if quick else 1
    f32 = lambda *shape: rng.standard_normal(shape).astype(np.float32)
    cases = []

    x = f32(512 // s, 1000)
    def np_softmax():
        e = np.exp(x - x.max(axis=1, keepdims=True))
        return e / e.sum(axis=1, keepdims=True)
    cases.append(("softmax", f"{x.shape}", 8 * x.size, lambda: ops.softmax(x), np_softmax,
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
        cases.append(("cross_entropy fwd+grad", f"{z.shape}", 8 * z.size,
                      lambda z=z, lab=lab: ops.cross_entropy(z, lab, return_grad=True), None, torch_ce))

    g = f32(1 << (20 - (2 if quick else 0)))
    cases.append(("gelu tanh", f"({g.size},)", 8 * g.size, lambda: ops.gelu(g, "tanh"), None,
                  lambda t: (lambda tg=t.from_numpy(g): lambda: t.nn.functional.gelu(tg, approximate="tanh"))()))
    dy = f32(g.size)
    cases.append(("gelu tanh backward", f"({g.size},)", 12 * g.size, lambda: ops.gelu_backward(dy, g, "tanh"), None,
                  lambda t: (lambda tg=t.from_numpy(g), td=t.from_numpy(dy):
                             lambda: t.ops.aten.gelu_backward(td, tg, approximate="tanh"))()))

    xl = f32(2048 // s, 512)
    gam, bet = f32(512), f32(512)
    y, mean, rstd = ops.layer_norm(xl, gam, bet)
    dyl = f32(*xl.shape)
    cases.append(("layer_norm fwd", f"{xl.shape}", 8 * xl.size, lambda: ops.layer_norm(xl, gam, bet), None,
                  lambda t: (lambda tx=t.from_numpy(xl), tg=t.from_numpy(gam), tb=t.from_numpy(bet):
                             lambda: t.nn.functional.layer_norm(tx, (512,), tg, tb))()))

    def torch_ln_bwd(t):
        tx = t.from_numpy(xl).requires_grad_(True)
        tg = t.from_numpy(gam).requires_grad_(True)
        tb = t.from_numpy(bet).requires_grad_(True)
        ty = t.nn.functional.layer_norm(tx, (512,), tg, tb)
        td = t.from_numpy(dyl)
        return lambda: t.autograd.grad(ty, (tx, tg, tb), td, retain_graph=True)
    cases.append(("layer_norm bwd", f"{xl.shape}", 12 * xl.size,
                  lambda: ops.layer_norm_backward(dyl, xl, gam, mean, rstd), None, torch_ln_bwd))

    xb = f32(64 // s, 32, 14, 14)
    rm, rv = np.zeros(32, np.float32), np.ones(32, np.float32)
    gb, bb = f32(32), f32(32)
    cases.append(("batch_norm fwd train", f"{xb.shape}", 12 * xb.size,
                  lambda: ops.batch_norm(xb, gb, bb, rm, rv, training=True), None,
                  lambda t: (lambda tx=t.from_numpy(xb), trm=t.zeros(32), trv=t.ones(32), tg=t.from_numpy(gb),
                             tb=t.from_numpy(bb): lambda: t.nn.functional.batch_norm(tx, trm, trv, tg, tb, True))()))

    xd = f32(1 << (20 - (2 if quick else 0)))
    cases.append(("dropout p=0.1", f"({xd.size},)", 9 * xd.size, lambda: ops.dropout(xd, 0.1, 1), None,
                  lambda t: (lambda tx=t.from_numpy(xd): lambda: t.nn.functional.dropout(tx, 0.1, True))()))

    xs = f32(128, 256)
    cases.append(("sum_rows", f"{xs.shape}", 4 * xs.size, lambda: ops.sum_rows(xs), lambda: xs.sum(axis=0),
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
    # forward + dW for every layer, dX for layers 2 and 3 only (the first needs none)
    flops = 2 * 128 * (2 * 784 * 256 + 3 * 256 * 128 + 3 * 128 * 10)
    cases.append(("MLP step fwd+bwd (GFLOP/s)", "bs128 784-256-128-10", -flops, step, None, torch_mlp))
    return cases


def run(args) -> int:
    rng = np.random.default_rng(0)
    torch = torch_or_none()
    repeats = 3 if args.quick else 7
    rows = []
    for name, shape, nbytes, fn, np_fn, torch_fn in _cases(rng, args.quick):
        t_nnf = median_seconds(fn, repeats=repeats)
        t_np = median_seconds(np_fn, repeats=repeats) if np_fn else None
        t_t = median_seconds(torch_fn(torch), repeats=repeats) if (torch_fn and torch is not None) else None
        # nbytes < 0 marks a FLOP count (GFLOP/s) instead of bytes (GB/s)
        rate = lambda t: None if t is None else abs(nbytes) / t / 1e9
        rows.append([name, shape, fmt(t_nnf * 1e6, ".1f"), fmt(rate(t_nnf)),
                     fmt(None if t_np is None else t_np * 1e6, ".1f"), fmt(rate(t_np)),
                     fmt(None if t_t is None else t_t * 1e6, ".1f"), fmt(rate(t_t)),
                     fmt(None if t_np is None else t_np / t_nnf, ".2f"),
                     fmt(None if t_t is None else t_t / t_nnf, ".2f")])
    print_table(["kernel", "shape", "nnforge us", "GB/s", "numpy us", "GB/s", "torch us", "GB/s",
                 "np/nnf", "torch/nnf"], rows, title=f"nn kernels  ({machine_line()})")
    return 0
