// Strict scalar arguments for bindings: nnf::Real, nnf::Index and nnf::Flag in a signature
// in place of double, int64_t and bool.
//
// Why: pybind11's own casters truth-test and convert. A double parameter takes True (1.0);
// an int64_t takes True and, for NumPy float scalars, truncates through __int__; a bool takes
// None, 0.0 or any object with __bool__. nnforge._args (the Python side of the same rule)
// refuses all of these, so the compiled ops must too:
//   Real   a real number: Python int / float or a NumPy integer / floating scalar
//          (numbers.Real), never bool, numpy.bool_, str, complex or an array;
//   Index  an integer: Python int or NumPy integer (numbers.Integral), never bool or float;
//   Flag   bool or numpy.bool_ only.
// A refused argument is a TypeError (pybind11's "incompatible function arguments", which
// names the parameter types and the types passed). Domains (>= 0, finite, [0, 1)) stay
// with each binding, which knows the argument's name.
#pragma once
#include <pybind11/pybind11.h>

#include <cstdint>
#include <cstring>

namespace nnf {

struct Real {
  double v = 0.0;
  operator double() const { return v; }
};
struct Index {
  int64_t v = 0;
  operator int64_t() const { return v; }
};
struct Flag {
  bool v = false;
  operator bool() const { return v; }
};

namespace scalar_detail {
namespace py = pybind11;

inline bool is_bool(PyObject* o) {
  if (PyBool_Check(o)) return true;
  const char* tp = Py_TYPE(o)->tp_name;  // numpy.bool (NumPy 2) / numpy.bool_ (NumPy 1)
  return std::strcmp(tp, "numpy.bool") == 0 || std::strcmp(tp, "numpy.bool_") == 0;
}

// isinstance(o, numbers.<abc>): the slow path, for NumPy scalars only.
inline bool is_instance_of(PyObject* o, const char* abc) {
  py::object cls = py::module_::import("numbers").attr(abc);
  const int r = PyObject_IsInstance(o, cls.ptr());
  if (r < 0) {
    PyErr_Clear();
    return false;
  }
  return r == 1;
}
}  // namespace scalar_detail
}  // namespace nnf

namespace pybind11 {
namespace detail {

template <>
struct type_caster<nnf::Real> {
  PYBIND11_TYPE_CASTER(nnf::Real, const_name("float"));
  bool load(handle src, bool) {
    PyObject* o = src.ptr();
    if (nnf::scalar_detail::is_bool(o)) return false;
    if (!PyFloat_Check(o) && !PyLong_Check(o) && !nnf::scalar_detail::is_instance_of(o, "Real")) return false;
    const double d = PyFloat_AsDouble(o);  // ints beyond double's range: OverflowError
    if (d == -1.0 && PyErr_Occurred()) {
      PyErr_Clear();
      return false;
    }
    value.v = d;
    return true;
  }
  static handle cast(nnf::Real src, return_value_policy, handle) { return PyFloat_FromDouble(src.v); }
};

template <>
struct type_caster<nnf::Index> {
  PYBIND11_TYPE_CASTER(nnf::Index, const_name("int"));
  bool load(handle src, bool) {
    PyObject* o = src.ptr();
    if (nnf::scalar_detail::is_bool(o)) return false;
    if (!PyLong_Check(o) && !nnf::scalar_detail::is_instance_of(o, "Integral")) return false;
    int overflow = 0;
    object as_int = reinterpret_steal<object>(PyNumber_Index(o));
    if (!as_int) {
      PyErr_Clear();
      return false;
    }
    const long long v = PyLong_AsLongLongAndOverflow(as_int.ptr(), &overflow);
    if (overflow != 0) throw value_error("integer argument " + std::string(str(src)) + " is out of the int64 range");
    if (v == -1 && PyErr_Occurred()) {
      PyErr_Clear();
      return false;
    }
    value.v = int64_t(v);
    return true;
  }
  static handle cast(nnf::Index src, return_value_policy, handle) { return PyLong_FromLongLong(src.v); }
};

template <>
struct type_caster<nnf::Flag> {
  PYBIND11_TYPE_CASTER(nnf::Flag, const_name("bool"));
  bool load(handle src, bool) {
    PyObject* o = src.ptr();
    if (!nnf::scalar_detail::is_bool(o)) return false;
    const int r = PyObject_IsTrue(o);
    if (r < 0) {
      PyErr_Clear();
      return false;
    }
    value.v = r == 1;
    return true;
  }
  static handle cast(nnf::Flag src, return_value_policy, handle) { return PyBool_FromLong(src.v); }
};

}  // namespace detail
}  // namespace pybind11
