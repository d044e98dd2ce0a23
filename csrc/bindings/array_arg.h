// nnf::ArrayArg: one kernel argument (an array) as every binding sees it, and every
// check a binding makes on it. Bindings build one per array argument, chain the
// checks they need, then release the GIL and hand the kernel plain pointers:
//
//   ArrayArg a = ArrayArg::from_python(a_obj, "a", "matmul");
//   a.float32().ndim_in(2, 3);
//   ArrayArg out = ArrayArg::from_python(o, "out", "matmul");
//   out.float32().shape_is(want).writeable().no_self_overlap().not_overlapping({&a, &b});
//
// Two layers, so a later GPU / DLPack builder needs no rewrite:
//   ArrayDesc  what a kernel sees: data pointer, dtype, device, ndim, shape and
//              strides in ELEMENTS, numel, writeability. No Python object inside.
//   ArrayArg   ArrayDesc + the argument's name, its op (for messages) and the
//              Python object that owns the memory (kept alive while the kernel runs).
// Builders: from_numpy (an ndarray), from_python (an ndarray directly; anything else
// through nnforge._args.as_ndarray, the one place that decides which foreign arrays
// are taken: DLPack CPU exporters and buffers, without a copy), empty<T> (a fresh
// C-contiguous output). A from_dlpack / __cuda_array_interface__ builder fills the
// same ArrayDesc with device = cuda.
//
// One error wording everywhere: "<op>: <name> must be <what>, got <dtype> with shape
// (<shape>)" (TypeError for a wrong dtype, ValueError for shape / layout / value).
#pragma once
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include <cstdint>
#include <initializer_list>
#include <string>
#include <vector>

namespace nnf {
namespace py = pybind11;

enum class DType : uint8_t { float32, float64, float16, bfloat16, int8, uint8, int32, int64, bool_, other };

const char* dtype_name(DType d);
int dtype_itemsize(DType d);  // 0 for `other`

template <class T> constexpr DType dtype_of();
template <> constexpr DType dtype_of<float>() { return DType::float32; }
template <> constexpr DType dtype_of<double>() { return DType::float64; }
template <> constexpr DType dtype_of<int8_t>() { return DType::int8; }
template <> constexpr DType dtype_of<uint8_t>() { return DType::uint8; }
template <> constexpr DType dtype_of<int32_t>() { return DType::int32; }
template <> constexpr DType dtype_of<int64_t>() { return DType::int64; }
template <> constexpr DType dtype_of<bool>() { return DType::bool_; }

struct Device {
  enum class Kind : uint8_t { cpu, cuda };
  Kind kind = Kind::cpu;
  int index = 0;
  std::string str() const;  // "cpu:0", "cuda:1"
};

// NumPy's own limit (NPY_MAXDIMS in NumPy 2); DLPack arrays beyond it are refused.
constexpr int kMaxDims = 64;

using Shape = std::vector<int64_t>;

// The one shape formatter: (3, 4), (5,), ().
std::string shape_str(const int64_t* shape, int ndim);
inline std::string shape_str(const Shape& s) { return shape_str(s.data(), int(s.size())); }

// What a kernel sees. Strides are in elements; data points at element 0 (valid
// for negative strides too).
struct ArrayDesc {
  void* data = nullptr;
  DType dtype = DType::other;
  int itemsize = 0;
  Device device;
  int ndim = 0;
  int64_t numel = 0;
  bool writeable_ = false;
  bool data_aligned = true;    // data pointer is a multiple of the item size
  bool strides_whole = true;   // every byte stride is a multiple of the item size
  int64_t shape_[kMaxDims];
  int64_t strides_[kMaxDims];

  int64_t dim(int i) const { return shape_[i < 0 ? ndim + i : i]; }
  int64_t stride(int i) const { return strides_[i < 0 ? ndim + i : i]; }
  Shape shape() const { return Shape(shape_, shape_ + ndim); }
  bool is_c_contiguous() const;
  bool same_shape(const ArrayDesc& o) const;
  bool same_view(const ArrayDesc& o) const;  // same pointer, dtype size, shape, strides
  bool overlaps(const ArrayDesc& o) const;   // memory extents intersect (conservative)
  // [lo, hi) byte range spanned; false when empty.
  bool extent(const char*& lo, const char*& hi) const;
};

class ArrayArg : public ArrayDesc {
 public:
  // numpy.ndarray directly (no Python call); anything else through
  // nnforge._args.as_ndarray (DLPack / buffer protocol, no copy, TypeErrors there).
  static ArrayArg from_python(py::handle obj, std::string name, const char* op);
  static ArrayArg from_numpy(const py::array& a, std::string name, const char* op);
  // A fresh C-contiguous array of `shape` (an output the binding allocates).
  template <class T>
  static ArrayArg empty(const Shape& shape, std::string name, const char* op) {
    return from_numpy(py::array_t<T>(shape), std::move(name), op);
  }

  std::string name;
  const char* op = "";
  py::object owner;  // the ndarray (what a binding returns for an output)

  // ---- checks: each throws with the one wording, or returns *this -----------------
  // dtype (TypeError) and then the layout every typed load needs: an aligned data
  // pointer and whole-element strides (ValueError). Every argument passes one of these.
  // The passing paths are inline (they run on every small call); failures are cold calls.
  ArrayArg& dtype_is(DType want) {
    if (dtype != want) fail_dtype(want);
    if (!data_aligned || !strides_whole) fail_layout();
    return *this;
  }
  ArrayArg& dtype_in(std::initializer_list<DType> allowed, const char* what);
  ArrayArg& float32() { return dtype_is(DType::float32); }
  ArrayArg& ndim_in(int lo, int hi) {
    if (ndim < lo || ndim > hi) fail_ndim(lo, hi);
    return *this;
  }
  ArrayArg& shape_is(const Shape& want) {  // "<name> must have shape (..)"
    bool ok = ndim == int(want.size());
    for (int i = 0; ok && i < ndim; ++i) ok = shape_[i] == want[size_t(i)];
    if (!ok) fail_shape(want);
    return *this;
  }
  ArrayArg& same_shape_as(const ArrayArg& other);    // "<name> must have the shape of <other> (..)"
  ArrayArg& c_contiguous() {
    if (!is_c_contiguous()) fail_contiguous();
    return *this;
  }
  ArrayArg& writeable() {
    if (!writeable_) fail_value("is read-only (shape " + shape_str(shape_, ndim) + ")");
    return *this;
  }
  // An output whose elements alias each other would let two threads write one element.
  ArrayArg& no_self_overlap();
  // An output must not share memory with an input; allow_same_view lets it be an
  // input exactly (element-wise kernels that work in place).
  ArrayArg& not_overlapping(std::initializer_list<const ArrayArg*> inputs, bool allow_same_view = false);

  // "float64 with shape (3, 4)" (plus " on cuda:0" off the CPU).
  std::string describe() const;
  // "<op>: " or "" when no op is named.
  std::string prefix() const;
  [[noreturn]] void fail_value(const std::string& what) const;  // ValueError "<op>: <name> <what>"

  template <class T> const T* cdata() const { return static_cast<const T*>(data); }
  // Only after writeable() (or for kernels that write only what their flags say).
  template <class T> T* mdata() const { return static_cast<T*>(data); }
  py::object result() const { return owner; }

 private:
  [[noreturn]] void fail_dtype(DType want) const;
  [[noreturn]] void fail_layout() const;
  [[noreturn]] void fail_ndim(int lo, int hi) const;
  [[noreturn]] void fail_shape(const Shape& want) const;
  [[noreturn]] void fail_contiguous() const;
};

// The dict the kernels' view of `obj` reduces to (the _core._array_arg_info hook).
py::dict array_arg_info(py::handle obj, const std::string& name);

}  // namespace nnf
