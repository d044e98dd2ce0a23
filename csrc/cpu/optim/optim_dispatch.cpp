// Portable glue for the optimizer kernels: the chunked work list, the thread
// split by element count, per-call scalars (bias corrections in double) and ISA
// the dispatch stubs of the per-ISA loops in this folder.
#include <omp.h>

#include <atomic>
#include <cmath>
#include <vector>

#include "common/threads.h"
#include "cpu/optim/optim.h"

namespace nnf {
namespace optim {

// Each entry point resolves its stub once, before the parallel region (a stub that
// throws must not do so inside it).
NNF_DEFINE_DISPATCH("optim", sgd_chunks_stub);
NNF_DEFINE_DISPATCH("optim", adam_chunks_stub);
NNF_DEFINE_DISPATCH("optim", rmsprop_chunks_stub);
NNF_DEFINE_DISPATCH("optim", adagrad_chunks_stub);
NNF_DEFINE_DISPATCH("optim", sumsq_chunks_stub);
NNF_DEFINE_DISPATCH("optim", finite_chunks_stub);
NNF_DEFINE_DISPATCH("optim", scale_chunks_stub);
NNF_DEFINE_DISPATCH("optim", triad_range_stub);

namespace {

// Threads worth using for a pass that touches `bytes_per_elem` bytes per element:
// one thread below ~1 MB of traffic per extra thread (fork-join ~ a few us).
int threads_for_pass(int64_t elems, double bytes_per_elem) {
  return threads_for(double(elems) * bytes_per_elem, 1.0e6);
}

// The work list for one call: fixed chunks of every non-empty tensor, and the
// first chunk of each thread (bounds[t] .. bounds[t+1]) balanced by elements.
// Reused across calls (grow-only) so the hot path does not allocate.
struct WorkList {
  std::vector<OptChunk> chunks;
  std::vector<int64_t> bounds;
  int64_t elems = 0;
  int nt = 1;

  void build(const std::vector<OptTensor>& ts, double bytes_per_elem) {
    chunks.clear();
    elems = 0;
    for (const OptTensor& t : ts)
      for (int64_t off = 0; off < t.n; off += kOptChunk) {
        const int64_t len = t.n - off < kOptChunk ? t.n - off : kOptChunk;
        chunks.push_back(OptChunk{&t, off, len});
        elems += len;
      }
    nt = threads_for_pass(elems, bytes_per_elem);
    if (nt > int64_t(chunks.size())) nt = chunks.empty() ? 1 : int(chunks.size());
    bounds.assign(size_t(nt) + 1, int64_t(chunks.size()));
    bounds[0] = 0;
    // Chunk c belongs to the thread whose share of elements holds its first one.
    int64_t start = 0;
    int t = 1;
    for (int64_t c = 0; c < int64_t(chunks.size()) && t < nt; ++c) {
      while (t < nt && start * nt >= elems * t) bounds[size_t(t++)] = c;
      start += chunks[size_t(c)].len;
    }
  }
  const OptChunk* begin(int t) const { return chunks.data() + bounds[size_t(t)]; }
  int64_t count(int t) const { return bounds[size_t(t) + 1] - bounds[size_t(t)]; }
};

WorkList& work_list() {
  static thread_local WorkList w;
  return w;
}

// static_split measured faster (AdamW 10M: ~17.5 vs ~11 GB/s median on a busy machine;
// 1M in 50, L3-resident: ~120 vs ~70 GB/s), so it is the default.
std::atomic<int> g_schedule{int(Schedule::static_split)};

// Runs body(first_chunk, count) over the whole work list on w.nt threads.
// static_split: thread t takes chunks bounds[t] .. bounds[t+1] (equal elements).
// dynamic_chunks: threads take one chunk at a time from a shared counter, so a
// thread the OS preempts (a busy machine) does not hold the other one up.
// Either way every chunk is processed by the same code, so results are the same.
template <typename Body>
void parallel_chunks(const WorkList& w, Body body) {
  if (w.nt <= 1) {
    body(w.begin(0), w.count(0));
    return;
  }
  if (Schedule(g_schedule.load(std::memory_order_relaxed)) == Schedule::static_split) {
#pragma omp parallel num_threads(w.nt)
    {
      const int t = omp_get_thread_num();
      if (t < w.nt) body(w.begin(t), w.count(t));
    }
    return;
  }
  const int64_t total = int64_t(w.chunks.size());
  const OptChunk* first = w.chunks.data();
  std::atomic<int64_t> next{0};
#pragma omp parallel num_threads(w.nt)
  {
    for (int64_t c = next.fetch_add(1, std::memory_order_relaxed); c < total;
         c = next.fetch_add(1, std::memory_order_relaxed))
      body(first + c, 1);
  }
}

bool grads_finite(const WorkList& w) {
  const auto finite_chunks = finite_chunks_stub.get();
  std::atomic<bool> finite{true};
  parallel_chunks(w, [&](const OptChunk* c, int64_t n) {
    if (!finite_chunks(c, n)) finite.store(false, std::memory_order_relaxed);
  });
  return finite.load();
}

// Builds the work list and runs the finite pre-pass when asked; false = skip.
bool prepare(WorkList& w, const std::vector<OptTensor>& ts, double bytes_per_elem,
             const GradOptions& o) {
  w.build(ts, bytes_per_elem);
  if (!o.check_finite) return true;
  if (!std::isfinite(o.grad_scale)) return false;
  return grads_finite(w);
}

// Memory traffic per element the optional epilogues add (a mask read, a bf16 copy
// written; every tensor of a call has them or none has: the binding's rule).
double extra_bytes(const std::vector<OptTensor>& ts) {
  if (ts.empty()) return 0.0;
  return (ts[0].mask ? 1.0 : 0.0) + (ts[0].bf16 ? 2.0 : 0.0);
}

float signed_scale(const GradOptions& o) {
  return float(o.maximize ? -o.grad_scale : o.grad_scale);
}

}  // namespace

void set_schedule(Schedule s) { g_schedule.store(int(s)); }
Schedule get_schedule() { return Schedule(g_schedule.load()); }

bool sgd_step(const std::vector<OptTensor>& ts, const SgdHyper& h, const GradOptions& o) {
  WorkList& w = work_list();
  const bool mom = h.momentum != 0.0;
  if (!prepare(w, ts, (mom ? 20.0 : 12.0) + extra_bytes(ts), o)) return false;
  SgdScalars s;
  s.grad_scale = signed_scale(o);
  s.weight_decay = float(h.weight_decay);
  s.momentum = float(h.momentum);
  s.one_minus_dampening = float(1.0 - h.dampening);
  s.neg_lr = float(-h.lr);
  s.has_weight_decay = h.weight_decay != 0.0;
  s.has_momentum = mom;
  s.first_step = h.step == 1;
  s.nesterov = h.nesterov;
  s.zero_grad = o.zero_grad;
  const auto kernel = sgd_chunks_stub.get();
  parallel_chunks(w, [&](const OptChunk* c, int64_t n) { kernel(s, c, n); });
  return true;
}

bool adam_step(const std::vector<OptTensor>& ts, const AdamHyper& h, const GradOptions& o) {
  WorkList& w = work_list();
  if (!prepare(w, ts, (h.amsgrad ? 36.0 : 28.0) + extra_bytes(ts), o)) return false;
  const double step = double(h.step);
  const double bc1 = 1.0 - std::pow(h.beta1, step);
  const double bc2 = 1.0 - std::pow(h.beta2, step);
  AdamScalars s;
  s.grad_scale = signed_scale(o);
  s.l2 = !h.decoupled && h.weight_decay != 0.0;
  s.weight_decay = float(h.weight_decay);
  s.param_decay = h.decoupled ? float(1.0 - h.lr * h.weight_decay) : 1.0f;
  s.one_minus_beta1 = float(1.0 - h.beta1);
  s.beta2 = float(h.beta2);
  s.one_minus_beta2 = float(1.0 - h.beta2);
  s.inv_bias_correction2_sqrt = float(1.0 / std::sqrt(bc2));
  s.eps = float(h.eps);
  s.neg_step_size = float(-(h.lr / bc1));
  s.amsgrad = h.amsgrad;
  s.zero_grad = o.zero_grad;
  const auto kernel = adam_chunks_stub.get();
  parallel_chunks(w, [&](const OptChunk* c, int64_t n) { kernel(s, c, n); });
  return true;
}

bool rmsprop_step(const std::vector<OptTensor>& ts, const RmspropHyper& h, const GradOptions& o) {
  WorkList& w = work_list();
  const bool mom = h.momentum > 0.0;
  if (!prepare(w, ts, 20.0 + (mom ? 8.0 : 0.0) + (h.centered ? 8.0 : 0.0) + extra_bytes(ts), o)) return false;
  RmspropScalars s;
  s.grad_scale = signed_scale(o);
  s.weight_decay = float(h.weight_decay);
  s.alpha = float(h.alpha);
  s.one_minus_alpha = float(1.0 - h.alpha);
  s.eps = float(h.eps);
  s.momentum = float(h.momentum);
  s.neg_lr = float(-h.lr);
  s.has_weight_decay = h.weight_decay != 0.0;
  s.centered = h.centered;
  s.has_momentum = mom;
  s.zero_grad = o.zero_grad;
  const auto kernel = rmsprop_chunks_stub.get();
  parallel_chunks(w, [&](const OptChunk* c, int64_t n) { kernel(s, c, n); });
  return true;
}

bool adagrad_step(const std::vector<OptTensor>& ts, const AdagradHyper& h, const GradOptions& o) {
  WorkList& w = work_list();
  if (!prepare(w, ts, 20.0 + extra_bytes(ts), o)) return false;
  AdagradScalars s;
  s.grad_scale = signed_scale(o);
  s.weight_decay = float(h.weight_decay);
  s.eps = float(h.eps);
  // clr = lr / (1 + (step - 1) * lr_decay)
  s.neg_clr = float(-(h.lr / (1.0 + double(h.step - 1) * h.lr_decay)));
  s.has_weight_decay = h.weight_decay != 0.0;
  s.zero_grad = o.zero_grad;
  const auto kernel = adagrad_chunks_stub.get();
  parallel_chunks(w, [&](const OptChunk* c, int64_t n) { kernel(s, c, n); });
  return true;
}

double grad_norm(const std::vector<OptTensor>& ts) {
  WorkList& w = work_list();
  w.build(ts, 4.0);
  static thread_local std::vector<double> partial;
  partial.assign(w.chunks.size(), 0.0);
  double* part = partial.data();
  const OptChunk* first = w.chunks.data();
  const auto sumsq_chunks = sumsq_chunks_stub.get();
  parallel_chunks(w, [&](const OptChunk* c, int64_t n) { sumsq_chunks(c, n, part + (c - first)); });
  double total = 0.0;
  for (double p : partial) total += p;
  return std::sqrt(total);
}

double clip_coef(double norm, double max_norm, double eps) {
  const double coef = max_norm / (norm + eps);
  return coef < 1.0 ? coef : (std::isnan(coef) ? coef : 1.0);
}

double clip_grad_norm(const std::vector<OptTensor>& ts, double max_norm, double eps) {
  const double norm = grad_norm(ts);
  const double coef = clip_coef(norm, max_norm, eps);
  if (!(coef >= 1.0)) {
    WorkList& w = work_list();
    w.build(ts, 8.0);
    const float c32 = float(coef);
    const auto scale_chunks = scale_chunks_stub.get();
    parallel_chunks(w, [&](const OptChunk* c, int64_t n) { scale_chunks(c32, c, n); });
  }
  return norm;
}

void stream_triad(float* a, const float* b, const float* c, float s, int64_t n) {
  const int nt = threads_for_pass(n, 12.0);
  const auto triad_range = triad_range_stub.get();
  if (nt <= 1) {
    triad_range(a, b, c, s, 0, n);
    return;
  }
#pragma omp parallel num_threads(nt)
  {
    const int t = omp_get_thread_num();
    int64_t per = (n + nt - 1) / nt;
    per = (per + 15) & ~int64_t(15);  // whole cache lines per thread
    const int64_t lo = per * t < n ? per * t : n;
    const int64_t hi = lo + per < n ? lo + per : n;
    triad_range(a, b, c, s, lo, hi);
  }
}

}  // namespace optim
}  // namespace nnf
