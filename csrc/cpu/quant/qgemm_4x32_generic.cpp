// Generic int8 panel kernel: plain int32 loops over the packed layout (qgemm_kernel.h),
// 4 rows at a time so each packed group is read once per 4 rows.
#include <algorithm>

#include "cpu/quant/qgemm_kernel.h"

namespace nnf {
namespace generic {

void qgemm_panel_4x32(int64_t mc, int64_t kg, const uint8_t* a, int64_t lda, const int8_t* panel, int32_t* c) {
  for (int64_t i0 = 0; i0 < mc; i0 += 4) {
    const int64_t mr = std::min<int64_t>(4, mc - i0);
    int32_t acc[4][kQNr] = {};
    for (int64_t g = 0; g < kg; ++g) {
      const int8_t* b = panel + g * kQNr * 4;
      for (int64_t i = 0; i < mr; ++i) {
        const uint8_t* ai = a + (i0 + i) * lda + 4 * g;
        for (int64_t j = 0; j < kQNr; ++j)
          acc[i][j] += int32_t(ai[0]) * b[4 * j] + int32_t(ai[1]) * b[4 * j + 1] +
                       int32_t(ai[2]) * b[4 * j + 2] + int32_t(ai[3]) * b[4 * j + 3];
      }
    }
    for (int64_t i = 0; i < mr; ++i) std::copy(acc[i], acc[i] + kQNr, c + (i0 + i) * kQNr);
  }
}

}  // namespace generic
namespace quant {
NNF_REGISTER_DISPATCH(quant::qgemm_panel_stub, ::nnf::Slot::generic, generic::qgemm_panel_4x32);
}
}  // namespace nnf
