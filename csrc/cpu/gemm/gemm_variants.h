// Selectable GEMM micro-kernel variants (STYLE.md rule 7): benchmarks and tests
// force one by name; "auto" picks the best kernel for the active ISA and shape.
// NNFORGE_GEMM_VARIANT sets the initial choice. A forced variant applies only while
// its ISA is the active one (set_isa("generic") still means the generic path).
#pragma once
#include <string>
#include <vector>

namespace nnf {

std::vector<std::string> gemm_variants();  // "auto" + every variant this CPU can run
std::string get_gemm_variant();
void set_gemm_variant(const std::string& name);  // std::invalid_argument if unknown/unsupported

}  // namespace nnf
