// Bindings for the nn training kernels (csrc/cpu/nn): validate every argument,
// allocate outputs, release the GIL, call nnf::nn::*. No maths here.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include <cmath>
#include <string>
#include <vector>

#include "bindings/array_arg.h"
#include "bindings/registry.h"
#include "bindings/scalar_arg.h"
#include "common/checks.h"
#include "cpu/nn/nn_kernels.h"

namespace py = pybind11;

namespace nnf {
namespace {

using nn::IndexRef;

// An array seen as (rows, n) with unit stride along n: any C-contiguous array
// (rows = product of the leading dims) or a 2-D view with unit column stride.
// (python/nnforge/_args.rows_layout copies anything else to C order first.)
struct RowLayout {
  int64_t rows, n, ld;
};

RowLayout row_layout(const ArrayArg& a) {
  if (a.ndim < 1) a.fail_value("must have at least 1 dimension, got shape " + shape_str(a.shape()));
  RowLayout r;
  r.n = a.dim(-1);
  r.rows = 1;
  for (int i = 0; i + 1 < a.ndim; ++i) r.rows = checked_mul(r.rows, a.dim(i), a.name.c_str());
  if (a.is_c_contiguous()) {
    r.ld = r.n;
  } else if (a.ndim == 2 && (a.dim(1) <= 1 || a.stride(1) == 1)) {
    r.ld = a.stride(0);
  } else {
    std::string st = "(";
    for (int i = 0; i < a.ndim; ++i) st += (i ? ", " : "") + std::to_string(a.stride(i));
    a.fail_value("must be C-contiguous, or 2-D with unit stride along its last axis; got shape " +
                 shape_str(a.shape()) + " with strides " + st + ") in elements (pass numpy.ascontiguousarray(" +
                 a.name + "))");
  }
  return r;
}

ArrayArg float_input(const py::handle& obj, const char* name, const char* op) {
  ArrayArg a = ArrayArg::from_python(obj, name, op);
  a.float32();
  return a;
}

// An optional 1-D float32 per-feature vector of length n (gamma, beta, weight, ...).
const float* optional_vector(const py::object& obj, const char* name, int64_t n, ArrayArg& keep,
                             const char* op, bool writeable = false) {
  if (obj.is_none()) return nullptr;
  keep = float_input(obj, name, op);
  keep.shape_is({n}).c_contiguous();
  if (writeable) keep.writeable();
  return keep.cdata<float>();
}

// Output: a fresh C-contiguous float32 array of `shape`, or the caller's `out`
// checked for dtype, shape, writeability, layout and overlap with the inputs
// (exact aliasing of an input is allowed: these kernels work in place).
ArrayArg make_out(const py::object& out, const Shape& shape, std::initializer_list<const ArrayArg*> inputs,
                  bool rows_ok, const char* op) {
  // One named result for every path (copy elision: an ArrayArg is ~1 KiB of dims).
  const bool fresh = out.is_none();
  ArrayArg o = fresh ? ArrayArg::empty<float>(shape, "out", op) : float_input(out, "out", op);
  if (fresh) return o;
  o.shape_is(shape).writeable();
  if (rows_ok) row_layout(o); else o.c_contiguous();
  o.no_self_overlap().not_overlapping(inputs, true);
  return o;
}

IndexRef index_ref(const ArrayArg& a) {
  if (a.ndim != 1 && !a.is_c_contiguous())
    a.fail_value("must be 1-D or C-contiguous, got shape " + shape_str(a.shape()));
  return IndexRef{a.data, a.dtype == DType::int64, a.ndim == 1 ? a.stride(0) : 1};
}

ArrayArg index_input(const py::handle& obj, const char* name, const char* op) {
  ArrayArg a = ArrayArg::from_python(obj, name, op);
  a.dtype_in({DType::int64, DType::int32}, "int64 or int32");
  return a;
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
py::object softmax_impl(const py::object& xo, const py::object& out, bool log) {
  const char* op = log ? "log_softmax" : "softmax";
  ArrayArg x = float_input(xo, "x", op);
  const RowLayout lx = row_layout(x);
  ArrayArg y = make_out(out, x.shape(), {&x}, true, op);
  const RowLayout ly = row_layout(y);
  const float* xp = x.cdata<float>();
  float* yp = y.mdata<float>();
  {
    py::gil_scoped_release nogil;
    nn::softmax(lx.rows, lx.n, xp, lx.ld, yp, ly.ld, log);
  }
  return y.result();
}

py::object softmax_backward_impl(const py::object& yo, const py::object& dyo, const py::object& out,
                                 bool log) {
  const char* op = log ? "log_softmax_backward" : "softmax_backward";
  ArrayArg y = float_input(yo, "y", op);
  ArrayArg dy = float_input(dyo, "dy", op);
  dy.same_shape_as(y);
  const RowLayout ly = row_layout(y), ld = row_layout(dy);
  ArrayArg dx = make_out(out, y.shape(), {&y, &dy}, true, op);
  const RowLayout lo = row_layout(dx);
  const float *yp = y.cdata<float>(), *dyp = dy.cdata<float>();
  float* dxp = dx.mdata<float>();
  {
    py::gil_scoped_release nogil;
    nn::softmax_backward(ly.rows, ly.n, yp, ly.ld, dyp, ld.ld, dxp, lo.ld, log);
  }
  return dx.result();
}

// ---- cross entropy ------------------------------------------------------------
py::object cross_entropy(const py::object& logits_o, const py::object& labels_o,
                         const py::object& weight_o, Real smoothing,
                         const std::string& reduction_s, Flag return_grad, const py::object& out) {
  const char* op = "cross_entropy";
  ArrayArg z = float_input(logits_o, "logits", op);
  z.ndim_in(2, 2);
  const RowLayout lz = row_layout(z);
  ArrayArg labels = index_input(labels_o, "labels", op);
  IndexRef lab = index_ref(labels);
  labels.ndim_in(1, 1);
  if (labels.dim(0) != lz.rows)
    throw py::value_error("cross_entropy: labels must have shape (" + std::to_string(lz.rows) +
                          ",) to match logits " + shape_str(z.shape()) + ", got " + shape_str(labels.shape()));
  if (lz.rows == 0 || lz.n == 0)
    throw py::value_error("cross_entropy: logits must have at least one row and one class, got shape " +
                          shape_str(z.shape()));
  ArrayArg wkeep;
  const float* w = optional_vector(weight_o, "weight", lz.n, wkeep, op);
  if (!(smoothing >= 0.0 && smoothing <= 1.0))
    throw py::value_error("label_smoothing must be in [0, 1], got " + std::to_string(smoothing));
  const nn::Reduction red = parse_reduction(reduction_s);
  if (!out.is_none() && !return_grad)
    throw py::value_error("cross_entropy: out receives dlogits, so it needs return_grad=True");
  ArrayArg loss_rows, dz;
  float* lrp = nullptr;
  float* dzp = nullptr;
  if (red == nn::Reduction::none) {
    loss_rows = ArrayArg::empty<float>({lz.rows}, "loss", op);
    lrp = loss_rows.mdata<float>();
  }
  int64_t lddz = lz.n;
  if (return_grad) {
    // out may be the logits themselves: each row's gradient is written after that row
    // has been read in full (softmax.per_isa.cpp), so a model need not keep two
    // logits-sized buffers.
    if (out.is_none())
      dz = ArrayArg::empty<float>(z.shape(), "dlogits", op);
    else if (w)
      dz = make_out(out, z.shape(), {&z, &labels, &wkeep}, true, op);
    else
      dz = make_out(out, z.shape(), {&z, &labels}, true, op);
    lddz = row_layout(dz).ld;
    dzp = dz.mdata<float>();
  }
  const float* zp = z.cdata<float>();
  double loss;
  {
    py::gil_scoped_release nogil;
    loss = nn::cross_entropy(lz.rows, lz.n, zp, lz.ld, lab, w, float(smoothing), red, lrp, dzp, lddz);
  }
  py::object l = red == nn::Reduction::none ? loss_rows.result() : py::object(py::float_(loss));
  if (return_grad) return py::make_tuple(l, dz.result());
  return l;
}

// ---- elementwise ----------------------------------------------------------------
py::object eltwise1(EltOp eop, const char* op, const py::object& ao, const py::object& out, float param) {
  ArrayArg a = float_input(ao, "x", op);
  a.c_contiguous();
  ArrayArg o = make_out(out, a.shape(), {&a}, false, op);
  const float* ap = a.cdata<float>();
  float* op_ = o.mdata<float>();
  const int64_t n = a.numel;
  {
    py::gil_scoped_release nogil;
    nn::eltwise(eop, n, ap, nullptr, param, op_);
  }
  return o.result();
}

// Backward ops: out = op(dy, b) with b = the saved forward output or input.
py::object eltwise2(EltOp eop, const char* op, const py::object& dyo, const py::object& bo, const char* bn,
                    const py::object& out, float param) {
  ArrayArg dy = float_input(dyo, "dy", op);
  ArrayArg b = float_input(bo, bn, op);
  b.same_shape_as(dy);
  dy.c_contiguous();
  b.c_contiguous();
  ArrayArg o = make_out(out, dy.shape(), {&dy, &b}, false, op);
  const float *dyp = dy.cdata<float>(), *bp = b.cdata<float>();
  float* op_ = o.mdata<float>();
  const int64_t n = dy.numel;
  {
    py::gil_scoped_release nogil;
    nn::eltwise(eop, n, dyp, bp, param, op_);
  }
  return o.result();
}

float checked_slope(double s) {
  if (!std::isfinite(s)) throw py::value_error("negative_slope must be finite, got " + std::to_string(s));
  return float(s);
}

// ---- layer norm -----------------------------------------------------------------
py::tuple layer_norm(const py::object& xo, const py::object& gamma_o, const py::object& beta_o,
                     Real eps) {
  const char* op = "layer_norm";
  ArrayArg x = float_input(xo, "x", op);
  const RowLayout lx = row_layout(x);
  require_nonneg_finite(eps, "eps");
  ArrayArg gk, bk;
  const float* g = optional_vector(gamma_o, "gamma", lx.n, gk, op);
  const float* b = optional_vector(beta_o, "beta", lx.n, bk, op);
  const Shape xs = x.shape(), stat_shape(xs.begin(), xs.end() - 1);
  ArrayArg y = ArrayArg::empty<float>(xs, "y", op);
  ArrayArg mean = ArrayArg::empty<float>(stat_shape, "mean", op);
  ArrayArg rstd = ArrayArg::empty<float>(stat_shape, "rstd", op);
  const float* xp = x.cdata<float>();
  float *yp = y.mdata<float>(), *mp = mean.mdata<float>(), *rp = rstd.mdata<float>();
  {
    py::gil_scoped_release nogil;
    nn::layer_norm(lx.rows, lx.n, xp, lx.ld, g, b, float(eps), yp, lx.n, mp, rp);
  }
  return py::make_tuple(y.result(), mean.result(), rstd.result());
}

ArrayArg stats_input(const py::object& o, const char* name, const ArrayArg& x, const char* op) {
  ArrayArg a = float_input(o, name, op);
  const Shape xs = x.shape();
  a.shape_is(Shape(xs.begin(), xs.end() - 1)).c_contiguous();
  return a;
}

py::tuple layer_norm_backward(const py::object& dyo, const py::object& xo, const py::object& gamma_o,
                              const py::object& mean_o, const py::object& rstd_o) {
  const char* op = "layer_norm_backward";
  ArrayArg x = float_input(xo, "x", op);
  ArrayArg dy = float_input(dyo, "dy", op);
  dy.same_shape_as(x);
  const RowLayout lx = row_layout(x), ld = row_layout(dy);
  ArrayArg gk;
  const float* g = optional_vector(gamma_o, "gamma", lx.n, gk, op);
  ArrayArg mean = stats_input(mean_o, "mean", x, op), rstd = stats_input(rstd_o, "rstd", x, op);
  ArrayArg dx = ArrayArg::empty<float>(x.shape(), "dx", op);
  py::object dgamma = py::none(), dbeta = py::none();
  float *dgp = nullptr, *dbp = nullptr;
  if (g) {
    ArrayArg a = ArrayArg::empty<float>({lx.n}, "dgamma", op), b = ArrayArg::empty<float>({lx.n}, "dbeta", op);
    dgp = a.mdata<float>();
    dbp = b.mdata<float>();
    dgamma = a.result();
    dbeta = b.result();
  }
  const float *xp = x.cdata<float>(), *dyp = dy.cdata<float>(), *mp = mean.cdata<float>(),
              *rp = rstd.cdata<float>();
  float* dxp = dx.mdata<float>();
  {
    py::gil_scoped_release nogil;
    nn::layer_norm_backward(lx.rows, lx.n, dyp, ld.ld, xp, lx.ld, g, mp, rp, dxp, lx.n, dgp, dbp);
  }
  return py::make_tuple(dx.result(), dgamma, dbeta);
}

// ---- batch norm -----------------------------------------------------------------
struct NCS {
  int64_t n, c, s;
};

NCS ncs_layout(ArrayArg& x) {
  x.ndim_in(2, kMaxDims).c_contiguous();
  NCS r{x.dim(0), x.dim(1), 1};
  for (int i = 2; i < x.ndim; ++i) r.s = checked_mul(r.s, x.dim(i), x.name.c_str());
  checked_mul(checked_mul(r.n, r.c, x.name.c_str()), r.s, x.name.c_str());
  return r;
}

py::tuple batch_norm(const py::object& xo, const py::object& gamma_o, const py::object& beta_o,
                     const py::object& rm_o, const py::object& rv_o, Flag training, Real momentum,
                     Real eps) {
  const char* op = "batch_norm";
  ArrayArg x = float_input(xo, "x", op);
  const NCS d = ncs_layout(x);
  require_nonneg_finite(eps, "eps");
  if (!(momentum >= 0.0 && momentum <= 1.0))
    throw py::value_error("momentum must be in [0, 1], got " + std::to_string(momentum));
  ArrayArg gk, bk, rmk, rvk;
  const float* g = optional_vector(gamma_o, "gamma", d.c, gk, op);
  const float* b = optional_vector(beta_o, "beta", d.c, bk, op);
  optional_vector(rm_o, "running_mean", d.c, rmk, op, true);
  optional_vector(rv_o, "running_var", d.c, rvk, op, true);
  if (rm_o.is_none() != rv_o.is_none())
    throw py::value_error("batch_norm: running_mean and running_var must both be arrays or both be None");
  float* rm = rm_o.is_none() ? nullptr : rmk.mdata<float>();
  float* rv = rv_o.is_none() ? nullptr : rvk.mdata<float>();
  if (training && d.n * d.s < 2)
    throw py::value_error("batch_norm in training mode needs more than 1 value per channel, got x of shape " +
                          shape_str(x.shape()));
  if (!training && !rm)
    throw py::value_error("batch_norm in eval mode (training=False) needs running_mean and running_var");
  // The running statistics are written while gamma and beta are still to be read.
  if (rm) {
    bool overlap = rmk.overlaps(x) || rvk.overlaps(x) || rmk.overlaps(rvk);
    if (g) overlap = overlap || rmk.overlaps(gk) || rvk.overlaps(gk);
    if (b) overlap = overlap || rmk.overlaps(bk) || rvk.overlaps(bk);
    if (overlap)
      throw py::value_error("batch_norm: running_mean and running_var must not overlap x, gamma, beta or each other");
  }
  ArrayArg y = ArrayArg::empty<float>(x.shape(), "y", op);
  ArrayArg sm = ArrayArg::empty<float>({d.c}, "save_mean", op), sr = ArrayArg::empty<float>({d.c}, "save_rstd", op);
  const float* xp = x.cdata<float>();
  float *yp = y.mdata<float>(), *smp = sm.mdata<float>(), *srp = sr.mdata<float>();
  {
    py::gil_scoped_release nogil;
    nn::batch_norm(d.n, d.c, d.s, xp, g, b, rm, rv, training, float(momentum), float(eps), yp, smp, srp);
  }
  return py::make_tuple(y.result(), sm.result(), sr.result());
}

py::tuple batch_norm_backward(const py::object& dyo, const py::object& xo, const py::object& gamma_o,
                              const py::object& mean_o, const py::object& rstd_o, Flag training) {
  const char* op = "batch_norm_backward";
  ArrayArg x = float_input(xo, "x", op);
  ArrayArg dy = float_input(dyo, "dy", op);
  dy.same_shape_as(x);
  const NCS d = ncs_layout(x);
  dy.c_contiguous();
  ArrayArg gk, mk, rk;
  const float* g = optional_vector(gamma_o, "gamma", d.c, gk, op);
  if (mean_o.is_none() || rstd_o.is_none())
    throw py::value_error("batch_norm_backward: save_mean and save_rstd are required (the outputs of batch_norm)");
  const float* mp = optional_vector(mean_o, "save_mean", d.c, mk, op);
  const float* rp = optional_vector(rstd_o, "save_rstd", d.c, rk, op);
  ArrayArg dx = ArrayArg::empty<float>(x.shape(), "dx", op);
  ArrayArg dg = ArrayArg::empty<float>({d.c}, "dgamma", op), db = ArrayArg::empty<float>({d.c}, "dbeta", op);
  const float *xp = x.cdata<float>(), *dyp = dy.cdata<float>();
  float *dxp = dx.mdata<float>(), *dgp = dg.mdata<float>(), *dbp = db.mdata<float>();
  {
    py::gil_scoped_release nogil;
    nn::batch_norm_backward(d.n, d.c, d.s, dyp, xp, g, mp, rp, training, dxp, dgp, dbp);
  }
  if (!g) return py::make_tuple(dx.result(), py::none(), py::none());
  return py::make_tuple(dx.result(), dg.result(), db.result());
}

// ---- dropout ----------------------------------------------------------------------
double checked_p(double p) {
  if (!(p >= 0.0 && p < 1.0)) throw py::value_error("dropout p must be in [0, 1), got " + std::to_string(p));
  return p;
}

py::tuple dropout(const py::object& xo, Real p_d, const py::int_& seed_o) {
  const char* op = "dropout";
  if (py::isinstance<py::bool_>(seed_o)) throw py::type_error("dropout: seed must be an int, got bool");
  ArrayArg x = float_input(xo, "x", op);
  x.c_contiguous();
  const double p = checked_p(p_d);
  if (py::int_(0).attr("__gt__")(seed_o).cast<bool>() ||
      seed_o.attr("bit_length")().cast<int>() > 64)
    throw py::value_error("seed must be an int in [0, 2**64)");
  const uint64_t seed = seed_o.cast<uint64_t>();
  ArrayArg y = ArrayArg::empty<float>(x.shape(), "y", op);
  ArrayArg mask = ArrayArg::empty<uint8_t>(x.shape(), "mask", op);
  const float* xp = x.cdata<float>();
  float* yp = y.mdata<float>();
  uint8_t* mp = mask.mdata<uint8_t>();
  const int64_t n = x.numel;
  {
    py::gil_scoped_release nogil;
    nn::dropout(n, xp, p, seed, yp, mp);
  }
  return py::make_tuple(y.result(), mask.result());
}

py::object dropout_backward(const py::object& dyo, const py::object& mask_o, Real p_d,
                            const py::object& out) {
  const char* op = "dropout_backward";
  ArrayArg dy = float_input(dyo, "dy", op);
  dy.c_contiguous();
  ArrayArg mask = ArrayArg::from_python(mask_o, "mask", op);
  mask.dtype_in({DType::uint8, DType::bool_}, "uint8 or bool (the mask returned by dropout)");
  mask.same_shape_as(dy).c_contiguous();
  const double p = checked_p(p_d);
  ArrayArg dx = make_out(out, dy.shape(), {&dy, &mask}, false, op);
  const float* dyp = dy.cdata<float>();
  const uint8_t* mp = mask.cdata<uint8_t>();
  float* dxp = dx.mdata<float>();
  const int64_t n = dy.numel;
  {
    py::gil_scoped_release nogil;
    nn::dropout_backward(n, dyp, mp, p, dxp);
  }
  return dx.result();
}

// ---- reductions -------------------------------------------------------------------
py::object sum_rows(const py::object& xo, const py::object& out, Flag accumulate) {
  const char* op = "sum_rows";
  ArrayArg x = float_input(xo, "x", op);
  x.ndim_in(2, 2);
  const RowLayout lx = row_layout(x);
  if (accumulate && out.is_none()) throw py::value_error("sum_rows: accumulate=True needs out");
  ArrayArg o = make_out(out, {lx.n}, {}, false, op);
  if (o.overlaps(x)) throw py::value_error("sum_rows: out must not overlap x");
  const float* xp = x.cdata<float>();
  float* op_ = o.mdata<float>();
  {
    py::gil_scoped_release nogil;
    nn::sum_rows(lx.rows, lx.n, xp, lx.ld, op_, accumulate);
  }
  return o.result();
}

py::object embedding_backward(const py::object& idx_o, const py::object& dyo, Index num_embeddings,
                              const py::object& out, Flag accumulate) {
  const char* op = "embedding_backward";
  ArrayArg idx = index_input(idx_o, "indices", op);
  IndexRef ir = index_ref(idx);
  ArrayArg dy = float_input(dyo, "dy", op);
  bool ok = dy.ndim == idx.ndim + 1;
  for (int i = 0; ok && i < idx.ndim; ++i) ok = dy.dim(i) == idx.dim(i);
  if (!ok)
    throw py::value_error("embedding_backward: dy must have shape indices.shape + (embedding_dim,): indices " +
                          shape_str(idx.shape()) + ", dy " + shape_str(dy.shape()));
  if (num_embeddings < 0) throw py::value_error("num_embeddings must be >= 0");
  if (idx.ndim != 1) dy.c_contiguous();
  const RowLayout l = row_layout(dy);
  if (accumulate && out.is_none())
    throw py::value_error("embedding_backward: accumulate=True needs out");
  checked_mul(num_embeddings, l.n, "embedding gradient size");
  ArrayArg o = make_out(out, {num_embeddings, l.n}, {}, false, op);
  if (o.overlaps(dy) || o.overlaps(idx))
    throw py::value_error("embedding_backward: out must not overlap dy or indices");
  const float* dyp = dy.cdata<float>();
  float* op_ = o.mdata<float>();
  const int64_t count = idx.numel;
  {
    py::gil_scoped_release nogil;
    nn::embedding_backward(count, l.n, ir, num_embeddings, dyp, l.ld, op_, accumulate);
  }
  return o.result();
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
        "label_smoothing"_a = 0.0, "reduction"_a = "mean", "return_grad"_a = false, "out"_a = none);

  m.def("relu", [](py::object x, py::object out) { return eltwise1(EltOp::relu, "relu", x, out, 0.f); },
        "x"_a, "out"_a = none);
  m.def("relu_backward",
        [](py::object dy, py::object y, py::object out) { return eltwise2(EltOp::relu_backward, "relu_backward", dy, y, "y", out, 0.f); },
        "dy"_a, "y"_a, "out"_a = none);
  m.def("leaky_relu",
        [](py::object x, Real s, py::object out) { return eltwise1(EltOp::leaky_relu, "leaky_relu", x, out, checked_slope(s)); },
        "x"_a, "negative_slope"_a = 0.01, "out"_a = none);
  m.def("leaky_relu_backward",
        [](py::object dy, py::object x, Real s, py::object out) {
          return eltwise2(EltOp::leaky_relu_backward, "leaky_relu_backward", dy, x, "x", out, checked_slope(s));
        },
        "dy"_a, "x"_a, "negative_slope"_a = 0.01, "out"_a = none);
  m.def("tanh", [](py::object x, py::object out) { return eltwise1(EltOp::tanh, "tanh", x, out, 0.f); },
        "x"_a, "out"_a = none);
  m.def("tanh_backward",
        [](py::object dy, py::object y, py::object out) { return eltwise2(EltOp::tanh_backward, "tanh_backward", dy, y, "y", out, 0.f); },
        "dy"_a, "y"_a, "out"_a = none);
  m.def("sigmoid", [](py::object x, py::object out) { return eltwise1(EltOp::sigmoid, "sigmoid", x, out, 0.f); },
        "x"_a, "out"_a = none);
  m.def("sigmoid_backward",
        [](py::object dy, py::object y, py::object out) { return eltwise2(EltOp::sigmoid_backward, "sigmoid_backward", dy, y, "y", out, 0.f); },
        "dy"_a, "y"_a, "out"_a = none);
  m.def("gelu",
        [](py::object x, const std::string& a, py::object out) {
          return eltwise1(parse_gelu(a) ? EltOp::gelu_tanh : EltOp::gelu_erf, "gelu", x, out, 0.f);
        },
        "x"_a, "approximate"_a = "tanh", "out"_a = none);
  m.def("gelu_backward",
        [](py::object dy, py::object x, const std::string& a, py::object out) {
          return eltwise2(parse_gelu(a) ? EltOp::gelu_tanh_backward : EltOp::gelu_erf_backward, "gelu_backward", dy, x, "x",
                          out, 0.f);
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
