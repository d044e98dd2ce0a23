// Portable entry points of the attention family: stubs, thread counts, the backward's
// scratch (the dQ partial sums) and the final dQ reduction.
#include <algorithm>
#include <atomic>
#include <stdexcept>
#include <string>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <new>

#include "common/aligned_buffer.h"
#include "common/checks.h"
#include "common/threads.h"
#include "cpu/attention/attention.h"

namespace nnf {
namespace attn {

NNF_DEFINE_DISPATCH("attention", forward_qk_stub);
NNF_DEFINE_DISPATCH("attention", forward_kq_stub);
NNF_DEFINE_DISPATCH("attention", backward_kv_stub);
NNF_DEFINE_DISPATCH("attention", dq_reduce_stub);

namespace {

std::atomic<int> g_variant{2};

double matmul_flops(const Problem& pr) {  // one Lq x Lk x D product, causal halved
  const double f = 2.0 * double(pr.B) * double(pr.H) * double(pr.Lq) * double(pr.Lk) * double(pr.D);
  return pr.causal ? 0.5 * f : f;
}

int threads_for_tasks(double flops, int64_t tasks) {
  const int nt = threads_for(flops, 2.0e5);
  return int(std::min<int64_t>(nt, std::max<int64_t>(tasks, 1)));
}

// Key chunks per kv head in backward: enough (b, kv head, chunk) tasks to keep 8
// threads busy when B x Hkv is small. A function of the shape only, never of the thread
// count, because the dQ sums run over chunks in order.
int64_t backward_chunks(const Problem& pr) {
  const int64_t nkb = (pr.Lk + kBk - 1) / kBk;
  const int64_t heads = pr.B * pr.Hkv;
  const int64_t want = heads >= 8 ? 1 : (8 + heads - 1) / heads;
  return std::max<int64_t>(1, std::min(want, nkb));
}

}  // namespace

const char* forward_variant() { return g_variant.load(std::memory_order_relaxed) == 1 ? "qk" : "kq"; }
void set_forward_variant(const char* name) {
  const std::string n(name);
  if (n == "qk") {
    g_variant = 1;
  } else if (n == "kq" || n == "auto") {
    g_variant = 2;
  } else {
    throw std::invalid_argument("attention variant must be 'qk', 'kq' or 'auto', got '" + n + "'");
  }
}

void forward(const Problem& pr, View4 q, View4 k, View4 v, MutView4 out, float* lse) {
  if (pr.B == 0 || pr.H == 0 || pr.Lq == 0) return;
  const int64_t ntasks = checked_mul(checked_mul(pr.B, pr.H, "attention tasks"),
                                     (pr.Lq + kBq - 1) / kBq, "attention tasks");
  const int nt = threads_for_tasks(2.0 * matmul_flops(pr) + double(pr.B * pr.H * pr.Lq * pr.D),
                                   ntasks);
  const auto fn = g_variant.load(std::memory_order_relaxed) == 1 ? forward_qk_stub.get() : forward_kq_stub.get();
  fn(pr, q, k, v, out, lse, ntasks, nt);
}

void backward(const Problem& pr, View4 q, View4 k, View4 v, View4 out, View4 dout,
              const float* lse, int64_t lse_sb, int64_t lse_sh, int64_t lse_si, MutView4 dq,
              MutView4 dk, MutView4 dv) {
  if (pr.B == 0 || pr.H == 0) return;
  if (pr.Lq == 0) {  // no query: dk = dv = 0 (no task would write them)
    for (int64_t b = 0; b < pr.B; ++b)
      for (int64_t h = 0; h < pr.Hkv; ++h)
        for (int64_t j = 0; j < pr.Lk; ++j)
          for (int64_t d = 0; d < pr.D; ++d) {
            dk.p[b * dk.sb + h * dk.sh + j * dk.si + d * dk.sd] = 0.0f;
            dv.p[b * dv.sb + h * dv.sh + j * dv.si + d * dv.sd] = 0.0f;
          }
    return;
  }
  const int64_t rows = checked_mul(checked_mul(pr.B, pr.H, "attention rows"), pr.Lq, "attention rows");
  const int64_t dpad = (pr.D + 15) / 16 * 16;
  const int64_t nchunks = pr.Lk == 0 ? 1 : backward_chunks(pr);
  const int64_t part = checked_mul(rows, dpad, "attention dQ partials");
  // The calling thread's grow-only scratch (slot 2: OpenMP thread 0 is this thread and
  // uses slot 0 for its tiles): repeated calls, as in training, fault in no pages.
  float* dqp = thread_scratch(2).floats(size_t(checked_mul(part, nchunks, "attention dQ partials")));
  if (pr.Lk == 0) std::memset(dqp, 0, size_t(part) * sizeof(float));  // no task runs
  const BackwardBuffers bb{lse, lse_sb, lse_sh, lse_si, dqp, nchunks, dpad};
  if (pr.Lk > 0 && rows > 0) {
    const int nt = threads_for_tasks(5.0 * matmul_flops(pr), pr.B * pr.Hkv * nchunks);
    backward_kv_stub.get()(pr, q, k, v, out, dout, bb, dq, dk, dv, nt);
    if (nchunks == 1) return;  // the tasks wrote dq
  }
  const int nt_heads = threads_for_tasks(double(rows) * double(pr.D) * 2.0, pr.B * pr.H);
  dq_reduce_stub.get()(pr, bb, dq, nt_heads);
}

}  // namespace attn
}  // namespace nnf
