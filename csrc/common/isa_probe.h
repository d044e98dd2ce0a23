#pragma once
#define NNF_STRINGIFY_(x) #x
#define NNF_STRINGIFY(x) NNF_STRINGIFY_(x)

namespace nnf {
namespace generic { const char* compiled_isa_name(); }
namespace avx2 { const char* compiled_isa_name(); }
namespace avx512 { const char* compiled_isa_name(); }
}  // namespace nnf
