"""Kernel microbenchmarks behind `nnforge bench FAMILY` (shared with benchmarks/)."""
