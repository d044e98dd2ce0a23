// Compiled once per ISA level: the probe's plain loop (auto-vectorised at that width).
#include "common/isa_probe.h"

namespace nnf {
namespace NNF_ISA_NS {
namespace {

const char* probe(int32_t* dot) {
  volatile int8_t one = 1, two = 2;  // not folded to a constant at compile time
  int8_t a[kProbeLength], b[kProbeLength];
  for (int i = 0; i < kProbeLength; ++i) {
    a[i] = one;
    b[i] = two;
  }
  int32_t s = 0;
  for (int i = 0; i < kProbeLength; ++i) s += int32_t(a[i]) * int32_t(b[i]);
  *dot = s;
  return NNF_STRINGIFY(NNF_ISA_SLOT);
}

}  // namespace

NNF_REGISTER_PER_ISA(isa_probe_stub, probe);

}  // namespace NNF_ISA_NS
}  // namespace nnf
