// CPU feature detection and the process-wide choice of kernel ISA.
//
// Features are read once (cpuid + xgetbv, so an OS that does not save the wide
// registers or the AMX tile state is treated as lacking them). Two things are
// chosen from them:
//   the ISA *level* (generic < avx2 < avx512): the vector width the kernels are
//     compiled for. NNFORGE_ISA=avx512|avx2|generic forces one at import, and
//     set_active_isa() lets tests walk every level in one process.
//   the *extension features* a dispatch slot may additionally need (avx512_bf16,
//     avx512_vnni, avx_vnni; common/dispatch.h). They can be switched off for tests:
//     NNFORGE_DISABLE=avx512_bf16,avx512_vnni at import, set_disabled_features() later.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

namespace nnf {

// Every flag already includes its OS-state check (XCR0).
struct CpuFeatures {
  bool avx2 = false, fma = false, f16c = false, bmi2 = false;
  bool avx512f = false, avx512bw = false, avx512vl = false, avx512dq = false;
  bool avx512_bf16 = false;  // cpuid 7.1 eax bit 5
  bool avx512_vnni = false;  // cpuid 7.0 ecx bit 11
  bool avx_vnni = false;     // cpuid 7.1 eax bit 4
  bool amx_tile = false, amx_bf16 = false, amx_int8 = false;  // reported only
};
const CpuFeatures& cpu_features();
// (name, value) of every flag in CpuFeatures, in declaration order (for show_config).
std::vector<std::pair<std::string, bool>> cpu_feature_list();

// ---- ISA levels -----------------------------------------------------------
enum class Isa : int { generic = 0, avx2 = 1, avx512 = 2 };

const char* isa_name(Isa isa);
// Parses "generic"/"avx2"/"avx512"; throws std::invalid_argument otherwise.
Isa parse_isa(const std::string& name);

bool cpu_supports(Isa isa);
std::vector<Isa> available_isas();  // best last
Isa best_isa();

Isa active_isa();
// Throws std::invalid_argument if the CPU (or OS) lacks the requested ISA.
void set_active_isa(Isa isa);
// Applies NNFORGE_ISA if set (throws on an unknown or unsupported name), else best_isa(),
// then NNFORGE_DISABLE (throws on an unknown feature name).
void init_isa_from_env();

// ---- extension features ---------------------------------------------------
// Bit positions in the masks below.
enum class Feature : int { avx512_bf16 = 0, avx512_vnni = 1, avx_vnni = 2 };
constexpr int kNumFeatures = 3;
constexpr uint32_t feature_bit(Feature f) { return 1u << static_cast<int>(f); }

const char* feature_name(Feature f);
std::vector<std::string> known_features();
uint32_t present_features();  // the CPU/OS has them
uint32_t enabled_features();  // present and not disabled (one atomic load)
// Replaces the disabled set; throws std::invalid_argument naming the known features
// for an unknown name (and then changes nothing).
void set_disabled_features(const std::vector<std::string>& names);
std::vector<std::string> disabled_features();

}  // namespace nnf
