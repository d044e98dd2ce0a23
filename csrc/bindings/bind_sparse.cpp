// Bindings for the sparse kernels (csrc/cpu/sparse): validate every argument (the CSR
// structure too: a bad index would read out of bounds), allocate y, release the GIL,
// call nnf::sparse::csr_matmul. python/nnforge/_sparse_ops.py wraps it with CSRMatrix.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include <stdexcept>
#include <string>

#include "bindings/array_arg.h"
#include "bindings/registry.h"
#include "bindings/scalar_arg.h"
#include "cpu/sparse/sparse.h"

namespace py = pybind11;

namespace nnf {
namespace {

// x (M, K) any strides; W (N, K) as indptr int64 (N + 1,), indices int32 (nnz,),
// values float32 (nnz,), all C-contiguous; bias float32 (N,) or None.
py::object sparse_matmul(const py::object& xo, const py::object& indptr_o, const py::object& indices_o,
                         const py::object& values_o, Index n_features, const py::object& bias_o, Flag relu) {
  const char* op = "sparse_matmul";
  ArrayArg x = ArrayArg::from_python(xo, "x", op);
  x.float32();
  if (x.ndim != 2) x.fail_value("must be 2-D (M, K), got shape " + shape_str(x.shape()));
  const int64_t n = n_features;
  if (n < 0) throw py::value_error("sparse_matmul: the weight's N must be >= 0, got " + std::to_string(n));
  ArrayArg indptr = ArrayArg::from_python(indptr_o, "indptr", op);
  indptr.dtype_is(DType::int64).shape_is({n + 1}).c_contiguous();
  ArrayArg indices = ArrayArg::from_python(indices_o, "indices", op);
  indices.dtype_is(DType::int32).ndim_in(1, 1).c_contiguous();
  ArrayArg values = ArrayArg::from_python(values_o, "values", op);
  values.float32().shape_is(indices.shape()).c_contiguous();
  const float* bp = nullptr;
  if (!bias_o.is_none()) {
    ArrayArg bias = ArrayArg::from_python(bias_o, "bias", op);
    bias.float32().shape_is({n}).c_contiguous();
    bp = bias.cdata<float>();
  }
  const int64_t m = x.dim(0), k = x.dim(1), nnz = indices.dim(0);
  try {
    sparse::check_csr(n, k, nnz, indptr.cdata<int64_t>(), indices.cdata<int32_t>());
  } catch (const std::invalid_argument& e) {
    throw py::value_error(std::string("sparse_matmul: ") + e.what() + " (x has shape " + shape_str(x.shape()) +
                          ", so K = " + std::to_string(k) + ")");
  }
  ArrayArg y = ArrayArg::empty<float>({m, n}, "y", op);
  const CsrMatmul p{m, k, n, x.cdata<float>(), x.stride(0), x.stride(1), indptr.cdata<int64_t>(),
                    indices.cdata<int32_t>(), values.cdata<float>(), bp, bool(relu), y.mdata<float>()};
  {
    py::gil_scoped_release nogil;
    sparse::csr_matmul(p);
  }
  return y.result();
}

void bind_sparse(py::module_& m) {
  using namespace py::literals;
  m.def("sparse_matmul", &sparse_matmul, "x"_a, "indptr"_a, "indices"_a, "values"_a, "n"_a, "bias"_a, "relu"_a,
        "y (M, N) = act(x (M, K) @ W^T + bias) for W (N, K) in CSR (indptr int64, indices int32, values float32).");
}

BindingRegistrar reg("sparse", &bind_sparse);

}  // namespace
}  // namespace nnf
