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

#include "bindings/array_args.h"
#include "bindings/registry.h"
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

py::array float4(const py::handle& obj, const char* name) {
  py::array a = as_array(obj, name);
  require_float32(a, name);
  if (a.ndim() != 4)
    throw py::value_error(std::string(name) + " must be 4-D (B, heads, L, D), got shape " +
                          shape_str(a));
  return a;
}

View4 view4(const py::array& a, const char* name) {
  return View4{cdata(a), elem_stride(a, 0, name), elem_stride(a, 1, name),
               elem_stride(a, 2, name), elem_stride(a, 3, name)};
}
MutView4 mut_view4(py::array& a, const char* name) {
  return MutView4{mdata(a), elem_stride(a, 0, name), elem_stride(a, 1, name),
                  elem_stride(a, 2, name), elem_stride(a, 3, name)};
}

std::string shape4(int64_t a, int64_t b, int64_t c, int64_t d) {
  return "(" + std::to_string(a) + ", " + std::to_string(b) + ", " + std::to_string(c) + ", " +
         std::to_string(d) + ")";
}

// Shapes, scale, dropout and mask: the Problem every entry point shares.
Problem make_problem(const py::array& q, const py::array& k, const py::array& v, bool causal,
                     const py::object& scale_o, const py::object& mask_o, double dropout_p,
                     const py::object& seed_o, py::array& mask_keep) {
  if (k.ndim() != 4 || v.ndim() != 4) throw py::value_error("k and v must be 4-D");
  Problem pr{};
  pr.B = q.shape(0);
  pr.H = q.shape(1);
  pr.Lq = q.shape(2);
  pr.D = q.shape(3);
  pr.Hkv = k.shape(1);
  pr.Lk = k.shape(2);
  const std::string shapes = "q " + shape_str(q) + ", k " + shape_str(k) + ", v " + shape_str(v);
  for (int d = 0; d < 4; ++d)
    if (k.shape(d) != v.shape(d))
      throw py::value_error("k and v must have the same shape (B, Hkv, Lk, D); got " + shapes);
  if (k.shape(0) != pr.B)
    throw py::value_error("q, k and v must have the same batch size B; got " + shapes);
  if (k.shape(3) != pr.D)
    throw py::value_error("q, k and v must have the same head dim D; got " + shapes);
  if (pr.D < 1 || pr.D > attn::kMaxD)
    throw py::value_error("head dim D must be in 1.." + std::to_string(attn::kMaxD) + "; got " + shapes);
  if (pr.Hkv < 1 || pr.H % pr.Hkv != 0)
    throw py::value_error("the query heads H must be a multiple of the key/value heads Hkv >= 1; got " +
                          shapes);
  checked_mul(checked_mul(checked_mul(pr.B, pr.H, "B*H*Lq*Lk"), pr.Lq, "B*H*Lq*Lk"), pr.Lk,
              "B*H*Lq*Lk");
  pr.causal = causal;

  double scale = 1.0 / std::sqrt(double(pr.D));
  if (!scale_o.is_none()) {
    if (!py::isinstance<py::float_>(scale_o) && !py::isinstance<py::int_>(scale_o))
      throw py::type_error("scale must be a float or None");
    scale = scale_o.cast<double>();
    if (!std::isfinite(scale)) throw py::value_error("scale must be finite, got " + std::to_string(scale));
  }
  pr.scale = float(scale);

  if (!(dropout_p >= 0.0 && dropout_p < 1.0))
    throw py::value_error("dropout_p must be in [0, 1), got " + std::to_string(dropout_p));
  pr.dropout_p = float(dropout_p);
  pr.seed = 0;
  if (!seed_o.is_none()) {
    if (!py::isinstance<py::int_>(seed_o) || py::isinstance<py::bool_>(seed_o))
      throw py::type_error("seed must be an int or None");
    if (seed_o.cast<py::int_>() < py::int_(0))
      throw py::value_error("seed must be >= 0");
    pr.seed = seed_o.cast<uint64_t>();  // raises for >= 2**64
  } else if (pr.dropout_p > 0.0f) {
    throw py::value_error("dropout_p > 0 needs an explicit seed= (pass the same one to attention_backward)");
  }

  pr.mask = MaskRef{MaskKind::none, nullptr, 0, 0, 0, 0};
  if (!mask_o.is_none()) {
    mask_keep = as_array(mask_o, "mask");
    const py::array& m = mask_keep;
    const bool is_bool = m.dtype().is(py::dtype::of<bool>());
    if (!is_bool && !m.dtype().is(py::dtype::of<float>()))
      throw py::type_error("mask must be bool (True = keep) or additive float32, got dtype " +
                           dtype_str(m) + " with shape " + shape_str(m));
    require_aligned(m, "mask");
    const int64_t want[4] = {pr.B, pr.H, pr.Lq, pr.Lk};
    if (m.ndim() > 4)
      throw py::value_error("mask " + shape_str(m) + " does not broadcast to (B, H, Lq, Lk) = " +
                            shape4(pr.B, pr.H, pr.Lq, pr.Lk));
    int64_t st[4] = {0, 0, 0, 0};
    for (int d = 0; d < int(m.ndim()); ++d) {
      const int axis = 4 - int(m.ndim()) + d;
      const int64_t ext = m.shape(d);
      if (ext != want[axis] && ext != 1)
        throw py::value_error("mask " + shape_str(m) + " does not broadcast to (B, H, Lq, Lk) = " +
                              shape4(pr.B, pr.H, pr.Lq, pr.Lk));
      st[axis] = ext == 1 ? 0 : elem_stride(m, d, "mask");
    }
    pr.mask = MaskRef{is_bool ? MaskKind::boolean : MaskKind::additive, m.data(), st[0], st[1],
                      st[2], st[3]};
  }
  return pr;
}

void require_shape4(const py::array& a, const char* name, const py::array& like, const char* lname) {
  bool ok = a.ndim() == 4;
  for (int d = 0; ok && d < 4; ++d) ok = a.shape(d) == like.shape(d);
  if (!ok)
    throw py::value_error(std::string(name) + " must have the shape of " + lname + " " +
                          shape_str(like) + ", got " + shape_str(a));
}

py::array new_array(const std::vector<py::ssize_t>& shape) {
  int64_t n = 1;
  for (py::ssize_t s : shape) n = checked_mul(n, s, "output size");
  checked_mul(n, int64_t(sizeof(float)), "output bytes");
  return py::array_t<float>(shape);
}

py::object attention(const py::object& qo, const py::object& ko, const py::object& vo, bool causal,
                     const py::object& scale_o, const py::object& mask_o, double dropout_p,
                     bool return_lse, const py::object& out_o, const py::object& seed_o) {
  py::array q = float4(qo, "q"), k = float4(ko, "k"), v = float4(vo, "v");
  py::array mask_keep;
  const Problem pr = make_problem(q, k, v, causal, scale_o, mask_o, dropout_p, seed_o, mask_keep);
  py::array out;
  if (out_o.is_none()) {
    out = new_array({q.shape(0), q.shape(1), q.shape(2), q.shape(3)});
  } else {
    out = float4(out_o, "out");
    require_shape4(out, "out", q, "q");
    require_writeable(out, "out");
    require_no_self_overlap(out, "out");
    const std::pair<const py::array*, const char*> ins[] = {{&q, "q"}, {&k, "k"}, {&v, "v"},
                                                             {&mask_keep, "mask"}};
    for (const auto& [a, name] : ins)
      if (a->ptr() && may_share_memory(out, *a))
        throw py::value_error(std::string("out ") + shape_str(out) + " overlaps " + name +
                              "; pass a separate array");
  }
  py::array lse = new_array({q.shape(0), q.shape(1), q.shape(2)});
  const View4 qv = view4(q, "q"), kv = view4(k, "k"), vv = view4(v, "v");
  const MutView4 ov = mut_view4(out, "out");
  float* lp = mdata(lse);
  {
    py::gil_scoped_release nogil;
    attn::forward(pr, qv, kv, vv, ov, lp);
  }
  if (return_lse) return py::make_tuple(out, lse);
  return out;
}

py::tuple attention_backward(const py::object& douto, const py::object& qo, const py::object& ko,
                             const py::object& vo, const py::object& outo, const py::object& lseo,
                             bool causal, const py::object& scale_o, const py::object& mask_o,
                             double dropout_p, const py::object& seed_o) {
  py::array q = float4(qo, "q"), k = float4(ko, "k"), v = float4(vo, "v");
  py::array dout = float4(douto, "dout"), out = float4(outo, "out");
  py::array mask_keep;
  const Problem pr = make_problem(q, k, v, causal, scale_o, mask_o, dropout_p, seed_o, mask_keep);
  require_shape4(dout, "dout", q, "q");
  require_shape4(out, "out", q, "q");
  py::array lse = as_array(lseo, "lse");
  require_float32(lse, "lse");
  if (lse.ndim() != 3 || lse.shape(0) != pr.B || lse.shape(1) != pr.H || lse.shape(2) != pr.Lq)
    throw py::value_error("lse must have shape (B, H, Lq) = (" + std::to_string(pr.B) + ", " +
                          std::to_string(pr.H) + ", " + std::to_string(pr.Lq) + "), got " +
                          shape_str(lse));
  const int64_t lsb = elem_stride(lse, 0, "lse"), lsh = elem_stride(lse, 1, "lse"),
                lsi = elem_stride(lse, 2, "lse");
  py::array dq = new_array({q.shape(0), q.shape(1), q.shape(2), q.shape(3)});
  py::array dk = new_array({k.shape(0), k.shape(1), k.shape(2), k.shape(3)});
  py::array dv = new_array({v.shape(0), v.shape(1), v.shape(2), v.shape(3)});
  const View4 qv = view4(q, "q"), kv = view4(k, "k"), vv = view4(v, "v"), ov = view4(out, "out"),
              gv = view4(dout, "dout");
  const MutView4 dqv = mut_view4(dq, "dq"), dkv = mut_view4(dk, "dk"), dvv = mut_view4(dv, "dv");
  const float* lp = cdata(lse);
  {
    py::gil_scoped_release nogil;
    attn::backward(pr, qv, kv, vv, ov, gv, lp, lsb, lsh, lsi, dqv, dkv, dvv);
  }
  return py::make_tuple(dq, dk, dv);
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
