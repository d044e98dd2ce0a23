// nnforge._core.to_bfloat16 / to_float32: validate, release the GIL, call the strided
// conversions of csrc/cpu/gemm/bf16_convert.cpp. out is required here (the Python
// wrappers in _lowp_ops.py allocate it: a bfloat16 array needs ml_dtypes' dtype).
//
//   x: any shape and strides;  out: the same shape, any strides, not overlapping x.
#include "bindings/array_arg.h"
#include "bindings/registry.h"
#include "cpu/gemm/bf16.h"

namespace nnf {
namespace {

py::object to_bfloat16_py(const py::object& x_obj, const py::object& out_obj) {
  const char* op = "to_bfloat16";
  ArrayArg x = ArrayArg::from_python(x_obj, "x", op);
  x.float32();
  ArrayArg out = ArrayArg::from_python(out_obj, "out", op);
  out.dtype_is(DType::bfloat16).shape_is(x.shape()).writeable().no_self_overlap().not_overlapping({&x});
  {
    py::gil_scoped_release nogil;
    to_bfloat16(x.ndim, x.shape_, x.cdata<float>(), x.strides_, out.mdata<uint16_t>(), out.strides_);
  }
  return out.result();
}

py::object to_float32_py(const py::object& x_obj, const py::object& out_obj) {
  const char* op = "to_float32";
  ArrayArg x = ArrayArg::from_python(x_obj, "x", op);
  x.dtype_is(DType::bfloat16);
  ArrayArg out = ArrayArg::from_python(out_obj, "out", op);
  out.float32().shape_is(x.shape()).writeable().no_self_overlap().not_overlapping({&x});
  {
    py::gil_scoped_release nogil;
    to_float32(x.ndim, x.shape_, x.cdata<uint16_t>(), x.strides_, out.mdata<float>(), out.strides_);
  }
  return out.result();
}

void bind_bf16(py::module_& m) {
  m.def("to_bfloat16", &to_bfloat16_py, py::arg("x"), py::arg("out"),
        "to_bfloat16(x, out): float32 -> bfloat16 into out (round to nearest even).");
  m.def("to_float32", &to_float32_py, py::arg("x"), py::arg("out"),
        "to_float32(x, out): bfloat16 -> float32 into out (exact).");
}

BindingRegistrar reg("bf16", &bind_bf16);

}  // namespace
}  // namespace nnf
