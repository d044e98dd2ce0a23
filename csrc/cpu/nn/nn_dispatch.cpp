// Portable glue for the nn kernels: their dispatch stubs, thread counts, index
// validation, and the per-channel/per-call scalar algebra (batch-norm
// coefficients, loss normalisation) around the per-ISA loops.
#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <stdexcept>
#include <string>
#include <vector>

#include "common/threads.h"
#include "cpu/nn/nn_kernels.h"

namespace nnf {
namespace nn {

NNF_DEFINE_DISPATCH("nn", softmax_rows_stub);
NNF_DEFINE_DISPATCH("nn", log_softmax_rows_stub);
NNF_DEFINE_DISPATCH("nn", softmax_backward_rows_stub);
NNF_DEFINE_DISPATCH("nn", log_softmax_backward_rows_stub);
NNF_DEFINE_DISPATCH("nn", cross_entropy_rows_stub);
NNF_DEFINE_DISPATCH("nn", eltwise_stub);
NNF_DEFINE_DISPATCH("nn", layer_norm_rows_stub);
NNF_DEFINE_DISPATCH("nn", layer_norm_backward_chunks_stub);
NNF_DEFINE_DISPATCH("nn", sum_chunk_partials_stub);
NNF_DEFINE_DISPATCH("nn", channel_sums_stub);
NNF_DEFINE_DISPATCH("nn", channel_affine_stub);
NNF_DEFINE_DISPATCH("nn", dropout_forward_stub);
NNF_DEFINE_DISPATCH("nn", dropout_backward_stub);
NNF_DEFINE_DISPATCH("nn", sum_rows_stub);
NNF_DEFINE_DISPATCH("nn", embedding_backward_stub);

namespace {

// Rough cost per element, in "simple flops", for threads_for().
constexpr double kCostExp = 12.0;
constexpr double kCostSimple = 2.0;

// Copies validated indices into int64 scratch; throws naming the first bad one.
std::vector<int64_t> checked_indices(IndexRef idx, int64_t count, int64_t limit,
                                     const char* what) {
  std::vector<int64_t> out(static_cast<size_t>(count));
  for (int64_t i = 0; i < count; ++i) {
    const int64_t v = idx.at(i);
    if (v < 0 || v >= limit)
      throw std::invalid_argument(std::string(what) + " " + std::to_string(v) + " at position " +
                                  std::to_string(i) + " is out of range [0, " +
                                  std::to_string(limit) + ")");
    out[static_cast<size_t>(i)] = v;
  }
  return out;
}

double cost_of(EltOp op) {
  switch (op) {
    case EltOp::tanh: case EltOp::sigmoid: case EltOp::gelu_tanh: case EltOp::gelu_tanh_backward:
      return kCostExp;
    case EltOp::gelu_erf: case EltOp::gelu_erf_backward:
      return 4 * kCostExp;  // scalar erfc
    default:
      return 1.0;
  }
}

}  // namespace

void softmax(int64_t rows, int64_t n, const float* x, int64_t ldx, float* y, int64_t ldy,
             bool log) {
  if (rows == 0 || n == 0) return;
  const int nt = threads_for(double(rows) * double(n) * kCostExp);
  if (log) {
    log_softmax_rows_stub.get()(rows, n, x, ldx, y, ldy, nt);
  } else {
    softmax_rows_stub.get()(rows, n, x, ldx, y, ldy, nt);
  }
}

void softmax_backward(int64_t rows, int64_t n, const float* y, int64_t ldy, const float* dy,
                      int64_t lddy, float* dx, int64_t lddx, bool log) {
  if (rows == 0 || n == 0) return;
  const int nt = threads_for(double(rows) * double(n) * (log ? kCostExp : kCostSimple));
  if (log) {
    log_softmax_backward_rows_stub.get()(rows, n, y, ldy, dy, lddy, dx, lddx, nt);
  } else {
    softmax_backward_rows_stub.get()(rows, n, y, ldy, dy, lddy, dx, lddx, nt);
  }
}

double cross_entropy(int64_t rows, int64_t c, const float* z, int64_t ldz, IndexRef labels,
                     const float* weight, float smoothing, Reduction reduction,
                     float* loss_rows, float* dz, int64_t lddz) {
  const std::vector<int64_t> y = checked_indices(labels, rows, c, "label");
  double weight_total = double(c);
  if (weight) {
    weight_total = 0.0;
    for (int64_t k = 0; k < c; ++k) weight_total += weight[k];
  }
  // torch: a weighted mean divides by the summed weights of the targets.
  double denom = double(rows);
  if (weight) {
    denom = 0.0;
    for (int64_t i = 0; i < rows; ++i) denom += weight[y[size_t(i)]];
  }
  const double grad_scale = reduction == Reduction::mean ? 1.0 / denom : 1.0;
  std::vector<float> scratch;
  if (!loss_rows) {
    scratch.resize(size_t(rows));
    loss_rows = scratch.data();
  }
  const int nt = threads_for(double(rows) * double(c) * (dz ? 2 : 1) * kCostExp);
  cross_entropy_rows_stub.get()(rows, c, z, ldz, y.data(), weight, smoothing,
                                float(weight_total), float(grad_scale), loss_rows, dz, lddz, nt);
  double total = 0.0;  // fixed order: row 0, 1, ...
  for (int64_t i = 0; i < rows; ++i) total += loss_rows[i];
  return reduction == Reduction::mean ? total / denom : total;
}

void eltwise(EltOp op, int64_t n, const float* a, const float* b, float param, float* out) {
  if (n == 0) return;
  const int nt = threads_for(double(n) * cost_of(op));
  eltwise_stub.get()(op, n, a, b, param, out, nt);
}

void layer_norm(int64_t rows, int64_t d, const float* x, int64_t ldx, const float* gamma,
                const float* beta, float eps, float* y, int64_t ldy, float* mean, float* rstd) {
  if (d == 0) {
    // Mean and variance of an empty row are 0/0: NaN, as in torch.native_layer_norm
    // (the outputs are fresh arrays and must not be left uninitialised).
    const float nan = std::numeric_limits<float>::quiet_NaN();
    for (int64_t r = 0; r < rows; ++r) mean[r] = rstd[r] = nan;
    return;
  }
  if (rows == 0) return;
  const int nt = threads_for(double(rows) * double(d) * 4.0);
  layer_norm_rows_stub.get()(rows, d, x, ldx, gamma, beta, eps, y, ldy, mean, rstd, nt);
}

void layer_norm_backward(int64_t rows, int64_t d, const float* dy, int64_t lddy, const float* x,
                         int64_t ldx, const float* gamma, const float* mean, const float* rstd,
                         float* dx, int64_t lddx, float* dgamma, float* dbeta) {
  if (d == 0) return;
  if (rows == 0) {
    if (dgamma) std::memset(dgamma, 0, sizeof(float) * size_t(d));
    if (dbeta) std::memset(dbeta, 0, sizeof(float) * size_t(d));
    return;
  }
  // At most 64 chunks (bounded scratch), at least 32 rows each; depends on rows
  // only, so the summation order is the same for any thread count.
  const int64_t chunk_rows = std::max<int64_t>(32, (rows + 63) / 64);
  const int64_t nchunks = (rows + chunk_rows - 1) / chunk_rows;
  std::vector<float> partial;
  if (dgamma || dbeta) partial.resize(size_t(nchunks) * size_t(d) * 2);
  float* pdg = dgamma ? partial.data() : nullptr;
  float* pdb = dbeta ? partial.data() + nchunks * d : nullptr;
  const int nt = threads_for(double(rows) * double(d) * 8.0);
  layer_norm_backward_chunks_stub.get()(rows, d, chunk_rows, dy, lddy, x, ldx, gamma,
                                        mean, rstd, dx, lddx, pdg, pdb, nt);
  const int nt2 = threads_for(double(nchunks) * double(d));
  if (dgamma) sum_chunk_partials_stub.get()(nchunks, d, pdg, dgamma, nt2);
  if (dbeta) sum_chunk_partials_stub.get()(nchunks, d, pdb, dbeta, nt2);
}

void batch_norm(int64_t n, int64_t c, int64_t s, const float* x, const float* gamma,
                const float* beta, float* running_mean, float* running_var, bool training,
                float momentum, float eps, float* y, float* save_mean, float* save_rstd) {
  if (c == 0) return;
  const int64_t m = n * s;  // values per channel
  const int nt = threads_for(double(m) * double(c) * 2.0);
  const size_t cs = size_t(c);
  std::vector<float> scale(cs), shift(cs), mean_f(cs);
  if (training) {
    std::vector<double> s1(cs), s2(cs);
    channel_sums_stub.get()(n, c, s, x, nullptr, nullptr, nullptr, s1.data(), nullptr, nt);
    for (size_t k = 0; k < cs; ++k) mean_f[k] = float(s1[k] / double(m));
    // Second pass around the rounded mean; s1 now holds the residual sum, which
    // corrects the mean's rounding (shifted two-pass variance).
    channel_sums_stub.get()(n, c, s, x, mean_f.data(), x, mean_f.data(), s1.data(),
                            s2.data(), nt);
    for (size_t k = 0; k < cs; ++k) {
      const double dm = s1[k] / double(m);
      const double mean = double(mean_f[k]) + dm;
      const double v = s2[k] / double(m) - dm * dm;
      const double var = v < 0.0 ? 0.0 : v;  // rounding can dip below 0; NaN stays NaN (not std::max)
      save_mean[k] = float(mean);
      save_rstd[k] = float(1.0 / std::sqrt(var + double(eps)));
      if (running_mean)
        running_mean[k] = float((1.0 - momentum) * running_mean[k] + double(momentum) * mean);
      if (running_var) {
        const double unbiased = var * double(m) / double(m - 1);
        running_var[k] = float((1.0 - momentum) * running_var[k] + double(momentum) * unbiased);
      }
    }
  } else {
    for (size_t k = 0; k < cs; ++k) {
      save_mean[k] = running_mean[k];
      save_rstd[k] = float(1.0 / std::sqrt(double(running_var[k]) + double(eps)));
    }
  }
  // y = gamma * rstd * (x - mean) + beta
  for (size_t k = 0; k < cs; ++k) {
    scale[k] = (gamma ? gamma[k] : 1.0f) * save_rstd[k];
    shift[k] = beta ? beta[k] : 0.0f;
  }
  channel_affine_stub.get()(n, c, s, nullptr, nullptr, x, scale.data(), save_mean,
                            shift.data(), y, nt);
}

void batch_norm_backward(int64_t n, int64_t c, int64_t s, const float* dy, const float* x,
                         const float* gamma, const float* save_mean, const float* save_rstd,
                         bool training, float* dx, float* dgamma, float* dbeta) {
  if (c == 0) return;
  const int64_t m = n * s;
  const int nt = threads_for(double(m) * double(c) * 3.0);
  const size_t cs = size_t(c);
  std::vector<double> sdy(cs), sdyx(cs);
  // sdy = sum dy, sdyx = sum dy * (x - mean)
  channel_sums_stub.get()(n, c, s, dy, nullptr, x, save_mean, sdy.data(), sdyx.data(), nt);
  for (size_t k = 0; k < cs; ++k) {
    if (dbeta) dbeta[k] = float(sdy[k]);
    if (dgamma) dgamma[k] = float(sdyx[k] * double(save_rstd[k]));
  }
  if (!dx) return;
  // training: dx = g r (dy - sum(dy)/m - xhat sum(dy xhat)/m), xhat = (x - mean) r
  //   = (g r) dy + (-g r^3 sum(dy (x-mean)) / m) (x - mean) + (-g r sum(dy) / m)
  std::vector<float> cp(cs), cq(cs), off(cs);
  for (size_t k = 0; k < cs; ++k) {
    const double g = gamma ? gamma[k] : 1.0, r = save_rstd[k];
    cp[k] = float(g * r);
    cq[k] = training ? float(-g * r * r * r * sdyx[k] / double(m)) : 0.0f;
    off[k] = training ? float(-g * r * sdy[k] / double(m)) : 0.0f;
  }
  channel_affine_stub.get()(n, c, s, dy, cp.data(), training ? x : nullptr, cq.data(),
                            save_mean, off.data(), dx, nt);
}

void dropout(int64_t n, const float* x, double p, uint64_t seed, float* y, uint8_t* mask) {
  if (n == 0) return;
  const int nt = threads_for(double(n) * 6.0);
  // p < 1, so p * 2^32 < 2^32 and the threshold fits the 32-bit hash range.
  const uint64_t threshold = static_cast<uint64_t>(p * 4294967296.0);
  dropout_forward_stub.get()(n, x, threshold, float(1.0 / (1.0 - p)), seed, y, mask, nt);
}

void dropout_backward(int64_t n, const float* dy, const uint8_t* mask, double p, float* dx) {
  if (n == 0) return;
  const int nt = threads_for(double(n));
  dropout_backward_stub.get()(n, dy, mask, float(1.0 / (1.0 - p)), dx, nt);
}

void sum_rows(int64_t rows, int64_t f, const float* x, int64_t ldx, float* out, bool accumulate) {
  if (f == 0) return;
  const int nt = threads_for(double(rows) * double(f));
  sum_rows_stub.get()(rows, f, x, ldx, out, accumulate, nt);
}

void embedding_backward(int64_t count, int64_t d, IndexRef indices, int64_t num_embeddings,
                        const float* dy, int64_t lddy, float* dw, bool accumulate) {
  const std::vector<int64_t> idx = checked_indices(indices, count, num_embeddings, "index");
  if (!accumulate) std::memset(dw, 0, sizeof(float) * size_t(num_embeddings) * size_t(d));
  if (count == 0 || d == 0) return;
  const int nt = threads_for(double(count) * double(d));
  embedding_backward_stub.get()(count, d, idx.data(), dy, lddy, dw, nt);
}

}  // namespace nn
}  // namespace nnf
