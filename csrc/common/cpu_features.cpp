#include "common/cpu_features.h"

#include <algorithm>
#include <atomic>
#include <cstdlib>
#include <stdexcept>

#if defined(__x86_64__) || defined(_M_X64) || defined(__i386__)
#include <cpuid.h>
#define NNF_X86 1
#endif

namespace nnf {
namespace {

#ifdef NNF_X86
unsigned long long read_xcr0() {
  unsigned int eax, edx;
  __asm__ volatile("xgetbv" : "=a"(eax), "=d"(edx) : "c"(0));
  return (static_cast<unsigned long long>(edx) << 32) | eax;
}
#endif

CpuFeatures detect() {
  CpuFeatures f;
#ifdef NNF_X86
  unsigned int a, b, c, d;
  if (!__get_cpuid(1, &a, &b, &c, &d)) return f;
  const bool osxsave = c & (1u << 27), fma = c & (1u << 12), avx = c & (1u << 28),
             f16c = c & (1u << 29);
  if (!(osxsave && avx)) return f;
  const unsigned long long xcr0 = read_xcr0();
  const bool os_ymm = (xcr0 & 0x6) == 0x6;                // SSE + AVX state
  const bool os_zmm = os_ymm && (xcr0 & 0xE0) == 0xE0;    // + opmask, ZMM_Hi256, Hi16_ZMM
  const bool os_tile = (xcr0 & 0x60000) == 0x60000;       // XTILECFG + XTILEDATA (bits 17-18)
  f.fma = os_ymm && fma;
  f.f16c = os_ymm && f16c;
  if (__get_cpuid_max(0, nullptr) < 7) return f;
  __cpuid_count(7, 0, a, b, c, d);
  const unsigned int max_sub7 = a;
  f.avx2 = os_ymm && (b & (1u << 5));
  f.bmi2 = b & (1u << 8);
  f.avx512f = os_zmm && (b & (1u << 16));
  f.avx512dq = os_zmm && (b & (1u << 17));
  f.avx512bw = os_zmm && (b & (1u << 30));
  f.avx512vl = os_zmm && (b & (1u << 31));
  f.avx512_vnni = f.avx512f && (c & (1u << 11));
  f.amx_bf16 = os_tile && (d & (1u << 22));
  f.amx_tile = os_tile && (d & (1u << 24));
  f.amx_int8 = os_tile && (d & (1u << 25));
  if (max_sub7 >= 1) {
    __cpuid_count(7, 1, a, b, c, d);
    f.avx_vnni = f.avx2 && (a & (1u << 4));
    f.avx512_bf16 = f.avx512f && (a & (1u << 5));
  }
#endif
  return f;
}

bool level_avx2(const CpuFeatures& f) { return f.avx2 && f.fma && f.f16c && f.bmi2; }
bool level_avx512(const CpuFeatures& f) {
  return level_avx2(f) && f.avx512f && f.avx512dq && f.avx512bw && f.avx512vl;
}

std::atomic<int> g_active{static_cast<int>(Isa::generic)};
std::atomic<uint32_t> g_disabled{0};
std::atomic<uint32_t> g_enabled{0};  // present & ~disabled, kept in step by set_disabled_features

const Feature kFeatures[kNumFeatures] = {Feature::avx512_bf16, Feature::avx512_vnni,
                                         Feature::avx_vnni};

std::string join(const std::vector<std::string>& v) {
  std::string s;
  for (const auto& x : v) s += (s.empty() ? "" : ", ") + x;
  return s;
}

}  // namespace

const CpuFeatures& cpu_features() {
  static const CpuFeatures f = detect();
  return f;
}

std::vector<std::pair<std::string, bool>> cpu_feature_list() {
  const CpuFeatures& f = cpu_features();
  return {{"avx2", f.avx2},         {"fma", f.fma},
          {"f16c", f.f16c},         {"bmi2", f.bmi2},
          {"avx512f", f.avx512f},   {"avx512bw", f.avx512bw},
          {"avx512vl", f.avx512vl}, {"avx512dq", f.avx512dq},
          {"avx512_bf16", f.avx512_bf16}, {"avx512_vnni", f.avx512_vnni},
          {"avx_vnni", f.avx_vnni}, {"amx_tile", f.amx_tile},
          {"amx_bf16", f.amx_bf16}, {"amx_int8", f.amx_int8}};
}

// ---- ISA levels -----------------------------------------------------------

const char* isa_name(Isa isa) {
  switch (isa) {
    case Isa::avx512: return "avx512";
    case Isa::avx2: return "avx2";
    default: return "generic";
  }
}

Isa parse_isa(const std::string& name) {
  if (name == "avx512") return Isa::avx512;
  if (name == "avx2") return Isa::avx2;
  if (name == "generic") return Isa::generic;
  throw std::invalid_argument("unknown ISA '" + name + "': expected one of avx512, avx2, generic");
}

bool cpu_supports(Isa isa) {
  switch (isa) {
    case Isa::avx512: return level_avx512(cpu_features());
    case Isa::avx2: return level_avx2(cpu_features());
    default: return true;
  }
}

std::vector<Isa> available_isas() {
  std::vector<Isa> out{Isa::generic};
  if (cpu_supports(Isa::avx2)) out.push_back(Isa::avx2);
  if (cpu_supports(Isa::avx512)) out.push_back(Isa::avx512);
  return out;
}

Isa best_isa() { return available_isas().back(); }

Isa active_isa() { return static_cast<Isa>(g_active.load(std::memory_order_relaxed)); }

void set_active_isa(Isa isa) {
  if (!cpu_supports(isa)) {
    std::vector<std::string> names;
    for (Isa i : available_isas()) names.emplace_back(isa_name(i));
    throw std::invalid_argument(std::string("ISA '") + isa_name(isa) +
                                "' is not supported by this CPU/OS (available: " + join(names) +
                                ")");
  }
  g_active.store(static_cast<int>(isa), std::memory_order_relaxed);
}

void init_isa_from_env() {
  const char* env = std::getenv("NNFORGE_ISA");
  set_active_isa(env && *env ? parse_isa(env) : best_isa());
  std::vector<std::string> off;
  if (const char* dis = std::getenv("NNFORGE_DISABLE")) {
    std::string s(dis);
    for (size_t pos = 0; pos <= s.size();) {
      const size_t comma = std::min(s.find(',', pos), s.size());
      std::string name = s.substr(pos, comma - pos);
      const size_t b = name.find_first_not_of(" \t"), e = name.find_last_not_of(" \t");
      if (b != std::string::npos) off.push_back(name.substr(b, e - b + 1));
      pos = comma + 1;
    }
  }
  set_disabled_features(off);
}

// ---- extension features ---------------------------------------------------

const char* feature_name(Feature f) {
  switch (f) {
    case Feature::avx512_bf16: return "avx512_bf16";
    case Feature::avx512_vnni: return "avx512_vnni";
    default: return "avx_vnni";
  }
}

std::vector<std::string> known_features() {
  std::vector<std::string> out;
  for (Feature f : kFeatures) out.emplace_back(feature_name(f));
  return out;
}

uint32_t present_features() {
  const CpuFeatures& f = cpu_features();
  return (f.avx512_bf16 ? feature_bit(Feature::avx512_bf16) : 0) |
         (f.avx512_vnni ? feature_bit(Feature::avx512_vnni) : 0) |
         (f.avx_vnni ? feature_bit(Feature::avx_vnni) : 0);
}

uint32_t enabled_features() { return g_enabled.load(std::memory_order_relaxed); }

void set_disabled_features(const std::vector<std::string>& names) {
  uint32_t mask = 0;
  for (const std::string& n : names) {
    uint32_t bit = 0;
    for (Feature f : kFeatures)
      if (n == feature_name(f)) bit = feature_bit(f);
    if (!bit)
      throw std::invalid_argument("unknown CPU feature '" + n + "' (known: " +
                                  join(known_features()) + ")");
    mask |= bit;
  }
  g_disabled.store(mask, std::memory_order_relaxed);
  g_enabled.store(present_features() & ~mask, std::memory_order_relaxed);
}

std::vector<std::string> disabled_features() {
  const uint32_t mask = g_disabled.load(std::memory_order_relaxed);
  std::vector<std::string> out;
  for (Feature f : kFeatures)
    if (mask & feature_bit(f)) out.emplace_back(feature_name(f));
  return out;
}

}  // namespace nnf
