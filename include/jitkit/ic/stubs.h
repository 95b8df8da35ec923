// jitkit/ic/stubs.h — the code behind send sites: method entries, the miss and not-understood
// stubs, closed PICs and open PICs (megamorphic stubs).
//
// Register names below are those of the engine's CallingConvention (engine.h): `receiver`,
// `args...`, `tag` (the receiver's class tag, written by the VM's tag loader), `selector` (the
// send site's immediate) and `scratch`. On entry to any of this code [rsp] holds the return
// address into the send site, and rsp+8 is 16-byte aligned (the System V rule at a call).
//
// Method entries (Engine::emit_method_entry, emitted into the VM's method):
//       miss:      jmp <miss stub>
//       checked:   <load receiver's tag into tag>
//                  cmp tag, selector          ; the tag a monomorphic site loaded
//                  jne miss
//       unchecked: ... the method body ...
//   A monomorphic site calls `checked`; PICs, open PICs and the miss handler jump to
//   `unchecked`, having checked the tag themselves.
//
// Miss stub (one per engine; "ic_miss:<engine name>"): saves receiver and argument registers,
// loads the tag, and calls the engine (C++) with the site's return address, which does the
// transition under the engine lock and answers the entry to continue at. The stub restores the
// registers and jumps there: the send completes as if the cache had hit.
//
// Not-understood stub (one per engine; "ic_not_understood:<engine name>"): the miss handler
// jumps to it when the VM's lookup finds no method; it calls the VM's not-understood handler
// with the receiver, the selector and the argument registers and returns its answer (in rax)
// to the send site.
//
// Closed PIC ("pic:<selector>", one per polymorphic site):
//       <load receiver's tag into tag>
//       cmp tag, imm32 (case 0) ; je 0f
//       ...                      (max_pic_cases compares; unused cases hold kEmptyCaseTag)
//       jmp <miss stub>
//   0:  jmp <unchecked entry of case 0>
//       ...                      (unused cases jump to the miss stub)
//   The compares come first so that reaching case k takes k not-taken branches and one taken
//   one. A case is added in place: its jump target, then its tag (one batch, one
//   serialization). kEmptyCaseTag is above kMaxClassTag, so an unused or half-written case never
//   matches a receiver.
//
// Open PIC ("megamorphic:<selector>", one per selector, shared by its megamorphic sites):
//   hashes (tag, selector) into the engine's table (a power-of-two number of buckets of two
//   16-byte slots {key = selector << 32 | tag, entry}), compares each slot's key and jumps
//   through the matching slot's entry, else jumps to the miss stub, which fills a slot. A slot
//   is published by storing its entry, then its key (x86 keeps stores in order and loads in
//   order, so a thread that matches the key loads the entry stored before it). A slot that is
//   cleared or evicted cools, like a site, until a grace period has passed.
//
// ---- No return address into a stub -----------------------------------------------------------
// PIC and open-PIC stubs are entered by the send site's call (the return address points into
// the site's method, not into the stub) and leave by jumps: they never call, so no frame ever
// returns into them. They are freed (after a PIC is replaced, a site unlinked, ...) once a grace
// period of the engine's QuiescenceDomain has passed — then no thread can still be executing
// them. The miss and not-understood stubs do call (into C++), so frames return into them; they
// live as long as the engine. Method code handed to Engine::retire() is freed after a grace
// period too, which is safe only if the VM's threads report quiescent states where they have no
// frame in generated code (e.g. at the top of the interpreter loop).
#pragma once

#include <cstddef>
#include <cstdint>

#include "jitkit/x64/operands.h"

namespace jitkit::ic {

// The most cases a closed PIC may have (EngineOptions::max_pic_cases), and the default (Cog's).
inline constexpr std::size_t kMaxPicCases = 16;
inline constexpr std::size_t kDefaultPicCases = 6;

// The tag of an unused PIC case: above kMaxClassTag, so it never matches a receiver.
inline constexpr std::uint32_t kEmptyCaseTag = 0xFFFFFFFFu;

// The entries Engine::emit_method_entry() bound in the VM's assembler. After install, their
// addresses (InstalledCode::label_address) form the ic::Method the VM's lookup answers.
struct MethodEntryLabels {
  x64::Label checked;
  x64::Label unchecked;
};

}  // namespace jitkit::ic
