"""Run folders of `nnforge train` (every model): where checkpoint, history and plots go."""
from __future__ import annotations

import os
import time

__all__ = ["out_dir"]


def out_dir(args, model_name: str, dataset: str) -> str:
    """--out, else the folder of --resume's checkpoint, else ./nnforge_runs/<model>-<dataset>-<time>."""
    if args.out is not None:
        return args.out
    if getattr(args, "resume", None) is not None:  # keep writing next to the checkpoint we continue from
        return os.path.dirname(os.path.abspath(args.resume))
    stamp = time.strftime("%Y%m%d-%H%M%S")
    return os.path.join("nnforge_runs", f"{model_name}-{dataset}-{stamp}")
