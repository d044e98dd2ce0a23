"""Kernel microbenchmarks behind `nnforge bench FAMILY` (shared with benchmarks/).

Every family prints one kind of table (bench._table): time and GFLOP/s or GB/s per
library from the op registry's flops() / bytes(), nnforge over the best peer, and %
of the FP32 peak that cpu_peak() measures on this CPU (or --peak GFLOPS).
"""
from ._peak import cpu_peak

__all__ = ["cpu_peak"]
