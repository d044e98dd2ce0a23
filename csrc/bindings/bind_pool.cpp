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

#include "bindings/array_arg.h"
#include "bindings/registry.h"
#include "common/checks.h"
#include "cpu/pool/pool.h"

namespace py = pybind11;

namespace nnf {
namespace {

using Pair = std::pair<int64_t, int64_t>;

// float32, 4-D (N, C, H, W), C-contiguous.
ArrayArg nchw_input(const py::handle& obj, const char* name, const char* op) {
  ArrayArg a = ArrayArg::from_python(obj, name, op);
  a.float32();
  if (a.ndim != 4)
    throw py::value_error(std::string(op) + ": expects " + name + " of shape (N, C, H, W), got shape " +
                          shape_str(a.shape()));
  a.c_contiguous();
  return a;
}

// x_shape of a backward call: `rank` non-negative ints.
Shape shape_arg(const Shape& s, size_t rank, const char* op) {
  if (s.size() != rank)
    throw py::value_error(std::string(op) + ": x_shape must have " + std::to_string(rank) +
                          " entries (N, C, H, W), got " + shape_str(s));
  for (int64_t v : s)
    if (v < 0) throw py::value_error(std::string(op) + ": x_shape has a negative entry: " + shape_str(s));
  int64_t total = 1;
  for (int64_t v : s) total = checked_mul(total, v, "x_shape size");
  return s;
}

PoolGeometry geometry_of(const char* op, const std::vector<int64_t>& x, Pair k, Pair s, Pair p,
                         bool ceil_mode, bool count_include_pad) {
  // Throws std::invalid_argument, which pybind11 raises as ValueError.
  return pool::make_geometry(op, x[0], x[1], x[2], x[3], k.first, k.second, s.first, s.second, p.first,
                             p.second, ceil_mode, count_include_pad);
}

// ---- max pool ------------------------------------------------------------------
py::object max_pool2d(const py::object& xo, Pair k, Pair s, Pair p, bool ceil_mode, bool return_indices) {
  const char* op = "max_pool2d";
  ArrayArg x = nchw_input(xo, "x", op);
  const Shape xs = x.shape();
  const PoolGeometry g = geometry_of(op, xs, k, s, p, ceil_mode, true);
  const Shape ys{xs[0], xs[1], g.ho, g.wo};
  ArrayArg y = ArrayArg::empty<float>(ys, "y", op), idx = ArrayArg::empty<int64_t>(ys, "indices", op);
  const float* xp = x.cdata<float>();
  float* yp = y.mdata<float>();
  int64_t* ip = idx.mdata<int64_t>();
  {
    py::gil_scoped_release nogil;
    pool::max_pool2d(g, xp, yp, ip);
  }
  if (!return_indices) return y.result();
  return py::make_tuple(y.result(), idx.result());
}

py::object max_pool2d_backward(const py::object& dyo, const py::object& idxo, const Shape& x_shape) {
  const char* op = "max_pool2d_backward";
  ArrayArg dy = nchw_input(dyo, "dy", op);
  ArrayArg idx = ArrayArg::from_python(idxo, "indices", op);
  idx.dtype_in({DType::int64}, "int64 (as returned by max_pool2d)");
  const Shape ds = dy.shape();
  idx.shape_is(ds).c_contiguous();
  const Shape xs = shape_arg(x_shape, 4, op);
  if (xs[0] != ds[0] || xs[1] != ds[1])
    throw py::value_error(std::string(op) + ": dy " + shape_str(ds) + " and x_shape " + shape_str(xs) +
                          " disagree on (N, C)");
  if (xs[2] < 1 || xs[3] < 1)
    throw py::value_error(std::string(op) + ": x_shape " + shape_str(xs) + " has an empty spatial plane");
  PoolGeometry g{};
  g.planes = xs[0] * xs[1];
  g.h = xs[2]; g.w = xs[3]; g.ho = ds[2]; g.wo = ds[3];
  ArrayArg dx = ArrayArg::empty<float>(xs, "dx", op);
  const float* dyp = dy.cdata<float>();
  const int64_t* ip = idx.cdata<int64_t>();
  float* dxp = dx.mdata<float>();
  {
    py::gil_scoped_release nogil;
    pool::max_pool2d_backward(g, dyp, ip, dxp);  // std::invalid_argument -> ValueError
  }
  return dx.result();
}

// ---- average pool ----------------------------------------------------------------
py::object avg_pool2d(const py::object& xo, Pair k, Pair s, Pair p, bool ceil_mode, bool count_include_pad) {
  const char* op = "avg_pool2d";
  ArrayArg x = nchw_input(xo, "x", op);
  const Shape xs = x.shape();
  const PoolGeometry g = geometry_of(op, xs, k, s, p, ceil_mode, count_include_pad);
  ArrayArg y = ArrayArg::empty<float>({xs[0], xs[1], g.ho, g.wo}, "y", op);
  const float* xp = x.cdata<float>();
  float* yp = y.mdata<float>();
  {
    py::gil_scoped_release nogil;
    pool::avg_pool2d(g, xp, yp);
  }
  return y.result();
}

py::object avg_pool2d_backward(const py::object& dyo, const Shape& x_shape, Pair k, Pair s, Pair p,
                               bool ceil_mode, bool count_include_pad) {
  const char* op = "avg_pool2d_backward";
  ArrayArg dy = nchw_input(dyo, "dy", op);
  const Shape xs = shape_arg(x_shape, 4, op);
  const PoolGeometry g = geometry_of(op, xs, k, s, p, ceil_mode, count_include_pad);
  dy.shape_is({xs[0], xs[1], g.ho, g.wo});
  ArrayArg dx = ArrayArg::empty<float>(xs, "dx", op);
  const float* dyp = dy.cdata<float>();
  float* dxp = dx.mdata<float>();
  {
    py::gil_scoped_release nogil;
    pool::avg_pool2d_backward(g, dyp, dxp);
  }
  return dx.result();
}

// The one output-size rule (pool::output_size via make_geometry, which validates the
// window as the ops do); python/nnforge/_pool_ops.pool2d_output_shape calls this.
py::tuple output_shape(const Shape& x_shape, Pair k, Pair s, Pair p, bool ceil_mode) {
  const Shape xs = shape_arg(x_shape, 4, "pool2d_output_shape");
  const PoolGeometry g = geometry_of("pool2d_output_shape", xs, k, s, p, ceil_mode, true);
  return py::make_tuple(xs[0], xs[1], g.ho, g.wo);
}

// ---- global average pool -----------------------------------------------------------
py::object global_avg_pool2d(const py::object& xo) {
  const char* op = "global_avg_pool2d";
  ArrayArg x = nchw_input(xo, "x", op);
  const Shape xs = x.shape();
  if (xs[2] < 1 || xs[3] < 1)
    throw py::value_error("global_avg_pool2d: input " + shape_str(xs) + " has an empty spatial plane");
  ArrayArg y = ArrayArg::empty<float>({xs[0], xs[1]}, "y", op);
  const float* xp = x.cdata<float>();
  float* yp = y.mdata<float>();
  {
    py::gil_scoped_release nogil;
    pool::global_avg_pool2d(xs[0] * xs[1], xs[2] * xs[3], xp, yp);
  }
  return y.result();
}

py::object global_avg_pool2d_backward(const py::object& dyo, const Shape& x_shape) {
  const char* op = "global_avg_pool2d_backward";
  ArrayArg dy = ArrayArg::from_python(dyo, "dy", op);
  dy.float32();
  const Shape xs = shape_arg(x_shape, 4, op);
  if (xs[2] < 1 || xs[3] < 1)
    throw py::value_error(std::string(op) + ": x_shape " + shape_str(xs) + " has an empty spatial plane");
  dy.shape_is({xs[0], xs[1]}).c_contiguous();
  ArrayArg dx = ArrayArg::empty<float>(xs, "dx", op);
  const float* dyp = dy.cdata<float>();
  float* dxp = dx.mdata<float>();
  {
    py::gil_scoped_release nogil;
    pool::global_avg_pool2d_backward(xs[0] * xs[1], xs[2] * xs[3], dyp, dxp);
  }
  return dx.result();
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
  m.def("pool2d_output_shape", &output_shape, "x_shape"_a, "kernel_size"_a, "stride"_a, "padding"_a,
        "ceil_mode"_a, "(N, C, Ho, Wo) of max_pool2d / avg_pool2d, validating the window as they do.");
  m.def("global_avg_pool2d", &global_avg_pool2d, "x"_a);
  m.def("global_avg_pool2d_backward", &global_avg_pool2d_backward, "dy"_a, "x_shape"_a);
}

BindingRegistrar reg("pool", &bind_pool);

}  // namespace
}  // namespace nnf
