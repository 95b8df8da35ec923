// src/x64/assembler.cpp — the emit path: one method per instruction form, each a few stores into
// the reserved buffer (see assembler_p.h for what is deferred to layout.cpp).
//
// Every method follows the same shape: check what the C++ types could not (memory operand size,
// immediate range), reserve room for one instruction, write it with the encoding helpers of
// encoding_p.h, and on an operand the hardware cannot encode record a sticky error naming the
// instruction as written.
// Error texts are built only on the failure path (the `text` lambdas), so the hot path never
// formats or allocates.
#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <new>
#include <utility>
#include <vector>

#include "assembler_p.h"
#include "jitkit/base/format.h"
#include "thread_slot_p.h"

namespace jitkit::x64 {
namespace {

using A = AssemblerAccess;
using namespace detail;  // the encoding helpers of encoding_p.h

// --- Operand values and texts ------------------------------------------------------------

constexpr unsigned rv(Gp64 r) { return r.id & 15u; }
constexpr unsigned rv(Gp32 r) { return r.id & 15u; }
constexpr unsigned rv(Gp16 r) { return r.id & 15u; }
constexpr unsigned rv(Xmm r) { return r.id & 15u; }
constexpr unsigned rv(Gp8 r) {
  if (r.high) return (r.id & 7u) | kHighByte;
  return (r.id >= 4 && r.id < 8) ? (r.id | kNeedsRex) : (r.id & 15u);
}

// Width bits of the encoding spec (encoding_p.h) for an operation on register type R.
template <class R>
constexpr std::uint32_t wbits() {
  if constexpr (R::kBits == 16)
    return kOpSize16;
  else if constexpr (R::kBits == 64)
    return kW;
  else
    return 0;
}
// The byte form's opcode for 8-bit operands, opcode+1 (with width bits) for the wider ones.
template <class R>
constexpr std::uint32_t sz(std::uint32_t op8) {
  if constexpr (R::kBits == 8)
    return op8;
  else
    return (op8 + 1) | wbits<R>();
}

struct ImmV {
  std::int64_t v;
};
std::string txt(Gp8 r) { return std::string(name(r)); }
std::string txt(Gp16 r) { return std::string(name(r)); }
std::string txt(Gp32 r) { return std::string(name(r)); }
std::string txt(Gp64 r) { return std::string(name(r)); }
std::string txt(Xmm r) { return std::string(name(r)); }
std::string txt(const Mem& m) { return mem_text(m); }
std::string txt(ImmV i) { return imm_text(i.v); }
std::string txt(Label l) { return label_text(l); }
std::string txt(HostAddress h) { return hex(h.address); }

template <class... O>
std::string insn(const char* mnemonic, const O&... ops) {
  std::string s = mnemonic;
  bool first = true;
  ((s += first ? " " : ", ", s += txt(ops), first = false), ...);
  return s;
}

[[gnu::cold, gnu::noinline]] void fail_insn(Assembler& a, const std::string& text, const char* why) {
  A::fail(a, ErrorCode::kInvalidArgument, text + ": " + why);
}

// Why an operand combination did not encode (called after put_* returned nullptr).
[[gnu::cold, gnu::noinline]] void bad_operands(Assembler& a, const std::string& text, const Mem* m) {
  const char* why = "ah/ch/dh/bh cannot be encoded in an instruction that needs a REX prefix";
  if (m && m->scale_log2 == Mem::kBadScale)
    why = "index scale must be 1, 2, 4 or 8";
  else if (m && m->index == 4)
    why = "rsp cannot be an index register";
  fail_insn(a, text, why);
}

[[gnu::cold, gnu::noinline]] void size_mismatch(Assembler& a, const std::string& text, unsigned mem_size,
                                                unsigned expected) {
  char why[128];
  std::snprintf(why, sizeof why, "memory operand size (%u bytes) does not match the operation (%u bytes)",
                mem_size, expected);
  fail_insn(a, text, why);
}

// --- Immediates --------------------------------------------------------------------------

// Whether `v` is a valid immediate of a Bits-wide operation: 64-bit operations take a 32-bit
// sign-extended immediate; narrower ones accept both the signed and the unsigned range.
template <unsigned Bits>
constexpr bool imm_fits(std::int64_t v) {
  if constexpr (Bits == 64)
    return fits_signed<32>(v);
  else
    return v >= -(std::int64_t{1} << (Bits - 1)) && v < (std::int64_t{1} << Bits);
}
// `v` truncated to Bits and sign-extended: the value the CPU sees (for the imm8 choice).
template <unsigned Bits>
constexpr std::int64_t sext(std::int64_t v) {
  if constexpr (Bits == 64)
    return v;
  else
    return static_cast<std::int64_t>(static_cast<std::uint64_t>(v) << (64 - Bits)) >> (64 - Bits);
}
template <unsigned Bits>
constexpr unsigned imm_size() {
  return Bits == 8 ? 1 : Bits == 16 ? 2 : 4;
}
template <unsigned Bits>
const char* imm_range_text() {
  if constexpr (Bits == 64)
    return "immediate does not fit in 32 bits sign-extended";
  else if constexpr (Bits == 32)
    return "immediate does not fit in 32 bits";
  else if constexpr (Bits == 16)
    return "immediate does not fit in 16 bits";
  else
    return "immediate does not fit in 8 bits";
}
template <class R>
const char* imm_range_text_for() {
  return imm_range_text<R::kBits>();
}

// --- Core emitters -----------------------------------------------------------------------

// Whether the hardware accepts LOCK on this memory-form instruction (#UD otherwise): the
// read-modify-write ALU forms with a memory destination (not cmp), xchg, inc/dec/not/neg,
// cmpxchg, xadd, bts/btr/btc.
bool lockable(std::uint32_t e, unsigned reg) {
  const unsigned op = e & 0xFF;
  const unsigned digit = reg & 7;
  switch ((e >> 8) & 3) {
    case 0:
      if (op < 0x40 && (op & 7) < 2) return (op >> 3) != 7;
      if (op == 0x80 || op == 0x81 || op == 0x83) return digit != 7;
      if (op == 0x86 || op == 0x87) return true;
      if (op == 0xFE || op == 0xFF) return digit <= 1;
      if (op == 0xF6 || op == 0xF7) return digit == 2 || digit == 3;
      return false;
    case 1:
      if (op == 0xB0 || op == 0xB1 || op == 0xC0 || op == 0xC1 || op == 0xAB || op == 0xB3 || op == 0xBB)
        return true;
      return op == 0xBA && digit >= 5;
    default:
      return false;
  }
}

[[gnu::cold, gnu::noinline]] void bad_lock(Assembler& a, const std::string& text, bool has_memory) {
  fail_insn(a, "lock " + text,
            has_memory ? "this instruction cannot take a LOCK prefix"
                       : "the LOCK prefix needs a memory destination");
}
inline bool after_lock(Assembler& a) { return A::lock_at(a) == A::pos(a); }

// reg/reg form, optionally followed by an immediate.
template <class Text>
inline void rr(Assembler& a, std::uint32_t e, unsigned reg, unsigned rmv, Text&& text, unsigned isize = 0,
               std::int64_t imm = 0) {
  if (after_lock(a)) [[unlikely]]
    return bad_lock(a, text(), false);
  A::ensure(a, 32);
  std::uint8_t* p = put_rr(A::cur(a), e, reg, rmv);
  if (!p) [[unlikely]]
    return bad_operands(a, text(), nullptr);
  A::cur(a) = put_imm(p, isize, imm);
}

// opcode+r form, optionally followed by an immediate.
template <class Text>
inline void ro(Assembler& a, std::uint32_t e, unsigned r, Text&& text, unsigned isize = 0,
               std::int64_t imm = 0) {
  if (after_lock(a)) [[unlikely]]
    return bad_lock(a, text(), false);
  A::ensure(a, 32);
  std::uint8_t* p = put_o(A::cur(a), e, r);
  if (!p) [[unlikely]]
    return bad_operands(a, text(), nullptr);
  A::cur(a) = put_imm(p, isize, imm);
}

// Fixed bytes.
inline void raw(Assembler& a, std::initializer_list<std::uint8_t> bytes) {
  if (after_lock(a)) [[unlikely]] {
    char t[8];
    std::snprintf(t, sizeof t, "%02x", *bytes.begin());
    return bad_lock(a, std::string("instruction with opcode ") + t, false);
  }
  A::ensure(a, 32);
  std::uint8_t* p = A::cur(a);
  for (std::uint8_t b : bytes) *p++ = b;
  A::cur(a) = p;
}

[[gnu::noinline]] void host_item(Assembler& a, HostOp op, std::uint32_t e, unsigned reg, unsigned isize,
                                 std::int64_t imm, std::uint64_t address, std::uint8_t moffs,
                                 std::string text, bool reg_is_gp) {
  std::uint32_t pos = A::pos(a);
  bool lock = false;
  if (A::lock_at(a) == pos && pos > 0) {
    // The LOCK prefix belongs to this instruction, not to a `mov scratch, imm64` that the
    // scratch form may put in front of it: move it into the item.
    --A::cur(a);
    --pos;
    lock = true;
    A::lock_at(a) = 0xFFFFFFFFu;
  }
  Assembler::HostInsn h;
  h.op = op;
  h.reg = static_cast<std::uint8_t>(reg);
  h.imm_size = static_cast<std::uint8_t>(isize);
  h.moffs = moffs;
  h.scratch = A::scratch(a);
  h.lock = lock;
  h.scratch_conflict = reg_is_gp && h.scratch != kNoReg && (reg & 15u) == h.scratch;
  h.enc = e;
  h.imm = imm;
  h.address = address;
  if (text.empty()) {
    h.text = Assembler::HostInsn::kNoText;
  } else {
    h.text = static_cast<std::uint32_t>(A::host_texts(a).size());
    A::host_texts(a).push_back(std::move(text));
  }
  if (op == HostOp::kCall || op == HostOp::kJmp) {
    // E8/E9 rel32 (5 bytes) or `call/jmp [rip+slot]` (6): put_host has no other form for them,
    // and both always encode.
    h.rip_size = 5;
    h.max_size = 6;
    ++A::slot_count(a);
  } else {
    std::uint8_t tmp[48];
    const std::uint8_t* rip_end = A::put_host(tmp, h, HostForm::kRipRelative, 0, 0);
    if (!rip_end) return bad_operands(a, host_text(h, A::host_texts(a)), nullptr);
    h.rip_size = static_cast<std::uint8_t>(rip_end - tmp);
    h.max_size = static_cast<std::uint8_t>(A::host_max_size(h));
  }
  A::items_bound(a) += h.max_size;
  auto& hosts = A::host_insns(a);
  A::items(a).push_back(
      Assembler::Item{pos, ItemKind::kHost, 0, 0, 0, static_cast<std::uint32_t>(hosts.size())});
  hosts.push_back(std::move(h));
}

[[gnu::cold, gnu::noinline]] void bad_label(Assembler& a, const std::string& text) {
  fail_insn(a, text, "label was not created by this assembler");
}

// lock() wrote F0 just before this instruction's 66 prefix: emit them as 66 F0 instead, the
// order GNU as uses (the CPU accepts both), so listings and the differential test agree.
inline void lock_before_opsize(Assembler& a) {
  std::uint8_t* start = A::cur(a);
  if (A::lock_at(a) == A::pos(a) && start[0] == 0x66) {
    start[-1] = 0x66;
    start[0] = 0xF0;
  }
}

// Memory form. `expect` is the operand size the instruction implies (0: any); `moffs` the
// opcode of the equivalent moffs64 mov when there is one.
template <class Text>
inline void rm(Assembler& a, std::uint32_t e, unsigned reg, const Mem& m, unsigned expect, Text&& text,
               unsigned isize = 0, std::int64_t imm = 0, bool reg_is_gp = true, std::uint8_t moffs = 0) {
  if (m.size != 0 && expect != 0 && m.size != expect) [[unlikely]]
    return size_mismatch(a, text(), m.size, expect);
  if (after_lock(a) && !lockable(e, reg)) [[unlikely]]
    return bad_lock(a, text(), true);
  if (m.kind != Mem::Kind::kHost && !fits_signed<32>(m.disp)) [[unlikely]]
    return fail_insn(a, text(), "displacement does not fit in 32 bits sign-extended");
  A::ensure(a, 32);
  if (m.kind == Mem::Kind::kRegs) [[likely]] {
    if (m.scale_log2 == Mem::kBadScale) [[unlikely]]
      return bad_operands(a, text(), &m);
    Addr ad{Addr::kRegs, m.base, m.index, m.scale_log2, static_cast<std::int32_t>(m.disp)};
    std::uint8_t* p = put_mem(A::cur(a), e, reg, ad);
    if (!p) [[unlikely]]
      return bad_operands(a, text(), &m);
    if (e & kOpSize16) lock_before_opsize(a);
    A::cur(a) = put_imm(p, isize, imm);
    return;
  }
  if (m.kind == Mem::Kind::kLabel) {
    if (m.label >= A::labels(a).size()) [[unlikely]]
      return bad_label(a, text());
    Addr ad{Addr::kRip, kNoReg, kNoReg, 0, 0};
    std::uint8_t* p = put_mem(A::cur(a), e, reg, ad);
    if (!p) [[unlikely]]
      return bad_operands(a, text(), &m);
    if (e & kOpSize16) lock_before_opsize(a);
    auto field = static_cast<std::uint32_t>(p - A::buf(a)) - 4;
    A::cur(a) = put_imm(p, isize, imm);
    A::fixups(a).push_back(Assembler::Fixup{field, m.label, static_cast<std::int32_t>(m.disp),
                                            FixupKind::kRel32, static_cast<std::uint8_t>(isize)});
    return;
  }
  host_item(a, HostOp::kMem, e, reg, isize, imm, static_cast<std::uint64_t>(m.disp), moffs, text(),
            reg_is_gp);
}

// --- Families ----------------------------------------------------------------------------

// add or adc sbb and sub xor cmp: opcode group 0..7.
template <class R>
void alu_rr(Assembler& a, unsigned op, R d, R s, const char* mn) {
  rr(a, sz<R>(op * 8), rv(s), rv(d), [&] { return insn(mn, d, s); });
}
template <class R>
void alu_rm(Assembler& a, unsigned op, R d, const Mem& m, const char* mn) {
  rm(a, sz<R>(op * 8 + 2), rv(d), m, R::kBytes, [&] { return insn(mn, d, m); });
}
template <class R>
void alu_mr(Assembler& a, unsigned op, const Mem& m, R s, const char* mn) {
  rm(a, sz<R>(op * 8), rv(s), m, R::kBytes, [&] { return insn(mn, m, s); });
}
template <class R>
void alu_ri(Assembler& a, unsigned op, R d, std::int64_t imm, const char* mn) {
  auto text = [&] { return insn(mn, d, ImmV{imm}); };
  if (!imm_fits<R::kBits>(imm)) [[unlikely]]
    return fail_insn(a, text(), imm_range_text_for<R>());
  std::int64_t v = sext<R::kBits>(imm);
  if constexpr (R::kBits == 8) {
    if (rv(d) == 0) return raw(a, {static_cast<std::uint8_t>(op * 8 + 4), static_cast<std::uint8_t>(v)});
    return rr(a, 0x80, op, rv(d), text, 1, v);
  } else {
    if (fits_signed<8>(v)) return rr(a, 0x83 | wbits<R>(), op, rv(d), text, 1, v);
    if (d.id == 0) {  // accumulator form: one byte shorter
      A::ensure(a, 32);
      std::uint8_t* p = put_head(A::cur(a), (op * 8 + 5) | wbits<R>(), R::kBits == 64 ? 8 : 0);
      A::cur(a) = put_imm(p, imm_size<R::kBits>(), v);
      return;
    }
    return rr(a, 0x81 | wbits<R>(), op, rv(d), text, imm_size<R::kBits>(), v);
  }
}
[[gnu::cold, gnu::noinline]] void need_size(Assembler& a, const std::string& text) {
  fail_insn(a, text, "memory operand needs a size (byte_ptr, word_ptr, dword_ptr or qword_ptr)");
}
template <unsigned Bits>
void alu_mi_sized(Assembler& a, unsigned op, const Mem& m, std::int64_t imm, const char* mn) {
  auto text = [&] { return insn(mn, m, ImmV{imm}); };
  if (!imm_fits<Bits>(imm)) [[unlikely]]
    return fail_insn(a, text(), imm_range_text<Bits>());
  std::int64_t v = sext<Bits>(imm);
  constexpr std::uint32_t w = Bits == 16 ? kOpSize16 : Bits == 64 ? kW : 0;
  if constexpr (Bits == 8) {
    rm(a, 0x80, op, m, 1, text, 1, v);
  } else if (fits_signed<8>(v)) {
    rm(a, 0x83 | w, op, m, Bits / 8, text, 1, v);
  } else {
    rm(a, 0x81 | w, op, m, Bits / 8, text, imm_size<Bits>(), v);
  }
}
void alu_mi(Assembler& a, unsigned op, const Mem& m, std::int64_t imm, const char* mn) {
  switch (m.size) {
    case 1:
      return alu_mi_sized<8>(a, op, m, imm, mn);
    case 2:
      return alu_mi_sized<16>(a, op, m, imm, mn);
    case 4:
      return alu_mi_sized<32>(a, op, m, imm, mn);
    case 8:
      return alu_mi_sized<64>(a, op, m, imm, mn);
    default:
      return need_size(a, insn(mn, m, ImmV{imm}));
  }
}

// Unary group F6/F7 and FE/FF: /digit.
template <class R>
void unary_r(Assembler& a, std::uint32_t op8, unsigned digit, R r, const char* mn) {
  rr(a, sz<R>(op8), digit, rv(r), [&] { return insn(mn, r); });
}
void unary_m(Assembler& a, std::uint32_t op8, unsigned digit, const Mem& m, const char* mn) {
  auto text = [&] { return insn(mn, m); };
  switch (m.size) {
    case 1:
      return rm(a, op8, digit, m, 1, text);
    case 2:
      return rm(a, (op8 + 1) | kOpSize16, digit, m, 2, text);
    case 4:
      return rm(a, op8 + 1, digit, m, 4, text);
    case 8:
      return rm(a, (op8 + 1) | kW, digit, m, 8, text);
    default:
      return need_size(a, text());
  }
}

// Shifts and rotates: group C0/C1 (imm8), D0/D1 (by 1), D2/D3 (by cl).
template <class R>
void shift_ri(Assembler& a, unsigned digit, R r, std::uint8_t count, const char* mn) {
  auto text = [&] { return insn(mn, r, ImmV{count}); };
  constexpr unsigned kMax = R::kBits == 64 ? 63 : 31;
  if (count > kMax) [[unlikely]]
    return fail_insn(a, text(), "shift count out of range");
  if (count == 1) return rr(a, sz<R>(0xD0), digit, rv(r), text);
  rr(a, sz<R>(0xC0), digit, rv(r), text, 1, count);
}
template <class R>
void shift_rcl(Assembler& a, unsigned digit, R r, Gp8 c, const char* mn) {
  auto text = [&] { return insn(mn, r, c); };
  if (c != cl) [[unlikely]]
    return fail_insn(a, text(), "the shift count register must be cl");
  rr(a, sz<R>(0xD2), digit, rv(r), text);
}
void shift_m(Assembler& a, unsigned digit, const Mem& m, int count, const char* mn) {
  // count < 0: by cl.
  auto text = [&] { return count < 0 ? insn(mn, m, cl) : insn(mn, m, ImmV{count}); };
  std::uint32_t w;
  switch (m.size) {
    case 1:
      w = 0;
      break;
    case 2:
      w = kOpSize16 | 1;
      break;
    case 4:
      w = 1;
      break;
    case 8:
      w = kW | 1;
      break;
    default:
      return need_size(a, text());
  }
  if (count > (m.size == 8 ? 63 : 31)) [[unlikely]]
    return fail_insn(a, text(), "shift count out of range");
  if (count < 0) return rm(a, 0xD2 + w, digit, m, 0, text);
  if (count == 1) return rm(a, 0xD0 + w, digit, m, 0, text);
  rm(a, 0xC0 + w, digit, m, 0, text, 1, count);
}

std::uint32_t cc_op(std::uint32_t base, Cond c) { return base + static_cast<std::uint32_t>(c); }

}  // namespace

// =========================================================================================
// Assembler: state
// =========================================================================================

namespace detail {
// What a destroyed Assembler leaves for the next one on its thread (see assembler.h): the byte
// buffer and the vectors, emptied but with their capacity. A JIT that constructs an Assembler
// per function otherwise regrows every vector from nothing and mallocs the buffer each time.
struct AssemblerStorage {
  std::uint8_t* buf = nullptr;  // nullptr: nothing kept
  std::size_t capacity = 0;
  std::vector<Assembler::Item> items;
  std::vector<Assembler::HostInsn> host_insns;
  std::vector<std::string> host_texts;
  std::vector<Assembler::Fixup> fixups;
  std::vector<Assembler::LabelState> labels;
  std::vector<Assembler::SiteState> sites;
  std::vector<std::uint8_t> pool;
  ~AssemblerStorage() { std::free(buf); }
};
// Larger buffers are freed rather than kept: one huge function must not pin its memory.
constexpr std::size_t kMaxKeptBytes = std::size_t{1} << 20;
template <class T>
void keep(std::vector<T>& from, std::vector<T>& to) {
  from.clear();
  if (from.capacity() * sizeof(T) <= kMaxKeptBytes) to = std::move(from);
}
}  // namespace detail

Assembler::Assembler(std::size_t reserve_bytes) {
  std::size_t cap = std::max<std::size_t>(reserve_bytes, 256);
  detail::AssemblerStorage* kept = detail::thread_slot<detail::AssemblerStorage>();
  if (kept != nullptr && kept->buf != nullptr) {
    buf_ = std::exchange(kept->buf, nullptr);
    if (kept->capacity < cap) {
      auto* nb = static_cast<std::uint8_t*>(std::realloc(buf_, cap));
      if (!nb) {
        std::free(buf_);
        throw std::bad_alloc();
      }
      buf_ = nb;
    } else {
      cap = kept->capacity;
    }
    items_ = std::move(kept->items);
    host_insns_ = std::move(kept->host_insns);
    host_texts_ = std::move(kept->host_texts);
    fixups_ = std::move(kept->fixups);
    labels_ = std::move(kept->labels);
    sites_ = std::move(kept->sites);
    pool_ = std::move(kept->pool);
  } else {
    buf_ = static_cast<std::uint8_t*>(std::malloc(cap));
    if (!buf_) throw std::bad_alloc();
  }
  cur_ = buf_;
  end_ = buf_ + cap;
}

Assembler::~Assembler() {
  const auto cap = static_cast<std::size_t>(end_ - buf_);
  if (buf_ != nullptr && cap <= detail::kMaxKeptBytes) {
    detail::AssemblerStorage* kept = detail::thread_slot<detail::AssemblerStorage>();
    if (kept != nullptr && kept->buf == nullptr) {
      kept->buf = buf_;
      kept->capacity = cap;
      detail::keep(items_, kept->items);
      detail::keep(host_insns_, kept->host_insns);
      detail::keep(host_texts_, kept->host_texts);
      detail::keep(fixups_, kept->fixups);
      detail::keep(labels_, kept->labels);
      detail::keep(sites_, kept->sites);
      detail::keep(pool_, kept->pool);
      return;
    }
  }
  std::free(buf_);
}

Assembler::Assembler(Assembler&& o) noexcept
    : buf_(o.buf_),
      cur_(o.cur_),
      end_(o.end_),
      error_(std::move(o.error_)),
      scratch_(o.scratch_),
      lock_at_(o.lock_at_),
      max_alignment_(o.max_alignment_),
      items_(std::move(o.items_)),
      host_insns_(std::move(o.host_insns_)),
      host_texts_(std::move(o.host_texts_)),
      fixups_(std::move(o.fixups_)),
      labels_(std::move(o.labels_)),
      sites_(std::move(o.sites_)),
      pool_(std::move(o.pool_)),
      pool_alignment_(o.pool_alignment_),
      slot_count_(o.slot_count_),
      items_bound_(o.items_bound_) {
  o.buf_ = o.cur_ = o.end_ = nullptr;
}

Assembler& Assembler::operator=(Assembler&& o) noexcept {
  if (this != &o) {
    std::free(buf_);
    buf_ = o.buf_;
    cur_ = o.cur_;
    end_ = o.end_;
    o.buf_ = o.cur_ = o.end_ = nullptr;
    error_ = std::move(o.error_);
    scratch_ = o.scratch_;
    lock_at_ = o.lock_at_;
    max_alignment_ = o.max_alignment_;
    items_ = std::move(o.items_);
    host_insns_ = std::move(o.host_insns_);
    host_texts_ = std::move(o.host_texts_);
    fixups_ = std::move(o.fixups_);
    labels_ = std::move(o.labels_);
    sites_ = std::move(o.sites_);
    pool_ = std::move(o.pool_);
    pool_alignment_ = o.pool_alignment_;
    slot_count_ = o.slot_count_;
    items_bound_ = o.items_bound_;
  }
  return *this;
}

void AssemblerAccess::grow(Assembler& a, std::size_t need) {
  std::size_t size = static_cast<std::size_t>(a.cur_ - a.buf_);
  std::size_t cap = static_cast<std::size_t>(a.end_ - a.buf_);
  std::size_t new_cap = std::max<std::size_t>(cap * 2, size + need + 256);
  auto* nb = static_cast<std::uint8_t*>(std::realloc(a.buf_, new_cap));
  if (!nb) throw std::bad_alloc();  // like std::vector: out of memory is not an assembler error
  a.buf_ = nb;
  a.cur_ = nb + size;
  a.end_ = nb + new_cap;
}

void AssemblerAccess::fail(Assembler& a, ErrorCode code, std::string message) {
  if (!a.error_) a.error_.emplace(code, std::move(message));
}

void Assembler::reset() {
  if (!buf_) {
    buf_ = static_cast<std::uint8_t*>(std::malloc(4096));
    if (!buf_) throw std::bad_alloc();
    end_ = buf_ + 4096;
  }
  cur_ = buf_;
  error_.reset();
  scratch_ = Mem::kNoReg;
  lock_at_ = 0xFFFFFFFFu;
  max_alignment_ = 1;
  items_.clear();
  host_insns_.clear();
  host_texts_.clear();
  fixups_.clear();
  labels_.clear();
  sites_.clear();
  pool_.clear();
  pool_alignment_ = 1;
  slot_count_ = 0;
  items_bound_ = 0;
}

void Assembler::allow_scratch(Gp64 reg) {
  if (reg == rsp) return fail_insn(*this, "allow_scratch rsp", "rsp cannot be a scratch register");
  scratch_ = reg.id;
}
void Assembler::forbid_scratch() { scratch_ = Mem::kNoReg; }
std::optional<Gp64> Assembler::scratch() const {
  if (scratch_ == Mem::kNoReg) return std::nullopt;
  return Gp64{scratch_};
}

std::size_t Assembler::site_count() const { return sites_.size(); }

Label Assembler::new_label() {
  labels_.emplace_back();
  return Label{static_cast<std::uint32_t>(labels_.size() - 1)};
}

void Assembler::bind(Label label) {
  if (label.id >= labels_.size()) return bad_label(*this, insn("bind", label));
  LabelState& s = labels_[label.id];
  if (s.section != LabelState::kUnbound)
    return fail_insn(*this, insn("bind", label), "label is already bound");
  s.pos = A::pos(*this);
  s.items_before = A::item_count(*this);
  s.section = LabelState::kCode;
}

bool Assembler::is_bound(Label label) const {
  return label.id < labels_.size() && labels_[label.id].section != LabelState::kUnbound;
}

std::size_t Assembler::size_upper_bound() const { return A::upper_bound(*this); }

std::size_t Assembler::required_alignment() const {
  return std::max<std::size_t>({max_alignment_, pool_alignment_, slot_count_ ? 8u : 1u});
}

Result<EncodedCode> Assembler::encode(std::uint64_t base_address) const {
  EncodedCode out;
  JITKIT_TRY(A::encode(*this, base_address, nullptr, 0, out));
  return out;
}

Status Assembler::encode_into(std::uint64_t base_address, EncodedCode& out) const {
  JITKIT_TRY(A::encode(*this, base_address, nullptr, 0, out));
  return jitkit::ok();
}

Result<std::size_t> Assembler::encode_to(std::uint64_t base_address, std::uint8_t* dst, std::size_t capacity,
                                         EncodedCode& records) const {
  if (dst == nullptr) {
    return Error(ErrorCode::kInvalidArgument, "assembler: encode_to: no destination for the bytes");
  }
  return A::encode(*this, base_address, dst, capacity, records);
}

// =========================================================================================
// Data movement
// =========================================================================================

#define JITKIT_RR(R)                                                                            \
  void Assembler::mov(R d, R s) {                                                               \
    rr(*this, sz<R>(0x88), rv(s), rv(d), [&] { return insn("mov", d, s); });                    \
  }                                                                                             \
  void Assembler::mov(R d, const Mem& m) {                                                      \
    rm(                                                                                         \
        *this, sz<R>(0x8A), rv(d), m, R::kBytes, [&] { return insn("mov", d, m); }, 0, 0, true, \
        rv(d) == 0 ? static_cast<std::uint8_t>(sz<R>(0xA0)) : 0);                               \
  }                                                                                             \
  void Assembler::mov(const Mem& m, R s) {                                                      \
    rm(                                                                                         \
        *this, sz<R>(0x88), rv(s), m, R::kBytes, [&] { return insn("mov", m, s); }, 0, 0, true, \
        rv(s) == 0 ? static_cast<std::uint8_t>(sz<R>(0xA2)) : 0);                               \
  }
JITKIT_RR(Gp8)
JITKIT_RR(Gp16)
JITKIT_RR(Gp32)
JITKIT_RR(Gp64)
#undef JITKIT_RR

void Assembler::mov(Gp8 d, std::int64_t imm) {
  auto text = [&] { return insn("mov", d, ImmV{imm}); };
  if (!imm_fits<8>(imm)) return fail_insn(*this, text(), imm_range_text<8>());
  ro(*this, 0xB0, rv(d), text, 1, imm);
}
void Assembler::mov(Gp16 d, std::int64_t imm) {
  auto text = [&] { return insn("mov", d, ImmV{imm}); };
  if (!imm_fits<16>(imm)) return fail_insn(*this, text(), imm_range_text<16>());
  ro(*this, 0xB8 | kOpSize16, rv(d), text, 2, imm);
}
void Assembler::mov(Gp32 d, std::int64_t imm) {
  auto text = [&] { return insn("mov", d, ImmV{imm}); };
  if (!imm_fits<32>(imm)) return fail_insn(*this, text(), imm_range_text<32>());
  ro(*this, 0xB8, rv(d), text, 4, imm);
}
void Assembler::mov(Gp64 d, std::int64_t imm) {
  auto text = [&] { return insn("mov", d, ImmV{imm}); };
  if (fits_unsigned<32>(static_cast<std::uint64_t>(imm))) {
    ro(*this, 0xB8, rv(d), text, 4, imm);  // mov r32, imm32 zero-extends
  } else if (fits_signed<32>(imm)) {
    rr(*this, 0xC7 | kW, 0, rv(d), text, 4, imm);
  } else {
    ro(*this, 0xB8 | kW, rv(d), text, 8, imm);
  }
}
void Assembler::movabs(Gp64 d, std::uint64_t imm) {
  ro(
      *this, 0xB8 | kW, rv(d), [&] { return insn("movabs", d, ImmV{static_cast<std::int64_t>(imm)}); }, 8,
      static_cast<std::int64_t>(imm));
}
namespace {
template <class R>
void moffs(Assembler& a, std::uint8_t op8, R r, HostAddress addr, bool load) {
  auto text = [&] { return load ? insn("movabs", r, addr) : insn("movabs", addr, r); };
  if (rv(r) != 0) return fail_insn(a, text(), "the moffs64 form exists only for al, ax, eax and rax");
  ro(a, sz<R>(op8), 0, text, 8, static_cast<std::int64_t>(addr.address));
}
}  // namespace
void Assembler::movabs(Gp8 d, HostAddress s) { moffs(*this, 0xA0, d, s, true); }
void Assembler::movabs(Gp16 d, HostAddress s) { moffs(*this, 0xA0, d, s, true); }
void Assembler::movabs(Gp32 d, HostAddress s) { moffs(*this, 0xA0, d, s, true); }
void Assembler::movabs(Gp64 d, HostAddress s) { moffs(*this, 0xA0, d, s, true); }
void Assembler::movabs(HostAddress d, Gp8 s) { moffs(*this, 0xA2, s, d, false); }
void Assembler::movabs(HostAddress d, Gp16 s) { moffs(*this, 0xA2, s, d, false); }
void Assembler::movabs(HostAddress d, Gp32 s) { moffs(*this, 0xA2, s, d, false); }
void Assembler::movabs(HostAddress d, Gp64 s) { moffs(*this, 0xA2, s, d, false); }

void Assembler::mov(const Mem& m, std::int64_t imm) {
  auto text = [&] { return insn("mov", m, ImmV{imm}); };
  switch (m.size) {
    case 1:
      if (!imm_fits<8>(imm)) return fail_insn(*this, text(), imm_range_text<8>());
      return rm(*this, 0xC6, 0, m, 1, text, 1, imm);
    case 2:
      if (!imm_fits<16>(imm)) return fail_insn(*this, text(), imm_range_text<16>());
      return rm(*this, 0xC7 | kOpSize16, 0, m, 2, text, 2, imm);
    case 4:
      if (!imm_fits<32>(imm)) return fail_insn(*this, text(), imm_range_text<32>());
      return rm(*this, 0xC7, 0, m, 4, text, 4, imm);
    case 8:
      if (!imm_fits<64>(imm)) return fail_insn(*this, text(), imm_range_text<64>());
      return rm(*this, 0xC7 | kW, 0, m, 8, text, 4, imm);
    default:
      return need_size(*this, text());
  }
}

#define JITKIT_MOVX_RR(mn, D, S, op)                                                      \
  void Assembler::mn(D d, S s) {                                                          \
    rr(*this, kEsc0F | (op) | wbits<D>(), rv(d), rv(s), [&] { return insn(#mn, d, s); }); \
  }
JITKIT_MOVX_RR(movzx, Gp16, Gp8, 0xB6)
JITKIT_MOVX_RR(movzx, Gp32, Gp8, 0xB6)
JITKIT_MOVX_RR(movzx, Gp64, Gp8, 0xB6)
JITKIT_MOVX_RR(movzx, Gp32, Gp16, 0xB7)
JITKIT_MOVX_RR(movzx, Gp64, Gp16, 0xB7)
JITKIT_MOVX_RR(movsx, Gp16, Gp8, 0xBE)
JITKIT_MOVX_RR(movsx, Gp32, Gp8, 0xBE)
JITKIT_MOVX_RR(movsx, Gp64, Gp8, 0xBE)
JITKIT_MOVX_RR(movsx, Gp32, Gp16, 0xBF)
JITKIT_MOVX_RR(movsx, Gp64, Gp16, 0xBF)
#undef JITKIT_MOVX_RR

#define JITKIT_MOVX_RM(mn, D, op8)                                                                \
  void Assembler::mn(D d, const Mem& m) {                                                         \
    auto text = [&] { return insn(#mn, d, m); };                                                  \
    if (m.size == 1) return rm(*this, kEsc0F | (op8) | wbits<D>(), rv(d), m, 1, text);            \
    if (m.size == 2 && D::kBits > 16)                                                             \
      return rm(*this, kEsc0F | ((op8) + 1) | wbits<D>(), rv(d), m, 2, text);                     \
    fail_insn(*this, text(),                                                                      \
              D::kBits > 16 ? "source must be byte_ptr or word_ptr" : "source must be byte_ptr"); \
  }
JITKIT_MOVX_RM(movzx, Gp16, 0xB6)
JITKIT_MOVX_RM(movzx, Gp32, 0xB6)
JITKIT_MOVX_RM(movzx, Gp64, 0xB6)
JITKIT_MOVX_RM(movsx, Gp16, 0xBE)
JITKIT_MOVX_RM(movsx, Gp32, 0xBE)
JITKIT_MOVX_RM(movsx, Gp64, 0xBE)
#undef JITKIT_MOVX_RM

void Assembler::movsxd(Gp64 d, Gp32 s) {
  rr(*this, 0x63 | kW, rv(d), rv(s), [&] { return insn("movsxd", d, s); });
}
void Assembler::movsxd(Gp64 d, const Mem& m) {
  rm(*this, 0x63 | kW, rv(d), m, 4, [&] { return insn("movsxd", d, m); });
}

void Assembler::lea(Gp32 d, const Mem& m) {
  auto text = [&] { return insn("lea", d, m); };
  if (m.kind == Mem::Kind::kHost)
    return fail_insn(*this, text(), "a 32-bit lea would truncate a host address; use a 64-bit register");
  rm(*this, 0x8D, rv(d), m, 0, text);
}
void Assembler::lea(Gp64 d, const Mem& m) {
  auto text = [&] { return insn("lea", d, m); };
  if (m.kind == Mem::Kind::kHost) {
    return host_item(*this, HostOp::kLea, 0x8D | kW, rv(d), 0, 0, static_cast<std::uint64_t>(m.disp), 0,
                     text(), false);
  }
  rm(*this, 0x8D | kW, rv(d), m, 0, text);
}

#define JITKIT_XCHG(R)                                                                         \
  void Assembler::xchg(R x, R y) {                                                             \
    auto text = [&] { return insn("xchg", x, y); };                                            \
    if constexpr (R::kBits > 8) {                                                              \
      bool eax_eax = R::kBits == 32 && x.id == 0 && y.id == 0;                                 \
      if (R::kBits == 64 && x.id == 0 && y.id == 0) return raw(*this, {0x90}); /* as GNU as */ \
      if (!eax_eax && (x.id == 0 || y.id == 0))                                                \
        return ro(*this, 0x90 | wbits<R>(), x.id == 0 ? rv(y) : rv(x), text);                  \
    }                                                                                          \
    rr(*this, sz<R>(0x86), rv(y), rv(x), text);                                                \
  }                                                                                            \
  void Assembler::xchg(const Mem& m, R r) {                                                    \
    rm(*this, sz<R>(0x86), rv(r), m, R::kBytes, [&] { return insn("xchg", m, r); });           \
  }
JITKIT_XCHG(Gp8)
JITKIT_XCHG(Gp16)
JITKIT_XCHG(Gp32)
JITKIT_XCHG(Gp64)
#undef JITKIT_XCHG

void Assembler::bswap(Gp32 r) {
  ro(*this, kEsc0F | 0xC8, rv(r), [&] { return insn("bswap", r); });
}
void Assembler::bswap(Gp64 r) {
  ro(*this, kEsc0F | 0xC8 | kW, rv(r), [&] { return insn("bswap", r); });
}

// =========================================================================================
// Integer arithmetic
// =========================================================================================

#define JITKIT_ALU(mn, op)                                                         \
  void Assembler::mn(Gp8 d, Gp8 s) { alu_rr(*this, op, d, s, #mn); }               \
  void Assembler::mn(Gp16 d, Gp16 s) { alu_rr(*this, op, d, s, #mn); }             \
  void Assembler::mn(Gp32 d, Gp32 s) { alu_rr(*this, op, d, s, #mn); }             \
  void Assembler::mn(Gp64 d, Gp64 s) { alu_rr(*this, op, d, s, #mn); }             \
  void Assembler::mn(Gp8 d, const Mem& m) { alu_rm(*this, op, d, m, #mn); }        \
  void Assembler::mn(Gp16 d, const Mem& m) { alu_rm(*this, op, d, m, #mn); }       \
  void Assembler::mn(Gp32 d, const Mem& m) { alu_rm(*this, op, d, m, #mn); }       \
  void Assembler::mn(Gp64 d, const Mem& m) { alu_rm(*this, op, d, m, #mn); }       \
  void Assembler::mn(const Mem& m, Gp8 s) { alu_mr(*this, op, m, s, #mn); }        \
  void Assembler::mn(const Mem& m, Gp16 s) { alu_mr(*this, op, m, s, #mn); }       \
  void Assembler::mn(const Mem& m, Gp32 s) { alu_mr(*this, op, m, s, #mn); }       \
  void Assembler::mn(const Mem& m, Gp64 s) { alu_mr(*this, op, m, s, #mn); }       \
  void Assembler::mn(Gp8 d, std::int64_t imm) { alu_ri(*this, op, d, imm, #mn); }  \
  void Assembler::mn(Gp16 d, std::int64_t imm) { alu_ri(*this, op, d, imm, #mn); } \
  void Assembler::mn(Gp32 d, std::int64_t imm) { alu_ri(*this, op, d, imm, #mn); } \
  void Assembler::mn(Gp64 d, std::int64_t imm) { alu_ri(*this, op, d, imm, #mn); } \
  void Assembler::mn(const Mem& m, std::int64_t imm) { alu_mi(*this, op, m, imm, #mn); }
JITKIT_ALU(add, 0)
JITKIT_ALU(or_, 1)
JITKIT_ALU(adc, 2)
JITKIT_ALU(sbb, 3)
JITKIT_ALU(and_, 4)
JITKIT_ALU(sub, 5)
JITKIT_ALU(xor_, 6)
JITKIT_ALU(cmp, 7)
#undef JITKIT_ALU

#define JITKIT_TEST(R)                                                                      \
  void Assembler::test(R x, R y) {                                                          \
    rr(*this, sz<R>(0x84), rv(y), rv(x), [&] { return insn("test", x, y); });               \
  }                                                                                         \
  void Assembler::test(const Mem& m, R r) {                                                 \
    rm(*this, sz<R>(0x84), rv(r), m, R::kBytes, [&] { return insn("test", m, r); });        \
  }                                                                                         \
  void Assembler::test(R r, std::int64_t imm) {                                             \
    auto text = [&] { return insn("test", r, ImmV{imm}); };                                 \
    if (!imm_fits<R::kBits>(imm)) return fail_insn(*this, text(), imm_range_text_for<R>()); \
    if (rv(r) == 0) {                                                                       \
      A::ensure(*this, 32);                                                                 \
      std::uint8_t* p = put_head(cur_, sz<R>(0xA8), R::kBits == 64 ? 8 : 0);                \
      cur_ = put_imm(p, imm_size<R::kBits>(), imm);                                         \
      return;                                                                               \
    }                                                                                       \
    rr(*this, sz<R>(0xF6), 0, rv(r), text, imm_size<R::kBits>(), imm);                      \
  }
JITKIT_TEST(Gp8)
JITKIT_TEST(Gp16)
JITKIT_TEST(Gp32)
JITKIT_TEST(Gp64)
#undef JITKIT_TEST

void Assembler::test(const Mem& m, std::int64_t imm) {
  auto text = [&] { return insn("test", m, ImmV{imm}); };
  switch (m.size) {
    case 1:
      if (!imm_fits<8>(imm)) return fail_insn(*this, text(), imm_range_text<8>());
      return rm(*this, 0xF6, 0, m, 1, text, 1, imm);
    case 2:
      if (!imm_fits<16>(imm)) return fail_insn(*this, text(), imm_range_text<16>());
      return rm(*this, 0xF7 | kOpSize16, 0, m, 2, text, 2, imm);
    case 4:
      if (!imm_fits<32>(imm)) return fail_insn(*this, text(), imm_range_text<32>());
      return rm(*this, 0xF7, 0, m, 4, text, 4, imm);
    case 8:
      if (!imm_fits<64>(imm)) return fail_insn(*this, text(), imm_range_text<64>());
      return rm(*this, 0xF7 | kW, 0, m, 8, text, 4, imm);
    default:
      return need_size(*this, text());
  }
}

#define JITKIT_UNARY(mn, op8, digit)                                 \
  void Assembler::mn(Gp8 r) { unary_r(*this, op8, digit, r, #mn); }  \
  void Assembler::mn(Gp16 r) { unary_r(*this, op8, digit, r, #mn); } \
  void Assembler::mn(Gp32 r) { unary_r(*this, op8, digit, r, #mn); } \
  void Assembler::mn(Gp64 r) { unary_r(*this, op8, digit, r, #mn); } \
  void Assembler::mn(const Mem& m) { unary_m(*this, op8, digit, m, #mn); }
JITKIT_UNARY(inc, 0xFE, 0)
JITKIT_UNARY(dec, 0xFE, 1)
JITKIT_UNARY(not_, 0xF6, 2)
JITKIT_UNARY(neg, 0xF6, 3)
JITKIT_UNARY(mul, 0xF6, 4)
JITKIT_UNARY(imul, 0xF6, 5)
JITKIT_UNARY(div, 0xF6, 6)
JITKIT_UNARY(idiv, 0xF6, 7)
#undef JITKIT_UNARY

#define JITKIT_IMUL(R)                                                                              \
  void Assembler::imul(R d, R s) {                                                                  \
    rr(*this, kEsc0F | 0xAF | wbits<R>(), rv(d), rv(s), [&] { return insn("imul", d, s); });        \
  }                                                                                                 \
  void Assembler::imul(R d, const Mem& m) {                                                         \
    rm(*this, kEsc0F | 0xAF | wbits<R>(), rv(d), m, R::kBytes, [&] { return insn("imul", d, m); }); \
  }                                                                                                 \
  void Assembler::imul(R d, R s, std::int64_t imm) {                                                \
    auto text = [&] { return insn("imul", d, s, ImmV{imm}); };                                      \
    if (!imm_fits<R::kBits>(imm)) return fail_insn(*this, text(), imm_range_text_for<R>());         \
    std::int64_t v = sext<R::kBits>(imm);                                                           \
    if (fits_signed<8>(v)) return rr(*this, 0x6B | wbits<R>(), rv(d), rv(s), text, 1, v);           \
    rr(*this, 0x69 | wbits<R>(), rv(d), rv(s), text, imm_size<R::kBits>(), v);                      \
  }                                                                                                 \
  void Assembler::imul(R d, const Mem& m, std::int64_t imm) {                                       \
    auto text = [&] { return insn("imul", d, m, ImmV{imm}); };                                      \
    if (!imm_fits<R::kBits>(imm)) return fail_insn(*this, text(), imm_range_text_for<R>());         \
    std::int64_t v = sext<R::kBits>(imm);                                                           \
    if (fits_signed<8>(v)) return rm(*this, 0x6B | wbits<R>(), rv(d), m, R::kBytes, text, 1, v);    \
    rm(*this, 0x69 | wbits<R>(), rv(d), m, R::kBytes, text, imm_size<R::kBits>(), v);               \
  }
JITKIT_IMUL(Gp16)
JITKIT_IMUL(Gp32)
JITKIT_IMUL(Gp64)
#undef JITKIT_IMUL

void Assembler::cwd() { raw(*this, {0x66, 0x99}); }
void Assembler::cdq() { raw(*this, {0x99}); }
void Assembler::cqo() { raw(*this, {0x48, 0x99}); }
void Assembler::cdqe() { raw(*this, {0x48, 0x98}); }

// =========================================================================================
// Shifts, bit operations, conditions
// =========================================================================================

#define JITKIT_SHIFT(mn, digit)                                                                   \
  void Assembler::mn(Gp8 r, std::uint8_t c) { shift_ri(*this, digit, r, c, #mn); }                \
  void Assembler::mn(Gp16 r, std::uint8_t c) { shift_ri(*this, digit, r, c, #mn); }               \
  void Assembler::mn(Gp32 r, std::uint8_t c) { shift_ri(*this, digit, r, c, #mn); }               \
  void Assembler::mn(Gp64 r, std::uint8_t c) { shift_ri(*this, digit, r, c, #mn); }               \
  void Assembler::mn(const Mem& m, std::uint8_t c) { shift_m(*this, digit, m, c, #mn); }          \
  void Assembler::mn(Gp8 r, Gp8 c) { shift_rcl(*this, digit, r, c, #mn); }                        \
  void Assembler::mn(Gp16 r, Gp8 c) { shift_rcl(*this, digit, r, c, #mn); }                       \
  void Assembler::mn(Gp32 r, Gp8 c) { shift_rcl(*this, digit, r, c, #mn); }                       \
  void Assembler::mn(Gp64 r, Gp8 c) { shift_rcl(*this, digit, r, c, #mn); }                       \
  void Assembler::mn(const Mem& m, Gp8 c) {                                                       \
    if (c != cl) return fail_insn(*this, insn(#mn, m, c), "the shift count register must be cl"); \
    shift_m(*this, digit, m, -1, #mn);                                                            \
  }
JITKIT_SHIFT(rol, 0)
JITKIT_SHIFT(ror, 1)
JITKIT_SHIFT(shl, 4)
JITKIT_SHIFT(shr, 5)
JITKIT_SHIFT(sar, 7)
#undef JITKIT_SHIFT

#define JITKIT_BT_R(mn, R, op, digit)                                                            \
  void Assembler::mn(R r, R b) {                                                                 \
    rr(*this, kEsc0F | (op) | wbits<R>(), rv(b), rv(r), [&] { return insn(#mn, r, b); });        \
  }                                                                                              \
  void Assembler::mn(const Mem& m, R b) {                                                        \
    rm(*this, kEsc0F | (op) | wbits<R>(), rv(b), m, R::kBytes, [&] { return insn(#mn, m, b); }); \
  }                                                                                              \
  void Assembler::mn(R r, std::uint8_t bit) {                                                    \
    auto text = [&] { return insn(#mn, r, ImmV{bit}); };                                         \
    if (bit >= R::kBits) return fail_insn(*this, text(), "bit index out of range");              \
    rr(*this, kEsc0F | 0xBA | wbits<R>(), digit, rv(r), text, 1, bit);                           \
  }
#define JITKIT_BT(mn, op, digit)                                                                \
  JITKIT_BT_R(mn, Gp16, op, digit)                                                              \
  JITKIT_BT_R(mn, Gp32, op, digit)                                                              \
  JITKIT_BT_R(mn, Gp64, op, digit)                                                              \
  void Assembler::mn(const Mem& m, std::uint8_t bit) {                                          \
    auto text = [&] { return insn(#mn, m, ImmV{bit}); };                                        \
    std::uint32_t w = m.size == 2 ? kOpSize16 : m.size == 8 ? kW : 0;                           \
    if (m.size != 2 && m.size != 4 && m.size != 8)                                              \
      return fail_insn(*this, text(), "memory operand needs word_ptr, dword_ptr or qword_ptr"); \
    if (bit >= m.size * 8u) return fail_insn(*this, text(), "bit index out of range");          \
    rm(*this, kEsc0F | 0xBA | w, digit, m, 0, text, 1, bit);                                    \
  }
JITKIT_BT(bt, 0xA3, 4)
JITKIT_BT(bts, 0xAB, 5)
JITKIT_BT(btr, 0xB3, 6)
#undef JITKIT_BT
#undef JITKIT_BT_R

#define JITKIT_CNT_R(mn, R, op)                                                                         \
  void Assembler::mn(R d, R s) {                                                                        \
    rr(*this, kPF3 | kEsc0F | (op) | wbits<R>(), rv(d), rv(s), [&] { return insn(#mn, d, s); });        \
  }                                                                                                     \
  void Assembler::mn(R d, const Mem& m) {                                                               \
    rm(*this, kPF3 | kEsc0F | (op) | wbits<R>(), rv(d), m, R::kBytes, [&] { return insn(#mn, d, m); }); \
  }
#define JITKIT_CNT(mn, op) JITKIT_CNT_R(mn, Gp16, op) JITKIT_CNT_R(mn, Gp32, op) JITKIT_CNT_R(mn, Gp64, op)
JITKIT_CNT(popcnt, 0xB8)
JITKIT_CNT(lzcnt, 0xBD)
JITKIT_CNT(tzcnt, 0xBC)
#undef JITKIT_CNT
#undef JITKIT_CNT_R

void Assembler::setcc(Cond c, Gp8 d) {
  rr(*this, kEsc0F | cc_op(0x90, c), 0, rv(d),
     [&] { return std::string("set") + std::string(name(c)) + " " + txt(d); });
}
void Assembler::setcc(Cond c, const Mem& m) {
  rm(*this, kEsc0F | cc_op(0x90, c), 0, m, 1,
     [&] { return std::string("set") + std::string(name(c)) + " " + txt(m); });
}
#define JITKIT_CMOV(R)                                                                             \
  void Assembler::cmovcc(Cond c, R d, R s) {                                                       \
    rr(*this, kEsc0F | cc_op(0x40, c) | wbits<R>(), rv(d), rv(s),                                  \
       [&] { return std::string("cmov") + std::string(name(c)) + " " + txt(d) + ", " + txt(s); }); \
  }                                                                                                \
  void Assembler::cmovcc(Cond c, R d, const Mem& m) {                                              \
    rm(*this, kEsc0F | cc_op(0x40, c) | wbits<R>(), rv(d), m, R::kBytes,                           \
       [&] { return std::string("cmov") + std::string(name(c)) + " " + txt(d) + ", " + txt(m); }); \
  }
JITKIT_CMOV(Gp16)
JITKIT_CMOV(Gp32)
JITKIT_CMOV(Gp64)
#undef JITKIT_CMOV

// =========================================================================================
// Control flow
// =========================================================================================

namespace {
// jmp (is_jcc false) or jcc to a label: see "Jumps to labels" in assembler.h.
void jump(Assembler& a, bool is_jcc, Cond c, Label t, JumpForm form) {
  auto text = [&] { return (is_jcc ? "j" + std::string(name(c)) : std::string("jmp")) + " " + txt(t); };
  auto& labels = A::labels(a);
  if (t.id >= labels.size()) [[unlikely]]
    return bad_label(a, text());
  if (after_lock(a)) [[unlikely]]
    return bad_lock(a, text(), false);
  A::ensure(a, 16);
  const auto& L = labels[t.id];
  std::uint32_t pos = A::pos(a);
  std::uint8_t* p = A::cur(a);
  const auto cc = static_cast<std::uint8_t>(c);
  if (L.section == Assembler::LabelState::kCode && L.items_before == A::item_count(a)) {
    // Backward with nothing variable in between: the distance is final now.
    std::int64_t rel8 = static_cast<std::int64_t>(L.pos) - (pos + 2);
    if (form != JumpForm::kNear && fits_signed<8>(rel8)) {
      p[0] = is_jcc ? static_cast<std::uint8_t>(0x70 | cc) : 0xEB;
      p[1] = static_cast<std::uint8_t>(rel8);
      A::cur(a) = p + 2;
      return;
    }
    if (form == JumpForm::kShort) return fail_insn(a, text(), "short jump does not reach its label");
    if (is_jcc) {
      p[0] = 0x0F;
      p[1] = static_cast<std::uint8_t>(0x80 | cc);
      put32(p + 2, static_cast<std::uint32_t>(static_cast<std::int64_t>(L.pos) - (pos + 6)));
      A::cur(a) = p + 6;
    } else {
      p[0] = 0xE9;
      put32(p + 1, static_cast<std::uint32_t>(static_cast<std::int64_t>(L.pos) - (pos + 5)));
      A::cur(a) = p + 5;
    }
    return;
  }
  if (form == JumpForm::kShort) {
    p[0] = is_jcc ? static_cast<std::uint8_t>(0x70 | cc) : 0xEB;
    p[1] = 0;
    A::cur(a) = p + 2;
    A::fixups(a).push_back(Assembler::Fixup{pos + 1, t.id, 0, FixupKind::kRel8, 0});
    return;
  }
  if (form == JumpForm::kNear) {
    std::uint32_t field = is_jcc ? pos + 2 : pos + 1;
    if (is_jcc) {
      p[0] = 0x0F;
      p[1] = static_cast<std::uint8_t>(0x80 | cc);
    } else {
      p[0] = 0xE9;
    }
    put32(A::buf(a) + field, 0);
    A::cur(a) = A::buf(a) + field + 4;
    A::fixups(a).push_back(Assembler::Fixup{field, t.id, 0, FixupKind::kRel32, 0});
    return;
  }
  A::items(a).push_back(Assembler::Item{pos, is_jcc ? ItemKind::kJcc : ItemKind::kJmp, cc, 0, 0, t.id});
  A::items_bound(a) += is_jcc ? 6 : 5;  // the near form
}

// call/jmp rel32 to a label (fixed size): opcode E8/E9.
void rel32_to_label(Assembler& a, std::uint8_t opcode, Label t, const char* mn) {
  if (t.id >= A::labels(a).size()) [[unlikely]]
    return bad_label(a, insn(mn, t));
  if (after_lock(a)) [[unlikely]]
    return bad_lock(a, insn(mn, t), false);
  A::ensure(a, 16);
  std::uint32_t pos = A::pos(a);
  std::uint8_t* p = A::cur(a);
  p[0] = opcode;
  put32(p + 1, 0);
  A::cur(a) = p + 5;
  A::fixups(a).push_back(Assembler::Fixup{pos + 1, t.id, 0, FixupKind::kRel32, 0});
}
}  // namespace

void Assembler::jcc(Cond c, Label t, JumpForm f) { jump(*this, true, c, t, f); }
void Assembler::jmp(Label t, JumpForm f) { jump(*this, false, Cond::kO, t, f); }
void Assembler::call(Label t) { rel32_to_label(*this, 0xE8, t, "call"); }
// No text: host_text() derives it ("jmp 0x..."), as insn() would have written it.
void Assembler::jmp(HostAddress t) {
  if (after_lock(*this)) return bad_lock(*this, insn("jmp", t), false);
  host_item(*this, HostOp::kJmp, 0xFF, 4, 0, 0, t.address, 0, std::string(), false);
}
void Assembler::call(HostAddress t) {
  if (after_lock(*this)) return bad_lock(*this, insn("call", t), false);
  host_item(*this, HostOp::kCall, 0xFF, 2, 0, 0, t.address, 0, std::string(), false);
}
void Assembler::jmp(Gp64 r) {
  rr(*this, 0xFF, 4, rv(r), [&] { return insn("jmp", r); });
}
void Assembler::call(Gp64 r) {
  rr(*this, 0xFF, 2, rv(r), [&] { return insn("call", r); });
}
void Assembler::jmp(const Mem& m) {
  rm(
      *this, 0xFF, 4, m, 8, [&] { return insn("jmp", m); }, 0, 0, false);
}
void Assembler::call(const Mem& m) {
  rm(
      *this, 0xFF, 2, m, 8, [&] { return insn("call", m); }, 0, 0, false);
}
void Assembler::ret() { raw(*this, {0xC3}); }
void Assembler::ret(std::uint16_t n) {
  raw(*this, {0xC2, static_cast<std::uint8_t>(n), static_cast<std::uint8_t>(n >> 8)});
}
void Assembler::push(Gp64 r) {
  ro(*this, 0x50, rv(r), [&] { return insn("push", r); });
}
void Assembler::pop(Gp64 r) {
  ro(*this, 0x58, rv(r), [&] { return insn("pop", r); });
}
void Assembler::push(const Mem& m) {
  rm(
      *this, 0xFF, 6, m, 8, [&] { return insn("push", m); }, 0, 0, false);
}
void Assembler::pop(const Mem& m) {
  rm(
      *this, 0x8F, 0, m, 8, [&] { return insn("pop", m); }, 0, 0, false);
}
void Assembler::push(std::int32_t imm) {
  A::ensure(*this, 16);
  if (fits_signed<8>(imm)) {
    cur_[0] = 0x6A;
    cur_[1] = static_cast<std::uint8_t>(imm);
    cur_ += 2;
  } else {
    cur_[0] = 0x68;
    put32(cur_ + 1, static_cast<std::uint32_t>(imm));
    cur_ += 5;
  }
}

// =========================================================================================
// Atomics, ordering, miscellaneous
// =========================================================================================

void Assembler::lock() {
  raw(*this, {0xF0});
  lock_at_ = A::pos(*this);
}

#define JITKIT_XOP_M(mn, R, op8)                                                          \
  void Assembler::mn(const Mem& m, R r) {                                                 \
    rm(*this, kEsc0F | sz<R>(op8), rv(r), m, R::kBytes, [&] { return insn(#mn, m, r); }); \
  }
#define JITKIT_XOP_R(mn, R, op8)                                                   \
  void Assembler::mn(R d, R s) {                                                   \
    rr(*this, kEsc0F | sz<R>(op8), rv(s), rv(d), [&] { return insn(#mn, d, s); }); \
  }
JITKIT_XOP_M(cmpxchg, Gp8, 0xB0)
JITKIT_XOP_M(cmpxchg, Gp16, 0xB0)
JITKIT_XOP_M(cmpxchg, Gp32, 0xB0)
JITKIT_XOP_M(cmpxchg, Gp64, 0xB0)
JITKIT_XOP_R(cmpxchg, Gp32, 0xB0)
JITKIT_XOP_R(cmpxchg, Gp64, 0xB0)
JITKIT_XOP_M(xadd, Gp8, 0xC0)
JITKIT_XOP_M(xadd, Gp16, 0xC0)
JITKIT_XOP_M(xadd, Gp32, 0xC0)
JITKIT_XOP_M(xadd, Gp64, 0xC0)
JITKIT_XOP_R(xadd, Gp32, 0xC0)
JITKIT_XOP_R(xadd, Gp64, 0xC0)
#undef JITKIT_XOP_M
#undef JITKIT_XOP_R

void Assembler::mfence() { raw(*this, {0x0F, 0xAE, 0xF0}); }
void Assembler::lfence() { raw(*this, {0x0F, 0xAE, 0xE8}); }
void Assembler::sfence() { raw(*this, {0x0F, 0xAE, 0xF8}); }
void Assembler::pause() { raw(*this, {0xF3, 0x90}); }
void Assembler::ud2() { raw(*this, {0x0F, 0x0B}); }
void Assembler::int3() { raw(*this, {0xCC}); }
void Assembler::nop() { raw(*this, {0x90}); }
void Assembler::nop(std::size_t n) {
  if (n < 1 || n > 15) {
    char t[32];
    std::snprintf(t, sizeof t, "nop %zu", n);
    return fail_insn(*this, t, "a NOP instruction is 1 to 15 bytes long");
  }
  A::ensure(*this, 16);
  cur_ = put_nop(cur_, static_cast<unsigned>(n));
}
void Assembler::cpuid() { raw(*this, {0x0F, 0xA2}); }
void Assembler::rdtsc() { raw(*this, {0x0F, 0x31}); }
void Assembler::rdtscp() { raw(*this, {0x0F, 0x01, 0xF9}); }

// =========================================================================================
// SSE2 scalar double
// =========================================================================================

void Assembler::movsd(Xmm d, Xmm s) {
  rr(*this, kPF2 | kEsc0F | 0x10, rv(d), rv(s), [&] { return insn("movsd", d, s); });
}
void Assembler::movsd(Xmm d, const Mem& m) {
  rm(
      *this, kPF2 | kEsc0F | 0x10, rv(d), m, 8, [&] { return insn("movsd", d, m); }, 0, 0, false);
}
void Assembler::movsd(const Mem& m, Xmm s) {
  rm(
      *this, kPF2 | kEsc0F | 0x11, rv(s), m, 8, [&] { return insn("movsd", m, s); }, 0, 0, false);
}
void Assembler::movq(Xmm d, Xmm s) {
  rr(*this, kPF3 | kEsc0F | 0x7E, rv(d), rv(s), [&] { return insn("movq", d, s); });
}
void Assembler::movq(Xmm d, Gp64 s) {
  rr(*this, kP66 | kW | kEsc0F | 0x6E, rv(d), rv(s), [&] { return insn("movq", d, s); });
}
void Assembler::movq(Gp64 d, Xmm s) {
  rr(*this, kP66 | kW | kEsc0F | 0x7E, rv(s), rv(d), [&] { return insn("movq", d, s); });
}
void Assembler::movq(Xmm d, const Mem& m) {
  rm(
      *this, kPF3 | kEsc0F | 0x7E, rv(d), m, 8, [&] { return insn("movq", d, m); }, 0, 0, false);
}
void Assembler::movq(const Mem& m, Xmm s) {
  rm(
      *this, kP66 | kEsc0F | 0xD6, rv(s), m, 8, [&] { return insn("movq", m, s); }, 0, 0, false);
}
void Assembler::movd(Xmm d, Gp32 s) {
  rr(*this, kP66 | kEsc0F | 0x6E, rv(d), rv(s), [&] { return insn("movd", d, s); });
}
void Assembler::movd(Gp32 d, Xmm s) {
  rr(*this, kP66 | kEsc0F | 0x7E, rv(s), rv(d), [&] { return insn("movd", d, s); });
}
void Assembler::movapd(Xmm d, Xmm s) {
  rr(*this, kP66 | kEsc0F | 0x28, rv(d), rv(s), [&] { return insn("movapd", d, s); });
}
void Assembler::movapd(Xmm d, const Mem& m) {
  rm(
      *this, kP66 | kEsc0F | 0x28, rv(d), m, 16, [&] { return insn("movapd", d, m); }, 0, 0, false);
}
void Assembler::movapd(const Mem& m, Xmm s) {
  rm(
      *this, kP66 | kEsc0F | 0x29, rv(s), m, 16, [&] { return insn("movapd", m, s); }, 0, 0, false);
}
#define JITKIT_SSE(mn, e, msize)                                                  \
  void Assembler::mn(Xmm d, Xmm s) {                                              \
    rr(*this, e, rv(d), rv(s), [&] { return insn(#mn, d, s); });                  \
  }                                                                               \
  void Assembler::mn(Xmm d, const Mem& m) {                                       \
    rm(                                                                           \
        *this, e, rv(d), m, msize, [&] { return insn(#mn, d, m); }, 0, 0, false); \
  }
JITKIT_SSE(addsd, kPF2 | kEsc0F | 0x58, 8)
JITKIT_SSE(mulsd, kPF2 | kEsc0F | 0x59, 8)
JITKIT_SSE(subsd, kPF2 | kEsc0F | 0x5C, 8)
JITKIT_SSE(minsd, kPF2 | kEsc0F | 0x5D, 8)
JITKIT_SSE(divsd, kPF2 | kEsc0F | 0x5E, 8)
JITKIT_SSE(maxsd, kPF2 | kEsc0F | 0x5F, 8)
JITKIT_SSE(sqrtsd, kPF2 | kEsc0F | 0x51, 8)
JITKIT_SSE(ucomisd, kP66 | kEsc0F | 0x2E, 8)
JITKIT_SSE(comisd, kP66 | kEsc0F | 0x2F, 8)
JITKIT_SSE(andpd, kP66 | kEsc0F | 0x54, 16)
JITKIT_SSE(xorpd, kP66 | kEsc0F | 0x57, 16)
#undef JITKIT_SSE

void Assembler::cvtsi2sd(Xmm d, Gp32 s) {
  rr(*this, kPF2 | kEsc0F | 0x2A, rv(d), rv(s), [&] { return insn("cvtsi2sd", d, s); });
}
void Assembler::cvtsi2sd(Xmm d, Gp64 s) {
  rr(*this, kPF2 | kW | kEsc0F | 0x2A, rv(d), rv(s), [&] { return insn("cvtsi2sd", d, s); });
}
void Assembler::cvtsi2sd(Xmm d, const Mem& m) {
  auto text = [&] { return insn("cvtsi2sd", d, m); };
  if (m.size == 4) return rm(*this, kPF2 | kEsc0F | 0x2A, rv(d), m, 4, text, 0, 0, false);
  if (m.size == 8) return rm(*this, kPF2 | kW | kEsc0F | 0x2A, rv(d), m, 8, text, 0, 0, false);
  fail_insn(*this, text(), "source must be dword_ptr or qword_ptr");
}
void Assembler::cvttsd2si(Gp32 d, Xmm s) {
  rr(*this, kPF2 | kEsc0F | 0x2C, rv(d), rv(s), [&] { return insn("cvttsd2si", d, s); });
}
void Assembler::cvttsd2si(Gp64 d, Xmm s) {
  rr(*this, kPF2 | kW | kEsc0F | 0x2C, rv(d), rv(s), [&] { return insn("cvttsd2si", d, s); });
}
void Assembler::cvttsd2si(Gp32 d, const Mem& m) {
  rm(*this, kPF2 | kEsc0F | 0x2C, rv(d), m, 8, [&] { return insn("cvttsd2si", d, m); });
}
void Assembler::cvttsd2si(Gp64 d, const Mem& m) {
  rm(*this, kPF2 | kW | kEsc0F | 0x2C, rv(d), m, 8, [&] { return insn("cvttsd2si", d, m); });
}

// =========================================================================================
// Data, alignment, constants
// =========================================================================================

void Assembler::db(std::uint8_t v) { raw(*this, {v}); }
void Assembler::dw(std::uint16_t v) {
  A::ensure(*this, 16);
  put16(cur_, v);
  cur_ += 2;
}
void Assembler::dd(std::uint32_t v) {
  A::ensure(*this, 16);
  put32(cur_, v);
  cur_ += 4;
}
void Assembler::dq(std::uint64_t v) {
  A::ensure(*this, 16);
  put64(cur_, v);
  cur_ += 8;
}
void Assembler::bytes(const void* data, std::size_t n) {
  A::ensure(*this, n + 16);
  if (n) std::memcpy(cur_, data, n);
  cur_ += n;
}
void Assembler::dq(Label l) {
  if (l.id >= labels_.size()) return bad_label(*this, insn("dq", l));
  std::uint32_t pos = A::pos(*this);
  dq(std::uint64_t{0});
  fixups_.push_back(Fixup{pos, l.id, 0, FixupKind::kAbs64, 0});
}
void Assembler::dd_rel(Label target, Label base) {
  if (target.id >= labels_.size() || base.id >= labels_.size())
    return bad_label(*this, insn("dd_rel", target, base));
  std::uint32_t pos = A::pos(*this);
  dd(0);
  fixups_.push_back(Fixup{pos, target.id, static_cast<std::int32_t>(base.id), FixupKind::kDiff32, 0});
}

namespace {
// NOP padding so that (final offset + skew) is a multiple of `alignment`. Emitted directly when
// no variable item precedes it (offsets are final then), otherwise kept as an item.
void pad_to(Assembler& a, std::uint32_t alignment, std::uint32_t skew) {
  auto& maxa = A::max_alignment(a);
  maxa = std::max(maxa, alignment);
  if (A::items(a).empty()) {
    const std::uint32_t from = A::pos(a) + skew;
    const auto pad = static_cast<std::uint32_t>(align_up(from, alignment) - from);
    A::ensure(a, pad + 16);
    A::cur(a) = put_nops(A::cur(a), pad);
    return;
  }
  A::items(a).push_back(
      Assembler::Item{A::pos(a), ItemKind::kAlign, 0, static_cast<std::uint8_t>(skew), 0, alignment});
  A::items_bound(a) += alignment - 1;
}
}  // namespace

void Assembler::align(std::size_t alignment) {
  if (!is_power_of_two(alignment) || alignment > 64) {
    char t[48];
    std::snprintf(t, sizeof t, "align %zu", alignment);
    return fail_insn(*this, t, "alignment must be a power of two up to 64");
  }
  pad_to(*this, static_cast<std::uint32_t>(alignment), 0);
}

Label Assembler::constant(const void* data, std::size_t n, std::size_t alignment) {
  if (alignment == 0) alignment = 1;
  if (!is_power_of_two(alignment) || alignment > 64 || n == 0) {
    fail_insn(*this, "constant", "needs a non-empty value and a power-of-two alignment up to 64");
    return new_label();
  }
  std::size_t off = pool_.size() + 1;  // not found
  for (std::size_t o = 0; o + n <= pool_.size(); o += alignment) {
    if (std::memcmp(pool_.data() + o, data, n) == 0) {
      off = o;
      break;
    }
  }
  if (off > pool_.size()) {
    off = align_up(pool_.size(), alignment);
    pool_.resize(off + n);
    std::memcpy(pool_.data() + off, data, n);
  }
  pool_alignment_ = std::max<std::uint32_t>(pool_alignment_, static_cast<std::uint32_t>(alignment));
  Label l = new_label();
  LabelState& s = labels_[l.id];
  s.pos = static_cast<std::uint32_t>(off);
  s.section = LabelState::kPool;
  return l;
}
Label Assembler::constant_u64(std::uint64_t v) { return constant(&v, 8, 8); }
Label Assembler::constant_f64(double v) { return constant(&v, 8, 8); }

// =========================================================================================
// Patchable sites
// =========================================================================================

namespace {
// Pads so the field lands naturally aligned, then returns the site skeleton with the
// instruction's start recorded.
Assembler::SiteState site_begin(Assembler& a, PatchSiteKind kind, std::uint8_t field_in_insn,
                                std::uint8_t field_size, std::uint8_t insn_size) {
  Assembler::SiteState s{};
  s.kind = kind;
  s.pad_pos = A::pos(a);
  s.pad_items = A::item_count(a);
  pad_to(a, field_size, field_in_insn);
  s.insn_pos = A::pos(a);
  s.insn_items = A::item_count(a);
  s.insn_size = insn_size;
  s.field_in_insn = field_in_insn;
  s.field_size = field_size;
  s.enabled = true;
  s.label = Label::kInvalidId;
  s.host = 0;
  s.has_host = false;
  return s;
}
PatchSiteId site_end(Assembler& a, const Assembler::SiteState& s) {
  auto& sites = A::sites(a);
  sites.push_back(s);
  return PatchSiteId{static_cast<std::uint32_t>(sites.size() - 1)};
}
PatchSiteId rel32_site(Assembler& a, PatchSiteKind kind, std::uint8_t opcode, Label t, const char* mn) {
  if (t.id >= A::labels(a).size()) {
    bad_label(a, insn(mn, t));
    t = a.new_label();  // keep the site list consistent; the sticky error refuses the code
  }
  auto s = site_begin(a, kind, 1, 4, 5);
  rel32_to_label(a, opcode, t, mn);
  s.label = t.id;
  return site_end(a, s);
}
PatchSiteId host_rel32_site(Assembler& a, PatchSiteKind kind, std::uint8_t opcode, HostAddress t) {
  auto s = site_begin(a, kind, 1, 4, 5);
  A::ensure(a, 16);
  std::uint32_t pos = A::pos(a);
  A::cur(a)[0] = opcode;
  put32(A::cur(a) + 1, 0);
  A::cur(a) += 5;
  A::fixups(a).push_back(Assembler::Fixup{pos + 1, static_cast<std::uint32_t>(t.address),
                                          static_cast<std::int32_t>(t.address >> 32), FixupKind::kHostRel32,
                                          0});
  s.host = t.address;
  s.has_host = true;
  return site_end(a, s);
}
}  // namespace

PatchSiteId Assembler::call_site(Label t) { return rel32_site(*this, PatchSiteKind::kCall, 0xE8, t, "call"); }
PatchSiteId Assembler::jmp_site(Label t) { return rel32_site(*this, PatchSiteKind::kJump, 0xE9, t, "jmp"); }
PatchSiteId Assembler::call_site(HostAddress t) {
  return host_rel32_site(*this, PatchSiteKind::kCall, 0xE8, t);
}
PatchSiteId Assembler::jmp_site(HostAddress t) {
  return host_rel32_site(*this, PatchSiteKind::kJump, 0xE9, t);
}

PatchSiteId Assembler::mov_imm32_site(Gp32 d, std::int32_t imm) {
  std::uint8_t rex = d.id >= 8 ? 1 : 0;
  auto s = site_begin(*this, PatchSiteKind::kImm32, static_cast<std::uint8_t>(1 + rex), 4,
                      static_cast<std::uint8_t>(5 + rex));
  ro(
      *this, 0xB8, rv(d), [&] { return insn("mov", d, ImmV{imm}); }, 4, imm);
  return site_end(*this, s);
}
PatchSiteId Assembler::cmp_imm32_site(Gp32 l, std::int32_t imm) {
  std::uint8_t rex = l.id >= 8 ? 1 : 0;
  auto s = site_begin(*this, PatchSiteKind::kImm32, static_cast<std::uint8_t>(2 + rex), 4,
                      static_cast<std::uint8_t>(6 + rex));
  rr(
      *this, 0x81, 7, rv(l), [&] { return insn("cmp", l, ImmV{imm}); }, 4, imm);
  return site_end(*this, s);
}
PatchSiteId Assembler::mov_imm64_site(Gp64 d, std::uint64_t imm) {
  auto s = site_begin(*this, PatchSiteKind::kImm64, 2, 8, 10);
  movabs(d, imm);
  return site_end(*this, s);
}
PatchSiteId Assembler::static_key(Label t, bool enabled) {
  if (t.id >= labels_.size()) {
    bad_label(*this, insn("static_key", t));
    t = new_label();
  }
  auto s = site_begin(*this, PatchSiteKind::kStaticKey, 1, 4, 5);
  s.label = t.id;
  s.enabled = enabled;
  if (enabled) {
    rel32_to_label(*this, 0xE9, t, "jmp");
  } else {
    A::ensure(*this, 16);
    cur_ = put_nop(cur_, 5);
  }
  return site_end(*this, s);
}

}  // namespace jitkit::x64
