// Selectable named variants of one op (STYLE.md rule 7), on top of the dispatch
// slots of common/dispatch.h: each variant registers itself with its slot and a
// preference (lower = preferred within its slot), from the file that defines it.
//
//   "auto"  = the most preferred variant of the best usable slot;
//   forced  = a named variant, applied while its slot is usable and its level is the
//             active one (so set_isa("generic") still means the generic path).
//
// Config is a plain struct with fields `const char* name; Slot slot; int preference;`.
// The table is instantiated in one portable file, construct-on-first-use, and fed by
// an out-of-line register function that the variants' files call from static
// initialisers (see register_dispatch: no template code in ISA files at import).
#pragma once
#include <algorithm>
#include <atomic>
#include <cstdlib>
#include <stdexcept>
#include <string>
#include <vector>

#include "common/dispatch.h"

namespace nnf {

template <class Config>
class VariantTable {
 public:
  // label names the table in errors ("GEMM"); env_var (may be null) gives the initial
  // forced variant, read at the first call.
  VariantTable(const char* family, const char* op, const char* label, const char* env_var)
      : family_(family), op_(op), label_(label), env_var_(env_var) {
    add_dispatch_rows([this] { return row(); });
  }

  // Keeps entries ordered by (slot, preference): listings read generic first, and
  // auto takes the first entry of the best usable slot.
  void add(const Config& c) {
    auto pos = std::find_if(entries_.begin(), entries_.end(), [&](const Config& e) {
      return int(e.slot) > int(c.slot) || (e.slot == c.slot && e.preference > c.preference);
    });
    entries_.insert(pos, c);
  }

  const Config& pick() const {
    const uint32_t usable = usable_slots();
    const int v = forced();
    if (v >= 0) {
      const Config& c = entries_[size_t(v)];
      if ((usable >> int(c.slot) & 1u) && kSlotInfo[int(c.slot)].level == active_isa()) return c;
    }
    const int a = auto_index(usable);
    if (a < 0)
      throw std::runtime_error(std::string(label_) + " variant table " + family_ + "." + op_ +
                               " has no variant usable at ISA level '" +
                               isa_name(active_isa()) + "'");
    return entries_[size_t(a)];
  }

  // "auto" then every variant this CPU can run.
  std::vector<std::string> runnable_names() const {
    std::vector<std::string> out{"auto"};
    for (const Config& c : entries_)
      if (cpu_has_slot(c.slot)) out.emplace_back(c.name);
    return out;
  }
  std::string forced_name() const {
    const int v = forced();
    return v < 0 ? "auto" : entries_[size_t(v)].name;
  }
  // The named variant's config ("auto": the one pick() returns now); std::invalid_argument
  // for an unknown name.
  const Config& named(const std::string& name) const {
    const int v = find(name);
    return v < 0 ? pick() : entries_[size_t(v)];
  }
  // std::invalid_argument for an unknown name or one this CPU cannot run.
  void force(const std::string& name) {
    const int v = find(name);
    if (v >= 0 && !cpu_has_slot(entries_[size_t(v)].slot))
      throw std::invalid_argument(label_ + std::string(" variant '") + name + "' needs slot " +
                                  slot_name(entries_[size_t(v)].slot) + ", which this CPU lacks");
    forced_.store(v, std::memory_order_relaxed);
  }

 private:
  int auto_index(uint32_t usable) const {
    int best = -1;
    for (int i = 0; i < int(entries_.size()); ++i) {
      const int s = int(entries_[size_t(i)].slot);
      if ((usable >> s & 1u) && (best < 0 || s > int(entries_[size_t(best)].slot))) best = i;
    }
    return best;
  }
  int find(const std::string& name) const {
    if (name == "auto") return -1;
    for (int i = 0; i < int(entries_.size()); ++i)
      if (name == entries_[size_t(i)].name) return i;
    std::string known = "auto";
    for (const Config& c : entries_) known += std::string(", ") + c.name;
    throw std::invalid_argument("unknown " + std::string(label_) + " variant '" + name +
                                "' (known: " + known + ")");
  }
  // -2: env var not read yet; -1: auto; else an index into entries_.
  int forced() const {
    int v = forced_.load(std::memory_order_relaxed);
    if (v == -2) {
      const char* env = env_var_ ? std::getenv(env_var_) : nullptr;
      v = (env && *env) ? find(env) : -1;
      forced_.store(v, std::memory_order_relaxed);
    }
    return v;
  }
  DispatchRow row() const {
    DispatchRow r{family_, op_, -1, {}, ""};
    for (const Config& c : entries_)
      if (r.registered.empty() || r.registered.back() != c.slot) r.registered.push_back(c.slot);
    try {
      const Config& c = pick();
      r.active = int(c.slot);
      r.variant = c.name;
    } catch (const std::exception&) {
    }
    return r;
  }

  const char* family_;
  const char* op_;
  const char* label_;
  const char* env_var_;
  std::vector<Config> entries_;
  mutable std::atomic<int> forced_{-2};
};

}  // namespace nnf
