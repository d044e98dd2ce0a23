"""`nnforge train --model gpt | lstm`: a character language model on pydoc_data.topics (or
--data FILE.txt). One trainer for every text model; what differs per model (options,
build, batches) is a TextJob (cli/text_jobs.py).

The loop: batches of windows (nnforge.text: random windows for gpt, consecutive windows
with the LSTM state carried across them for lstm, reset when the stream restarts),
model.loss + model.backward, one fused AdamW call per parameter group (matrices with
weight decay, the rest without; lstm also clips the global gradient norm) on the flat
parameter buffer. Train and val loss every --eval-every steps on fixed windows.
Writes into the run folder (cli/runs.py, as the mlp/cnn jobs): checkpoint.npz at every
evaluation (model, optimizer, RNGs, config, tokenizer, window position and carried state;
what `nnforge generate` reads and --resume continues from, bitwise), history.json,
curves.png, sample.txt.
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
from .runs import check_resume_precision, saved_int, saved_json
from .text_jobs import JOBS, text_models

__all__ = ["TEXT_OPTIONS", "add_arguments", "build_from_checkpoint", "run"]

_SAMPLE_TOKENS = 200
# the options every text model takes (argparse dests); TEXT_OPTIONS adds each model's own. Other models refuse them.
SHARED_OPTIONS = ("steps", "context", "n_layer", "n_embd", "dropout", "eval_every", "tokenizer")
TEXT_OPTIONS = SHARED_OPTIONS + tuple(k for job in JOBS.values() for k in job.options)
_POSITIVE = ("steps", "batch_size", "context", "n_layer", "n_embd", "eval_every")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The text-model options of `nnforge train` (--batch-size, --lr, --data, --seed, --out are shared)."""
    g = parser.add_argument_group("language models (--model gpt, --model lstm; defaults: gpt / lstm)")
    g.add_argument("--steps", type=int, default=None, help="optimizer steps (default 2000)")
    g.add_argument("--context", type=int, default=None,
                   help="context length / truncated-BPTT window (default 64)")
    g.add_argument("--n-layer", type=int, default=None, help="transformer blocks / LSTM layers (default 4 / 2)")
    g.add_argument("--n-head", type=int, default=None, help="gpt: attention heads (default 4)")
    g.add_argument("--n-embd", type=int, default=None, help="embedding width (default 128 / 64)")
    g.add_argument("--hidden", type=int, default=None, help="lstm: hidden size (default 256)")
    g.add_argument("--dropout", type=float, default=None, help="dropout (default 0)")
    g.add_argument("--eval-every", type=int, default=None, help="steps between train/val loss (default 250)")
    g.add_argument("--tokenizer", default=None, choices=("char", "byte"),
                   help="char: one id per distinct character (default); byte: UTF-8 bytes")


def _options(args, job, defaults: dict) -> dict:
    name = job.name
    foreign = [k for j in JOBS.values() if j is not job for k in j.options
               if k not in job.options and getattr(args, k, None) is not None]
    if foreign:
        owner = next(j.name for j in JOBS.values() if foreign[0] in j.options)
        raise CliError(f"--{foreign[0].replace('_', '-')}: only for --model {owner}")
    opts = dict(defaults)
    for key in (*SHARED_OPTIONS, *job.options, "batch_size", "lr"):
        value = getattr(args, key, None)
        if value is not None and key != "tokenizer":
            opts[key] = value
    for key in (*_POSITIVE, *job.positive):
        if opts[key] < 1:
            raise CliError(f"--{key.replace('_', '-')} must be >= 1, got {opts[key]}")
    job.check(opts)
    if not (np.isfinite(opts["lr"]) and opts["lr"] > 0):
        raise CliError(f"--lr must be a positive number, got {opts['lr']}")
    if not 0.0 <= opts["dropout"] < 1.0:
        raise CliError(f"--dropout must be in [0, 1), got {opts['dropout']}")
    if getattr(args, "optimizer", None) not in (None, "adamw"):
        raise CliError(f"--model {name} trains with AdamW (weight decay on matrices only); drop --optimizer")
    if getattr(args, "epochs", None) is not None:
        raise CliError(f"--model {name} counts --steps, not --epochs")
    if getattr(args, "schedule", "none") != "none":
        raise CliError(f"--schedule is not supported for --model {name} (constant lr, as the nanoGPT CPU recipe)")
    if getattr(args, "augment", False):
        raise CliError("--augment is for image models")
    if getattr(args, "precision", None) == "bf16" and not job.bf16:
        raise CliError(f"--precision bf16 is not supported for --model {name}: its fused recurrent kernels "
                       f"compute in float32 (use --precision fp32)")
    return opts


def _batch_loss(model, job, source, batch_size: int, carry):
    """The loss of the source's next batch -> (loss, carry for the next batch). A stream
    job carries the model's final state across consecutive windows (a constant: no
    gradient flows into the previous window) and drops it when the stream restarts."""
    x, y = source.batch(batch_size)
    if not job.stream:
        return model.loss(x, y), None
    loss = model.loss(x, y, None if source.restarted else carry)
    return loss, model.final_state


def _estimate(model, job, windows_fn, batches: int, batch_size: int) -> float:
    """Mean loss over the same `batches` batches every time (windows_fn() makes a fresh,
    identically seeded window source), in eval mode."""
    model.eval()
    try:
        w, carry, losses = windows_fn(), None, []
        for _ in range(batches):
            loss, carry = _batch_loss(model, job, w, batch_size, carry)
            losses.append(loss)
        return float(np.mean(losses))
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


def _job_of(entries, path: str, what: str):
    name = str(entries.get("extra/model", ""))
    if name not in JOBS:
        raise CliError(f"{what}{path} was not written by `nnforge train` {text_models()}")
    return JOBS[name]


class _RankRows:
    """This rank's rows of every global batch: all ranks draw the same global batch of
    batch_size x world rows (the same RNG and stream position everywhere) and keep rows
    [rank * batch_size, (rank + 1) * batch_size). One process: the whole batch."""

    def __init__(self, source, batch_size: int, rank: int, world: int):
        self.source, self.rank, self.world = source, rank, world
        self.rows = batch_size * world
        self._own = slice(rank * batch_size, (rank + 1) * batch_size)

    def batch(self, batch_size: int):
        x, y = self.source.batch(self.rows)
        return x[self._own], y[self._own]

    @property
    def restarted(self) -> bool:
        return self.source.restarted

    def state(self):
        return self.source.state()

    def set_state(self, state) -> None:
        self.source.set_state(state)

    def own_rows(self, a):
        """A (layers, rows, H) carried state of the global batch -> this rank's rows."""
        return np.ascontiguousarray(a[:, self._own])

    def all_rows(self, a, dist):
        """This rank's (layers, batch_size, H) rows -> the global batch's (every rank calls it)."""
        full = np.zeros((a.shape[0], self.rows) + a.shape[2:], dtype=a.dtype)
        full[:, self._own] = a
        if dist is not None and self.world > 1:
            dist.all_reduce(full, op="sum")
        return full


def _carry_entries(carry, windows, dist) -> dict:
    """The carried state (a tuple of this rank's arrays, or None) as checkpoint extras, with
    every rank's rows (a collective under --distributed: every rank saves)."""
    return {} if carry is None else {f"carry_{i}": windows.all_rows(a, dist) for i, a in enumerate(carry)}


def _resume(path: str, job, model, opt, windows, config: dict, tok, steps: int, precision):
    """Load model, optimizer, nnforge's RNG, the training windows' position, the carried
    state and the precision (precision: --precision, None = the checkpoint's) from a
    checkpoint of this job; returns (step, history, carry). The run then continues bitwise
    as if it had never stopped."""
    from ..nn import checkpoint
    try:
        entries = checkpoint.read(path)
    except checkpoint.CheckpointError as exc:
        raise CliError(f"--resume: {exc}") from None
    if _job_of(entries, path, "--resume: ") is not job:
        raise CliError(f"--resume: {path} was written by `nnforge train --model {entries['extra/model']}`, "
                       f"not --model {job.name}")
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
    check_resume_precision(path, entries, precision)  # checkpoint.load restores it
    history = saved_json(path, entries, "extra/history")
    windows_state = saved_json(path, entries, "extra/windows_rng")
    before = windows.state()
    try:  # set first (the load below must be the last thing that can fail), undone if it does
        windows.set_state(windows_state)
    except (ValueError, TypeError, KeyError, OverflowError):
        windows.set_state(before)
        raise CliError(f"--resume: checkpoint {path} entry 'extra/windows_rng' is not a valid state of "
                       f"{type(windows.source).__name__}") from None
    n = sum(1 for k in entries if k.startswith("extra/carry_"))
    carry = tuple(np.array(entries[f"extra/carry_{i}"]) for i in range(n)) if n else None
    if carry is not None and any(c.ndim != 3 or c.shape[1] != windows.rows for c in carry):
        windows.set_state(before)
        raise CliError(f"--resume: checkpoint {path} carries a state of {carry[0].shape[1]} rows, this run has "
                       f"{windows.rows} (batch size x ranks)")
    try:
        checkpoint.load(path, model, opt, entries=entries)
    except checkpoint.CheckpointError as exc:
        windows.set_state(before)
        raise CliError(f"--resume: {exc}") from None
    if carry is not None:
        carry = tuple(windows.own_rows(c) for c in carry)
    return start, history, carry


def build_from_checkpoint(path: str):
    """(model, tokenizer, config) from a checkpoint.npz written by `nnforge train --model gpt | lstm`."""
    from .. import nn
    from ..nn import checkpoint
    from ..text import tokenizer_from_json
    try:
        entries = checkpoint.read(path)
    except checkpoint.CheckpointError as exc:
        raise CliError(str(exc)) from None
    job = _job_of(entries, path, "")
    config = saved_json(path, entries, "extra/config")
    try:
        tok = tokenizer_from_json(str(entries["extra/tokenizer"]))
        model = job.build(nn.get_model_spec(job.name), config, tok.vocab_size)
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
    from ..text import ByteTokenizer, CharTokenizer, TextStream, TextWindows, load_corpus, train_val_split

    job = JOBS[args.model]
    opts = _options(args, job, spec.defaults)
    if args.seed < 0:
        raise CliError(f"--seed must be >= 0, got {args.seed}")
    try:
        text = load_corpus(args.data)
    except (OSError, UnicodeDecodeError) as exc:
        raise CliError(f"--data: cannot read {args.data} as UTF-8 text: {exc}") from None
    tok = ByteTokenizer() if args.tokenizer == "byte" else CharTokenizer.from_text(text)
    ctx, bs = opts["context"], opts["batch_size"]
    if job.stream:  # batch_size rows of consecutive windows
        source = lambda ids, seed, rows=bs: TextStream(ids, ctx, rows, seed=seed)
    else:
        source = lambda ids, seed, rows=None: TextWindows(ids, ctx, seed=seed)
    rank, world = (0, 1) if dist is None else (dist.rank(), dist.world_size())
    try:
        train_ids, val_ids = train_val_split(tok.encode(text), 0.1)
        if len(val_ids) <= ctx:
            raise ValueError(f"the validation tenth ({len(val_ids)} tokens) is not longer than --context {ctx}")
        windows = _RankRows(source(train_ids, args.seed, bs * world), bs, rank, world)
        source(val_ids, 0)
    except ValueError as exc:
        raise CliError(f"--data: {exc}") from None
    dataset = "pydoc" if args.data is None else os.path.splitext(os.path.basename(args.data))[0]

    nnforge.seed(args.seed)
    model = job.build(spec, opts, tok.vocab_size)
    opt = nn.AdamW(nn.decay_groups(model, opts["weight_decay"]), lr=opts["lr"], betas=tuple(opts["betas"]),
                   clip_grad_norm=opts.get("clip_grad_norm"))
    model.flatten_parameters(opt.group_parameters())  # one fused AdamW call per group
    model.set_precision(args.precision or "fp32")  # after flattening: the bf16 copies share the flat layout
    dp = None if dist is None else dist.DataParallel(model, optimizer=opt, shard_optimizer=args.shard_optimizer)
    eval_train = lambda: source(train_ids, args.seed + 1)
    eval_val = lambda: source(val_ids, args.seed + 2)

    out = run_folder(args, dist, job.name, dataset)
    try:
        os.makedirs(out, exist_ok=True)
    except OSError as exc:
        raise CliError(f"--out: cannot create {out}: {exc}") from None
    steps, every, verbose = opts["steps"], opts["eval_every"], args.verbose
    # what a resumed run must share with the saved one for "continues bitwise" to hold
    config = {k: opts[k] for k in (*job.model_keys, "batch_size", "lr", "weight_decay")}
    config["betas"] = [float(b) for b in opts["betas"]]
    if opts.get("clip_grad_norm") is not None:
        config["clip_grad_norm"] = opts["clip_grad_norm"]
    ckpt = os.path.join(out, "checkpoint.npz")
    history = {"loss": [], "eval_step": [], "train_loss": [], "val_loss": []}
    start, carry = 0, None
    if args.resume is not None:
        start, history, carry = _resume(args.resume, job, model, opt, windows, config, tok, steps, args.precision)
    if verbose:
        print(f"nnforge train: {job.name} on {dataset} ({len(train_ids):,} train / {len(val_ids):,} val tokens, "
              f"vocab {tok.vocab_size}), {job.describe(opts)}, {model.num_parameters():,} parameters, AdamW lr "
              f"{opts['lr']:g}, batch {bs}, {steps} steps, {model.precision}, {nnforge.get_num_threads()} threads -> "
              f"{out}", flush=True)

    def save(step: int) -> None:  # at every evaluation, so an interrupted run can --resume
        (checkpoint.save if dist is None else dist.save_checkpoint)(ckpt, model, opt, extra={
            "model": job.name, "step": step, "config": json.dumps(config), "tokenizer": tok.to_json(),
            "history": json.dumps(history), "windows_rng": json.dumps(windows.state()), **_carry_entries(carry, windows, dist)})

    progress = _Progress(steps - start, verbose)
    t0 = time.perf_counter()
    tokens, step_s = bs * ctx * world, 0.0
    try:
        for step in range(start + 1, steps + 1):
            ts = time.perf_counter()
            loss, carry = _batch_loss(model, job, windows, bs, carry)
            model.backward()
            opt.step(zero_grad=True)
            step_s += time.perf_counter() - ts
            history["loss"].append(loss)
            progress.update(loss, (step - start) * tokens / max(step_s, 1e-9))  # mean over the steps so far
            if step % every == 0 or step == steps:
                tr = _estimate(model, job, eval_train, opts["eval_batches"], bs)
                va = _estimate(model, job, eval_val, opts["eval_batches"], bs)
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
        json.dump({"history": history, "options": {**opts, "model": job.name, "seed": args.seed, "dataset": dataset,
                                                   "precision": model.precision},
                   "training_s": elapsed, "step_ms": 1e3 * step_s / (steps - start)}, f, indent=1)
    note = _plot(history, os.path.join(out, "curves.png"))
    if verbose:
        n = steps - start
        print(f"{1e3 * step_s / n:.1f} ms/step, {n * tokens / step_s:,.0f} tokens/s (steps only; evaluation "
              f"{elapsed - step_s:.1f}s)")
    print(f"val loss {history['val_loss'][-1]:.4f} after {steps} steps, training {elapsed:.1f}s, {model.precision}",
          flush=True)
    print(f"sample:\n{sample}\n")
    print(f"checkpoint: {ckpt}" + ("" if note else f"\ncurves: {os.path.join(out, 'curves.png')}"))
    if note:
        print(f"note: {note}")
    return 0
