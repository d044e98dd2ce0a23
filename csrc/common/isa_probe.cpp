// The probe stub (isa_probe.h); its implementations live in the per-slot files.
#include "common/isa_probe.h"

namespace nnf {

NNF_DEFINE_DISPATCH("probe", isa_probe_stub);

}  // namespace nnf
