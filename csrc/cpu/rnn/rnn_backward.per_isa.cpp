// RNN backward time loop (BPTT) and the rebuild of h_{t-1} from the workspace.
//
// Per step, in reverse: each thread forms the gate gradients of its hidden-unit blocks
// (fused: dy + the running dh, dc, the stored gates), writes them to dg (position order,
// for the merged weight GEMMs afterwards) and to the step's dgs buffer; one barrier; then
// dh[:, its units] (+)= dgs (B, G*H) @ w_hh[:, its units]. The next step's fused part
// reads only the thread's own dh / dc columns and writes the other dgs buffer, so one
// barrier per step suffices. Each element is one G*H-long FMA chain in a fixed order:
// bitwise identical for any thread count.
#include <omp.h>

#include "common/flush_denormals.h"
#include "cpu/attention/attention_tile.h"
#include "cpu/rnn/rnn.h"
#include "cpu/rnn/rnn_cell.h"

namespace nnf {
namespace NNF_ISA_NS {
namespace {

using namespace rnn_cell;
using rnn::BackwardLoop;
using rnn::Problem;
using rnn::View2;

inline int64_t padded(int64_t H) { return (H + kUnits - 1) / kUnits * kUnits; }

// dy of row b at position t, units [j0, j0 + n), into d (zeros when dy is absent).
inline void load_dy(const rnn::View3& dy, int64_t t, int64_t b, int64_t j0, int64_t n, float* d) {
  if (!dy.p) {
    for (int64_t u = 0; u < n; ++u) d[u] = 0.0f;
    return;
  }
  const float* p = dy.p + t * dy.st + b * dy.sb + j0 * dy.sj;
  for (int64_t u = 0; u < n; ++u) d[u] = p[u * dy.sj];
}

// One active row b at step s (position t) of block j. dgr / dgsr: the row of dg / dgs;
// dh / dc: the running gradients of the row's units (updated to those of step s - 1).
void lstm_row(const Problem& pr, const BackwardLoop& L, int64_t s, int64_t t, int64_t b, int64_t j0,
              int64_t n, const float* dyv, float* dgr, float* dgsr, float* dh, float* dc) {
  const int64_t H = pr.H, ldws = 5 * H;
  const float* w = L.ws + (t * pr.B + b) * ldws;
  float cp[kUnits];
  if (s == 0) {
    for (int64_t u = 0; u < n; ++u) cp[u] = L.c0.p ? L.c0.p[b * L.c0.sb + (j0 + u) * L.c0.sj] : 0.0f;
  } else {
    const float* wp = L.ws + (pr.pos(s - 1, b) * pr.B + b) * ldws + 4 * H + j0;
    for (int64_t u = 0; u < n; ++u) cp[u] = wp[u];
  }
#pragma omp simd
  for (int64_t u = 0; u < n; ++u) {
    const float i = w[j0 + u], f = w[H + j0 + u], g = w[2 * H + j0 + u], o = w[3 * H + j0 + u];
    const float tc = vm_tanh(w[4 * H + j0 + u]);
    const float dhu = dh[u] + dyv[u];
    const float dcu = dc[u] + dhu * o * (1.0f - tc * tc);
    const float dai = dcu * g * i * (1.0f - i);
    const float daf = dcu * cp[u] * f * (1.0f - f);
    const float dag = dcu * i * (1.0f - g * g);
    const float dao = dhu * tc * o * (1.0f - o);
    dc[u] = dcu * f;
    dh[u] = 0.0f;
    dgr[j0 + u] = dgsr[j0 + u] = dai;
    dgr[H + j0 + u] = dgsr[H + j0 + u] = daf;
    dgr[2 * H + j0 + u] = dgsr[2 * H + j0 + u] = dag;
    dgr[3 * H + j0 + u] = dgsr[3 * H + j0 + u] = dao;
  }
}

// GRU: the w_ih side gets dan (the n pre-activation), the w_hh side r * dan (through
// W_hn h + b_hn); h' = (1 - z) n + z h also passes z dh straight to h_{t-1}.
void gru_row(const Problem& pr, const BackwardLoop& L, int64_t t, int64_t b, int64_t j0, int64_t n,
             const float* dyv, float* dgr, float* dgsr, float* dh) {
  const int64_t H = pr.H, row = t * pr.B + b;
  const float* w = L.ws + row * 4 * H;
  const float* hp = L.hprev + row * H + j0;
  float* dhn = L.dhn + row * H + j0;
#pragma omp simd
  for (int64_t u = 0; u < n; ++u) {
    const float r = w[j0 + u], z = w[H + j0 + u], nn = w[2 * H + j0 + u], hh = w[3 * H + j0 + u];
    const float dhu = dh[u] + dyv[u];
    const float dan = dhu * (1.0f - z) * (1.0f - nn * nn);
    const float dar = dan * hh * r * (1.0f - r);
    const float daz = dhu * (hp[u] - nn) * z * (1.0f - z);
    const float dhh = dan * r;
    dh[u] = dhu * z;
    dgr[j0 + u] = dgsr[j0 + u] = dar;
    dgr[H + j0 + u] = dgsr[H + j0 + u] = daz;
    dgr[2 * H + j0 + u] = dan;
    dgsr[2 * H + j0 + u] = dhh;
    dhn[u] = dhh;
  }
}

void rnn_row(const Problem& pr, const BackwardLoop& L, int64_t t, int64_t b, int64_t j0, int64_t n,
             const float* dyv, float* dgr, float* dgsr, float* dh) {
  const float* w = L.ws + (t * pr.B + b) * pr.H + j0;
  if (pr.cell == Cell::rnn_relu) {
#pragma omp simd
    for (int64_t u = 0; u < n; ++u) {
      const float da = w[u] > 0.0f ? dh[u] + dyv[u] : 0.0f;
      dh[u] = 0.0f;
      dgr[j0 + u] = dgsr[j0 + u] = da;
    }
  } else {
#pragma omp simd
    for (int64_t u = 0; u < n; ++u) {
      const float da = (dh[u] + dyv[u]) * (1.0f - w[u] * w[u]);
      dh[u] = 0.0f;
      dgr[j0 + u] = dgsr[j0 + u] = da;
    }
  }
}

void backward_loop(const Problem& pr, const BackwardLoop& L, int nt) {
  const int64_t B = pr.B, H = pr.H, G = rnn::gates_of(pr.cell), GH = G * H;
  const int64_t Hp = padded(H), nblk = Hp / kUnits;
#pragma omp parallel num_threads(nt)
  {
    FlushDenormals ftz;
    const int tid = omp_get_thread_num(), nth = omp_get_num_threads();
    const int64_t jlo = nblk * tid / nth, jhi = nblk * (tid + 1) / nth;
    float dyv[kUnits];
    for (int64_t s = pr.T - 1; s >= 0; --s) {
      float* dgs = L.dgs + (s & 1) * B * GH;
      for (int64_t j = jlo; j < jhi; ++j) {
        const int64_t j0 = j * kUnits, n = units_in_block(H, j);
        for (int64_t b = 0; b < B; ++b) {
          float* dgsr = dgs + b * GH;
          if (s >= pr.len(b)) {  // not started yet (in reverse time): dh, dc carry over
            for (int64_t g = 0; g < G; ++g)
              for (int64_t u = 0; u < n; ++u) dgsr[g * H + j0 + u] = 0.0f;
            continue;
          }
          const int64_t t = pr.pos(s, b);
          load_dy(L.dy, t, b, j0, n, dyv);
          float* dgr = L.dg + (t * B + b) * GH;
          float* dh = L.dh + b * Hp + j0;
          if (pr.cell == Cell::lstm) {
            lstm_row(pr, L, s, t, b, j0, n, dyv, dgr, dgsr, dh, L.dc + b * Hp + j0);
          } else if (pr.cell == Cell::gru) {
            gru_row(pr, L, t, b, j0, n, dyv, dgr, dgsr, dh);
          } else {
            rnn_row(pr, L, t, b, j0, n, dyv, dgr, dgsr, dh);
          }
        }
      }
#pragma omp barrier
      if (jhi > jlo)
        attn_tile::gemm(B, (jhi - jlo) * kUnits, GH, dgs, GH, 1, L.w_t + jlo * kUnits, Hp,
                        L.dh + jlo * kUnits, Hp, true);
    }
  }
}

// hprev (T, B, H): walks each row's steps in order per unit block, carrying h.
void hidden_prev(const Problem& pr, const float* ws, View2 h0, float* hprev, int nt) {
  const int64_t B = pr.B, H = pr.H, nblk = padded(H) / kUnits;
  const int64_t ldws = rnn::ws_blocks_of(pr.cell) * H;
#pragma omp parallel for num_threads(nt) schedule(static)
  for (int64_t j = 0; j < nblk; ++j) {
    const int64_t j0 = j * kUnits, n = units_in_block(H, j);
    float h[kUnits];
    for (int64_t b = 0; b < B; ++b) {
      for (int64_t u = 0; u < n; ++u) h[u] = h0.p ? h0.p[b * h0.sb + (j0 + u) * h0.sj] : 0.0f;
      const int64_t len = pr.len(b);
      for (int64_t t = len; t < pr.T; ++t)  // inactive positions (reverse or not)
        for (int64_t u = 0; u < n; ++u) hprev[(t * B + b) * H + j0 + u] = 0.0f;
      for (int64_t s = 0; s < len; ++s) {
        const int64_t row = pr.pos(s, b) * B + b;
        float* out = hprev + row * H + j0;
        const float* w = ws + row * ldws + j0;
        for (int64_t u = 0; u < n; ++u) out[u] = h[u];
        if (pr.cell == Cell::lstm) {
#pragma omp simd
          for (int64_t u = 0; u < n; ++u) h[u] = lstm_h(w[3 * H + u], w[4 * H + u]);
        } else if (pr.cell == Cell::gru) {
#pragma omp simd
          for (int64_t u = 0; u < n; ++u) h[u] = gru_h(w[H + u], w[2 * H + u], h[u]);
        } else {
          for (int64_t u = 0; u < n; ++u) h[u] = w[u];
        }
      }
    }
  }
}

}  // namespace

NNF_REGISTER_PER_ISA(rnn::backward_loop_stub, backward_loop);
NNF_REGISTER_PER_ISA(rnn::hidden_prev_stub, hidden_prev);

}  // namespace NNF_ISA_NS
}  // namespace nnf
