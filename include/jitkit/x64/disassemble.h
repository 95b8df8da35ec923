// jitkit/x64/disassemble.h — x86-64 disassembly for logs, listings and encoder tests.
//
// Turns machine code back into text, one line per instruction:
//
//   0x00007f3a1c000000  48 8b 05 f9 0f 00 00           mov rax, qword ptr [0x00007F3A1C001000] <counter>
//   0x00007f3a1c000007  e8 f4 ff ff ff                 call 0x00007F3A1C000000 <entry>
//   0x00007f3a1c00000c  0f                             (bad) 0x0f
//
// The decoder is Zydis 4 (64-bit mode), linked privately: nothing of Zydis leaks into this header.
// Bytes that do not decode print as `(bad) 0x..` and the listing continues at the next byte, so a
// listing of garbage, of data placed between functions or of a truncated buffer never fails.
//
// A `Symbolizer` turns addresses into names. It is asked about every branch target, every
// RIP-relative memory operand's address and (with `label_lines`) every instruction's own address,
// so that a listing reads `call 0x... <som_send>` and shows `entry:` above the first instruction.
// debug/ builds its listings of installed code with it.
//
// `decode_one` exposes one decoded instruction as plain data (length, mnemonic, operands). The
// encoder's differential test uses it to check that what the assembler emitted means what was
// asked for.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "jitkit/base/result.h"

namespace jitkit::x64 {

// Assembly syntax of the text produced.
enum class Syntax {
  kIntel,  // `mov rax, qword ptr [rbx+0x08]` (Intel order: destination first)
  kAtt,    // `movq 0x08(%rbx), %rax` (GNU as / objdump default)
};

// Address → name, or nullopt when the address has no name. Called synchronously from
// `disassemble` on the calling thread; it may be called several times for one address.
using Symbolizer = std::function<std::optional<std::string>(std::uint64_t address)>;

struct DisassembleOptions {
  Syntax syntax = Syntax::kIntel;
  // Names for branch targets, RIP-relative operands and labels; empty: addresses only.
  Symbolizer symbolizer;
  // Print the instruction's runtime address at the start of each line.
  bool show_address = true;
  // Print the instruction's bytes in hex after the address.
  bool show_bytes = true;
  // Print a `name:` line before an instruction whose address the symbolizer names.
  bool label_lines = true;
};

// One operand as decoded, in a form tests can compare without Zydis.
struct DecodedOperand {
  enum class Kind { kRegister, kMemory, kImmediate, kPointer };
  Kind kind = Kind::kRegister;
  // Operand width in bits as the CPU accesses it (e.g. 8 for `al`, 64 for `qword ptr [...]`).
  std::uint16_t size_bits = 0;

  // kRegister: the register's lower-case name ("rax", "r12d", "ah", "xmm3").
  std::string reg;

  // kMemory: `[base + index*scale + displacement]`, names lower case, empty when absent.
  // RIP-relative operands have base == "rip".
  std::string base;
  std::string index;
  std::uint8_t scale = 0;  // 0 without index, else 1, 2, 4 or 8
  bool has_displacement = false;
  std::int64_t displacement = 0;
  std::string segment;  // "ds"/"ss" implied segments are reported as Zydis decodes them

  // kImmediate: the value (sign-extended when the encoding sign-extends it). For relative
  // branches `is_relative` is set and `target` holds the absolute destination.
  std::int64_t immediate = 0;
  bool is_signed = false;
  bool is_relative = false;
  std::uint64_t target = 0;
};

// One decoded instruction.
struct DecodedInstruction {
  std::uint8_t length = 0;               // bytes, 1..15
  std::string mnemonic;                  // lower case, Zydis spelling ("mov", "jnz", "call")
  std::string text;                      // Intel syntax, as `disassemble` prints it (no address)
  std::uint16_t operand_width = 0;       // effective operand size in bits
  std::uint16_t address_width = 0;       // effective address size in bits
  std::vector<DecodedOperand> operands;  // explicit (visible) operands, in Intel order
};

// The name INTERFACES.md uses.
using DecodedInsn = DecodedInstruction;

// Disassembles `size` bytes at `code`, as if they were located at `runtime_address` (which is used
// to compute branch and RIP-relative targets). Never fails: undecodable bytes become `(bad)` lines.
std::string disassemble(const void* code, std::size_t size, std::uint64_t runtime_address,
                        const DisassembleOptions& options = {});

// Decodes the single instruction at the start of `code` (reading at most `size` bytes).
// Errors: kInvalidArgument when the bytes are not a valid instruction or are truncated; the
// message names the offending bytes.
Result<DecodedInstruction> decode_one(const void* code, std::size_t size, std::uint64_t runtime_address);

}  // namespace jitkit::x64
