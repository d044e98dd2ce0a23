// Bindings for the nn training kernels (csrc/cpu/nn): validate every argument,
// allocate outputs, release the GIL, call nnf::nn::*. No maths here.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include <cmath>
#include <string>
#include <vector>

#include "bindings/array_args.h"
#include "bindings/registry.h"
#include "common/checks.h"
#include "cpu/nn/nn_kernels.h"

namespace py = pybind11;

namespace nnf {
namespace {

using nn::IndexRef;

std::string strides_str(const py::array& a) {
  std::string s = "(";
  for (py::ssize_t i = 0; i < a.ndim(); ++i) {
    if (i) s += ", ";
    s += std::to_string(a.strides(i));
  }
  return s + ")";
}

// An array seen as (rows, n) with unit stride along n: any C-contiguous array
// (rows = product of the leading dims) or a 2-D view with unit column stride.
struct RowLayout {
  int64_t rows, n, ld;
};

RowLayout row_layout(const py::array& a, const char* name) {
  require_ndim(a, name, 1, 64);
  RowLayout r;
  r.n = a.shape(a.ndim() - 1);
  r.rows = 1;
  for (py::ssize_t i = 0; i + 1 < a.ndim(); ++i) r.rows = checked_mul(r.rows, a.shape(i), name);
  if (a.flags() & py::array::c_style) {
    r.ld = r.n;
  } else if (a.ndim() == 2 && (a.shape(1) <= 1 || elem_stride(a, 1, name) == 1)) {
    r.ld = elem_stride(a, 0, name);
  } else {
    throw py::value_error(std::string(name) +
                          " must be C-contiguous, or 2-D with unit stride along its last axis; "
                          "got shape " + shape_str(a) + " with byte strides " + strides_str(a) +
                          " (pass numpy.ascontiguousarray(" + name + "))");
  }
  return r;
}

py::array float_input(const py::handle& obj, const char* name) {
  py::array a = as_array(obj, name);
  require_float32(a, name);
  return a;
}

std::vector<py::ssize_t> shape_of(const py::array& a) {
  return std::vector<py::ssize_t>(a.shape(), a.shape() + a.ndim());
}

bool same_shape(const py::array& a, const py::array& b) {
  if (a.ndim() != b.ndim()) return false;
  for (py::ssize_t i = 0; i < a.ndim(); ++i)
    if (a.shape(i) != b.shape(i)) return false;
  return true;
}

void require_same_shape(const py::array& a, const char* an, const py::array& b, const char* bn) {
  if (!same_shape(a, b))
    throw py::value_error(std::string(bn) + " must have the shape of " + an + " " + shape_str(a) +
                          ", got " + shape_str(b));
}

void require_shape(const py::array& a, const char* name, const std::vector<py::ssize_t>& want) {
  bool ok = a.ndim() == py::ssize_t(want.size());
  for (size_t i = 0; ok && i < want.size(); ++i) ok = a.shape(py::ssize_t(i)) == want[i];
  if (!ok) {
    std::string w = "(";
    for (size_t i = 0; i < want.size(); ++i)
      w += std::to_string(want[i]) + (want.size() == 1 ? "," : (i + 1 < want.size() ? ", " : ""));
    throw py::value_error(std::string(name) + " must have shape " + w + "), got " + shape_str(a));
  }
}

// An optional 1-D float32 per-feature vector of length n (gamma, beta, weight, ...).
const float* optional_vector(const py::object& obj, const char* name, int64_t n,
                             py::array& keep, bool writeable = false) {
  if (obj.is_none()) return nullptr;
  keep = float_input(obj, name);
  require_shape(keep, name, {py::ssize_t(n)});
  require_c_contiguous(keep, name);
  if (writeable) require_writeable(keep, name);
  return cdata(keep);
}

// Output: a fresh C-contiguous float32 array of `shape`, or the caller's `out`
// checked for dtype, shape, writeability, layout and overlap with the inputs
// (exact aliasing of an input is allowed: these kernels work in place).
py::array make_out(const py::object& out, const std::vector<py::ssize_t>& shape,
                   std::initializer_list<const py::array*> inputs, bool rows_ok) {
  if (out.is_none()) return py::array_t<float>(shape);
  py::array o = float_input(out, "out");
  require_shape(o, "out", shape);
  require_writeable(o, "out");
  if (rows_ok) {
    // Rows that overlap each other (as_strided views with |row stride| < n) would be
    // written by several threads at once.
    const RowLayout l = row_layout(o, "out");
    if (l.rows > 1 && l.n > 0 && (l.ld < 0 ? -l.ld : l.ld) < l.n)
      throw py::value_error("out " + shape_str(o) + " has overlapping rows (row stride " +
                            std::to_string(l.ld) + " elements < " + std::to_string(l.n) +
                            "); pass a real array");
  } else {
    require_c_contiguous(o, "out");
  }
  for (const py::array* in : inputs) {
    if (!may_share_memory(o, *in)) continue;
    bool identical = o.data() == in->data() && o.ndim() == in->ndim();
    for (py::ssize_t i = 0; identical && i < o.ndim(); ++i)
      identical = o.strides(i) == in->strides(i);
    if (!identical)
      throw py::value_error("out " + shape_str(o) +
                            " partially overlaps an input; pass a separate array or the input itself");
  }
  return o;
}

IndexRef index_ref(const py::array& a, const char* name) {
  const bool i64 = a.dtype().is(py::dtype::of<int64_t>());
  const bool i32 = a.dtype().is(py::dtype::of<int32_t>());
  if (!i64 && !i32)
    throw py::type_error(std::string(name) + " must be int64 or int32, got dtype " + dtype_str(a) +
                         " with shape " + shape_str(a));
  require_aligned(a, name);
  int64_t stride = 1;
  if (a.ndim() == 1) {
    if (a.strides(0) % py::ssize_t(a.itemsize()) != 0)
      throw py::value_error(std::string(name) + " has a stride of " + std::to_string(a.strides(0)) +
                            " bytes, not a multiple of its item size; pass numpy.ascontiguousarray(" +
                            name + ")");
    stride = a.strides(0) / py::ssize_t(a.itemsize());
  } else if (!(a.flags() & py::array::c_style)) {
    throw py::value_error(std::string(name) + " must be 1-D or C-contiguous, got shape " + shape_str(a));
  }
  return IndexRef{a.data(), i64, stride};
}

nn::Reduction parse_reduction(const std::string& r) {
  if (r == "mean") return nn::Reduction::mean;
  if (r == "sum") return nn::Reduction::sum;
  if (r == "none") return nn::Reduction::none;
  throw py::value_error("reduction must be 'mean', 'sum' or 'none', got '" + r + "'");
}

bool parse_gelu(const std::string& approximate) {
  if (approximate == "tanh") return true;
  if (approximate == "none") return false;
  throw py::value_error("approximate must be 'tanh' or 'none', got '" + approximate + "'");
}

void require_nonneg_finite(double v, const char* name) {
  if (!(v >= 0.0) || !std::isfinite(v))
    throw py::value_error(std::string(name) + " must be a finite number >= 0, got " + std::to_string(v));
}

// ---- softmax family -----------------------------------------------------------
py::array softmax_impl(const py::object& xo, const py::object& out, bool log) {
  py::array x = float_input(xo, "x");
  const RowLayout lx = row_layout(x, "x");
  py::array y = make_out(out, shape_of(x), {&x}, true);
  const RowLayout ly = row_layout(y, "out");
  const float* xp = cdata(x);
  float* yp = mdata(y);
  py::gil_scoped_release nogil;
  nn::softmax(lx.rows, lx.n, xp, lx.ld, yp, ly.ld, log);
  return y;
}

py::array softmax_backward_impl(const py::object& yo, const py::object& dyo, const py::object& out,
                                bool log) {
  py::array y = float_input(yo, "y");
  py::array dy = float_input(dyo, "dy");
  require_same_shape(y, "y", dy, "dy");
  const RowLayout ly = row_layout(y, "y"), ld = row_layout(dy, "dy");
  py::array dx = make_out(out, shape_of(y), {&y, &dy}, true);
  const RowLayout lo = row_layout(dx, "out");
  const float *yp = cdata(y), *dyp = cdata(dy);
  float* dxp = mdata(dx);
  py::gil_scoped_release nogil;
  nn::softmax_backward(ly.rows, ly.n, yp, ly.ld, dyp, ld.ld, dxp, lo.ld, log);
  return dx;
}

// ---- cross entropy ------------------------------------------------------------
py::object cross_entropy(const py::object& logits_o, const py::object& labels_o,
                         const py::object& weight_o, double smoothing,
                         const std::string& reduction_s, bool return_grad) {
  py::array z = float_input(logits_o, "logits");
  require_ndim(z, "logits", 2, 2);
  const RowLayout lz = row_layout(z, "logits");
  py::array labels = as_array(labels_o, "labels");
  IndexRef lab = index_ref(labels, "labels");
  require_ndim(labels, "labels", 1, 1);
  if (labels.shape(0) != lz.rows)
    throw py::value_error("labels must have shape (" + std::to_string(lz.rows) + ",) to match logits " +
                          shape_str(z) + ", got " + shape_str(labels));
  if (lz.rows == 0 || lz.n == 0)
    throw py::value_error("logits must have at least one row and one class, got shape " + shape_str(z));
  py::array wkeep;
  const float* w = optional_vector(weight_o, "weight", lz.n, wkeep);
  if (!(smoothing >= 0.0 && smoothing <= 1.0))
    throw py::value_error("label_smoothing must be in [0, 1], got " + std::to_string(smoothing));
  const nn::Reduction red = parse_reduction(reduction_s);
  py::array loss_rows, dz;
  float* lrp = nullptr;
  float* dzp = nullptr;
  if (red == nn::Reduction::none) {
    loss_rows = py::array_t<float>({py::ssize_t(lz.rows)});
    lrp = mdata(loss_rows);
  }
  if (return_grad) {
    dz = py::array_t<float>(shape_of(z));
    dzp = mdata(dz);
  }
  const float* zp = cdata(z);
  double loss;
  {
    py::gil_scoped_release nogil;
    loss = nn::cross_entropy(lz.rows, lz.n, zp, lz.ld, lab, w, float(smoothing), red, lrp, dzp, lz.n);
  }
  py::object l = red == nn::Reduction::none ? py::object(loss_rows) : py::object(py::float_(loss));
  if (return_grad) return py::make_tuple(l, dz);
  return l;
}

// ---- elementwise ----------------------------------------------------------------
py::array eltwise1(EltOp op, const py::object& ao, const py::object& out, float param,
                   const char* an = "x") {
  py::array a = float_input(ao, an);
  require_c_contiguous(a, an);
  py::array o = make_out(out, shape_of(a), {&a}, false);
  const float* ap = cdata(a);
  float* op_ = mdata(o);
  const int64_t n = a.size();
  py::gil_scoped_release nogil;
  nn::eltwise(op, n, ap, nullptr, param, op_);
  return o;
}

// Backward ops: out = op(dy, b) with b = the saved forward output or input.
py::array eltwise2(EltOp op, const py::object& dyo, const py::object& bo, const char* bn,
                   const py::object& out, float param) {
  py::array dy = float_input(dyo, "dy");
  py::array b = float_input(bo, bn);
  require_same_shape(dy, "dy", b, bn);
  require_c_contiguous(dy, "dy");
  require_c_contiguous(b, bn);
  py::array o = make_out(out, shape_of(dy), {&dy, &b}, false);
  const float *dyp = cdata(dy), *bp = cdata(b);
  float* op_ = mdata(o);
  const int64_t n = dy.size();
  py::gil_scoped_release nogil;
  nn::eltwise(op, n, dyp, bp, param, op_);
  return o;
}

float checked_slope(double s) {
  if (!std::isfinite(s)) throw py::value_error("negative_slope must be finite, got " + std::to_string(s));
  return float(s);
}

// ---- layer norm -----------------------------------------------------------------
py::tuple layer_norm(const py::object& xo, const py::object& gamma_o, const py::object& beta_o,
                     double eps) {
  py::array x = float_input(xo, "x");
  const RowLayout lx = row_layout(x, "x");
  require_nonneg_finite(eps, "eps");
  py::array gk, bk;
  const float* g = optional_vector(gamma_o, "gamma", lx.n, gk);
  const float* b = optional_vector(beta_o, "beta", lx.n, bk);
  std::vector<py::ssize_t> stat_shape(x.shape(), x.shape() + x.ndim() - 1);
  py::array y = py::array_t<float>(shape_of(x));
  py::array mean = py::array_t<float>(stat_shape), rstd = py::array_t<float>(stat_shape);
  const float* xp = cdata(x);
  float *yp = mdata(y), *mp = mdata(mean), *rp = mdata(rstd);
  {
    py::gil_scoped_release nogil;
    nn::layer_norm(lx.rows, lx.n, xp, lx.ld, g, b, float(eps), yp, lx.n, mp, rp);
  }
  return py::make_tuple(y, mean, rstd);
}

py::array stats_input(const py::object& o, const char* name, const py::array& x) {
  py::array a = float_input(o, name);
  std::vector<py::ssize_t> want(x.shape(), x.shape() + x.ndim() - 1);
  require_shape(a, name, want);
  require_c_contiguous(a, name);
  return a;
}

py::tuple layer_norm_backward(const py::object& dyo, const py::object& xo, const py::object& gamma_o,
                              const py::object& mean_o, const py::object& rstd_o) {
  py::array x = float_input(xo, "x");
  py::array dy = float_input(dyo, "dy");
  require_same_shape(x, "x", dy, "dy");
  const RowLayout lx = row_layout(x, "x"), ld = row_layout(dy, "dy");
  py::array gk;
  const float* g = optional_vector(gamma_o, "gamma", lx.n, gk);
  py::array mean = stats_input(mean_o, "mean", x), rstd = stats_input(rstd_o, "rstd", x);
  py::array dx = py::array_t<float>(shape_of(x));
  py::object dgamma = py::none(), dbeta = py::none();
  float *dgp = nullptr, *dbp = nullptr;
  if (g) {
    py::array a = py::array_t<float>({py::ssize_t(lx.n)}), b = py::array_t<float>({py::ssize_t(lx.n)});
    dgp = mdata(a);
    dbp = mdata(b);
    dgamma = a;
    dbeta = b;
  }
  const float *xp = cdata(x), *dyp = cdata(dy), *mp = cdata(mean), *rp = cdata(rstd);
  float* dxp = mdata(dx);
  {
    py::gil_scoped_release nogil;
    nn::layer_norm_backward(lx.rows, lx.n, dyp, ld.ld, xp, lx.ld, g, mp, rp, dxp, lx.n, dgp, dbp);
  }
  return py::make_tuple(dx, dgamma, dbeta);
}

// ---- batch norm -----------------------------------------------------------------
struct NCS {
  int64_t n, c, s;
};

NCS ncs_layout(const py::array& x, const char* name) {
  require_ndim(x, name, 2, 64);
  require_c_contiguous(x, name);
  NCS r{x.shape(0), x.shape(1), 1};
  for (py::ssize_t i = 2; i < x.ndim(); ++i) r.s = checked_mul(r.s, x.shape(i), name);
  checked_mul(checked_mul(r.n, r.c, name), r.s, name);
  return r;
}

py::tuple batch_norm(const py::object& xo, const py::object& gamma_o, const py::object& beta_o,
                     const py::object& rm_o, const py::object& rv_o, bool training, double momentum,
                     double eps) {
  py::array x = float_input(xo, "x");
  const NCS d = ncs_layout(x, "x");
  require_nonneg_finite(eps, "eps");
  if (!(momentum >= 0.0 && momentum <= 1.0))
    throw py::value_error("momentum must be in [0, 1], got " + std::to_string(momentum));
  py::array gk, bk, rmk, rvk;
  const float* g = optional_vector(gamma_o, "gamma", d.c, gk);
  const float* b = optional_vector(beta_o, "beta", d.c, bk);
  optional_vector(rm_o, "running_mean", d.c, rmk, true);
  optional_vector(rv_o, "running_var", d.c, rvk, true);
  if (rm_o.is_none() != rv_o.is_none())
    throw py::value_error("running_mean and running_var must both be arrays or both be None");
  float* rm = rm_o.is_none() ? nullptr : mdata(rmk);
  float* rv = rv_o.is_none() ? nullptr : mdata(rvk);
  if (training && d.n * d.s < 2)
    throw py::value_error("batch_norm in training mode needs more than 1 value per channel, got x of shape " +
                          shape_str(x));
  if (!training && !rm)
    throw py::value_error("batch_norm in eval mode (training=False) needs running_mean and running_var");
  // The running statistics are written while gamma and beta are still to be read.
  if (rm) {
    bool overlap = may_share_memory(rmk, x) || may_share_memory(rvk, x) || may_share_memory(rmk, rvk);
    if (g) overlap = overlap || may_share_memory(rmk, gk) || may_share_memory(rvk, gk);
    if (b) overlap = overlap || may_share_memory(rmk, bk) || may_share_memory(rvk, bk);
    if (overlap)
      throw py::value_error("running_mean and running_var must not overlap x, gamma, beta or each other");
  }
  py::array y = py::array_t<float>(shape_of(x));
  py::array sm = py::array_t<float>({py::ssize_t(d.c)}), sr = py::array_t<float>({py::ssize_t(d.c)});
  const float* xp = cdata(x);
  float *yp = mdata(y), *smp = mdata(sm), *srp = mdata(sr);
  {
    py::gil_scoped_release nogil;
    nn::batch_norm(d.n, d.c, d.s, xp, g, b, rm, rv, training, float(momentum), float(eps), yp, smp, srp);
  }
  return py::make_tuple(y, sm, sr);
}

py::tuple batch_norm_backward(const py::object& dyo, const py::object& xo, const py::object& gamma_o,
                              const py::object& mean_o, const py::object& rstd_o, bool training) {
  py::array x = float_input(xo, "x");
  py::array dy = float_input(dyo, "dy");
  require_same_shape(x, "x", dy, "dy");
  const NCS d = ncs_layout(x, "x");
  require_c_contiguous(dy, "dy");
  py::array gk, mk, rk;
  const float* g = optional_vector(gamma_o, "gamma", d.c, gk);
  if (mean_o.is_none() || rstd_o.is_none())
    throw py::value_error("save_mean and save_rstd are required (the outputs of batch_norm)");
  const float* mp = optional_vector(mean_o, "save_mean", d.c, mk);
  const float* rp = optional_vector(rstd_o, "save_rstd", d.c, rk);
  py::array dx = py::array_t<float>(shape_of(x));
  py::array dg = py::array_t<float>({py::ssize_t(d.c)}), db = py::array_t<float>({py::ssize_t(d.c)});
  const float *xp = cdata(x), *dyp = cdata(dy);
  float *dxp = mdata(dx), *dgp = mdata(dg), *dbp = mdata(db);
  {
    py::gil_scoped_release nogil;
    nn::batch_norm_backward(d.n, d.c, d.s, dyp, xp, g, mp, rp, training, dxp, dgp, dbp);
  }
  if (!g) return py::make_tuple(dx, py::none(), py::none());
  return py::make_tuple(dx, dg, db);
}

// ---- dropout ----------------------------------------------------------------------
double checked_p(double p) {
  if (!(p >= 0.0 && p < 1.0)) throw py::value_error("dropout p must be in [0, 1), got " + std::to_string(p));
  return p;
}

py::tuple dropout(const py::object& xo, double p_d, const py::int_& seed_o) {
  py::array x = float_input(xo, "x");
  require_c_contiguous(x, "x");
  const double p = checked_p(p_d);
  if (py::int_(0).attr("__gt__")(seed_o).cast<bool>() ||
      seed_o.attr("bit_length")().cast<int>() > 64)
    throw py::value_error("seed must be an int in [0, 2**64)");
  const uint64_t seed = seed_o.cast<uint64_t>();
  py::array y = py::array_t<float>(shape_of(x));
  py::array mask = py::array_t<uint8_t>(shape_of(x));
  const float* xp = cdata(x);
  float* yp = mdata(y);
  uint8_t* mp = static_cast<uint8_t*>(mask.mutable_data());
  const int64_t n = x.size();
  {
    py::gil_scoped_release nogil;
    nn::dropout(n, xp, p, seed, yp, mp);
  }
  return py::make_tuple(y, mask);
}

py::array dropout_backward(const py::object& dyo, const py::object& mask_o, double p_d,
                           const py::object& out) {
  py::array dy = float_input(dyo, "dy");
  require_c_contiguous(dy, "dy");
  py::array mask = as_array(mask_o, "mask");
  if (!mask.dtype().is(py::dtype::of<uint8_t>()) && !mask.dtype().is(py::dtype::of<bool>()))
    throw py::type_error("mask must be uint8 or bool (the mask returned by dropout), got dtype " +
                         dtype_str(mask) + " with shape " + shape_str(mask));
  require_same_shape(dy, "dy", mask, "mask");
  require_c_contiguous(mask, "mask");
  const double p = checked_p(p_d);
  py::array dx = make_out(out, shape_of(dy), {&dy, &mask}, false);
  const float* dyp = cdata(dy);
  const uint8_t* mp = static_cast<const uint8_t*>(mask.data());
  float* dxp = mdata(dx);
  const int64_t n = dy.size();
  py::gil_scoped_release nogil;
  nn::dropout_backward(n, dyp, mp, p, dxp);
  return dx;
}

// ---- reductions -------------------------------------------------------------------
py::array sum_rows(const py::object& xo, const py::object& out, bool accumulate) {
  py::array x = float_input(xo, "x");
  require_ndim(x, "x", 2, 2);
  const RowLayout lx = row_layout(x, "x");
  if (accumulate && out.is_none())
    throw py::value_error("sum_rows: accumulate=True needs out");
  py::array o = make_out(out, {py::ssize_t(lx.n)}, {&x}, false);
  if (may_share_memory(o, x)) throw py::value_error("sum_rows: out must not overlap x");
  const float* xp = cdata(x);
  float* op_ = mdata(o);
  py::gil_scoped_release nogil;
  nn::sum_rows(lx.rows, lx.n, xp, lx.ld, op_, accumulate);
  return o;
}

py::array embedding_backward(const py::object& idx_o, const py::object& dyo, int64_t num_embeddings,
                             const py::object& out, bool accumulate) {
  py::array idx = as_array(idx_o, "indices");
  IndexRef ir = index_ref(idx, "indices");
  py::array dy = float_input(dyo, "dy");
  if (dy.ndim() != idx.ndim() + 1)
    throw py::value_error("dy must have shape indices.shape + (embedding_dim,): indices " + shape_str(idx) +
                          ", dy " + shape_str(dy));
  for (py::ssize_t i = 0; i < idx.ndim(); ++i)
    if (dy.shape(i) != idx.shape(i))
      throw py::value_error("dy must have shape indices.shape + (embedding_dim,): indices " +
                            shape_str(idx) + ", dy " + shape_str(dy));
  if (num_embeddings < 0) throw py::value_error("num_embeddings must be >= 0");
  const RowLayout ld = idx.ndim() == 1 ? row_layout(dy, "dy") : RowLayout{};
  RowLayout l = ld;
  if (idx.ndim() != 1) {
    require_c_contiguous(dy, "dy");
    l = row_layout(dy, "dy");
  }
  if (accumulate && out.is_none())
    throw py::value_error("embedding_backward: accumulate=True needs out");
  checked_mul(num_embeddings, l.n, "embedding gradient size");
  py::array o = make_out(out, {py::ssize_t(num_embeddings), py::ssize_t(l.n)}, {&dy}, false);
  if (may_share_memory(o, dy) || may_share_memory(o, idx))
    throw py::value_error("embedding_backward: out must not overlap dy or indices");
  const float* dyp = cdata(dy);
  float* op_ = mdata(o);
  const int64_t count = idx.size();
  {
    py::gil_scoped_release nogil;
    nn::embedding_backward(count, l.n, ir, num_embeddings, dyp, l.ld, op_, accumulate);
  }
  return o;
}

void bind_nn(py::module_& m) {
  using namespace py::literals;
  const auto none = py::none();
  m.def("softmax", [](py::object x, py::object out) { return softmax_impl(x, out, false); },
        "x"_a, "out"_a = none, "softmax over the last axis");
  m.def("log_softmax", [](py::object x, py::object out) { return softmax_impl(x, out, true); },
        "x"_a, "out"_a = none);
  m.def("softmax_backward",
        [](py::object y, py::object dy, py::object out) { return softmax_backward_impl(y, dy, out, false); },
        "y"_a, "dy"_a, "out"_a = none);
  m.def("log_softmax_backward",
        [](py::object y, py::object dy, py::object out) { return softmax_backward_impl(y, dy, out, true); },
        "y"_a, "dy"_a, "out"_a = none);
  m.def("cross_entropy", &cross_entropy, "logits"_a, "labels"_a, py::kw_only(), "weight"_a = none,
        "label_smoothing"_a = 0.0, "reduction"_a = "mean", "return_grad"_a = false);

  m.def("relu", [](py::object x, py::object out) { return eltwise1(EltOp::relu, x, out, 0.f); },
        "x"_a, "out"_a = none);
  m.def("relu_backward",
        [](py::object dy, py::object y, py::object out) { return eltwise2(EltOp::relu_backward, dy, y, "y", out, 0.f); },
        "dy"_a, "y"_a, "out"_a = none);
  m.def("leaky_relu",
        [](py::object x, double s, py::object out) { return eltwise1(EltOp::leaky_relu, x, out, checked_slope(s)); },
        "x"_a, "negative_slope"_a = 0.01, "out"_a = none);
  m.def("leaky_relu_backward",
        [](py::object dy, py::object x, double s, py::object out) {
          return eltwise2(EltOp::leaky_relu_backward, dy, x, "x", out, checked_slope(s));
        },
        "dy"_a, "x"_a, "negative_slope"_a = 0.01, "out"_a = none);
  m.def("tanh", [](py::object x, py::object out) { return eltwise1(EltOp::tanh, x, out, 0.f); },
        "x"_a, "out"_a = none);
  m.def("tanh_backward",
        [](py::object dy, py::object y, py::object out) { return eltwise2(EltOp::tanh_backward, dy, y, "y", out, 0.f); },
        "dy"_a, "y"_a, "out"_a = none);
  m.def("sigmoid", [](py::object x, py::object out) { return eltwise1(EltOp::sigmoid, x, out, 0.f); },
        "x"_a, "out"_a = none);
  m.def("sigmoid_backward",
        [](py::object dy, py::object y, py::object out) { return eltwise2(EltOp::sigmoid_backward, dy, y, "y", out, 0.f); },
        "dy"_a, "y"_a, "out"_a = none);
  m.def("gelu",
        [](py::object x, const std::string& a, py::object out) {
          return eltwise1(parse_gelu(a) ? EltOp::gelu_tanh : EltOp::gelu_erf, x, out, 0.f);
        },
        "x"_a, "approximate"_a = "tanh", "out"_a = none);
  m.def("gelu_backward",
        [](py::object dy, py::object x, const std::string& a, py::object out) {
          return eltwise2(parse_gelu(a) ? EltOp::gelu_tanh_backward : EltOp::gelu_erf_backward, dy, x, "x", out, 0.f);
        },
        "dy"_a, "x"_a, "approximate"_a = "tanh", "out"_a = none);

  m.def("layer_norm", &layer_norm, "x"_a, "gamma"_a, "beta"_a, "eps"_a = 1e-5);
  m.def("layer_norm_backward", &layer_norm_backward, "dy"_a, "x"_a, "gamma"_a, "mean"_a, "rstd"_a);
  m.def("batch_norm", &batch_norm, "x"_a, "gamma"_a, "beta"_a, "running_mean"_a, "running_var"_a,
        py::kw_only(), "training"_a, "momentum"_a = 0.1, "eps"_a = 1e-5);
  m.def("batch_norm_backward", &batch_norm_backward, "dy"_a, "x"_a, "gamma"_a, "save_mean"_a,
        "save_rstd"_a, py::kw_only(), "training"_a = true);
  m.def("dropout", &dropout, "x"_a, "p"_a, "seed"_a);
  m.def("dropout_backward", &dropout_backward, "dy"_a, "mask"_a, "p"_a, "out"_a = none);
  m.def("sum_rows", &sum_rows, "x"_a, "out"_a = none, py::kw_only(), "accumulate"_a = false);
  m.def("embedding_backward", &embedding_backward, "indices"_a, "dy"_a, "num_embeddings"_a,
        "out"_a = none, py::kw_only(), "accumulate"_a = false);
}

BindingRegistrar reg("nn", &bind_nn);

}  // namespace
}  // namespace nnf
