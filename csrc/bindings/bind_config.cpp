// ISA level, CPU features, the dispatch table, threads and build facts: what
// show_config() reports.
#include <dlfcn.h>
#include <omp.h>
#include <pybind11/stl.h>

#include <atomic>
#include <chrono>
#include <stdexcept>
#include <string>
#include <thread>
#include <tuple>
#include <vector>
#include <utility>

#include "bindings/registry.h"
#include "common/cpu_features.h"
#include "common/dispatch.h"
#include "common/isa_probe.h"
#include "common/threads.h"
#include "common/worker_pool.h"

namespace py = pybind11;

namespace nnf {
namespace {

// The OpenMP runtime this module really calls into: the file that holds
// omp_get_num_threads as the dynamic linker resolved it (libgomp, libomp, libiomp5,
// or a wheel's bundled copy), not what the compiler's name suggests.
std::string openmp_runtime() {
  std::string lib = "unknown runtime";
  Dl_info info;
  if (dladdr(reinterpret_cast<void*>(&omp_get_num_threads), &info) && info.dli_fname) {
    lib = info.dli_fname;
    const size_t slash = lib.rfind('/');
    if (slash != std::string::npos) lib = lib.substr(slash + 1);
  }
  return lib + " (OpenMP " + std::to_string(_OPENMP) + ")";
}

py::dict row_dict(const DispatchRow& r) {
  py::dict d;
  d["family"] = r.family;
  d["op"] = r.op;
  d["active"] =
      r.active < 0 ? py::object(py::none()) : py::object(py::str(slot_name(Slot(r.active))));
  std::vector<std::string> regs;
  for (Slot s : r.registered) regs.emplace_back(slot_name(s));
  d["registered"] = regs;
  d["variant"] = r.variant.empty() ? py::object(py::none()) : py::object(py::str(r.variant));
  return d;
}

void bind_config(py::module_& m) {
  // Apply NNFORGE_ISA and NNFORGE_DISABLE at import; an unknown/unsupported value
  // fails the import with a ValueError that says what this CPU offers.
  init_isa_from_env();

  m.def("get_isa", [] { return std::string(isa_name(active_isa())); },
        "Name of the ISA level kernels dispatch to now.");
  m.def("set_isa", [](const std::string& name) { set_active_isa(parse_isa(name)); },
        py::arg("name"), "Force a kernel ISA level (ValueError if the CPU lacks it).");
  m.def("available_isas", [] {
    std::vector<std::string> out;
    for (Isa i : available_isas()) out.emplace_back(isa_name(i));
    return out;
  });
  m.def("best_isa", [] { return std::string(isa_name(best_isa())); });

  m.def("cpu_features", [] {
    py::dict d;
    for (const auto& kv : cpu_feature_list()) d[py::str(kv.first)] = kv.second;
    return d;
  }, "Every detected CPU feature flag (OS support included) as name -> bool.");
  m.def("known_features", &known_features,
        "Extension features a dispatch slot may need (the names set_disabled_features takes).");
  m.def("set_disabled_features", &set_disabled_features, py::arg("names"),
        "Replace the set of disabled extension features (ValueError for an unknown name).");
  m.def("disabled_features", &disabled_features);
  m.def("dispatch_table", [] {
    py::list out;
    for (const DispatchRow& r : dispatch_table()) out.append(row_dict(r));
    return out;
  }, "One dict per family/op: the slot active now, the registered slots, the variant.");
  m.def("isa_probe", [] {
    int32_t dot = 0;
    const char* name = isa_probe_stub.get()(&dot);
    return std::make_pair(std::string(name), dot);
  }, "Runs the probe stub: (slot that ran, its 64-pair int8 dot product = 128).");

  m.def("get_num_threads", &get_num_threads);
  m.def("default_num_threads", &default_num_threads);
  m.def("set_num_threads", [](int n) {
    if (n < 1) throw py::value_error("set_num_threads: n must be >= 1, got " + std::to_string(n));
    set_num_threads(n);
  }, py::arg("n"));
  m.def("in_forked_child", &in_forked_child);
  // Test hook for common/worker_pool.h: `calls` runs of `nchunks` chunks on `threads`;
  // returns how often each chunk ran (every count must equal calls). A chunk c with
  // c % fail_every == fail_every - 1 throws (0: none), and a chunk with c % 3 == 0 sleeps
  // sleep_us first, so workers wake and claim at every moment of a call. nested: chunk 0
  // makes a call of 3 chunks of its own (it must run serially, wherever chunk 0 runs);
  // the third result counts the nested chunks that ran.
  m.def("_worker_pool_probe", [](int nchunks, int threads, int calls, int fail_every, int sleep_us,
                                 bool nested) {
    std::vector<std::atomic<int>> runs(size_t(std::max(nchunks, 0)));
    std::atomic<int> inner{0};
    int failures = 0;
    {
      py::gil_scoped_release nogil;
      for (int call = 0; call < calls; ++call) {
        try {
          run_chunks(nchunks, threads, [&](int c) {
            runs[size_t(c)].fetch_add(1);
            if (nested && c == 0) run_chunks(3, threads, [&](int) { inner.fetch_add(1); });
            if (sleep_us > 0 && c % 3 == 0) std::this_thread::sleep_for(std::chrono::microseconds(sleep_us));
            if (fail_every > 0 && c % fail_every == fail_every - 1) throw std::runtime_error("chunk failed");
          });
        } catch (const std::runtime_error&) {
          ++failures;
        }
      }
    }
    std::vector<int> out;
    for (auto& r : runs) out.push_back(r.load());
    return std::make_tuple(out, failures, inner.load());
  }, py::arg("nchunks"), py::arg("threads"), py::arg("calls") = 1, py::arg("fail_every") = 0,
     py::arg("sleep_us") = 0, py::arg("nested") = false);
  m.def("build_info", [] {
    py::dict d;
    d["build_type"] = NNFORGE_BUILD_TYPE;
    d["compiler"] = NNFORGE_COMPILER;
    d["openmp"] = openmp_runtime();
    d["omp_num_procs"] = omp_get_num_procs();
    return d;
  });
}

BindingRegistrar reg("00_config", &bind_config);

}  // namespace
}  // namespace nnf
