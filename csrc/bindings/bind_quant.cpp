// Bindings for the INT8 kernels (csrc/cpu/quant): validate every argument, allocate
// outputs, release the GIL, call nnf::quant::*. python/nnforge/_quant_ops.py turns
// scalars / axes into the (outer, c, inner) view and per-channel arrays used here.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <cmath>
#include <string>
#include <utility>

#include "bindings/activation_arg.h"
#include "bindings/array_arg.h"
#include "bindings/registry.h"
#include "common/checks.h"
#include "cpu/quant/qgemm_kernel.h"
#include "cpu/quant/quant.h"

namespace py = pybind11;

namespace nnf {
namespace {

using Pair = std::pair<int64_t, int64_t>;

[[noreturn]] void bad(const char* op, const std::string& what) { throw py::value_error(std::string(op) + ": " + what); }

// scale (c,) float32, every entry finite and > 0; zero_point (c,) int32 within [lo, hi].
void check_qparams(const ArrayArg& scale, const ArrayArg& zp, int64_t c, int32_t lo, int32_t hi, const char* op) {
  const float* s = scale.cdata<float>();
  const int32_t* z = zp.cdata<int32_t>();
  for (int64_t i = 0; i < c; ++i) {
    if (!(std::isfinite(s[i]) && s[i] > 0.0f))
      bad(op, "scale must be finite and > 0, got " + std::to_string(s[i]) + " at index " + std::to_string(i));
    if (z[i] < lo || z[i] > hi)
      bad(op, "zero_point must lie in [" + std::to_string(lo) + ", " + std::to_string(hi) + "], got " +
                  std::to_string(z[i]) + " at index " + std::to_string(i));
  }
}

std::pair<ArrayArg, ArrayArg> qparams(const py::object& so, const py::object& zo, int64_t c, bool is_u8,
                                      const char* op) {
  ArrayArg s = ArrayArg::from_python(so, "scale", op), z = ArrayArg::from_python(zo, "zero_point", op);
  s.float32().shape_is({c}).c_contiguous();
  z.dtype_is(DType::int32).shape_is({c}).c_contiguous();
  check_qparams(s, z, c, is_u8 ? 0 : -128, is_u8 ? 255 : 127, op);
  return {std::move(s), std::move(z)};
}

void check_view(const ArrayArg& x, int64_t outer, int64_t c, int64_t inner, const char* op) {
  if (outer < 0 || c < 1 || inner < 0 || checked_mul(checked_mul(outer, c, "outer*c"), inner, "size") != x.numel)
    bad(op, "view (" + std::to_string(outer) + ", " + std::to_string(c) + ", " + std::to_string(inner) +
                ") does not cover x " + x.describe());
}

py::object quantize(const py::object& xo, int64_t outer, int64_t c, int64_t inner, const py::object& so,
                    const py::object& zo, bool is_u8) {
  const char* op = "quantize";
  ArrayArg x = ArrayArg::from_python(xo, "x", op);
  x.float32().c_contiguous();
  check_view(x, outer, c, inner, op);
  auto [s, z] = qparams(so, zo, c, is_u8, op);
  const float* xp = x.cdata<float>();
  if (quant::has_nan(xp, x.numel)) bad(op, "x contains NaN (no quantised value stands for it)");
  ArrayArg q = is_u8 ? ArrayArg::empty<uint8_t>(x.shape(), "q", op) : ArrayArg::empty<int8_t>(x.shape(), "q", op);
  void* qp = q.data;
  {
    py::gil_scoped_release nogil;
    quant::quantize(xp, outer, c, inner, s.cdata<float>(), z.cdata<int32_t>(), is_u8, qp);
  }
  return q.result();
}

py::object dequantize(const py::object& qo, int64_t outer, int64_t c, int64_t inner, const py::object& so,
                      const py::object& zo) {
  const char* op = "dequantize";
  ArrayArg q = ArrayArg::from_python(qo, "q", op);
  q.dtype_in({DType::int8, DType::uint8}, "int8 or uint8").c_contiguous();
  const bool is_u8 = q.dtype == DType::uint8;
  check_view(q, outer, c, inner, op);
  auto [s, z] = qparams(so, zo, c, is_u8, op);
  ArrayArg y = ArrayArg::empty<float>(q.shape(), "y", op);
  float* yp = y.mdata<float>();
  {
    py::gil_scoped_release nogil;
    quant::dequantize(q.data, is_u8, outer, c, inner, s.cdata<float>(), z.cdata<int32_t>(), yp);
  }
  return y.result();
}

void check_k(int64_t k, const char* op) {
  if (k > kQMaxK)
    bad(op, "reduction length K=" + std::to_string(k) + " exceeds " + std::to_string(kQMaxK) +
                " (the int32 accumulator bound 255 * 128 * K < 2^31)");
}

py::tuple qweight_pack(const py::object& wo) {
  const char* op = "quantize_weight";
  ArrayArg w = ArrayArg::from_python(wo, "w", op);
  w.dtype_is(DType::int8).ndim_in(2, 2);
  const int64_t n = w.dim(0), k = w.dim(1);
  check_k(k, op);
  const int64_t size = checked_mul(checked_mul((n + kQNr - 1) / kQNr * kQNr, 4, "packed size"),
                                   quant::packed_groups(k), "packed size");
  ArrayArg p = ArrayArg::empty<int8_t>({size}, "data", op), cs = ArrayArg::empty<int32_t>({n}, "col_sums", op);
  {
    py::gil_scoped_release nogil;
    quant::pack_weight(w.cdata<int8_t>(), n, k, w.stride(0), w.stride(1), p.mdata<int8_t>(), cs.mdata<int32_t>());
  }
  return py::make_tuple(p.result(), cs.result());
}

// The packed weight of a qlinear / qconv2d call: data, scales (n,), col_sums (n,).
quant::PackedWeight packed_arg(const ArrayArg& d, const ArrayArg& s, const ArrayArg& cs, int64_t n, int64_t k,
                               const char* op) {
  if (n < 1 || k < 1) bad(op, "weight shape (" + std::to_string(n) + ", " + std::to_string(k) + ") is empty");
  check_k(k, op);
  const_cast<ArrayArg&>(d).dtype_is(DType::int8).shape_is({quant::packed_size(n, k)}).c_contiguous();
  const_cast<ArrayArg&>(s).float32().shape_is({n}).c_contiguous();
  const_cast<ArrayArg&>(cs).dtype_is(DType::int32).shape_is({n}).c_contiguous();
  return {d.cdata<int8_t>(), s.cdata<float>(), cs.cdata<int32_t>(), n, k};
}

py::object qweight_unpack(const py::object& dobj, int64_t n, int64_t k) {
  const char* op = "QuantizedWeight";
  ArrayArg d = ArrayArg::from_python(dobj, "data", op);
  if (n < 1 || k < 1) bad(op, "shape (" + std::to_string(n) + ", " + std::to_string(k) + ") is empty");
  check_k(k, op);
  d.dtype_is(DType::int8).shape_is({quant::packed_size(n, k)}).c_contiguous();
  ArrayArg w = ArrayArg::empty<int8_t>({n, k}, "w", op);
  {
    py::gil_scoped_release nogil;
    quant::unpack_weight(d.cdata<int8_t>(), n, k, w.mdata<int8_t>());
  }
  return w.result();
}

py::object qgemm_s32(const py::object& ao, const py::object& bo) {
  const char* op = "qgemm_s32";
  ArrayArg a = ArrayArg::from_python(ao, "a", op), b = ArrayArg::from_python(bo, "b", op);
  a.dtype_is(DType::uint8).ndim_in(2, 2);
  b.dtype_is(DType::int8).ndim_in(2, 2);
  const int64_t m = a.dim(0), k = a.dim(1), n = b.dim(1);
  if (b.dim(0) != k)
    bad(op, "a " + a.describe() + " and b " + b.describe() + " disagree on K (a is (M, K), b is (K, N))");
  check_k(k, op);
  checked_mul(m, n, "M*N");
  checked_mul(m, k + 4, "M*K");
  ArrayArg c = ArrayArg::empty<int32_t>({m, n}, "c", op);
  {
    py::gil_scoped_release nogil;
    quant::qgemm_s32(a.cdata<uint8_t>(), m, k, a.stride(0), a.stride(1), b.cdata<int8_t>(), n, b.stride(0),
                     b.stride(1), c.mdata<int32_t>());
  }
  return c.result();
}

quant::InputQuant input_quant(const py::object& scale, const py::object& zp, const char* op) {
  quant::InputQuant iq;
  if (scale.is_none() != zp.is_none()) bad(op, "input_scale and input_zero_point must be given together");
  if (scale.is_none()) return iq;
  iq.dynamic = false;
  iq.scale = scale.cast<float>();
  iq.zero_point = zp.cast<int32_t>();
  if (!(std::isfinite(iq.scale) && iq.scale > 0.0f))
    bad(op, "input_scale must be finite and > 0, got " + std::to_string(iq.scale));
  if (iq.zero_point < 0 || iq.zero_point > 255)
    bad(op, "input_zero_point must lie in [0, 255] (uint8 activations), got " + std::to_string(iq.zero_point));
  return iq;
}

const float* bias_arg(const py::object& bo, ArrayArg& holder, int64_t n, const char* op) {
  if (bo.is_none()) return nullptr;
  holder = ArrayArg::from_python(bo, "bias", op);
  holder.float32().shape_is({n}).c_contiguous();
  return holder.cdata<float>();
}

py::object qlinear(const py::object& xo, const py::object& dobj, const py::object& so, const py::object& cso,
                   int64_t n, int64_t k, const py::object& bo, const py::object& act_obj, const py::object& iso,
                   const py::object& izo) {
  const char* op = "qlinear";
  ArrayArg x = ArrayArg::from_python(xo, "x", op);
  x.float32().ndim_in(2, 2);
  ArrayArg d = ArrayArg::from_python(dobj, "data", op), s = ArrayArg::from_python(so, "scales", op),
           cs = ArrayArg::from_python(cso, "col_sums", op);
  const quant::PackedWeight w = packed_arg(d, s, cs, n, k, op);
  if (x.dim(1) != k)
    bad(op, "x " + x.describe() + " has " + std::to_string(x.dim(1)) + " features but the weight expects K=" +
                std::to_string(k));
  ArrayArg bias;
  const float* bp = bias_arg(bo, bias, n, op);
  const Activation act = parse_activation(act_obj);
  const quant::InputQuant iq = input_quant(iso, izo, op);
  const int64_t m = x.dim(0);
  checked_mul(m, n, "M*N");
  checked_mul(m, k + 4, "M*K");
  ArrayArg y = ArrayArg::empty<float>({m, n}, "y", op);
  float* yp = y.mdata<float>();
  bool finite = true;
  {
    py::gil_scoped_release nogil;
    const float* xp = x.cdata<float>();
    for (int64_t i = 0; i < m && finite; ++i) {
      if (x.stride(1) == 1) {
        finite = quant::all_finite(xp + i * x.stride(0), k);
        continue;
      }
      for (int64_t kk = 0; kk < k; ++kk) finite = finite && std::isfinite(xp[i * x.stride(0) + kk * x.stride(1)]);
    }
    if (finite) quant::qlinear(xp, m, x.stride(0), x.stride(1), w, bp, act, iq, yp);
  }
  if (!finite) bad(op, "x must be finite");  // y is dropped: nothing the caller holds was written
  return y.result();
}

py::object qconv2d(const py::object& xo, const py::object& dobj, const py::object& so, const py::object& cso,
                   const Shape& wshape, Pair stride, Pair padding, Pair dilation, const py::object& bo,
                   const py::object& act_obj, const py::object& iso, const py::object& izo) {
  const char* op = "qconv2d";
  ArrayArg x = ArrayArg::from_python(xo, "x", op);
  x.float32().c_contiguous();
  if (x.ndim != 4) bad(op, "expects x of shape (N, C, H, W), got " + x.describe());
  if (wshape.size() != 4) bad(op, "weight shape must be (K, C, R, S), got " + shape_str(wshape));
  if (wshape[1] != x.dim(1))
    bad(op, "x " + x.describe() + " has C=" + std::to_string(x.dim(1)) + " but the weight " + shape_str(wshape) +
                " expects C=" + std::to_string(wshape[1]));
  conv::ConvShape cs_;
  cs_.n = x.dim(0); cs_.c = x.dim(1); cs_.h = x.dim(2); cs_.w = x.dim(3);
  cs_.k = wshape[0]; cs_.r = wshape[2]; cs_.s = wshape[3];
  cs_.sh = stride.first; cs_.sw = stride.second;
  cs_.pt = cs_.pb = padding.first; cs_.pl = cs_.pr = padding.second;
  cs_.dh = dilation.first; cs_.dw = dilation.second;
  try {
    conv::finalize_shape(cs_);
  } catch (const std::invalid_argument& e) {
    throw py::value_error(std::string(op) + ": " + e.what());
  }
  ArrayArg d = ArrayArg::from_python(dobj, "data", op), s = ArrayArg::from_python(so, "scales", op),
           cs = ArrayArg::from_python(cso, "col_sums", op);
  const quant::PackedWeight w = packed_arg(d, s, cs, cs_.k, cs_.crs(), op);
  ArrayArg bias;
  const float* bp = bias_arg(bo, bias, cs_.k, op);
  const Activation act = parse_activation(act_obj);
  const quant::InputQuant iq = input_quant(iso, izo, op);
  if (!quant::all_finite(x.cdata<float>(), x.numel)) bad(op, "x must be finite");
  checked_mul(cs_.howo(), cs_.crs() + 4, "Ho*Wo*C*R*S");
  ArrayArg y = ArrayArg::empty<float>({cs_.n, cs_.k, cs_.ho, cs_.wo}, "y", op);
  float* yp = y.mdata<float>();
  {
    py::gil_scoped_release nogil;
    quant::qconv2d(cs_, x.cdata<float>(), w, bp, act, iq, yp);
  }
  return y.result();
}

void bind_quant(py::module_& m) {
  m.def("quantize", &quantize, py::arg("x"), py::arg("outer"), py::arg("c"), py::arg("inner"), py::arg("scale"),
        py::arg("zero_point"), py::arg("is_u8"));
  m.def("dequantize", &dequantize, py::arg("q"), py::arg("outer"), py::arg("c"), py::arg("inner"),
        py::arg("scale"), py::arg("zero_point"));
  m.def("qweight_pack", &qweight_pack, py::arg("w"));
  m.def("qweight_unpack", &qweight_unpack, py::arg("data"), py::arg("n"), py::arg("k"));
  m.def("qgemm_s32", &qgemm_s32, py::arg("a"), py::arg("b"));
  m.def("qlinear", &qlinear, py::arg("x"), py::arg("data"), py::arg("scales"), py::arg("col_sums"), py::arg("n"),
        py::arg("k"), py::arg("bias"), py::arg("activation"), py::arg("input_scale"), py::arg("input_zero_point"));
  m.def("qconv2d", &qconv2d, py::arg("x"), py::arg("data"), py::arg("scales"), py::arg("col_sums"),
        py::arg("weight_shape"), py::arg("stride"), py::arg("padding"), py::arg("dilation"), py::arg("bias"),
        py::arg("activation"), py::arg("input_scale"), py::arg("input_zero_point"));
}

BindingRegistrar reg("quant", &bind_quant);

}  // namespace
}  // namespace nnf
