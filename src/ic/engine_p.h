// The engine's private state (src/ic): sites, stubs, the open-PIC table and the generation
// counter of grace periods. Everything here is guarded by Impl::mutex.
#pragma once

#include <cstdint>
#include <map>
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

// A site slot is reused after detach_range(): `detached` marks a free slot (on
// Engine::Impl::free_sites), whose SiteId answers nothing until a later attach() takes it.
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

// Attached sites by return address (the miss handler's lookup). Open addressing with linear
// probing in one array: an attach costs no allocation (a node-based map allocated one per site,
// a large part of attaching), and a lookup is a multiply and, typically, one probe. Return
// addresses are never 0, which marks an empty entry. Deletion shifts the following entries
// back, so there are no tombstones and lookups stay short however many sites come and go.
class ReturnAddressIndex {
 public:
  static constexpr std::uint32_t kNone = ~std::uint32_t{0};
  std::uint32_t find(std::uintptr_t key) const {
    if (size_ == 0) return kNone;
    for (std::size_t i = home(key);; i = (i + 1) & mask_) {
      if (entries_[i].key == key) return entries_[i].value;
      if (entries_[i].key == 0) return kNone;
    }
  }
  // False (and no change) when `key` is present already.
  bool insert(std::uintptr_t key, std::uint32_t value) {
    if ((size_ + 1) * 4 > entries_.size() * 3) grow();
    std::size_t i = home(key);
    for (; entries_[i].key != 0; i = (i + 1) & mask_) {
      if (entries_[i].key == key) return false;
    }
    entries_[i] = {key, value};
    ++size_;
    return true;
  }
  void erase(std::uintptr_t key) {
    if (size_ == 0) return;
    std::size_t i = home(key);
    for (; entries_[i].key != key; i = (i + 1) & mask_) {
      if (entries_[i].key == 0) return;
    }
    // Backward-shift deletion: move up each later entry of the cluster whose home position is
    // not between the hole and itself, so every remaining key stays reachable from its home.
    for (std::size_t j = (i + 1) & mask_;; j = (j + 1) & mask_) {
      if (entries_[j].key == 0) break;
      const std::size_t h = home(entries_[j].key);
      const bool stays = i <= j ? (i < h && h <= j) : (i < h || h <= j);
      if (stays) continue;
      entries_[i] = entries_[j];
      i = j;
    }
    entries_[i] = {};
    --size_;
  }
  std::size_t size() const { return size_; }

 private:
  struct Entry {
    std::uintptr_t key = 0;
    std::uint32_t value = 0;
  };
  std::size_t home(std::uintptr_t key) const {
    return static_cast<std::size_t>((key * 0x9E3779B97F4A7C15ull) >> shift_);
  }
  void grow() {
    std::vector<Entry> old = std::move(entries_);
    const std::size_t capacity = old.empty() ? 64 : old.size() * 2;
    entries_.assign(capacity, Entry{});
    mask_ = capacity - 1;
    shift_ = 64u - static_cast<unsigned>(__builtin_ctzll(capacity));
    size_ = 0;
    for (const Entry& e : old) {
      if (e.key != 0) insert(e.key, e.value);
    }
  }
  std::vector<Entry> entries_;
  std::size_t mask_ = 0;
  unsigned shift_ = 64;
  std::size_t size_ = 0;
};

// The attached sites of one code block (by its start in Engine::Impl::sites_by_code), so that
// detach_range() visits only the blocks it overlaps instead of every site of the engine.
struct CodeSites {
  std::uintptr_t end = 0;  // of the block's used bytes
  std::vector<std::uint32_t> sites;
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
  std::vector<std::uint32_t> free_sites;  // detached slots, reused by attach()
  detail::ReturnAddressIndex by_return_address;
  std::map<std::uintptr_t, detail::CodeSites> sites_by_code;
  std::uintptr_t max_group_span = 0;        // the largest end - start of a group
  detail::CodeSites* last_group = nullptr;  // the group attach() used last, at last_group_start
  std::uintptr_t last_group_start = 0;
  // Sites and table slots unlinked in some generation, so that reclaim() re-arms them without
  // scanning every site and slot of the engine (an index may repeat; re-arming is idempotent).
  std::vector<std::uint32_t> cooling_sites;
  std::vector<std::uint32_t> cooling_slots;
  std::unordered_map<std::uint32_t, std::unique_ptr<detail::StubCode>> open_pics;
  std::vector<detail::Retired> retired;
  std::uint64_t gen = 1;
  EngineStats stats;

  std::string selector_name(std::uint32_t selector) const;
  std::string stub_name(std::string_view kind, std::uint32_t selector) const;
  Result<std::unique_ptr<detail::StubCode>> finish_stub(install::InstalledCode code, debug::FrameInfo frame);
};

}  // namespace jitkit::ic
