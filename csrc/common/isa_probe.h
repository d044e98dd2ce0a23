// A probe op with one real implementation per dispatch slot, each in a file of its
// slot's suffix (isa_probe.per_isa.cpp, isa_probe_<slot>.cpp), so a test can see
// that every slot is built, registered, chosen when usable and skipped when not
// (tests/test_dispatch.py). Each computes the dot product of 64 int8 pairs (1, 2)
// with its slot's own instruction (128) and returns the slot's name.
#pragma once
#include <cstdint>

#include "common/dispatch.h"

#define NNF_STRINGIFY_(x) #x
#define NNF_STRINGIFY(x) NNF_STRINGIFY_(x)

namespace nnf {

constexpr int kProbeLength = 64;  // products of 1 * 2: the probe's result is 128
NNF_DECLARE_DISPATCH(const char* (*)(int32_t* dot), isa_probe_stub);

}  // namespace nnf
