// ISA dispatch, threads and build facts: what show_config() reports.
#include <omp.h>
#include <pybind11/stl.h>

#include "bindings/registry.h"
#include "common/cpu_features.h"
#include "common/threads.h"

namespace py = pybind11;

namespace nnf {
namespace {

void bind_config(py::module_& m) {
  // Apply NNFORGE_ISA at import; an unknown/unsupported value fails the import
  // with a ValueError that says what this CPU offers.
  init_isa_from_env();

  m.def("get_isa", [] { return std::string(isa_name(active_isa())); },
        "Name of the ISA path kernels dispatch to now.");
  m.def("set_isa", [](const std::string& name) { set_active_isa(parse_isa(name)); },
        py::arg("name"), "Force a kernel ISA path (ValueError if the CPU lacks it).");
  m.def("available_isas", [] {
    std::vector<std::string> out;
    for (Isa i : available_isas()) out.emplace_back(isa_name(i));
    return out;
  });
  m.def("best_isa", [] { return std::string(isa_name(best_isa())); });
  m.def("get_num_threads", &get_num_threads);
  m.def("default_num_threads", &default_num_threads);
  m.def("set_num_threads", [](int n) {
    if (n < 1) throw py::value_error("set_num_threads: n must be >= 1, got " + std::to_string(n));
    set_num_threads(n);
  }, py::arg("n"));
  m.def("in_forked_child", &in_forked_child);
  m.def("build_info", [] {
    py::dict d;
    d["build_type"] = NNFORGE_BUILD_TYPE;
    d["compiler"] = NNFORGE_COMPILER;
    d["openmp"] = std::string("libgomp (OpenMP ") + std::to_string(_OPENMP) + ")";
    d["omp_num_procs"] = omp_get_num_procs();
    return d;
  });
}

BindingRegistrar reg("00_config", &bind_config);

}  // namespace
}  // namespace nnf
