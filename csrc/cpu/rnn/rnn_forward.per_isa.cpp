// RNN forward time loop: per step, each thread multiplies h_{t-1} (B, H) by the packed
// w_hh panels of its hidden-unit blocks (attention_tile.h's register-blocked GEMM, one
// (B, G*kUnits) tile per block) and applies the cell update to that tile while it is in
// L1: gate non-linearities, c / h update, y and the workspace written. The threads own
// fixed unit blocks for the whole call and meet at one barrier per step (h_t must be
// complete before anyone starts step t+1). Every element is one H-long FMA chain plus
// elementwise maths, so the result does not depend on the thread count.
#include <omp.h>

#include "common/flush_denormals.h"
#include "cpu/attention/attention_tile.h"
#include "cpu/rnn/rnn.h"
#include "cpu/rnn/rnn_cell.h"

namespace nnf {
namespace NNF_ISA_NS {
namespace {

using namespace rnn_cell;
using rnn::ForwardLoop;
using rnn::Problem;

// One row b of block j (units [j0, j0 + n)): a = the row's GEMM tile (gate g at a + g*kUnits),
// hp / hn the previous / next hidden state rows, x the row's xg (x w_ih^T + biases) at
// position t, overwritten by the post-activation gates (and c / hn when kStore).
template <bool kStore>
void lstm_row(int64_t H, int64_t j0, int64_t n, const float* a, float* x, float* c, float* hn,
              float* y) {
#pragma omp simd
  for (int64_t u = 0; u < n; ++u) {
    const float i = vm_sigmoid(a[u] + x[j0 + u]);
    const float f = vm_sigmoid(a[kUnits + u] + x[H + j0 + u]);
    const float g = vm_tanh(a[2 * kUnits + u] + x[2 * H + j0 + u]);
    const float o = vm_sigmoid(a[3 * kUnits + u] + x[3 * H + j0 + u]);
    const float cn = f * c[u] + i * g;
    const float h = lstm_h(o, cn);
    c[u] = cn;
    hn[u] = h;
    y[u] = h;
    x[j0 + u] = i;
    x[H + j0 + u] = f;
    x[2 * H + j0 + u] = g;
    x[3 * H + j0 + u] = o;
    if (kStore) x[4 * H + j0 + u] = cn;
  }
}

template <bool kStore>
void gru_row(int64_t H, int64_t j0, int64_t n, const float* a, const float* b_hn,
             float* x, const float* hp, float* hn, float* y) {
#pragma omp simd
  for (int64_t u = 0; u < n; ++u) {
    const float r = vm_sigmoid(a[u] + x[j0 + u]);
    const float z = vm_sigmoid(a[kUnits + u] + x[H + j0 + u]);
    const float hh = a[2 * kUnits + u] + (b_hn ? b_hn[j0 + u] : 0.0f);
    const float nn = vm_tanh(x[2 * H + j0 + u] + r * hh);
    const float h = gru_h(z, nn, hp[u]);
    hn[u] = h;
    y[u] = h;
    x[j0 + u] = r;
    x[H + j0 + u] = z;
    x[2 * H + j0 + u] = nn;
    if (kStore) x[3 * H + j0 + u] = hh;
  }
}

void rnn_row(bool relu, int64_t j0, int64_t n, const float* a, float* x, float* hn, float* y) {
  if (relu) {
#pragma omp simd
    for (int64_t u = 0; u < n; ++u) {
      const float v = a[u] + x[j0 + u];
      const float h = v > 0.0f ? v : 0.0f;
      hn[u] = h;
      y[u] = h;
      x[j0 + u] = h;
    }
  } else {
#pragma omp simd
    for (int64_t u = 0; u < n; ++u) {
      const float h = vm_tanh(a[u] + x[j0 + u]);
      hn[u] = h;
      y[u] = h;
      x[j0 + u] = h;
    }
  }
}

template <bool kStore>
void forward_loop_impl(const Problem& pr, const ForwardLoop& L, int nt) {
  const int64_t B = pr.B, H = pr.H, G = rnn::gates_of(pr.cell);
  const int64_t Hp = (H + kUnits - 1) / kUnits * kUnits, nblk = Hp / kUnits, N = G * kUnits;
  const bool relu = pr.cell == Cell::rnn_relu;
#pragma omp parallel num_threads(nt)
  {
    FlushDenormals ftz;
    const int tid = omp_get_thread_num(), nth = omp_get_num_threads();
    const int64_t jlo = nblk * tid / nth, jhi = nblk * (tid + 1) / nth;
    float* tile = L.tiles + int64_t(tid) * B * N;
    for (int64_t s = 0; s < pr.T; ++s) {
      const float* hp = L.h + (s & 1) * B * Hp;
      float* hn = L.h + ((s + 1) & 1) * B * Hp;
      for (int64_t j = jlo; j < jhi; ++j) {
        const int64_t j0 = j * kUnits, n = units_in_block(H, j);
        attn_tile::gemm(B, N, H, hp, Hp, 1, L.w_pack + j * H * N, N, tile, N, false);
        for (int64_t b = 0; b < B; ++b) {
          const float* hpr = hp + b * Hp + j0;
          float* hnr = hn + b * Hp + j0;
          if (s >= pr.len(b)) {  // finished: the state carries over, y stays 0
            for (int64_t u = 0; u < n; ++u) hnr[u] = hpr[u];
            continue;
          }
          const int64_t t = pr.pos(s, b);
          float* x = L.xg + (t * B + b) * L.ldxg;
          float* y = L.y + (t * B + b) * H + j0;
          const float* a = tile + b * N;
          if (pr.cell == Cell::lstm) {
            lstm_row<kStore>(H, j0, n, a, x, L.c + b * Hp + j0, hnr, y);
          } else if (pr.cell == Cell::gru) {
            gru_row<kStore>(H, j0, n, a, L.b_hn, x, hpr, hnr, y);
          } else {
            rnn_row(relu, j0, n, a, x, hnr, y);
          }
        }
      }
#pragma omp barrier
    }
  }
}

void forward_loop(const Problem& pr, const ForwardLoop& L, int nt) {
  if (L.store_ws) {
    forward_loop_impl<true>(pr, L, nt);
  } else {
    forward_loop_impl<false>(pr, L, nt);
  }
}

}  // namespace

NNF_REGISTER_PER_ISA(rnn::forward_loop_stub, forward_loop);

}  // namespace NNF_ISA_NS
}  // namespace nnf
