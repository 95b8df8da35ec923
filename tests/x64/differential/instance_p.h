// The differential encoding test's model: one `Instance` is one instruction as the test means it
// (mnemonic and operands, independent of jitkit's types), emitted once through jitkit's Assembler
// and once as Intel-syntax text for GNU as. A `Batch` collects thousands of instances into one
// Assembler and one GNU as source, then `Batch::check` compares, instance by instance:
//
//   1. jitkit's bytes == GNU as' bytes (exactly; the only documented exceptions are listed in
//      docs/encoding-verification.md and marked `Instance::gnu_differs_ok`);
//   2. Zydis' decoding of jitkit's bytes == the intended instruction: mnemonic, every operand
//      (register names, hence widths; memory base/index/scale/displacement and size; immediate
//      values; branch and RIP-relative targets), and the length;
//   3. the number of bytes the Assembler appended for the instance == the decoded length (one
//      call, exactly one instruction), for batches without relaxable jumps.
//
// Instances are delimited in both byte streams by decoding them with Zydis one instruction at a
// time: every instance is exactly one instruction (or declared raw data of known size), so the
// n-th decoded instruction of each stream belongs to the n-th instance.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "jitkit/x64/assembler.h"

namespace jitkit::x64::test_util {

// A memory operand as the test means it.
struct MemSpec {
  static constexpr int kNone = -1;
  int size_bytes = 0;      // 1, 2, 4, 8, 16 (printed as byte/word/dword/qword/xmmword ptr)
  int base = kNone;        // hardware number, kNone
  int index = kNone;       // hardware number, kNone
  int scale = 1;           // 1, 2, 4, 8 (meaningful with an index)
  std::int64_t disp = 0;   // displacement; for rip_label: added to the label's address
  bool rip_label = false;  // [rip + label + disp]
  Label label;             // rip_label: the label (bound in the same batch)
  std::string label_name;  // rip_label: its name in the GNU source
  // Host-address operands (Assembler `abs()`), in the form the Assembler must pick:
  enum class Host {
    kNone,
    kRip,    // [rip + symbol]            near the code
    kAbs,    // [symbol] as disp32        fits in 32 bits sign-extended
    kMoffs,  // movabs acc, [symbol]      64-bit moffs (mov al/ax/eax/rax only)
    kSlot,   // [rip + slot], slot = host address (call/jmp); host_symbol names the slot
  };
  Host host = Host::kNone;
  std::string host_symbol;  // linker symbol (kSlot: the slot's, defined after our encode)
  std::uint64_t host_address = 0;
};

struct OpSpec {
  enum class Kind { kReg, kMem, kImm, kLabel };
  Kind kind = Kind::kReg;
  // kReg: the register's Intel name ("rax", "r9b", "ah", "xmm3") and width in bits.
  std::string reg;
  int bits = 0;
  // kMem
  MemSpec mem;
  // kImm: the value; compared with the decoded immediate modulo 2^imm_compare_bits.
  std::int64_t imm = 0;
  int imm_compare_bits = 64;
  // kLabel: branch target; or, with host_symbol set, a host address (call/jmp rel32).
  Label label;
  std::string label_name;
  std::string host_symbol;
  std::uint64_t host_address = 0;
  // kImm: printed instead of the value when set (e.g. "offset jk_h3" for movabs r64, symbol).
  std::string text_override;
};

// Operand builders.
OpSpec reg_op(const std::string& name, int bits);
OpSpec mem_op(const MemSpec& m);
OpSpec imm_op(std::int64_t value, int compare_bits);
OpSpec label_op(Label l, const std::string& name);

struct Instance {
  enum class Kind { kInsn, kBind, kData };
  Kind kind = Kind::kInsn;
  // kInsn: what GNU as is given and what Zydis must decode.
  std::string prefix;          // "lock" or empty (printed before the mnemonic)
  std::string gnu_prefix;      // GNU as pseudo-prefix ("{disp32}"), text only
  std::string mnemonic;        // Intel/GNU spelling ("jne", "movabs", "cmovne")
  std::string zydis_mnemonic;  // Zydis spelling when it differs ("jnz", "mov", "cmovnz")
  std::vector<OpSpec> ops;
  bool operands_commute = false;   // xchg: Zydis may report the two operands swapped
  bool zydis_operandless = false;  // Zydis decodes it without operands (xchg rax, rax = nop)
  bool gnu_differs_ok = false;     // documented exception: compare Zydis semantics only
  // kBind: the label bound here. kData: raw bytes (filler), same on both sides.
  Label label;
  std::string label_name;
  std::vector<std::uint8_t> data;
  // Filled by Batch: the Assembler's buffer offsets around the emission.
  std::size_t buffer_begin = 0;
  std::size_t buffer_end = 0;

  std::string text() const;  // the GNU as line
};

// One mismatch, reported with everything needed to reproduce it.
struct Mismatch {
  std::string batch;
  std::string text;    // the instruction as given to GNU as
  std::string ours;    // our bytes, hex
  std::string gnu;     // GNU as' bytes, hex
  std::string reason;  // what differs
};

class Batch {
 public:
  explicit Batch(std::string name, bool has_relaxable_jumps = false);

  Assembler& assembler() { return a_; }
  const std::string& name() const { return name_; }

  // Emits one instance: `emit` calls exactly one Assembler instruction method.
  void add(Instance instance, const std::function<void(Assembler&)>& emit);
  // Binds a label here (both sides); returns it.
  Label bind_new(const std::string& name);
  void bind(Label l, const std::string& name);
  Label new_label(const std::string& name);
  // Raw filler bytes (both sides).
  void data(const std::vector<std::uint8_t>& bytes);

  std::size_t instruction_count() const { return insn_count_; }

  // Encode at `base` (and link GNU's side there, with `symbols` defined) instead of the default
  // small address; needed for host-address operands.
  void set_base(std::uint64_t base) {
    base_ = base;
    link_ = true;
  }
  void define_symbol(const std::string& name, std::uint64_t value) { symbols_.push_back({name, value}); }
  // Adds an instance whose bytes come from the emission of the NEXT instance (host-address
  // sequences like `mov r11, imm64; mov [r11], eax` are one Assembler call, two instructions).
  void add_leading(Instance instance);

  // Assembles both sides and compares (see the file comment). Mismatches are appended to `out`.
  // Returns the number of instruction instances compared; a batch-level failure (assembler error,
  // GNU as rejecting the source) is reported as a mismatch with an empty text.
  std::size_t check(std::vector<Mismatch>* out) const;

 private:
  std::string name_;
  bool has_relaxable_jumps_;
  std::uint64_t base_ = 0x10000;
  bool link_ = false;
  std::vector<std::pair<std::string, std::uint64_t>> symbols_;
  Assembler a_;
  std::vector<Instance> instances_;
  std::size_t insn_count_ = 0;
};

// Register names (Intel syntax) by width and hardware number.
const std::string& gp_name(int bits, int id, bool high8 = false);
std::string xmm_name(int id);

// Hex bytes "48 89 c8".
std::string hex(const std::uint8_t* p, std::size_t n);

}  // namespace jitkit::x64::test_util
