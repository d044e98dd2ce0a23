"""Text data for language models: tokenizers, the bundled corpus, random context windows.

    text = load_corpus()                       # pydoc_data.topics, or load_corpus("file.txt")
    tok = CharTokenizer.from_text(text)        # or ByteTokenizer() for arbitrary UTF-8
    train, val = train_val_split(tok.encode(text), val_fraction=0.1)
    x, y = TextWindows(train, context=64, seed=0).batch(12)   # (12, 64) int64 each, y = x shifted by one
    s = TextStream(train, context=64, batch_size=32, seed=0)  # consecutive windows (truncated BPTT)
    x, y = s.batch(32); s.restarted                           # True when the rows start again

Both window sources have state() / set_state(state) (JSON-able) so a resumed run
draws the same windows, and .restarted (TextWindows: always True, every window
starts fresh).
"""
from __future__ import annotations

import json
from typing import Optional

import numpy as np

from ._args import float_arg, int_arg

__all__ = ["ByteTokenizer", "CharTokenizer", "TextStream", "TextWindows", "load_corpus", "tokenizer_from_json",
           "train_val_split"]


def load_corpus(path: Optional[str] = None) -> str:
    """The text of a UTF-8 file, or (path None) Python's own documentation text: the
    values of pydoc_data.topics.topics joined in key order (~465,000 characters, present
    in every CPython install, so training works offline)."""
    if path is None:
        from pydoc_data import topics
        return "".join(topics.topics[key] for key in sorted(topics.topics))
    with open(path, encoding="utf-8") as f:
        return f.read()


class CharTokenizer:
    """One id per distinct character of a training text (ids in sorted character order)."""

    kind = "char"

    def __init__(self, chars):
        chars = list(chars)
        if not chars or len(set(chars)) != len(chars) or not all(isinstance(c, str) and len(c) == 1 for c in chars):
            raise ValueError("CharTokenizer needs a non-empty list of distinct single characters")
        self.chars = chars
        self._index = {c: i for i, c in enumerate(chars)}
        self._table = np.array(chars)

    @classmethod
    def from_text(cls, text: str) -> "CharTokenizer":
        return cls(sorted(set(text)))

    @property
    def vocab_size(self) -> int:
        return len(self.chars)

    def encode(self, text: str) -> np.ndarray:
        """int64 ids (len(text),); a character outside the vocabulary raises ValueError."""
        try:
            return np.fromiter((self._index[c] for c in text), dtype=np.int64, count=len(text))
        except KeyError as exc:
            raise ValueError(f"character {exc.args[0]!r} is not in this tokenizer's {self.vocab_size}-character "
                             f"vocabulary") from None

    def decode(self, ids) -> str:
        ids = np.asarray(ids, dtype=np.int64).ravel()
        if ids.size and (ids.min() < 0 or ids.max() >= self.vocab_size):
            raise ValueError(f"ids must be in [0, {self.vocab_size})")
        return "".join(self._table[ids].tolist())

    def to_json(self) -> str:
        return json.dumps({"kind": self.kind, "chars": "".join(self.chars)})


class ByteTokenizer:
    """UTF-8 bytes as ids 0..255: any text, no vocabulary to store. decode() replaces a
    byte sequence that is not valid UTF-8 (e.g. a sample cut mid-character) with U+FFFD."""

    kind = "byte"
    vocab_size = 256

    def encode(self, text: str) -> np.ndarray:
        return np.frombuffer(text.encode("utf-8"), dtype=np.uint8).astype(np.int64)

    def decode(self, ids) -> str:
        ids = np.asarray(ids, dtype=np.int64).ravel()
        if ids.size and (ids.min() < 0 or ids.max() > 255):
            raise ValueError("byte ids must be in [0, 256)")
        return ids.astype(np.uint8).tobytes().decode("utf-8", errors="replace")

    def to_json(self) -> str:
        return json.dumps({"kind": self.kind})


def tokenizer_from_json(text: str):
    """The tokenizer a to_json() string describes."""
    spec = json.loads(text)
    if spec.get("kind") == "char":
        return CharTokenizer(list(spec["chars"]))
    if spec.get("kind") == "byte":
        return ByteTokenizer()
    raise ValueError(f"unknown tokenizer kind {spec.get('kind')!r}")


def train_val_split(ids, val_fraction: float = 0.1) -> tuple[np.ndarray, np.ndarray]:
    """First (1 - val_fraction) of the ids for training, the rest for validation
    (contiguous, as nanoGPT does: windows never straddle the two)."""
    ids = np.asarray(ids)
    val_fraction = float_arg(val_fraction, "val_fraction", low=0.0, high=1.0, low_open=True, high_open=True)
    cut = int(round(len(ids) * (1.0 - val_fraction)))
    if cut < 2 or len(ids) - cut < 2:
        raise ValueError(f"{len(ids)} tokens are too few to split with val_fraction={val_fraction}")
    return ids[:cut], ids[cut:]


class TextWindows:
    """Random windows of a token stream: batch(n) -> (x, y), both (n, context) int64,
    y[i, t] the token after x[i, t] in the stream (so y[:, :-1] == x[:, 1:]). Windows start
    at uniform positions drawn from a generator seeded with `seed` (reproducible)."""

    def __init__(self, ids, context: int, seed: Optional[int] = None):
        self.ids = np.ascontiguousarray(ids, dtype=np.int64)
        self.context = int_arg(context, "context", min=1, op="TextWindows")
        if self.ids.ndim != 1 or len(self.ids) < self.context + 1:
            raise ValueError(f"TextWindows needs a 1-D stream of more than context={self.context} tokens, "
                             f"got shape {self.ids.shape}")
        self.rng = np.random.default_rng(seed)
        self._offsets = np.arange(self.context + 1)

    restarted = True  # no window continues another

    def state(self) -> dict:
        return self.rng.bit_generator.state

    def set_state(self, state: dict) -> None:
        self.rng.bit_generator.state = state

    def batch(self, batch_size: int) -> tuple[np.ndarray, np.ndarray]:
        starts = self.rng.integers(0, len(self.ids) - self.context, size=int_arg(batch_size, "batch_size", min=0))
        w = self.ids[starts[:, None] + self._offsets]              # (n, context + 1)
        return np.ascontiguousarray(w[:, :-1]), np.ascontiguousarray(w[:, 1:])


class TextStream:
    """Consecutive windows for truncated backpropagation through time: the stream is cut
    into batch_size equal rows and batch() returns the next `context` tokens of every row
    (x, y both (batch_size, context) int64, y the token after x), so row b of a batch
    continues row b of the previous one and a model may carry its state across them.
    When the rows run out a new pass starts, at an offset in [0, context) drawn from a
    generator seeded with `seed` (each pass cuts the windows elsewhere); .restarted is
    True for the first batch of every pass (the carried state must be reset)."""

    def __init__(self, ids, context: int, batch_size: int, seed: Optional[int] = None):
        self.ids = np.ascontiguousarray(ids, dtype=np.int64)
        self.context = int_arg(context, "context", min=1)
        self.batch_size = int_arg(batch_size, "batch_size", min=1)
        if self.ids.ndim != 1 or self._windows(self.context - 1) < 1:
            raise ValueError(f"TextStream needs a 1-D stream of at least (batch_size + 1) * context = "
                             f"{(self.batch_size + 1) * self.context} tokens (batch_size={self.batch_size}, "
                             f"context={self.context}), got shape {self.ids.shape}")
        self.rng = np.random.default_rng(seed)
        self._offset, self._next = 0, None  # pass offset, index of the next window (None: start a pass)
        self.restarted = True

    def _row(self, offset: int) -> int:
        return (len(self.ids) - 1 - offset) // self.batch_size

    def _windows(self, offset: int) -> int:
        return self._row(offset) // self.context

    def state(self) -> dict:
        return {"rng": self.rng.bit_generator.state, "offset": self._offset, "next": self._next}

    def set_state(self, state: dict) -> None:
        self.rng.bit_generator.state = state["rng"]
        self._offset, self._next = int(state["offset"]), state["next"]

    def batch(self, batch_size: Optional[int] = None) -> tuple[np.ndarray, np.ndarray]:
        if batch_size is not None and int_arg(batch_size, "batch_size", min=1) != self.batch_size:
            raise ValueError(f"this TextStream has {self.batch_size} rows, asked for a batch of {batch_size}")
        self.restarted = self._next is None or self._next >= self._windows(self._offset)
        if self.restarted:
            self._offset, self._next = int(self.rng.integers(0, self.context)), 0
        starts = self._offset + np.arange(self.batch_size) * self._row(self._offset) + self._next * self.context
        w = self.ids[starts[:, None] + np.arange(self.context + 1)]          # (batch_size, context + 1)
        self._next += 1
        return np.ascontiguousarray(w[:, :-1]), np.ascontiguousarray(w[:, 1:])
