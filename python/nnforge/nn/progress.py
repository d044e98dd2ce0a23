"""Per-epoch progress display for fit(): a tqdm bar if tqdm is installed, else plain text.

verbose=0 prints nothing, 1 a bar (or one text line per epoch without tqdm), 2 one line
per epoch. The postfix (loss, metrics, samples/s) is refreshed at most every 0.2 s so
the display costs nothing measurable per batch.
"""
from __future__ import annotations

import sys
import time

__all__ = ["EpochProgress", "format_logs"]

_REFRESH_S = 0.2


def format_logs(logs: dict) -> str:
    parts = []
    for key, value in logs.items():
        if key == "lr":
            parts.append(f"lr {value:.3g}")
        elif key == "samples_per_s":
            parts.append(f"{value:,.0f} samples/s")
        elif isinstance(value, float):
            parts.append(f"{key} {value:.4f}")
    return " - ".join(parts)


def _tqdm():
    try:
        from tqdm import tqdm
    except ImportError:
        return None
    return tqdm


class EpochProgress:
    def __init__(self, epoch: int, epochs: int, total_batches: int, verbose: int, file=None):
        self.verbose = verbose
        self.file = file or sys.stderr
        self.prefix = f"epoch {epoch + 1}/{epochs}"
        self.t0 = time.perf_counter()
        self._last = self.t0
        self.bar = None
        if verbose == 1:
            tqdm = _tqdm()
            if tqdm is not None:
                self.bar = tqdm(total=total_batches, desc=self.prefix, unit="batch", file=self.file,
                                leave=True, dynamic_ncols=True, mininterval=_REFRESH_S)

    def update(self, n_batches: int, logs_fn) -> None:
        """n_batches done since the last call; logs_fn() builds the postfix only when shown."""
        if self.bar is None:
            return
        self.bar.update(n_batches)
        now = time.perf_counter()
        if now - self._last >= _REFRESH_S:
            self._last = now
            self.bar.set_postfix_str(format_logs(logs_fn()), refresh=False)

    def close(self, logs: dict) -> None:
        text = format_logs(logs)
        if self.bar is not None:
            self.bar.set_postfix_str(text, refresh=False)
            self.bar.close()
            self.bar = None
        elif self.verbose in (1, 2):
            print(f"{self.prefix} - {time.perf_counter() - self.t0:.1f}s - {text}", file=self.file, flush=True)

    # `with EpochProgress(...) as p:` closes the bar where it stands if the epoch is cut
    # short (an exception, Ctrl-C) before close(logs)
    def __enter__(self) -> "EpochProgress":
        return self

    def __exit__(self, *exc) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None
