// jitkit/install/patch_site.h — a patch site at its installed address: what the patcher edits.
//
// A patch site passes through two types on its way from the assembler to the patcher:
//
//  * x64::PatchSiteRecord (x64/assembler.h): offsets from the start of the code. Before
//    install() the code has no address, so offsets are all the assembler can know.
//  * install::PatchSite (this header): the same site once the code sits at its final address,
//    as pointers into the executable mapping. InstalledCode::site(id) / sites() return it, and
//    every patch::Patcher operation takes it.
//
// There is no third form: the patcher reads this struct as it is. Code that was not emitted by
// the assembler (hand-encoded stubs, tests) fills one in by hand:
//
//   install::PatchSite site{.kind = x64::PatchSiteKind::kCall, .insn = p, .insn_size = 5,
//                           .field = p + 1, .field_size = 4, .pad = p};
#pragma once

#include <cstdint>

#include "jitkit/x64/assembler.h"

namespace jitkit::install {

struct PatchSite {
  x64::PatchSiteKind kind = x64::PatchSiteKind::kCall;
  std::uint8_t* insn = nullptr;   // first byte of the instruction (executable address)
  std::uint8_t insn_size = 0;     // bytes of the whole instruction
  std::uint8_t* field = nullptr;  // the patched field (executable address): a rel32, imm32 or imm64
  std::uint8_t field_size = 0;    // 4 (rel32, imm32) or 8 (imm64)
  // Where the NOP padding in front of the instruction starts (== insn when it needed none). The
  // padding is whole NOP instructions, so a thread is never stopped inside it.
  std::uint8_t* pad = nullptr;
  // kStaticKey only: where the jump goes when the key is enabled (the jump a disabled key keeps
  // aside). nullptr for the other kinds.
  std::uint8_t* key_target = nullptr;

  // The address right after the instruction: where a call's rel32 counts from, and the return
  // address a call leaves.
  std::uintptr_t end_address() const { return reinterpret_cast<std::uintptr_t>(insn) + insn_size; }
};

}  // namespace jitkit::install
