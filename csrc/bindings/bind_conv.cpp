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

#include "bindings/array_arg.h"
#include "bindings/registry.h"
#include "common/checks.h"
#include "cpu/conv/conv.h"

namespace nnf {
namespace {

using conv::ConvShape;
using Ints = std::vector<int64_t>;

ConvShape make_shape(const Ints& xs, const Ints& ws, const Ints& stride, const Ints& padding,
                     const Ints& dilation, int64_t groups) {
  if (xs.size() != 4)
    throw py::value_error("conv2d: x must have 4 dimensions (N, C, H, W), got shape " + shape_str(xs));
  if (ws.size() != 4)
    throw py::value_error("conv2d: w must have 4 dimensions (K, C/groups, R, S), got shape " +
                          shape_str(ws));
  if (stride.size() != 2 || dilation.size() != 2 || padding.size() != 4)
    throw py::value_error("conv2d: stride and dilation need 2 values, padding 4 (top, bottom, left, right)");
  if (groups <= 0)
    throw py::value_error("conv2d: groups must be positive, got " + std::to_string(groups));
  if (xs[1] != ws[1] * groups)
    throw py::value_error("conv2d: channel mismatch: x " + shape_str(xs) + " has C=" +
                          std::to_string(xs[1]) + " but w " + shape_str(ws) + " with groups=" +
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

// float32, `ndim`-D, C-contiguous: what every conv kernel reads.
ArrayArg input(const py::handle& obj, const char* name, const char* op) {
  ArrayArg a = ArrayArg::from_python(obj, name, op);
  a.float32().ndim_in(4, 4).c_contiguous();
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

py::object conv2d(const py::object& x_obj, const py::object& w_obj, const py::object& bias_obj,
                  const Ints& stride, const Ints& padding, const Ints& dilation, int64_t groups,
                  const py::object& activation, const py::object& out_obj) {
  const char* op = "conv2d";
  ArrayArg x = input(x_obj, "x", op), w = input(w_obj, "w", op);
  const bool relu = parse_relu(activation);
  const ConvShape s = make_shape(x.shape(), w.shape(), stride, padding, dilation, groups);
  ArrayArg bias;
  const float* bp = nullptr;
  if (!bias_obj.is_none()) {
    bias = ArrayArg::from_python(bias_obj, "bias", op);
    bias.float32();
    if (bias.ndim != 1 || bias.dim(0) != s.k)
      throw py::value_error("conv2d: bias must have shape (" + std::to_string(s.k) + ",) for w " +
                            shape_str(w.shape()) + ", got " + shape_str(bias.shape()));
    bias.c_contiguous();
    bp = bias.cdata<float>();
  }
  const Shape yshape{s.n, s.k, s.ho, s.wo};
  ArrayArg y;
  if (out_obj.is_none()) {
    y = ArrayArg::empty<float>(yshape, "out", op);
  } else {
    y = ArrayArg::from_python(out_obj, "out", op);
    y.float32().shape_is(yshape).c_contiguous().writeable().not_overlapping({&x, &w, bp ? &bias : nullptr});
  }
  const float* xp = x.cdata<float>();
  const float* wp = w.cdata<float>();
  float* yp = y.mdata<float>();
  {
    py::gil_scoped_release nogil;
    conv::forward(s, xp, wp, bp, relu, yp);
  }
  return y.result();
}

py::tuple conv2d_backward(const py::object& dy_obj, const py::object& x_obj, const py::object& w_obj,
                          const Ints& stride, const Ints& padding, const Ints& dilation,
                          int64_t groups, bool need_input, bool need_weight, bool need_bias) {
  const char* op = "conv2d_backward";
  ArrayArg dy = input(dy_obj, "dy", op), x = input(x_obj, "x", op), w = input(w_obj, "w", op);
  const ConvShape s = make_shape(x.shape(), w.shape(), stride, padding, dilation, groups);
  const Ints want{s.n, s.k, s.ho, s.wo};
  if (dy.shape() != want)
    throw py::value_error("conv2d_backward: dy must have the output shape " + shape_str(want) + " of x " +
                          shape_str(x.shape()) + " and w " + shape_str(w.shape()) + ", got " +
                          shape_str(dy.shape()));
  py::object dx = py::none(), dw = py::none(), db = py::none();
  float *dxp = nullptr, *dwp = nullptr, *dbp = nullptr;
  if (need_input) {
    ArrayArg a = ArrayArg::empty<float>({s.n, s.c, s.h, s.w}, "dx", op);
    dxp = a.mdata<float>();
    dx = a.result();
  }
  if (need_weight) {
    ArrayArg a = ArrayArg::empty<float>({s.k, s.cg(), s.r, s.s}, "dw", op);
    dwp = a.mdata<float>();
    dw = a.result();
  }
  if (need_bias) {
    ArrayArg a = ArrayArg::empty<float>({s.k}, "db", op);
    dbp = a.mdata<float>();
    db = a.result();
  }
  const float* dyp = dy.cdata<float>();
  const float* xp = x.cdata<float>();
  const float* wp = w.cdata<float>();
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
