// Fused LSTM / GRU / Elman-RNN layers on the CPU with backpropagation through time
// (the oneDNN / cuDNN scheme).
//
// Shapes (PyTorch's layouts, so weights move across unchanged; strides in elements,
// any sign):
//   x (T, B, I), y (T, B, H), h0 / c0 / h_n / c_n (B, H)
//   w_ih (G*H, I), w_hh (G*H, H), b_ih / b_hh (G*H)   G = 4 (LSTM i, f, g, o),
//                                                      3 (GRU r, z, n), 1 (RNN)
//   GRU: n = tanh(W_in x + b_in + r * (W_hn h + b_hn)), h' = (1 - z) n + z h (PyTorch).
//   lengths (B) int64 in [1, T] or null (= all T): sequence b runs for t < lengths[b];
//   with `reverse` it runs from its own last valid step down to 0 (PyTorch's packed
//   bidirectional semantics). Step s of row b is at position pos(s, b) = s, or
//   lengths[b] - 1 - s in reverse; row b is active at step s iff s < lengths[b].
//
// Workspace (T, B, ws_cols(cell, H)) float32, position order, rows t >= lengths[b] zero:
//   LSTM  [i f g o | c]        post-activation gates and the cell state (5H)
//   GRU   [r z n | W_hn h + b_hn]                                        (4H)
//   RNN   [h]                  the post-activation output                 (H)
// Backward recomputes h from it (LSTM o tanh c; GRU the h' recurrence from h0).
//
// Forward: one GEMM for the input projection of all steps (biases folded in), then one
// OpenMP region around the time loop: each thread owns fixed blocks of kUnits hidden
// units with all G gates (w_hh packed so), computes h_{t-1} @ its w_hh panel and the
// fused cell update on the tile, and meets the others at one barrier per step.
// Backward: a reverse time loop of the same shape (gate gradients fused, then
// dh_{t-1} = dgates @ w_hh for the thread's units), then the weight, input and bias
// gradients as merged GEMMs / column sums over all steps. Every output element is a
// reduction in an order fixed by the shape, so results are bitwise identical for any
// thread count. Denormals are flushed (FTZ/DAZ) in the time-loop threads.
#pragma once
#include <cstdint>

#include "common/dispatch.h"

namespace nnf {
namespace rnn {

enum class Cell : int { lstm = 0, gru = 1, rnn_tanh = 2, rnn_relu = 3 };

inline int gates_of(Cell c) { return c == Cell::lstm ? 4 : c == Cell::gru ? 3 : 1; }
inline int ws_blocks_of(Cell c) { return c == Cell::lstm ? 5 : c == Cell::gru ? 4 : 1; }

// Hidden units per thread block: the packed w_hh tile of a block is kUnits x G floats
// wide (one AVX-512 vector per gate), a multiple of every ISA's vector width.
constexpr int64_t kUnits = 16;

struct View3 {  // element (t, b, j) at p[t*st + b*sb + j*sj]; p null means all zeros
  const float* p;
  int64_t st, sb, sj;
};
struct View2 {  // element (b, j) at p[b*sb + j*sj]; p null means all zeros
  const float* p;
  int64_t sb, sj;
};
struct View1 {
  const float* p;
  int64_t s;
};

struct Problem {
  Cell cell;
  int64_t T, B, I, H;
  bool reverse;
  const int64_t* lengths;  // (B) or null
  int64_t len(int64_t b) const { return lengths ? lengths[b] : T; }
  int64_t pos(int64_t s, int64_t b) const { return reverse ? len(b) - 1 - s : s; }
};

// All outputs are C-contiguous and fully overwritten. ws may be null (inference).
//   y (T, B, H), h_n (B, H), c_n (B, H) (LSTM only, else null), ws (T, B, ws_cols)
void forward(const Problem& pr, View3 x, View2 h0, View2 c0, View2 w_ih, View2 w_hh, View1 b_ih,
             View1 b_hh, float* y, float* h_n, float* c_n, float* ws);

// dy / dh_n / dc_n may have null p (zero). Outputs contiguous: dx (T, B, I), dh0 (B, H),
// dc0 (B, H) (LSTM), dw_ih (G*H, I), dw_hh (G*H, H), db_ih / db_hh (G*H) or null.
void backward(const Problem& pr, View3 dy, View2 dh_n, View2 dc_n, View3 x, View2 h0, View2 c0,
              View2 w_ih, View2 w_hh, const float* ws, float* dx, float* dh0, float* dc0,
              float* dw_ih, float* dw_hh, float* db_ih, float* db_hh);

// ---- per-ISA pieces (rnn_forward.per_isa.cpp, rnn_backward.per_isa.cpp) ----------------
// Buffers of the time loops, laid out by rnn_dispatch.cpp. Hp = H rounded up to kUnits.
struct ForwardLoop {
  const float* w_pack;  // (nblk, H, G, kUnits): block j, k, gate g, unit u = w_hh[g*H + j*kU + u, k]
  float* xg;            // (T, B) rows of ldxg floats: x w_ih^T + biases at columns g*H + j
                        // (the workspace itself when training; post-activation gates
                        // overwrite it in place)
  int64_t ldxg;
  bool store_ws;        // write gates / c / hn into xg's rows (training)
  const float* b_hn;    // GRU: (H) the b_hh n part (not folded into xg), or null
  float* h;             // (2, B, Hp) ping-pong hidden state, h[0] = h0 on entry
  float* c;             // (B, Hp) LSTM cell state, c0 on entry, c_n on exit
  float* tiles;         // nt * B * G * kUnits: each thread's GEMM tile
  float* y;             // (T, B, H), zero at inactive positions on entry
};
// h_n is h[(T % 2)] on exit.
NNF_DECLARE_DISPATCH(void (*)(const Problem&, const ForwardLoop&, int nt), forward_loop_stub);

struct BackwardLoop {
  const float* w_t;  // (G*H, Hp): w_hh with its columns padded to Hp (zeros)
  const float* ws;   // (T, B, ws_cols) from forward
  const float* hprev;  // (T, B, H) h_{t-1} of every active step (hidden_prev_stub)
  View3 dy;
  View2 c0;
  float* dg;         // (T, B, G*H) position order: dL/d(pre-activation) through x (w_ih side)
  float* dhn;        // GRU: (T, B, H) r * dan, the gradient of W_hn h + b_hn; else null
  float* dgs;        // (2, B, G*H) the current step's w_hh-side gate gradients (GEMM A)
  float* dh;         // (B, Hp) running dL/dh, dh_n on entry, dh0 on exit
  float* dc;         // (B, Hp) LSTM running dL/dc, dc_n on entry, dc0 on exit
};
NNF_DECLARE_DISPATCH(void (*)(const Problem&, const BackwardLoop&, int nt), backward_loop_stub);

// hprev (T, B, H): the hidden state each active (t, b) read (h0 at a row's first step),
// rebuilt from the workspace; zero at inactive positions. Parallel over unit blocks.
NNF_DECLARE_DISPATCH(void (*)(const Problem&, const float* ws, View2 h0, float* hprev, int nt),
                     hidden_prev_stub);

}  // namespace rnn
}  // namespace nnf
