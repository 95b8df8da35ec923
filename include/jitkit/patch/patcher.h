// jitkit/patch/patcher.h — changing machine code while other threads execute it.
//
// A `Patcher` changes installed code in a `code::CodeZone` without stopping the threads that run
// it. It has three paths, cheapest first:
//
//  1. Aligned store. A patch site (emitted by the assembler's *_site emitters) has its patched
//     field — the rel32 of a `call`/`jmp`, an imm32 or an imm64 — naturally aligned, so one
//     atomic store through the zone's writable view changes it. `retarget()`, `set_imm32()`,
//     `set_imm64()`.
//  2. Trampoline slot. When a new call/jump target is beyond ±2 GiB of the site, the site is
//     routed ONCE (one rel32 store) to a per-site trampoline `jmp [rip+slot]` in the zone; later
//     far targets are one atomic 8-byte store into that slot (a plain data load for the CPU).
//  3. Breakpoint first. Bytes that are not one aligned field (a 5-byte NOP that becomes a jump,
//     a misaligned call site, any same-length instruction replacement) are written with the
//     protocol of the kernel's text_poke_bp:
//        1) write int3 over the first byte      2) serialize every core
//        3) write the remaining bytes           4) serialize every core
//        5) write the first byte                6) serialize every core
//     A thread that executes the int3 meanwhile takes SIGTRAP; jitkit's handler (see trap.h)
//     makes it behave as if it had run the new instruction (call, jmp or nop) — or the old one
//     when only that one can be emulated. `PatchBatch` applies many edits with the same 3
//     serializations in total, whatever their number.
//
//   x64::Assembler a;  ...  auto call = a.call_site(x64::abs(&old_fn));  auto key = a.static_key(l, false);
//   JITKIT_TRY(auto code, install::install(a, *zone, {.visibility = code::Visibility::kOtherThreads}));
//   JITKIT_TRY(auto patcher, patch::Patcher::create(*zone));
//   JITKIT_TRY(patcher->retarget(code.site(call), &new_fn));    // path 1 or 2
//   JITKIT_TRY(patcher->set_static_key(code.site(key), true));  // path 3
//   JITKIT_TRY(quiescence.synchronize());  // then old_fn's code may be freed (quiescence.h)
//
// ---- Cross-modifying code: what is guaranteed and what is relied upon --------------------
//  * Intel SDM Vol. 3A §8.1.3 "Handling Self- and Cross-Modifying Code" (chapter "Multiple-
//    Processor Management"; renumbered in recent editions): when one processor writes code that
//    another executes, the executing processor must execute a serializing instruction between
//    the write and its execution of the new code (the SDM's "cross-modifying code" algorithm);
//    the SDM does not define what a processor executes if it fetches the bytes while they
//    change. The AMD64 APM Vol. 2 (chapter "Memory System", cross-modifying code) states the
//    same requirement for AMD processors. jitkit's serializing operation is
//    membarrier(MEMBARRIER_CMD_PRIVATE_EXPEDITED_SYNC_CORE) (code/sync.h): the kernel makes
//    every CPU running a thread of this process execute a core-serializing instruction before
//    it returns to user mode. Steps 2, 4 and 6 above and the `Sync::kAllCores` of the store
//    path are that operation.
//  * The breakpoint protocol stays within those rules for everything but the single-byte int3
//    store: a core that fetches the first byte sees either the old byte or 0xCC — a one-byte
//    store cannot tear — and while the first byte is 0xCC no core can execute a mix of old and
//    new tail bytes, because none gets past the int3. After step 4 every core is serialized, so
//    when step 5 exposes the new first byte, the tail it fetches is the new one.
//  * The aligned store path is NOT architecturally documented. The SDM guarantees that an
//    aligned 4-byte (8-byte) store is atomic for DATA accesses (§8.1.1), and says nothing of
//    instruction fetch racing a store. The evidence is empirical (docs/background.md tells how
//    jitkit came to rely on it): in the cover letter of "[PATCH v3 0/6] Static calls" (Josh
//    Poimboeuf, Jan 2019, quoted in Nadav Amit's reply), writing a call's rel32 that does not
//    cross a cache line was observed atomically by instruction fetch (crashes on Nehalem when it
//    crossed a line, none otherwise), "BUT, the SDM doesn't document this approach", and CPU
//    vendors were asked to confirm it. (That v3 design wrote the rel32 directly; the static_call
//    code later merged for x86 patches through text_poke_bp, i.e. our path 3.) jitkit relies on
//    that observation, made stronger by alignment: a naturally aligned 4-byte field never
//    crosses a cache line nor a 16-byte fetch block. The imm64 store extends the same
//    observation to an aligned 8-byte field (also one cache line, one fetch block); the kernel
//    does not rely on that case. The stress tests (tests/patch) check it on the machine at hand;
//    they cannot prove it for every CPU. Every site is refused by the store path unless its field
//    is naturally aligned.
//  * The trampoline slot is read by `jmp [rip+disp32]` as a data load: its aligned 8-byte store
//    is atomic by §8.1.1, architecturally.
//
// ---- Memory model: what a patcher may assume ----------------------------------------------
//  * One patcher at a time per site. `Patcher` serializes its own calls with a mutex, and all
//    breakpoint-protocol commits of the process with one global mutex (the trap table is
//    process-wide). Two `Patcher`s over the same zone are allowed; two patchers editing the same
//    site at once are not meaningful and are the caller's bug.
//  * No Patcher function is async-signal-safe (they lock mutexes, allocate and make system
//    calls). The trap handler is async-signal-safe: it reads atomics and the interrupted
//    thread's registers and stack only.
//  * Threads that run patchable code must not block SIGTRAP nor set it to SIG_IGN: the kernel
//    resets a blocked or ignored synchronous SIGTRAP to SIG_DFL and kills the process
//    (force_sig). A library that installs its own SIGTRAP handler after jitkit's must chain to
//    it; `Patcher` checks before every breakpoint commit that jitkit's handler is still the
//    installed one and refuses with kInvalidState otherwise.
//
// ---- Memory model: what an executing thread sees -------------------------------------------
//  * A call/jump through a retargeted site reaches the old target or the new one, never a torn
//    address: before the patch call returns, possibly either; after a patch with
//    `Sync::kAllCores` has returned, every core's NEXT fetch of the site sees the new field.
//  * A thread hitting a breakpoint-protocol site behaves as if it had run the old instruction
//    or the new one; never a mix.
//  * Data written before a patch (e.g. the new target's code and data) is visible to a thread
//    that reaches the new target: the new code must be installed (CodeZone::make_executable
//    with kOtherThreads) before it is made reachable by a patch — the patch itself is the
//    publication (a release store through the writable view, followed by the serialization).
//
// ---- Reclamation of an old target ------------------------------------------------------------
//  When retarget() returns (with Sync::kAllCores), no core will NEWLY fetch the old field. But a
//  thread may already be inside the old target, or have fetched the old rel32 and be about to
//  land there, or be preempted with a return address into it. Rule: the caller may free an old
//  target only after (a) the patch returned with Sync::kAllCores and (b) every thread that could
//  have been executing the old target has passed a quiescent state the caller defines (e.g. each
//  VM thread has returned to its interpreter loop / safepoint since the patch). jitkit provides
//  (a); for (b), QuiescenceDomain (quiescence.h) implements the rule when threads report their
//  quiescent states (the library cannot know by itself when a thread has left JIT code).
//  Trampolines are never freed by the Patcher (a site may still route through one): they live
//  as long as the zone.
//
// ---- What ThreadSanitizer checks -------------------------------------------------------------
//  TSan cannot see through generated code: it sees neither the code's instruction fetches nor
//  the trap handler's effect on the interrupted thread. Under the tsan preset the stress tests
//  check the patcher's own bookkeeping: its mutexes, statistics and trampoline map, the trap
//  table's publication and retirement (atomics, in-flight count), the SIGTRAP handler's atomics,
//  and the counting targets (C++) that JIT code calls from several threads.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <mutex>
#include <span>
#include <unordered_map>
#include <vector>

#include "jitkit/base/result.h"
#include "jitkit/code/code_zone.h"
#include "jitkit/install/patch_site.h"
#include "jitkit/x64/assembler.h"

namespace jitkit::patch {

// Every operation takes the site as install::PatchSite (install/patch_site.h): what
// install::InstalledCode::site() returns for code from the assembler, or a struct filled in by
// hand for hand-encoded code. The patcher never needs the offsets of x64::PatchSiteRecord.

// Whether a patch waits until every core is serialized (see the cross-modifying-code notes).
enum class Sync : std::uint8_t {
  kAllCores,  // store, then membarrier SYNC_CORE: no core newly fetches the old field afterwards
  kNone,      // store only: other cores see the new field "soon" (cache coherence), unordered
};

// Which path a retarget took (returned for observability and tests).
enum class RetargetPath : std::uint8_t {
  kDirect,          // one aligned rel32 store
  kTrampolineSlot,  // one aligned 8-byte store into the site's existing trampoline slot
  kViaTrampoline,   // slot written, then the rel32 routed to the trampoline (first far target)
  kBreakpoint,      // breakpoint-first protocol (misaligned site)
};

// Counters since the Patcher was created.
struct PatchStats {
  std::uint64_t aligned_stores = 0;      // rel32/imm32/imm64 stores
  std::uint64_t slot_stores = 0;         // trampoline slot stores
  std::uint64_t trampolines = 0;         // trampolines created
  std::uint64_t breakpoint_commits = 0;  // breakpoint-protocol rounds (3 serializations each)
  std::uint64_t breakpoint_edits = 0;    // instructions rewritten by those rounds
  std::uint64_t serializations = 0;      // membarrier SYNC_CORE calls made
};

// A replacement of one instruction by another of the same length, for the breakpoint path.
// The edited bytes must be exactly one instruction of the old code (no thread may be stopped
// between instructions inside the range), and the old or the new instruction must be an
// emulatable call rel32, jmp rel32/rel8 or NOP.
struct InstructionEdit {
  std::uint8_t* insn = nullptr;              // executable address
  std::uint8_t length = 0;                   // 1..15
  std::array<std::uint8_t, 15> old_bytes{};  // expected current bytes (checked before writing)
  std::array<std::uint8_t, 15> new_bytes{};
};

class Patcher;

// Many edits applied with one breakpoint round (3 serializations in total) or, when every edit
// is an aligned store, with the stores and one serialization. Build it, then Patcher::commit().
// Not thread-safe; a batch belongs to one patcher thread.
class PatchBatch {
 public:
  explicit PatchBatch(Patcher& patcher) : patcher_(&patcher) {}

  // Queue a retarget: an aligned store if the site's field is aligned and the target is in
  // reach, else a breakpoint edit (the trampoline slot, if needed, is written at commit).
  Status retarget(const install::PatchSite& site, const void* target);
  Status set_static_key(const install::PatchSite& site, bool enabled);
  Status set_imm32(const install::PatchSite& site, std::int32_t value);
  Status set_imm64(const install::PatchSite& site, std::uint64_t value);
  // Queue a general same-length replacement (see InstructionEdit).
  Status replace(std::uint8_t* insn, std::span<const std::uint8_t> old_bytes,
                 std::span<const std::uint8_t> new_bytes);

  std::size_t size() const { return ops_.size(); }
  bool empty() const { return ops_.empty(); }
  void clear() { ops_.clear(); }

 private:
  friend class Patcher;
  enum class OpKind : std::uint8_t { kRetarget, kStaticKey, kImm32, kImm64, kReplace };
  struct Op {
    OpKind kind;
    install::PatchSite site;
    std::uint64_t value;   // target address, key state, or immediate
    InstructionEdit edit;  // kReplace
  };
  Patcher* patcher_;
  std::vector<Op> ops_;
};

// Observes the breakpoint protocol between its steps (tests and demos use it to run the code
// while the int3 is in place). Called on the patcher thread with no lock a trap needs held.
class CommitObserver {
 public:
  virtual ~CommitObserver() = default;
  // step: 1 after the int3s are written, 3 after the tails, 5 after the first bytes (each
  // before the serialization that follows it).
  virtual void after_step(int step) = 0;
};

class Patcher {
 public:
  // A patcher for code in `zone`, which must outlive it. Installs jitkit's SIGTRAP handler
  // (trap.h) and registers SYNC_CORE membarrier. Fails with kUnsupported when the zone has no
  // writable view of live code (ZoneMode::kToggled: flipping protections would fault the threads
  // executing it) or when membarrier SYNC_CORE is unavailable, and with kOutOfMemory when the
  // process already has 1024 zones with a Patcher (the trap handler's fixed table).
  static Result<std::unique_ptr<Patcher>> create(code::CodeZone& zone);
  ~Patcher();
  Patcher(const Patcher&) = delete;
  Patcher& operator=(const Patcher&) = delete;

  // Path 1/2: new target for a kCall/kJump site. In reach: one rel32 store. Out of reach: via
  // the site's trampoline. Refuses (kInvalidArgument, saying why) a site whose rel32 is not
  // 4-byte aligned or whose bytes are not E8/E9 rel32 — use retarget_by_breakpoint() for those.
  Result<RetargetPath> retarget(const install::PatchSite& site, const void* target,
                                Sync sync = Sync::kAllCores);
  Status set_imm32(const install::PatchSite& site, std::int32_t value, Sync sync = Sync::kAllCores);
  Status set_imm64(const install::PatchSite& site, std::uint64_t value, Sync sync = Sync::kAllCores);

  // Path 3: breakpoint protocol. Works for any call/jmp rel32 site, aligned or not.
  Result<RetargetPath> retarget_by_breakpoint(const install::PatchSite& site, const void* target);
  // Turns a static key on (`jmp rel32` to site.key_target) or off (5-byte NOP).
  Status set_static_key(const install::PatchSite& site, bool enabled);
  // General same-length replacement of one instruction.
  Status replace(std::uint8_t* insn, std::span<const std::uint8_t> old_bytes,
                 std::span<const std::uint8_t> new_bytes);

  // Applies a batch; empties it on success. Every operation is validated before anything is
  // written, so a refused batch changes nothing a thread can observe (a trampoline may have been
  // created for a far target; it stays unused).
  Status commit(PatchBatch& batch, CommitObserver* observer = nullptr);

  // The current call/jump target of a site as code would compute it (follows the trampoline).
  Result<std::uintptr_t> current_target(const install::PatchSite& site) const;

  PatchStats stats() const;
  code::CodeZone& zone() const { return *zone_; }

 private:
  friend class PatchBatch;
  explicit Patcher(code::CodeZone& zone) : zone_(&zone) {}

  struct Trampoline {
    std::uint8_t* code;   // jmp [rip+disp32] (executable address)
    std::uint64_t* slot;  // the 8-byte address slot (executable-side address)
  };

  Status check_call_or_jump(const install::PatchSite& site, bool require_aligned) const;
  Status check_field(const install::PatchSite& site, x64::PatchSiteKind kind, std::uint8_t size) const;
  // A trampoline slot store decided by route() and applied by the caller once nothing else can
  // fail (so that a refused patch or batch changes nothing a thread can observe).
  struct SlotStore {
    std::uint64_t* slot = nullptr;
    std::uint64_t value = 0;
  };
  // Where the site's rel32 must point to reach `target`: the target itself when in reach, else
  // the site's trampoline (created on first use), whose slot must then be set to `target`.
  Result<std::uintptr_t> route(const install::PatchSite& site, std::uintptr_t target, SlotStore* slot_store);
  void apply(const SlotStore& s);
  Result<Trampoline> trampoline_for(const install::PatchSite& site);
  Status store_field(std::uint8_t* field, std::uint8_t size, std::uint64_t value);
  Status serialize();

  // commit() under the mutex, in phases: every operation is resolved into a CommitPlan (aligned
  // stores, instruction edits, trampoline slot stores), the whole plan is validated, and only
  // then is it applied, with the stores alone or with one breakpoint round (patcher.cpp).
  struct CommitPlan;
  Status commit_locked(PatchBatch& batch, CommitObserver* observer);
  Status resolve(const PatchBatch& batch, CommitPlan& plan);
  Status resolve_retarget(const install::PatchSite& site, std::uintptr_t target, CommitPlan& plan);
  Status apply_stores(const CommitPlan& plan);
  Status apply_breakpoint_round(const CommitPlan& plan, CommitObserver* observer);

  code::CodeZone* zone_;
  mutable std::mutex mutex_;
  std::unordered_map<std::uintptr_t, Trampoline> trampolines_;  // by site field address
  std::vector<code::CodeBlock> trampoline_blocks_;
  PatchStats stats_;
};

}  // namespace jitkit::patch
