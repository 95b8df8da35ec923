// src/patch/patcher.cpp — the three patch paths of jitkit/patch/patcher.h: aligned stores,
// trampoline slots, and the breakpoint-first protocol with its batches.
#include "jitkit/patch/patcher.h"

#include <algorithm>
#include <cstdio>
#include <cstring>
#include <memory>
#include <optional>
#include <string>

#include "jitkit/base/bits.h"
#include "jitkit/base/format.h"
#include "jitkit/code/sync.h"
#include "jitkit/patch/trap.h"
#include "patch/trap_table_p.h"
#include "patch/x86_64/insn_p.h"

namespace jitkit::patch {
namespace {

namespace x86_64 = detail::x86_64;  // the instruction forms of insn_p.h

constexpr std::size_t kCacheLine = 64;

const char* kind_name(x64::PatchSiteKind k) {
  switch (k) {
    case x64::PatchSiteKind::kCall:
      return "call";
    case x64::PatchSiteKind::kJump:
      return "jump";
    case x64::PatchSiteKind::kImm32:
      return "imm32";
    case x64::PatchSiteKind::kImm64:
      return "imm64";
    case x64::PatchSiteKind::kStaticKey:
      return "static key";
  }
  return "?";
}

std::uint32_t load_u32(const std::uint8_t* p) {
  // The field is read through the executable view as a data load; aligned or not, it is the
  // value the patcher (the only writer, under its mutex) stored last.
  std::uint32_t v;
  std::memcpy(&v, p, 4);
  return v;
}

// Where the 5-byte call/jmp rel32 at `insn` (opcode, then the rel32) goes now, as a core would
// compute it: the end of the instruction plus the sign-extended rel32.
std::uintptr_t rel32_destination(const std::uint8_t* insn) {
  return reinterpret_cast<std::uintptr_t>(insn) + 5 +
         static_cast<std::intptr_t>(static_cast<std::int32_t>(load_u32(insn + 1)));
}

}  // namespace

// ---------------------------------------------------------------------------------------------
// Patcher: creation and checks

Result<std::unique_ptr<Patcher>> Patcher::create(code::CodeZone& zone) {
  if (zone.mode() == code::ZoneMode::kToggled) {
    return Error(ErrorCode::kUnsupported,
                 "patch: the code zone is in toggled mode: it has no writable view of live code, "
                 "and re-protecting pages that other threads execute would fault them; create "
                 "the zone dual-mapped (or RWX with allow_rwx) to patch it live");
  }
  if (Status s = code::serialize_all_cores(); !s) {
    return std::move(s).error().context("patch: cross-core serialization is required");
  }
  JITKIT_TRY(install_trap_handler());
  if (!detail::register_patch_range(zone.begin(), zone.end())) {
    return Error(ErrorCode::kOutOfMemory, "patch: too many zones with a Patcher (" +
                                              std::to_string(detail::max_patch_ranges()) + " at most)");
  }
  return std::unique_ptr<Patcher>(new Patcher(zone));
}

Patcher::~Patcher() {
  // Trampolines stay in the zone (freed with it): a site may still route through one, and a
  // thread may be inside one (see "Reclamation" in the header).
  detail::unregister_patch_range(zone_->begin(), zone_->end());
}

Status Patcher::check_call_or_jump(const install::PatchSite& site, bool require_aligned) const {
  if (site.kind != x64::PatchSiteKind::kCall && site.kind != x64::PatchSiteKind::kJump) {
    return Error(ErrorCode::kInvalidArgument,
                 std::string("patch: retarget needs a call or jump site, got a ") + kind_name(site.kind) +
                     " site at " + hex(site.insn));
  }
  if (site.insn == nullptr || site.insn_size != 5 || site.field != site.insn + 1 || site.field_size != 4) {
    return Error(ErrorCode::kInvalidArgument,
                 "patch: " + std::string(kind_name(site.kind)) + " site at " + hex(site.insn) +
                     " is not a 5-byte opcode+rel32 instruction with its field at byte 1");
  }
  if (!zone_->contains(site.insn) || !zone_->contains(site.insn + 4)) {
    return Error(ErrorCode::kInvalidArgument,
                 "patch: site at " + hex(site.insn) + " is not inside the patcher's code zone");
  }
  const std::uint8_t want = site.kind == x64::PatchSiteKind::kCall ? x86_64::kCallRel32 : x86_64::kJmpRel32;
  const std::uint8_t have = __atomic_load_n(site.insn, __ATOMIC_ACQUIRE);
  if (have != want) {
    char buf[160];
    std::snprintf(buf, sizeof buf, "patch: %s site at %s starts with byte 0x%02x, not 0x%02x%s",
                  kind_name(site.kind), hex(site.insn).c_str(), have, want,
                  have == x86_64::kInt3 ? " (a breakpoint is in place)" : "");
    return Error(ErrorCode::kInvalidState, buf);
  }
  if (require_aligned && !is_aligned(reinterpret_cast<std::uintptr_t>(site.field), 4)) {
    const std::uintptr_t f = reinterpret_cast<std::uintptr_t>(site.field);
    const bool crosses = f / kCacheLine != (f + 3) / kCacheLine;
    return Error(ErrorCode::kInvalidArgument,
                 "patch: " + std::string(kind_name(site.kind)) + " site at " + hex(site.insn) +
                     ": rel32 at " + hex(f) + " is not 4-byte aligned" +
                     (crosses ? " and crosses a cache line" : "") +
                     ", so instruction fetch may see a torn target; the aligned-store path "
                     "refuses it (use retarget_by_breakpoint or a PatchBatch)");
  }
  return ok();
}

Status Patcher::check_field(const install::PatchSite& site, x64::PatchSiteKind kind,
                            std::uint8_t size) const {
  if (site.kind != kind || site.field_size != size || site.field == nullptr) {
    return Error(ErrorCode::kInvalidArgument,
                 std::string("patch: expected a ") + kind_name(kind) + " site with a " +
                     std::to_string(size) + "-byte field, got a " + kind_name(site.kind) + " site with a " +
                     std::to_string(site.field_size) + "-byte field at " + hex(site.field));
  }
  if (!zone_->contains(site.field) || !zone_->contains(site.field + size - 1)) {
    return Error(ErrorCode::kInvalidArgument,
                 "patch: field at " + hex(site.field) + " is not inside the patcher's code zone");
  }
  if (!is_aligned(reinterpret_cast<std::uintptr_t>(site.field), size)) {
    return Error(ErrorCode::kInvalidArgument, std::string("patch: ") + kind_name(kind) + " field at " +
                                                  hex(site.field) + " is not " + std::to_string(size) +
                                                  "-byte aligned; one atomic store cannot update it");
  }
  return ok();
}

// ---------------------------------------------------------------------------------------------
// Stores and serialization

Status Patcher::store_field(std::uint8_t* field, std::uint8_t size, std::uint64_t value) {
  std::uint8_t* w = zone_->writable(field);
  if (w == nullptr) {
    return Error(ErrorCode::kInvalidState, "patch: the zone gives no writable alias for " + hex(field) +
                                               " (toggled mode, uncommitted memory, or a forked child)");
  }
  // Release: the new target's code and data (and a trampoline slot) are stored before the field
  // that makes them reachable. The store is one aligned access through the writable view, so
  // instruction fetch through the executable view observes the old or the new field, never a
  // mix (the empirical rule of the header; the field never crosses a cache line).
  if (size == 4) {
    __atomic_store_n(reinterpret_cast<std::uint32_t*>(w), static_cast<std::uint32_t>(value),
                     __ATOMIC_RELEASE);
  } else {
    __atomic_store_n(reinterpret_cast<std::uint64_t*>(w), value, __ATOMIC_RELEASE);
  }
  code::flush_icache(field, size);
  return ok();
}

Status Patcher::serialize() {
  // Hazard: a core may hold the old bytes in its prefetch queue / decoded-icache; the SDM's
  // cross-modifying-code rule (Vol. 3A §8.1.3) requires it to serialize before it may be
  // assumed to execute the new ones.
  ++stats_.serializations;
  return code::serialize_all_cores();
}

// ---------------------------------------------------------------------------------------------
// Trampolines

Result<Patcher::Trampoline> Patcher::trampoline_for(const install::PatchSite& site) {
  const auto key = reinterpret_cast<std::uintptr_t>(site.field);
  if (auto it = trampolines_.find(key); it != trampolines_.end()) return it->second;

  // The slot is in the zone's read-write data area: a plain data word, so storing to it never
  // disturbs a cache line that holds instructions (no self-modifying-code pipeline clears), and
  // its aligned 8-byte store is atomic for the `jmp [rip+disp32]` load (SDM Vol. 3A §8.1.1).
  JITKIT_TRY(code::DataBlock slot_block, zone_->allocate_data(8, 8, code::DataAccess::kReadWrite));
  auto* slot = reinterpret_cast<std::uint64_t*>(slot_block.data);
  JITKIT_TRY(code::CodeBlock block, zone_->allocate(16));
  const auto code = reinterpret_cast<std::uintptr_t>(block.exec);
  auto disp = x86_64::rel32_between(code + 6, reinterpret_cast<std::uintptr_t>(slot));
  if (!disp) {
    return Error(ErrorCode::kOutOfRange,
                 "patch: trampoline at " + hex(code) + " cannot reach its address slot at " + hex(slot));
  }
  if (!x86_64::rel32_between(site.end_address(), code)) {
    return Error(ErrorCode::kOutOfRange,
                 "patch: site at " + hex(site.insn) + " cannot reach its trampoline at " + hex(code));
  }
  // The slot starts at the site's current target, so the trampoline is valid before the slot
  // is first set by apply().
  __atomic_store_n(slot, static_cast<std::uint64_t>(rel32_destination(site.insn)), __ATOMIC_RELEASE);
  std::uint8_t bytes[16];
  std::memset(bytes, x86_64::kInt3, sizeof bytes);
  bytes[0] = 0xFF;  // jmp qword ptr [rip + disp32]  (FF /4, ModRM 00 100 101)
  bytes[1] = 0x25;
  std::memcpy(bytes + 2, &*disp, 4);
  JITKIT_TRY(zone_->write(block.exec, bytes, sizeof bytes));
  // Other threads reach the trampoline as soon as a site's rel32 points at it: serialize now.
  JITKIT_TRY(zone_->make_executable(block, code::Visibility::kOtherThreads));
  ++stats_.serializations;
  ++stats_.trampolines;
  Trampoline t{block.exec, slot};
  trampolines_.emplace(key, t);
  return t;
}

Result<std::uintptr_t> Patcher::route(const install::PatchSite& site, std::uintptr_t target,
                                      SlotStore* slot_store) {
  *slot_store = SlotStore{};
  if (x86_64::rel32_between(site.end_address(), target)) return target;
  JITKIT_TRY(Trampoline t, trampoline_for(site));
  *slot_store = SlotStore{t.slot, static_cast<std::uint64_t>(target)};
  return reinterpret_cast<std::uintptr_t>(t.code);
}

void Patcher::apply(const SlotStore& s) {
  if (s.slot == nullptr) return;
  // Hazard: the rel32 may already point at the trampoline; a thread then loads the slot at any
  // time. One aligned 8-byte release store: the load sees the old or the new target, whole. It
  // precedes any rel32 store that routes the site to the trampoline (program order, TSO).
  __atomic_store_n(s.slot, s.value, __ATOMIC_RELEASE);
  ++stats_.slot_stores;
}

// ---------------------------------------------------------------------------------------------
// Path 1 and 2: aligned stores

Result<RetargetPath> Patcher::retarget(const install::PatchSite& site, const void* target, Sync sync) {
  std::lock_guard<std::mutex> lock(mutex_);
  JITKIT_TRY(check_call_or_jump(site, /*require_aligned=*/true));
  SlotStore slot_store;
  JITKIT_TRY(std::uintptr_t dest, route(site, reinterpret_cast<std::uintptr_t>(target), &slot_store));
  if (zone_->writable(site.field) == nullptr) {
    return Error(ErrorCode::kInvalidState, "patch: no writable alias for the field at " + hex(site.field));
  }
  const auto rel = static_cast<std::uint32_t>(*x86_64::rel32_between(site.end_address(), dest));
  apply(slot_store);
  RetargetPath path = RetargetPath::kDirect;
  if (slot_store.slot != nullptr && load_u32(site.field) == rel) {
    path = RetargetPath::kTrampolineSlot;  // already routed: the slot store was the patch
  } else {
    (void)store_field(site.field, 4, rel);  // cannot fail: writable() checked above
    ++stats_.aligned_stores;
    path = slot_store.slot != nullptr ? RetargetPath::kViaTrampoline : RetargetPath::kDirect;
  }
  if (sync == Sync::kAllCores) JITKIT_TRY(serialize());
  return path;
}

Status Patcher::set_imm32(const install::PatchSite& site, std::int32_t value, Sync sync) {
  std::lock_guard<std::mutex> lock(mutex_);
  JITKIT_TRY(check_field(site, x64::PatchSiteKind::kImm32, 4));
  JITKIT_TRY(store_field(site.field, 4, static_cast<std::uint32_t>(value)));
  ++stats_.aligned_stores;
  if (sync == Sync::kAllCores) JITKIT_TRY(serialize());
  return ok();
}

Status Patcher::set_imm64(const install::PatchSite& site, std::uint64_t value, Sync sync) {
  std::lock_guard<std::mutex> lock(mutex_);
  JITKIT_TRY(check_field(site, x64::PatchSiteKind::kImm64, 8));
  JITKIT_TRY(store_field(site.field, 8, value));
  ++stats_.aligned_stores;
  if (sync == Sync::kAllCores) JITKIT_TRY(serialize());
  return ok();
}

Result<std::uintptr_t> Patcher::current_target(const install::PatchSite& site) const {
  std::lock_guard<std::mutex> lock(mutex_);
  const std::uint8_t op = __atomic_load_n(site.insn, __ATOMIC_ACQUIRE);
  if (site.kind == x64::PatchSiteKind::kStaticKey) {
    if (op == x86_64::kJmpRel32) return rel32_destination(site.insn);
    return site.end_address();  // disabled: falls through
  }
  JITKIT_TRY(check_call_or_jump(site, false));
  const std::uintptr_t dest = rel32_destination(site.insn);
  if (auto it = trampolines_.find(reinterpret_cast<std::uintptr_t>(site.field));
      it != trampolines_.end() && reinterpret_cast<std::uintptr_t>(it->second.code) == dest) {
    return static_cast<std::uintptr_t>(__atomic_load_n(it->second.slot, __ATOMIC_ACQUIRE));
  }
  return dest;
}

PatchStats Patcher::stats() const {
  std::lock_guard<std::mutex> lock(mutex_);
  return stats_;
}

// ---------------------------------------------------------------------------------------------
// Path 3: the breakpoint-first protocol

Result<RetargetPath> Patcher::retarget_by_breakpoint(const install::PatchSite& site, const void* target) {
  PatchBatch batch(*this);
  JITKIT_TRY(batch.retarget(site, target));
  JITKIT_TRY(commit(batch));
  return RetargetPath::kBreakpoint;
}

Status Patcher::set_static_key(const install::PatchSite& site, bool enabled) {
  PatchBatch batch(*this);
  JITKIT_TRY(batch.set_static_key(site, enabled));
  return commit(batch);
}

Status Patcher::replace(std::uint8_t* insn, std::span<const std::uint8_t> old_bytes,
                        std::span<const std::uint8_t> new_bytes) {
  PatchBatch batch(*this);
  JITKIT_TRY(batch.replace(insn, old_bytes, new_bytes));
  return commit(batch);
}

Status PatchBatch::retarget(const install::PatchSite& site, const void* target) {
  if (site.kind != x64::PatchSiteKind::kCall && site.kind != x64::PatchSiteKind::kJump) {
    return Error(ErrorCode::kInvalidArgument,
                 std::string("patch: batch retarget needs a call or jump site, got ") + kind_name(site.kind));
  }
  ops_.push_back(Op{OpKind::kRetarget, site, reinterpret_cast<std::uintptr_t>(target), {}});
  return ok();
}

Status PatchBatch::set_static_key(const install::PatchSite& site, bool enabled) {
  if (site.kind != x64::PatchSiteKind::kStaticKey || site.insn_size != 5 || site.key_target == nullptr) {
    return Error(ErrorCode::kInvalidArgument, "patch: static key site at " + hex(site.insn) +
                                                  " must be a 5-byte kStaticKey site with a key_target");
  }
  ops_.push_back(Op{OpKind::kStaticKey, site, enabled ? 1u : 0u, {}});
  return ok();
}

Status PatchBatch::set_imm32(const install::PatchSite& site, std::int32_t value) {
  ops_.push_back(Op{OpKind::kImm32, site, static_cast<std::uint32_t>(value), {}});
  return ok();
}

Status PatchBatch::set_imm64(const install::PatchSite& site, std::uint64_t value) {
  ops_.push_back(Op{OpKind::kImm64, site, value, {}});
  return ok();
}

Status PatchBatch::replace(std::uint8_t* insn, std::span<const std::uint8_t> old_bytes,
                           std::span<const std::uint8_t> new_bytes) {
  if (insn == nullptr || old_bytes.size() != new_bytes.size() || old_bytes.empty() || old_bytes.size() > 15) {
    return Error(ErrorCode::kInvalidArgument, "patch: replacement at " + hex(insn) +
                                                  " must replace 1..15 bytes by as many (got " +
                                                  std::to_string(old_bytes.size()) + " old, " +
                                                  std::to_string(new_bytes.size()) + " new)");
  }
  Op op{OpKind::kReplace, {}, 0, {}};
  op.edit.insn = insn;
  op.edit.length = static_cast<std::uint8_t>(old_bytes.size());
  std::copy(old_bytes.begin(), old_bytes.end(), op.edit.old_bytes.begin());
  std::copy(new_bytes.begin(), new_bytes.end(), op.edit.new_bytes.begin());
  ops_.push_back(op);
  return ok();
}

// ---------------------------------------------------------------------------------------------
// Commit: a batch is resolved into a plan, the whole plan is validated, and only then is anything
// written — with aligned stores alone, or with one breakpoint round.

namespace {

// An aligned field store of a batch (rel32, imm32 or imm64).
struct PendingStore {
  std::uint8_t* field;
  std::uint8_t size;
  std::uint64_t value;
};

// The edit a static key needs to reach `enabled` (none when it is there already).
Result<std::optional<InstructionEdit>> static_key_edit(const code::CodeZone& zone,
                                                       const install::PatchSite& site, bool enabled) {
  if (!zone.contains(site.insn) || !zone.contains(site.insn + 4)) {
    return Error(ErrorCode::kInvalidArgument,
                 "patch: static key at " + hex(site.insn) + " is not inside the zone");
  }
  InstructionEdit e;
  e.insn = site.insn;
  e.length = 5;
  std::memcpy(e.old_bytes.data(), site.insn, 5);
  const bool is_nop = std::memcmp(e.old_bytes.data(), x86_64::kNop5, 5) == 0;
  if (!is_nop && e.old_bytes[0] != x86_64::kJmpRel32) {
    char buf[128];
    std::snprintf(buf, sizeof buf,
                  "patch: static key at %s holds neither a 5-byte NOP nor a jmp rel32 "
                  "(first byte 0x%02x)",
                  hex(site.insn).c_str(), e.old_bytes[0]);
    return Error(ErrorCode::kInvalidState, buf);
  }
  if (enabled) {
    auto rel = x86_64::rel32_between(site.end_address(), reinterpret_cast<std::uintptr_t>(site.key_target));
    if (!rel) {
      return Error(ErrorCode::kOutOfRange, "patch: static key at " + hex(site.insn) +
                                               " cannot reach its target " + hex(site.key_target));
    }
    e.new_bytes[0] = x86_64::kJmpRel32;
    std::memcpy(e.new_bytes.data() + 1, &*rel, 4);
  } else {
    std::memcpy(e.new_bytes.data(), x86_64::kNop5, 5);
  }
  if (std::memcmp(e.old_bytes.data(), e.new_bytes.data(), 5) == 0) return std::optional<InstructionEdit>();
  return std::optional<InstructionEdit>(e);
}

// A general replacement, checked against the bytes in place (none when old and new agree).
Result<std::optional<InstructionEdit>> checked_replacement(const code::CodeZone& zone,
                                                           const InstructionEdit& e) {
  if (!zone.contains(e.insn) || !zone.contains(e.insn + e.length - 1)) {
    return Error(ErrorCode::kInvalidArgument,
                 "patch: replacement at " + hex(e.insn) + " is not inside the zone");
  }
  if (std::memcmp(e.insn, e.old_bytes.data(), e.length) != 0) {
    return Error(ErrorCode::kInvalidState,
                 "patch: bytes at " + hex(e.insn) +
                     " differ from the expected old instruction (changed by someone else?)");
  }
  if (std::memcmp(e.old_bytes.data(), e.new_bytes.data(), e.length) == 0)
    return std::optional<InstructionEdit>();
  return std::optional<InstructionEdit>(e);
}

// Every store of the batch has a writable alias, checked before any byte is written, so that a
// round never stops half way with int3s left in the code.
Status check_stores_writable(code::CodeZone& zone, const std::vector<PendingStore>& stores) {
  for (const PendingStore& st : stores) {
    if (zone.writable(st.field) == nullptr) {
      return Error(ErrorCode::kInvalidState, "patch: no writable alias for the field at " + hex(st.field));
    }
  }
  return ok();
}

// What a thread that hits the int3 of each edit is made to do: the new instruction if it can be
// emulated (it is what the thread would run a moment later), else the old one. `edits` must be
// sorted by address; overlapping edits and edits without a writable alias are refused.
Result<std::unique_ptr<detail::TrapTable>> trap_table_for(code::CodeZone& zone,
                                                          const std::vector<InstructionEdit>& edits) {
  auto table = std::make_unique<detail::TrapTable>();
  table->entries.reserve(edits.size());
  for (std::size_t i = 0; i < edits.size(); ++i) {
    const InstructionEdit& e = edits[i];
    if (i > 0 && edits[i - 1].insn + edits[i - 1].length > e.insn) {
      return Error(ErrorCode::kInvalidArgument,
                   "patch: edits at " + hex(edits[i - 1].insn) + " and " + hex(e.insn) + " overlap");
    }
    const auto addr = reinterpret_cast<std::uintptr_t>(e.insn);
    auto em = x86_64::emulation_of(e.new_bytes.data(), e.length, addr);
    if (!em) em = x86_64::emulation_of(e.old_bytes.data(), e.length, addr);
    if (!em) {
      return Error(ErrorCode::kUnsupported,
                   "patch: edit at " + hex(e.insn) +
                       ": neither the old nor the new instruction is a call rel32, jmp or NOP, so "
                       "a thread hitting the breakpoint could not be emulated");
    }
    if (zone.writable(e.insn) == nullptr || zone.writable(e.insn + e.length - 1) == nullptr) {
      return Error(ErrorCode::kInvalidState, "patch: no writable alias for the edit at " + hex(e.insn));
    }
    table->entries.push_back({addr, *em});
  }
  return table;
}

// A store into an edited instruction would race the edit's own tail write: refuse it. `edits`
// must be sorted by address.
Status check_stores_outside_edits(const std::vector<PendingStore>& stores,
                                  const std::vector<InstructionEdit>& edits) {
  for (const PendingStore& st : stores) {
    auto it = std::upper_bound(edits.begin(), edits.end(), st.field,
                               [](std::uint8_t* f, const InstructionEdit& e) { return f < e.insn; });
    const bool after_start = it != edits.begin();
    const InstructionEdit* before = after_start ? &*(it - 1) : nullptr;
    const bool in_prev = before != nullptr && st.field < before->insn + before->length;
    const bool reaches_next = it != edits.end() && st.field + st.size > it->insn;
    if (in_prev || reaches_next) {
      return Error(ErrorCode::kInvalidArgument, "patch: the field at " + hex(st.field) +
                                                    " lies inside an instruction the same batch rewrites");
    }
  }
  return ok();
}

// One byte of live code, through the zone's writable view. A single byte store cannot tear: a
// fetching core sees the old byte or the new one.
void write_code_byte(code::CodeZone& zone, std::uint8_t* exec, std::uint8_t byte) {
  __atomic_store_n(zone.writable(exec), byte, __ATOMIC_RELEASE);
}

// Hazard: a thread that hits one of the round's int3s while another SIGTRAP handler is installed
// would not be emulated (and would most likely die).
Status check_trap_handler_is_ours() {
  if (!trap_handler_installed()) {
    return Error(ErrorCode::kInvalidState,
                 "patch: jitkit's SIGTRAP handler was replaced by another one; a thread hitting "
                 "a breakpoint would not be emulated (call patch::install_trap_handler() again "
                 "to chain to the new handler)");
  }
  return ok();
}

}  // namespace

struct Patcher::CommitPlan {
  std::vector<PendingStore> stores;
  std::vector<InstructionEdit> edits;             // sorted by address once the batch is resolved
  std::vector<SlotStore> slot_stores;             // applied only once the whole batch is known to be valid
  std::unique_ptr<detail::TrapTable> trap_table;  // built for the edits, when there are any
};

Status Patcher::commit(PatchBatch& batch, CommitObserver* observer) {
  if (batch.patcher_ != this) {
    return Error(ErrorCode::kInvalidArgument, "patch: batch was built for another Patcher");
  }
  std::lock_guard<std::mutex> lock(mutex_);
  JITKIT_TRY(commit_locked(batch, observer));
  batch.clear();
  return ok();
}

Status Patcher::commit_locked(PatchBatch& batch, CommitObserver* observer) {
  CommitPlan plan;
  JITKIT_TRY(resolve(batch, plan));
  JITKIT_TRY(check_stores_writable(*zone_, plan.stores));
  if (plan.edits.empty()) return apply_stores(plan);
  std::sort(plan.edits.begin(), plan.edits.end(),
            [](const InstructionEdit& a, const InstructionEdit& b) { return a.insn < b.insn; });
  JITKIT_TRY(plan.trap_table, trap_table_for(*zone_, plan.edits));
  JITKIT_TRY(check_stores_outside_edits(plan.stores, plan.edits));
  JITKIT_TRY(check_trap_handler_is_ours());
  // Everything is validated: from here on the batch is applied whole.
  return apply_breakpoint_round(plan, observer);
}

// Inlined into resolve(): the call would cost a measurable share of a batched retarget.
[[gnu::always_inline]] inline Status Patcher::resolve_retarget(const install::PatchSite& site,
                                                               std::uintptr_t target, CommitPlan& plan) {
  JITKIT_TRY(check_call_or_jump(site, /*require_aligned=*/false));
  // A trampoline slot is decided here (its trampoline exists before any rel32 can point at it)
  // and written only when the whole batch is applied.
  SlotStore slot_store;
  JITKIT_TRY(std::uintptr_t dest, route(site, target, &slot_store));
  if (slot_store.slot != nullptr) plan.slot_stores.push_back(slot_store);
  const auto rel = static_cast<std::uint32_t>(*x86_64::rel32_between(site.end_address(), dest));
  if (load_u32(site.field) == rel) return ok();  // already there (or the slot store sufficed)
  if (is_aligned(reinterpret_cast<std::uintptr_t>(site.field), 4)) {
    plan.stores.push_back({site.field, 4, rel});
    return ok();
  }
  InstructionEdit e;
  e.insn = site.insn;
  e.length = 5;
  std::memcpy(e.old_bytes.data(), site.insn, 5);
  e.new_bytes[0] = e.old_bytes[0];
  std::memcpy(e.new_bytes.data() + 1, &rel, 4);
  plan.edits.push_back(e);
  return ok();
}

Status Patcher::resolve(const PatchBatch& batch, CommitPlan& plan) {
  for (const PatchBatch::Op& op : batch.ops_) {
    const install::PatchSite& site = op.site;
    switch (op.kind) {
      case PatchBatch::OpKind::kRetarget:
        JITKIT_TRY(resolve_retarget(site, op.value, plan));
        break;
      case PatchBatch::OpKind::kStaticKey: {
        JITKIT_TRY(std::optional<InstructionEdit> edit, static_key_edit(*zone_, site, op.value != 0));
        if (edit) plan.edits.push_back(*edit);
        break;
      }
      case PatchBatch::OpKind::kImm32:
        JITKIT_TRY(check_field(site, x64::PatchSiteKind::kImm32, 4));
        plan.stores.push_back({site.field, 4, op.value});
        break;
      case PatchBatch::OpKind::kImm64:
        JITKIT_TRY(check_field(site, x64::PatchSiteKind::kImm64, 8));
        plan.stores.push_back({site.field, 8, op.value});
        break;
      case PatchBatch::OpKind::kReplace: {
        JITKIT_TRY(std::optional<InstructionEdit> edit, checked_replacement(*zone_, op.edit));
        if (edit) plan.edits.push_back(*edit);
        break;
      }
    }
  }
  return ok();
}

Status Patcher::apply_stores(const CommitPlan& plan) {
  for (const SlotStore& ss : plan.slot_stores) apply(ss);  // before the rel32s that route to them
  for (const PendingStore& st : plan.stores) {
    (void)store_field(st.field, st.size, st.value);  // cannot fail: check_stores_writable()
    ++stats_.aligned_stores;
  }
  if (!plan.stores.empty() || !plan.slot_stores.empty()) JITKIT_TRY(serialize());
  return ok();
}

Status Patcher::apply_breakpoint_round(const CommitPlan& plan, CommitObserver* observer) {
  for (const SlotStore& ss : plan.slot_stores) apply(ss);  // before the rel32s that route to them

  std::lock_guard<std::mutex> round(detail::breakpoint_round_mutex());
  // Hazard: a thread may hit an int3 as soon as it is written; its emulation must be findable.
  detail::publish_trap_table(plan.trap_table.get());

  // Step 1: int3 over each first byte. From here on, no core that fetches the first byte can
  // run on into the tail; it traps, and the handler emulates.
  for (const InstructionEdit& e : plan.edits) write_code_byte(*zone_, e.insn, x86_64::kInt3);
  if (observer) observer->after_step(1);
  // Step 2: every core serialized, so none still executes the old first byte from its pipeline
  // (a core past the old first byte before step 1 has retired the whole old instruction: an
  // instruction is not interrupted half way).
  if (Status s = serialize(); !s) {
    // Nothing but the int3s was written: restore the old first bytes and give up cleanly.
    for (const InstructionEdit& e : plan.edits) write_code_byte(*zone_, e.insn, e.old_bytes[0]);
    detail::retire_trap_table();
    return std::move(s).error().context("patch: breakpoint round, step 2");
  }
  // Step 3: the tails, and the batch's aligned stores. No core executes a tail now: every
  // path into it goes through an int3. The tail bytes need no atomicity.
  for (const InstructionEdit& e : plan.edits) {
    std::memcpy(zone_->writable(e.insn + 1), e.new_bytes.data() + 1, e.length - 1u);
  }
  for (const PendingStore& st : plan.stores) {
    (void)store_field(st.field, st.size, st.value);  // cannot fail: check_stores_writable()
    ++stats_.aligned_stores;
  }
  if (observer) observer->after_step(3);
  // Step 4: every core serialized, so none holds a stale tail when the first byte reappears.
  Status s4 = serialize();
  // Step 5: the new first bytes. A core now fetches the whole new instruction.
  for (const InstructionEdit& e : plan.edits) write_code_byte(*zone_, e.insn, e.new_bytes[0]);
  if (observer) observer->after_step(5);
  // Step 6: every core serialized, so no core still has the int3 in flight; a thread that
  // trapped before this point and runs its handler later is restarted on the new instruction.
  Status s6 = serialize();
  detail::retire_trap_table();
  ++stats_.breakpoint_commits;
  stats_.breakpoint_edits += plan.edits.size();
  if (!s4) return std::move(s4).error().context("patch: breakpoint round, step 4");
  if (!s6) return std::move(s6).error().context("patch: breakpoint round, step 6");
  return ok();
}

}  // namespace jitkit::patch
