"""One table for every benchmark family: case, shape, per library the time and the
rate (GFLOP/s or GB/s from the registry's flops() / bytes()), nnforge's rate over the
best peer's, and % of the FP32 peak (FLOP rows)."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional, Sequence

from ._timing import fmt, print_table

UNITS = {"flop": "GF/s", "byte": "GB/s"}


@dataclass
class Row:
    case: str
    shape: str
    work: float                          # FLOPs (unit "flop") or bytes (unit "byte") of one call
    seconds: dict                        # library -> best median seconds (None / absent: not run)
    unit: str = "flop"
    extra: dict = field(default_factory=dict)   # text of the table's extra columns

    def rate(self, lib: str) -> Optional[float]:
        t = self.seconds.get(lib)
        return None if t is None else self.work / t / 1e9

    def vs_best_peer(self, peers: Sequence[str]) -> Optional[float]:
        """nnforge's rate / the best peer's (> 1: nnforge faster)."""
        rates = [r for r in (self.rate(p) for p in peers) if r is not None]
        mine = self.rate("nnforge")
        return None if mine is None or not rates else mine / max(rates)


def _time_text(v: Optional[float], unit: str) -> str:
    """At least three significant digits in ms tables that mix 2 us GEMMs with 60 ms ones."""
    if v is None or unit != "ms":
        return fmt(v, ".1f")
    return fmt(v, ".2f" if v >= 1 else ".4f" if v < 0.1 else ".3f")


def print_rows(title: str, rows: Sequence[Row], libraries: Sequence[str], peak: Optional[float],
               extra_columns: Sequence[str] = (), tail_columns: Sequence[str] = ()) -> str:
    """libraries: "nnforge" first, then the peers; extra_columns follow the shape,
    tail_columns close the row (both read from Row.extra)."""
    units = {r.unit for r in rows}
    rate_label = UNITS[next(iter(units))] if len(units) == 1 else "rate"
    times = [r.seconds.get("nnforge") for r in rows if r.seconds.get("nnforge") is not None]
    tu, scale = ("us", 1e6) if times and max(times) < 1e-3 else ("ms", 1e3)
    peers = [lib for lib in libraries if lib != "nnforge"]
    headers = ["case", "shape", *extra_columns] + (["unit"] if rate_label == "rate" else [])
    for lib in libraries:
        headers += [f"{lib} {tu}", f"{lib} {rate_label}"]
    headers += ["nnf/best", "% peak", *tail_columns]
    out = []
    for r in rows:
        line = [r.case, r.shape, *(r.extra.get(c, "-") for c in extra_columns)]
        if rate_label == "rate":
            line.append(UNITS[r.unit])
        for lib in libraries:
            t = r.seconds.get(lib)
            line += [_time_text(None if t is None else t * scale, tu), fmt(r.rate(lib))]
        pk = r.rate("nnforge")
        line += [fmt(r.vs_best_peer(peers), ".2f"),
                 fmt(100.0 * pk / peak if (r.unit == "flop" and peak and pk is not None) else None, ".0f"),
                 *(r.extra.get(c, "-") for c in tail_columns)]
        out.append(line)
    return print_table(headers, out, title=title)
