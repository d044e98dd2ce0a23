// Bindings for the fused LSTM / GRU / RNN layers (csrc/cpu/rnn): every argument is
// validated here (dtypes, ranks, T / B / I / H and the gate count, state and bias
// shapes, lengths values, the workspace's shape, size overflow) before any output is
// allocated; then the GIL is released and nnf::rnn::forward / backward run. No maths here.
// Policy: T, B and H must be >= 1 (a sequence without steps, rows or units has nothing to
// carry); I = 0 is legal (the input projection is just the biases).
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include <cstdint>
#include <string>
#include <vector>

#include "bindings/array_arg.h"
#include "bindings/scalar_arg.h"
#include "bindings/registry.h"
#include "common/checks.h"
#include "cpu/rnn/rnn.h"

namespace py = pybind11;

namespace nnf {
namespace {

using rnn::Cell;
using rnn::Problem;
using rnn::View1;
using rnn::View2;
using rnn::View3;

[[noreturn]] void fail(const std::string& op, const std::string& what) {
  throw py::value_error(op + ": " + what);
}

const char* cell_name(Cell c) {
  return c == Cell::lstm ? "lstm" : c == Cell::gru ? "gru" : "rnn";
}

Cell parse_cell(const std::string& kind, const std::string& nonlinearity) {
  if (kind == "lstm") return Cell::lstm;
  if (kind == "gru") return Cell::gru;
  if (kind != "rnn") throw py::value_error("rnn: unknown cell '" + kind + "'");
  if (nonlinearity == "tanh") return Cell::rnn_tanh;
  if (nonlinearity == "relu") return Cell::rnn_relu;
  throw py::value_error("rnn: nonlinearity must be 'tanh' or 'relu', got '" + nonlinearity + "'");
}

ArrayArg float_arg(const py::handle& obj, const char* name, const std::string& op, int ndim) {
  ArrayArg a = ArrayArg::from_python(obj, name, op.c_str());
  a.float32().ndim_in(ndim, ndim);
  return a;
}

View3 view3(const ArrayArg& a) {
  return a.data ? View3{a.cdata<float>(), a.stride(0), a.stride(1), a.stride(2)} : View3{nullptr, 0, 0, 0};
}
View2 view2(const ArrayArg& a) {
  return a.data ? View2{a.cdata<float>(), a.stride(0), a.stride(1)} : View2{nullptr, 0, 0};
}
View1 view1(const ArrayArg& a) { return a.data ? View1{a.cdata<float>(), a.stride(0)} : View1{nullptr, 0}; }

// Everything forward and backward share: the problem, x, the states, weights, biases and
// lengths (copied: the kernel reads them many times, any stride or dtype trick aside).
struct Inputs {
  std::string op;
  Problem pr{};
  ArrayArg x, h0, c0, w_ih, w_hh, b_ih, b_hh;
  std::vector<int64_t> lengths;

  // A (B, H) state or gradient, or none.
  ArrayArg state(const py::object& o, const char* name) const {
    if (o.is_none()) return ArrayArg();
    ArrayArg a = float_arg(o, name, op, 2);
    a.shape_is({pr.B, pr.H});
    return a;
  }
};

Inputs parse(const std::string& op, Cell cell, const py::object& xo, const py::object& h0o,
             const py::object& c0o, const py::object& w_iho, const py::object& w_hho,
             const py::object& b_iho, const py::object& b_hho, const py::object& lengths_o,
             bool reverse) {
  Inputs in;
  in.op = op;
  in.x = float_arg(xo, "x", op, 3);
  in.w_ih = float_arg(w_iho, "w_ih", op, 2);
  in.w_hh = float_arg(w_hho, "w_hh", op, 2);
  Problem& pr = in.pr;
  pr.cell = cell;
  pr.T = in.x.dim(0);
  pr.B = in.x.dim(1);
  pr.I = in.x.dim(2);
  pr.reverse = reverse;
  const int64_t G = rnn::gates_of(cell);
  const std::string shapes = "x " + shape_str(in.x.shape()) + ", w_ih " + shape_str(in.w_ih.shape()) +
                             ", w_hh " + shape_str(in.w_hh.shape());
  const std::string gates = G == 1 ? "H" : std::to_string(G) + "*H";
  if (pr.T < 1 || pr.B < 1) fail(op, "x (T, B, I) needs T >= 1 and B >= 1; got " + shapes);
  pr.H = in.w_hh.dim(1);
  if (pr.H < 1) fail(op, "the hidden size H (w_hh's second axis) must be >= 1; got " + shapes);
  if (in.w_hh.dim(0) != checked_mul(G, pr.H, "G*H"))
    fail(op, "w_hh must have shape (" + gates + ", H) = (" + std::to_string(G * pr.H) + ", " +
                 std::to_string(pr.H) + "); got " + shapes);
  if (in.w_ih.dim(0) != G * pr.H || in.w_ih.dim(1) != pr.I)
    fail(op, "w_ih must have shape (" + gates + ", I) = (" + std::to_string(G * pr.H) + ", " +
                 std::to_string(pr.I) + "); got " + shapes);
  // Every buffer the kernels index: the workspace is the largest per row.
  const int64_t rows = checked_mul(pr.T, pr.B, "T*B");
  checked_mul(checked_mul(rows, rnn::ws_blocks_of(cell) * pr.H, "workspace"), 4, "workspace bytes");
  checked_mul(checked_mul(rows, pr.I + 1, "x"), 4, "x bytes");
  checked_mul(checked_mul(G * pr.H, pr.H + rnn::kUnits, "w_hh pack"), 4, "w_hh pack bytes");

  in.h0 = in.state(h0o, "h0");
  if (cell == Cell::lstm) {
    in.c0 = in.state(c0o, "c0");
  } else if (!c0o.is_none()) {
    fail(op, "c0 is an LSTM state; " + std::string(cell_name(cell)) + " takes none");
  }
  for (auto [o, name, dst] : {std::make_tuple(&b_iho, "b_ih", &in.b_ih), std::make_tuple(&b_hho, "b_hh", &in.b_hh)}) {
    if (o->is_none()) continue;
    *dst = float_arg(*o, name, op, 1);
    dst->shape_is({G * pr.H});
  }
  pr.lengths = nullptr;
  if (!lengths_o.is_none()) {
    ArrayArg l = ArrayArg::from_python(lengths_o, "lengths", op.c_str());
    l.dtype_is(DType::int64).ndim_in(1, 1);
    l.shape_is({pr.B});
    in.lengths.resize(size_t(pr.B));
    for (int64_t b = 0; b < pr.B; ++b) {
      const int64_t v = l.cdata<int64_t>()[b * l.stride(0)];
      if (v < 1 || v > pr.T)
        l.fail_value("must be in [1, T] = [1, " + std::to_string(pr.T) + "]; lengths[" + std::to_string(b) +
                     "] is " + std::to_string(v));
      in.lengths[size_t(b)] = v;
    }
    pr.lengths = in.lengths.data();
  }
  return in;
}

py::tuple forward(const std::string& kind, const py::object& xo, const py::object& h0o,
                  const py::object& c0o, const py::object& w_iho, const py::object& w_hho,
                  const py::object& b_iho, const py::object& b_hho, const py::object& lengths_o,
                  Flag reverse, Flag return_workspace, const std::string& nonlinearity) {
  const Cell cell = parse_cell(kind, nonlinearity);
  const Inputs in = parse(kind, cell, xo, h0o, c0o, w_iho, w_hho, b_iho, b_hho, lengths_o, reverse);
  const Problem& pr = in.pr;
  const char* op = in.op.c_str();
  ArrayArg y = ArrayArg::empty<float>({pr.T, pr.B, pr.H}, "y", op);
  ArrayArg h_n = ArrayArg::empty<float>({pr.B, pr.H}, "h_n", op);
  ArrayArg c_n, ws;
  if (cell == Cell::lstm) c_n = ArrayArg::empty<float>({pr.B, pr.H}, "c_n", op);
  if (return_workspace)
    ws = ArrayArg::empty<float>({pr.T, pr.B, rnn::ws_blocks_of(cell) * pr.H}, "workspace", op);
  const View3 x = view3(in.x);
  const View2 h0 = view2(in.h0), c0 = view2(in.c0), w_ih = view2(in.w_ih), w_hh = view2(in.w_hh);
  const View1 b_ih = view1(in.b_ih), b_hh = view1(in.b_hh);
  float *yp = y.mdata<float>(), *hp = h_n.mdata<float>();
  float* cp = c_n.data ? c_n.mdata<float>() : nullptr;
  float* wp = ws.data ? ws.mdata<float>() : nullptr;
  {
    py::gil_scoped_release nogil;
    rnn::forward(pr, x, h0, c0, w_ih, w_hh, b_ih, b_hh, yp, hp, cp, wp);
  }
  const py::object none = py::none();
  const py::object wso = ws.data ? ws.result() : none;
  if (cell == Cell::lstm) return py::make_tuple(y.result(), h_n.result(), c_n.result(), wso);
  return py::make_tuple(y.result(), h_n.result(), wso);
}

py::tuple backward(const std::string& kind, const py::object& dyo, const py::object& dh_no,
                   const py::object& dc_no, const py::object& xo, const py::object& h0o,
                   const py::object& c0o, const py::object& w_iho, const py::object& w_hho,
                   const py::object& wso, const py::object& b_iho, const py::object& b_hho,
                   const py::object& lengths_o, Flag reverse, const std::string& nonlinearity) {
  const Cell cell = parse_cell(kind, nonlinearity);
  const Inputs in = parse(kind + "_backward", cell, xo, h0o, c0o, w_iho, w_hho, b_iho, b_hho, lengths_o, reverse);
  const Problem& pr = in.pr;
  const char* op = in.op.c_str();
  ArrayArg dy;
  if (!dyo.is_none()) {
    dy = float_arg(dyo, "dy", in.op, 3);
    dy.shape_is({pr.T, pr.B, pr.H});
  }
  const ArrayArg dh_n = in.state(dh_no, "dh_n");
  ArrayArg dc_n;
  if (cell == Cell::lstm) {
    dc_n = in.state(dc_no, "dc_n");
  } else if (!dc_no.is_none()) {
    fail(in.op, "dc_n is an LSTM gradient; " + std::string(cell_name(cell)) + " takes none");
  }
  ArrayArg ws = ArrayArg::from_python(wso, "workspace", op);
  ws.float32();
  const Shape want{pr.T, pr.B, rnn::ws_blocks_of(cell) * pr.H};
  if (ws.shape() != want)
    ws.fail_value("must have shape (T, B, " + std::string(cell == Cell::lstm ? "5H" : cell == Cell::gru ? "4H" : "H") +
                  ") = " + shape_str(want) + " for x " + shape_str(in.x.shape()) + " and w_hh " +
                  shape_str(in.w_hh.shape()) + ", got " + shape_str(ws.shape()) +
                  " (the workspace of a call with other shapes?)");
  ws.c_contiguous();

  const int64_t G = rnn::gates_of(cell);
  ArrayArg dx = ArrayArg::empty<float>({pr.T, pr.B, pr.I}, "dx", op);
  ArrayArg dh0 = ArrayArg::empty<float>({pr.B, pr.H}, "dh0", op);
  ArrayArg dc0, db_ih, db_hh;
  if (cell == Cell::lstm) dc0 = ArrayArg::empty<float>({pr.B, pr.H}, "dc0", op);
  ArrayArg dw_ih = ArrayArg::empty<float>({G * pr.H, pr.I}, "dw_ih", op);
  ArrayArg dw_hh = ArrayArg::empty<float>({G * pr.H, pr.H}, "dw_hh", op);
  if (in.b_ih.data) db_ih = ArrayArg::empty<float>({G * pr.H}, "db_ih", op);
  if (in.b_hh.data) db_hh = ArrayArg::empty<float>({G * pr.H}, "db_hh", op);

  const View3 dyv = view3(dy), x = view3(in.x);
  const View2 dhv = view2(dh_n), dcv = view2(dc_n), h0 = view2(in.h0), c0 = view2(in.c0);
  const View2 w_ih = view2(in.w_ih), w_hh = view2(in.w_hh);
  const float* wsp = ws.cdata<float>();
  auto out = [](const ArrayArg& a) { return a.data ? a.mdata<float>() : nullptr; };
  float *dxp = out(dx), *dh0p = out(dh0), *dc0p = out(dc0), *dwi = out(dw_ih), *dwh = out(dw_hh);
  float *dbi = out(db_ih), *dbh = out(db_hh);
  {
    py::gil_scoped_release nogil;
    rnn::backward(pr, dyv, dhv, dcv, x, h0, c0, w_ih, w_hh, wsp, dxp, dh0p, dc0p, dwi, dwh, dbi, dbh);
  }
  const py::object none = py::none();
  auto res = [&](const ArrayArg& a) { return a.data ? a.result() : none; };
  if (cell == Cell::lstm)
    return py::make_tuple(dx.result(), dh0.result(), dc0.result(), dw_ih.result(), dw_hh.result(), res(db_ih),
                          res(db_hh));
  return py::make_tuple(dx.result(), dh0.result(), dw_ih.result(), dw_hh.result(), res(db_ih), res(db_hh));
}

// The Elman RNN's forward block width, for benchmarks and cross-checks:
// rnn_variant() -> "u16" / "u64"; rnn_variant(name) sets it ("auto" = "u64") and returns
// the previous one.
std::string rnn_variant(const py::object& name) {
  const std::string before = "u" + std::to_string(rnn::forward_rnn_units());
  if (!name.is_none()) {
    const std::string n = name.cast<std::string>();
    if (n != "u16" && n != "u64" && n != "auto")
      throw py::value_error("rnn_variant must be 'u16', 'u64' or 'auto', got '" + n + "'");
    rnn::set_forward_rnn_units(n == "u16" ? 16 : 64);
  }
  return before;
}

void bind_rnn(py::module_& m) {
  using namespace pybind11::literals;
  const py::none none;
  m.def("rnn_forward", &forward, "cell"_a, "x"_a, "h0"_a, "c0"_a, "w_ih"_a, "w_hh"_a, "b_ih"_a, "b_hh"_a,
        py::kw_only(), "lengths"_a = none, "reverse"_a = false, "return_workspace"_a = true,
        "nonlinearity"_a = "tanh");
  m.def("rnn_backward", &backward, "cell"_a, "dy"_a, "dh_n"_a, "dc_n"_a, "x"_a, "h0"_a, "c0"_a, "w_ih"_a,
        "w_hh"_a, "workspace"_a, "b_ih"_a, "b_hh"_a, py::kw_only(), "lengths"_a = none, "reverse"_a = false,
        "nonlinearity"_a = "tanh");
  m.def("rnn_variant", &rnn_variant, "name"_a = none);
}

static BindingRegistrar reg("rnn", &bind_rnn);

}  // namespace
}  // namespace nnf
