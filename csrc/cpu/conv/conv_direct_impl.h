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

// The first `count` (< V::N) lanes of v to p; kept out of line so the register tile
// in direct_block never needs an addressable copy.
__attribute__((noinline)) void store_partial(V v, float* p, int64_t count) {
  alignas(64) float tmp[V::N];
  v.store(tmp);
  for (int64_t e = 0; e < count; ++e) p[e] = tmp[e];
}

template <int KB, int NV>
inline void direct_block(const nnf::conv::DirectArgs& a, const float* wb, const int64_t* taps,
                         int64_t ntaps, int64_t kb0, int kval, int64_t i, int64_t ow) {
  // One flat loop over the taps (offsets precomputed) so the compiler keeps acc in
  // registers; nested runtime c/r/s loops made GCC spill acc to the stack every tap.
  V acc[KB][NV];
#pragma GCC unroll 16
  for (int kk = 0; kk < KB; ++kk) {
    const V b0 = a.bpack ? V::bcast(a.bpack + kb0 + kk) : V::zero();
#pragma GCC unroll 4
    for (int j = 0; j < NV; ++j) acc[kk][j] = b0;
  }
  const float* in = a.pad + i * a.sh * a.wpad + ow;
  for (int64_t t = 0; t < ntaps; ++t) {
    const float* inq = in + taps[t];
    const float* wq = wb + t * KB;
    V xv[NV];
#pragma GCC unroll 4
    for (int j = 0; j < NV; ++j) xv[j] = V::load(inq + j * V::N);
#pragma GCC unroll 16
    for (int kk = 0; kk < KB; ++kk) {
      const V wv = V::bcast(wq + kk);
#pragma GCC unroll 4
      for (int j = 0; j < NV; ++j) acc[kk][j] = V::fma(wv, xv[j], acc[kk][j]);
    }
  }
  // Compile-time kk / j loops (a runtime bound would force acc into memory).
#pragma GCC unroll 16
  for (int kk = 0; kk < KB; ++kk) {
    if (kk < kval) {
      float* yrow = a.y + (kb0 + kk) * a.yk + i * a.wo + ow;
#pragma GCC unroll 4
      for (int j = 0; j < NV; ++j) {
        const V v = a.relu ? V::relu(acc[kk][j]) : acc[kk][j];
        const int64_t col = ow + j * V::N;
        if (col + V::N <= a.wo) {
          v.store(yrow + j * V::N);
        } else if (col < a.wo) {
          store_partial(v, yrow + j * V::N, a.wo - col);
        }
      }
    }
  }
}

template <int KB>
inline void direct_smallc_impl(const nnf::conv::DirectArgs& a) {
  const int64_t crs = a.cg * a.r * a.s;
  // Tap t = (c, r, s) reads pad at c*pplane + r*dh*wpad + s*dw from the row start.
  static thread_local std::vector<int64_t> taps;
  taps.resize(size_t(crs));
  for (int64_t c = 0, t = 0; c < a.cg; ++c)
    for (int64_t r = 0; r < a.r; ++r)
      for (int64_t q = 0; q < a.s; ++q, ++t) taps[size_t(t)] = c * a.pplane + r * a.dh * a.wpad + q * a.dw;
  for (int64_t kb0 = 0; kb0 < a.kg; kb0 += KB) {
    const float* wb = a.wpack + (kb0 / KB) * crs * KB;
    const int kval = int(a.kg - kb0 < KB ? a.kg - kb0 : KB);
    for (int64_t i = 0; i < a.nrows; ++i) {
      int64_t ow = 0;
      while (ow < a.wo) {
        const int64_t vecs = (a.wo - ow + V::N - 1) / V::N;
        // 4 vectors as 2 + 2 rather than 3 + 1: the 1-vector block is load-bound.
        const int nv = vecs > 4 ? 3 : (vecs == 4 ? 2 : int(vecs));
        if (nv == 3) direct_block<KB, 3>(a, wb, taps.data(), crs, kb0, kval, i, ow);
        else if (nv == 2) direct_block<KB, 2>(a, wb, taps.data(), crs, kb0, kval, i, ow);
        else direct_block<KB, 1>(a, wb, taps.data(), crs, kb0, kval, i, ow);
        ow += nv * V::N;
      }
    }
  }
}
