"""The FP32 peak behind every table's "% peak" column: measured on this CPU for the
active ISA (nnforge._core.cpu_peak: FMA issue rate x lanes x threads x clock), or the
--peak GFLOPS given on the command line."""
from __future__ import annotations

from typing import Optional


def cpu_peak(isa: Optional[str] = None) -> dict:
    """{isa, flops_per_cycle_per_core, cores, clock_ghz, peak_gflops, *_source, ...} for
    `isa` (default: the active one). Measured once per ISA and thread count per process
    (~0.1 s), then cached."""
    from nnforge import _core
    return dict(_core.cpu_peak(isa or ""))


def resolve(override: Optional[float]) -> tuple[Optional[float], str]:
    """(peak GFLOP/s or None when unknown, the header text saying where it came from)."""
    if override is not None:
        return float(override), f"peak={override:g} GFLOP/s (--peak)"
    p = cpu_peak()
    if p["peak_gflops"] <= 0:
        return None, f"peak=? ({p['clock_source']}; pass --peak GFLOPS)"
    return p["peak_gflops"], (f"peak={p['peak_gflops']:.0f} GFLOP/s ({p['isa']}: "
                              f"{p['flops_per_cycle_per_core']} FLOP/cycle x {p['cores']} cores x "
                              f"{p['clock_ghz']:.2f} GHz measured)")


def add_peak_argument(parser) -> None:
    parser.add_argument("--peak", type=float, default=None, metavar="GFLOPS",
                        help="FP32 peak GFLOP/s for the %%-of-peak column (default: measured on this CPU)")
