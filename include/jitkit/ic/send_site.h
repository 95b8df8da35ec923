// jitkit/ic/send_site.h — a send site in generated code and the states it goes through.
//
// A send site is two patchable instructions, emitted by Engine::emit_send():
//
//     mov  <selector reg>, imm32      ; field 4-byte aligned (Assembler::mov_imm32_site)
//     call rel32                      ; field 4-byte aligned (Assembler::call_site)
//
// and it moves through the states of Cog-style send caching (the miss handler does each step):
//
//   kUnlinked     imm32 = selector | kUnlinkedMark, call -> the engine's miss stub.
//   kMonomorphic  imm32 = the expected class tag,   call -> the method's checked entry, which
//                 loads the receiver's tag, compares it with the register and jumps to the miss
//                 stub on a mismatch (stubs.h).
//   kPolymorphic  imm32 unchanged,                   call -> the site's closed PIC stub (up to
//                 EngineOptions::max_pic_cases tag compares, each jumping to an unchecked entry).
//   kMegamorphic  imm32 unchanged,                   call -> the selector's open PIC stub, which
//                 probes the engine's (tag, selector) -> entry table.
//   A selector the VM's lookup does not understand goes to the VM's not-understood handler
//   through the not-understood stub; the site itself stays as it was.
//
// After every transition the miss handler finishes the interrupted send with the original
// receiver and arguments, as if the cache had hit.
//
// ---- Why a thread racing a transition still runs the right method ---------------------------
// Every write goes through the code zone's write view, with the patcher's aligned single stores
// (each field is naturally aligned, so it changes with one store and is never fetched torn). The
// two fields change separately, so a thread executing the site while it is rewritten may see the
// new immediate with the old call target, or the old immediate with the new call target — or it
// may have executed the `mov` before the rewrite and the `call` after it (preempted in between).
// Each mixture still reaches a correct method or the miss handler:
//   * Tags and selectors are below 2^31 (kMaxClassTag, kMaxSelector), and an unlinked site loads
//     the selector with the top bit set (kUnlinkedMark). That value never equals a receiver's
//     tag, so a checked entry reached with it (old immediate, new target) always misses.
//   * New tag with the old target (the miss stub): the miss handler identifies the site by its
//     return address, not by the register, and completes the send.
//   * Monomorphic -> polymorphic -> megamorphic change only the call target; the PIC and open
//     PIC stubs load the receiver's tag themselves and ignore the register.
//   * The checked entry re-validates the tag: a thread that loaded tag T and lands on a method's
//     checked entry runs that method only if its receiver really has tag T and the site was
//     linked to that method for T.
//   * The only store that replaces one tag by another goes through the unlinked state, and a
//     site that was unlinked (invalidation, flush) cools: it is not linked again before a grace
//     period (patch::QuiescenceDomain) has passed, so no thread still holds the old tag between
//     its `mov` and its `call` when the immediate gets a new tag. Meanwhile its misses are
//     dispatched without being cached.
//
// Class tags are 32-bit class indices rather than pointers, so caches survive a moving GC.
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

#include "jitkit/x64/assembler.h"

namespace jitkit::ic {

// Class tags and selectors the engine accepts: 0 .. 2^31-1.
inline constexpr std::uint32_t kMaxClassTag = 0x7FFFFFFFu;
inline constexpr std::uint32_t kMaxSelector = 0x7FFFFFFFu;
// Set in the immediate of an unlinked site (selector | kUnlinkedMark): never a class tag.
inline constexpr std::uint32_t kUnlinkedMark = 0x80000000u;

// A send site emitted into an assembler, not yet installed. Pass it, with the InstalledCode,
// to Engine::attach() before the code runs.
struct SendSite {
  x64::PatchSiteId imm;   // the mov imm32
  x64::PatchSiteId call;  // the call rel32
  std::uint32_t selector = 0;
};

// An attached send site of an engine.
struct SiteId {
  std::uint32_t index = 0;
  constexpr bool operator==(const SiteId&) const = default;
};

enum class SiteKind : std::uint8_t { kUnlinked, kMonomorphic, kPolymorphic, kMegamorphic };

// One cached (tag -> method) pair of a monomorphic or polymorphic site.
struct SiteCase {
  std::uint32_t tag = 0;
  std::uintptr_t checked_entry = 0;
  std::uintptr_t unchecked_entry = 0;
};

// What Engine::site() reports.
struct SiteInfo {
  SiteKind kind = SiteKind::kUnlinked;
  std::uint32_t selector = 0;
  // kMonomorphic: one; kPolymorphic: the PIC's cases in order; otherwise empty.
  std::vector<SiteCase> cases;
  // Where the call goes now: miss stub, checked entry, PIC stub or open PIC stub.
  std::uintptr_t call_target = 0;
  // The site's return address (how the miss handler finds it).
  std::uintptr_t return_address = 0;
  // Unlinked by an invalidation, waiting for a grace period before it may be linked again.
  bool cooling = false;
};

// "unlinked", "monomorphic", "polymorphic", "megamorphic".
const char* kind_name(SiteKind kind);

}  // namespace jitkit::ic
