// nnforge._core.conv2d / conv2d_backward / conv2d_output_shape / conv2d_algorithm.
// Validates every argument (dtype, ndim, layout, shapes, overflow), then releases
// the GIL and calls nnf::conv (csrc/cpu/conv/). Inputs must be C-contiguous here;
// nnforge.ops.conv2d copies strided views first.
//
//   x (N, C, H, W)  w (K, C/groups, R, S)  bias (K,)  y / dy (N, K, Ho, Wo)
//   stride (sh, sw), padding (top, bottom, left, right), dilation (dh, dw)
#include <pybind11/stl.h>

#include <string>
#include <vector>

#include "bindings/array_args.h"
#include "bindings/registry.h"
#include "common/checks.h"
#include "cpu/conv/conv.h"

namespace nnf {
namespace {

using conv::ConvShape;
using Ints = std::vector<int64_t>;

std::string ints_str(const Ints& v) {
  std::string s = "(";
  for (size_t i = 0; i < v.size(); ++i) s += (i ? ", " : "") + std::to_string(v[i]);
  return s + ")";
}

ConvShape make_shape(const Ints& xs, const Ints& ws, const Ints& stride, const Ints& padding,
                     const Ints& dilation, int64_t groups) {
  if (xs.size() != 4)
    throw py::value_error("conv2d: x must have 4 dimensions (N, C, H, W), got shape " + ints_str(xs));
  if (ws.size() != 4)
    throw py::value_error("conv2d: w must have 4 dimensions (K, C/groups, R, S), got shape " +
                          ints_str(ws));
  if (stride.size() != 2 || dilation.size() != 2 || padding.size() != 4)
    throw py::value_error("conv2d: stride and dilation need 2 values, padding 4 (top, bottom, left, right)");
  if (groups <= 0)
    throw py::value_error("conv2d: groups must be positive, got " + std::to_string(groups));
  if (xs[1] != ws[1] * groups)
    throw py::value_error("conv2d: channel mismatch: x " + ints_str(xs) + " has C=" +
                          std::to_string(xs[1]) + " but w " + ints_str(ws) + " with groups=" +
                          std::to_string(groups) + " expects C = w.shape[1] * groups = " +
                          std::to_string(ws[1] * groups));
  ConvShape s;
  s.n = xs[0];
  s.c = xs[1];
  s.h = xs[2];
  s.w = xs[3];
  s.k = ws[0];
  s.r = ws[2];
  s.s = ws[3];
  s.sh = stride[0];
  s.sw = stride[1];
  s.pt = padding[0];
  s.pb = padding[1];
  s.pl = padding[2];
  s.pr = padding[3];
  s.dh = dilation[0];
  s.dw = dilation[1];
  s.groups = groups;
  conv::finalize_shape(s);  // std::invalid_argument -> ValueError
  return s;
}

Ints dims(const py::array& a) { return Ints(a.shape(), a.shape() + a.ndim()); }

py::array input(const py::handle& obj, const char* name, int ndim) {
  py::array a = as_array(obj, name);
  require_float32(a, name);
  require_ndim(a, name, ndim, ndim);
  require_c_contiguous(a, name);
  return a;
}

bool parse_relu(const py::object& act) {
  if (act.is_none()) return false;
  if (!py::isinstance<py::str>(act))
    throw py::type_error("activation must be None or 'relu', got " +
                         py::str(py::type::of(act).attr("__name__")).cast<std::string>());
  const std::string a = act.cast<std::string>();
  if (a != "relu") throw py::value_error("activation must be None or 'relu', got '" + a + "'");
  return true;
}

py::array conv2d(const py::object& x_obj, const py::object& w_obj, const py::object& bias_obj,
                 const Ints& stride, const Ints& padding, const Ints& dilation, int64_t groups,
                 const py::object& activation, const py::object& out_obj) {
  py::array x = input(x_obj, "x", 4), w = input(w_obj, "w", 4);
  const bool relu = parse_relu(activation);
  const ConvShape s = make_shape(dims(x), dims(w), stride, padding, dilation, groups);
  py::array bias;
  const float* bp = nullptr;
  if (!bias_obj.is_none()) {
    bias = as_array(bias_obj, "bias");
    require_float32(bias, "bias");
    if (bias.ndim() != 1 || bias.shape(0) != s.k)
      throw py::value_error("conv2d: bias must have shape (" + std::to_string(s.k) +
                            ",) for w " + shape_str(w) + ", got " + shape_str(bias));
    require_c_contiguous(bias, "bias");
    bp = cdata(bias);
  }
  const std::vector<py::ssize_t> yshape{s.n, s.k, s.ho, s.wo};
  py::array y;
  if (out_obj.is_none()) {
    y = py::array_t<float>(yshape);
  } else {
    y = as_array(out_obj, "out");
    require_float32(y, "out");
    if (dims(y) != Ints(yshape.begin(), yshape.end()))
      throw py::value_error("conv2d: out must have shape " + ints_str(Ints(yshape.begin(), yshape.end())) +
                            ", got " + shape_str(y));
    require_c_contiguous(y, "out");
    require_writeable(y, "out");
    if (may_share_memory(y, x) || may_share_memory(y, w) || (bp && may_share_memory(y, bias)))
      throw py::value_error("conv2d: out " + shape_str(y) + " overlaps an input; pass a separate array");
  }
  const float* xp = cdata(x);
  const float* wp = cdata(w);
  float* yp = mdata(y);
  {
    py::gil_scoped_release nogil;
    conv::forward(s, xp, wp, bp, relu, yp);
  }
  return y;
}

py::tuple conv2d_backward(const py::object& dy_obj, const py::object& x_obj, const py::object& w_obj,
                          const Ints& stride, const Ints& padding, const Ints& dilation,
                          int64_t groups, bool need_input, bool need_weight, bool need_bias) {
  py::array dy = input(dy_obj, "dy", 4), x = input(x_obj, "x", 4), w = input(w_obj, "w", 4);
  const ConvShape s = make_shape(dims(x), dims(w), stride, padding, dilation, groups);
  const Ints want{s.n, s.k, s.ho, s.wo};
  if (dims(dy) != want)
    throw py::value_error("conv2d_backward: dy must have the output shape " + ints_str(want) +
                          " of x " + shape_str(x) + " and w " + shape_str(w) + ", got " + shape_str(dy));
  py::object dx = py::none(), dw = py::none(), db = py::none();
  float *dxp = nullptr, *dwp = nullptr, *dbp = nullptr;
  if (need_input) {
    py::array a = py::array_t<float>(std::vector<py::ssize_t>{s.n, s.c, s.h, s.w});
    dxp = mdata(a);
    dx = a;
  }
  if (need_weight) {
    py::array a = py::array_t<float>(std::vector<py::ssize_t>{s.k, s.cg(), s.r, s.s});
    dwp = mdata(a);
    dw = a;
  }
  if (need_bias) {
    py::array a = py::array_t<float>(std::vector<py::ssize_t>{s.k});
    dbp = mdata(a);
    db = a;
  }
  const float* dyp = cdata(dy);
  const float* xp = cdata(x);
  const float* wp = cdata(w);
  {
    py::gil_scoped_release nogil;
    conv::backward(s, dyp, xp, wp, dxp, dwp, dbp);
  }
  return py::make_tuple(dx, dw, db);
}

py::tuple output_shape(const Ints& xs, const Ints& ws, const Ints& stride, const Ints& padding,
                       const Ints& dilation, int64_t groups) {
  const ConvShape s = make_shape(xs, ws, stride, padding, dilation, groups);
  return py::make_tuple(s.n, s.k, s.ho, s.wo);
}

std::string algorithm(const Ints& xs, const Ints& ws, const Ints& stride, const Ints& padding,
                      const Ints& dilation, int64_t groups) {
  return conv::algo_name(conv::choose_algo(make_shape(xs, ws, stride, padding, dilation, groups)));
}

void bind_conv(py::module_& m) {
  using namespace pybind11::literals;
  m.def("conv2d", &conv2d, "x"_a, "w"_a, "bias"_a, "stride"_a, "padding"_a, "dilation"_a,
        "groups"_a, "activation"_a, "out"_a,
        "2-D convolution, NCHW float32 (use nnforge.ops.conv2d: it normalises arguments).");
  m.def("conv2d_backward", &conv2d_backward, "dy"_a, "x"_a, "w"_a, "stride"_a, "padding"_a,
        "dilation"_a, "groups"_a, "need_input"_a, "need_weight"_a, "need_bias"_a,
        "(dx, dw, db) of conv2d from dy, the gradient of the pre-activation output.");
  m.def("conv2d_output_shape", &output_shape, "x_shape"_a, "w_shape"_a, "stride"_a, "padding"_a,
        "dilation"_a, "groups"_a, "(N, K, Ho, Wo) of conv2d, validating the shapes.");
  m.def("conv2d_algorithm", &algorithm, "x_shape"_a, "w_shape"_a, "stride"_a, "padding"_a,
        "dilation"_a, "groups"_a, "Name of the forward algorithm conv2d uses for these shapes.");
  m.def("conv2d_set_algorithm", [](const std::string& name) { conv::set_forced_algo(name); },
        "name"_a,
        "Force a forward algorithm wherever it applies ('auto' to undo); for benchmarks and tests.");
  m.def("conv2d_get_algorithm", &conv::get_forced_algo, "The forced forward algorithm or 'auto'.");
}

BindingRegistrar reg("conv", &bind_conv);

}  // namespace
}  // namespace nnf
