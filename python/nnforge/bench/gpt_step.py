"""The GPT training step in nnforge and in PyTorch, same model, same weights (the
`nnforge bench train` gpt row; the lead wires gpt_step_case() into bench/train.py).

    case = gpt_step_case()                 # 4 layers x 4 heads x 128, context 64, batch 12
    case.nnforge_step(); case.torch_step() # one AdamW step each on the same random windows
    t_nnforge, t_torch = step_seconds(case)  # seconds per step, alternating rounds
    rows, total = profile_nnforge(case, steps=20)

The PyTorch model is torch.nn with F.scaled_dot_product_attention (causal), GELU (tanh),
a head tied to the token embedding and fused AdamW (fused=True where this torch has it,
else foreach), initialised by copying nnforge's weights (copy_weights). Both take the
same windows of a synthetic stream (uniform ids over the vocabulary).

Measured (rough; 2-core Intel AVX-512 dev host shared with other builds, 2026-12):
nnforge 20.7-23.3 ms/step, torch 23.3-29.1 ms/step in the same runs (0.80-0.90x).
Profile of the nnforge step (quiet moments, ms): GEMM 12-15 (51 calls, 3.7 GFLOP at
~250-300 GFLOP/s = 50-60% of the measured 497 GFLOP/s peak), attention fwd 0.9 + bwd
1.5, GELU 1.2-1.5, layer norm 0.6-1.0, AdamW 0.5-0.7, bias sums + embedding 0.5,
cross-entropy 0.1, Python and copies 1.7-2.0. The issue's <= 0.5x target was set against
torch's 54.7 ms on Zen 4; here torch takes ~24 ms, so 0.5x (~12 ms) would need the
GEMMs at ~80% of peak on these small shapes and everything else under 3 ms (now ~8).
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Callable, Optional

import numpy as np

from ._timing import time_rounds

__all__ = ["StepCase", "copy_weights", "gpt_flops", "gpt_step_case", "profile_nnforge", "step_seconds",
           "torch_adamw", "torch_gpt", "torch_grads_as_nnforge", "torch_train"]


def gpt_flops(batch: int, context: int, n_layer: int, n_embd: int, vocab: int) -> float:
    """Forward + backward FLOPs of one step: GEMMs 3 x 2 * tokens * (12 E^2 per layer + E V);
    causal attention 4 B T^2 E / 2 per layer forward, backward 2.5x forward."""
    tokens = batch * context
    gemm = 3 * 2 * tokens * (n_layer * 12 * n_embd * n_embd + n_embd * vocab)
    attn = 3.5 * n_layer * 2 * batch * context * context * n_embd
    return float(gemm + attn)


def torch_gpt(torch, vocab: int, context: int, n_layer: int, n_head: int, n_embd: int):
    """The same GPT in torch.nn (pre-LN blocks, fused qkv Linear, SDPA, tied head)."""
    tnn, F = torch.nn, torch.nn.functional

    class Block(tnn.Module):
        def __init__(self):
            super().__init__()
            self.ln1, self.ln2 = tnn.LayerNorm(n_embd), tnn.LayerNorm(n_embd)
            self.qkv, self.proj = tnn.Linear(n_embd, 3 * n_embd), tnn.Linear(n_embd, n_embd)
            self.fc1, self.fc2 = tnn.Linear(n_embd, 4 * n_embd), tnn.Linear(4 * n_embd, n_embd)

        def forward(self, x):
            b, t, e = x.shape
            q, k, v = self.qkv(self.ln1(x)).view(b, t, 3, n_head, e // n_head).permute(2, 0, 3, 1, 4)
            a = F.scaled_dot_product_attention(q, k, v, is_causal=True)
            x = x + self.proj(a.transpose(1, 2).reshape(b, t, e))
            return x + self.fc2(F.gelu(self.fc1(self.ln2(x)), approximate="tanh"))

    class GPT(tnn.Module):
        def __init__(self):
            super().__init__()
            self.wte, self.wpe = tnn.Embedding(vocab, n_embd), tnn.Embedding(context, n_embd)
            self.blocks = tnn.ModuleList(Block() for _ in range(n_layer))
            self.ln_f = tnn.LayerNorm(n_embd)

        def forward(self, idx, targets):
            x = self.wte(idx) + self.wpe.weight[: idx.shape[1]]
            for blk in self.blocks:
                x = blk(x)
            logits = F.linear(self.ln_f(x), self.wte.weight)      # tied head
            return F.cross_entropy(logits.view(-1, vocab), targets.reshape(-1))

    return GPT()


def copy_weights(model, tmodel, torch) -> None:
    """nnforge GPT -> the torch_gpt model (Linear weights are stored transposed in nnforge)."""
    t = lambda a: torch.from_numpy(np.ascontiguousarray(a, dtype=np.float32))
    with torch.no_grad():
        tmodel.wte.weight.copy_(t(model.wte.weight.data))
        tmodel.wpe.weight.copy_(t(model.wpe.weight.data))
        for blk, tb in zip(model.blocks, tmodel.blocks):
            pairs = [(tb.ln1.weight, blk.ln1.weight.data), (tb.ln1.bias, blk.ln1.bias.data),
                     (tb.ln2.weight, blk.ln2.weight.data), (tb.ln2.bias, blk.ln2.bias.data),
                     (tb.qkv.weight, blk.attn.w_qkv.data.T), (tb.qkv.bias, blk.attn.b_qkv.data),
                     (tb.proj.weight, blk.attn.w_out.data.T), (tb.proj.bias, blk.attn.b_out.data),
                     (tb.fc1.weight, blk.fc1.weight.data.T), (tb.fc1.bias, blk.fc1.bias.data),
                     (tb.fc2.weight, blk.fc2.weight.data.T), (tb.fc2.bias, blk.fc2.bias.data)]
            for dst, src in pairs:
                dst.copy_(t(src))
        tmodel.ln_f.weight.copy_(t(model.ln_f.weight.data))
        tmodel.ln_f.bias.copy_(t(model.ln_f.bias.data))


def torch_grads_as_nnforge(model, tmodel) -> dict:
    """The torch model's gradients under nnforge's parameter names and layouts."""
    g = lambda p: p.grad.detach().numpy()
    out = {"wte.weight": g(tmodel.wte.weight), "wpe.weight": g(tmodel.wpe.weight),
           "ln_f.weight": g(tmodel.ln_f.weight), "ln_f.bias": g(tmodel.ln_f.bias)}
    for i, tb in enumerate(tmodel.blocks):
        p = f"h{i}."
        out.update({p + "ln1.weight": g(tb.ln1.weight), p + "ln1.bias": g(tb.ln1.bias),
                    p + "ln2.weight": g(tb.ln2.weight), p + "ln2.bias": g(tb.ln2.bias),
                    p + "attn.w_qkv": g(tb.qkv.weight).T, p + "attn.b_qkv": g(tb.qkv.bias),
                    p + "attn.w_out": g(tb.proj.weight).T, p + "attn.b_out": g(tb.proj.bias),
                    p + "fc1.weight": g(tb.fc1.weight).T, p + "fc1.bias": g(tb.fc1.bias),
                    p + "fc2.weight": g(tb.fc2.weight).T, p + "fc2.bias": g(tb.fc2.bias)})
    return out


def torch_adamw(torch, tmodel, lr, betas, weight_decay):
    """torch AdamW over nn.decay_groups' two groups (ndim >= 2 decayed), fused where possible."""
    decay = [p for p in tmodel.parameters() if p.dim() >= 2]
    rest = [p for p in tmodel.parameters() if p.dim() < 2]
    groups = [{"params": decay, "weight_decay": weight_decay}, {"params": rest, "weight_decay": 0.0}]
    try:
        return torch.optim.AdamW(groups, lr=lr, betas=betas, fused=True), "fused"
    except (RuntimeError, TypeError, ValueError):
        return torch.optim.AdamW(groups, lr=lr, betas=betas, foreach=True), "foreach"


@dataclass
class StepCase:
    """One training step of a text model in both libraries (the gpt row here, the lstm row
    in bench/lstm_step.py)."""
    description: str
    tokens_per_step: int
    flops_per_step: float
    model: object                       # nnforge.nn.GPT / LSTMLanguageModel (flat parameters)
    optimizer: object                   # nnforge.nn.AdamW over nn.decay_groups
    nnforge_step: Callable[[], float]   # one training step on the next windows; returns the loss
    torch_model: Optional[object] = None
    torch_optimizer: Optional[object] = None
    torch_step: Optional[Callable[[], float]] = None
    notes: list = field(default_factory=list)


def gpt_step_case(*, vocab: int = 103, context: int = 64, n_layer: int = 4, n_head: int = 4, n_embd: int = 128,
                  batch_size: int = 12, lr: float = 1e-3, betas=(0.9, 0.99), weight_decay: float = 0.1,
                  seed: int = 0, torch=None) -> StepCase:
    """The `nnforge train --model gpt` step in both libraries (torch: pass the module, or
    None to leave it out). Each step function draws from its own, identically seeded
    windows of one synthetic stream: the n-th call of either trains on the same batch."""
    import nnforge
    from .. import nn
    from ..text import TextWindows

    nnforge.seed(seed)
    model = nn.GPT(vocab, context, n_layer, n_head, n_embd)
    opt = nn.AdamW(nn.decay_groups(model, weight_decay), lr=lr, betas=betas)
    model.flatten_parameters(opt.group_parameters())
    stream = np.random.default_rng(seed).integers(0, vocab, 200_000)
    win = TextWindows(stream, context, seed=seed)

    def nnforge_step() -> float:
        loss = model.loss(*win.batch(batch_size))
        model.backward()
        opt.step(zero_grad=True)
        return loss

    desc = (f"GPT {n_layer} layers x {n_head} heads x {n_embd}, context {context}, batch {batch_size}, vocab "
            f"{vocab}, AdamW lr {lr:g} (decay on matrices)")
    case = StepCase(desc, batch_size * context, gpt_flops(batch_size, context, n_layer, n_embd, vocab), model,
                       opt, nnforge_step)
    if torch is not None:
        torch.manual_seed(seed)
        tmodel = torch_gpt(torch, vocab, context, n_layer, n_head, n_embd)
        copy_weights(model, tmodel, torch)
        topt, kind = torch_adamw(torch, tmodel, lr, betas, weight_decay)
        twin = TextWindows(stream, context, seed=seed)

        def torch_step() -> float:
            x, y = twin.batch(batch_size)
            loss = tmodel(torch.from_numpy(x), torch.from_numpy(y))
            topt.zero_grad(set_to_none=False)
            loss.backward()
            topt.step()
            return loss.item()

        case.torch_model, case.torch_optimizer, case.torch_step = tmodel, topt, torch_step
        case.notes.append(f"torch: eager, F.scaled_dot_product_attention, AdamW {kind}")
    return case


def profile_nnforge(case: StepCase, steps: int = 20, rounds: int = 3) -> tuple[list[tuple[str, int, float]], float]:
    """Where nnforge's step time goes: (component, calls, seconds) rows and the total
    seconds of `steps` instrumented steps, from the fastest of `rounds` tries (a burst of
    foreign load on a shared machine inflates whichever kernel it lands in). Wrappers
    add ~1 us per call."""
    from .. import ops
    from ._timing import CategoryTimer

    best = None
    for _ in range(rounds):
        timer = CategoryTimer()
        timer.wrap(ops, "matmul", "GEMM (ops.matmul)")
        for blk in case.model.blocks:
            timer.wrap(blk.attn, "_attn", "attention forward")
            timer.wrap(blk.attn, "_attn_backward", "attention backward")
        for name in ("layer_norm", "layer_norm_backward"):
            timer.wrap(ops, name, "layer norm (fwd + bwd)")
        for name in ("gelu", "gelu_backward"):
            timer.wrap(ops, name, "GELU (fwd + bwd)")
        timer.wrap(ops, "cross_entropy", "cross-entropy (loss + dlogits)")
        for name in ("sum_rows", "embedding_backward"):
            timer.wrap(ops, name, "bias sums, embedding backward")
        timer.wrap(case.optimizer, "_step_fn", "AdamW (fused, per group)")
        try:
            t0 = time.perf_counter()
            for _ in range(steps):
                case.nnforge_step()
            total = time.perf_counter() - t0
        finally:
            timer.restore()
        if best is None or total < best[1]:
            rows = [(k, timer.calls[k], timer.seconds[k]) for k in timer.seconds if timer.calls[k]]
            rows.append(("Python (layers, copies, loop)", 0, total - sum(timer.seconds.values())))
            best = (rows, total)
    return best


def torch_train(steps: int = 2000, *, context: int = 64, batch_size: int = 12, n_layer: int = 4, n_head: int = 4,
                n_embd: int = 128, lr: float = 1e-3, betas=(0.9, 0.99), weight_decay: float = 0.1,
                eval_batches: int = 20, seed: int = 0, data=None, torch=None) -> dict:
    """PyTorch's side of `nnforge train --model gpt` with the same options: the same corpus,
    tokenizer, split, training windows (seed), evaluation windows (seed + 1, seed + 2) and
    initial weights (nnforge's init, copied). Returns {"val_loss", "train_loss", "seconds"}
    for comparing the final val loss with the nnforge run's summary line."""
    import nnforge
    from .. import nn
    from ..text import CharTokenizer, TextWindows, load_corpus, train_val_split
    text = load_corpus(data)
    tok = CharTokenizer.from_text(text)
    train_ids, val_ids = train_val_split(tok.encode(text), 0.1)
    nnforge.seed(seed)  # the same initial weights as the nnforge run
    model = nn.GPT(tok.vocab_size, context, n_layer, n_head, n_embd)
    tmodel = torch_gpt(torch, tok.vocab_size, context, n_layer, n_head, n_embd)
    copy_weights(model, tmodel, torch)
    topt, _ = torch_adamw(torch, tmodel, lr, betas, weight_decay)
    win = TextWindows(train_ids, context, seed=seed)
    t0 = time.perf_counter()
    for _ in range(steps):
        x, y = win.batch(batch_size)
        loss = tmodel(torch.from_numpy(x), torch.from_numpy(y))
        topt.zero_grad(set_to_none=False)
        loss.backward()
        topt.step()
    seconds = time.perf_counter() - t0

    def estimate(ids, s):
        w = TextWindows(ids, context, seed=s)
        with torch.no_grad():
            return float(np.mean([tmodel(*map(torch.from_numpy, w.batch(batch_size))).item()
                                  for _ in range(eval_batches)]))
    return {"val_loss": estimate(val_ids, seed + 2), "train_loss": estimate(train_ids, seed + 1), "seconds": seconds}


def step_seconds(case: StepCase, rounds: int = 3, repeats: int = 7) -> tuple:
    """(nnforge, torch) seconds per step: bench/_timing.time_rounds' best median over
    rounds that alternate the two libraries (a burst of foreign load hits both alike)."""
    fns = {"nnforge": case.nnforge_step}
    if case.torch_step is not None:
        fns["torch"] = case.torch_step
    best = time_rounds([fns], rounds=rounds, repeats=repeats, settle=0.2, prime=True)[0]
    return best["nnforge"], best.get("torch")


def _main() -> None:  # python -m nnforge.bench.gpt_step: a quick side-by-side
    from ._timing import print_table, torch_or_none
    torch = torch_or_none()
    case = gpt_step_case(torch=torch)
    t_n, t_t = step_seconds(case)
    print(case.description, *case.notes, sep="\n")
    rate = lambda t: (f"{t * 1e3:.1f}", f"{case.tokens_per_step / t:,.0f}", f"{case.flops_per_step / t / 1e9:.0f}")
    rows = [("nnforge", *rate(t_n), "-" if t_t is None else f"{t_n / t_t:.2f}")]
    if t_t is not None:
        rows.append(("torch", *rate(t_t), "-"))
    print_table(["library", "ms/step", "tokens/s", "GFLOP/s", "vs torch"], rows)
    steps = 20
    prof, total = profile_nnforge(case, steps)
    print_table(["component", "calls/step", "ms/step", "%"],
                [(k, f"{c // steps:,}" if c else "-", f"{s / steps * 1e3:.2f}", f"{100 * s / total:.1f}")
                 for k, c, s in prof] + [("total", "-", f"{total / steps * 1e3:.2f}", "100.0")])


if __name__ == "__main__":
    _main()
