// bfloat16 interface of the GEMM family: conversions and the mixed-precision GEMM.
//
//   bf16 bits = the top 16 bits of a float32 (sign, 8 exponent bits, 7 mantissa bits).
//   float32 -> bf16 rounds to nearest even; NaN -> the quiet NaN (sign | 0x7fc0), as
//   ml_dtypes does; inf stays inf, denormals keep their (rounded) value. bf16 -> float32
//   is exact. Every ISA path gives the same bits.
//
//   gemm_bf16: C (m x n) = act(alpha * A (m x k) @ B (k x n) + beta * C + bias), where A
//   and B are float32 or bf16 views (any strides); float32 operands are rounded to bf16
//   when precision == bf16; products are exact in float32 and accumulate in float32;
//   C is float32 or bf16 (rounded once, after bias and activation).
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "cpu/gemm/gemm.h"

namespace nnf {

enum class ElemType : int { f32 = 0, bf16 = 1 };
enum class Precision : int { fp32 = 0, bf16 = 1 };

struct AnyMatRef {
  const void* data;
  ElemType type;
  int64_t rs, cs;  // element strides
};

struct AnyMutMatRef {
  void* data;
  ElemType type;
  int64_t rs, cs;
};

// Elementwise conversion of an n-d strided array (shape[ndim], strides in elements).
void to_bfloat16(int ndim, const int64_t* shape, const float* src, const int64_t* src_strides,
                 uint16_t* dst, const int64_t* dst_strides);
void to_float32(int ndim, const int64_t* shape, const uint16_t* src, const int64_t* src_strides,
                float* dst, const int64_t* dst_strides);

// Thread count: 0 means "choose from the global setting and the problem size".
// A float32 operand is read as is when precision == fp32 (a bf16 operand is widened
// exactly either way), so fp32 with two float32 operands is plain sgemm.
void gemm_bf16(int64_t m, int64_t n, int64_t k, float alpha, AnyMatRef a, AnyMatRef b, float beta,
               AnyMutMatRef c, const GemmEpilogue& ep, Precision precision, int nthreads = 0);

// The bf16 GEMM variant table ("gemm.bf16" in show_config).
std::vector<std::string> bf16_gemm_variants();  // "auto" + every variant this CPU can run
std::string get_bf16_gemm_variant();
void set_bf16_gemm_variant(const std::string& name);  // std::invalid_argument if unknown

}  // namespace nnf
