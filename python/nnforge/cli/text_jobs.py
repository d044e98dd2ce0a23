"""What differs between the language models of `nnforge train` (cli/train_text.py runs
them all): their own options, how a model is built from the options, and how batches
come (random windows, or consecutive windows with a carried state)."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from .errors import CliError

__all__ = ["JOBS", "TextJob", "text_models"]


@dataclass(frozen=True)
class TextJob:
    name: str                         # --model
    options: tuple                    # its own argparse dests (besides train_text.SHARED_OPTIONS)
    positive: tuple                   # its own integer options that must be >= 1
    model_keys: tuple                 # the options build() reads (saved in the checkpoint's config)
    build: Callable                   # (spec, opts, vocab_size) -> model with loss / backward / generate
    describe: Callable               # opts -> the model part of the start line
    stream: bool                      # True: TextStream windows, state carried across them (truncated BPTT)
    check: Callable = lambda opts: None  # further option checks (raise CliError)
    bf16: bool = True                 # --precision bf16 allowed (its GEMMs honour Module.set_precision)


def _gpt_check(opts: dict) -> None:
    if opts["n_embd"] % opts["n_head"]:
        raise CliError(f"--n-embd {opts['n_embd']} must be a multiple of --n-head {opts['n_head']}")


GPT_JOB = TextJob(
    "gpt", ("n_head",), ("n_head",), ("context", "n_layer", "n_head", "n_embd", "dropout"),
    lambda spec, o, vocab: spec.build((o["context"],), vocab, n_layer=o["n_layer"], n_head=o["n_head"],
                                      n_embd=o["n_embd"], dropout=o["dropout"]),
    lambda o: f"{o['n_layer']} layers x {o['n_head']} heads x {o['n_embd']}, context {o['context']}",
    stream=False, check=_gpt_check)

LSTM_JOB = TextJob(
    "lstm", ("hidden",), ("hidden",), ("context", "n_layer", "n_embd", "hidden", "dropout"),
    lambda spec, o, vocab: spec.build((o["context"],), vocab, n_layer=o["n_layer"], n_embd=o["n_embd"],
                                      hidden=o["hidden"], dropout=o["dropout"]),
    lambda o: (f"embedding {o['n_embd']}, {o['n_layer']} x LSTM {o['hidden']}, truncated BPTT over "
               f"{o['context']}-token windows, grad clip {o['clip_grad_norm']:g}"),
    stream=True, bf16=False)  # the fused LSTM kernels (ops.lstm) compute in float32 only

JOBS = {job.name: job for job in (GPT_JOB, LSTM_JOB)}


def text_models() -> str:
    """'--model gpt or --model lstm' (for messages)."""
    return " or ".join(f"--model {n}" for n in JOBS)
