// nnforge._core.matmul and the GEMM variant switches. Validates every argument,
// then releases the GIL and calls nnf::sgemm_batched (csrc/cpu/gemm/).
//
//   a: (m, k) or (B, m, k)   b: (k, n) or (B, k, n)   bias: (n,)
//   out: (m, n) when a and b are 2-D, else (B, m, n); B broadcasts from 1 like numpy.matmul.
#include <pybind11/stl.h>

#include <string>

#include "bindings/array_args.h"
#include "bindings/registry.h"
#include "common/checks.h"
#include "cpu/gemm/gemm_batched.h"
#include "cpu/gemm/gemm_variants.h"

namespace nnf {
namespace {

Activation parse_activation(const py::object& obj) {
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

std::string shape_of(int64_t bsz, int64_t r, int64_t c, bool batched) {
  return batched ? "(" + std::to_string(bsz) + ", " + std::to_string(r) + ", " + std::to_string(c) + ")"
                 : "(" + std::to_string(r) + ", " + std::to_string(c) + ")";
}

py::array matmul(const py::object& a_obj, const py::object& b_obj, const py::object& out_obj,
                 double alpha, double beta, const py::object& bias_obj, const py::object& act_obj) {
  py::array a = as_array(a_obj, "a"), b = as_array(b_obj, "b");
  require_float32(a, "a");
  require_float32(b, "b");
  require_ndim(a, "a", 2, 3);
  require_ndim(b, "b", 2, 3);
  const bool a3 = a.ndim() == 3, b3 = b.ndim() == 3, batched = a3 || b3;
  const int64_t m = a.shape(a.ndim() - 2), k = a.shape(a.ndim() - 1);
  const int64_t kb = b.shape(b.ndim() - 2), n = b.shape(b.ndim() - 1);
  if (k != kb)
    throw py::value_error("matmul: shapes " + shape_str(a) + " and " + shape_str(b) +
                          " are not aligned: a has " + std::to_string(k) + " columns, b has " +
                          std::to_string(kb) + " rows");
  const int64_t ba = a3 ? a.shape(0) : 1, bb = b3 ? b.shape(0) : 1;
  if (a3 && b3 && ba != bb && ba != 1 && bb != 1)
    throw py::value_error("matmul: batch sizes of " + shape_str(a) + " and " + shape_str(b) +
                          " do not broadcast");
  const int64_t bsz = (a3 && b3) ? std::max(ba, bb) : (a3 ? ba : bb);
  // Overflow checks on every size product before any pointer is formed.
  checked_mul(checked_mul(bsz, m, "batch * m"), n, "batch * m * n");
  checked_mul(m, k, "m * k");
  checked_mul(k, n, "k * n");

  const Activation act = parse_activation(act_obj);
  GemmEpilogue ep;
  ep.activation = act;
  // py::array's default constructor allocates an empty array; hold handles instead.
  py::object bias_keep;
  const bool has_bias = !bias_obj.is_none();
  if (has_bias) {
    py::array bias = as_array(bias_obj, "bias");
    bias_keep = bias;
    require_float32(bias, "bias");
    require_ndim(bias, "bias", 1, 1);
    if (bias.shape(0) != n)
      throw py::value_error("bias has shape " + shape_str(bias) + " but the result has " +
                            std::to_string(n) + " columns (a " + shape_str(a) + " @ b " +
                            shape_str(b) + ")");
    ep.bias_mode = BiasMode::per_column;
    ep.bias = cdata(bias);
    ep.bias_stride = elem_stride(bias, 0, "bias");
  }

  auto new_out = [&]() -> py::array {
    if (beta != 0.0)
      throw py::value_error("matmul: beta=" + std::to_string(beta) +
                            " needs out= (the C it scales); pass out or beta=0");
    if (batched) return py::array_t<float>({bsz, m, n});
    return py::array_t<float>({m, n});
  };
  auto given_out = [&]() -> py::array {
    py::array o = as_array(out_obj, "out");
    require_float32(o, "out");
    const bool shape_ok = o.ndim() == (batched ? 3 : 2) && (!batched || o.shape(0) == bsz) &&
                          o.shape(o.ndim() - 2) == m && o.shape(o.ndim() - 1) == n;
    if (!shape_ok)
      throw py::value_error("out has shape " + shape_str(o) + " but a " + shape_str(a) + " @ b " +
                            shape_str(b) + " has shape " + shape_of(bsz, m, n, batched));
    require_writeable(o, "out");
    if (may_share_memory(o, a) || may_share_memory(o, b))
      throw py::value_error("out overlaps an input (a or b); pass a separate array");
    if (has_bias && may_share_memory(o, py::reinterpret_borrow<py::array>(bias_keep)))
      throw py::value_error("out overlaps bias; pass a separate array");
    require_no_self_overlap(o, "out");
    return o;
  };
  py::array out = out_obj.is_none() ? new_out() : given_out();

  const int oa = a3 ? 1 : 0, ob = b3 ? 1 : 0, oc = batched ? 1 : 0;
  MatRef ar{cdata(a), elem_stride(a, oa, "a"), elem_stride(a, oa + 1, "a")};
  MatRef br{cdata(b), elem_stride(b, ob, "b"), elem_stride(b, ob + 1, "b")};
  MutMatRef cr{mdata(out), elem_stride(out, oc, "out"), elem_stride(out, oc + 1, "out")};
  const int64_t sa = (a3 && ba > 1) ? elem_stride(a, 0, "a") : 0;
  const int64_t sb = (b3 && bb > 1) ? elem_stride(b, 0, "b") : 0;
  const int64_t sc = batched ? elem_stride(out, 0, "out") : 0;
  if (bsz == 0 || m == 0 || n == 0) return out;
  {
    py::gil_scoped_release nogil;
    sgemm_batched(bsz, m, n, k, float(alpha), ar, sa, br, sb, float(beta), cr, sc, ep);
  }
  return out;
}

void bind_gemm(py::module_& m) {
  m.def("matmul", &matmul, py::arg("a"), py::arg("b"), py::arg("out") = py::none(), py::kw_only(),
        py::arg("alpha") = 1.0, py::arg("beta") = 0.0, py::arg("bias") = py::none(),
        py::arg("activation") = py::none(),
        R"doc(matmul(a, b, out=None, *, alpha=1.0, beta=0.0, bias=None, activation=None)

out = act(alpha * a @ b + beta * out + bias), float32, on nnforge's own GEMM.

Shapes: a (m, k) @ b (k, n) -> (m, n); batched a (B, m, k) with b (k, n) or
(B, k, n), and a (m, k) with b (B, k, n) -> (B, m, n) (a batch of 1 broadcasts,
as in numpy.matmul). Any strides (a.T, slices, negative steps) are read in place.

out:        float32, writeable, exactly the result shape, any strides, not
            overlapping a, b or bias; written in place and returned. Without it a
            new C-contiguous array is returned (beta must then be 0).
beta:       0 means out is not read (its old contents, even NaN, do not matter).
bias:       float32 (n,), added to every row after the alpha/beta terms.
activation: None; "relu" max(x, 0); "gelu" or "gelu_tanh"
            0.5x(1 + tanh(sqrt(2/pi)(x + 0.044715x^3))); "gelu_erf" 0.5x(1 + erf(x/sqrt2)).
k == 0 gives beta * out (+ bias, activation). Inputs are never cast: float64 or
integer arrays raise TypeError (convert with .astype(numpy.float32)). The GIL is
released while the kernel runs.)doc");
  m.def("gemm_variants", &gemm_variants, "GEMM kernel variants this CPU can run ('auto' first).");
  m.def("get_gemm_variant", &get_gemm_variant);
  m.def("set_gemm_variant", [](const std::string& name) {
    try {
      set_gemm_variant(name);
    } catch (const std::invalid_argument& e) {
      throw py::value_error(e.what());
    }
  }, py::arg("name"), "Force a GEMM micro-kernel variant by name ('auto' to choose per ISA).");
}

BindingRegistrar reg("gemm", &bind_gemm);

}  // namespace
}  // namespace nnf
