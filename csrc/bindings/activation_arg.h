// The activation argument of fused epilogues (matmul, qlinear, qconv2d): None or a name.
#pragma once
#include <pybind11/pybind11.h>

#include <string>

#include "cpu/gemm/gemm.h"

namespace nnf {
namespace py = pybind11;

inline Activation parse_activation(const py::object& obj) {
  if (obj.is_none()) return Activation::none;
  if (!py::isinstance<py::str>(obj))
    throw py::type_error("activation must be None or a str, got " +
                         py::str(py::type::of(obj).attr("__name__")).cast<std::string>());
  const std::string s = obj.cast<std::string>();
  if (s == "relu") return Activation::relu;
  if (s == "gelu" || s == "gelu_tanh") return Activation::gelu_tanh;
  if (s == "gelu_erf") return Activation::gelu_erf;
  throw py::value_error("activation must be None, 'relu', 'gelu', 'gelu_tanh' or 'gelu_erf', got '" +
                        s + "'");
}

}  // namespace nnf
