// Each op family binds itself from its own file:
//   static nnf::BindingRegistrar reg("gemm", &bind_gemm);
// so adding a family never touches module.cpp. Registration runs at load time,
// before the module's init function calls every binder in name order.
#pragma once
#include <pybind11/pybind11.h>

namespace nnf {

using Binder = void (*)(pybind11::module_&);

struct BindingRegistrar {
  BindingRegistrar(const char* family, Binder binder);
};

void run_all_binders(pybind11::module_& m);

}  // namespace nnf
