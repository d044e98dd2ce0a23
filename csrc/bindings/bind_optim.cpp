// Bindings for the multi-tensor optimizer steps (csrc/cpu/optim): walk each Python
// list once, validate every array and hyperparameter (nothing is written before
// all checks pass), release the GIL, call nnf::optim::*. No maths here.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include <algorithm>
#include <cmath>
#include <string>
#include <vector>

#include "bindings/array_arg.h"
#include "bindings/registry.h"
#include "bindings/scalar_arg.h"
#include "common/checks.h"
#include "cpu/optim/optim.h"

namespace py = pybind11;

namespace nnf {
namespace {

using optim::GradOptions;

// One list argument: its Python name, the object (None = absent), whether the
// kernel writes it, which OptTensor slot it fills (-1 = p, -2 = g, 0..2 = s0..s2,
// kMaskSlot, kBf16Slot) and its dtype.
constexpr int kMaskSlot = 3, kBf16Slot = 4;
struct ListArg {
  const char* name;
  py::handle obj;
  bool writeable;
  int slot;
  DType dtype = DType::float32;
};

// The optional epilogue lists every step takes: pruning masks (uint8, read) and bf16
// copies of the parameters (written).
ListArg masks_arg(py::handle masks) { return {"masks", masks, false, kMaskSlot, DType::uint8}; }
ListArg bf16_arg(py::handle copies) { return {"bf16_copies", copies, true, kBf16Slot, DType::bfloat16}; }

// The validated tensors plus references that keep every array alive while the
// GIL is released (the caller's lists could be mutated by another thread).
struct Collected {
  std::vector<OptTensor> tensors;
  std::vector<py::object> keep;
};

std::string item_name(const char* list, size_t i) {
  return std::string(list) + "[" + std::to_string(i) + "]";
}

py::sequence as_list(py::handle obj, const char* name) {
  if (!py::isinstance<py::list>(obj) && !py::isinstance<py::tuple>(obj))
    throw py::type_error(std::string(name) + " must be a list or tuple of arrays, got " +
                         py::str(py::type::of(obj).attr("__name__")).cast<std::string>());
  return py::reinterpret_borrow<py::sequence>(obj);
}

ArrayArg checked_item(py::handle obj, std::string name, bool writeable, const char* op,
                      DType dtype = DType::float32) {
  ArrayArg a = ArrayArg::from_python(obj, std::move(name), op);
  a.dtype_is(dtype).c_contiguous();
  if (writeable) a.writeable();
  return a;
}

// One array's byte range, for the all-pairs overlap test below.
struct Range {
  const char* lo;
  const char* hi;
  size_t idx;
};

// Refuses any two arrays whose memory overlaps: O(n log n) by sorting byte ranges
// and comparing each with the furthest-reaching range before it.
void require_no_overlap(std::vector<Range>& r, const std::vector<std::string>& names,
                        const std::vector<py::object>& arrays) {
  auto shape_of = [&](size_t i) {  // only on the error path: no per-array shape copy
    return shape_str(ArrayArg::from_numpy(py::reinterpret_borrow<py::array>(arrays[i]), names[i], "").shape());
  };
  std::sort(r.begin(), r.end(), [](const Range& a, const Range& b) { return a.lo < b.lo; });
  for (size_t k = 1, reach = 0; k < r.size(); ++k) {
    if (r[k].lo < r[reach].hi) {
      const size_t a = r[reach].idx, b = r[k].idx;
      throw py::value_error(names[a] + " " + shape_of(a) + " and " + names[b] + " " + shape_of(b) +
                            " share memory; every parameter, gradient "
                            "and state buffer must be a separate array");
    }
    if (r[k].hi > r[reach].hi) reach = k;
  }
}

// Validates params (writeable) and the other lists against them, index by index.
// The kernels write an array only when its ListArg says so (checked writeable); a
// read-only gradient is passed through the same non-const field and only read.
Collected collect(const char* op, const ListArg& params_arg, std::initializer_list<ListArg> others) {
  py::sequence params = as_list(params_arg.obj, params_arg.name);
  const size_t n = py::len(params);
  std::vector<std::pair<ListArg, py::sequence>> lists;
  for (const ListArg& a : others) {
    if (a.obj.is_none()) continue;
    py::sequence s = as_list(a.obj, a.name);
    if (py::len(s) != n)
      throw py::value_error(std::string(a.name) + " has " + std::to_string(py::len(s)) +
                            " arrays but " + params_arg.name + " has " + std::to_string(n));
    lists.emplace_back(a, s);
  }
  Collected out;
  std::vector<std::string> names;
  std::vector<Range> ranges;
  const size_t total_arrays = n * (1 + lists.size());
  out.tensors.reserve(n);
  out.keep.reserve(total_arrays);
  names.reserve(total_arrays);
  ranges.reserve(total_arrays);
  auto record = [&](const ArrayArg& a) {
    const char *lo, *hi;
    if (a.extent(lo, hi)) ranges.push_back({lo, hi, names.size()});
    out.keep.push_back(a.owner);
    names.push_back(a.name);
  };
  int64_t total = 0;
  for (size_t i = 0; i < n; ++i) {
    const ArrayArg p = checked_item(params[i], item_name(params_arg.name, i), params_arg.writeable, op);
    OptTensor t{nullptr, nullptr, nullptr, nullptr, nullptr, p.numel, nullptr, nullptr};
    total = checked_add(total, t.n, "the total number of parameters");
    if (params_arg.slot == -1) t.p = p.mdata<float>(); else t.g = p.mdata<float>();
    record(p);
    for (auto& [arg, seq] : lists) {
      const ArrayArg a = checked_item(seq[i], item_name(arg.name, i), arg.writeable, op, arg.dtype);
      if (!a.same_shape(p))
        throw py::value_error(a.name + " must have the shape of " + p.name + " " + shape_str(p.shape()) +
                              ", got " + shape_str(a.shape()));
      float* ap = a.mdata<float>();
      switch (arg.slot) {
        case -1: t.p = ap; break;
        case -2: t.g = ap; break;
        case 0: t.s0 = ap; break;
        case 1: t.s1 = ap; break;
        case 2: t.s2 = ap; break;
        case kMaskSlot: t.mask = a.cdata<uint8_t>(); break;
        default: t.bf16 = a.mdata<uint16_t>(); break;
      }
      record(a);
    }
    out.tensors.push_back(t);
  }
  require_no_overlap(ranges, names, out.keep);
  return out;
}

// Python's repr of a float (0.9, 1e-08, inf, nan) for error messages.
std::string num(double v) { return py::repr(py::float_(v)).cast<std::string>(); }

void require_range(double v, const char* name, double lo, double hi, bool hi_open) {
  const bool ok = v >= lo && (hi_open ? v < hi : v <= hi);
  if (!ok)
    throw py::value_error(std::string(name) + " must be in [" + num(lo) + ", " + num(hi) +
                          (hi_open ? ")" : "]") + ", got " + num(v));
}
constexpr double kInf = HUGE_VAL;
void require_nonneg(double v, const char* name) { require_range(v, name, 0.0, kInf, true); }

void require_step(int64_t step) {
  if (step < 1) throw py::value_error("step must be >= 1 (1-based step count), got " + std::to_string(step));
}

GradOptions grad_options(double grad_scale, bool maximize, bool zero_grad, bool check_finite) {
  // >= 0 (clip_coef's factor, 1 / a loss scale); inf / NaN pass: check_finite counts them as
  // a non-finite gradient and skips the step.
  if (grad_scale < 0.0) throw py::value_error("grad_scale must be >= 0, got " + num(grad_scale));
  GradOptions o;
  o.grad_scale = grad_scale;
  o.maximize = maximize;
  o.zero_grad = zero_grad;
  o.check_finite = check_finite;
  return o;
}

// ---- steps --------------------------------------------------------------------------
bool sgd_step(py::object params, py::object grads, py::object momentum_buffers, Real lr,
              Index step, Real momentum, Real dampening, Real weight_decay, Flag nesterov,
              Flag maximize, Real grad_scale, Flag zero_grad, Flag check_finite, py::object masks,
              py::object bf16_copies) {
  require_nonneg(lr, "lr");
  require_step(step);
  require_nonneg(momentum, "momentum");
  require_nonneg(weight_decay, "weight_decay");
  require_range(dampening, "dampening", 0.0, 1.0, false);
  if (nesterov && (momentum <= 0.0 || dampening != 0.0))
    throw py::value_error("nesterov requires momentum > 0 and dampening == 0, got momentum=" +
                          num(momentum) + " dampening=" + num(dampening));
  const bool mom = momentum != 0.0;
  if (mom && momentum_buffers.is_none())
    throw py::value_error("momentum=" + num(momentum) + " needs momentum_buffers");
  Collected c = collect("sgd_step", {"params", params, true, -1},
                        {{"grads", grads, zero_grad, -2},
                         {"momentum_buffers", mom ? momentum_buffers : py::none(), true, 0},
                         masks_arg(masks), bf16_arg(bf16_copies)});
  const optim::SgdHyper h{lr, momentum, dampening, weight_decay, nesterov, step};
  const GradOptions o = grad_options(grad_scale, maximize, zero_grad, check_finite);
  py::gil_scoped_release nogil;
  return optim::sgd_step(c.tensors, h, o);
}

bool adam_impl(py::object params, py::object grads, py::object exp_avgs, py::object exp_avg_sqs,
               py::object max_exp_avg_sqs, int64_t step, double lr, double beta1, double beta2,
               double eps, double weight_decay, bool amsgrad, bool maximize, double grad_scale,
               bool zero_grad, bool check_finite, py::object masks, py::object bf16_copies,
               bool decoupled) {
  require_step(step);
  require_nonneg(lr, "lr");
  require_range(beta1, "beta1", 0.0, 1.0, true);
  require_range(beta2, "beta2", 0.0, 1.0, true);
  require_nonneg(eps, "eps");
  require_nonneg(weight_decay, "weight_decay");
  if (amsgrad && max_exp_avg_sqs.is_none())
    throw py::value_error("amsgrad=True needs max_exp_avg_sqs");
  Collected c = collect(decoupled ? "adamw_step" : "adam_step", {"params", params, true, -1},
                        {{"grads", grads, zero_grad, -2},
                         {"exp_avgs", exp_avgs, true, 0},
                         {"exp_avg_sqs", exp_avg_sqs, true, 1},
                         {"max_exp_avg_sqs", amsgrad ? max_exp_avg_sqs : py::none(), true, 2},
                         masks_arg(masks), bf16_arg(bf16_copies)});
  const optim::AdamHyper h{lr, beta1, beta2, eps, weight_decay, amsgrad, decoupled, step};
  const GradOptions o = grad_options(grad_scale, maximize, zero_grad, check_finite);
  py::gil_scoped_release nogil;
  return optim::adam_step(c.tensors, h, o);
}

bool adam_step(py::object params, py::object grads, py::object exp_avgs, py::object exp_avg_sqs,
               py::object max_exp_avg_sqs, Index step, Real lr, Real beta1, Real beta2,
               Real eps, Real weight_decay, Flag amsgrad, Flag maximize, Real grad_scale,
               Flag zero_grad, Flag check_finite, py::object masks, py::object bf16_copies) {
  return adam_impl(params, grads, exp_avgs, exp_avg_sqs, max_exp_avg_sqs, step, lr, beta1, beta2,
                   eps, weight_decay, amsgrad, maximize, grad_scale, zero_grad, check_finite, masks,
                   bf16_copies, false);
}

bool adamw_step(py::object params, py::object grads, py::object exp_avgs, py::object exp_avg_sqs,
                py::object max_exp_avg_sqs, Index step, Real lr, Real beta1, Real beta2,
                Real eps, Real weight_decay, Flag amsgrad, Flag maximize, Real grad_scale,
                Flag zero_grad, Flag check_finite, py::object masks, py::object bf16_copies) {
  return adam_impl(params, grads, exp_avgs, exp_avg_sqs, max_exp_avg_sqs, step, lr, beta1, beta2,
                   eps, weight_decay, amsgrad, maximize, grad_scale, zero_grad, check_finite, masks,
                   bf16_copies, true);
}

bool rmsprop_step(py::object params, py::object grads, py::object square_avgs,
                  py::object momentum_buffers, py::object grad_avgs, Real lr, Real alpha,
                  Real eps, Real weight_decay, Real momentum, Flag centered, Flag maximize,
                  Real grad_scale, Flag zero_grad, Flag check_finite, py::object masks,
                  py::object bf16_copies) {
  require_nonneg(lr, "lr");
  require_range(alpha, "alpha", 0.0, 1.0, false);
  require_nonneg(eps, "eps");
  require_nonneg(weight_decay, "weight_decay");
  require_nonneg(momentum, "momentum");
  const bool mom = momentum > 0.0;
  if (mom && momentum_buffers.is_none())
    throw py::value_error("momentum=" + num(momentum) + " needs momentum_buffers");
  if (centered && grad_avgs.is_none()) throw py::value_error("centered=True needs grad_avgs");
  Collected c = collect("rmsprop_step", {"params", params, true, -1},
                        {{"grads", grads, zero_grad, -2},
                         {"square_avgs", square_avgs, true, 0},
                         {"momentum_buffers", mom ? momentum_buffers : py::none(), true, 1},
                         {"grad_avgs", centered ? grad_avgs : py::none(), true, 2},
                         masks_arg(masks), bf16_arg(bf16_copies)});
  const optim::RmspropHyper h{lr, alpha, eps, weight_decay, momentum, centered};
  const GradOptions o = grad_options(grad_scale, maximize, zero_grad, check_finite);
  py::gil_scoped_release nogil;
  return optim::rmsprop_step(c.tensors, h, o);
}

bool adagrad_step(py::object params, py::object grads, py::object state_sums, Index step,
                  Real lr, Real lr_decay, Real weight_decay, Real eps, Flag maximize,
                  Real grad_scale, Flag zero_grad, Flag check_finite, py::object masks,
                  py::object bf16_copies) {
  require_step(step);
  require_nonneg(lr, "lr");
  require_nonneg(lr_decay, "lr_decay");
  require_nonneg(weight_decay, "weight_decay");
  require_nonneg(eps, "eps");
  Collected c = collect("adagrad_step", {"params", params, true, -1},
                        {{"grads", grads, zero_grad, -2}, {"state_sums", state_sums, true, 0},
                         masks_arg(masks), bf16_arg(bf16_copies)});
  const optim::AdagradHyper h{lr, lr_decay, weight_decay, eps, step};
  const GradOptions o = grad_options(grad_scale, maximize, zero_grad, check_finite);
  py::gil_scoped_release nogil;
  return optim::adagrad_step(c.tensors, h, o);
}

// ---- gradient norm / clipping --------------------------------------------------------
double grad_norm(py::object grads) {
  Collected c = collect("grad_norm", {"grads", grads, false, -2}, {});
  py::gil_scoped_release nogil;
  return optim::grad_norm(c.tensors);
}

double clip_grad_norm(py::object grads, Real max_norm, Real eps) {
  require_nonneg(max_norm, "max_norm");
  require_nonneg(eps, "eps");
  Collected c = collect("clip_grad_norm", {"grads", grads, true, -2}, {});
  py::gil_scoped_release nogil;
  return optim::clip_grad_norm(c.tensors, max_norm, eps);
}

double clip_coef(Real norm, Real max_norm, Real eps) {
  // A norm is >= 0; inf and NaN (non-finite gradients) propagate into the factor as in torch.
  if (norm < 0.0) throw py::value_error("norm must be >= 0 (a gradient norm), got " + num(norm));
  require_nonneg(max_norm, "max_norm");
  require_nonneg(eps, "eps");
  return optim::clip_coef(norm, max_norm, eps);
}

void stream_triad(py::object ao, py::object bo, py::object co, Real s) {
  const char* op = "stream_triad";
  if (!std::isfinite(double(s))) throw py::value_error("stream_triad: s must be finite, got " + num(s));
  ArrayArg a = checked_item(ao, "a", true, op), b = checked_item(bo, "b", false, op),
           c = checked_item(co, "c", false, op);
  a.ndim_in(1, 1);
  if (!a.same_shape(b) || !a.same_shape(c))
    throw py::value_error("stream_triad: a, b and c must have the same 1-D shape, got " + shape_str(a.shape()) +
                          ", " + shape_str(b.shape()) + ", " + shape_str(c.shape()));
  if (a.overlaps(b) || a.overlaps(c)) throw py::value_error("stream_triad: a must not overlap b or c");
  float* ap = a.mdata<float>();
  const float *bp = b.cdata<float>(), *cp = c.cdata<float>();
  const int64_t n = a.dim(0);
  py::gil_scoped_release nogil;
  optim::stream_triad(ap, bp, cp, float(s), n);
}

// Every step's docstring ends with the shared epilogue options (nnforge._optim_ops).
#define NNF_EPILOGUE_DOC                                                                        \
  " masks (uint8, 0 = pruned): stores 0 to the parameter and its state there. bf16_copies "     \
  "(ml_dtypes.bfloat16): receives each updated parameter rounded to nearest even."

void bind_optim(py::module_& m) {
  using namespace pybind11::literals;
  const py::object none = py::none();
  m.def("sgd_step", &sgd_step, "params"_a, "grads"_a, "momentum_buffers"_a = none, py::kw_only(),
        "lr"_a, "step"_a, "momentum"_a = 0.0, "dampening"_a = 0.0, "weight_decay"_a = 0.0,
        "nesterov"_a = false, "maximize"_a = false, "grad_scale"_a = 1.0, "zero_grad"_a = false,
        "check_finite"_a = false,
        "masks"_a = none, "bf16_copies"_a = none,
        "In-place torch.optim.SGD step over lists of float32 arrays (momentum_buffers needed when "
        "momentum != 0; step is 1-based, step 1 sets buf = g). Returns False, changing nothing, "
        "when check_finite finds inf/NaN in a gradient." NNF_EPILOGUE_DOC);
  m.def("adam_step", &adam_step, "params"_a, "grads"_a, "exp_avgs"_a, "exp_avg_sqs"_a,
        "max_exp_avg_sqs"_a = none, py::kw_only(), "step"_a, "lr"_a, "beta1"_a = 0.9,
        "beta2"_a = 0.999, "eps"_a = 1e-8, "weight_decay"_a = 0.0, "amsgrad"_a = false,
        "maximize"_a = false, "grad_scale"_a = 1.0, "zero_grad"_a = false, "check_finite"_a = false,
        "masks"_a = none, "bf16_copies"_a = none,
        "In-place torch.optim.Adam step (L2 weight decay added to the gradient) over lists of "
        "float32 arrays. Returns False, changing nothing, when check_finite finds inf/NaN." NNF_EPILOGUE_DOC);
  m.def("adamw_step", &adamw_step, "params"_a, "grads"_a, "exp_avgs"_a, "exp_avg_sqs"_a,
        "max_exp_avg_sqs"_a = none, py::kw_only(), "step"_a, "lr"_a, "beta1"_a = 0.9,
        "beta2"_a = 0.999, "eps"_a = 1e-8, "weight_decay"_a = 0.01, "amsgrad"_a = false,
        "maximize"_a = false, "grad_scale"_a = 1.0, "zero_grad"_a = false, "check_finite"_a = false,
        "masks"_a = none, "bf16_copies"_a = none,
        "In-place torch.optim.AdamW step (decoupled decay p *= 1 - lr*wd) over lists of float32 "
        "arrays. Returns False, changing nothing, when check_finite finds inf/NaN." NNF_EPILOGUE_DOC);
  m.def("rmsprop_step", &rmsprop_step, "params"_a, "grads"_a, "square_avgs"_a,
        "momentum_buffers"_a = none, "grad_avgs"_a = none, py::kw_only(), "lr"_a, "alpha"_a = 0.99,
        "eps"_a = 1e-8, "weight_decay"_a = 0.0, "momentum"_a = 0.0, "centered"_a = false,
        "maximize"_a = false, "grad_scale"_a = 1.0, "zero_grad"_a = false, "check_finite"_a = false,
        "masks"_a = none, "bf16_copies"_a = none,
        "In-place torch.optim.RMSprop step over lists of float32 arrays (momentum_buffers when "
        "momentum > 0, grad_avgs when centered)." NNF_EPILOGUE_DOC);
  m.def("adagrad_step", &adagrad_step, "params"_a, "grads"_a, "state_sums"_a, py::kw_only(),
        "step"_a, "lr"_a, "lr_decay"_a = 0.0, "weight_decay"_a = 0.0, "eps"_a = 1e-10,
        "maximize"_a = false, "grad_scale"_a = 1.0, "zero_grad"_a = false, "check_finite"_a = false,
        "masks"_a = none, "bf16_copies"_a = none,
        "In-place torch.optim.Adagrad step over lists of float32 arrays (step is 1-based)." NNF_EPILOGUE_DOC);
  m.def("grad_norm", &grad_norm, "grads"_a,
        "Global L2 norm of a list of float32 arrays, accumulated in float64 (same result for "
        "any thread count).");
  m.def("clip_grad_norm", &clip_grad_norm, "grads"_a, "max_norm"_a, py::kw_only(), "eps"_a = 1e-6,
        "Scale grads in place by max_norm / (norm + eps) when that is < 1 (as "
        "torch.nn.utils.clip_grad_norm_); returns the norm before clipping.");
  m.def("clip_coef", &clip_coef, "norm"_a, "max_norm"_a, "eps"_a = 1e-6,
        "min(1, max_norm / (norm + eps)): pass as grad_scale to a step to clip without a "
        "separate scaling pass.");
  m.def("stream_triad", &stream_triad, "a"_a, "b"_a, "c"_a, "s"_a,
        "a = b + s * c on 1-D float32 arrays (STREAM triad, the bandwidth yardstick).");
  m.def("_optim_schedule", [](const std::string& name) {
    const std::string before = optim::get_schedule() == optim::Schedule::static_split ? "static" : "dynamic";
    if (name == "static") optim::set_schedule(optim::Schedule::static_split);
    else if (name == "dynamic") optim::set_schedule(optim::Schedule::dynamic_chunks);
    else if (!name.empty()) throw py::value_error("schedule must be 'static' or 'dynamic', got '" + name + "'");
    return before;
  }, "name"_a = "", "Benchmark hook: how optimizer chunks are shared among threads ('static' / 'dynamic'; "
     "'' only reads it). Returns the previous schedule.");
}

static BindingRegistrar reg("optim", &bind_optim);

}  // namespace
}  // namespace nnf
