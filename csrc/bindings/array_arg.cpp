// nnf::ArrayArg builders and checks (see array_arg.h), plus the debug hook
// _core._array_arg_info that shows an argument exactly as a kernel would see it.
#include "bindings/array_arg.h"

#include <algorithm>
#include <cstdlib>
#include <utility>

#include "bindings/registry.h"
#include "common/checks.h"

namespace nnf {

const char* dtype_name(DType d) {
  switch (d) {
    case DType::float32: return "float32";
    case DType::float64: return "float64";
    case DType::float16: return "float16";
    case DType::bfloat16: return "bfloat16";
    case DType::int8: return "int8";
    case DType::uint8: return "uint8";
    case DType::int32: return "int32";
    case DType::int64: return "int64";
    case DType::bool_: return "bool";
    default: return "other";
  }
}

int dtype_itemsize(DType d) {
  switch (d) {
    case DType::float64: case DType::int64: return 8;
    case DType::float32: case DType::int32: return 4;
    case DType::float16: case DType::bfloat16: return 2;
    case DType::int8: case DType::uint8: case DType::bool_: return 1;
    default: return 0;
  }
}

std::string Device::str() const {
  return std::string(kind == Kind::cpu ? "cpu" : "cuda") + ":" + std::to_string(index);
}

std::string shape_str(const int64_t* shape, int ndim) {
  std::string s = "(";
  for (int i = 0; i < ndim; ++i) s += (i ? ", " : "") + std::to_string(shape[i]);
  return s + (ndim == 1 ? ",)" : ")");
}

namespace {

// Reads only the descriptor's kind / size / byte order (no Python call) except for
// the rare kind 'V', where ml_dtypes' bfloat16 is told apart by its name (ml_dtypes
// is not a dependency: its dtype is just recognised when present).
DType dtype_from_numpy(const py::dtype& dt) {
  const char kind = dt.kind();
  const py::ssize_t size = dt.itemsize();
  if (dt.byteorder() == '>') return DType::other;  // non-native byte order (little-endian hosts)
  switch (kind) {
    case 'f': return size == 4 ? DType::float32 : size == 8 ? DType::float64 : size == 2 ? DType::float16 : DType::other;
    case 'i': return size == 1 ? DType::int8 : size == 4 ? DType::int32 : size == 8 ? DType::int64 : DType::other;
    case 'u': return size == 1 ? DType::uint8 : DType::other;
    case 'b': return size == 1 ? DType::bool_ : DType::other;
    case 'V':
      if (size == 2 && py::str(dt.attr("name")).cast<std::string>() == "bfloat16") return DType::bfloat16;
      return DType::other;
    default: return DType::other;
  }
}

std::string numpy_dtype_str(const py::handle& obj) {
  return py::str(py::reinterpret_borrow<py::array>(obj).dtype()).cast<std::string>();
}

}  // namespace

ArrayArg ArrayArg::from_numpy(const py::array& a, std::string name, const char* op) {
  ArrayArg r;
  r.name = std::move(name);
  r.op = op;
  r.owner = a;
  r.dtype = dtype_from_numpy(a.dtype());
  r.itemsize = int(a.itemsize());
  r.device = Device{};
  r.ndim = int(a.ndim());
  if (r.ndim > kMaxDims)
    throw py::value_error(r.prefix() + r.name + " has " + std::to_string(r.ndim) + " dimensions; at most " +
                          std::to_string(kMaxDims) + " are supported");
  r.writeable_ = a.writeable();
  r.data = const_cast<void*>(a.data());
  r.data_aligned = r.itemsize <= 1 || reinterpret_cast<uintptr_t>(r.data) % uintptr_t(r.itemsize) == 0;
  // Item sizes are powers of two for every dtype a kernel takes: shift and mask
  // instead of two integer divisions per dimension (this runs on every small call).
  const int64_t isz = r.itemsize;
  const bool pow2 = isz > 0 && (isz & (isz - 1)) == 0;
  const int shift = pow2 ? __builtin_ctzll(uint64_t(isz)) : 0;
  const py::ssize_t* shp = a.shape();
  const py::ssize_t* str = a.strides();
  int64_t numel = 1;
  for (int d = 0; d < r.ndim; ++d) {
    const int64_t n = shp[d], bytes = str[d];
    r.shape_[d] = n;
    numel = checked_mul(numel, n, "the number of elements");  // before any pointer is formed
    if (pow2) {
      if (n > 1 && (bytes & (isz - 1)) != 0) r.strides_whole = false;
      r.strides_[d] = bytes >> shift;  // arithmetic shift: exact for whole negative strides
    } else if (isz > 0) {
      if (n > 1 && bytes % isz != 0) r.strides_whole = false;
      r.strides_[d] = bytes / isz;
    } else {
      r.strides_[d] = 0;
    }
  }
  r.numel = numel;
  return r;
}

ArrayArg ArrayArg::from_python(py::handle obj, std::string name, const char* op) {
  // The common case stays in C++: no Python-level call for a numpy.ndarray.
  if (py::isinstance<py::array>(obj))
    return from_numpy(py::reinterpret_borrow<py::array>(obj), std::move(name), op);
  py::object arr = py::module_::import("nnforge._args").attr("as_ndarray")(obj, name);
  if (!py::isinstance<py::array>(arr))
    throw py::type_error(std::string(op && *op ? std::string(op) + ": " : "") + name +
                         " could not be viewed as a numpy.ndarray");
  return from_numpy(py::reinterpret_borrow<py::array>(arr), std::move(name), op);
}

std::string ArrayArg::prefix() const { return op && *op ? std::string(op) + ": " : std::string(); }

std::string ArrayArg::describe() const {
  std::string dt = dtype == DType::other ? numpy_dtype_str(owner) : dtype_name(dtype);
  std::string s = dt + " with shape " + shape_str(shape_, ndim);
  if (device.kind != Device::Kind::cpu) s += " on " + device.str();
  return s;
}

void ArrayArg::fail_value(const std::string& what) const {
  throw py::value_error(prefix() + name + " " + what);
}

void ArrayArg::fail_layout() const {
  // Kernels load whole elements through typed pointers: an unaligned buffer
  // (np.frombuffer(..., offset=1), packed structured fields) would be undefined
  // behaviour there, so it is refused rather than copied behind the caller's back.
  if (!data_aligned)
    fail_value("is not aligned to its " + std::string(dtype_name(dtype)) + " item size (shape " +
               shape_str(shape_, ndim) + "); pass " + name + ".copy()");
  fail_value("has a byte stride that is not a multiple of its item size (shape " + shape_str(shape_, ndim) +
             "); pass numpy.ascontiguousarray(" + name + ")");
}

void ArrayArg::fail_dtype(DType want) const {
  std::string hint = want == DType::float32 ? "; convert it with " + name + ".astype(numpy.float32)" : "";
  throw py::type_error(prefix() + name + " must be " + dtype_name(want) + ", got " + describe() + hint);
}

ArrayArg& ArrayArg::dtype_in(std::initializer_list<DType> allowed, const char* what) {
  if (std::find(allowed.begin(), allowed.end(), dtype) == allowed.end()) {
    const bool f32 = std::find(allowed.begin(), allowed.end(), DType::float32) != allowed.end();
    std::string hint = f32 ? "; convert it with " + name + ".astype(numpy.float32)" : "";
    throw py::type_error(prefix() + name + " must be " + what + ", got " + describe() + hint);
  }
  if (!data_aligned || !strides_whole) fail_layout();
  return *this;
}

void ArrayArg::fail_ndim(int lo, int hi) const {
  std::string want = lo == hi ? std::to_string(lo) : std::to_string(lo) + " to " + std::to_string(hi);
  fail_value("must have " + want + " dimensions, got shape " + shape_str(shape_, ndim));
}

void ArrayArg::fail_shape(const Shape& want) const {
  fail_value("must have shape " + shape_str(want) + ", got " + shape_str(shape_, ndim));
}

void ArrayArg::fail_contiguous() const {
  fail_value("must be C-contiguous (shape " + shape_str(shape_, ndim) + "); pass numpy.ascontiguousarray(" +
             name + ")");
}

ArrayArg& ArrayArg::same_shape_as(const ArrayArg& o) {
  if (!same_shape(o))
    fail_value("must have the shape of " + o.name + " " + shape_str(o.shape_, o.ndim) + ", got " +
               shape_str(shape_, ndim));
  return *this;
}

ArrayArg& ArrayArg::no_self_overlap() {
  // Sufficient test: sorted by |stride|, each stride spans all faster dimensions.
  std::pair<int64_t, int64_t> dims[kMaxDims];  // (|stride|, extent) in elements
  int nd = 0;
  for (int d = 0; d < ndim; ++d) {
    if (shape_[d] == 0) return *this;  // empty: nothing is written
    if (shape_[d] > 1) dims[nd++] = {std::llabs(strides_[d]), shape_[d]};
  }
  std::sort(dims, dims + nd);
  int64_t span = 1;
  for (int i = 0; i < nd; ++i) {
    if (dims[i].first < span)
      fail_value(shape_str(shape_, ndim) +
                 " has overlapping elements (a stride smaller than the data it must step over); pass a real array");
    span = dims[i].first * dims[i].second;
  }
  return *this;
}

ArrayArg& ArrayArg::not_overlapping(std::initializer_list<const ArrayArg*> inputs, bool allow_same_view) {
  for (const ArrayArg* in : inputs) {
    if (!in || !overlaps(*in)) continue;
    if (allow_same_view && same_view(*in)) continue;
    fail_value(shape_str(shape_, ndim) + " overlaps " + in->name + " " + shape_str(in->shape_, in->ndim) +
               (allow_same_view ? "; pass a separate array or the input itself" : "; pass a separate array"));
  }
  return *this;
}

// ---- ArrayDesc ---------------------------------------------------------------------------
bool ArrayDesc::is_c_contiguous() const {
  if (numel == 0) return true;  // NumPy gives empty arrays arbitrary (often zero) strides
  int64_t want = 1;
  for (int d = ndim - 1; d >= 0; --d) {
    if (shape_[d] != 1 && strides_[d] != want) return false;
    want *= shape_[d];
  }
  return strides_whole;
}

bool ArrayDesc::same_shape(const ArrayDesc& o) const {
  if (ndim != o.ndim) return false;
  for (int i = 0; i < ndim; ++i)
    if (shape_[i] != o.shape_[i]) return false;
  return true;
}

bool ArrayDesc::same_view(const ArrayDesc& o) const {
  if (data != o.data || itemsize != o.itemsize || !same_shape(o)) return false;
  for (int i = 0; i < ndim; ++i)
    if (shape_[i] > 1 && strides_[i] != o.strides_[i]) return false;
  return true;
}

bool ArrayDesc::extent(const char*& lo, const char*& hi) const {
  lo = hi = static_cast<const char*>(data);
  if (numel == 0) return false;
  for (int d = 0; d < ndim; ++d) {
    const int64_t span = (shape_[d] - 1) * strides_[d] * itemsize;
    if (span < 0) lo += span; else hi += span;
  }
  hi += itemsize;
  return true;
}

bool ArrayDesc::overlaps(const ArrayDesc& o) const {
  if (device.kind != o.device.kind || device.index != o.device.index) return false;
  const char *alo, *ahi, *blo, *bhi;
  if (!extent(alo, ahi) || !o.extent(blo, bhi)) return false;
  return alo < bhi && blo < ahi;
}

// ---- debug hook ----------------------------------------------------------------------------
py::dict array_arg_info(py::handle obj, const std::string& name) {
  const ArrayArg a = ArrayArg::from_python(obj, name, "_array_arg_info");
  py::dict d;
  d["data"] = py::int_(reinterpret_cast<uintptr_t>(a.data));
  d["dtype"] = a.dtype == DType::other ? numpy_dtype_str(a.owner) : std::string(dtype_name(a.dtype));
  d["itemsize"] = a.itemsize;
  py::tuple shape(a.ndim), strides(a.ndim);
  for (int i = 0; i < a.ndim; ++i) {
    shape[size_t(i)] = a.dim(i);
    strides[size_t(i)] = a.stride(i);
  }
  d["shape"] = shape;
  d["strides"] = strides;
  d["device"] = a.device.str();
  d["writeable"] = a.writeable_;
  d["c_contiguous"] = a.is_c_contiguous();
  return d;
}

namespace {
void bind_array_arg(py::module_& m) {
  m.def("_array_arg_info", &array_arg_info, py::arg("obj"), py::arg("name") = "x",
        "Debug hook: how a kernel sees `obj` as an argument: dict(data=pointer as int, dtype, itemsize, "
        "shape, strides in elements, device, writeable, c_contiguous). No copy is made.");
}
BindingRegistrar reg("array_arg", &bind_array_arg);
}  // namespace

}  // namespace nnf
