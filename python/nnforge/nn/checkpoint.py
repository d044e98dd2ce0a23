"""Checkpoints: model + optimizer (+ schedule, RNG, extra values) in one .npz file.

save() writes atomically: a temp file in the target folder, flushed and fsync'ed, then
os.replace()d over the target, so a crash mid-save leaves the previous checkpoint
intact. load() reads with allow_pickle=False: a file holding an object array is refused
(loading never executes code). Everything is read and checked before anything is
written; if loading into the model/optimizer/schedule fails they are rolled back, so a
failed load changes nothing.

Keys: "model/<param>", "optim/<entry>", "schedule/<entry>", "extra/<name>", "meta/...".
With the optimizer state, schedule and nnforge's RNG state restored, a resumed run
continues exactly (bitwise) as an uninterrupted one.
"""
from __future__ import annotations

import json
import os
import tempfile
import zipfile
from typing import Optional

import numpy as np

from .. import _random

__all__ = ["CheckpointError", "load", "read", "save"]

FORMAT_VERSION = 1


class CheckpointError(ValueError):
    """The file is not a loadable nnforge checkpoint or does not match the objects given."""


def _check_plain(key: str, arr: np.ndarray) -> np.ndarray:
    if arr.dtype.hasobject:
        raise CheckpointError(f"checkpoint entry '{key}' is an object array; only plain numeric/string arrays "
                              f"can be saved (pickled objects are never written or loaded)")
    return arr


def _rng_state_json() -> str:
    return json.dumps(_random.generator().bit_generator.state)


def _restore_rng(text: str) -> None:
    state = json.loads(text)
    gen = _random.generator()
    if state.get("bit_generator") != type(gen.bit_generator).__name__:
        raise CheckpointError(f"checkpoint RNG is {state.get('bit_generator')}, nnforge uses "
                              f"{type(gen.bit_generator).__name__}")
    gen.bit_generator.state = state


def save(path, model, optimizer=None, extra: Optional[dict] = None, *, schedule=None,
         include_rng: bool = True) -> str:
    """Write model parameters/buffers, optimizer state, schedule state, nnforge's RNG
    state and `extra` ({name: number, string or array}) to `path` atomically.
    Returns the path."""
    path = os.fspath(path)
    arrays: dict[str, np.ndarray] = {"meta/format_version": np.array(FORMAT_VERSION, dtype=np.int64),
                                     "meta/model_class": np.array(type(model).__name__)}
    for name, value in model.state_dict().items():
        arrays[f"model/{name}"] = np.asarray(value)
    if optimizer is not None:
        arrays["meta/optimizer_class"] = np.array(type(optimizer).__name__)
        for name, value in optimizer.state_dict().items():
            arrays[f"optim/{name}"] = np.asarray(value)
    if schedule is not None:
        arrays["meta/schedule_class"] = np.array(type(schedule).__name__)
        for name, value in schedule.state_dict().items():
            arrays[f"schedule/{name}"] = np.asarray(value)
    if include_rng:
        arrays["meta/rng"] = np.array(_rng_state_json())
    for name, value in (extra or {}).items():
        arrays[f"extra/{name}"] = np.asarray(value)
    for key, arr in arrays.items():
        _check_plain(key, arr)

    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".tmp-", suffix=".npz", dir=folder)
    try:
        with os.fdopen(fd, "wb") as f:
            np.savez(f, **arrays)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
    try:  # make the rename itself durable (best effort: not every platform can open a folder)
        dfd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(dfd)
        finally:
            os.close(dfd)
    except OSError:
        pass
    return path


def read(path) -> dict[str, np.ndarray]:
    """All entries of a checkpoint as {key: array}, read with allow_pickle=False."""
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise CheckpointError(f"checkpoint {path} does not exist")
    try:
        # our own file handle: np.load leaks its handle when a truncated zip fails to open
        with open(path, "rb") as fh:
            npz = np.load(fh, allow_pickle=False)
            if not isinstance(npz, np.lib.npyio.NpzFile):
                raise CheckpointError(f"checkpoint {path} is a single .npy array, not an .npz archive")
            out = {}
            try:
                for key in npz.files:
                    try:
                        out[key] = npz[key]
                    except ValueError as exc:
                        if "allow_pickle" in str(exc):
                            raise CheckpointError(f"checkpoint {path} entry '{key}' is a pickled object array; "
                                                  f"refusing to load it (loading a checkpoint must never execute "
                                                  f"code)") from None
                        raise
            finally:
                npz.close()
    except CheckpointError:
        raise
    except (OSError, ValueError, EOFError, zipfile.BadZipFile, KeyError) as exc:
        raise CheckpointError(f"checkpoint {path} is not a valid .npz file ({type(exc).__name__}: {exc})") from None
    if "meta/format_version" not in out:
        raise CheckpointError(f"{path} is an .npz file but not an nnforge checkpoint (no meta/format_version)")
    version = int(out["meta/format_version"])
    if version > FORMAT_VERSION:
        raise CheckpointError(f"checkpoint {path} has format version {version}; this nnforge reads up to "
                              f"{FORMAT_VERSION}")
    return out


def _section(entries: dict, prefix: str) -> dict:
    n = len(prefix)
    return {k[n:]: v for k, v in entries.items() if k.startswith(prefix)}


def load(path, model, optimizer=None, *, schedule=None, restore_rng: bool = True) -> dict:
    """Load a checkpoint into model (and optimizer, schedule, nnforge's RNG).

    Returns the `extra` dict (0-d arrays become Python scalars/strings). On any
    mismatch a CheckpointError names the first offending entry (and both shapes)
    and nothing is modified.
    """
    path = os.fspath(path)
    entries = read(path)
    model_state = _section(entries, "model/")
    optim_state = _section(entries, "optim/")
    sched_state = _section(entries, "schedule/")
    if optimizer is not None:
        if not optim_state:
            raise CheckpointError(f"checkpoint {path} has no optimizer state")
        saved = str(entries.get("meta/optimizer_class", ""))
        if saved and saved != type(optimizer).__name__:
            raise CheckpointError(f"checkpoint {path} holds {saved} state, cannot load it into "
                                  f"{type(optimizer).__name__}")
    if schedule is not None and not sched_state:
        raise CheckpointError(f"checkpoint {path} has no schedule state")
    rng_text = str(entries["meta/rng"]) if restore_rng and "meta/rng" in entries else None

    # Snapshots for rollback: each load_state_dict validates before writing, but a later
    # one may still fail after an earlier one succeeded.
    backups = [(model, model.state_dict())]
    if optimizer is not None:
        backups.append((optimizer, optimizer.state_dict()))
    if schedule is not None:
        backups.append((schedule, schedule.state_dict()))
    try:
        model.load_state_dict(model_state)
        if optimizer is not None:
            optimizer.load_state_dict(optim_state)
        if schedule is not None:
            schedule.load_state_dict(sched_state)
        if rng_text is not None:
            _restore_rng(rng_text)
    except (ValueError, KeyError, TypeError) as exc:
        for obj, state in backups:
            obj.load_state_dict(state)
        if isinstance(exc, CheckpointError):
            raise
        raise CheckpointError(f"cannot load checkpoint {path}: {exc}") from None

    extra = {}
    for name, value in _section(entries, "extra/").items():
        extra[name] = value.item() if value.ndim == 0 else value
    return extra
