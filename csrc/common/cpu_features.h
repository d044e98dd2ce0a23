// CPU feature detection and the process-wide choice of kernel ISA.
//
// The ISA is chosen once at import (cpuid + xgetbv, so an OS that does not save
// the wide registers is treated as lacking them); NNFORGE_ISA=avx512|avx2|generic
// forces a path, and set_active_isa() lets tests walk every path in one process.
#pragma once
#include <string>
#include <vector>

namespace nnf {

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
// Applies NNFORGE_ISA if set (throws on an unknown or unsupported name), else best_isa().
void init_isa_from_env();

}  // namespace nnf
