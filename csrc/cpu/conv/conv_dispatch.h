// Shared by the portable conv drivers (conv_forward.cpp, conv_backward.cpp): the
// kernels' dispatch stubs (conv_kernels.h, defined in conv_dispatch.cpp) and the
// small integer helpers around them. Not for the per-ISA files.
#pragma once
#include <cstdint>

#include "cpu/conv/conv_kernels.h"

namespace nnf {
namespace conv {

inline int64_t ceil_div(int64_t a, int64_t b) { return (a + b - 1) / b; }

}  // namespace conv
}  // namespace nnf
