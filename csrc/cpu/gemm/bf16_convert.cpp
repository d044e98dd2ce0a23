// Strided n-d float32 <-> bf16 conversion: walks every dimension but the last and runs
// the dispatched contiguous loop on each row (through a small buffer when a row is
// strided). Elementwise, so the result does not depend on threads or ISA.
#include <algorithm>

#include "common/threads.h"
#include "cpu/gemm/bf16.h"
#include "cpu/gemm/bf16_convert_isa.h"

namespace nnf {

NNF_DEFINE_DISPATCH("gemm", f32_to_bf16_stub);
NNF_DEFINE_DISPATCH("gemm", bf16_to_f32_stub);

namespace {

constexpr int64_t kChunk = 512;  // strided rows go through a stack buffer this long

template <class S, class D, class Fn>
void convert_nd(int ndim, const int64_t* shape, const S* src, const int64_t* ss, D* dst,
                const int64_t* ds, Fn row_fn) {
  if (ndim == 0) {
    row_fn(1, src, dst);
    return;
  }
  int64_t rows = 1;
  for (int d = 0; d < ndim - 1; ++d) rows *= shape[d];
  const int64_t len = shape[ndim - 1], sl = ss[ndim - 1], dl = ds[ndim - 1];
  if (rows == 0 || len == 0) return;
  for (int64_t r = 0; r < rows; ++r) {
    // Offsets of row r: its multi-index over the leading dimensions, last fastest.
    int64_t so = 0, dof = 0, rem = r;
    for (int d = ndim - 2; d >= 0; --d) {
      const int64_t i = rem % shape[d];
      rem /= shape[d];
      so += i * ss[d];
      dof += i * ds[d];
    }
    const S* s = src + so;
    D* o = dst + dof;
    if (sl == 1 && dl == 1) {
      row_fn(len, s, o);
      continue;
    }
    S sbuf[kChunk];
    D dbuf[kChunk];
    for (int64_t j0 = 0; j0 < len; j0 += kChunk) {
      const int64_t c = std::min(kChunk, len - j0);
      for (int64_t j = 0; j < c; ++j) sbuf[j] = s[(j0 + j) * sl];
      row_fn(c, sbuf, dbuf);
      for (int64_t j = 0; j < c; ++j) o[(j0 + j) * dl] = dbuf[j];
    }
  }
}

}  // namespace

void to_bfloat16(int ndim, const int64_t* shape, const float* src, const int64_t* ss,
                 uint16_t* dst, const int64_t* ds) {
  convert_nd(ndim, shape, src, ss, dst, ds, f32_to_bf16_stub.get());
}

void to_float32(int ndim, const int64_t* shape, const uint16_t* src, const int64_t* ss,
                float* dst, const int64_t* ds) {
  convert_nd(ndim, shape, src, ss, dst, ds, bf16_to_f32_stub.get());
}

}  // namespace nnf
