// nnforge._core.matmul and the GEMM variant switches. Validates every argument,
// then releases the GIL and calls nnf::sgemm_batched, or nnf::gemm_bf16 per batch entry
// when an operand or out is bf16 or precision="bf16" (csrc/cpu/gemm/).
//
//   a: (m, k) or (B, m, k)   b: (k, n) or (B, k, n)   bias: (n,)
//   out: (m, n) when a and b are 2-D, else (B, m, n); B broadcasts from 1 like numpy.matmul.
#include <cmath>
#include <pybind11/stl.h>

#include <string>

#include "bindings/activation_arg.h"
#include "bindings/array_arg.h"
#include "bindings/precision_arg.h"
#include "bindings/registry.h"
#include "bindings/scalar_arg.h"
#include "common/checks.h"
#include "cpu/gemm/bf16.h"
#include "cpu/gemm/gemm_batched.h"
#include "cpu/gemm/gemm_variants.h"

namespace nnf {
namespace {

ElemType elem_type(const ArrayArg& x) { return x.dtype == DType::bfloat16 ? ElemType::bf16 : ElemType::f32; }

py::object matmul(const py::object& a_obj, const py::object& b_obj, const py::object& out_obj,
                  Real alpha, Real beta, const py::object& bias_obj, const py::object& act_obj,
                  const py::object& precision_obj) {
  const Precision precision = parse_precision(precision_obj, "matmul");
  // Checked after narrowing to the kernel's float32: 1e39 is finite in double only.
  if (!std::isfinite(float(alpha)) || !std::isfinite(float(beta)))
    throw py::value_error("matmul: alpha and beta must be finite in float32, got alpha=" + std::to_string(double(alpha)) +
                          ", beta=" + std::to_string(double(beta)));
  const char* op = "matmul";
  ArrayArg a = ArrayArg::from_python(a_obj, "a", op);
  ArrayArg b = ArrayArg::from_python(b_obj, "b", op);
  a.dtype_in({DType::float32, DType::bfloat16}, "float32 or bfloat16");
  b.dtype_in({DType::float32, DType::bfloat16}, "float32 or bfloat16");
  a.ndim_in(2, 3);
  b.ndim_in(2, 3);
  const bool a3 = a.ndim == 3, b3 = b.ndim == 3, batched = a3 || b3;
  const int64_t m = a.dim(-2), k = a.dim(-1), kb = b.dim(-2), n = b.dim(-1);
  if (k != kb)
    throw py::value_error("matmul: shapes " + shape_str(a.shape()) + " and " + shape_str(b.shape()) +
                          " are not aligned: a has " + std::to_string(k) + " columns, b has " +
                          std::to_string(kb) + " rows");
  const int64_t ba = a3 ? a.dim(0) : 1, bb = b3 ? b.dim(0) : 1;
  if (a3 && b3 && ba != bb && ba != 1 && bb != 1)
    throw py::value_error("matmul: batch sizes of " + shape_str(a.shape()) + " and " + shape_str(b.shape()) +
                          " do not broadcast");
  const int64_t bsz = (a3 && b3) ? std::max(ba, bb) : (a3 ? ba : bb);
  // Overflow checks on every size product before any pointer is formed.
  checked_mul(checked_mul(bsz, m, "batch * m"), n, "batch * m * n");
  checked_mul(m, k, "m * k");
  checked_mul(k, n, "k * n");

  GemmEpilogue ep;
  ep.activation = parse_activation(act_obj);
  ArrayArg bias;
  const bool has_bias = !bias_obj.is_none();
  if (has_bias) {
    bias = ArrayArg::from_python(bias_obj, "bias", op);
    bias.float32().ndim_in(1, 1);
    if (bias.dim(0) != n)
      throw py::value_error("matmul: bias has shape " + shape_str(bias.shape()) + " but the result has " +
                            std::to_string(n) + " columns (a " + shape_str(a.shape()) + " @ b " +
                            shape_str(b.shape()) + ")");
    ep.bias_mode = BiasMode::per_column;
    ep.bias = bias.cdata<float>();
    ep.bias_stride = bias.stride(0);
  }

  const Shape want = batched ? Shape{bsz, m, n} : Shape{m, n};
  const bool fresh = out_obj.is_none();
  if (fresh && beta != 0.0)
    throw py::value_error("matmul: beta=" + std::to_string(beta) +
                          " needs out= (the C it scales); pass out or beta=0");
  // Built in place (copy elision): an ArrayArg is ~1 KiB of dims.
  ArrayArg out = fresh ? ArrayArg::empty<float>(want, "out", op) : ArrayArg::from_python(out_obj, "out", op);
  if (!fresh) {
    out.dtype_in({DType::float32, DType::bfloat16}, "float32 or bfloat16");
    if (out.shape() != want)
      throw py::value_error("matmul: out has shape " + shape_str(out.shape()) + " but a " + shape_str(a.shape()) +
                            " @ b " + shape_str(b.shape()) + " has shape " + shape_str(want));
    out.writeable().not_overlapping({&a, &b, has_bias ? &bias : nullptr}).no_self_overlap();
  }

  const int oa = a3 ? 1 : 0, ob = b3 ? 1 : 0, oc = batched ? 1 : 0;
  const int64_t sa = (a3 && ba > 1) ? a.stride(0) : 0;
  const int64_t sb = (b3 && bb > 1) ? b.stride(0) : 0;
  const int64_t sc = batched ? out.stride(0) : 0;
  if (bsz == 0 || m == 0 || n == 0) return out.result();
  const bool low = precision == Precision::bf16 || a.dtype == DType::bfloat16 ||
                   b.dtype == DType::bfloat16 || out.dtype == DType::bfloat16;
  if (!low) {
    MatRef ar{a.cdata<float>(), a.stride(oa), a.stride(oa + 1)};
    MatRef br{b.cdata<float>(), b.stride(ob), b.stride(ob + 1)};
    MutMatRef cr{out.mdata<float>(), out.stride(oc), out.stride(oc + 1)};
    py::gil_scoped_release nogil;
    sgemm_batched(bsz, m, n, k, float(alpha), ar, sa, br, sb, float(beta), cr, sc, ep);
    return out.result();
  }
  {
    py::gil_scoped_release nogil;
    const char* ap = static_cast<const char*>(a.data);
    const char* bp = static_cast<const char*>(b.data);
    char* cp = static_cast<char*>(out.data);
    for (int64_t i = 0; i < bsz; ++i)
      gemm_bf16(m, n, k, float(alpha),
                AnyMatRef{ap + i * sa * a.itemsize, elem_type(a), a.stride(oa), a.stride(oa + 1)},
                AnyMatRef{bp + i * sb * b.itemsize, elem_type(b), b.stride(ob), b.stride(ob + 1)},
                float(beta),
                AnyMutMatRef{cp + i * sc * out.itemsize, elem_type(out), out.stride(oc), out.stride(oc + 1)},
                ep, precision);
  }
  return out.result();
}

void bind_gemm(py::module_& m) {
  m.def("matmul", &matmul, py::arg("a"), py::arg("b"), py::arg("out") = py::none(), py::kw_only(),
        py::arg("alpha") = 1.0, py::arg("beta") = 0.0, py::arg("bias") = py::none(),
        py::arg("activation") = py::none(), py::arg("precision") = "fp32",
        R"doc(matmul(a, b, out=None, *, alpha=1.0, beta=0.0, bias=None, activation=None, precision="fp32")

out = act(alpha * a @ b + beta * out + bias), float32, on nnforge's own GEMM.

precision:  "fp32" or "bf16". a and b may be float32 or bfloat16 (ml_dtypes.bfloat16)
            arrays. "bf16": float32 operands are rounded to bfloat16 (nearest even)
            while packing; products accumulate in float32. A bfloat16 operand makes
            the product a bf16 one whatever the precision: it is widened exactly and
            the other (float32) operand is rounded to bf16 too, so "fp32" with a bf16
            operand is the same as "bf16". out is float32 (default) or a bfloat16
            array (rounded once, after beta, bias and activation; bias stays float32).
            On AVX512_BF16 CPUs the bf16 products run on vdpbf16ps (denormal products
            flush to zero); elsewhere bf16 values are widened to float32.

Shapes: a (m, k) @ b (k, n) -> (m, n); batched a (B, m, k) with b (k, n) or
(B, k, n), and a (m, k) with b (B, k, n) -> (B, m, n) (a batch of 1 broadcasts,
as in numpy.matmul). Any strides (a.T, slices, negative steps) are read in place.
a, b, bias and out may be NumPy arrays or CPU tensors exporting DLPack / the buffer
protocol (torch, JAX): no copy is made, and the result is returned as a NumPy array.

out:        float32, writeable, exactly the result shape, any strides, not
            overlapping a, b or bias; written in place and returned (a NumPy
            view of it when out is a tensor). Without it a
            new C-contiguous array is returned (beta must then be 0).
beta:       0 means out is not read (its old contents, even NaN, do not matter).
bias:       float32 (n,), added to every row after the alpha/beta terms.
activation: None; "relu" max(x, 0); "gelu" or "gelu_tanh"
            0.5x(1 + tanh(sqrt(2/pi)(x + 0.044715x^3))); "gelu_erf" 0.5x(1 + erf(x/sqrt2)).
k == 0 gives beta * out (+ bias, activation). Inputs are never cast: float64 or
integer arrays raise TypeError (convert with .astype(numpy.float32)). The GIL is
released while the kernel runs.)doc");
  m.def("bf16_gemm_variants", &bf16_gemm_variants, "bf16 GEMM variants this CPU can run ('auto' first).");
  m.def("get_bf16_gemm_variant", &get_bf16_gemm_variant);
  m.def("set_bf16_gemm_variant", [](const std::string& name) {
    try {
      set_bf16_gemm_variant(name);
    } catch (const std::invalid_argument& e) {
      throw py::value_error(e.what());
    }
  }, py::arg("name"), "Force a bf16 GEMM variant by name ('auto' to choose per ISA).");
  m.def("gemm_variants", &gemm_variants, "GEMM kernel variants this CPU can run ('auto' first).");
  m.def("get_gemm_variant", &get_gemm_variant);
  m.def("set_gemm_variant", [](const std::string& name) {
    try {
      set_gemm_variant(name);
    } catch (const std::invalid_argument& e) {
      throw py::value_error(e.what());
    }
  }, py::arg("name"), "Force a GEMM micro-kernel variant by name ('auto' to choose per ISA).");
  m.def("gemm_variant_blocking", [](const std::string& name) {
    try {
      return gemm_variant_blocking(name);
    } catch (const std::invalid_argument& e) {
      throw py::value_error(e.what());
    }
  }, py::arg("name"), "A GEMM variant's [mr, nr, kc, mc, nc] ('auto': the one in use).");
  m.def("get_gemm_threading", &get_gemm_threading);
  m.def("set_gemm_threading", [](const std::string& name) {
    try {
      set_gemm_threading(name);
    } catch (const std::invalid_argument& e) {
      throw py::value_error(e.what());
    }
  }, py::arg("name"), "How multi-threaded GEMM calls run their slabs: 'pool' (claimed slabs) or 'omp'.");
}

BindingRegistrar reg("gemm", &bind_gemm);

}  // namespace
}  // namespace nnf
