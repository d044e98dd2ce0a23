// FP32 peak of this CPU for the active ISA, measured rather than looked up.
//
// peak = FLOP/cycle/core x cores x clock, where
//   FLOP/cycle/core = 2 x vector lanes x FMA issues per cycle; the issue rate is timed
//                     with 12 independent FMA chains (enough to hide a 4-cycle latency
//                     on 2 pipes), so one vs two 512-bit FMA pipes shows up directly;
//   clock           = a chain of dependent integer adds (1-cycle latency on every x86 and
//                     ARM core we know of) timed for ~20 ms, lowered to issue rate / pipes
//                     when wide FMAs run at a lower clock than scalar code;
//   cores           = the threads nnforge's kernels use (get_num_threads()).
// The probes run on every kernel thread at once (all cores loaded). Measured once per
// (ISA, thread count) per process.
#pragma once
#include <cstdint>
#include <string>

#include "common/cpu_features.h"

namespace nnf {

struct CpuPeak {
  Isa isa = Isa::generic;
  int lanes = 1;                   // float32 lanes per vector of the probed ISA
  double issues_per_cycle = 0.0;   // measured vector FMA (or mul+add pair) issues per cycle
  int flops_per_cycle = 0;         // per core: 2 x lanes x round(issues_per_cycle)
  double add_clock_ghz = 0.0;      // from the dependent-add chain; 0 without a clock probe
  double clock_ghz = 0.0;          // the FMA clock: min(add clock, issue rate / pipes)
  int cores = 1;
  double peak_gflops = 0.0;        // 0 when the clock is unknown
  std::string clock_source;        // how clock_ghz was obtained
  std::string flops_source;        // how flops_per_cycle was obtained
};

// Measures (first call per ISA and thread count) or returns the cached figures.
CpuPeak cpu_peak(Isa isa);

// Per-ISA probes: seconds taken by `iters` iterations of 12 independent vector FMA
// chains (12 * iters FMA instructions); the result is summed into *sink so the loop
// cannot be removed.
namespace avx512 { double fma_probe_seconds(int64_t iters, float* sink); }
namespace avx2 { double fma_probe_seconds(int64_t iters, float* sink); }

}  // namespace nnf
