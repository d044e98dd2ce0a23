// Validation shared by every binding: dtype, ndim, shape, strides, writeability.
// Bindings validate everything here, then release the GIL and call a kernel; no
// maths lives in bindings. Errors name the argument, its shape and its dtype.
#pragma once
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include <algorithm>
#include <cstdint>
#include <string>
#include <utility>
#include <vector>

namespace nnf {
namespace py = pybind11;

inline std::string shape_str(const py::array& a) {
  std::string s = "(";
  for (py::ssize_t i = 0; i < a.ndim(); ++i) {
    s += std::to_string(a.shape(i));
    if (a.ndim() == 1 || i + 1 < a.ndim()) s += i + 1 < a.ndim() ? ", " : ",";
  }
  return s + ")";
}

inline std::string dtype_str(const py::array& a) { return py::str(a.dtype()).cast<std::string>(); }

// Accepts only a NumPy ndarray (no silent conversion of lists or other dtypes).
inline py::array as_array(const py::handle& obj, const char* name) {
  if (!py::isinstance<py::array>(obj))
    throw py::type_error(std::string(name) + " must be a numpy.ndarray, got " +
                         py::str(py::type::of(obj).attr("__name__")).cast<std::string>());
  return py::reinterpret_borrow<py::array>(obj);
}

// The kernels load whole elements through typed pointers; an unaligned buffer
// (np.frombuffer(..., offset=1), packed structured fields) would be undefined
// behaviour there, so it is refused rather than copied behind the caller's back.
inline void require_aligned(const py::array& a, const char* name) {
  if (!(a.flags() & py::detail::npy_api::NPY_ARRAY_ALIGNED_))
    throw py::value_error(std::string(name) + " is not aligned to its " + dtype_str(a) +
                          " item size (shape " + shape_str(a) + "); pass " + name + ".copy()");
}

// float32 and aligned: every float array a kernel reads or writes passes here.
inline void require_float32(const py::array& a, const char* name) {
  if (!a.dtype().is(py::dtype::of<float>()))
    throw py::type_error(std::string(name) + " must be float32, got dtype " + dtype_str(a) +
                         " with shape " + shape_str(a) + "; convert it with " + name +
                         ".astype(numpy.float32)");
  require_aligned(a, name);
}

// An output whose elements alias each other (as_strided views with a stride smaller
// than the extent of the faster dimensions) would let two threads write one element.
// Sufficient test: sorted by |stride|, each stride spans all faster dimensions.
inline void require_no_self_overlap(const py::array& a, const char* name) {
  std::vector<std::pair<int64_t, int64_t>> dims;  // (|stride| bytes, extent)
  for (py::ssize_t d = 0; d < a.ndim(); ++d) {
    if (a.shape(d) == 0) return;  // empty: nothing is written
    if (a.shape(d) > 1) {
      int64_t st = a.strides(d);
      dims.emplace_back(st < 0 ? -st : st, a.shape(d));
    }
  }
  std::sort(dims.begin(), dims.end());
  int64_t span = a.itemsize();
  for (auto& [stride, extent] : dims) {
    if (stride < span)
      throw py::value_error(std::string(name) + " " + shape_str(a) +
                            " has overlapping elements (a stride smaller than the data it must step over); "
                            "pass a real array");
    span = stride * extent;
  }
}

inline void require_ndim(const py::array& a, const char* name, int lo, int hi) {
  if (a.ndim() < lo || a.ndim() > hi) {
    std::string want = lo == hi ? std::to_string(lo) : std::to_string(lo) + " to " + std::to_string(hi);
    throw py::value_error(std::string(name) + " must have " + want + " dimensions, got shape " + shape_str(a));
  }
}

inline void require_writeable(const py::array& a, const char* name) {
  if (!a.writeable())
    throw py::value_error(std::string(name) + " is read-only (shape " + shape_str(a) + ")");
}

inline void require_c_contiguous(const py::array& a, const char* name) {
  if (!(a.flags() & py::array::c_style))
    throw py::value_error(std::string(name) + " must be C-contiguous (shape " + shape_str(a) +
                          "); pass numpy.ascontiguousarray(" + name + ")");
}

// Strides in elements; a stride that is not a whole number of floats is refused.
inline int64_t elem_stride(const py::array& a, int dim, const char* name) {
  const py::ssize_t bytes = a.strides(dim);
  if (bytes % static_cast<py::ssize_t>(a.itemsize()) != 0)
    throw py::value_error(std::string(name) + " has a stride that is not a multiple of its item size");
  return static_cast<int64_t>(bytes / static_cast<py::ssize_t>(a.itemsize()));
}

// Pointer to element 0 (valid even for negative strides).
inline const float* cdata(const py::array& a) { return static_cast<const float*>(a.data()); }
inline float* mdata(py::array& a) { return static_cast<float*>(a.mutable_data()); }

// True when the two arrays' memory ranges overlap (conservative: by extent).
inline bool may_share_memory(const py::array& a, const py::array& b) {
  auto extent = [](const py::array& x, const char*& lo, const char*& hi) {
    lo = hi = static_cast<const char*>(x.data());
    if (x.size() == 0) return false;
    for (py::ssize_t d = 0; d < x.ndim(); ++d) {
      py::ssize_t span = (x.shape(d) - 1) * x.strides(d);
      if (span < 0) lo += span; else hi += span;
    }
    hi += x.itemsize();
    return true;
  };
  const char *alo, *ahi, *blo, *bhi;
  if (!extent(a, alo, ahi) || !extent(b, blo, bhi)) return false;
  return alo < bhi && blo < ahi;
}

}  // namespace nnf
