// Shared by the portable conv drivers (conv_forward.cpp, conv_backward.cpp): the call
// into the active ISA's copy of a kernel from conv_kernels.h. Not for the per-ISA files.
#pragma once
#include <cstdint>

#include "common/cpu_features.h"
#include "cpu/conv/conv_kernels.h"

#define NNF_CONV_DISPATCH(fn, ...)                                \
  (::nnf::active_isa() == ::nnf::Isa::avx512 ? ::nnf::conv::avx512::fn(__VA_ARGS__) \
   : ::nnf::active_isa() == ::nnf::Isa::avx2 ? ::nnf::conv::avx2::fn(__VA_ARGS__)   \
                                             : ::nnf::conv::generic::fn(__VA_ARGS__))

namespace nnf {
namespace conv {

inline int64_t ceil_div(int64_t a, int64_t b) { return (a + b - 1) / b; }

}  // namespace conv
}  // namespace nnf
