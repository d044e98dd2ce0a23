// Compiled once per ISA namespace; lets show_config() confirm which per-ISA
// object files made it into the build.
#include "common/isa_probe.h"

namespace nnf {
namespace NNF_ISA_NS {
const char* compiled_isa_name() { return NNF_STRINGIFY(NNF_ISA_NS); }
}  // namespace NNF_ISA_NS
}  // namespace nnf
