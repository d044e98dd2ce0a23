// Portable glue for the pooling kernels: geometry validation (PyTorch's rules),
// dispatch stubs, thread counts and index validation before the max-pool scatter.
#include <stdexcept>
#include <string>

#include "common/checks.h"
#include "common/threads.h"
#include "cpu/pool/pool.h"

namespace nnf {
namespace pool {

NNF_DEFINE_DISPATCH("pool", max_pool2d_planes_stub);
NNF_DEFINE_DISPATCH("pool", max_pool2d_backward_planes_stub);
NNF_DEFINE_DISPATCH("pool", avg_pool2d_planes_stub);
NNF_DEFINE_DISPATCH("pool", avg_pool2d_backward_planes_stub);
NNF_DEFINE_DISPATCH("pool", global_avg_pool2d_planes_stub);
NNF_DEFINE_DISPATCH("pool", global_avg_pool2d_backward_planes_stub);
NNF_DEFINE_DISPATCH("pool", max_pool2d_2x2s2_stub);

namespace {

// Window parameters beyond this are refused: they keep o * stride + kernel far
// from int64 overflow and no real image needs them.
constexpr int64_t kMaxParam = int64_t(1) << 31;

std::string pair_str(int64_t a, int64_t b) {
  return "(" + std::to_string(a) + ", " + std::to_string(b) + ")";
}

}  // namespace

int64_t output_size(int64_t in, int64_t k, int64_t s, int64_t p, bool ceil_mode) {
  const int64_t span = in + 2 * p - k;
  int64_t out = (ceil_mode ? span + s - 1 : span) / s + 1;
  // torch: the last window must start inside the input or the left padding.
  if (ceil_mode && (out - 1) * s >= in + p) --out;
  return out;
}

PoolGeometry make_geometry(const char* what, int64_t n, int64_t c, int64_t h, int64_t w,
                           int64_t kh, int64_t kw, int64_t sh, int64_t sw, int64_t ph, int64_t pw,
                           bool ceil_mode, bool count_include_pad) {
  const std::string op(what);
  const std::string in = "(" + std::to_string(n) + ", " + std::to_string(c) + ", " +
                         std::to_string(h) + ", " + std::to_string(w) + ")";
  if (kh < 1 || kw < 1 || kh > kMaxParam || kw > kMaxParam)
    throw std::invalid_argument(op + ": kernel_size must be positive (and at most 2^31), got " + pair_str(kh, kw));
  if (sh < 1 || sw < 1 || sh > kMaxParam || sw > kMaxParam)
    throw std::invalid_argument(op + ": stride must be positive (and at most 2^31), got " + pair_str(sh, sw));
  if (ph < 0 || pw < 0 || 2 * ph > kh || 2 * pw > kw)
    throw std::invalid_argument(op + ": padding must be >= 0 and at most half the kernel size, got padding " +
                                pair_str(ph, pw) + " for kernel_size " + pair_str(kh, kw));
  if (h < 1 || w < 1)
    throw std::invalid_argument(op + ": input " + in + " has an empty spatial plane");
  if (h + 2 * ph < kh || w + 2 * pw < kw)
    throw std::invalid_argument(op + ": kernel_size " + pair_str(kh, kw) + " is larger than the padded input " +
                                pair_str(h + 2 * ph, w + 2 * pw) + " of input " + in + " with padding " +
                                pair_str(ph, pw));
  PoolGeometry g;
  g.planes = checked_mul(n, c, "pool planes");
  checked_mul(g.planes, checked_mul(h, w, "pool plane size"), "pool input size");
  g.h = h; g.w = w; g.kh = kh; g.kw = kw; g.sh = sh; g.sw = sw; g.ph = ph; g.pw = pw;
  g.ho = output_size(h, kh, sh, ph, ceil_mode);
  g.wo = output_size(w, kw, sw, pw, ceil_mode);
  g.count_include_pad = count_include_pad;
  checked_mul(g.planes, checked_mul(g.ho, g.wo, "pool output plane"), "pool output size");
  return g;
}

void max_pool2d(const PoolGeometry& g, const float* x, float* y, int64_t* idx) {
  if (g.planes == 0) return;
  const int nt = threads_for(double(g.planes) * double(g.ho * g.wo) * double(g.kh * g.kw) * 2.0);
  const bool whole_2x2 = whole_2x2_windows(g) && g.w < (int64_t(1) << 30);
  (whole_2x2 ? max_pool2d_2x2s2_stub : max_pool2d_planes_stub).get()(g, x, y, idx, nt);
}

void max_pool2d_backward(const PoolGeometry& g, const float* dy, const int64_t* idx, float* dx) {
  if (g.planes == 0) return;
  const int64_t out = g.planes * g.ho * g.wo, limit = g.h * g.w;
  // Every index is checked before dx is touched: a bad one names its position.
  bool bad = false;
  for (int64_t i = 0; i < out; ++i) bad |= idx[i] < 0 || idx[i] >= limit;
  if (bad) {
    for (int64_t i = 0; i < out; ++i) {
      if (idx[i] >= 0 && idx[i] < limit) continue;
      const int64_t p = i / (g.ho * g.wo), r = i % (g.ho * g.wo);
      throw std::invalid_argument("max_pool2d_backward: index " + std::to_string(idx[i]) + " at plane " +
                                  std::to_string(p) + ", output (" + std::to_string(r / g.wo) + ", " +
                                  std::to_string(r % g.wo) + ") is outside the input plane of " +
                                  pair_str(g.h, g.w) + " = " + std::to_string(limit) + " elements");
    }
  }
  const int nt = threads_for(double(g.planes) * double(limit + g.ho * g.wo));
  max_pool2d_backward_planes_stub.get()(g, dy, idx, dx, nt);
}

void avg_pool2d(const PoolGeometry& g, const float* x, float* y) {
  if (g.planes == 0) return;
  const int nt = threads_for(double(g.planes) * double(g.ho * g.wo) * double(g.kh * g.kw));
  avg_pool2d_planes_stub.get()(g, x, y, nt);
}

void avg_pool2d_backward(const PoolGeometry& g, const float* dy, float* dx) {
  if (g.planes == 0) return;
  const int nt = threads_for(double(g.planes) * double(g.h * g.w + g.ho * g.wo * g.kh * g.kw));
  avg_pool2d_backward_planes_stub.get()(g, dy, dx, nt);
}

void global_avg_pool2d(int64_t planes, int64_t s, const float* x, float* y) {
  if (planes == 0) return;
  const int nt = threads_for(double(planes) * double(s));
  global_avg_pool2d_planes_stub.get()(planes, s, x, y, nt);
}

void global_avg_pool2d_backward(int64_t planes, int64_t s, const float* dy, float* dx) {
  if (planes == 0) return;
  const int nt = threads_for(double(planes) * double(s));
  global_avg_pool2d_backward_planes_stub.get()(planes, s, dy, dx, nt);
}

}  // namespace pool
}  // namespace nnf
