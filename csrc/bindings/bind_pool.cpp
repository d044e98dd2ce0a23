// Bindings for the pooling kernels (csrc/cpu/pool): validate every argument,
// allocate outputs, release the GIL, call nnf::pool::*. No maths here.
// Window arguments arrive as (h, w) pairs; python/nnforge/_pool_ops.py turns an
// int or a pair into one.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <string>
#include <utility>
#include <vector>

#include "bindings/array_args.h"
#include "bindings/registry.h"
#include "common/checks.h"
#include "cpu/pool/pool.h"

namespace py = pybind11;

namespace nnf {
namespace {

using Pair = std::pair<int64_t, int64_t>;

// float32, 4-D (N, C, H, W), C-contiguous.
py::array nchw_input(const py::handle& obj, const char* name, const char* op) {
  py::array a = as_array(obj, name);
  require_float32(a, name);
  if (a.ndim() != 4)
    throw py::value_error(std::string(op) + " expects " + name + " of shape (N, C, H, W), got shape " +
                          shape_str(a));
  require_c_contiguous(a, name);
  return a;
}

std::string dims_str(const std::vector<int64_t>& d) {
  std::string s = "(";
  for (size_t i = 0; i < d.size(); ++i) s += (i ? ", " : "") + std::to_string(d[i]);
  return s + (d.size() == 1 ? ",)" : ")");
}

// x_shape of a backward call: `rank` non-negative ints.
std::vector<int64_t> shape_arg(const std::vector<int64_t>& s, size_t rank, const char* op) {
  if (s.size() != rank)
    throw py::value_error(std::string(op) + ": x_shape must have " + std::to_string(rank) +
                          " entries (N, C, H, W), got " + dims_str(s));
  for (int64_t v : s)
    if (v < 0) throw py::value_error(std::string(op) + ": x_shape has a negative entry: " + dims_str(s));
  int64_t total = 1;
  for (int64_t v : s) total = checked_mul(total, v, "x_shape size");
  return s;
}

void require_shape(const py::array& a, const char* name, const std::vector<int64_t>& want, const char* op) {
  bool ok = a.ndim() == py::ssize_t(want.size());
  for (size_t i = 0; ok && i < want.size(); ++i) ok = a.shape(py::ssize_t(i)) == want[i];
  if (!ok)
    throw py::value_error(std::string(op) + ": " + name + " must have shape " + dims_str(want) + ", got " +
                          shape_str(a));
}

py::array_t<float> new_f32(const std::vector<int64_t>& shape) {
  return py::array_t<float>(std::vector<py::ssize_t>(shape.begin(), shape.end()));
}

PoolGeometry geometry_of(const char* op, const std::vector<int64_t>& x, Pair k, Pair s, Pair p,
                         bool ceil_mode, bool count_include_pad) {
  // Throws std::invalid_argument, which pybind11 raises as ValueError.
  return pool::make_geometry(op, x[0], x[1], x[2], x[3], k.first, k.second, s.first, s.second, p.first,
                             p.second, ceil_mode, count_include_pad);
}

std::vector<int64_t> shape_vec(const py::array& a) { return std::vector<int64_t>(a.shape(), a.shape() + a.ndim()); }

// ---- max pool ------------------------------------------------------------------
py::object max_pool2d(const py::object& xo, Pair k, Pair s, Pair p, bool ceil_mode, bool return_indices) {
  py::array x = nchw_input(xo, "x", "max_pool2d");
  const std::vector<int64_t> xs = shape_vec(x);
  const PoolGeometry g = geometry_of("max_pool2d", xs, k, s, p, ceil_mode, true);
  const std::vector<int64_t> ys{xs[0], xs[1], g.ho, g.wo};
  py::array_t<float> y = new_f32(ys);
  py::array_t<int64_t> idx(std::vector<py::ssize_t>(ys.begin(), ys.end()));
  const float* xp = cdata(x);
  float* yp = y.mutable_data();
  int64_t* ip = idx.mutable_data();
  {
    py::gil_scoped_release nogil;
    pool::max_pool2d(g, xp, yp, ip);
  }
  if (!return_indices) return std::move(y);
  return py::make_tuple(y, idx);
}

py::array max_pool2d_backward(const py::object& dyo, const py::object& idxo, const std::vector<int64_t>& x_shape) {
  const char* op = "max_pool2d_backward";
  py::array dy = nchw_input(dyo, "dy", op);
  py::array idx = as_array(idxo, "indices");
  if (!idx.dtype().is(py::dtype::of<int64_t>()))
    throw py::type_error(std::string(op) + ": indices must be int64 (as returned by max_pool2d), got dtype " +
                         dtype_str(idx) + " with shape " + shape_str(idx));
  require_aligned(idx, "indices");
  const std::vector<int64_t> ds = shape_vec(dy);
  require_shape(idx, "indices", ds, op);
  require_c_contiguous(idx, "indices");
  const std::vector<int64_t> xs = shape_arg(x_shape, 4, op);
  if (xs[0] != ds[0] || xs[1] != ds[1])
    throw py::value_error(std::string(op) + ": dy " + shape_str(dy) + " and x_shape " + dims_str(xs) +
                          " disagree on (N, C)");
  if (xs[2] < 1 || xs[3] < 1)
    throw py::value_error(std::string(op) + ": x_shape " + dims_str(xs) + " has an empty spatial plane");
  PoolGeometry g{};
  g.planes = xs[0] * xs[1];
  g.h = xs[2]; g.w = xs[3]; g.ho = ds[2]; g.wo = ds[3];
  py::array_t<float> dx = new_f32(xs);
  const float* dyp = cdata(dy);
  const int64_t* ip = static_cast<const int64_t*>(idx.data());
  float* dxp = dx.mutable_data();
  {
    py::gil_scoped_release nogil;
    pool::max_pool2d_backward(g, dyp, ip, dxp);  // std::invalid_argument -> ValueError
  }
  return std::move(dx);
}

// ---- average pool ----------------------------------------------------------------
py::array avg_pool2d(const py::object& xo, Pair k, Pair s, Pair p, bool ceil_mode, bool count_include_pad) {
  py::array x = nchw_input(xo, "x", "avg_pool2d");
  const std::vector<int64_t> xs = shape_vec(x);
  const PoolGeometry g = geometry_of("avg_pool2d", xs, k, s, p, ceil_mode, count_include_pad);
  py::array_t<float> y = new_f32({xs[0], xs[1], g.ho, g.wo});
  const float* xp = cdata(x);
  float* yp = y.mutable_data();
  {
    py::gil_scoped_release nogil;
    pool::avg_pool2d(g, xp, yp);
  }
  return std::move(y);
}

py::array avg_pool2d_backward(const py::object& dyo, const std::vector<int64_t>& x_shape, Pair k, Pair s, Pair p,
                              bool ceil_mode, bool count_include_pad) {
  const char* op = "avg_pool2d_backward";
  py::array dy = nchw_input(dyo, "dy", op);
  const std::vector<int64_t> xs = shape_arg(x_shape, 4, op);
  const PoolGeometry g = geometry_of(op, xs, k, s, p, ceil_mode, count_include_pad);
  require_shape(dy, "dy", {xs[0], xs[1], g.ho, g.wo}, op);
  py::array_t<float> dx = new_f32(xs);
  const float* dyp = cdata(dy);
  float* dxp = dx.mutable_data();
  {
    py::gil_scoped_release nogil;
    pool::avg_pool2d_backward(g, dyp, dxp);
  }
  return std::move(dx);
}

// ---- global average pool -----------------------------------------------------------
py::array global_avg_pool2d(const py::object& xo) {
  py::array x = nchw_input(xo, "x", "global_avg_pool2d");
  const std::vector<int64_t> xs = shape_vec(x);
  if (xs[2] < 1 || xs[3] < 1)
    throw py::value_error("global_avg_pool2d: input " + shape_str(x) + " has an empty spatial plane");
  py::array_t<float> y = new_f32({xs[0], xs[1]});
  const float* xp = cdata(x);
  float* yp = y.mutable_data();
  {
    py::gil_scoped_release nogil;
    pool::global_avg_pool2d(xs[0] * xs[1], xs[2] * xs[3], xp, yp);
  }
  return std::move(y);
}

py::array global_avg_pool2d_backward(const py::object& dyo, const std::vector<int64_t>& x_shape) {
  const char* op = "global_avg_pool2d_backward";
  py::array dy = as_array(dyo, "dy");
  require_float32(dy, "dy");
  const std::vector<int64_t> xs = shape_arg(x_shape, 4, op);
  if (xs[2] < 1 || xs[3] < 1)
    throw py::value_error(std::string(op) + ": x_shape " + dims_str(xs) + " has an empty spatial plane");
  require_shape(dy, "dy", {xs[0], xs[1]}, op);
  require_c_contiguous(dy, "dy");
  py::array_t<float> dx = new_f32(xs);
  const float* dyp = cdata(dy);
  float* dxp = dx.mutable_data();
  {
    py::gil_scoped_release nogil;
    pool::global_avg_pool2d_backward(xs[0] * xs[1], xs[2] * xs[3], dyp, dxp);
  }
  return std::move(dx);
}

void bind_pool(py::module_& m) {
  using namespace py::literals;
  m.def("max_pool2d", &max_pool2d, "x"_a, "kernel_size"_a, "stride"_a, "padding"_a, "ceil_mode"_a,
        "return_indices"_a);
  m.def("max_pool2d_backward", &max_pool2d_backward, "dy"_a, "indices"_a, "x_shape"_a);
  m.def("avg_pool2d", &avg_pool2d, "x"_a, "kernel_size"_a, "stride"_a, "padding"_a, "ceil_mode"_a,
        "count_include_pad"_a);
  m.def("avg_pool2d_backward", &avg_pool2d_backward, "dy"_a, "x_shape"_a, "kernel_size"_a, "stride"_a,
        "padding"_a, "ceil_mode"_a, "count_include_pad"_a);
  m.def("global_avg_pool2d", &global_avg_pool2d, "x"_a);
  m.def("global_avg_pool2d_backward", &global_avg_pool2d_backward, "dy"_a, "x_shape"_a);
}

BindingRegistrar reg("pool", &bind_pool);

}  // namespace
}  // namespace nnf
