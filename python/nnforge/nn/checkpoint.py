"""Checkpoints: model + optimizer (+ schedule, RNG, extra values) in one .npz file.

save() writes atomically: a temp file in the target folder (".NAME.nnforge-tmp-PID-XXXX"),
flushed and fsync'ed, then os.replace()d over the target, so a save killed at any moment
leaves the previous checkpoint intact. The temp files of saves that were killed are
removed by the next save into that folder (only names of this form, and only when their
process is gone or the file is a day old).

Loading is all or nothing. read() parses the archive with a bounded reader (nn/_npz.py:
every .npy header checked against the member's real size before anything is allocated,
no pickles) and checks the metadata; load() then checks every entry against the model,
optimizer and schedule (each present, none extra, shapes and dtypes equal, step counts
non-negative ints, hyper-parameters finite and in their domain, the RNG state valid) and
only then assigns them all. Any fault is one CheckpointError (a ValueError) naming the
file and the entry, with nothing modified.

Keys: "model/<param>", "optim/<entry>", "schedule/<entry>", "extra/<name>", "meta/...".
With the optimizer state, schedule and nnforge's RNG state restored, a resumed run
continues exactly (bitwise) as an uninterrupted one.
"""
from __future__ import annotations

import json
import os
import re
import secrets
import time
from typing import Callable, Optional

import numpy as np

from .. import _random
from ._npz import NpzError, read_npz
from . import _state
from ._state import StateEntryError
from .module import PRECISIONS

__all__ = ["CheckpointError", "load", "read", "remove_stale_temps", "save"]

FORMAT_VERSION = 1
_SECTIONS = ("model/", "optim/", "schedule/", "extra/")
_META_TEXT = ("meta/model_class", "meta/optimizer_class", "meta/schedule_class", "meta/rng", "meta/precision")
_TMP_MARK = ".nnforge-tmp-"
_TMP_NAME = re.compile(r"^\..+" + re.escape(_TMP_MARK) + r"(\d+)-[0-9a-f]+$")
_STALE_AGE_S = 24 * 3600.0  # a temp file this old is debris even if its PID is alive again (reused)


class CheckpointError(ValueError):
    """The file is not a loadable nnforge checkpoint or does not match the objects given."""


def _check_plain(key: str, arr: np.ndarray) -> np.ndarray:
    if arr.dtype.hasobject:
        raise CheckpointError(f"checkpoint entry '{key}' is an object array; only plain numeric/string arrays "
                              f"can be saved (pickled objects are never written or loaded)")
    return arr


def _rng_state_json() -> str:
    return json.dumps(_random.generator().bit_generator.state)


def _plan_rng(text: str) -> Callable[[], None]:
    """Check a saved bit-generator state on a scratch generator of nnforge's kind; returns
    the assignment to nnforge's generator."""
    gen = _random.generator()
    kind = type(gen.bit_generator)
    try:
        state = json.loads(text)
    except ValueError:
        raise StateEntryError("rng", "is not JSON") from None
    if not isinstance(state, dict) or state.get("bit_generator") != kind.__name__:
        got = state.get("bit_generator") if isinstance(state, dict) else type(state).__name__
        raise StateEntryError("rng", f"holds a {got} state, nnforge uses {kind.__name__}")
    try:
        kind().state = state
    except (ValueError, TypeError, KeyError, OverflowError) as exc:
        raise StateEntryError("rng", f"is not a valid {kind.__name__} state ({exc})") from None

    def commit() -> None:
        gen.bit_generator.state = state
    return commit


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # e.g. another user's process: alive
        return True
    return True


def remove_stale_temps(folder) -> list[str]:
    """Delete what saves killed mid-write left in `folder`: files named like save()'s temp
    files whose process is gone (or that are a day old). Another live process's temp file
    is left alone. Returns the paths removed."""
    removed = []
    now = time.time()
    try:
        entries = list(os.scandir(folder))
    except OSError:
        return removed
    for entry in entries:
        m = _TMP_NAME.match(entry.name)
        if m is None:
            continue
        try:
            if not entry.is_file(follow_symlinks=False):
                continue
            pid = int(m.group(1))
            live = pid == os.getpid() or _pid_alive(pid)  # ours: another thread's save in progress
            if live and now - entry.stat(follow_symlinks=False).st_mtime < _STALE_AGE_S:
                continue
            os.unlink(entry.path)
            removed.append(entry.path)
        except OSError:  # raced with its owner or another cleaner: nothing to do
            continue
    return removed


def save(path, model, optimizer=None, extra: Optional[dict] = None, *, schedule=None,
         include_rng: bool = True, state: Optional[dict] = None) -> str:
    """Write model parameters/buffers, optimizer state, schedule state, nnforge's RNG
    state and `extra` ({name: number, string or array}) to `path` atomically.
    state: the "model/" entries to write instead of model.state_dict() (an encoded form,
    e.g. nnforge.compress's, that its reader decodes before load). Returns the path."""
    path = os.fspath(path)
    arrays: dict[str, np.ndarray] = {"meta/format_version": np.array(FORMAT_VERSION, dtype=np.int64),
                                     "meta/model_class": np.array(type(model).__name__)}
    if getattr(model, "precision", "fp32") != "fp32":  # Module.set_precision; absent = fp32
        arrays["meta/precision"] = np.array(model.precision)
    for name, value in (model.state_dict() if state is None else state).items():
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

    folder, name = os.path.split(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    remove_stale_temps(folder)
    tmp = os.path.join(folder, f".{name}{_TMP_MARK}{os.getpid()}-{secrets.token_hex(4)}")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
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


def _error(path: str, exc: ValueError, prefix: str = "") -> CheckpointError:
    """One wording: the file, the entry (with its section prefix) and why."""
    if isinstance(exc, (StateEntryError, NpzError)) and exc.key is not None:
        return CheckpointError(f"checkpoint {path} entry '{prefix}{exc.key}' {exc.reason}")
    return CheckpointError(f"checkpoint {path}: {exc}")


def _check_meta(entries: dict) -> None:
    """The archive's own entries: a supported integer format version, text metadata,
    and nothing outside the known sections."""
    if "meta/format_version" not in entries:
        raise ValueError("is an .npz file but not an nnforge checkpoint (no meta/format_version)")
    version = _state.int_entry(entries, "meta/format_version", minimum=1)
    if version > FORMAT_VERSION:
        raise StateEntryError("meta/format_version", f"is {version}; this nnforge reads up to {FORMAT_VERSION}")
    for key in entries:
        if key == "meta/format_version":
            continue
        if key in _META_TEXT:
            value = entries[key]
            if value.ndim != 0 or value.dtype.kind != "U":
                raise StateEntryError(key, f"must be a text scalar, got dtype {value.dtype} shape {value.shape}")
        elif not key.startswith(_SECTIONS) or key.endswith("/"):
            raise StateEntryError(key, "is unexpected: not a model/, optim/, schedule/, extra/ or known meta/ "
                                       "entry")


def read(path) -> dict[str, np.ndarray]:
    """All entries of a checkpoint as {key: array}, read by the bounded reader (no
    pickles, every header checked against the file) with its metadata checked."""
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise CheckpointError(f"checkpoint {path} does not exist")
    try:
        with open(path, "rb") as fh:
            magic = fh.read(6)
    except OSError as exc:
        raise CheckpointError(f"checkpoint {path} cannot be read ({exc})") from None
    if magic == b"\x93NUMPY":
        raise CheckpointError(f"checkpoint {path} is a single .npy array, not an .npz archive")
    try:
        entries = read_npz(path)
    except NpzError as exc:
        if exc.key is None:
            raise CheckpointError(f"checkpoint {path} is not a valid .npz file ({exc.reason})") from None
        raise _error(path, exc) from None
    except OSError as exc:
        raise CheckpointError(f"checkpoint {path} cannot be read ({exc})") from None
    try:
        _check_meta(entries)
    except StateEntryError as exc:
        raise _error(path, exc) from None
    except ValueError as exc:
        raise CheckpointError(f"{path} {exc}") from None
    return entries


def _section(entries: dict, prefix: str) -> dict:
    n = len(prefix)
    return {k[n:]: v for k, v in entries.items() if k.startswith(prefix)}


def load(path, model, optimizer=None, *, schedule=None, restore_rng: bool = True,
         entries: Optional[dict] = None) -> dict:
    """Load a checkpoint into model (and optimizer, schedule, nnforge's RNG).

    Returns the `extra` dict (0-d arrays become Python scalars/strings). Every entry is
    checked before anything is assigned: on any fault a CheckpointError names the file
    and the entry, and nothing is modified. `entries` (what read(path) returned) saves
    reading the file again when the caller has already looked at it.
    """
    path = os.fspath(path)
    if entries is None:
        entries = read(path)
    sections = {prefix: _section(entries, prefix) for prefix in _SECTIONS}
    if optimizer is not None:
        if not sections["optim/"]:
            raise CheckpointError(f"checkpoint {path} has no optimizer state")
        saved = str(entries.get("meta/optimizer_class", ""))
        if saved and saved != type(optimizer).__name__:
            raise CheckpointError(f"checkpoint {path} holds {saved} state, cannot load it into "
                                  f"{type(optimizer).__name__}")
    if schedule is not None and not sections["schedule/"]:
        raise CheckpointError(f"checkpoint {path} has no schedule state")

    # plan every load (each checks all its entries), then commit them all: a commit only
    # assigns checked values, so a failure can only happen before anything changed
    targets = [("model/", model), ("optim/", optimizer), ("schedule/", schedule)]
    commits = []
    for prefix, obj in targets:
        if obj is None:
            continue
        try:
            commits.append(obj._plan_load(sections[prefix], casting="equiv"))
        except ValueError as exc:
            raise _error(path, exc, prefix) from None
    precision = str(entries.get("meta/precision", "fp32"))
    if hasattr(model, "set_precision"):
        if precision not in PRECISIONS:
            raise _error(path, StateEntryError("meta/precision", f"must be one of {list(PRECISIONS)}, got "
                                                                 f"{precision!r}")) from None
        commits.append(lambda: model.set_precision(precision))  # after the weights: copies from them
    if restore_rng and "meta/rng" in entries:
        try:
            commits.append(_plan_rng(str(entries["meta/rng"])))
        except ValueError as exc:
            raise _error(path, exc, "meta/") from None
    for commit in commits:
        commit()

    extra = {}
    for name, value in sections["extra/"].items():
        extra[name] = value.item() if value.ndim == 0 else value
    return extra
