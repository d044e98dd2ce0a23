"""LSTM / GRU / RNN layers forward and forward+backward (nnforge.nn on ops.lstm/gru/rnn) vs torch.nn, GFLOP/s.

Cases (T, B, I, H) x layers (1, 2) x mode (lstm, gru, rnn tanh): the issue's shapes.
FLOPs (nnforge.registry): forward 2*T*B*G*H*(I + H) per layer (G = 4 / 3 / 1 gates; a
second layer's I is H), forward+backward 3x forward. Both libraries get the same float32
arrays and weights (torch's state_dict loaded into nnforge's layer). nnforge's forward runs in eval mode
(no workspace kept, as torch under no_grad); its fwd+bwd runs forward in training mode
then backward(dy); torch's runs forward then autograd backward(dy).

Method (as bench attention): each library and pass is timed in its own phase (all
nnforge cases, then torch), --settle s idle first so the other library's spinning pool
parks, 2 warm-up calls, the median of --repeats samples each looping >= 50 ms, best of
--rounds sweeps.
"""
from __future__ import annotations

import numpy as np

from .. import registry
from ._peak import add_peak_argument, resolve
from ._table import Row, print_rows
from ._timing import add_timing_arguments, machine_line, time_rounds, torch_or_none

SHAPES = [(64, 32, 256, 256), (128, 12, 128, 256), (32, 64, 512, 512)]  # (T, B, I, H)
MODES = ("lstm", "gru", "rnn")
CASES = [(mode, shape, layers) for mode in MODES for shape in SHAPES for layers in (1, 2)]
QUICK_CASES = [("lstm", (8, 4, 16, 16), 1), ("gru", (8, 4, 16, 16), 2), ("rnn", (8, 4, 16, 16), 1)]


def layer_params(case) -> list[dict]:
    """The registry's params of each layer of a CASES entry (the input of layer 2+ is H wide)."""
    mode, (t, b, i, h), layers = case
    return [{"T": t, "B": b, "I": i if k == 0 else h, "H": h} for k in range(layers)]


def flops(case) -> float:
    """Forward FLOPs: 2*T*B*G*H*(I + H) per layer (nnforge.registry)."""
    return sum(registry.flops(case[0], p) for p in layer_params(case))


def flops_fwd_bwd(case) -> float:
    """Forward + backward (the backward is 2x forward): 3x forward (nnforge.registry)."""
    return flops(case) + sum(registry.flops(case[0] + "_backward", p) for p in layer_params(case))


def label(case) -> str:
    mode, (t, b, i, h), layers = case
    return f"{mode}{' tanh' if mode == 'rnn' else ''} T{t} B{b} I{i} H{h} L{layers}"


def _nnforge_layer(mode, i, h, layers):
    from .. import nn
    return {"lstm": nn.LSTM, "gru": nn.GRU, "rnn": nn.RNN}[mode](i, h, layers)


def case_fns(case, torch, rng):
    """{(library, pass): callable} on the same inputs and weights for every library."""
    mode, (t, b, i, h), layers = case
    x = rng.standard_normal((t, b, i), dtype=np.float32)
    dy = rng.standard_normal((t, b, h), dtype=np.float32)
    layer = _nnforge_layer(mode, i, h, layers)

    def nnf_fwd():
        layer.eval()
        layer.forward(x)

    def nnf_fb():
        layer.train()
        layer.forward(x)
        layer.backward(dy)

    fns = {("nnforge", "fwd"): nnf_fwd, ("nnforge", "fb"): nnf_fb}
    if torch is not None:
        tl = {"lstm": torch.nn.LSTM, "gru": torch.nn.GRU, "rnn": torch.nn.RNN}[mode](i, h, layers)
        layer.load_state_dict({k: v.detach().numpy() for k, v in tl.state_dict().items()})
        tx, tdy = torch.from_numpy(x), torch.from_numpy(dy)
        gx = tx.clone().requires_grad_(True)

        def torch_fwd():
            with torch.no_grad():
                tl(tx)

        def torch_fb():
            gx.grad = None
            tl(gx)[0].backward(tdy)

        fns[("torch", "fwd")] = torch_fwd
        fns[("torch", "fb")] = torch_fb
    return fns


def add_arguments(parser) -> None:
    add_timing_arguments(parser)
    parser.add_argument("--mode", action="append", choices=list(MODES), help="lstm / gru / rnn (default all)")
    add_peak_argument(parser)
    parser.add_argument("--quick", action="store_true", help="tiny shapes, 1 round, 3 repeats (a smoke run)")


def run(args) -> int:
    torch = torch_or_none()
    rng = np.random.default_rng(0)
    repeats, rounds = (3, 1) if args.quick else (args.repeats, args.rounds)
    modes = args.mode or list(MODES)
    cases = [c for c in (QUICK_CASES if args.quick else CASES) if c[0] in modes]
    fns = [case_fns(case, torch, rng) for case in cases]
    # one library per phase: every nnforge case, then every torch case
    phases = [[{k: f for k, f in case.items() if k[0] == lib} for case in fns] for lib in ("nnforge", "torch")]
    best = [{} for _ in cases]
    for phase in phases:
        if any(phase):
            for b, got in zip(best, time_rounds(phase, rounds=rounds, repeats=repeats, settle=args.settle,
                                                prime=True)):
                b.update(got)
    rows = []
    for case, b in zip(cases, best):
        mode, (t, bs, i, h), layers = case
        for pass_, work, pass_label in (("fwd", flops(case), "fwd"), ("fb", flops_fwd_bwd(case), "fwd+bwd")):
            secs = {lib: s for (lib, ps), s in b.items() if ps == pass_}
            rows.append(Row(label(case), f"x {t}x{bs}x{i} h {h}", work, secs, extra={"pass": pass_label}))
    peak, peak_text = resolve(args.peak)
    title = (f"nnforge bench rnn  ({machine_line()} torch={'-' if torch is None else torch.__version__})\n"
             f"{peak_text}\n"
             f"method: one phase per library (all nnforge cases, then torch; same inputs and weights), "
             f"{args.settle:g} s idle before each case, 2 warm-up calls, median of {repeats} samples of >= 50 ms "
             f"loops, best of {rounds} rounds; FLOPs 2*T*B*G*H*(I+H) per layer, fwd+bwd = 3x fwd")
    print_rows(title, rows, ["nnforge"] + (["torch"] if torch is not None else []), peak, extra_columns=["pass"])
    return 0
