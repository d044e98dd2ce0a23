#include "common/cpu_features.h"

#include <atomic>
#include <cstdlib>
#include <stdexcept>

#if defined(__x86_64__) || defined(_M_X64) || defined(__i386__)
#include <cpuid.h>
#define NNF_X86 1
#endif

namespace nnf {
namespace {

struct Features {
  bool avx2 = false;
  bool avx512 = false;
};

#ifdef NNF_X86
unsigned long long read_xcr0() {
  unsigned int eax, edx;
  __asm__ volatile("xgetbv" : "=a"(eax), "=d"(edx) : "c"(0));
  return (static_cast<unsigned long long>(edx) << 32) | eax;
}
#endif

Features detect() {
  Features f;
#ifdef NNF_X86
  unsigned int a, b, c, d;
  if (!__get_cpuid(1, &a, &b, &c, &d)) return f;
  const bool osxsave = c & (1u << 27), fma = c & (1u << 12), avx = c & (1u << 28),
             f16c = c & (1u << 29);
  if (!(osxsave && avx)) return f;
  const unsigned long long xcr0 = read_xcr0();
  const bool os_ymm = (xcr0 & 0x6) == 0x6;            // SSE + AVX state
  const bool os_zmm = (xcr0 & 0xE6) == 0xE6;          // + opmask, ZMM_Hi256, Hi16_ZMM
  if (__get_cpuid_max(0, nullptr) < 7) return f;
  __cpuid_count(7, 0, a, b, c, d);
  const bool avx2 = b & (1u << 5), bmi2 = b & (1u << 8);
  const bool avx512f = b & (1u << 16), avx512dq = b & (1u << 17),
             avx512bw = b & (1u << 30), avx512vl = b & (1u << 31);
  f.avx2 = os_ymm && avx2 && fma && f16c && bmi2;
  f.avx512 = f.avx2 && os_zmm && avx512f && avx512dq && avx512bw && avx512vl;
#endif
  return f;
}

const Features& features() {
  static const Features f = detect();
  return f;
}

std::atomic<int> g_active{static_cast<int>(Isa::generic)};

}  // namespace

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
    case Isa::avx512: return features().avx512;
    case Isa::avx2: return features().avx2;
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
  if (!cpu_supports(isa))
    throw std::invalid_argument(std::string("ISA '") + isa_name(isa) +
                                "' is not supported by this CPU/OS (available: " +
                                [] {
                                  std::string s;
                                  for (Isa i : available_isas()) s += (s.empty() ? "" : ", ") + std::string(isa_name(i));
                                  return s;
                                }() + ")");
  g_active.store(static_cast<int>(isa), std::memory_order_relaxed);
}

void init_isa_from_env() {
  const char* env = std::getenv("NNFORGE_ISA");
  if (env && *env) {
    set_active_isa(parse_isa(env));
  } else {
    set_active_isa(best_isa());
  }
}

}  // namespace nnf
