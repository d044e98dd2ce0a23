// Bindings for fused attention (csrc/cpu/attention): every argument is validated here
// (dtypes, ranks, B / D / head counts, mask broadcast, lse / dout shapes, out shape,
// writeability and aliasing, size overflow) before any output is written; then the GIL
// is released and nnf::attn::forward / backward run. No maths here.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include <cmath>
#include <cstdint>
#include <string>
#include <vector>

#include "bindings/array_arg.h"
#include "bindings/registry.h"
#include "bindings/scalar_arg.h"
#include "common/checks.h"
#include "cpu/attention/attention.h"

namespace py = pybind11;

namespace nnf {
namespace {

using attn::MaskKind;
using attn::MaskRef;
using attn::MutView4;
using attn::Problem;
using attn::View4;

// float32, 4-D (B, heads, L, D), any strides.
ArrayArg float4(const py::handle& obj, const char* name, const char* op) {
  ArrayArg a = ArrayArg::from_python(obj, name, op);
  a.float32();
  if (a.ndim != 4)
    a.fail_value("must be 4-D (B, heads, L, D), got shape " + shape_str(a.shape()));
  return a;
}

View4 view4(const ArrayArg& a) {
  return View4{a.cdata<float>(), a.stride(0), a.stride(1), a.stride(2), a.stride(3)};
}
MutView4 mut_view4(const ArrayArg& a) {
  return MutView4{a.mdata<float>(), a.stride(0), a.stride(1), a.stride(2), a.stride(3)};
}

[[noreturn]] void fail(const char* op, const std::string& what) {
  throw py::value_error(std::string(op) + ": " + what);
}

// Shapes, scale, dropout and mask: the Problem every entry point shares. `mask` is
// filled when a mask is given (it must stay alive while the kernel runs).
Problem make_problem(const char* op, const ArrayArg& q, const ArrayArg& k, const ArrayArg& v,
                     bool causal, const py::object& scale_o, const py::object& mask_o,
                     double dropout_p, const py::object& seed_o, ArrayArg& mask) {
  Problem pr{};
  pr.B = q.dim(0);
  pr.H = q.dim(1);
  pr.Lq = q.dim(2);
  pr.D = q.dim(3);
  pr.Hkv = k.dim(1);
  pr.Lk = k.dim(2);
  const std::string shapes =
      "q " + shape_str(q.shape()) + ", k " + shape_str(k.shape()) + ", v " + shape_str(v.shape());
  if (!k.same_shape(v)) fail(op, "k and v must have the same shape (B, Hkv, Lk, D); got " + shapes);
  if (k.dim(0) != pr.B) fail(op, "q, k and v must have the same batch size B; got " + shapes);
  if (k.dim(3) != pr.D) fail(op, "q, k and v must have the same head dim D; got " + shapes);
  if (pr.D < 1 || pr.D > attn::kMaxD)
    fail(op, "head dim D must be in 1.." + std::to_string(attn::kMaxD) + "; got " + shapes);
  // H >= Hkv too: H = 0 would pass the modulo and leave dk, dv unwritten.
  if (pr.Hkv < 1 || pr.H < pr.Hkv || pr.H % pr.Hkv != 0)
    fail(op, "the query heads H must be a multiple of the key/value heads Hkv >= 1; got " + shapes);
  checked_mul(checked_mul(checked_mul(pr.B, pr.H, "B*H*Lq*Lk"), pr.Lq, "B*H*Lq*Lk"), pr.Lk, "B*H*Lq*Lk");
  pr.causal = causal;

  double scale = 1.0 / std::sqrt(double(pr.D));
  if (!scale_o.is_none()) {
    if (py::isinstance<py::bool_>(scale_o) ||
        (!py::isinstance<py::float_>(scale_o) && !py::isinstance<py::int_>(scale_o)))
      throw py::type_error(std::string(op) + ": scale must be a float or None");
    scale = scale_o.cast<double>();
  }
  pr.scale = float(scale);  // checked after the narrowing: 1e39 is finite in double only
  if (!std::isfinite(pr.scale)) fail(op, "scale must be finite in float32, got " + std::to_string(scale));

  pr.dropout_p = float(dropout_p);  // checked as float: 1 - 2^-26 rounds to 1.0f
  if (!(dropout_p >= 0.0 && pr.dropout_p < 1.0f))
    fail(op, "dropout_p must be in [0, 1) in float32, got " + std::to_string(dropout_p));
  pr.seed = 0;
  if (!seed_o.is_none()) {
    if (!py::isinstance<py::int_>(seed_o) || py::isinstance<py::bool_>(seed_o))
      throw py::type_error(std::string(op) + ": seed must be an int or None");
    if (seed_o.cast<py::int_>() < py::int_(0)) fail(op, "seed must be >= 0");
    pr.seed = seed_o.cast<uint64_t>();  // OverflowError-free: >= 2**64 raises here
  } else if (pr.dropout_p > 0.0f) {
    fail(op, "dropout_p > 0 needs an explicit seed= (pass the same one to attention_backward)");
  }

  pr.mask = MaskRef{MaskKind::none, nullptr, 0, 0, 0, 0};
  if (!mask_o.is_none()) {
    mask = ArrayArg::from_python(mask_o, "mask", op);
    mask.dtype_in({DType::bool_, DType::float32}, "bool (True = keep) or additive float32");
    const int64_t want[4] = {pr.B, pr.H, pr.Lq, pr.Lk};
    const std::string target = "(B, H, Lq, Lk) = " + shape_str(Shape(want, want + 4));
    if (mask.ndim > 4) mask.fail_value(shape_str(mask.shape()) + " does not broadcast to " + target);
    int64_t st[4] = {0, 0, 0, 0};
    for (int d = 0; d < mask.ndim; ++d) {
      const int axis = 4 - mask.ndim + d;
      const int64_t ext = mask.dim(d);
      if (ext != want[axis] && ext != 1)
        mask.fail_value(shape_str(mask.shape()) + " does not broadcast to " + target);
      st[axis] = ext == 1 ? 0 : mask.stride(d);
    }
    pr.mask = MaskRef{mask.dtype == DType::bool_ ? MaskKind::boolean : MaskKind::additive, mask.data,
                      st[0], st[1], st[2], st[3]};
  }
  return pr;
}

py::object attention(const py::object& qo, const py::object& ko, const py::object& vo, Flag causal,
                     const py::object& scale_o, const py::object& mask_o, Real dropout_p,
                     Flag return_lse, const py::object& out_o, const py::object& seed_o) {
  const char* op = "attention";
  ArrayArg q = float4(qo, "q", op), k = float4(ko, "k", op), v = float4(vo, "v", op);
  ArrayArg mask;
  const Problem pr = make_problem(op, q, k, v, causal, scale_o, mask_o, dropout_p, seed_o, mask);
  ArrayArg out;
  if (out_o.is_none()) {
    checked_mul(q.numel, int64_t(sizeof(float)), "out bytes");
    out = ArrayArg::empty<float>(q.shape(), "out", op);
  } else {
    out = float4(out_o, "out", op);
    out.same_shape_as(q).writeable().no_self_overlap();
    out.not_overlapping({&q, &k, &v, mask.data ? &mask : nullptr});
  }
  ArrayArg lse = ArrayArg::empty<float>({pr.B, pr.H, pr.Lq}, "lse", op);
  const View4 qv = view4(q), kv = view4(k), vv = view4(v);
  const MutView4 ov = mut_view4(out);
  float* lp = lse.mdata<float>();
  {
    py::gil_scoped_release nogil;
    attn::forward(pr, qv, kv, vv, ov, lp);
  }
  if (return_lse) return py::make_tuple(out.result(), lse.result());
  return out.result();
}

py::tuple attention_backward(const py::object& douto, const py::object& qo, const py::object& ko,
                             const py::object& vo, const py::object& outo, const py::object& lseo,
                             Flag causal, const py::object& scale_o, const py::object& mask_o,
                             Real dropout_p, const py::object& seed_o) {
  const char* op = "attention_backward";
  ArrayArg q = float4(qo, "q", op), k = float4(ko, "k", op), v = float4(vo, "v", op);
  ArrayArg dout = float4(douto, "dout", op), out = float4(outo, "out", op);
  ArrayArg mask;
  const Problem pr = make_problem(op, q, k, v, causal, scale_o, mask_o, dropout_p, seed_o, mask);
  dout.same_shape_as(q);
  out.same_shape_as(q);
  ArrayArg lse = ArrayArg::from_python(lseo, "lse", op);
  lse.float32().shape_is({pr.B, pr.H, pr.Lq});
  ArrayArg dq = ArrayArg::empty<float>(q.shape(), "dq", op);
  ArrayArg dk = ArrayArg::empty<float>(k.shape(), "dk", op);
  ArrayArg dv = ArrayArg::empty<float>(v.shape(), "dv", op);
  const View4 qv = view4(q), kv = view4(k), vv = view4(v), ov = view4(out), gv = view4(dout);
  const MutView4 dqv = mut_view4(dq), dkv = mut_view4(dk), dvv = mut_view4(dv);
  const float* lp = lse.cdata<float>();
  const int64_t lsb = lse.stride(0), lsh = lse.stride(1), lsi = lse.stride(2);
  {
    py::gil_scoped_release nogil;
    attn::backward(pr, qv, kv, vv, ov, gv, lp, lsb, lsh, lsi, dqv, dkv, dvv);
  }
  return py::make_tuple(dq.result(), dk.result(), dv.result());
}

// Forward variant for benchmarks and cross-checks: attention_variant() -> current name,
// attention_variant(name) sets it ("qk", "kq", "auto") and returns the previous one.
std::string attention_variant(const py::object& name) {
  const std::string before = attn::forward_variant();
  if (!name.is_none()) {
    try {
      attn::set_forward_variant(name.cast<std::string>().c_str());
    } catch (const std::invalid_argument& e) {
      throw py::value_error(e.what());
    }
  }
  return before;
}

void bind_attention(py::module_& m) {
  using namespace pybind11::literals;
  const py::none none;
  m.def("attention", &attention, "q"_a, "k"_a, "v"_a, py::kw_only(), "causal"_a = false,
        "scale"_a = none, "mask"_a = none, "dropout_p"_a = 0.0, "return_lse"_a = false,
        "out"_a = none, "seed"_a = none);
  m.def("attention_backward", &attention_backward, "dout"_a, "q"_a, "k"_a, "v"_a, "out"_a, "lse"_a,
        py::kw_only(), "causal"_a = false, "scale"_a = none, "mask"_a = none, "dropout_p"_a = 0.0,
        "seed"_a = none);
  m.def("attention_variant", &attention_variant, "name"_a = none);
}

static BindingRegistrar reg("attention", &bind_attention);

}  // namespace
}  // namespace nnf
