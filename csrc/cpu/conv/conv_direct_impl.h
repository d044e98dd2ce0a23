// Direct small-C convolution body, shared by the per-ISA files. Include it INSIDE an
// anonymous namespace after defining `struct V` (vector of V::N floats: zero, bcast,
// load, fma, relu, store) so each ISA gets its own internal-linkage copy (no ODR
// merging of AVX-512 code into the AVX2 path).
//
// Register tile: KB output channels x NV vectors of output columns. Per (c, r, s) tap
// it loads NV input vectors and KB broadcast weights for KB*NV FMAs, so with
// KB=4/NV=2..3 (AVX2) or KB=8/NV=2..3 (AVX-512) the loop is FMA-bound, where a GEMM
// with reduction length C*R*S = 9 or 27 would spend its time loading/storing C tiles.
// Accumulation order per output: bias (or 0), then c, r, s ascending: fixed.

template <int KB, int NV>
inline void direct_block(const nnf::conv::DirectArgs& a, const float* wb, int64_t kb0, int kval,
                         int64_t i, int64_t ow) {
  V acc[KB][NV];
  for (int kk = 0; kk < KB; ++kk) {
    const V b0 = a.bpack ? V::bcast(a.bpack + kb0 + kk) : V::zero();
    for (int j = 0; j < NV; ++j) acc[kk][j] = b0;
  }
  for (int64_t c = 0; c < a.cg; ++c) {
    for (int64_t r = 0; r < a.r; ++r) {
      const float* in = a.pad + c * a.pplane + (i * a.sh + r * a.dh) * a.wpad + ow;
      const float* wr = wb + (c * a.r + r) * a.s * KB;
      for (int64_t q = 0; q < a.s; ++q) {
        const float* inq = in + q * a.dw;
        V xv[NV];
        for (int j = 0; j < NV; ++j) xv[j] = V::load(inq + j * V::N);
        const float* wq = wr + q * KB;
        for (int kk = 0; kk < KB; ++kk) {
          const V wv = V::bcast(wq + kk);
          for (int j = 0; j < NV; ++j) acc[kk][j] = V::fma(wv, xv[j], acc[kk][j]);
        }
      }
    }
  }
  for (int kk = 0; kk < kval; ++kk) {
    float* yrow = a.y + (kb0 + kk) * a.yk + i * a.wo + ow;
    for (int j = 0; j < NV; ++j) {
      V v = a.relu ? V::relu(acc[kk][j]) : acc[kk][j];
      const int64_t col = ow + j * V::N;
      if (col + V::N <= a.wo) {
        v.store(yrow + j * V::N);
      } else if (col < a.wo) {
        alignas(64) float tmp[V::N];
        v.store(tmp);
        for (int64_t e = 0; e < a.wo - col; ++e) yrow[j * V::N + e] = tmp[e];
      }
    }
  }
}

template <int KB>
inline void direct_smallc_impl(const nnf::conv::DirectArgs& a) {
  const int64_t crs = a.cg * a.r * a.s;
  for (int64_t kb0 = 0; kb0 < a.kg; kb0 += KB) {
    const float* wb = a.wpack + (kb0 / KB) * crs * KB;
    const int kval = int(a.kg - kb0 < KB ? a.kg - kb0 : KB);
    for (int64_t i = 0; i < a.nrows; ++i) {
      int64_t ow = 0;
      while (ow < a.wo) {
        const int64_t vecs = (a.wo - ow + V::N - 1) / V::N;
        // 4 vectors as 2 + 2 rather than 3 + 1: the 1-vector block is load-bound.
        const int nv = vecs > 4 ? 3 : (vecs == 4 ? 2 : int(vecs));
        if (nv == 3) direct_block<KB, 3>(a, wb, kb0, kval, i, ow);
        else if (nv == 2) direct_block<KB, 2>(a, wb, kb0, kval, i, ow);
        else direct_block<KB, 1>(a, wb, kb0, kval, i, ow);
        ow += nv * V::N;
      }
    }
  }
}
