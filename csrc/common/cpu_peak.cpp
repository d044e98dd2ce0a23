// Measured FP32 peak (see cpu_peak.h for the method). Every probe is short (~20-25 ms),
// timed in six runs, and the fastest run kept: a run preempted on a shared machine only
// ever looks slower, never faster.
#include "common/cpu_peak.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <map>
#include <mutex>
#include <stdexcept>
#include <utility>
#include <vector>

#include <omp.h>

#include "common/fma_probe_impl.h"
#include "common/threads.h"

#if defined(__SSE2__)
#include <emmintrin.h>
#endif

namespace nnf {
namespace {

// The generic path is compiled for the baseline ISA (SSE2 on x86-64: 4 lanes, no FMA),
// so its "issue" is a dependent mul + add pair.
struct GenericOps {
#if defined(__SSE2__)
  using V = __m128;
  static constexpr int kLanes = 4;
  static V set1(float x) { return _mm_set1_ps(x); }
  static V madd(V a, V m, V c) { return _mm_add_ps(_mm_mul_ps(a, m), c); }
  static float sum(V a) {
    alignas(16) float l[4];
    _mm_store_ps(l, a);
    return l[0] + l[1] + l[2] + l[3];
  }
#else
  using V = float;
  static constexpr int kLanes = 1;
  static V set1(float x) { return x; }
  static V madd(V a, V m, V c) { return a * m + c; }
  static float sum(V a) { return a; }
#endif
};

double generic_probe_seconds(int64_t iters, float* sink) {
  return fma_probe_seconds_impl<GenericOps>(iters, sink);
}

// 32 dependent register-register integer adds per iteration: 32 cycles, the loop counter
// runs alongside. Register, not immediate, operands: newer cores fold chains of
// add-immediate in the renamer and run several per cycle.
constexpr int kAddsPerIter = 32;
bool have_clock_probe() {
#if defined(__x86_64__) || defined(__aarch64__)
  return true;
#else
  return false;
#endif
}

double add_chain_seconds(int64_t iters, float* sink) {
  uint64_t x = 0, one = 1;
  const auto t0 = std::chrono::steady_clock::now();
  for (int64_t i = 0; i < iters; ++i) {
#if defined(__x86_64__)
    asm volatile(".rept 32\n\taddq %1, %0\n\t.endr" : "+r"(x) : "r"(one));
#elif defined(__aarch64__)
    asm volatile(".rept 32\n\tadd %0, %0, %1\n\t.endr" : "+r"(x) : "r"(one));
#endif
  }
  const auto t1 = std::chrono::steady_clock::now();
  *sink += float(x & 1);
  return std::chrono::duration<double>(t1 - t0).count();
}

// Iterations of `probe` per second: calibrate to ~4 ms (which also lets the core settle
// into its clock for this instruction mix), then the best of 6 runs of about target_s / 6
// each (short runs: on a shared machine some of them escape preemption).
template <class Probe>
double iterations_per_second(Probe probe, double target_s) {
  float sink = 0.f;
  int64_t iters = 1 << 12;
  double t = probe(iters, &sink);
  while (t < 4e-3 && iters < (int64_t(1) << 40)) {
    iters *= 4;
    t = probe(iters, &sink);
  }
  const int64_t n = std::max<int64_t>(1, int64_t(double(iters) * (target_s / 6.0) / std::max(t, 1e-9)));
  double best = 1e300;
  for (int r = 0; r < 6; ++r) best = std::min(best, probe(n, &sink));
  volatile float keep = sink;  // the accumulated results stay observable
  (void)keep;
  return double(n) / std::max(best, 1e-12);
}

struct Vector {
  int lanes;
  double (*probe)(int64_t, float*);
  const char* what;
};

Vector vector_for(Isa isa) {
  // Not a dispatch stub on purpose: the caller names the level to measure (a bench may
  // report the peak of a level other than the active one), and stubs answer only
  // "which implementation runs now".
  switch (isa) {
    case Isa::avx512: return {16, &avx512::fma_probe_seconds, "512-bit FMA"};
    case Isa::avx2: return {8, &avx2::fma_probe_seconds, "256-bit FMA"};
    default: return {GenericOps::kLanes, &generic_probe_seconds,
                     GenericOps::kLanes == 4 ? "128-bit mul+add" : "scalar mul+add"};
  }
}

double measured_clock_hz() {
  if (!have_clock_probe()) return 0.0;
  return kAddsPerIter * iterations_per_second(&add_chain_seconds, 0.02);
}

}  // namespace

CpuPeak cpu_peak(Isa isa) {
  if (!cpu_supports(isa))
    throw std::invalid_argument(std::string("cpu_peak: this CPU lacks ") + isa_name(isa));
  const int cores = get_num_threads();
  static std::mutex mu;
  static std::map<std::pair<Isa, int>, CpuPeak> cache;
  std::lock_guard<std::mutex> lock(mu);
  auto it = cache.find({isa, cores});
  if (it == cache.end()) {
    CpuPeak p;
    p.isa = isa;
    p.cores = cores;
    const Vector v = vector_for(isa);
    p.lanes = v.lanes;
    // Every kernel thread probes at once, so the figures are those of all cores under
    // load (all-core turbo; two threads sharing one core's FMA pipes show up as half
    // the rate). FMA first: it also wakes the cores from any idle clock.
    std::vector<double> issues(cores, 0.0), hz(cores, 0.0);
    auto probe = [&](int t) {
      issues[t] = 12.0 * iterations_per_second(v.probe, 0.025);
      hz[t] = measured_clock_hz();
    };
    if (cores == 1) {
      probe(0);  // no parallel region: also safe in a forked child (no libgomp pool there)
    } else {
#pragma omp parallel num_threads(cores)
      probe(omp_get_thread_num());
    }
    // The best thread: a thread that lost its core to another process only looks slower.
    const double issues_per_s = *std::max_element(issues.begin(), issues.end());
    const double clock = *std::max_element(hz.begin(), hz.end());
    if (clock > 0) {
      p.add_clock_ghz = clock / 1e9;
      p.issues_per_cycle = issues_per_s / clock;
      const int pipes = std::max(1, int(std::lround(p.issues_per_cycle)));
      p.flops_per_cycle = 2 * v.lanes * pipes;
      // The clock the FMA pipes really run at: wide vectors may lower it below the
      // integer-add clock (AVX-512 frequency licences), so the peak stays a true bound.
      p.clock_ghz = std::min(clock, issues_per_s / pipes) / 1e9;
      char buf[200];
      std::snprintf(buf, sizeof buf, "measured: %s issue rate / %d pipe(s) (dependent-add clock %.2f GHz)",
                    v.what, pipes, p.add_clock_ghz);
      p.clock_source = buf;
      std::snprintf(buf, sizeof buf, "%s: %.2f issues/cycle measured -> %d pipe(s) x %d lanes x 2",
                    v.what, p.issues_per_cycle, pipes, v.lanes);
      p.flops_source = buf;
    } else {
      // No clock probe on this architecture: assume one pipe, leave the clock unknown.
      p.flops_per_cycle = 2 * v.lanes;
      p.clock_source = "unknown (no clock probe for this architecture)";
      p.flops_source = std::string(v.what) + ": 1 pipe assumed x " + std::to_string(v.lanes) + " lanes x 2";
    }
    p.peak_gflops = p.flops_per_cycle * double(p.cores) * p.clock_ghz;
    it = cache.emplace(std::make_pair(isa, cores), p).first;
  }
  return it->second;
}

}  // namespace nnf
