// nnforge._core: the private compiled module. Public names live in python/nnforge.
#include <algorithm>
#include <string>
#include <utility>
#include <vector>

#include "bindings/registry.h"

namespace nnf {
namespace {
std::vector<std::pair<std::string, Binder>>& binders() {
  static std::vector<std::pair<std::string, Binder>> v;
  return v;
}
}  // namespace

BindingRegistrar::BindingRegistrar(const char* family, Binder binder) {
  binders().emplace_back(family, binder);
}

void run_all_binders(pybind11::module_& m) {
  auto v = binders();
  std::sort(v.begin(), v.end());
  for (auto& [name, bind] : v) bind(m);
}

}  // namespace nnf

PYBIND11_MODULE(_core, m) {
  m.doc() = "nnforge compiled CPU kernels (private; use nnforge.ops)";
  nnf::run_all_binders(m);
}
