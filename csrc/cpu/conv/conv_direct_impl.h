// Direct convolution body (direct_smallc and implicit_gemm), shared by the per-ISA
// files. Include it INSIDE an anonymous namespace after defining `struct V` (vector of
// V::N floats: zero, bcast, load, fma, relu, store), `kKBP` (output channels per packed
// weight block) and `kb_for<NV>()` (channels per register tile for NV vectors), so each
// ISA gets its own internal-linkage copy (no ODR merging of AVX-512 code into AVX2).
//
// Register tile: KB output channels x NV vectors of output columns. Per (c, r, s) tap
// it loads NV input vectors and KB broadcast weights for KB*NV FMAs: 4x3 / 6x2 on AVX2
// (12 accumulators, the load:FMA ratio of the 6x16 GEMM micro-kernel), 8x3 / 12x2 on
// AVX-512. The taps are read from zero-padded input rows in place (an implicit GEMM:
// no im2col buffer), so for C*R*S = 9 or 27 nothing is wasted on C-tile traffic and
// for many channels nothing on im2col copies.
// Accumulation order per output: bias (or 0), then c, r, s ascending: fixed.

template <int KB, int NV>
inline void direct_block(const nnf::conv::DirectArgs& a, const float* wb, const int64_t* taps,
                         int64_t ntaps, int64_t k0, int64_t i, int64_t ow) {
  // One flat loop over the taps (offsets precomputed) so the compiler keeps acc in
  // registers; nested runtime c/r/s loops made GCC spill acc to the stack every tap.
  // Small tiles (the 1- or 3-channel output of dx for a first layer) would wait on
  // the FMA latency with only KB*NV chains, so U interleaved accumulator sets take
  // alternate taps (summed in a fixed order at the end).
  constexpr int U = KB * NV >= 8 ? 1 : (KB * NV >= 4 ? 2 : 4);
  V acc[U][KB][NV];
#pragma GCC unroll 16
  for (int kk = 0; kk < KB; ++kk) {
    const V b0 = a.bpack ? V::bcast(a.bpack + k0 + kk) : V::zero();
#pragma GCC unroll 4
    for (int j = 0; j < NV; ++j) {
      acc[0][kk][j] = b0;
#pragma GCC unroll 4
      for (int u = 1; u < U; ++u) acc[u][kk][j] = V::zero();
    }
  }
  const float* in = a.pad + i * a.sh * a.wpad + ow;
  auto tap = [&](int u, int64_t t) __attribute__((always_inline)) {
    const float* inq = in + taps[t];
    const float* wq = wb + t * kKBP;
    V xv[NV];
#pragma GCC unroll 4
    for (int j = 0; j < NV; ++j) xv[j] = V::load(inq + j * V::N);
#pragma GCC unroll 16
    for (int kk = 0; kk < KB; ++kk) {
      const V wv = V::bcast(wq + kk);
#pragma GCC unroll 4
      for (int j = 0; j < NV; ++j) acc[u][kk][j] = V::fma(wv, xv[j], acc[u][kk][j]);
    }
  };
  int64_t t = 0;
  for (; t + U <= ntaps; t += U) {
#pragma GCC unroll 4
    for (int u = 0; u < U; ++u) tap(u, t + u);
  }
  for (; t < ntaps; ++t) tap(0, t);
#pragma GCC unroll 4
  for (int u = 1; u < U; ++u)
#pragma GCC unroll 16
    for (int kk = 0; kk < KB; ++kk)
#pragma GCC unroll 4
      for (int j = 0; j < NV; ++j) acc[0][kk][j] = V::add(acc[0][kk][j], acc[u][kk][j]);
  // Compile-time kk / j loops (a runtime bound would force acc into memory).
#pragma GCC unroll 16
  for (int kk = 0; kk < KB; ++kk) {
    {
      float* yrow = a.y + (k0 + kk) * a.yk + i * a.wo + ow;
#pragma GCC unroll 4
      for (int j = 0; j < NV; ++j) {
        const V v = a.relu ? V::relu(acc[0][kk][j]) : acc[0][kk][j];
        const int64_t col = ow + j * V::N;
        // A whole-vector store may run past the row end into this item's next rows of
        // the same channel: they are computed (and overwritten) later by this thread.
        // Only the item's last row (next rows belong to another item) needs a masked
        // store, which is slow on AMD cores.
        if (i * a.wo + col + V::N <= a.nrows * a.wo) {
          v.store(yrow + j * V::N);
        } else if (col < a.wo) {
          v.store_first(yrow + j * V::N, int(a.wo - col));
        }
      }
    }
  }
}

// A remainder of `rem` (< KB) channels as one exact tile (no FMAs on padding channels:
// dx of a 1- or 3-channel layer has only 1 or 3 output channels).
template <int NV, int KB>
inline void direct_remainder(const nnf::conv::DirectArgs& a, const float* wb, const int64_t* taps,
                             int64_t ntaps, int64_t k0, int rem, int64_t i, int64_t ow) {
  if constexpr (KB > 1) {
    if (rem == KB - 1) direct_block<KB - 1, NV>(a, wb, taps, ntaps, k0, i, ow);
    else direct_remainder<NV, KB - 1>(a, wb, taps, ntaps, k0, rem, i, ow);
  }
}

// Every output channel of one packed block (kKBP channels, kvalid of them real) for
// NV vectors of row i starting at column ow, in register tiles of kb_for<NV>().
template <int NV>
inline void direct_columns(const nnf::conv::DirectArgs& a, const float* wb, const int64_t* taps,
                           int64_t ntaps, int64_t kbase, int kvalid, int64_t i, int64_t ow) {
  constexpr int KB = kb_for<NV>();
  int sub = 0;
  for (; sub + KB <= kvalid; sub += KB) direct_block<KB, NV>(a, wb + sub, taps, ntaps, kbase + sub, i, ow);
  if (sub < kvalid) direct_remainder<NV, KB>(a, wb + sub, taps, ntaps, kbase + sub, kvalid - sub, i, ow);
}

// Offset into the padded input of each tap t = (c, r, s): c*pplane + r*dh*wpad plus the
// stride phase and shift of column s*dw. One per-thread vector, reused across calls.
template <class Args>
inline const std::vector<int64_t>& tap_offsets(const Args& a) {
  static thread_local std::vector<int64_t> taps;
  taps.resize(size_t(a.cg * a.r * a.s));
  for (int64_t c = 0, t = 0; c < a.cg; ++c)
    for (int64_t r = 0; r < a.r; ++r)
      for (int64_t q = 0; q < a.s; ++q, ++t)
        taps[size_t(t)] = c * a.pplane + r * a.dh * a.wpad + (q * a.dw) % a.sw * a.wphase + (q * a.dw) / a.sw;
  return taps;
}

inline void direct_impl(const nnf::conv::DirectArgs& a) {
  const int64_t crs = a.cg * a.r * a.s;
  const std::vector<int64_t>& taps = tap_offsets(a);
  // Channel blocks outer: one block's weights (C*R*S*KBP floats) stay in L1 while
  // every row of the item (padded rows sized for L2 by the caller) passes under them;
  // measured faster than rows outer (weights from L2 on every tap).
  for (int64_t kb0 = 0; kb0 < a.kg; kb0 += kKBP) {
    const float* wb = a.wpack + (kb0 / kKBP) * crs * kKBP;
    const int kvalid = int(a.kg - kb0 < kKBP ? a.kg - kb0 : kKBP);
    for (int64_t i = 0; i < a.nrows; ++i) {
      int64_t ow = 0;
      while (ow < a.wo) {
        const int64_t vecs = (a.wo - ow + V::N - 1) / V::N;
        // 4 vectors as 2 + 2 rather than 3 + 1: the 1-vector tile is load-bound.
        const int nv = vecs > 4 ? 3 : (vecs == 4 ? 2 : int(vecs));
        if (nv == 3) direct_columns<3>(a, wb, taps.data(), crs, kb0, kvalid, i, ow);
        else if (nv == 2) direct_columns<2>(a, wb, taps.data(), crs, kb0, kvalid, i, ow);
        else direct_columns<1>(a, wb, taps.data(), crs, kb0, kvalid, i, ow);
        ow += nv * V::N;
      }
    }
  }
}

#define NNF_DW_ALWAYS_INLINE __attribute__((always_inline))

// ---- dW (see DirectDwArgs) ---------------------------------------------------------
template <int KB, int TB>
inline void dw_block(const nnf::conv::DirectDwArgs& a, const int64_t* taps, int64_t crs,
                     int64_t k0, int64_t t0) {
  V acc[KB][TB];
#pragma GCC unroll 16
  for (int kk = 0; kk < KB; ++kk)
#pragma GCC unroll 16
    for (int tt = 0; tt < TB; ++tt) acc[kk][tt] = V::zero();
  const float* xp[TB];
#pragma GCC unroll 16
  for (int tt = 0; tt < TB; ++tt) xp[tt] = a.pad + taps[t0 + tt];
  const float* dp = a.dy + k0 * a.dyk;
  // The last vector's lanes past wo hold dy = 0 but x from beyond the output window
  // (the next padded row): they are loaded as 0 so an inf there cannot make 0 * inf.
  // That vector is peeled off so the main loop keeps plain loads.
  const int last_lanes = int(a.wo - (a.nvec - 1) * V::N);
  const int64_t full = last_lanes == V::N ? a.nvec : a.nvec - 1;
  auto step = [&](int64_t doff, const int64_t xoff, int64_t v, bool tail) NNF_DW_ALWAYS_INLINE {
    V d[KB];
#pragma GCC unroll 16
    for (int kk = 0; kk < KB; ++kk) d[kk] = V::load(dp + kk * a.dyk + doff + v * V::N);
#pragma GCC unroll 16
    for (int tt = 0; tt < TB; ++tt) {
      const float* xq = xp[tt] + xoff + v * V::N;
      const V xv = tail ? V::load_first(xq, last_lanes) : V::load(xq);
#pragma GCC unroll 16
      for (int kk = 0; kk < KB; ++kk) acc[kk][tt] = V::fma(d[kk], xv, acc[kk][tt]);
    }
  };
  for (int64_t i = 0; i < a.nrows; ++i) {
    const int64_t xoff = i * a.sh * a.wpad, doff = i * a.ldy;
    for (int64_t v = 0; v < full; ++v) step(doff, xoff, v, false);
    if (full < a.nvec) step(doff, xoff, full, true);
  }
#pragma GCC unroll 16
  for (int kk = 0; kk < KB; ++kk)
#pragma GCC unroll 16
    for (int tt = 0; tt < TB; ++tt) a.partial[(k0 + kk) * crs + t0 + tt] += acc[kk][tt].hsum();
}

template <int KB, int TB>
inline void dw_tap_rem(const nnf::conv::DirectDwArgs& a, const int64_t* taps, int64_t crs,
                       int64_t k0, int64_t t0, int rem) {
  if constexpr (TB > 1) {
    if (rem == TB - 1) dw_block<KB, TB - 1>(a, taps, crs, k0, t0);
    else dw_tap_rem<KB, TB - 1>(a, taps, crs, k0, t0, rem);
  }
}

template <int KB>
inline void dw_channels(const nnf::conv::DirectDwArgs& a, const int64_t* taps, int64_t crs,
                        int64_t k0) {
  int64_t t0 = 0;
  for (; t0 + kDwTB <= crs; t0 += kDwTB) dw_block<KB, kDwTB>(a, taps, crs, k0, t0);
  if (t0 < crs) dw_tap_rem<KB, kDwTB>(a, taps, crs, k0, t0, int(crs - t0));
}

template <int KB>
inline void dw_channel_rem(const nnf::conv::DirectDwArgs& a, const int64_t* taps, int64_t crs,
                           int64_t k0, int rem) {
  if constexpr (KB > 1) {
    if (rem == KB - 1) dw_channels<KB - 1>(a, taps, crs, k0);
    else dw_channel_rem<KB - 1>(a, taps, crs, k0, rem);
  }
}

inline void direct_dw_impl(const nnf::conv::DirectDwArgs& a) {
  const int64_t crs = a.cg * a.r * a.s;
  const std::vector<int64_t>& taps = tap_offsets(a);
  int64_t k0 = 0;
  for (; k0 + kDwKB <= a.kg; k0 += kDwKB) dw_channels<kDwKB>(a, taps.data(), crs, k0);
  if (k0 < a.kg) dw_channel_rem<kDwKB>(a, taps.data(), crs, k0, int(a.kg - k0));
}
