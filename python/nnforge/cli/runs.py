"""Run folders of `nnforge train` (every model): where checkpoint, history and plots go."""
from __future__ import annotations

import json
import os
import time

from .errors import CliError

__all__ = ["check_resume_precision", "out_dir", "saved_int", "saved_json"]


def out_dir(args, model_name: str, dataset: str) -> str:
    """--out, else the folder of --resume's checkpoint, else ./nnforge_runs/<model>-<dataset>-<time>."""
    if args.out is not None:
        return args.out
    if getattr(args, "resume", None) is not None:  # keep writing next to the checkpoint we continue from
        return os.path.dirname(os.path.abspath(args.resume))
    stamp = time.strftime("%Y%m%d-%H%M%S")
    return os.path.join("nnforge_runs", f"{model_name}-{dataset}-{stamp}")


def _saved_scalar(path: str, entries: dict, key: str):
    if key not in entries:
        raise CliError(f"checkpoint {path} has no entry '{key}'")
    value = entries[key]
    if value.ndim != 0:
        raise CliError(f"checkpoint {path} entry '{key}' must be a scalar, got shape {value.shape}")
    return value


def saved_int(path: str, entries: dict, key: str) -> int:
    """A non-negative integer extra value of a checkpoint (checkpoint.read's entries)."""
    value = _saved_scalar(path, entries, key)
    if value.dtype.kind not in "iu" or int(value) < 0:
        raise CliError(f"checkpoint {path} entry '{key}' must be an integer >= 0, got {value!r}")
    return int(value)


def saved_json(path: str, entries: dict, key: str, kind: type = dict):
    """A JSON text extra value of a checkpoint, decoded, of the given JSON kind (dict, list)."""
    value = _saved_scalar(path, entries, key)
    try:
        out = json.loads(str(value)) if value.dtype.kind == "U" else None
    except ValueError:
        out = None
    if not isinstance(out, kind):
        raise CliError(f"checkpoint {path} entry '{key}' must be a JSON {kind.__name__}")
    return out


def check_resume_precision(path: str, entries: dict, asked) -> None:
    """A resumed run trains in its checkpoint's precision (meta/precision, absent = fp32;
    checkpoint.load restores it). asked (--precision, None when not given) must agree: a
    run never silently changes its arithmetic."""
    saved = str(entries.get("meta/precision", "fp32"))
    if asked is not None and asked != saved:
        raise CliError(f"--resume: {path} was trained with --precision {saved}, this run asks for --precision "
                       f"{asked} (drop --precision to keep {saved})")
