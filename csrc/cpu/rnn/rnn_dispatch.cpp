// Portable entry points of the RNN family: stubs, scratch layout, w_hh packing, the
// input-projection GEMM before the time loop and the merged gradient GEMMs after it.
#include <algorithm>
#include <cstring>

#include "common/aligned_buffer.h"
#include "common/checks.h"
#include "common/threads.h"
#include "cpu/gemm/gemm.h"
#include "cpu/nn/nn_kernels.h"
#include "cpu/rnn/rnn.h"

namespace nnf {
namespace rnn {

NNF_DEFINE_DISPATCH("rnn", forward_loop_stub);
NNF_DEFINE_DISPATCH("rnn", backward_loop_stub);
NNF_DEFINE_DISPATCH("rnn", hidden_prev_stub);

namespace {

int64_t padded_units(int64_t H) { return (H + kUnits - 1) / kUnits * kUnits; }

// One grow-only buffer per calling thread, carved into the call's pieces (64-byte
// aligned each): repeated calls, as in training, allocate nothing.
class Carver {
 public:
  explicit Carver(AlignedBuffer& buf) : buf_(buf) {}
  // Records a piece of n floats; pointers are valid after commit().
  size_t add(int64_t n) {
    const size_t at = size_;
    size_ = size_t(checked_add(int64_t(size_), (n + 15) / 16 * 16, "rnn scratch"));
    return at;
  }
  void commit() { base_ = buf_.floats(size_ + 16); }
  float* at(size_t offset) const { return base_ + offset; }

 private:
  AlignedBuffer& buf_;
  size_t size_ = 0;
  float* base_ = nullptr;
};

AlignedBuffer& scratch() {
  static thread_local AlignedBuffer buf;
  return buf;
}

// x (T, B, I) as a (T*B, I) matrix: in place when row t*B + b sits at (t*B + b) * sb
// (or T or B is 1), else copied into `copy` (T*B*I floats).
MatRef x_matrix(const Problem& pr, const View3& x, float* copy) {
  if (pr.B == 1) return MatRef{x.p, x.st, x.sj};
  if (pr.T == 1 || x.st == pr.B * x.sb) return MatRef{x.p, x.sb, x.sj};
  for (int64_t t = 0; t < pr.T; ++t)
    for (int64_t b = 0; b < pr.B; ++b)
      for (int64_t i = 0; i < pr.I; ++i)
        copy[(t * pr.B + b) * pr.I + i] = x.p[t * x.st + b * x.sb + i * x.sj];
  return MatRef{copy, pr.I, 1};
}
bool x_needs_copy(const Problem& pr, const View3& x) {
  return !(pr.B == 1 || pr.T == 1 || x.st == pr.B * x.sb);
}

// (B, H) view into a (B, ld) buffer, zero-filling columns [H, ld).
void load_state(const Problem& pr, const View2& v, float* dst, int64_t ld) {
  for (int64_t b = 0; b < pr.B; ++b)
    for (int64_t j = 0; j < ld; ++j)
      dst[b * ld + j] = (v.p && j < pr.H) ? v.p[b * v.sb + j * v.sj] : 0.0f;
}
void store_state(const Problem& pr, const float* src, int64_t ld, float* dst) {
  for (int64_t b = 0; b < pr.B; ++b) std::memcpy(dst + b * pr.H, src + b * ld, size_t(pr.H) * sizeof(float));
}

// Threads for the time loops: at most one per unit block, and only when a step's work
// (2 B G H^2 FLOPs) pays for a barrier per step.
int loop_threads(const Problem& pr) {
  const int64_t nblk = padded_units(pr.H) / kUnits;
  const double step = 2.0 * double(pr.B) * double(gates_of(pr.cell)) * double(pr.H) * double(pr.H);
  return int(std::min<int64_t>(threads_for(step, 1.0e5), nblk));
}

// Zeroes rows (t, b) with t >= lengths[b] of a (T, B, cols) array.
void zero_inactive(const Problem& pr, float* a, int64_t cols) {
  if (!pr.lengths) return;
  for (int64_t b = 0; b < pr.B; ++b)
    for (int64_t t = pr.len(b); t < pr.T; ++t)
      std::memset(a + (t * pr.B + b) * cols, 0, size_t(cols) * sizeof(float));
}

}  // namespace

void forward(const Problem& pr, View3 x, View2 h0, View2 c0, View2 w_ih, View2 w_hh, View1 b_ih,
             View1 b_hh, float* y, float* h_n, float* c_n, float* ws) {
  const int64_t T = pr.T, B = pr.B, I = pr.I, H = pr.H, G = gates_of(pr.cell), GH = G * H;
  const int64_t Hp = padded_units(H), nblk = Hp / kUnits, N = G * kUnits;
  const int64_t rows = checked_mul(T, B, "T*B");
  const int nt = std::max(1, loop_threads(pr));
  const bool gru = pr.cell == Cell::gru;

  Carver cv(scratch());
  const size_t o_pack = cv.add(checked_mul(checked_mul(nblk, H, "w_hh pack"), N, "w_hh pack"));
  const size_t o_h = cv.add(2 * B * Hp), o_c = cv.add(B * Hp), o_tiles = cv.add(int64_t(nt) * B * N);
  const size_t o_bias = cv.add(GH), o_bhn = cv.add(H);
  const bool copy_x = x_needs_copy(pr, x);
  const size_t o_x = cv.add(copy_x ? checked_mul(rows, I, "x copy") : 0);
  const size_t o_xg = cv.add(ws ? 0 : checked_mul(rows, GH, "gates"));
  cv.commit();

  // w_pack[j][k][g][u] = w_hh[g*H + j*kUnits + u][k]: block j's panel is all G gates of
  // its units, so a thread's fused update needs nothing another thread computed.
  float* w_pack = cv.at(o_pack);
  for (int64_t j = 0; j < nblk; ++j)
    for (int64_t k = 0; k < H; ++k)
      for (int64_t g = 0; g < G; ++g) {
        float* dst = w_pack + ((j * H + k) * G + g) * kUnits;
        for (int64_t u = 0; u < kUnits; ++u) {
          const int64_t unit = j * kUnits + u;
          dst[u] = unit < H ? w_hh.p[(g * H + unit) * w_hh.sb + k * w_hh.sj] : 0.0f;
        }
      }

  // Both biases fold into the projection, except GRU's b_hn (it sits inside r * (...)).
  float* bias = cv.at(o_bias);
  for (int64_t k = 0; k < GH; ++k) {
    const float bi = b_ih.p ? b_ih.p[k * b_ih.s] : 0.0f;
    const float bh = (b_hh.p && !(gru && k >= 2 * H)) ? b_hh.p[k * b_hh.s] : 0.0f;
    bias[k] = bi + bh;
  }
  float* b_hn = nullptr;
  if (gru && b_hh.p) {
    b_hn = cv.at(o_bhn);
    for (int64_t j = 0; j < H; ++j) b_hn[j] = b_hh.p[(2 * H + j) * b_hh.s];
  }

  const int64_t ldxg = ws ? ws_blocks_of(pr.cell) * H : GH;
  float* xg = ws ? ws : cv.at(o_xg);
  GemmEpilogue ep;
  if (b_ih.p || b_hh.p) {
    ep.bias_mode = BiasMode::per_column;
    ep.bias = bias;
  }
  // xg (T*B, G*H) = x (T*B, I) @ w_ih^T + biases, every step at once.
  sgemm(rows, GH, I, 1.0f, x_matrix(pr, x, cv.at(o_x)), MatRef{w_ih.p, w_ih.sj, w_ih.sb}, 0.0f,
        MutMatRef{xg, ldxg, 1}, ep);
  if (ws) zero_inactive(pr, ws, ldxg);
  zero_inactive(pr, y, H);

  float* h = cv.at(o_h);
  load_state(pr, h0, h, Hp);
  float* c = cv.at(o_c);
  if (pr.cell == Cell::lstm) load_state(pr, c0, c, Hp);
  const ForwardLoop L{w_pack, xg, ldxg, ws != nullptr, b_hn, h, c, cv.at(o_tiles), y};
  forward_loop_stub.get()(pr, L, nt);
  store_state(pr, h + (T & 1) * B * Hp, Hp, h_n);
  if (c_n) store_state(pr, c, Hp, c_n);
}

void backward(const Problem& pr, View3 dy, View2 dh_n, View2 dc_n, View3 x, View2 h0, View2 c0,
              View2 w_ih, View2 w_hh, const float* ws, float* dx, float* dh0, float* dc0,
              float* dw_ih, float* dw_hh, float* db_ih, float* db_hh) {
  const int64_t T = pr.T, B = pr.B, I = pr.I, H = pr.H, G = gates_of(pr.cell), GH = G * H;
  const int64_t Hp = padded_units(H);
  const int64_t rows = checked_mul(T, B, "T*B");
  const int nt = std::max(1, loop_threads(pr));
  const bool gru = pr.cell == Cell::gru;

  Carver cv(scratch());
  const size_t o_wt = cv.add(checked_mul(GH, Hp, "w_hh copy"));
  const size_t o_hprev = cv.add(checked_mul(rows, H, "h states"));
  const size_t o_dg = cv.add(checked_mul(rows, GH, "gate gradients"));
  const size_t o_dhn = cv.add(gru ? rows * H : 0);
  const size_t o_dgs = cv.add(2 * B * GH), o_dh = cv.add(B * Hp), o_dc = cv.add(B * Hp);
  const bool copy_x = x_needs_copy(pr, x);
  const size_t o_x = cv.add(copy_x ? checked_mul(rows, I, "x copy") : 0);
  cv.commit();

  // w_t (G*H, Hp) = w_hh with zero columns up to Hp: B operand of dh = dgates @ w_hh.
  float* w_t = cv.at(o_wt);
  for (int64_t k = 0; k < GH; ++k)
    for (int64_t j = 0; j < Hp; ++j) w_t[k * Hp + j] = j < H ? w_hh.p[k * w_hh.sb + j * w_hh.sj] : 0.0f;

  float* hprev = cv.at(o_hprev);
  hidden_prev_stub.get()(pr, ws, h0, hprev, nt);
  float* dg = cv.at(o_dg);
  float* dhn = gru ? cv.at(o_dhn) : nullptr;
  zero_inactive(pr, dg, GH);  // the loop writes active rows only
  if (dhn) zero_inactive(pr, dhn, H);
  float* dh = cv.at(o_dh);
  float* dc = cv.at(o_dc);
  load_state(pr, dh_n, dh, Hp);
  if (pr.cell == Cell::lstm) load_state(pr, dc_n, dc, Hp);
  const BackwardLoop L{w_t, ws, hprev, dy, c0, dg, dhn, cv.at(o_dgs), dh, dc};
  backward_loop_stub.get()(pr, L, nt);
  store_state(pr, dh, Hp, dh0);
  if (dc0) store_state(pr, dc, Hp, dc0);

  // The merged GEMMs over all steps (rows of dg at inactive (t, b) are zero).
  const MatRef X = x_matrix(pr, x, cv.at(o_x));
  const MatRef dG{dg, GH, 1}, dGt{dg, 1, GH};
  sgemm(rows, I, GH, 1.0f, dG, MatRef{w_ih.p, w_ih.sb, w_ih.sj}, 0.0f, MutMatRef{dx, I, 1});
  sgemm(GH, I, rows, 1.0f, dGt, X, 0.0f, MutMatRef{dw_ih, I, 1});
  const MatRef Hprev{hprev, H, 1};
  if (gru) {  // w_hh's n rows see r * dan (dhn), its r, z rows the same dg as w_ih
    sgemm(2 * H, H, rows, 1.0f, dGt, Hprev, 0.0f, MutMatRef{dw_hh, H, 1});
    sgemm(H, H, rows, 1.0f, MatRef{dhn, 1, H}, Hprev, 0.0f, MutMatRef{dw_hh + 2 * H * H, H, 1});
  } else {
    sgemm(GH, H, rows, 1.0f, dGt, Hprev, 0.0f, MutMatRef{dw_hh, H, 1});
  }
  if (db_ih) nn::sum_rows(rows, GH, dg, GH, db_ih, false);
  if (db_hh) {
    if (db_ih) {
      std::memcpy(db_hh, db_ih, size_t(gru ? 2 * H : GH) * sizeof(float));
    } else {
      nn::sum_rows(rows, gru ? 2 * H : GH, dg, GH, db_hh, false);
    }
    if (gru) nn::sum_rows(rows, H, dhn, H, db_hh + 2 * H, false);
  }
}

}  // namespace rnn
}  // namespace nnf
