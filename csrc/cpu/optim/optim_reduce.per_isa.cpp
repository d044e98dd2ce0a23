// Gradient passes that go with the optimizer steps: float64 sum of squares per
// chunk (grad_norm), the finite check (check_finite), in-place scaling
// (clip_grad_norm) and the STREAM triad used as the bandwidth yardstick.
#include <string.h>

#include "cpu/optim/optim_isa.h"

namespace nnf {
namespace NNF_ISA_NS {
namespace {

// 32 float64 accumulators: 4 independent zmm chains (8 ymm, 16 xmm), enough to
// hide add/FMA latency so the pass stays memory-bound. The lane layout is fixed
// per ISA, so the sum of a chunk never depends on the thread split.
constexpr int kLanes = 32;

double sumsq(const float* __restrict g, int64_t n) {
  double acc[kLanes];
  for (int j = 0; j < kLanes; ++j) acc[j] = 0.0;
  int64_t i = 0;
  for (; i + kLanes <= n; i += kLanes) {
#pragma omp simd
    for (int j = 0; j < kLanes; ++j) {
      const double x = g[i + j];
      acc[j] += x * x;
    }
  }
  for (int j = 0; i + j < n; ++j) {
    const double x = g[i + j];
    acc[j] += x * x;
  }
  // Pairwise, in a fixed order.
  for (int w = kLanes / 2; w >= 1; w /= 2)
    for (int j = 0; j < w; ++j) acc[j] += acc[j + w];
  return acc[0];
}

// Largest |g| bit pattern: >= 0x7f800000 means inf or NaN somewhere.
uint32_t max_abs_bits(const float* __restrict g, int64_t n) {
  uint32_t mx = 0;
#pragma omp simd reduction(max : mx)
  for (int64_t i = 0; i < n; ++i) {
    uint32_t b;
    memcpy(&b, &g[i], sizeof b);
    b &= 0x7fffffffu;
    mx = b > mx ? b : mx;
  }
  return mx;
}

}  // namespace

void sumsq_chunks(const OptChunk* chunks, int64_t count, double* partial) {
  for (int64_t c = 0; c < count; ++c)
    partial[c] = sumsq(chunks[c].t->g + chunks[c].off, chunks[c].len);
}

bool finite_chunks(const OptChunk* chunks, int64_t count) {
  uint32_t mx = 0;
  for (int64_t c = 0; c < count; ++c) {
    const uint32_t m = max_abs_bits(chunks[c].t->g + chunks[c].off, chunks[c].len);
    mx = m > mx ? m : mx;
  }
  return mx < 0x7f800000u;
}

void scale_chunks(float scale, const OptChunk* chunks, int64_t count) {
  for (int64_t c = 0; c < count; ++c) {
    float* __restrict g = chunks[c].t->g + chunks[c].off;
    const int64_t n = chunks[c].len;
#pragma omp simd
    for (int64_t i = 0; i < n; ++i) g[i] = g[i] * scale;
  }
}

void triad_range(float* __restrict a, const float* __restrict b, const float* __restrict c,
                 float s, int64_t lo, int64_t hi) {
#pragma omp simd
  for (int64_t i = lo; i < hi; ++i) a[i] = b[i] + s * c[i];
}

NNF_REGISTER_PER_ISA(optim::sumsq_chunks_stub, sumsq_chunks);
NNF_REGISTER_PER_ISA(optim::finite_chunks_stub, finite_chunks);
NNF_REGISTER_PER_ISA(optim::scale_chunks_stub, scale_chunks);
NNF_REGISTER_PER_ISA(optim::triad_range_stub, triad_range);

}  // namespace NNF_ISA_NS
}  // namespace nnf
