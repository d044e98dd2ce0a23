// The int8 GEMM micro-kernel contract (u8 activations x s8 weights -> exact s32) and
// its dispatch stub. One packed weight layout serves every slot, so a QuantizedWeight
// packed once runs on any ISA path:
//
//   B (N, K) int8 (Linear layout) -> panels of kQNr = 32 output columns; inside a panel,
//   k in groups of 4 consecutive values, one int32 lane per column:
//     packed[((j * kg + g) * 32 + c) * 4 + t] = B[32 j + c][4 g + t]   (0 past N or K)
//   kg = ceil(K / 4); one panel is kg * 128 bytes. This is the operand layout of
//   AVX512_VNNI vpdpbusd (16 lanes x 4 bytes per zmm; two zmm per group).
//
// A (activations) arrive quantised: mc rows of lda >= 4 kg bytes, zero past K (the
// frame pads them), so kernels read whole groups without tail cases.
//
// Exactness: |a b| <= 255 * 128 per product, so a K <= kQMaxK sum fits int32; integer
// sums do not depend on order, so every slot and thread count gives the same bits.
#pragma once
#include <cstdint>

#include "common/dispatch.h"

namespace nnf {

constexpr int64_t kQNr = 32;          // columns per packed panel
constexpr int64_t kQMaxK = 65536;     // 255 * 128 * 65536 < 2^31
constexpr int64_t kQMaxRows = 96;     // rows per kernel call (the frame's m block)

// c (mc, 32) int32, ldc = 32: c[i][j] = sum_k a[i][k] * panel column j, for mc <= kQMaxRows.
using QgemmPanelFn = void (*)(int64_t mc, int64_t kg, const uint8_t* a, int64_t lda, const int8_t* panel,
                              int32_t* c);

namespace generic { void qgemm_panel_4x32(int64_t, int64_t, const uint8_t*, int64_t, const int8_t*, int32_t*); }
namespace avx2 { void qgemm_panel_4x32(int64_t, int64_t, const uint8_t*, int64_t, const int8_t*, int32_t*); }
namespace avx512_vnni {
void qgemm_panel_12x32(int64_t, int64_t, const uint8_t*, int64_t, const int8_t*, int32_t*);
}

namespace quant {
NNF_DECLARE_DISPATCH(QgemmPanelFn, qgemm_panel_stub);
}  // namespace quant

}  // namespace nnf
