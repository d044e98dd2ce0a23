// The precision= keyword of matmul / conv2d / conv2d_backward: "fp32" or "bf16".
#pragma once
#include <pybind11/pybind11.h>

#include <string>

#include "cpu/gemm/bf16.h"

namespace nnf {

inline Precision parse_precision(const pybind11::object& obj, const char* op) {
  namespace py = pybind11;
  if (!py::isinstance<py::str>(obj))
    throw py::type_error(std::string(op) + ": precision must be a str ('fp32' or 'bf16'), got " +
                         py::str(py::type::of(obj).attr("__name__")).cast<std::string>());
  const std::string s = obj.cast<std::string>();
  if (s == "fp32") return Precision::fp32;
  if (s == "bf16") return Precision::bf16;
  throw py::value_error(std::string(op) + ": precision must be 'fp32' or 'bf16', got '" + s + "'");
}

}  // namespace nnf
