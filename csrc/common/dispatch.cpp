#include "common/dispatch.h"

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <stdexcept>

namespace nnf {
namespace {

// Construct-on-first-use: registrations run in other translation units' static
// initialisers, in an order the linker chooses.
std::vector<StubBase*>& stub_list() {
  static std::vector<StubBase*> v;
  return v;
}
std::vector<std::function<DispatchRow()>>& row_sources() {
  static std::vector<std::function<DispatchRow()>> v;
  return v;
}

}  // namespace

uint32_t usable_slots() {
  const int level = int(active_isa());
  const uint32_t feats = enabled_features();
  uint32_t mask = 0;
  for (int s = 0; s < kNumSlots; ++s)
    if (int(kSlotInfo[s].level) <= level && (kSlotInfo[s].needs & ~feats) == 0) mask |= 1u << s;
  return mask;
}

bool cpu_has_slot(Slot s) {
  const SlotInfo& i = kSlotInfo[int(s)];
  return cpu_supports(i.level) && (i.needs & ~present_features()) == 0;
}

std::string StubBase::op() const {
  std::string s(op_);
  const std::string suffix = "_stub";
  if (s.size() > suffix.size() && s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0)
    s.resize(s.size() - suffix.size());
  return s;
}

std::vector<Slot> StubBase::registered() const {
  std::vector<Slot> out;
  for (int s = 0; s < kNumSlots; ++s)
    if (fns_[s]) out.push_back(Slot(s));
  return out;
}

void StubBase::enlist() {
  if (listed_) return;
  listed_ = true;
  stub_list().push_back(this);
}

void StubBase::set_slot(Slot s, AnyFn fn) {
  enlist();
  if (fns_[int(s)] && fns_[int(s)] != fn) {
    // Two files claim one slot: a build mistake that must not pass silently, and
    // static initialisers cannot report it any other way.
    std::fprintf(stderr, "nnforge: dispatch stub %s.%s registered twice for slot %s\n", family_,
                 op().c_str(), slot_name(s));
    std::abort();
  }
  fns_[int(s)] = fn;
}

void StubBase::throw_unusable() const {
  std::string regs;
  for (Slot s : registered()) regs += std::string(regs.empty() ? "" : ", ") + slot_name(s);
  throw std::runtime_error(std::string("dispatch stub ") + family_ + "." + op() +
                           " has no implementation usable at ISA level '" +
                           isa_name(active_isa()) + "' (registered: " +
                           (regs.empty() ? "none" : regs) + ")");
}

bool register_dispatch(StubBase& stub, Slot slot, StubBase::AnyFn fn) {
  stub.set_slot(slot, fn);
  return true;
}

const std::vector<StubBase*>& all_stubs() { return stub_list(); }

void add_dispatch_rows(std::function<DispatchRow()> source) {
  row_sources().push_back(std::move(source));
}

std::vector<DispatchRow> dispatch_table() {
  std::vector<DispatchRow> rows;
  const uint32_t usable = usable_slots();
  for (const StubBase* s : all_stubs())
    rows.push_back(DispatchRow{s->family(), s->op(), s->best_slot(usable), s->registered(), ""});
  for (const auto& source : row_sources()) rows.push_back(source());
  // Grouped by family for reading; within one, in definition order.
  std::stable_sort(rows.begin(), rows.end(),
                   [](const DispatchRow& a, const DispatchRow& b) { return a.family < b.family; });
  return rows;
}

}  // namespace nnf
