// One dispatch mechanism for every kernel family (PyTorch's DispatchStub, BLIS's
// context tables): an op declares a stub, per-ISA translation units register their
// implementations into slots, and each call takes the best slot usable now.
//
//   header:       NNF_DECLARE_DISPATCH(void (*)(const float*, float*, int64_t), relu_stub);
//   one portable .cpp (same namespace):   NNF_DEFINE_DISPATCH("nn", relu_stub);
//   *_avx2.cpp:   NNF_REGISTER_DISPATCH(nn::relu_stub, Slot::avx2, relu_avx2);
//   *.per_isa.cpp (compiled once per level, CMake defines NNF_ISA_SLOT):
//                 NNF_REGISTER_PER_ISA(nn::relu_stub, relu);
//   entry point:  const auto fn = relu_stub.get();  // once per call, outside loops
//
// A slot is an ISA level plus the extension features it also needs. It is usable
// when its level <= the active level (set_isa) and its features are present and not
// disabled (NNFORGE_DISABLE / set_disabled_features). Registration happens in static
// initialisers, before any call, so get() reads the table without locks; the stubs
// themselves are constant-initialised, so registering from another translation unit
// never meets an unconstructed stub (no static-init-order problem).
#pragma once
#include <cstdint>
#include <functional>
#include <string>
#include <type_traits>
#include <vector>

#include "common/cpu_features.h"

namespace nnf {

// In increasing order of preference: get() walks from the last one down.
enum class Slot : int { generic = 0, avx2, avx_vnni, avx512, avx512_vnni, avx512_bf16 };
constexpr int kNumSlots = 6;

struct SlotInfo {
  const char* name;
  Isa level;       // vector width the code is compiled for
  uint32_t needs;  // feature_bit() mask of extension features
};
constexpr SlotInfo kSlotInfo[kNumSlots] = {
    {"generic", Isa::generic, 0},
    {"avx2", Isa::avx2, 0},
    {"avx_vnni", Isa::avx2, feature_bit(Feature::avx_vnni)},
    {"avx512", Isa::avx512, 0},
    {"avx512_vnni", Isa::avx512, feature_bit(Feature::avx512_vnni)},
    {"avx512_bf16", Isa::avx512, feature_bit(Feature::avx512_bf16)},
};

inline const char* slot_name(Slot s) { return kSlotInfo[int(s)].name; }
// Bit s set when slot s is usable now (two relaxed atomic loads).
uint32_t usable_slots();
// The CPU could run the slot at some setting (its level and features exist).
bool cpu_has_slot(Slot s);

// Type-erased part of a stub: what show_config and the tests walk.
class StubBase {
 public:
  using AnyFn = void (*)();
  constexpr StubBase(const char* family, const char* op) : family_(family), op_(op), fns_{} {}

  const char* family() const { return family_; }
  std::string op() const;  // the stub's name without its "_stub" suffix
  bool has(Slot s) const { return fns_[int(s)] != nullptr; }
  std::vector<Slot> registered() const;
  // Best registered slot among `usable` (a usable_slots() mask); -1 if none.
  int best_slot(uint32_t usable) const {
    for (int s = kNumSlots - 1; s >= 0; --s)
      if (fns_[s] && (usable >> s & 1u)) return s;
    return -1;
  }
  void enlist();  // adds this stub to all_stubs() once
  // Fills one slot (static initialisers, through NNF_REGISTER_DISPATCH). A second,
  // different function for a filled slot aborts: two files claim it (a build bug).
  void set_slot(Slot s, AnyFn fn);

 protected:
  AnyFn pick() const {
    const int s = best_slot(usable_slots());
    if (s < 0) throw_unusable();
    return fns_[s];
  }
  [[noreturn]] void throw_unusable() const;

 private:
  const char* family_;
  const char* op_;
  AnyFn fns_[kNumSlots];
  bool listed_ = false;
};

// Every defined stub (registration order of the defining translation units).
const std::vector<StubBase*>& all_stubs();

template <class Fn>
class DispatchStub : public StubBase {
  static_assert(std::is_pointer<Fn>::value && std::is_function<std::remove_pointer_t<Fn>>::value,
                "DispatchStub<Fn>: Fn must be a function pointer type");

 public:
  using fn_type = Fn;
  constexpr DispatchStub(const char* family, const char* op) : StubBase(family, op) {}
  // The implementation for the current ISA level and features. Throws
  // std::runtime_error (a programming error) when no registered slot is usable.
  Fn get() const { return reinterpret_cast<Fn>(pick()); }
};

struct StubEnlister {
  explicit StubEnlister(StubBase& s) { s.enlist(); }
};
// Out of line in portable code on purpose: the registering static initialiser of an
// AVX-512 file runs on every CPU at import, so it must be nothing but a call (no
// inline or template code that the ISA flags could vectorise).
bool register_dispatch(StubBase& stub, Slot slot, StubBase::AnyFn fn);

// One row of the dispatch table that show_config prints: the slot a family/op runs
// now (-1: none usable), the slots registered, and for variant tables the variant.
struct DispatchRow {
  std::string family, op;
  int active;
  std::vector<Slot> registered;
  std::string variant;  // empty for plain stubs
};
// Stubs first, then every source added by add_dispatch_rows (the variant tables).
std::vector<DispatchRow> dispatch_table();
void add_dispatch_rows(std::function<DispatchRow()> source);

}  // namespace nnf

#define NNF_DISPATCH_CAT_(a, b) a##b
#define NNF_DISPATCH_CAT(a, b) NNF_DISPATCH_CAT_(a, b)

#define NNF_DECLARE_DISPATCH(FnType, stub) \
  using stub##_fn = FnType;                \
  extern ::nnf::DispatchStub<stub##_fn> stub

#define NNF_DEFINE_DISPATCH(family, stub)              \
  ::nnf::DispatchStub<stub##_fn> stub{family, #stub}; \
  static const ::nnf::StubEnlister NNF_DISPATCH_CAT(nnf_stub_enlist_, __COUNTER__) { stub }

// The static_cast checks fn against the stub's type at compile time (and picks an overload).
#define NNF_REGISTER_DISPATCH(stub, slot, fn)                                       \
  [[maybe_unused]] static const bool NNF_DISPATCH_CAT(nnf_stub_reg_, __COUNTER__) = \
      ::nnf::register_dispatch(                                                     \
          stub, slot,                                                               \
          reinterpret_cast<::nnf::StubBase::AnyFn>(                                 \
              static_cast<std::remove_reference_t<decltype(stub)>::fn_type>(fn)))

// In a *.per_isa.cpp / *_<isa>.cpp file: the slot of the object library it is built in.
#define NNF_REGISTER_PER_ISA(stub, fn) NNF_REGISTER_DISPATCH(stub, ::nnf::Slot::NNF_ISA_SLOT, fn)
