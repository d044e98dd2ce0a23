// Dispatch stubs of the contiguous conversion loops (bf16_convert.*.cpp), n elements.
#pragma once
#include <cstdint>

#include "common/dispatch.h"

namespace nnf {

NNF_DECLARE_DISPATCH(void (*)(int64_t n, const float* src, uint16_t* dst), f32_to_bf16_stub);
NNF_DECLARE_DISPATCH(void (*)(int64_t n, const uint16_t* src, float* dst), bf16_to_f32_stub);

}  // namespace nnf
