// The cell formulas the per-ISA RNN kernels share (forward, backward and the rebuild of
// h from the workspace use the same inline code, so they agree bitwise on one ISA).
// Included by *.per_isa.cpp only: vm_sigmoid / vm_tanh (cpu/nn/vmath.h) are plain
// arithmetic and selects, so `#pragma omp simd` loops over units vectorise on every ISA.
#pragma once
#include <cstdint>

#include "cpu/nn/vmath.h"
#include "cpu/rnn/rnn.h"

namespace nnf {
namespace NNF_ISA_NS {
namespace rnn_cell {

using rnn::Cell;
using rnn::kUnits;

NNF_VM_INLINE float lstm_h(float o, float c) { return o * vm_tanh(c); }
// PyTorch's h' = (1 - z) n + z h.
NNF_VM_INLINE float gru_h(float z, float n, float h) { return (1.0f - z) * n + z * h; }
NNF_VM_INLINE float rnn_act(Cell cell, float a) {
  return cell == Cell::rnn_tanh ? vm_tanh(a) : (a > 0.0f ? a : 0.0f);
}

inline int64_t units_in_block(int64_t H, int64_t j) {
  const int64_t left = H - j * kUnits;
  return left < kUnits ? left : kUnits;
}

}  // namespace rnn_cell
}  // namespace NNF_ISA_NS
}  // namespace nnf
