"""`nnforge train --model gpt`: a character GPT on pydoc_data.topics (or --data FILE.txt).

The loop: random context windows (nnforge.text), model.loss + model.backward, one fused
AdamW call per parameter group (matrices with weight decay, the rest without) on the
flat parameter buffer. Train and val loss every --eval-every steps on fixed windows.
Writes into the run folder (cli/runs.py, as the mlp/cnn jobs): checkpoint.npz at every
evaluation (model, optimizer, RNGs, config, tokenizer; what `nnforge generate` reads and
--resume continues from, bitwise), history.json, curves.png, sample.txt.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time

import numpy as np

from .errors import CliError
from .distributed import run_folder
from .runs import saved_int, saved_json

__all__ = ["GPT_OPTIONS", "add_arguments", "build_from_checkpoint", "run"]

_SAMPLE_TOKENS = 200
# the options add_arguments adds (argparse dests); other models refuse them
GPT_OPTIONS = ("steps", "context", "n_layer", "n_head", "n_embd", "dropout", "eval_every", "tokenizer")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The GPT options of `nnforge train` (--batch-size, --lr, --data, --seed, --out are shared)."""
    g = parser.add_argument_group("gpt (--model gpt)")
    g.add_argument("--steps", type=int, default=None, help="optimizer steps (default 2000)")
    g.add_argument("--context", type=int, default=None, help="context length (default 64)")
    g.add_argument("--n-layer", type=int, default=None, help="transformer blocks (default 4)")
    g.add_argument("--n-head", type=int, default=None, help="attention heads (default 4)")
    g.add_argument("--n-embd", type=int, default=None, help="embedding width (default 128)")
    g.add_argument("--dropout", type=float, default=None, help="dropout (default 0)")
    g.add_argument("--eval-every", type=int, default=None, help="steps between train/val loss (default 250)")
    g.add_argument("--tokenizer", default=None, choices=("char", "byte"),
                   help="char: one id per distinct character (default); byte: UTF-8 bytes")


def _options(args, defaults: dict) -> dict:
    opts = dict(defaults)
    for key in ("steps", "batch_size", "context", "n_layer", "n_head", "n_embd", "dropout", "eval_every", "lr"):
        value = getattr(args, key, None)
        if value is not None:
            opts[key] = value
    for key in ("steps", "batch_size", "context", "n_layer", "n_head", "n_embd", "eval_every"):
        if opts[key] < 1:
            raise CliError(f"--{key.replace('_', '-')} must be >= 1, got {opts[key]}")
    if opts["n_embd"] % opts["n_head"]:
        raise CliError(f"--n-embd {opts['n_embd']} must be a multiple of --n-head {opts['n_head']}")
    if not (np.isfinite(opts["lr"]) and opts["lr"] > 0):
        raise CliError(f"--lr must be a positive number, got {opts['lr']}")
    if not 0.0 <= opts["dropout"] < 1.0:
        raise CliError(f"--dropout must be in [0, 1), got {opts['dropout']}")
    if getattr(args, "optimizer", None) not in (None, "adamw"):
        raise CliError("--model gpt trains with AdamW (weight decay on matrices only); drop --optimizer")
    if getattr(args, "epochs", None) is not None:
        raise CliError("--model gpt counts --steps, not --epochs")
    if getattr(args, "schedule", "none") != "none":
        raise CliError("--schedule is not supported for --model gpt (constant lr, as the nanoGPT CPU recipe)")
    if getattr(args, "augment", False):
        raise CliError("--augment is for image models")
    return opts


def _estimate(model, windows_fn, batches: int, batch_size: int) -> float:
    """Mean loss over the same `batches` windows every time (windows_fn() makes a fresh,
    identically seeded TextWindows), in eval mode."""
    model.eval()
    try:
        w = windows_fn()
        return float(np.mean([model.loss(*w.batch(batch_size)) for _ in range(batches)]))
    finally:
        model.train()


def _plot(history: dict, path: str):
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return "matplotlib not installed: skipped the loss plot (pip install nnforge[train])"
    fig, ax = plt.subplots(figsize=(7, 4))
    loss = np.asarray(history["loss"])
    k = max(1, min(50, len(loss) // 20))
    smooth = np.convolve(loss, np.ones(k) / k, mode="valid")
    ax.plot(np.arange(k, len(loss) + 1), smooth, lw=1, alpha=0.7, label=f"train (batch, {k}-step mean)")
    ax.plot(history["eval_step"], history["train_loss"], "o-", ms=3, label="train")
    ax.plot(history["eval_step"], history["val_loss"], "s--", ms=3, label="val")
    ax.set_xlabel("step")
    ax.set_ylabel("cross-entropy (nats/token)")
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return None


class _Progress:
    """A tqdm bar over steps (plain lines at each eval without tqdm), loss and tokens/s."""

    def __init__(self, steps: int, verbose: int):
        self.bar = None
        self.verbose = verbose
        if verbose == 1:
            try:
                from tqdm import tqdm
                self.bar = tqdm(total=steps, unit="step", file=sys.stderr, dynamic_ncols=True, mininterval=0.2)
            except ImportError:
                pass
        self._last = 0.0

    def update(self, loss: float, tokens_per_s: float) -> None:
        if self.bar is None:
            return
        self.bar.update(1)
        now = time.perf_counter()
        if now - self._last >= 0.2:
            self._last = now
            self.bar.set_postfix_str(f"loss {loss:.4f} - {tokens_per_s:,.0f} tokens/s", refresh=False)

    def note(self, text: str) -> None:
        if self.bar is not None:
            self.bar.write(text, file=sys.stderr)
        elif self.verbose:
            print(text, flush=True)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


def _resume(path: str, model, opt, windows, config: dict, tok, steps: int):
    """Load model, optimizer, nnforge's RNG and the training windows' RNG from a checkpoint
    of this job; returns (step, history). The run then continues bitwise as if it had
    never stopped."""
    from ..nn import checkpoint
    try:
        entries = checkpoint.read(path)
    except checkpoint.CheckpointError as exc:
        raise CliError(f"--resume: {exc}") from None
    if str(entries.get("extra/model", "")) != "gpt":
        raise CliError(f"--resume: {path} was not written by `nnforge train --model gpt`")
    saved = saved_json(path, entries, "extra/config")
    diff = [k for k in config if saved.get(k) != config[k]]
    if diff:
        raise CliError(f"--resume: the checkpoint has {', '.join(f'{k}={saved.get(k)}' for k in diff)}, this run "
                       f"{', '.join(f'{k}={config[k]}' for k in diff)}")
    if str(entries.get("extra/tokenizer")) != tok.to_json():
        raise CliError("--resume: the checkpoint's tokenizer differs from this run's (--data / --tokenizer)")
    start = saved_int(path, entries, "extra/step")
    if start >= steps:
        raise CliError(f"--resume: checkpoint is already at step {start}; pass --steps > {start}")
    history = saved_json(path, entries, "extra/history")
    windows_rng = saved_json(path, entries, "extra/windows_rng")
    try:  # checked on a scratch generator: the load below must be the last thing that can fail
        type(windows.rng.bit_generator)().state = windows_rng
    except (ValueError, TypeError, KeyError, OverflowError):
        raise CliError(f"--resume: checkpoint {path} entry 'extra/windows_rng' is not a valid "
                       f"{type(windows.rng.bit_generator).__name__} state") from None
    try:
        checkpoint.load(path, model, opt, entries=entries)
    except checkpoint.CheckpointError as exc:
        raise CliError(f"--resume: {exc}") from None
    windows.rng.bit_generator.state = windows_rng
    return start, history


def build_from_checkpoint(path: str):
    """(model, tokenizer, config) from a checkpoint.npz written by `nnforge train --model gpt`."""
    from .. import nn
    from ..nn import checkpoint
    from ..text import tokenizer_from_json
    try:
        entries = checkpoint.read(path)
    except checkpoint.CheckpointError as exc:
        raise CliError(str(exc)) from None
    if str(entries.get("extra/model", "")) != "gpt":
        raise CliError(f"{path} was not written by `nnforge train --model gpt`")
    config = saved_json(path, entries, "extra/config")
    try:
        tok = tokenizer_from_json(str(entries["extra/tokenizer"]))
        model = nn.get_model_spec("gpt").build((config["context"],), tok.vocab_size, n_layer=config["n_layer"],
                                               n_head=config["n_head"], n_embd=config["n_embd"])
    except (KeyError, TypeError, ValueError) as exc:
        raise CliError(f"checkpoint {path} has a bad tokenizer or model config ({type(exc).__name__}: {exc})") from None
    try:
        checkpoint.load(path, model, restore_rng=False)
    except checkpoint.CheckpointError as exc:
        raise CliError(str(exc)) from None
    return model.eval(), tok, config


def run(args, spec, dist=None) -> int:
    """dist: nnforge.distributed under --distributed (cli/distributed.py), else None."""
    import nnforge
    from .. import nn
    from ..nn import checkpoint
    from ..text import ByteTokenizer, CharTokenizer, TextWindows, load_corpus, train_val_split

    opts = _options(args, spec.defaults)
    if args.seed < 0:
        raise CliError(f"--seed must be >= 0, got {args.seed}")
    try:
        text = load_corpus(args.data)
    except (OSError, UnicodeDecodeError) as exc:
        raise CliError(f"--data: cannot read {args.data} as UTF-8 text: {exc}") from None
    tok = ByteTokenizer() if args.tokenizer == "byte" else CharTokenizer.from_text(text)
    ctx, bs = opts["context"], opts["batch_size"]
    try:
        train_ids, val_ids = train_val_split(tok.encode(text), 0.1)
        if len(val_ids) <= ctx:
            raise ValueError(f"the validation tenth ({len(val_ids)} tokens) is not longer than --context {ctx}")
    except ValueError as exc:
        raise CliError(f"--data: {exc}") from None
    dataset = "pydoc" if args.data is None else os.path.splitext(os.path.basename(args.data))[0]

    nnforge.seed(args.seed)
    model = spec.build((ctx,), tok.vocab_size, n_layer=opts["n_layer"], n_head=opts["n_head"],
                       n_embd=opts["n_embd"], dropout=opts["dropout"])
    opt = nn.AdamW(nn.decay_groups(model, opts["weight_decay"]), lr=opts["lr"], betas=tuple(opts["betas"]))
    model.flatten_parameters(opt.group_parameters())  # one fused AdamW call per group
    dp = None if dist is None else dist.DataParallel(model, optimizer=opt, shard_optimizer=args.shard_optimizer)
    windows = TextWindows(train_ids, ctx, seed=args.seed)
    rank, world = (0, 1) if dist is None else (dist.rank(), dist.world_size())

    def next_batch():  # every rank draws the global batch (same RNG state) and keeps its part
        x, y = windows.batch(bs * world)
        return x[rank * bs:(rank + 1) * bs], y[rank * bs:(rank + 1) * bs]
    eval_train = lambda: TextWindows(train_ids, ctx, seed=args.seed + 1)
    eval_val = lambda: TextWindows(val_ids, ctx, seed=args.seed + 2)

    out = run_folder(args, dist, "gpt", dataset)
    try:
        os.makedirs(out, exist_ok=True)
    except OSError as exc:
        raise CliError(f"--out: cannot create {out}: {exc}") from None
    steps, every, verbose = opts["steps"], opts["eval_every"], args.verbose
    if verbose:
        print(f"nnforge train: gpt on {dataset} ({len(train_ids):,} train / {len(val_ids):,} val tokens, vocab "
              f"{tok.vocab_size}), {opts['n_layer']} layers x {opts['n_head']} heads x {opts['n_embd']}, context "
              f"{ctx}, {model.num_parameters():,} parameters, AdamW lr {opts['lr']:g}, batch {bs}, {steps} steps, "
              f"{nnforge.get_num_threads()} threads -> {out}", flush=True)
    # what a resumed run must share with the saved one for "continues bitwise" to hold
    config = {k: opts[k] for k in ("context", "n_layer", "n_head", "n_embd", "dropout", "batch_size", "lr",
                                   "weight_decay")}
    config["betas"] = [float(b) for b in opts["betas"]]
    ckpt = os.path.join(out, "checkpoint.npz")
    history = {"loss": [], "eval_step": [], "train_loss": [], "val_loss": []}
    start = 0
    if args.resume is not None:
        start, history = _resume(args.resume, model, opt, windows, config, tok, steps)

    def save(step: int) -> None:  # at every evaluation, so an interrupted run can --resume
        (checkpoint.save if dist is None else dist.save_checkpoint)(ckpt, model, opt, extra={
            "model": "gpt", "step": step, "config": json.dumps(config), "tokenizer": tok.to_json(),
            "history": json.dumps(history), "windows_rng": json.dumps(windows.rng.bit_generator.state)})

    progress = _Progress(steps - start, verbose)
    t0 = time.perf_counter()
    tokens, step_s = bs * ctx * world, 0.0
    try:
        for step in range(start + 1, steps + 1):
            ts = time.perf_counter()
            loss = model.loss(*next_batch())
            model.backward()
            opt.step(zero_grad=True)
            step_s += time.perf_counter() - ts
            history["loss"].append(loss)
            progress.update(loss, (step - start) * tokens / max(step_s, 1e-9))  # mean over the steps so far
            if step % every == 0 or step == steps:
                tr = _estimate(model, eval_train, opts["eval_batches"], bs)
                va = _estimate(model, eval_val, opts["eval_batches"], bs)
                history["eval_step"].append(step)
                history["train_loss"].append(tr)
                history["val_loss"].append(va)
                if verbose:
                    progress.note(f"step {step}: train loss {tr:.4f}, val loss {va:.4f}")
                save(step)
    finally:
        progress.close()
    elapsed = time.perf_counter() - t0
    if dist is not None:
        dp.verify_identical()
        if not dist.is_main():
            return 0

    sample_ids = model.generate(tok.encode(text[:1]), _SAMPLE_TOKENS, temperature=0.8, seed=args.seed)
    sample = tok.decode(sample_ids)
    with open(os.path.join(out, "sample.txt"), "w", encoding="utf-8") as f:
        f.write(sample)
    with open(os.path.join(out, "history.json"), "w") as f:
        json.dump({"history": history, "options": {**opts, "model": "gpt", "seed": args.seed, "dataset": dataset},
                   "training_s": elapsed, "step_ms": 1e3 * step_s / (steps - start)}, f, indent=1)
    note = _plot(history, os.path.join(out, "curves.png"))
    if verbose:
        n = steps - start
        print(f"{1e3 * step_s / n:.1f} ms/step, {n * tokens / step_s:,.0f} tokens/s (steps only; evaluation "
              f"{elapsed - step_s:.1f}s)")
    print(f"val loss {history['val_loss'][-1]:.4f} after {steps} steps, training {elapsed:.1f}s", flush=True)
    print(f"sample:\n{sample}\n")
    print(f"checkpoint: {ckpt}" + ("" if note else f"\ncurves: {os.path.join(out, 'curves.png')}"))
    if note:
        print(f"note: {note}")
    return 0
