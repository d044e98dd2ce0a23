// The measured FP32 peak behind the benchmark tables' "% peak" column.
#include <pybind11/pybind11.h>

#include <string>

#include "bindings/registry.h"
#include "common/cpu_features.h"
#include "common/cpu_peak.h"

namespace py = pybind11;

namespace nnf {
namespace {

void bind_peak(py::module_& m) {
  m.def("cpu_peak", [](const std::string& isa) {
    const Isa which = isa.empty() ? active_isa() : parse_isa(isa);
    CpuPeak p;
    {
      py::gil_scoped_release nogil;  // ~0.1 s of probing on the first call per ISA
      p = cpu_peak(which);
    }
    py::dict d;
    d["isa"] = isa_name(p.isa);
    d["lanes"] = p.lanes;
    d["issues_per_cycle"] = p.issues_per_cycle;
    d["flops_per_cycle_per_core"] = p.flops_per_cycle;
    d["flops_source"] = p.flops_source;
    d["clock_ghz"] = p.clock_ghz;
    d["clock_source"] = p.clock_source;
    d["add_clock_ghz"] = p.add_clock_ghz;
    d["cores"] = p.cores;
    d["cores_source"] = "nnforge threads (get_num_threads)";
    d["peak_gflops"] = p.peak_gflops;
    return d;
  }, py::arg("isa") = "",
  "FP32 peak of this CPU for `isa` (default: the active one): FLOP/cycle/core from a "
  "measured FMA issue rate, x cores (nnforge threads), x a measured clock. The probes run "
  "once per ISA per process (~0.1 s); later calls return the cached figures.");
}

BindingRegistrar reg("peak", &bind_peak);

}  // namespace
}  // namespace nnf
