// Shape validation, output size and the forward algorithm choice for conv2d.
#include <atomic>
#include <stdexcept>
#include <string>

#include "common/checks.h"
#include "cpu/conv/conv.h"

namespace nnf {
namespace conv {

namespace {
std::string tup(std::initializer_list<int64_t> v) {
  std::string s = "(";
  bool first = true;
  for (int64_t x : v) {
    s += (first ? "" : ", ") + std::to_string(x);
    first = false;
  }
  return s + ")";
}
[[noreturn]] void fail(const ConvShape& s, const std::string& why) {
  throw std::invalid_argument("conv2d: " + why + " [" + s.describe() + "]");
}
}  // namespace

std::string ConvShape::describe() const {
  return "x " + tup({n, c, h, w}) + ", w " + tup({k, groups > 0 ? c / groups : c, r, s}) +
         ", stride " + tup({sh, sw}) + ", padding " + tup({pt, pb, pl, pr}) + ", dilation " +
         tup({dh, dw}) + ", groups " + std::to_string(groups);
}

const char* algo_name(Algo a) {
  switch (a) {
    case Algo::direct_smallc: return "direct_smallc";
    case Algo::depthwise: return "depthwise";
    case Algo::gemm_1x1: return "gemm_1x1";
    case Algo::implicit_gemm: return "implicit_gemm";
    default: return "im2col_tiles";
  }
}

namespace {
constexpr int kNumAlgos = 5;
std::atomic<int> g_forced{-1};  // -1: auto
}  // namespace

Algo parse_algo(const std::string& name) {
  for (int i = 0; i < kNumAlgos; ++i)
    if (name == algo_name(Algo(i))) return Algo(i);
  throw std::invalid_argument("unknown conv2d algorithm '" + name +
                              "' (known: auto, direct_smallc, depthwise, gemm_1x1, "
                              "im2col_tiles, implicit_gemm)");
}

void set_forced_algo(const std::string& name) {
  g_forced.store(name == "auto" ? -1 : int(parse_algo(name)), std::memory_order_relaxed);
}

std::string get_forced_algo() {
  const int f = g_forced.load(std::memory_order_relaxed);
  return f < 0 ? "auto" : algo_name(Algo(f));
}

void finalize_shape(ConvShape& s) {
  if (s.n < 0 || s.c < 0 || s.h < 0 || s.w < 0 || s.k < 0 || s.r < 0 || s.s < 0)
    fail(s, "negative size");
  if (s.sh <= 0 || s.sw <= 0) fail(s, "stride must be positive");
  if (s.dh <= 0 || s.dw <= 0) fail(s, "dilation must be positive");
  if (s.pt < 0 || s.pb < 0 || s.pl < 0 || s.pr < 0) fail(s, "padding must be non-negative");
  if (s.groups <= 0) fail(s, "groups must be positive");
  if (s.c % s.groups != 0)
    fail(s, "input channels C=" + std::to_string(s.c) + " are not divisible by groups=" +
                std::to_string(s.groups));
  if (s.k % s.groups != 0)
    fail(s, "output channels K=" + std::to_string(s.k) + " are not divisible by groups=" +
                std::to_string(s.groups));
  if (s.c == 0 || s.k == 0 || s.r == 0 || s.s == 0) fail(s, "zero channels or kernel size");
  const int64_t eff_r = checked_add(checked_mul(s.dh, s.r - 1, "dilation * (R - 1)"), 1, "kernel extent");
  const int64_t eff_s = checked_add(checked_mul(s.dw, s.s - 1, "dilation * (S - 1)"), 1, "kernel extent");
  const int64_t hp = checked_add(checked_add(s.h, s.pt, "padded height"), s.pb, "padded height");
  const int64_t wp = checked_add(checked_add(s.w, s.pl, "padded width"), s.pr, "padded width");
  if (eff_r > hp || eff_s > wp)
    fail(s, "kernel extent " + tup({eff_r, eff_s}) + " is larger than the padded input " +
                tup({hp, wp}) + " (output would be empty)");
  s.ho = (hp - eff_r) / s.sh + 1;
  s.wo = (wp - eff_s) / s.sw + 1;
  // Every product a kernel forms, checked once here (also the padded buffers).
  checked_mul(checked_mul(checked_mul(s.n, s.k, "N*K"), s.ho, "N*K*Ho"), s.wo, "N*K*Ho*Wo");
  checked_mul(checked_mul(checked_mul(s.n, s.c, "N*C"), hp, "N*C*Hp"), wp + 64, "N*C*Hp*Wp");
  checked_mul(checked_mul(checked_mul(s.k, s.c, "K*C"), s.r, "K*C*R"), s.s, "K*C*R*S");
  checked_mul(checked_mul(s.crs(), s.ho, "C*R*S*Ho"), s.wo, "C*R*S*Ho*Wo");
  checked_mul(s.crs(), 4096, "C*R*S*tile");
}

namespace {
bool is_depthwise(const ConvShape& s) { return s.groups > 1 && s.cg() == 1 && s.kg() == 1; }
// The direct kernel's padded rows hold sw phases of >= round_up(Wo, 16) floats each:
// fine for ordinary strides, wasteful (and for absurd strides unbounded) beyond 8.
bool direct_ok(const ConvShape& s) { return s.sw <= 8; }
bool is_one_by_one(const ConvShape& s) {
  return s.r == 1 && s.s == 1 && s.sh == 1 && s.sw == 1 && s.pt == 0 && s.pb == 0 && s.pl == 0 &&
         s.pr == 0;
}
}  // namespace

Algo choose_algo(const ConvShape& s) {
  const int forced = g_forced.load(std::memory_order_relaxed);
  if (forced >= 0) {
    const Algo f = Algo(forced);
    const bool ok = f == Algo::im2col_tiles || (f == Algo::depthwise && is_depthwise(s)) ||
                    (f == Algo::gemm_1x1 && is_one_by_one(s)) ||
                    ((f == Algo::direct_smallc || f == Algo::implicit_gemm) && direct_ok(s));
    if (ok) return f;
  }
  if (is_depthwise(s)) return Algo::depthwise;
  if (is_one_by_one(s)) return Algo::gemm_1x1;
  // Small C (any stride; strided columns are read from phase-split padded rows): a
  // GEMM with reduction length C*R*S = 9 or 27 fills few of its k steps per C-tile
  // load/store, the direct kernel keeps its K x Wo tile in registers.
  if (s.cg() <= 4 && direct_ok(s)) return Algo::direct_smallc;
  // Many channels, stride_w 1: the same kernel reads the C*R*S taps from padded rows in
  // place and measured ~15-20% faster than im2col tiles + sgemm (N64 C32 14x14 K64:
  // 68 vs 58 GFLOP/s on one Zen 3 core). With stride 2 it was slower (41-46 vs 58 for
  // N16 C64 28x28 K128): twice the input rows per output row.
  if (s.sw == 1) return Algo::implicit_gemm;
  return Algo::im2col_tiles;
}

Algo dw_algo(const ConvShape& s) {
  const int forced = g_forced.load(std::memory_order_relaxed);
  if ((forced == int(Algo::direct_smallc) || forced == int(Algo::implicit_gemm)) && direct_ok(s))
    return Algo::direct_smallc;
  if (forced == int(Algo::im2col_tiles) || forced == int(Algo::gemm_1x1)) return Algo::im2col_tiles;
  // With the old AVX2 GEMM the direct kernel won for small C (one Zen 3 core, GFLOP/s,
  // direct vs GEMM: C1 28x28 K32 29 vs 17, C3 32x32 K64 53 vs 41). With the current
  // GEMM (avx2_6x16e, exact edge tiles) the GEMM route wins or ties everywhere: C1
  // 28 vs 36 (1 thread) and 45 vs 56 (2 threads), C3 50 vs 50 and 90 vs 100, C32/C64
  // ties, stride 2 and 1x1 GEMM ahead. The direct dW stays selectable by forcing the
  // direct_smallc / implicit_gemm algorithm (tests cross-check it).
  return Algo::im2col_tiles;
}

}  // namespace conv
}  // namespace nnf
