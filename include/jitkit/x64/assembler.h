// jitkit/x64/assembler.h — the x86-64 assembler: typed instructions into a byte buffer.
//
//   Assembler a;
//   a.allow_scratch(r11);                              // may be clobbered to reach far host data
//   a.mov(dword_ptr(abs(&status)), 0xdeadbeef);        // host data anywhere
//   a.mov(eax, 42);
//   a.ret();
//   JITKIT_TRY(auto code, install::install(a, zone));  // relocate, copy, make executable
//   int r = code.entry<int()>()();
//
// Instructions are methods named after their mnemonic (`and_`, `or_`, `xor_`, `not_` carry an
// underscore because the bare words are C++ operators). Overloads exist only for operand
// combinations the hardware has with matching widths, so `mov(rax, ecx)` does not compile. What
// the types cannot express (a memory operand whose size disagrees with the register, an immediate
// that does not fit, rsp as an index, `ah` beside a REX-only register, ...) is a sticky error:
// the first one is kept, names the instruction and its operands, e.g.
//   "mov qword [rbp+0x10], imm 0x123456789: immediate does not fit in 32 bits sign-extended",
// and `encode()` / `install()` refuse the code. No instruction is ever dropped silently.
//
// Encoding choices (the shortest form, as GNU as -O1 picks): imm8 and accumulator forms of ALU
// instructions; `mov r64, imm` becomes `mov r32, imm32` when the value fits in 32 unsigned bits,
// `mov r64, simm32` when it fits signed, and `mov r64, imm64` otherwise (`movabs` forces imm64).
// Register-register forms use the "store" opcodes (89, 01, ...), as GNU as does.
//
// Jumps to labels (jmp, jcc) are short or near automatically: a backward jump whose distance is
// already known is emitted directly; every other jump is kept as a relaxable item, starts short
// and grows to near at encode time until every displacement fits (sizes only grow, so this ends).
// `JumpForm::kShort` / `kNear` force a form; a forced short jump that does not reach is an error.
//
// Host addresses. `abs(p)` in a memory operand, and `call(abs(fn))` / `jmp(abs(fn))`, are resolved
// when the final code address is known (install), to the shortest correct form:
//   1. RIP-relative, when the target is within ±2 GiB of every byte of the code block;
//   2. absolute disp32, when the address fits in 32 bits sign-extended;
//   3. for `mov` between al/ax/eax/rax and memory: the moffs64 form (A0-A3 + 8-byte address);
//      for `call`/`jmp`: an 8-byte address slot after the code, `call [rip+slot]`;
//      for `lea r64`: `mov r64, imm64` into the destination itself;
//   4. `mov scratch, imm64` then the instruction through [scratch], if a scratch register was
//      allowed (allow_scratch) when the instruction was emitted;
//   5. otherwise a clear error at encode/install naming the instruction. Never a truncation.
//
// Patchable sites (`call_site`, `mov_imm64_site`, ...) are padded with NOPs so that the field a
// patcher rewrites is naturally aligned (rel32/imm32 at 4, imm64 at 8) in the final code, and are
// recorded as PatchSiteRecord; install() turns each record into an install::PatchSite at the
// code's final address, which is what patch/ and ic/ use.
//
// The hot path (instructions without labels or host addresses) is a few stores into a reserved
// byte buffer: no allocation per instruction, no virtual call. A destroyed Assembler leaves its
// buffers to the next one constructed on the same thread (one set per thread, each buffer up to
// 1 MiB), so a JIT that makes a fresh Assembler per function allocates no more than one that
// reuses a single Assembler with reset().
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "jitkit/base/result.h"
#include "jitkit/x64/operands.h"
#include "jitkit/x64/registers.h"

namespace jitkit::x64 {

// What a patch site holds.
enum class PatchSiteKind : std::uint8_t {
  kCall,       // call rel32 (field: rel32)
  kJump,       // jmp rel32 (field: rel32)
  kImm32,      // mov r32, imm32 / cmp r32, imm32 (field: imm32)
  kImm64,      // mov r64, imm64 (field: imm64)
  kStaticKey,  // enabled: jmp rel32; disabled: 5-byte NOP (field: the 5 instruction bytes' rel32)
};

// One patch site; offsets are from the start of the code, because until install() the code has
// no address. install::PatchSite (install/patch_site.h) is the same site at its installed address.
struct PatchSiteRecord {
  PatchSiteKind kind;
  std::uint32_t insn_offset;   // first byte of the patchable instruction
  std::uint8_t insn_size;      // its length
  std::uint32_t field_offset;  // first byte of the patchable field (naturally aligned)
  std::uint8_t field_size;     // 4 or 8
  // Boundaries around the site: the NOP padding starts at pad_offset (== insn_offset when no
  // padding was needed); the padding consists of whole NOP instructions.
  std::uint32_t pad_offset = 0;
  // kStaticKey: whether it was emitted enabled (jmp) or disabled (NOP); kCall/kJump/kStaticKey:
  // the rel32 of the jump/call as it targets its initial destination (the bytes a disabled static
  // key keeps aside: E9 + jump_rel32).
  bool enabled = true;
  std::int32_t jump_rel32 = 0;
};

// Index of a patch site in the order of emission.
struct PatchSiteId {
  std::uint32_t index;
};

// Short/near choice of a jump to a label.
enum class JumpForm : std::uint8_t { kAuto, kShort, kNear };

// How a host-address operand was finally encoded.
enum class HostForm : std::uint8_t {
  kRipRelative,      // [rip + disp32] / call rel32 / jmp rel32
  kAbsolute32,       // [disp32] (address fits in 32 bits sign-extended)
  kMoffs64,          // mov al/ax/eax/rax <-> [moffs64]
  kAddressSlot,      // call/jmp [rip + slot], the 8-byte slot placed after the code
  kImm64ToDest,      // lea r64, [far] -> mov r64, imm64
  kScratchRegister,  // mov scratch, imm64; insn ... [scratch]
};
std::string_view name(HostForm f);

// One host-address operand and the form chosen for it.
struct HostOperandChoice {
  std::uint32_t insn_offset;  // where the (possibly multi-instruction) sequence starts
  std::uint8_t size;          // bytes of the sequence
  std::uint64_t address;      // the host address
  HostForm form;
  std::string text;  // the instruction as written, e.g. "mov dword [0x7f...], imm 0x2a"
};

// The result of encoding for a given base address: the final bytes and what install records.
struct EncodedCode {
  std::uint64_t base_address = 0;
  std::vector<std::uint8_t> bytes;           // code, then address slots, then the constant pool
  std::size_t code_size = 0;                 // bytes of instructions (before slots and pool)
  std::vector<std::uint32_t> label_offsets;  // by label id; kUnbound for unbound labels
  std::vector<PatchSiteRecord> sites;
  std::vector<HostOperandChoice> host_operands;
  static constexpr std::uint32_t kUnbound = 0xFFFFFFFFu;
};

class Assembler {
 public:
  // `reserve_bytes` pre-sizes the buffer so that typical functions never reallocate (the buffers
  // a destroyed Assembler left on this thread are taken first; see the file comment).
  explicit Assembler(std::size_t reserve_bytes = 4096);
  ~Assembler();
  Assembler(Assembler&&) noexcept;
  Assembler& operator=(Assembler&&) noexcept;
  Assembler(const Assembler&) = delete;
  Assembler& operator=(const Assembler&) = delete;

  // --- State ------------------------------------------------------------------------------
  // The first error, if any (sticky).
  const std::optional<Error>& error() const { return error_; }
  bool ok() const { return !error_.has_value(); }
  // Bytes emitted into the buffer so far (relaxable items not counted: the final size differs).
  std::size_t buffer_size() const { return static_cast<std::size_t>(cur_ - buf_); }
  // Forgets everything emitted (labels, items, sites, constants, the error and the scratch
  // permission) but keeps the capacity of the buffers, so a JIT can reuse one Assembler.
  void reset();

  // Allows `reg` to be clobbered by host-address instructions emitted from now on that need a
  // scratch register (form 4 above). forbid_scratch() withdraws it (the default).
  void allow_scratch(Gp64 reg);
  void forbid_scratch();
  std::optional<Gp64> scratch() const;

  // --- Labels -----------------------------------------------------------------------------
  Label new_label();
  void bind(Label label);  // binding twice or a foreign label is a sticky error
  bool is_bound(Label label) const;

  // --- Encoding ---------------------------------------------------------------------------
  // An upper bound of encode()'s output size for any base address (install allocates this).
  std::size_t size_upper_bound() const;
  // The largest alignment the code relies on (align(), patch sites, pool constants); the base
  // address passed to encode() must be a multiple of it.
  std::size_t required_alignment() const;
  // Lays out the code for `base_address`: relaxes jumps, picks host-address forms, resolves
  // labels. Fails on a sticky error, an unbound label that is referenced, a forced short jump
  // that does not reach, or a host address that cannot be reached without a scratch register.
  Result<EncodedCode> encode(std::uint64_t base_address) const;
  // The same into `out`, reusing the capacity of its vectors (a JIT encoding many functions
  // avoids reallocating and page-faulting a fresh output buffer each time). On error `out` is
  // unspecified.
  Status encode_into(std::uint64_t base_address, EncodedCode& out) const;
  // The same with the bytes written straight to `dst` (`capacity` bytes, at least what the
  // layout needs; size_upper_bound() always suffices), e.g. the writable view of the code block
  // they will run in, which saves copying them there; `records` gets everything else (code_size,
  // labels, sites, host operands) and its `bytes` are left empty. Returns the number of bytes
  // written (code, address slots, constants). On error the bytes at `dst` are unspecified.
  Result<std::size_t> encode_to(std::uint64_t base_address, std::uint8_t* dst, std::size_t capacity,
                                EncodedCode& records) const;

  // --- Data movement ----------------------------------------------------------------------
  void mov(Gp8 dst, Gp8 src);
  void mov(Gp16 dst, Gp16 src);
  void mov(Gp32 dst, Gp32 src);
  void mov(Gp64 dst, Gp64 src);
  void mov(Gp8 dst, const Mem& src);
  void mov(Gp16 dst, const Mem& src);
  void mov(Gp32 dst, const Mem& src);
  void mov(Gp64 dst, const Mem& src);
  void mov(const Mem& dst, Gp8 src);
  void mov(const Mem& dst, Gp16 src);
  void mov(const Mem& dst, Gp32 src);
  void mov(const Mem& dst, Gp64 src);
  void mov(Gp8 dst, std::int64_t imm);
  void mov(Gp16 dst, std::int64_t imm);
  void mov(Gp32 dst, std::int64_t imm);        // accepts -2^31 .. 2^32-1
  void mov(Gp64 dst, std::int64_t imm);        // shortest form, see above
  void mov(const Mem& dst, std::int64_t imm);  // sized memory; 64-bit: simm32
  void movabs(Gp64 dst, std::uint64_t imm);    // always the 10-byte mov r64, imm64
  // The moffs64 forms, explicitly (mov's host-address operands pick them automatically when
  // needed): load al/ax/eax/rax from, or store it to, a full 64-bit address. The register must
  // be the accumulator, else a sticky error.
  void movabs(Gp8 dst, HostAddress src);
  void movabs(Gp16 dst, HostAddress src);
  void movabs(Gp32 dst, HostAddress src);
  void movabs(Gp64 dst, HostAddress src);
  void movabs(HostAddress dst, Gp8 src);
  void movabs(HostAddress dst, Gp16 src);
  void movabs(HostAddress dst, Gp32 src);
  void movabs(HostAddress dst, Gp64 src);
  void movzx(Gp16 dst, Gp8 src);
  void movzx(Gp32 dst, Gp8 src);
  void movzx(Gp64 dst, Gp8 src);
  void movzx(Gp32 dst, Gp16 src);
  void movzx(Gp64 dst, Gp16 src);
  void movzx(Gp16 dst, const Mem& src);  // src must be byte_ptr
  void movzx(Gp32 dst, const Mem& src);  // byte_ptr or word_ptr
  void movzx(Gp64 dst, const Mem& src);  // byte_ptr or word_ptr
  void movsx(Gp16 dst, Gp8 src);
  void movsx(Gp32 dst, Gp8 src);
  void movsx(Gp64 dst, Gp8 src);
  void movsx(Gp32 dst, Gp16 src);
  void movsx(Gp64 dst, Gp16 src);
  void movsx(Gp16 dst, const Mem& src);
  void movsx(Gp32 dst, const Mem& src);
  void movsx(Gp64 dst, const Mem& src);
  void movsxd(Gp64 dst, Gp32 src);
  void movsxd(Gp64 dst, const Mem& src);
  void lea(Gp32 dst, const Mem& src);
  void lea(Gp64 dst, const Mem& src);
  void xchg(Gp8 a, Gp8 b);
  void xchg(Gp16 a, Gp16 b);
  void xchg(Gp32 a, Gp32 b);
  void xchg(Gp64 a, Gp64 b);
  void xchg(const Mem& a, Gp8 b);
  void xchg(const Mem& a, Gp16 b);
  void xchg(const Mem& a, Gp32 b);
  void xchg(const Mem& a, Gp64 b);
  void bswap(Gp32 r);
  void bswap(Gp64 r);

  // --- Integer arithmetic -----------------------------------------------------------------
#define JITKIT_X64_ALU_DECL(op)                     \
  void op(Gp8 dst, Gp8 src);                        \
  void op(Gp16 dst, Gp16 src);                      \
  void op(Gp32 dst, Gp32 src);                      \
  void op(Gp64 dst, Gp64 src);                      \
  void op(Gp8 dst, const Mem& src);                 \
  void op(Gp16 dst, const Mem& src);                \
  void op(Gp32 dst, const Mem& src);                \
  void op(Gp64 dst, const Mem& src);                \
  void op(const Mem& dst, Gp8 src);                 \
  void op(const Mem& dst, Gp16 src);                \
  void op(const Mem& dst, Gp32 src);                \
  void op(const Mem& dst, Gp64 src);                \
  void op(Gp8 dst, std::int64_t imm);               \
  void op(Gp16 dst, std::int64_t imm);              \
  void op(Gp32 dst, std::int64_t imm);              \
  void op(Gp64 dst, std::int64_t imm); /* simm32 */ \
  void op(const Mem& dst, std::int64_t imm);
  JITKIT_X64_ALU_DECL(add)
  JITKIT_X64_ALU_DECL(or_)
  JITKIT_X64_ALU_DECL(adc)
  JITKIT_X64_ALU_DECL(sbb)
  JITKIT_X64_ALU_DECL(and_)
  JITKIT_X64_ALU_DECL(sub)
  JITKIT_X64_ALU_DECL(xor_)
  JITKIT_X64_ALU_DECL(cmp)
#undef JITKIT_X64_ALU_DECL
  void test(Gp8 a, Gp8 b);
  void test(Gp16 a, Gp16 b);
  void test(Gp32 a, Gp32 b);
  void test(Gp64 a, Gp64 b);
  void test(const Mem& a, Gp8 b);
  void test(const Mem& a, Gp16 b);
  void test(const Mem& a, Gp32 b);
  void test(const Mem& a, Gp64 b);
  void test(Gp8 a, std::int64_t imm);
  void test(Gp16 a, std::int64_t imm);
  void test(Gp32 a, std::int64_t imm);
  void test(Gp64 a, std::int64_t imm);
  void test(const Mem& a, std::int64_t imm);
#define JITKIT_X64_UNARY_DECL(op) \
  void op(Gp8 r);                 \
  void op(Gp16 r);                \
  void op(Gp32 r);                \
  void op(Gp64 r);                \
  void op(const Mem& m); /* sized memory */
  JITKIT_X64_UNARY_DECL(inc)
  JITKIT_X64_UNARY_DECL(dec)
  JITKIT_X64_UNARY_DECL(neg)
  JITKIT_X64_UNARY_DECL(not_)
  JITKIT_X64_UNARY_DECL(mul)   // rdx:rax = rax * op (unsigned)
  JITKIT_X64_UNARY_DECL(div)   // rax = rdx:rax / op, rdx = remainder (unsigned)
  JITKIT_X64_UNARY_DECL(idiv)  // signed
  JITKIT_X64_UNARY_DECL(imul)  // one-operand form: rdx:rax = rax * op (signed)
#undef JITKIT_X64_UNARY_DECL
  void imul(Gp16 dst, Gp16 src);
  void imul(Gp32 dst, Gp32 src);
  void imul(Gp64 dst, Gp64 src);
  void imul(Gp16 dst, const Mem& src);
  void imul(Gp32 dst, const Mem& src);
  void imul(Gp64 dst, const Mem& src);
  void imul(Gp16 dst, Gp16 src, std::int64_t imm);
  void imul(Gp32 dst, Gp32 src, std::int64_t imm);
  void imul(Gp64 dst, Gp64 src, std::int64_t imm);
  void imul(Gp16 dst, const Mem& src, std::int64_t imm);
  void imul(Gp32 dst, const Mem& src, std::int64_t imm);
  void imul(Gp64 dst, const Mem& src, std::int64_t imm);
  void cwd();   // dx:ax = sign-extend ax
  void cdq();   // edx:eax = sign-extend eax
  void cqo();   // rdx:rax = sign-extend rax
  void cdqe();  // rax = sign-extend eax

  // --- Shifts and rotates: by an immediate or by cl. The immediate must be below the operand
  //     width (0..31 for 8/16/32-bit operands, 0..63 for 64-bit), as the CPU masks the count;
  //     a larger one is a sticky error rather than a silently masked shift. -----------------
#define JITKIT_X64_SHIFT_DECL(op)            \
  void op(Gp8 r, std::uint8_t count);        \
  void op(Gp16 r, std::uint8_t count);       \
  void op(Gp32 r, std::uint8_t count);       \
  void op(Gp64 r, std::uint8_t count);       \
  void op(const Mem& m, std::uint8_t count); \
  void op(Gp8 r, Gp8 count_cl);              \
  void op(Gp16 r, Gp8 count_cl);             \
  void op(Gp32 r, Gp8 count_cl);             \
  void op(Gp64 r, Gp8 count_cl);             \
  void op(const Mem& m, Gp8 count_cl);
  JITKIT_X64_SHIFT_DECL(rol)
  JITKIT_X64_SHIFT_DECL(ror)
  JITKIT_X64_SHIFT_DECL(shl)
  JITKIT_X64_SHIFT_DECL(shr)
  JITKIT_X64_SHIFT_DECL(sar)
#undef JITKIT_X64_SHIFT_DECL

  // --- Bit operations ---------------------------------------------------------------------
#define JITKIT_X64_BT_DECL(op)       \
  void op(Gp16 r, Gp16 bit);         \
  void op(Gp32 r, Gp32 bit);         \
  void op(Gp64 r, Gp64 bit);         \
  void op(const Mem& m, Gp16 bit);   \
  void op(const Mem& m, Gp32 bit);   \
  void op(const Mem& m, Gp64 bit);   \
  void op(Gp16 r, std::uint8_t bit); \
  void op(Gp32 r, std::uint8_t bit); \
  void op(Gp64 r, std::uint8_t bit); \
  void op(const Mem& m, std::uint8_t bit);
  JITKIT_X64_BT_DECL(bt)
  JITKIT_X64_BT_DECL(bts)
  JITKIT_X64_BT_DECL(btr)
#undef JITKIT_X64_BT_DECL
#define JITKIT_X64_CNT_DECL(op)      \
  void op(Gp16 dst, Gp16 src);       \
  void op(Gp32 dst, Gp32 src);       \
  void op(Gp64 dst, Gp64 src);       \
  void op(Gp16 dst, const Mem& src); \
  void op(Gp32 dst, const Mem& src); \
  void op(Gp64 dst, const Mem& src);
  JITKIT_X64_CNT_DECL(popcnt)
  JITKIT_X64_CNT_DECL(lzcnt)
  JITKIT_X64_CNT_DECL(tzcnt)
#undef JITKIT_X64_CNT_DECL

  // --- Conditions -------------------------------------------------------------------------
  void setcc(Cond c, Gp8 dst);
  void setcc(Cond c, const Mem& dst);
  void cmovcc(Cond c, Gp16 dst, Gp16 src);
  void cmovcc(Cond c, Gp32 dst, Gp32 src);
  void cmovcc(Cond c, Gp64 dst, Gp64 src);
  void cmovcc(Cond c, Gp16 dst, const Mem& src);
  void cmovcc(Cond c, Gp32 dst, const Mem& src);
  void cmovcc(Cond c, Gp64 dst, const Mem& src);

  // --- Control flow -----------------------------------------------------------------------
  void jcc(Cond c, Label target, JumpForm form = JumpForm::kAuto);
  void jmp(Label target, JumpForm form = JumpForm::kAuto);
  void jmp(HostAddress target);  // rel32 if reachable, else jmp [rip+slot]
  void jmp(Gp64 target);
  void jmp(const Mem& target);    // qword memory (size 0 or 8)
  void call(Label target);        // call rel32
  void call(HostAddress target);  // rel32 if reachable, else call [rip+slot]
  void call(Gp64 target);
  void call(const Mem& target);
  void ret();
  void ret(std::uint16_t pop_bytes);
  void push(Gp64 r);
  void push(const Mem& m);
  void push(std::int32_t imm);  // pushes the sign-extended 64-bit value
  void pop(Gp64 r);
  void pop(const Mem& m);
  // jcc shorthands.
#define JITKIT_X64_JCC_DECL(suffix, cond) \
  void j##suffix(Label target, JumpForm form = JumpForm::kAuto) { jcc(cond, target, form); }
  JITKIT_X64_JCC_DECL(o, Cond::kO)
  JITKIT_X64_JCC_DECL(no, Cond::kNO)
  JITKIT_X64_JCC_DECL(b, Cond::kB) JITKIT_X64_JCC_DECL(ae, Cond::kAE) JITKIT_X64_JCC_DECL(e, Cond::kE)
      JITKIT_X64_JCC_DECL(ne, Cond::kNE) JITKIT_X64_JCC_DECL(z, Cond::kZ) JITKIT_X64_JCC_DECL(nz, Cond::kNZ)
          JITKIT_X64_JCC_DECL(be, Cond::kBE) JITKIT_X64_JCC_DECL(a, Cond::kA) JITKIT_X64_JCC_DECL(s, Cond::kS)
              JITKIT_X64_JCC_DECL(ns, Cond::kNS) JITKIT_X64_JCC_DECL(p, Cond::kP)
                  JITKIT_X64_JCC_DECL(np, Cond::kNP) JITKIT_X64_JCC_DECL(l, Cond::kL)
                      JITKIT_X64_JCC_DECL(ge, Cond::kGE) JITKIT_X64_JCC_DECL(le, Cond::kLE)
                          JITKIT_X64_JCC_DECL(g, Cond::kG)
#undef JITKIT_X64_JCC_DECL

      // --- Atomics and ordering ---------------------------------------------------------------
      void lock();  // LOCK prefix for the next instruction (which must have a memory destination)
  void cmpxchg(const Mem& dst, Gp8 src);
  void cmpxchg(const Mem& dst, Gp16 src);
  void cmpxchg(const Mem& dst, Gp32 src);
  void cmpxchg(const Mem& dst, Gp64 src);
  void cmpxchg(Gp32 dst, Gp32 src);
  void cmpxchg(Gp64 dst, Gp64 src);
  void xadd(const Mem& dst, Gp8 src);
  void xadd(const Mem& dst, Gp16 src);
  void xadd(const Mem& dst, Gp32 src);
  void xadd(const Mem& dst, Gp64 src);
  void xadd(Gp32 dst, Gp32 src);
  void xadd(Gp64 dst, Gp64 src);
  void mfence();
  void lfence();
  void sfence();
  void pause();

  // --- Miscellaneous ----------------------------------------------------------------------
  void ud2();
  void int3();
  void nop();                   // 1 byte
  void nop(std::size_t bytes);  // one NOP instruction of 1..15 bytes
  void cpuid();
  void rdtsc();
  void rdtscp();

  // --- SSE2 scalar double -----------------------------------------------------------------
  void movsd(Xmm dst, Xmm src);
  void movsd(Xmm dst, const Mem& src);
  void movsd(const Mem& dst, Xmm src);
  void movq(Xmm dst, Xmm src);
  void movq(Xmm dst, Gp64 src);
  void movq(Gp64 dst, Xmm src);
  void movq(Xmm dst, const Mem& src);
  void movq(const Mem& dst, Xmm src);
  void movd(Xmm dst, Gp32 src);
  void movd(Gp32 dst, Xmm src);
  void movapd(Xmm dst, Xmm src);
  void movapd(Xmm dst, const Mem& src);  // 16-byte aligned memory
  void movapd(const Mem& dst, Xmm src);
#define JITKIT_X64_SSE_DECL(op) \
  void op(Xmm dst, Xmm src);    \
  void op(Xmm dst, const Mem& src);
  JITKIT_X64_SSE_DECL(addsd)
  JITKIT_X64_SSE_DECL(subsd)
  JITKIT_X64_SSE_DECL(mulsd)
  JITKIT_X64_SSE_DECL(divsd)
  JITKIT_X64_SSE_DECL(sqrtsd)
  JITKIT_X64_SSE_DECL(minsd)
  JITKIT_X64_SSE_DECL(maxsd)
  JITKIT_X64_SSE_DECL(ucomisd)
  JITKIT_X64_SSE_DECL(comisd)
  JITKIT_X64_SSE_DECL(xorpd)
  JITKIT_X64_SSE_DECL(andpd)
#undef JITKIT_X64_SSE_DECL
  void cvtsi2sd(Xmm dst, Gp32 src);
  void cvtsi2sd(Xmm dst, Gp64 src);
  void cvtsi2sd(Xmm dst, const Mem& src);  // dword_ptr or qword_ptr
  void cvttsd2si(Gp32 dst, Xmm src);
  void cvttsd2si(Gp64 dst, Xmm src);
  void cvttsd2si(Gp32 dst, const Mem& src);
  void cvttsd2si(Gp64 dst, const Mem& src);

  // --- Raw data, alignment and constants --------------------------------------------------
  void db(std::uint8_t v);
  void dw(std::uint16_t v);
  void dd(std::uint32_t v);
  void dq(std::uint64_t v);
  void bytes(const void* data, std::size_t n);
  void dq(Label label);                   // the label's absolute address (jump tables)
  void dd_rel(Label target, Label base);  // target - base as int32 (relative jump tables)
  // Pads with NOPs so that the next byte is at a multiple of `alignment` (power of two, <= 64)
  // in the final code.
  void align(std::size_t alignment);
  // A constant placed after the code (deduplicated, aligned); returns its label, usable as
  // qword_ptr(label) etc. E.g. movsd(xmm0, qword_ptr(a.constant_f64(1.5))).
  Label constant(const void* data, std::size_t n, std::size_t alignment);
  Label constant_u64(std::uint64_t v);
  Label constant_f64(double v);

  // --- Patchable sites (fields naturally aligned; see PatchSiteRecord) -------------------
  PatchSiteId call_site(Label target);
  PatchSiteId call_site(HostAddress target);  // must be within rel32 reach at install
  PatchSiteId jmp_site(Label target);
  PatchSiteId jmp_site(HostAddress target);
  PatchSiteId mov_imm32_site(Gp32 dst, std::int32_t imm);
  PatchSiteId cmp_imm32_site(Gp32 lhs, std::int32_t imm);
  PatchSiteId mov_imm64_site(Gp64 dst, std::uint64_t imm);
  PatchSiteId static_key(Label target, bool enabled);
  std::size_t site_count() const;

  // Implementation types, opaque here (defined in src/x64/assembler_p.h).
  struct Item;
  struct HostInsn;
  struct Fixup;
  struct LabelState;
  struct SiteState;

 private:
  std::uint8_t* buf_ = nullptr;  // malloc'd buffer
  std::uint8_t* cur_ = nullptr;  // next byte
  std::uint8_t* end_ = nullptr;  // capacity end
  std::optional<Error> error_;
  std::uint8_t scratch_ = Mem::kNoReg;
  std::uint32_t lock_at_ = 0xFFFFFFFFu;  // buffer offset right after the last lock prefix
  std::uint32_t max_alignment_ = 1;
  std::vector<Item> items_;
  std::vector<HostInsn> host_insns_;
  std::vector<std::string> host_texts_;  // of the host-address instructions that keep a text
  std::vector<Fixup> fixups_;
  std::vector<LabelState> labels_;
  std::vector<SiteState> sites_;
  std::vector<std::uint8_t> pool_;
  std::uint32_t pool_alignment_ = 1;
  std::uint32_t slot_count_ = 0;   // host call/jmp items that may need an address slot
  std::uint32_t items_bound_ = 0;  // the items' largest sizes, summed (size_upper_bound())

  friend struct AssemblerAccess;  // src/x64: the encoder helpers
};

}  // namespace jitkit::x64
