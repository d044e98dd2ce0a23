"""`nnforge generate RUN_FOLDER_OR_CHECKPOINT --prompt "..." --tokens 300`: sample text
from a language model trained by `nnforge train --model gpt` (with its key/value cache) or
`--model lstm` (one LSTM step per token on the carried state)."""
from __future__ import annotations

import argparse
import os

from .errors import CliError
from .train_text import build_from_checkpoint

__all__ = ["add_arguments", "run"]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("path", help="run folder (holding checkpoint.npz) or a checkpoint.npz")
    parser.add_argument("--prompt", default="\n", help="text to continue (default a newline)")
    parser.add_argument("--tokens", type=int, default=300, help="new tokens to sample (default 300)")
    parser.add_argument("--temperature", type=float, default=0.8, help="0 = greedy (default 0.8)")
    parser.add_argument("--top-k", type=int, default=None, help="sample among the k most likely tokens")
    parser.add_argument("--seed", type=int, default=0, help="sampling seed (default 0)")


def run(args) -> int:
    path = os.path.join(args.path, "checkpoint.npz") if os.path.isdir(args.path) else args.path
    if args.tokens < 0:
        raise CliError(f"--tokens must be >= 0, got {args.tokens}")
    if not args.temperature >= 0:
        raise CliError(f"--temperature must be >= 0, got {args.temperature}")
    if args.top_k is not None and args.top_k < 1:
        raise CliError(f"--top-k must be >= 1, got {args.top_k}")
    if not args.prompt:
        raise CliError("--prompt must not be empty")
    model, tok, _ = build_from_checkpoint(path)
    try:
        ids = tok.encode(args.prompt)
    except ValueError as exc:
        raise CliError(f"--prompt: {exc}") from None
    out = model.generate(ids, args.tokens, temperature=args.temperature, top_k=args.top_k, seed=args.seed)
    print(tok.decode(out), flush=True)
    return 0
