// The FMA-throughput probe, written once and instantiated per ISA by
// fma_probe_avx512.cpp / fma_probe_avx2.cpp (and the SSE mul+add pair in cpu_peak.cpp).
//
// 12 independent chains acc = acc * m + c: with a 4-cycle FMA latency, 12 chains keep
// up to 3 pipes busy, so the measured issue rate is the pipe count (1 or 2 on current
// cores). m < 1, c > 0: each chain converges to c / (1 - m), no overflow, no denormals.
// Ops: struct { using V = vector type; static V set1(float); static V madd(V a, V m, V c);
//               static float sum(V); }.
#pragma once
#include <chrono>
#include <cstdint>

namespace nnf {

template <class Ops>
double fma_probe_seconds_impl(int64_t iters, float* sink) {
  using V = typename Ops::V;
  constexpr int kChains = 12;
  const V m = Ops::set1(0.999999f), c = Ops::set1(1e-7f);
  V acc[kChains];
  for (int j = 0; j < kChains; ++j) acc[j] = Ops::set1(float(j));
  const auto t0 = std::chrono::steady_clock::now();
  for (int64_t i = 0; i < iters; ++i) {
#pragma GCC unroll 12
    for (int j = 0; j < kChains; ++j) acc[j] = Ops::madd(acc[j], m, c);
  }
  const auto t1 = std::chrono::steady_clock::now();
  float s = 0.f;
  for (int j = 0; j < kChains; ++j) s += Ops::sum(acc[j]);
  *sink += s;
  return std::chrono::duration<double>(t1 - t0).count();
}

}  // namespace nnf
