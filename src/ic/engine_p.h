// The engine's private state (src/ic): sites, stubs, the open-PIC table and the generation
// counter of grace periods. Everything here is guarded by Impl::mutex.
#pragma once

#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <unordered_map>
#include <vector>

#include "jitkit/debug/code_registry.h"
#include "jitkit/ic/engine.h"
#include "jitkit/install/install.h"
#include "jitkit/install/patch_site.h"
#include "jitkit/patch/patcher.h"

namespace jitkit::ic::detail {

// Generated code the engine owns, with its debugger registration.
struct StubCode {
  install::InstalledCode code;
  debug::Registration registration;
};

// A closed PIC: its code and, per case slot, the tag compare and the jump.
struct Pic {
  std::unique_ptr<StubCode> stub;
  struct Slot {
    install::PatchSite cmp;
    install::PatchSite jmp;
  };
  std::vector<Slot> slots;
};

struct Site {
  install::PatchSite imm;
  install::PatchSite call;  // its end_address() is the site's return address
  std::uint32_t selector = 0;
  SiteKind kind = SiteKind::kUnlinked;
  std::vector<SiteCase> cases;
  std::unique_ptr<Pic> pic;
  std::uintptr_t call_target = 0;
  std::uint64_t cooling_gen = 0;  // 0: may be linked; else unlinked in that generation
  bool detached = false;
};

// One slot of the open-PIC table, in the zone's read-write data (read by generated code).
struct TableSlot {
  std::uint64_t key;
  std::uint64_t entry;
};
inline constexpr std::uint64_t kEmptyKey = ~std::uint64_t{0};  // selector bits never all ones

// The byte offset of (tag, selector)'s bucket (32 bytes each) in the table:
//   ((tag * kTagHashMultiplier) ^ selector_hash(selector)) mod buckets, times 32,
// computed as one multiply, one xor and one mask on values pre-shifted by 5. The multiplier is
// odd, so for one selector the class tags that differ in their low log2(buckets) bits get
// different buckets (multiplication by an odd number permutes the residues); the selector's
// own hash (an immediate in each open PIC) moves each selector's classes elsewhere.
inline constexpr std::uint32_t kTagHashMultiplier = 0x9E3779B1u;
constexpr std::uint32_t selector_hash(std::uint32_t selector) { return (selector + 1) * 0x85EBCA77u; }

struct SlotMeta {
  enum class State : std::uint8_t { kEmpty, kLive, kCooling };
  State state = State::kEmpty;
  std::uint64_t cooling_gen = 0;
};

// Something freed after a grace period.
struct Retired {
  std::uint64_t gen = 0;
  std::unique_ptr<StubCode> stub;  // or
  code::CodeBlock block;
};

// Register save block the miss and not-understood stubs build on the stack.
enum SavedSlot : std::size_t { kSavedTag = 0, kSavedSelector = 1, kSavedReceiver = 2, kSavedArgs = 3 };

// The C++ halves of the stubs (called from generated code, System V ABI).
std::uintptr_t handle_miss(Engine::Impl* impl, std::uintptr_t return_address, std::uint64_t* saved);
std::uint64_t handle_not_understood(Engine::Impl* impl, std::uint64_t* saved);

// Emitters (x86_64/stubs.cpp).
struct StubLayout {
  install::InstalledCode code;
  std::uint32_t tail_offset = 0;  // offset where the frame is gone (final jmp / ret)
};
Result<StubLayout> install_miss_stub(Engine::Impl& impl);
Result<StubLayout> install_not_understood_stub(Engine::Impl& impl);
// A closed PIC with `capacity` slots, the first cases.size() of them filled.
Result<std::unique_ptr<Pic>> install_pic(Engine::Impl& impl, std::uint32_t selector,
                                         const std::vector<SiteCase>& cases);
Result<std::unique_ptr<StubCode>> install_open_pic(Engine::Impl& impl, std::uint32_t selector);
// Registers a miss / not-understood stub with its frame-pointer unwind rows.
Result<std::unique_ptr<StubCode>> finish_frame_stub(Engine::Impl& impl, StubLayout layout);

}  // namespace jitkit::ic::detail

namespace jitkit::ic {

struct Engine::Impl {
  code::CodeZone* zone = nullptr;
  VmInterface vm;
  EngineOptions options;
  std::unique_ptr<patch::QuiescenceDomain> owned_domain;
  patch::QuiescenceDomain* domain = nullptr;
  std::unique_ptr<patch::Patcher> patcher;

  std::unique_ptr<detail::StubCode> miss;
  std::unique_ptr<detail::StubCode> not_understood;

  detail::TableSlot* table = nullptr;  // 2 * buckets slots
  std::size_t buckets = 0;
  std::vector<detail::SlotMeta> slot_meta;

  mutable std::mutex mutex;
  std::mutex reclaim_mutex;  // one grace period at a time
  std::vector<std::unique_ptr<detail::Site>> sites;
  std::unordered_map<std::uintptr_t, std::uint32_t> by_return_address;
  std::unordered_map<std::uint32_t, std::unique_ptr<detail::StubCode>> open_pics;
  std::vector<detail::Retired> retired;
  std::uint64_t gen = 1;
  EngineStats stats;

  std::string selector_name(std::uint32_t selector) const;
  std::string stub_name(std::string_view kind, std::uint32_t selector) const;
  Result<std::unique_ptr<detail::StubCode>> finish_stub(install::InstalledCode code, debug::FrameInfo frame);
};

}  // namespace jitkit::ic
