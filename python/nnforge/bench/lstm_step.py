"""The `nnforge train --model lstm` step in nnforge and in PyTorch, same model, same
weights (the `nnforge bench train --case lstm` row), and PyTorch's whole training run
for comparing val losses.

    case = lstm_step_case(torch=torch)     # embedding 64, 2 x LSTM 256, batch 16, window 64
    case.nnforge_step(); case.torch_step() # one AdamW step each on the same stream windows
    t_nnforge, t_torch = gpt_step.step_seconds(case)
    torch_train(torch=torch)               # {"val_loss", "train_loss", "seconds"}
    python -m nnforge.bench.lstm_step [--train] [--steps N]

The PyTorch model is torch.nn.Embedding -> torch.nn.LSTM (time-major, num_layers 2) ->
torch.nn.Linear, initialised by copying nnforge's weights (copy_weights); both libraries
carry the LSTM state across consecutive windows of the same TextStream (detached in
torch), reset it when the stream restarts, clip the global gradient norm and step AdamW
(fused=True where this torch has it, else foreach) over the same two decay groups.
"""
from __future__ import annotations

import time

import numpy as np

from .gpt_step import StepCase, torch_adamw

__all__ = ["copy_weights", "lstm_lm_flops", "lstm_step_case", "torch_lstm_lm", "torch_train"]


def lstm_lm_flops(batch: int, context: int, vocab: int, n_embd: int, hidden: int, n_layer: int) -> float:
    """Forward + backward FLOPs of one step: 3x the forward GEMMs, per token 2 * 4H(I + H)
    per LSTM layer (I = n_embd for the first, H after) and 2 H V for the head."""
    per_token = sum(2 * 4 * hidden * ((n_embd if k == 0 else hidden) + hidden) for k in range(n_layer))
    return 3.0 * batch * context * (per_token + 2 * hidden * vocab)


def torch_lstm_lm(torch, vocab: int, n_embd: int, hidden: int, n_layer: int):
    """nn.LSTMLanguageModel in torch.nn: (B, T) ids -> mean cross-entropy and the final state."""
    tnn, F = torch.nn, torch.nn.functional

    class LM(tnn.Module):
        def __init__(self):
            super().__init__()
            self.embed = tnn.Embedding(vocab, n_embd)
            self.lstm = tnn.LSTM(n_embd, hidden, n_layer)
            self.head = tnn.Linear(hidden, vocab)

        def forward(self, idx, targets, state=None):
            y, state = self.lstm(self.embed(idx.t()), state)           # (T, B, H), time-major
            logits = self.head(y)
            return F.cross_entropy(logits.reshape(-1, vocab), targets.t().reshape(-1)), state

    return LM()


def copy_weights(model, tmodel, torch) -> None:
    """nnforge LSTMLanguageModel -> torch_lstm_lm (nnforge's Linear weight is (in, out))."""
    t = lambda a: torch.from_numpy(np.ascontiguousarray(a, dtype=np.float32))
    with torch.no_grad():
        tmodel.embed.weight.copy_(t(model.embed.weight.data))
        for name, p in model.lstm.named_parameters():
            getattr(tmodel.lstm, name).copy_(t(p.data))
        tmodel.head.weight.copy_(t(model.head.weight.data.T))
        tmodel.head.bias.copy_(t(model.head.bias.data))


def _torch_stepper(torch, tmodel, topt, clip: float):
    """A TextStream batch -> one torch training step with the state carried (detached)."""
    carry = [None]

    def step(source, batch_size: int) -> float:
        x, y = source.batch(batch_size)
        state = None if source.restarted else carry[0]
        loss, state = tmodel(torch.from_numpy(x), torch.from_numpy(y), state)
        carry[0] = tuple(s.detach() for s in state)
        topt.zero_grad(set_to_none=False)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(tmodel.parameters(), clip)
        topt.step()
        return loss.item()
    return step


def _defaults() -> dict:
    from ..nn.lstm_models import LSTM_DEFAULTS
    return LSTM_DEFAULTS


def lstm_step_case(*, vocab: int = 103, seed: int = 0, torch=None, **overrides) -> StepCase:
    """The `nnforge train --model lstm` step in both libraries (torch: the module, or None
    to leave it out), with LSTM_DEFAULTS unless overridden (batch_size, context, n_layer,
    n_embd, hidden, lr, betas, weight_decay, clip_grad_norm). Each step function reads its
    own, identically seeded TextStream of one synthetic stream."""
    import nnforge
    from .. import nn
    from ..text import TextStream

    o = {**_defaults(), **overrides}
    bs, ctx = o["batch_size"], o["context"]
    nnforge.seed(seed)
    model = nn.LSTMLanguageModel(vocab, o["n_embd"], o["hidden"], o["n_layer"])
    opt = nn.AdamW(nn.decay_groups(model, o["weight_decay"]), lr=o["lr"], betas=tuple(o["betas"]),
                   clip_grad_norm=o["clip_grad_norm"])
    model.flatten_parameters(opt.group_parameters())
    stream = np.random.default_rng(seed).integers(0, vocab, 200_000)
    win = TextStream(stream, ctx, bs, seed=seed)
    carry = [None]

    def nnforge_step() -> float:
        x, y = win.batch(bs)
        loss = model.loss(x, y, None if win.restarted else carry[0])
        carry[0] = model.final_state
        model.backward()
        opt.step(zero_grad=True)
        return loss

    desc = (f"LSTM LM embedding {o['n_embd']}, {o['n_layer']} x LSTM {o['hidden']}, window {ctx}, batch {bs}, "
            f"vocab {vocab}, AdamW lr {o['lr']:g}, clip {o['clip_grad_norm']:g}")
    case = StepCase(desc, bs * ctx, lstm_lm_flops(bs, ctx, vocab, o["n_embd"], o["hidden"], o["n_layer"]), model,
                    opt, nnforge_step)
    if torch is not None:
        torch.manual_seed(seed)
        tmodel = torch_lstm_lm(torch, vocab, o["n_embd"], o["hidden"], o["n_layer"])
        copy_weights(model, tmodel, torch)
        topt, kind = torch_adamw(torch, tmodel, o["lr"], tuple(o["betas"]), o["weight_decay"])
        twin = TextStream(stream, ctx, bs, seed=seed)
        step = _torch_stepper(torch, tmodel, topt, o["clip_grad_norm"])
        case.torch_model, case.torch_optimizer, case.torch_step = tmodel, topt, lambda: step(twin, bs)
        case.notes.append(f"torch: eager torch.nn.LSTM, AdamW {kind}, clip_grad_norm_")
    return case


def torch_train(steps: int = None, *, data=None, seed: int = 0, torch=None, **overrides) -> dict:
    """PyTorch's side of `nnforge train --model lstm` with the same options: the same corpus,
    tokenizer, split, training stream (seed), evaluation streams (seed + 1, seed + 2, a
    fresh state each) and initial weights (nnforge's init, copied). Returns {"val_loss",
    "train_loss", "seconds"} for comparing with the nnforge run's summary line."""
    import nnforge
    from .. import nn
    from ..text import CharTokenizer, TextStream, load_corpus, train_val_split
    o = {**_defaults(), **overrides}
    steps = o["steps"] if steps is None else steps
    bs, ctx = o["batch_size"], o["context"]
    text = load_corpus(data)
    tok = CharTokenizer.from_text(text)
    train_ids, val_ids = train_val_split(tok.encode(text), 0.1)
    nnforge.seed(seed)  # the same initial weights as the nnforge run
    model = nn.LSTMLanguageModel(tok.vocab_size, o["n_embd"], o["hidden"], o["n_layer"])
    tmodel = torch_lstm_lm(torch, tok.vocab_size, o["n_embd"], o["hidden"], o["n_layer"])
    copy_weights(model, tmodel, torch)
    topt, _ = torch_adamw(torch, tmodel, o["lr"], tuple(o["betas"]), o["weight_decay"])
    step = _torch_stepper(torch, tmodel, topt, o["clip_grad_norm"])
    win = TextStream(train_ids, ctx, bs, seed=seed)
    t0 = time.perf_counter()
    for _ in range(steps):
        step(win, bs)
    seconds = time.perf_counter() - t0

    def estimate(ids, s):
        w, state, losses = TextStream(ids, ctx, bs, seed=s), None, []
        with torch.no_grad():
            for _ in range(o["eval_batches"]):
                x, y = w.batch(bs)
                loss, state = tmodel(torch.from_numpy(x), torch.from_numpy(y), None if w.restarted else state)
                losses.append(loss.item())
        return float(np.mean(losses))
    return {"val_loss": estimate(val_ids, seed + 2), "train_loss": estimate(train_ids, seed + 1), "seconds": seconds}


def _main() -> None:  # python -m nnforge.bench.lstm_step [--train [--steps N]]
    import argparse
    from ._timing import print_table, torch_or_none
    from .gpt_step import step_seconds
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--train", action="store_true", help="run PyTorch's whole `train --model lstm` instead")
    p.add_argument("--steps", type=int, default=None, help="with --train: steps (default: the lstm default)")
    p.add_argument("--data", default=None, help="with --train: the text file (default pydoc_data.topics)")
    args = p.parse_args()
    torch = torch_or_none()
    if torch is None:
        raise SystemExit("torch is not installed")
    if args.train:
        r = torch_train(args.steps, data=args.data, torch=torch)
        print(f"torch: val loss {r['val_loss']:.4f} (train {r['train_loss']:.4f}), training {r['seconds']:.1f}s")
        return
    case = lstm_step_case(torch=torch)
    t_n, t_t = step_seconds(case)
    print(case.description, *case.notes, sep="\n")
    rate = lambda t: (f"{t * 1e3:.1f}", f"{case.tokens_per_step / t:,.0f}", f"{case.flops_per_step / t / 1e9:.0f}")
    print_table(["library", "ms/step", "tokens/s", "GFLOP/s", "vs torch"],
                [("nnforge", *rate(t_n), f"{t_n / t_t:.2f}"), ("torch", *rate(t_t), "-")])


if __name__ == "__main__":
    _main()
