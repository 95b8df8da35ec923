// Instruction families of the differential encoding test (see forms_p.h and instance_p.h).
//
// Every Assembler overload in include/jitkit/x64/assembler.h that encodes one instruction is
// enumerated here (patch sites, align(), nop(n), constants and host addresses are layout
// features checked elsewhere; see docs/encoding-verification.md). Operand spaces:
//   registers  every hardware number 0..15 in every role, ah/ch/dh/bh where the encoding allows
//              them (and refusals where it does not);
//   addresses  kFull (every base x every index x every scale x displacement boundaries 0, ±1, 127,
//              -128, 128, -129, INT32_MAX, INT32_MIN, no base, absolute disp32, RIP-relative
//              labels behind and ahead), kSmall and kTiny subsets that keep the rsp/rbp/r12/r13
//              special cases (SIB needed, disp8 0 needed) in every family;
//   immediates the boundaries of each immediate encoding (imm8 sign-extended vs imm16/32, the
//              unsigned top values of 8/16/32-bit operands, INT32 limits, imm64 for mov).
#include "x64/differential/forms_p.h"

#include <cstdint>
#include <cstdlib>
#include <limits>
#include <random>

namespace jitkit::x64::test_util {

// --- Suite / Refusals -----------------------------------------------------------------------

void Refusals::expect(const std::string& what, const std::function<void(Assembler&)>& emit) {
  a_.reset();
  emit(a_);
  ++checked_;
  if (a_.ok()) {
    accepted_.push_back(what + ": accepted without error");
    return;
  }
  if (a_.error()->message().empty()) accepted_.push_back(what + ": error without a message");
  if (a_.encode(0x10000)) accepted_.push_back(what + ": encode() succeeded despite the error");
}

void Refusals::expect_encode_failure(const std::string& what, std::uint64_t base,
                                     const std::function<void(Assembler&)>& emit) {
  a_.reset();
  emit(a_);
  ++checked_;
  auto encoded = a_.encode(base);
  if (encoded) {
    accepted_.push_back(what + ": encode() succeeded");
  } else if (encoded.error().code() != ErrorCode::kOutOfRange) {
    accepted_.push_back(what + ": encode() failed with " +
                        std::string(error_code_name(encoded.error().code())) +
                        " instead of out of range: " + encoded.error().message());
  }
}

Batch& Suite::batch(const std::string& name, bool has_relaxable_jumps) {
  finish_current();
  finished_ = false;
  batches_.push_back(std::make_unique<Batch>(family_ + "/" + name, has_relaxable_jumps));
  Batch& b = *batches_.back();
  back_name_ = fresh_label_name();
  fwd_name_ = fresh_label_name();
  back_ = b.bind_new(back_name_);
  fwd_ = b.new_label(fwd_name_);
  return b;
}

void Suite::finish_current() {
  if (batches_.empty() || finished_) return;
  finished_ = true;
  batches_.back()->bind(fwd_, fwd_name_);
  batches_.back()->data({0xcc, 0xcc, 0xcc, 0xcc, 0xcc, 0xcc, 0xcc, 0xcc});
}

std::string Suite::fresh_label_name() { return ".Lt" + std::to_string(label_counter_++); }

Suite::Outcome Suite::run() {
  finish_current();
  Outcome out;
  for (const auto& b : batches_) out.compared += b->check(&out.mismatches);
  out.refusals_checked = refusals_.checked();
  for (const std::string& r : refusals_.accepted()) {
    out.mismatches.push_back(Mismatch{family_ + "/refusals", r, "", "", "must be refused"});
  }
  return out;
}

namespace {

constexpr int kNone = MemSpec::kNone;
constexpr std::int64_t kI32Max = std::numeric_limits<std::int32_t>::max();
constexpr std::int64_t kI32Min = std::numeric_limits<std::int32_t>::min();
constexpr std::int64_t kU32Max = 0xFFFFFFFFLL;

// --- Registers ------------------------------------------------------------------------------

template <class R>
std::vector<R> regs() {
  std::vector<R> v;
  for (std::uint8_t i = 0; i < 16; ++i) v.push_back(R{i});
  return v;
}
template <>
std::vector<Gp8> regs<Gp8>() {
  std::vector<Gp8> v;
  for (std::uint8_t i = 0; i < 16; ++i) v.push_back(Gp8{i, false});
  for (std::uint8_t i = 4; i < 8; ++i) v.push_back(Gp8{i, true});
  return v;
}

template <class R>
constexpr int kBits = R::kBits;
template <>
constexpr int kBits<Xmm> = 128;

OpSpec S(Gp64 r) { return reg_op(gp_name(64, r.id), 64); }
OpSpec S(Gp32 r) { return reg_op(gp_name(32, r.id), 32); }
OpSpec S(Gp16 r) { return reg_op(gp_name(16, r.id), 16); }
OpSpec S(Gp8 r) { return reg_op(gp_name(8, r.id, r.high), 8); }
OpSpec S(Xmm r) { return reg_op(xmm_name(r.id), 128); }

bool needs_rex(Gp8 r) { return !r.high && r.id >= 4; }
template <class R>
bool needs_rex(R r) {
  return r.id >= 8;
}
bool is_high(Gp8 r) { return r.high; }
template <class R>
bool is_high(R) {
  return false;
}

// Whether two register operands can share one instruction (ah..bh exclude any REX prefix).
template <class A, class B>
bool legal_pair(A a, B b, bool rex_w = false) {
  if (is_high(a) && (needs_rex(b) || rex_w)) return false;
  if (is_high(b) && (needs_rex(a) || rex_w)) return false;
  return true;
}

// --- Addresses ------------------------------------------------------------------------------

struct Addr {
  int base = kNone;
  int index = kNone;
  int scale = 1;
  std::int64_t disp = 0;
  int rip = 0;  // 0: not RIP-relative; 1: the batch's backward label; 2: its forward label
};

bool needs_rex(const Addr& a) { return a.base >= 8 || a.index >= 8; }

Mem to_mem(const Suite& s, const Addr& a, int size) {
  const auto disp = static_cast<std::int32_t>(a.disp);
  Mem m;
  if (a.rip != 0) {
    m = qword_ptr(a.rip == 1 ? s.back_label() : s.fwd_label(), disp);
  } else if (a.base != kNone && a.index != kNone) {
    m = qword_ptr(Gp64{static_cast<std::uint8_t>(a.base)}, Gp64{static_cast<std::uint8_t>(a.index)}, a.scale,
                  disp);
  } else if (a.base != kNone) {
    m = qword_ptr(Gp64{static_cast<std::uint8_t>(a.base)}, disp);
  } else if (a.index != kNone) {
    m = qword_ptr(no_base, Gp64{static_cast<std::uint8_t>(a.index)}, a.scale, disp);
  } else {
    m = abs32_ptr(8, disp);
  }
  return m.sized(static_cast<std::uint8_t>(size));
}

OpSpec M(const Suite& s, const Addr& a, int size) {
  MemSpec m;
  m.size_bytes = size;
  m.base = a.base;
  m.index = a.index;
  m.scale = a.scale;
  m.disp = a.disp;
  if (a.rip != 0) {
    m.rip_label = true;
    m.label = a.rip == 1 ? s.back_label() : s.fwd_label();
    m.label_name = a.rip == 1 ? s.back_name() : s.fwd_name();
  }
  return mem_op(m);
}

const std::vector<std::int64_t>& disp_boundaries() {
  static const std::vector<std::int64_t> v = {0, 1, -1, 127, -128, 128, -129, kI32Max, kI32Min};
  return v;
}

// Every base x every index x every scale x every displacement boundary, plus no base, absolute
// disp32 and RIP-relative labels on both sides.
std::vector<Addr> full_addresses() {
  std::vector<Addr> v;
  for (int base = 0; base < 16; ++base) {
    for (std::int64_t d : disp_boundaries()) v.push_back(Addr{base, kNone, 1, d, 0});
    for (int index = 0; index < 16; ++index) {
      if (index == 4) continue;  // rsp cannot be an index (refusal checked separately)
      for (int scale : {1, 2, 4, 8}) {
        for (std::int64_t d : disp_boundaries()) v.push_back(Addr{base, index, scale, d, 0});
      }
    }
  }
  for (int index = 0; index < 16; ++index) {
    if (index == 4) continue;
    for (int scale : {1, 2, 4, 8}) {
      for (std::int64_t d : disp_boundaries()) v.push_back(Addr{kNone, index, scale, d, 0});
    }
  }
  for (std::int64_t d : disp_boundaries()) v.push_back(Addr{kNone, kNone, 1, d, 0});
  for (int rip : {1, 2}) {
    for (std::int64_t d : {0, 1, -1, 127, -128, 128, 4096}) v.push_back(Addr{kNone, kNone, 1, d, rip});
  }
  return v;
}

// A few addresses covering every special case of ModRM/SIB encoding.
const std::vector<Addr>& tiny_addresses() {
  static const std::vector<Addr> v = {
      {0, kNone, 1, 0, 0},
      {4, kNone, 1, 0, 0},
      {5, kNone, 1, 0, 0},
      {12, kNone, 1, 0, 0},
      {13, kNone, 1, 0, 0},
      {15, kNone, 1, -128, 0},
      {1, kNone, 1, 128, 0},
      {0, 5, 2, 0, 0},
      {12, 13, 8, 127, 0},
      {kNone, 9, 4, 0, 0},
      {kNone, kNone, 1, 0x12345678, 0},
      {kNone, kNone, 1, 0, 1},
      {kNone, kNone, 1, 8, 2},
  };
  return v;
}

const std::vector<Addr>& small_addresses() {
  static const std::vector<Addr> v = [] {
    std::vector<Addr> a = tiny_addresses();
    const std::vector<Addr> more = {
        {3, kNone, 1, 127, 0},
        {2, kNone, 1, -129, 0},
        {6, kNone, 1, kI32Max, 0},
        {7, kNone, 1, kI32Min, 0},
        {4, 12, 1, -1, 0},
        {5, 15, 8, 1000000, 0},
        {13, 1, 4, 0, 0},
        {8, 0, 2, 1, 0},
        {11, 11, 1, 0, 0},
        {4, 5, 1, 0, 0},
        {kNone, 0, 1, 0, 0},
        {kNone, 5, 8, -128, 0},
        {kNone, 13, 2, kI32Max, 0},
        {kNone, kNone, 1, -1, 0},
        {kNone, kNone, 1, kI32Min, 0},
        {kNone, kNone, 1, -16, 1},
        {kNone, kNone, 1, 0, 2},
        {14, kNone, 1, -1, 0},
        {9, 10, 4, -129, 0},
        {5, kNone, 1, 127, 0},
        {13, kNone, 1, -128, 0},
    };
    a.insert(a.end(), more.begin(), more.end());
    return a;
  }();
  return v;
}

// Every base x displacement boundary, every index x scale with bases that change the encoding.
const std::vector<Addr>& medium_addresses() {
  static const std::vector<Addr> v = [] {
    std::vector<Addr> a;
    for (int base = 0; base < 16; ++base) {
      for (std::int64_t d : disp_boundaries()) a.push_back(Addr{base, kNone, 1, d, 0});
    }
    for (int index = 0; index < 16; ++index) {
      if (index == 4) continue;
      for (int scale : {1, 2, 4, 8}) {
        for (int base : {0, 4, 5, 12, 13, kNone}) {
          for (std::int64_t d : {std::int64_t{0}, std::int64_t{-128}, kI32Max}) {
            a.push_back(Addr{base, index, scale, d, 0});
          }
        }
      }
    }
    for (int rip : {1, 2}) a.push_back(Addr{kNone, kNone, 1, 0, rip});
    return a;
  }();
  return v;
}

// --- Immediates -----------------------------------------------------------------------------

const std::vector<std::int64_t>& imms(int bits) {
  static const std::vector<std::int64_t> k8 = {0, 1, 127, -128, -1, 128, 255};
  static const std::vector<std::int64_t> k16 = {0, 1, 127, 128, -128, -129, 32767, -32768, 65535, -1};
  static const std::vector<std::int64_t> k32 = {0, 1, 127, 128, -128, -129, kI32Max, kI32Min, kU32Max, -1};
  static const std::vector<std::int64_t> k64 = {0, 1, 127, 128, -128, -129, kI32Max, kI32Min, -1};
  return bits == 8 ? k8 : bits == 16 ? k16 : bits == 32 ? k32 : k64;
}
// Values just outside what an operand of `bits` accepts.
std::vector<std::int64_t> bad_imms(int bits) {
  if (bits == 8) return {256, -129};
  if (bits == 16) return {65536, -32769};
  if (bits == 32) return {kU32Max + 1, kI32Min - 1};
  return {kI32Max + 1, kI32Min - 1};
}

// --- Instance helpers -----------------------------------------------------------------------

Instance I(const std::string& mnemonic, std::vector<OpSpec> ops, const std::string& zydis = "") {
  Instance in;
  in.mnemonic = mnemonic;
  in.zydis_mnemonic = zydis;
  in.ops = std::move(ops);
  return in;
}

std::string describe(const Instance& in) { return in.text(); }

const char* const kCondGnu[16] = {"o", "no", "b", "ae", "e", "ne", "be", "a",
                                  "s", "ns", "p", "np", "l", "ge", "le", "g"};
const char* const kCondZydis[16] = {"o", "no", "b", "nb", "z", "nz", "be", "nbe",
                                    "s", "ns", "p", "np", "l", "nl", "le", "nle"};
std::string cond_gnu(int c) { return kCondGnu[c]; }
std::string cond_zydis(int c) { return kCondZydis[c]; }

// --- Generic form emitters ------------------------------------------------------------------

// op(reg, reg) for every pair of one register type.
template <class R, class Op>
void forms_rr(Suite& s, Batch& b, const std::string& mn, Op op, bool commute = false) {
  for (R d : regs<R>()) {
    for (R r : regs<R>()) {
      Instance in = I(mn, {S(d), S(r)});
      in.operands_commute = commute;
      if (!legal_pair(d, r)) {
        s.refusals().expect(describe(in), [=](Assembler& a) { op(a, d, r); });
        continue;
      }
      b.add(std::move(in), [=](Assembler& a) { op(a, d, r); });
    }
  }
}

// op(reg, mem) (load_first) or op(mem, reg), every register x `addrs`.
template <class R, bool reg_first, class Op>
void forms_rm(Suite& s, Batch& b, const std::string& mn, Op op, const std::vector<Addr>& addrs,
              bool commute = false) {
  const int size = kBits<R> / 8;
  for (R r : regs<R>()) {
    for (const Addr& ad : addrs) {
      const Mem m = to_mem(s, ad, size);
      Instance in = reg_first ? I(mn, {S(r), M(s, ad, size)}) : I(mn, {M(s, ad, size), S(r)});
      in.operands_commute = commute;
      if (is_high(r) && needs_rex(ad)) {
        if constexpr (reg_first) {
          s.refusals().expect(describe(in), [=](Assembler& a) { op(a, r, m); });
        } else {
          s.refusals().expect(describe(in), [=](Assembler& a) { op(a, m, r); });
        }
        continue;
      }
      if constexpr (reg_first) {
        b.add(std::move(in), [=](Assembler& a) { op(a, r, m); });
      } else {
        b.add(std::move(in), [=](Assembler& a) { op(a, m, r); });
      }
    }
  }
}

// op(reg, imm) for every register and every boundary immediate; out-of-range ones refused.
template <class R, class Op>
void forms_ri(Suite& s, Batch& b, const std::string& mn, Op op) {
  constexpr int bits = kBits<R>;
  for (R r : regs<R>()) {
    for (std::int64_t v : imms(bits)) {
      b.add(I(mn, {S(r), imm_op(v, bits)}), [=](Assembler& a) { op(a, r, v); });
    }
  }
  for (std::int64_t v : bad_imms(bits)) {
    s.refusals().expect(mn + " " + gp_name(bits, 0) + ", " + std::to_string(v),
                        [=](Assembler& a) { op(a, R{0}, v); });
  }
}

// op(mem, imm) for each operand size, `addrs` x boundary immediates.
template <class Op>
void forms_mi(Suite& s, Batch& b, const std::string& mn, Op op, const std::vector<Addr>& addrs) {
  for (int bits : {8, 16, 32, 64}) {
    for (const Addr& ad : addrs) {
      const Mem m = to_mem(s, ad, bits / 8);
      for (std::int64_t v : imms(bits)) {
        b.add(I(mn, {M(s, ad, bits / 8), imm_op(v, bits)}), [=](Assembler& a) { op(a, m, v); });
      }
    }
    for (std::int64_t v : bad_imms(bits)) {
      const Mem m = to_mem(s, addrs.front(), bits / 8);
      s.refusals().expect(mn + " mem" + std::to_string(bits) + ", " + std::to_string(v),
                          [=](Assembler& a) { op(a, m, v); });
    }
  }
  // No size on the memory operand and no register to infer it from: refused.
  s.refusals().expect(mn + " ptr [rax], 1 (unsized)", [=](Assembler& a) { op(a, ptr(rax), 1); });
}

// The four widths of op(reg, reg), op(reg, mem), op(mem, reg).
template <class Op>
void forms_rr_rm_mr(Suite& s, Batch& b, const std::string& mn, Op op, const std::vector<Addr>& addrs,
                    bool commute_rr = false) {
  forms_rr<Gp8>(s, b, mn, op, commute_rr);
  forms_rr<Gp16>(s, b, mn, op, commute_rr);
  forms_rr<Gp32>(s, b, mn, op, commute_rr);
  forms_rr<Gp64>(s, b, mn, op, commute_rr);
  forms_rm<Gp8, true>(s, b, mn, op, addrs);
  forms_rm<Gp16, true>(s, b, mn, op, addrs);
  forms_rm<Gp32, true>(s, b, mn, op, addrs);
  forms_rm<Gp64, true>(s, b, mn, op, addrs);
  forms_rm<Gp8, false>(s, b, mn, op, addrs);
  forms_rm<Gp16, false>(s, b, mn, op, addrs);
  forms_rm<Gp32, false>(s, b, mn, op, addrs);
  forms_rm<Gp64, false>(s, b, mn, op, addrs);
}

// Refusals every memory-operand family shares: rsp as index, a bad scale, a size mismatch.
template <class Op>
void memory_refusals(Suite& s, const std::string& mn, Op op) {
  s.refusals().expect(mn + " rax, qword ptr [rax+rsp*1]",
                      [=](Assembler& a) { op(a, rax, qword_ptr(rax, rsp, 1, 0)); });
  s.refusals().expect(mn + " rax, qword ptr [rsp*2]",
                      [=](Assembler& a) { op(a, rax, qword_ptr(no_base, rsp, 2, 0)); });
  s.refusals().expect(mn + " rax, qword ptr [rax+rcx*3]",
                      [=](Assembler& a) { op(a, rax, qword_ptr(rax, rcx, 3, 0)); });
  s.refusals().expect(mn + " rax, dword ptr [rax] (size mismatch)",
                      [=](Assembler& a) { op(a, rax, dword_ptr(rax)); });
  s.refusals().expect(mn + " ah, byte ptr [r8]", [=](Assembler& a) { op(a, ah, byte_ptr(r8)); });
}

}  // namespace

// --- mov ------------------------------------------------------------------------------------

void mov_forms(Suite& s) {
  auto op = [](Assembler& a, auto x, auto y) { a.mov(x, y); };
  Batch& b = s.batch("rr-rm-mr");
  forms_rr_rm_mr(s, b, "mov", op, small_addresses());
  memory_refusals(s, "mov", op);

  // Unsized memory takes the register's size.
  Batch& u = s.batch("unsized");
  for (const Addr& ad : tiny_addresses()) {
    const Mem m = to_mem(s, ad, 0);
    u.add(I("mov", {S(rcx), M(s, ad, 8)}), [=](Assembler& a) { a.mov(rcx, m); });
    u.add(I("mov", {M(s, ad, 4), S(r9d)}), [=](Assembler& a) { a.mov(m, r9d); });
    u.add(I("mov", {S(dx), M(s, ad, 2)}), [=](Assembler& a) { a.mov(dx, m); });
    u.add(I("mov", {M(s, ad, 1), S(bl)}), [=](Assembler& a) { a.mov(m, bl); });
  }

  Batch& i = s.batch("imm");
  forms_ri<Gp8>(s, i, "mov", op);
  forms_ri<Gp16>(s, i, "mov", op);
  for (Gp32 r : regs<Gp32>()) {
    for (std::int64_t v : imms(32)) {
      i.add(I("mov", {S(r), imm_op(v, 32)}), [=](Assembler& a) { a.mov(r, v); });
    }
  }
  s.refusals().expect("mov eax, 2^32", [](Assembler& a) { a.mov(eax, kU32Max + 1); });
  s.refusals().expect("mov eax, INT32_MIN-1", [](Assembler& a) { a.mov(eax, kI32Min - 1); });
  // mov r64, imm: the documented shortest form (assembler.h): zero-extending mov r32, imm32 for
  // 0..2^32-1, sign-extending mov r64, simm32 for other int32 values, else movabs.
  const std::vector<std::int64_t> v64 = {0,
                                         1,
                                         127,
                                         128,
                                         -1,
                                         -128,
                                         kI32Max,
                                         kI32Min,
                                         kU32Max,
                                         kU32Max + 1,
                                         kI32Min - 1,
                                         std::numeric_limits<std::int64_t>::max(),
                                         std::numeric_limits<std::int64_t>::min(),
                                         0x123456789abcdef0LL};
  for (Gp64 r : regs<Gp64>()) {
    for (std::int64_t v : v64) {
      Instance in;
      if (v >= 0 && v <= kU32Max) {
        in = I("mov", {S(to_gp32(r)), imm_op(v, 32)});
      } else if (v >= kI32Min && v <= kI32Max) {
        in = I("mov", {S(r), imm_op(v, 64)});
      } else {
        in = I("movabs", {S(r), imm_op(v, 64)}, "mov");
      }
      i.add(std::move(in), [=](Assembler& a) { a.mov(r, v); });
    }
    for (std::int64_t v :
         {std::int64_t{0}, std::int64_t{1}, std::int64_t{-1}, kU32Max, std::int64_t{0x123456789abcdef0LL}}) {
      i.add(I("movabs", {S(r), imm_op(v, 64)}, "mov"),
            [=](Assembler& a) { a.movabs(r, static_cast<std::uint64_t>(v)); });
    }
  }
  forms_mi(s, i, "mov", op, small_addresses());
}

void mov_full_address_forms(Suite& s) {
  // The whole address space in the three encodings that matter: load (8B /r), store (89 /r) with
  // a REX-extended register, and an 8-bit store (88 /r) with a legacy register.
  Batch& load = s.batch("load-r64-full");
  for (const Addr& ad : full_addresses()) {
    const Mem m = to_mem(s, ad, 8);
    load.add(I("mov", {S(rdx), M(s, ad, 8)}), [=](Assembler& a) { a.mov(rdx, m); });
  }
  Batch& store = s.batch("store-r32-full");
  for (const Addr& ad : full_addresses()) {
    const Mem m = to_mem(s, ad, 4);
    store.add(I("mov", {M(s, ad, 4), S(r9d)}), [=](Assembler& a) { a.mov(m, r9d); });
  }
  Batch& store8 = s.batch("store-r8-full");
  for (const Addr& ad : full_addresses()) {
    const Mem m = to_mem(s, ad, 1);
    store8.add(I("mov", {M(s, ad, 1), S(cl)}), [=](Assembler& a) { a.mov(m, cl); });
  }
  Batch& lea = s.batch("lea-r64-full");
  for (const Addr& ad : full_addresses()) {
    const Mem m = to_mem(s, ad, 0);
    lea.add(I("lea", {S(r13), M(s, ad, 0)}), [=](Assembler& a) { a.lea(r13, m); });
  }
}

void rex_combination_forms(Suite& s) {
  // Every register x every base x every index (REX.R, REX.B and REX.X in all combinations, with
  // the rsp/rbp/r12/r13 special cases) for loads and stores of every width, through mov and add.
  auto sweep = [&](const std::string& mn, auto op) {
    Batch& b = s.batch(mn);
    auto one = [&](auto reg) {
      using R = decltype(reg);
      constexpr int size = kBits<R> / 8;
      for (int base = 0; base < 16; ++base) {
        for (int index = 0; index < 16; ++index) {
          if (index == 4) continue;
          const Addr ad{base, index, 1 << (index & 3), index % 2 == 0 ? 8 : -300, 0};
          if (is_high(reg) && needs_rex(ad)) continue;
          const Mem m = to_mem(s, ad, size);
          b.add(I(mn, {S(reg), M(s, ad, size)}), [=](Assembler& a) { op(a, reg, m); });
          b.add(I(mn, {M(s, ad, size), S(reg)}), [=](Assembler& a) { op(a, m, reg); });
        }
      }
    };
    for (Gp8 r : regs<Gp8>()) one(r);
    for (Gp16 r : regs<Gp16>()) one(r);
    for (Gp32 r : regs<Gp32>()) one(r);
    for (Gp64 r : regs<Gp64>()) one(r);
  };
  sweep("mov", [](Assembler& a, auto x, auto y) { a.mov(x, y); });
  sweep("add", [](Assembler& a, auto x, auto y) { a.add(x, y); });
  sweep("xor", [](Assembler& a, auto x, auto y) { a.xor_(x, y); });
}

// --- ALU ------------------------------------------------------------------------------------

namespace {
template <class Op>
void alu_one(Suite& s, const std::string& mn, Op op) {
  Batch& b = s.batch(mn);
  forms_rr_rm_mr(s, b, mn, op, tiny_addresses());
  // The accumulator and a REX register over the larger address set.
  for (const Addr& ad : small_addresses()) {
    const Mem m64 = to_mem(s, ad, 8), m32 = to_mem(s, ad, 4), m16 = to_mem(s, ad, 2), m8 = to_mem(s, ad, 1);
    b.add(I(mn, {S(rax), M(s, ad, 8)}), [=](Assembler& a) { op(a, rax, m64); });
    b.add(I(mn, {M(s, ad, 8), S(r11)}), [=](Assembler& a) { op(a, m64, r11); });
    b.add(I(mn, {S(r14d), M(s, ad, 4)}), [=](Assembler& a) { op(a, r14d, m32); });
    b.add(I(mn, {M(s, ad, 2), S(ax)}), [=](Assembler& a) { op(a, m16, ax); });
    const Gp8 r8 = needs_rex(ad) ? r15b : bh;  // bh cannot share an instruction with REX
    b.add(I(mn, {M(s, ad, 1), S(r8)}), [=](Assembler& a) { op(a, m8, r8); });
  }
  forms_ri<Gp8>(s, b, mn, op);
  forms_ri<Gp16>(s, b, mn, op);
  forms_ri<Gp32>(s, b, mn, op);
  forms_ri<Gp64>(s, b, mn, op);
  forms_mi(s, b, mn, op, small_addresses());
  memory_refusals(s, mn, op);
}
}  // namespace

void alu_forms(Suite& s) {
  alu_one(s, "add", [](Assembler& a, auto x, auto y) { a.add(x, y); });
  alu_one(s, "or", [](Assembler& a, auto x, auto y) { a.or_(x, y); });
  alu_one(s, "adc", [](Assembler& a, auto x, auto y) { a.adc(x, y); });
  alu_one(s, "sbb", [](Assembler& a, auto x, auto y) { a.sbb(x, y); });
  alu_one(s, "and", [](Assembler& a, auto x, auto y) { a.and_(x, y); });
  alu_one(s, "sub", [](Assembler& a, auto x, auto y) { a.sub(x, y); });
  alu_one(s, "xor", [](Assembler& a, auto x, auto y) { a.xor_(x, y); });
  alu_one(s, "cmp", [](Assembler& a, auto x, auto y) { a.cmp(x, y); });
  // The medium address set once, for a load and an immediate store.
  Batch& b = s.batch("medium-addresses");
  for (const Addr& ad : medium_addresses()) {
    const Mem m64 = to_mem(s, ad, 8), m32 = to_mem(s, ad, 4);
    b.add(I("add", {S(r12), M(s, ad, 8)}), [=](Assembler& a) { a.add(r12, m64); });
    b.add(I("cmp", {M(s, ad, 4), imm_op(-129, 32)}), [=](Assembler& a) { a.cmp(m32, -129); });
  }
}

// --- test, unary ----------------------------------------------------------------------------

void test_and_unary_forms(Suite& s) {
  auto test = [](Assembler& a, auto x, auto y) { a.test(x, y); };
  Batch& t = s.batch("test");
  forms_rr<Gp8>(s, t, "test", test, true);
  forms_rr<Gp16>(s, t, "test", test, true);
  forms_rr<Gp32>(s, t, "test", test, true);
  forms_rr<Gp64>(s, t, "test", test, true);
  forms_rm<Gp8, false>(s, t, "test", test, small_addresses(), true);
  forms_rm<Gp16, false>(s, t, "test", test, small_addresses(), true);
  forms_rm<Gp32, false>(s, t, "test", test, small_addresses(), true);
  forms_rm<Gp64, false>(s, t, "test", test, small_addresses(), true);
  forms_ri<Gp8>(s, t, "test", test);
  forms_ri<Gp16>(s, t, "test", test);
  forms_ri<Gp32>(s, t, "test", test);
  forms_ri<Gp64>(s, t, "test", test);
  forms_mi(s, t, "test", test, small_addresses());

  auto unary = [&](const std::string& mn, auto op) {
    Batch& b = s.batch(mn);
    auto each = [&](auto r) { b.add(I(mn, {S(r)}), [=](Assembler& a) { op(a, r); }); };
    for (Gp8 r : regs<Gp8>()) each(r);
    for (Gp16 r : regs<Gp16>()) each(r);
    for (Gp32 r : regs<Gp32>()) each(r);
    for (Gp64 r : regs<Gp64>()) each(r);
    for (int bits : {8, 16, 32, 64}) {
      for (const Addr& ad : small_addresses()) {
        const Mem m = to_mem(s, ad, bits / 8);
        b.add(I(mn, {M(s, ad, bits / 8)}), [=](Assembler& a) { op(a, m); });
      }
    }
    s.refusals().expect(mn + " ptr [rax] (unsized)", [=](Assembler& a) { op(a, ptr(rax)); });
    s.refusals().expect(mn + " qword ptr [rax+rsp*1]",
                        [=](Assembler& a) { op(a, qword_ptr(rax, rsp, 1, 0)); });
  };
  unary("inc", [](Assembler& a, auto x) { a.inc(x); });
  unary("dec", [](Assembler& a, auto x) { a.dec(x); });
  unary("neg", [](Assembler& a, auto x) { a.neg(x); });
  unary("not", [](Assembler& a, auto x) { a.not_(x); });
  unary("mul", [](Assembler& a, auto x) { a.mul(x); });
  unary("div", [](Assembler& a, auto x) { a.div(x); });
  unary("idiv", [](Assembler& a, auto x) { a.idiv(x); });
  unary("imul", [](Assembler& a, auto x) { a.imul(x); });

  Batch& c = s.batch("sign-extension");
  c.add(I("cwd", {}), [](Assembler& a) { a.cwd(); });
  c.add(I("cdq", {}), [](Assembler& a) { a.cdq(); });
  c.add(I("cqo", {}), [](Assembler& a) { a.cqo(); });
  c.add(I("cdqe", {}), [](Assembler& a) { a.cdqe(); });
}

// --- imul, shifts ---------------------------------------------------------------------------

void imul_and_shift_forms(Suite& s) {
  auto imul2 = [](Assembler& a, auto x, auto y) { a.imul(x, y); };
  Batch& b = s.batch("imul");
  forms_rr<Gp16>(s, b, "imul", imul2);
  forms_rr<Gp32>(s, b, "imul", imul2);
  forms_rr<Gp64>(s, b, "imul", imul2);
  forms_rm<Gp16, true>(s, b, "imul", imul2, small_addresses());
  forms_rm<Gp32, true>(s, b, "imul", imul2, small_addresses());
  forms_rm<Gp64, true>(s, b, "imul", imul2, small_addresses());
  s.refusals().expect("imul rax, dword ptr [rax]", [](Assembler& a) { a.imul(rax, dword_ptr(rax)); });
  s.refusals().expect("imul rax, qword ptr [rax+rsp*1]",
                      [](Assembler& a) { a.imul(rax, qword_ptr(rax, rsp, 1, 0)); });
  auto imul3 = [&](auto d, auto src) {
    using R = decltype(d);
    constexpr int bits = kBits<R>;
    for (std::int64_t v : imms(bits)) {
      b.add(I("imul", {S(d), S(src), imm_op(v, bits)}), [=](Assembler& a) { a.imul(d, src, v); });
    }
  };
  for (std::uint8_t d = 0; d < 16; ++d) {
    for (std::uint8_t r : {0, 4, 5, 8, 12, 13, 15}) {
      imul3(Gp16{d}, Gp16{r});
      imul3(Gp32{d}, Gp32{r});
      imul3(Gp64{d}, Gp64{r});
    }
  }
  for (int bits : {16, 32, 64}) {
    for (const Addr& ad : small_addresses()) {
      const Mem m = to_mem(s, ad, bits / 8);
      for (std::int64_t v : imms(bits)) {
        Instance in;
        if (bits == 16) {
          in = I("imul", {S(r10w), M(s, ad, 2), imm_op(v, 16)});
          b.add(std::move(in), [=](Assembler& a) { a.imul(r10w, m, v); });
        } else if (bits == 32) {
          in = I("imul", {S(esi), M(s, ad, 4), imm_op(v, 32)});
          b.add(std::move(in), [=](Assembler& a) { a.imul(esi, m, v); });
        } else {
          in = I("imul", {S(r15), M(s, ad, 8), imm_op(v, 64)});
          b.add(std::move(in), [=](Assembler& a) { a.imul(r15, m, v); });
        }
      }
    }
  }
  s.refusals().expect("imul rax, rcx, 2^31", [](Assembler& a) { a.imul(rax, rcx, kI32Max + 1); });
  s.refusals().expect("imul ax, cx, 65536", [](Assembler& a) { a.imul(ax, cx, 65536); });

  auto shift = [&](const std::string& mn, auto op) {
    Batch& sb = s.batch(mn);
    // Counts the hardware does not mask away: 0..31, and 0..63 for 64-bit operands
    // (assembler.h: larger counts are refused rather than silently masked).
    auto each = [&](auto r) {
      using R = decltype(r);
      const int max_count = kBits<R> == 64 ? 63 : 31;
      for (int count : {0, 1, 2, 7, 31, 63}) {
        if (count > max_count) continue;
        const auto c = static_cast<std::uint8_t>(count);
        sb.add(I(mn, {S(r), imm_op(count, 8)}), [=](Assembler& a) { op(a, r, c); });
      }
      sb.add(I(mn, {S(r), S(cl)}), [=](Assembler& a) { op(a, r, cl); });
      const auto too_big = static_cast<std::uint8_t>(max_count + 1);
      s.refusals().expect(mn + " " + S(r).reg + ", " + std::to_string(too_big),
                          [=](Assembler& a) { op(a, r, too_big); });
    };
    for (Gp8 r : regs<Gp8>()) each(r);
    for (Gp16 r : regs<Gp16>()) each(r);
    for (Gp32 r : regs<Gp32>()) each(r);
    for (Gp64 r : regs<Gp64>()) each(r);
    for (int bits : {8, 16, 32, 64}) {
      for (const Addr& ad : small_addresses()) {
        const Mem m = to_mem(s, ad, bits / 8);
        for (int count : {1, 5, bits == 64 ? 63 : 31}) {
          const auto c = static_cast<std::uint8_t>(count);
          sb.add(I(mn, {M(s, ad, bits / 8), imm_op(count, 8)}), [=](Assembler& a) { op(a, m, c); });
        }
        sb.add(I(mn, {M(s, ad, bits / 8), S(cl)}), [=](Assembler& a) { op(a, m, cl); });
      }
    }
    s.refusals().expect(mn + " rax, dl (count must be cl)", [=](Assembler& a) { op(a, rax, dl); });
    s.refusals().expect(mn + " rax, 64", [=](Assembler& a) { op(a, rax, std::uint8_t{64}); });
  };
  shift("rol", [](Assembler& a, auto x, auto y) { a.rol(x, y); });
  shift("ror", [](Assembler& a, auto x, auto y) { a.ror(x, y); });
  shift("shl", [](Assembler& a, auto x, auto y) { a.shl(x, y); });
  shift("shr", [](Assembler& a, auto x, auto y) { a.shr(x, y); });
  shift("sar", [](Assembler& a, auto x, auto y) { a.sar(x, y); });
}

// --- bt family, popcnt/lzcnt/tzcnt ----------------------------------------------------------

void bit_forms(Suite& s) {
  auto bt_family = [&](const std::string& mn, auto op) {
    Batch& b = s.batch(mn);
    forms_rr<Gp16>(s, b, mn, op);
    forms_rr<Gp32>(s, b, mn, op);
    forms_rr<Gp64>(s, b, mn, op);
    forms_rm<Gp16, false>(s, b, mn, op, tiny_addresses());
    forms_rm<Gp32, false>(s, b, mn, op, tiny_addresses());
    forms_rm<Gp64, false>(s, b, mn, op, tiny_addresses());
    // Bit indices below the operand width; the width itself is refused (the hardware would
    // silently take it modulo the width).
    auto each = [&](auto r) {
      using R = decltype(r);
      for (int bit : {0, 1, 15, 31, 63}) {
        if (bit >= kBits<R>) continue;
        const auto v = static_cast<std::uint8_t>(bit);
        b.add(I(mn, {S(r), imm_op(bit, 8)}), [=](Assembler& a) { op(a, r, v); });
      }
      const auto too_big = static_cast<std::uint8_t>(kBits<R>);
      s.refusals().expect(mn + " " + S(r).reg + ", " + std::to_string(too_big),
                          [=](Assembler& a) { op(a, r, too_big); });
    };
    for (Gp16 r : regs<Gp16>()) each(r);
    for (Gp32 r : regs<Gp32>()) each(r);
    for (Gp64 r : regs<Gp64>()) each(r);
    for (int bits : {16, 32, 64}) {
      for (const Addr& ad : small_addresses()) {
        const Mem m = to_mem(s, ad, bits / 8);
        for (int bit : {0, 9, bits - 1}) {
          const auto v = static_cast<std::uint8_t>(bit);
          b.add(I(mn, {M(s, ad, bits / 8), imm_op(bit, 8)}), [=](Assembler& a) { op(a, m, v); });
        }
      }
    }
  };
  bt_family("bt", [](Assembler& a, auto x, auto y) { a.bt(x, y); });
  bt_family("bts", [](Assembler& a, auto x, auto y) { a.bts(x, y); });
  bt_family("btr", [](Assembler& a, auto x, auto y) { a.btr(x, y); });

  auto count_family = [&](const std::string& mn, auto op) {
    Batch& b = s.batch(mn);
    forms_rr<Gp16>(s, b, mn, op);
    forms_rr<Gp32>(s, b, mn, op);
    forms_rr<Gp64>(s, b, mn, op);
    forms_rm<Gp16, true>(s, b, mn, op, small_addresses());
    forms_rm<Gp32, true>(s, b, mn, op, small_addresses());
    forms_rm<Gp64, true>(s, b, mn, op, small_addresses());
    s.refusals().expect(mn + " rax, word ptr [rax]", [=](Assembler& a) { op(a, rax, word_ptr(rax)); });
  };
  count_family("popcnt", [](Assembler& a, auto x, auto y) { a.popcnt(x, y); });
  count_family("lzcnt", [](Assembler& a, auto x, auto y) { a.lzcnt(x, y); });
  count_family("tzcnt", [](Assembler& a, auto x, auto y) { a.tzcnt(x, y); });
}

// --- movzx/movsx/movsxd, lea, xchg, bswap ----------------------------------------------------

void extend_lea_xchg_forms(Suite& s) {
  auto extend = [&](const std::string& mn, auto op) {
    Batch& b = s.batch(mn);
    auto pairs = [&](auto d_proto, auto s_proto) {
      using D = decltype(d_proto);
      using R = decltype(s_proto);
      for (D d : regs<D>()) {
        for (R r : regs<R>()) {
          Instance in = I(mn, {S(d), S(r)});
          if (!legal_pair(d, r, kBits<D> == 64)) {
            s.refusals().expect(describe(in), [=](Assembler& a) { op(a, d, r); });
            continue;
          }
          b.add(std::move(in), [=](Assembler& a) { op(a, d, r); });
        }
      }
    };
    pairs(Gp16{}, Gp8{});
    pairs(Gp32{}, Gp8{});
    pairs(Gp64{}, Gp8{});
    pairs(Gp32{}, Gp16{});
    pairs(Gp64{}, Gp16{});
    for (const Addr& ad : small_addresses()) {
      const Mem m8 = to_mem(s, ad, 1), m16 = to_mem(s, ad, 2);
      for (std::uint8_t r : {0, 5, 9, 15}) {
        b.add(I(mn, {S(Gp16{r}), M(s, ad, 1)}), [=](Assembler& a) { op(a, Gp16{r}, m8); });
        b.add(I(mn, {S(Gp32{r}), M(s, ad, 1)}), [=](Assembler& a) { op(a, Gp32{r}, m8); });
        b.add(I(mn, {S(Gp32{r}), M(s, ad, 2)}), [=](Assembler& a) { op(a, Gp32{r}, m16); });
        b.add(I(mn, {S(Gp64{r}), M(s, ad, 1)}), [=](Assembler& a) { op(a, Gp64{r}, m8); });
        b.add(I(mn, {S(Gp64{r}), M(s, ad, 2)}), [=](Assembler& a) { op(a, Gp64{r}, m16); });
      }
    }
    s.refusals().expect(mn + " eax, dword ptr [rax]", [=](Assembler& a) { op(a, eax, dword_ptr(rax)); });
    s.refusals().expect(mn + " ax, word ptr [rax]", [=](Assembler& a) { op(a, ax, word_ptr(rax)); });
  };
  extend("movzx", [](Assembler& a, auto x, auto y) { a.movzx(x, y); });
  extend("movsx", [](Assembler& a, auto x, auto y) { a.movsx(x, y); });

  Batch& sxd = s.batch("movsxd");
  for (Gp64 d : regs<Gp64>()) {
    for (Gp32 r : regs<Gp32>()) {
      sxd.add(I("movsxd", {S(d), S(r)}), [=](Assembler& a) { a.movsxd(d, r); });
    }
  }
  for (Gp64 d : regs<Gp64>()) {
    for (const Addr& ad : small_addresses()) {
      const Mem m = to_mem(s, ad, 4);
      sxd.add(I("movsxd", {S(d), M(s, ad, 4)}), [=](Assembler& a) { a.movsxd(d, m); });
    }
  }

  Batch& lea = s.batch("lea");
  for (Gp64 d : regs<Gp64>()) {
    for (const Addr& ad : small_addresses()) {
      const Mem m = to_mem(s, ad, 0);
      lea.add(I("lea", {S(d), M(s, ad, 0)}), [=](Assembler& a) { a.lea(d, m); });
    }
  }
  for (Gp32 d : regs<Gp32>()) {
    for (const Addr& ad : small_addresses()) {
      const Mem m = to_mem(s, ad, 0);
      lea.add(I("lea", {S(d), M(s, ad, 0)}), [=](Assembler& a) { a.lea(d, m); });
    }
  }
  for (const Addr& ad : medium_addresses()) {
    const Mem m = to_mem(s, ad, 0);
    lea.add(I("lea", {S(eax), M(s, ad, 0)}), [=](Assembler& a) { a.lea(eax, m); });
  }
  s.refusals().expect("lea rax, [rcx+rsp*2]", [](Assembler& a) { a.lea(rax, ptr(rcx, rsp, 2, 0)); });

  auto xchg = [](Assembler& a, auto x, auto y) { a.xchg(x, y); };
  Batch& x = s.batch("xchg");
  // xchg of a register with itself: for ax and rax GNU as uses the 90 (+REX/66) short form,
  // which Zydis (rightly) reports as nop; `xchg eax, eax` must NOT be 90 (that would not
  // zero-extend rax), GNU as emits 87 c0.
  auto xchg_rr = [&](auto proto) {
    using R = decltype(proto);
    for (R d : regs<R>()) {
      for (R r : regs<R>()) {
        Instance in = I("xchg", {S(d), S(r)});
        in.operands_commute = true;
        if (!legal_pair(d, r)) {
          s.refusals().expect(describe(in), [=](Assembler& a) { a.xchg(d, r); });
          continue;
        }
        if (d.id == 0 && r.id == 0 && (kBits<R> == 16 || kBits<R> == 64)) {
          in.zydis_mnemonic = "nop";
          in.zydis_operandless = true;
        }
        x.add(std::move(in), [=](Assembler& a) { a.xchg(d, r); });
      }
    }
  };
  xchg_rr(Gp8{});
  xchg_rr(Gp16{});
  xchg_rr(Gp32{});
  xchg_rr(Gp64{});
  forms_rm<Gp8, false>(s, x, "xchg", xchg, small_addresses(), true);
  forms_rm<Gp16, false>(s, x, "xchg", xchg, small_addresses(), true);
  forms_rm<Gp32, false>(s, x, "xchg", xchg, small_addresses(), true);
  forms_rm<Gp64, false>(s, x, "xchg", xchg, small_addresses(), true);

  Batch& bs = s.batch("bswap");
  for (Gp32 r : regs<Gp32>()) bs.add(I("bswap", {S(r)}), [=](Assembler& a) { a.bswap(r); });
  for (Gp64 r : regs<Gp64>()) bs.add(I("bswap", {S(r)}), [=](Assembler& a) { a.bswap(r); });
}

// --- setcc / cmovcc -------------------------------------------------------------------------

void condition_forms(Suite& s) {
  Batch& b = s.batch("setcc");
  for (int c = 0; c < 16; ++c) {
    const Cond cond = static_cast<Cond>(c);
    for (Gp8 r : regs<Gp8>()) {
      b.add(I("set" + cond_gnu(c), {S(r)}, "set" + cond_zydis(c)), [=](Assembler& a) { a.setcc(cond, r); });
    }
    for (const Addr& ad : small_addresses()) {
      const Mem m = to_mem(s, ad, 1);
      b.add(I("set" + cond_gnu(c), {M(s, ad, 1)}, "set" + cond_zydis(c)),
            [=](Assembler& a) { a.setcc(cond, m); });
    }
  }
  Batch& cm = s.batch("cmovcc");
  for (int c = 0; c < 16; ++c) {
    const Cond cond = static_cast<Cond>(c);
    const std::string mn = "cmov" + cond_gnu(c), zy = "cmov" + cond_zydis(c);
    auto rr = [&](auto proto) {
      using R = decltype(proto);
      for (R d : regs<R>()) {
        for (R r : regs<R>()) {
          cm.add(I(mn, {S(d), S(r)}, zy), [=](Assembler& a) { a.cmovcc(cond, d, r); });
        }
      }
    };
    rr(Gp16{});
    rr(Gp32{});
    rr(Gp64{});
    s.refusals().expect(mn + " rax, byte ptr [rax]",
                        [=](Assembler& a) { a.cmovcc(cond, rax, byte_ptr(rax)); });
    for (const Addr& ad : tiny_addresses()) {
      const Mem m16 = to_mem(s, ad, 2), m32 = to_mem(s, ad, 4), m64 = to_mem(s, ad, 8);
      cm.add(I(mn, {S(r8w), M(s, ad, 2)}, zy), [=](Assembler& a) { a.cmovcc(cond, r8w, m16); });
      cm.add(I(mn, {S(ebx), M(s, ad, 4)}, zy), [=](Assembler& a) { a.cmovcc(cond, ebx, m32); });
      cm.add(I(mn, {S(r13), M(s, ad, 8)}, zy), [=](Assembler& a) { a.cmovcc(cond, r13, m64); });
    }
  }
}

// --- Control flow ---------------------------------------------------------------------------

void control_flow_forms(Suite& s) {
  // Branches over filler of chosen sizes around the rel8/rel32 boundary, backward (distance known
  // when emitted) and forward (relaxed at encode); GNU as relaxes the same way, so the bytes must
  // match exactly.
  Batch& b = s.batch("branches", /*has_relaxable_jumps=*/true);
  auto filler = [](std::size_t n) { return std::vector<std::uint8_t>(n, 0x90); };
  auto branch = [&](int c, Label target, const std::string& name, JumpForm form) {
    Instance in = c < 0 ? I("jmp", {label_op(target, name)})
                        : I("j" + cond_gnu(c), {label_op(target, name)}, "j" + cond_zydis(c));
    if (form == JumpForm::kNear) in.gnu_prefix = "{disp32}";
    if (form == JumpForm::kShort) in.gnu_prefix = "{disp8}";
    b.add(std::move(in), [=](Assembler& a) {
      if (c < 0) {
        a.jmp(target, form);
      } else {
        a.jcc(static_cast<Cond>(c), target, form);
      }
    });
  };
  for (int c = -1; c < 16; ++c) {
    for (std::size_t n : {0, 1, 120, 125, 126, 127, 128, 129, 300}) {
      const std::string back = s.fresh_label_name();
      const Label lb = b.bind_new(back);
      b.data(filler(n));
      branch(c, lb, back, JumpForm::kAuto);
    }
    for (std::size_t n : {0, 1, 120, 126, 127, 128, 129, 300}) {
      const std::string fwd = s.fresh_label_name();
      const Label lf = b.new_label(fwd);
      branch(c, lf, fwd, JumpForm::kAuto);
      b.data(filler(n));
      b.bind(lf, fwd);
    }
    // Forced forms.
    const std::string near_name = s.fresh_label_name();
    const Label ln = b.new_label(near_name);
    branch(c, ln, near_name, JumpForm::kNear);
    b.data(filler(3));
    b.bind(ln, near_name);
    const std::string short_name = s.fresh_label_name();
    const Label ls = b.bind_new(short_name);
    b.data(filler(10));
    branch(c, ls, short_name, JumpForm::kShort);
  }
  // Jumps whose sizes depend on each other: a chain of forward jumps over each other.
  for (std::size_t n : {60, 61, 62, 63, 64}) {
    std::vector<std::pair<Label, std::string>> targets;
    for (int k = 0; k < 4; ++k) {
      const std::string name = s.fresh_label_name();
      targets.emplace_back(b.new_label(name), name);
      branch(k % 2 == 0 ? -1 : 5, targets.back().first, name, JumpForm::kAuto);
    }
    for (auto& [label, name] : targets) {
      b.data(filler(n));
      b.bind(label, name);
    }
  }
  // call rel32 to labels behind and ahead.
  for (std::size_t n : {0, 1, 200}) {
    const std::string back = s.fresh_label_name();
    const Label lb = b.bind_new(back);
    b.data(filler(n));
    b.add(I("call", {label_op(lb, back)}), [=](Assembler& a) { a.call(lb); });
    const std::string fwd = s.fresh_label_name();
    const Label lf = b.new_label(fwd);
    b.add(I("call", {label_op(lf, fwd)}), [=](Assembler& a) { a.call(lf); });
    b.data(filler(n));
    b.bind(lf, fwd);
  }
  s.refusals().expect("jmp short to a label 200 bytes back", [](Assembler& a) {
    const Label l = a.new_label();
    a.bind(l);
    for (int i = 0; i < 200; ++i) a.nop();
    a.jmp(l, JumpForm::kShort);
  });
  s.refusals().expect("jmp to a label of another assembler", [](Assembler& a) { a.jmp(Label{123456}); });

  Batch& r = s.batch("indirect-push-pop-ret");
  for (Gp64 t : regs<Gp64>()) {
    r.add(I("jmp", {S(t)}), [=](Assembler& a) { a.jmp(t); });
    r.add(I("call", {S(t)}), [=](Assembler& a) { a.call(t); });
    r.add(I("push", {S(t)}), [=](Assembler& a) { a.push(t); });
    r.add(I("pop", {S(t)}), [=](Assembler& a) { a.pop(t); });
  }
  for (const Addr& ad : small_addresses()) {
    const Mem m = to_mem(s, ad, 8);
    r.add(I("jmp", {M(s, ad, 8)}), [=](Assembler& a) { a.jmp(m); });
    r.add(I("call", {M(s, ad, 8)}), [=](Assembler& a) { a.call(m); });
    r.add(I("push", {M(s, ad, 8)}), [=](Assembler& a) { a.push(m); });
    r.add(I("pop", {M(s, ad, 8)}), [=](Assembler& a) { a.pop(m); });
  }
  for (std::int64_t v : {std::int64_t{0}, std::int64_t{1}, std::int64_t{127}, std::int64_t{128},
                         std::int64_t{-128}, std::int64_t{-129}, kI32Max, kI32Min, std::int64_t{-1}}) {
    const auto v32 = static_cast<std::int32_t>(v);
    r.add(I("push", {imm_op(v, 64)}), [=](Assembler& a) { a.push(v32); });
  }
  r.add(I("ret", {}), [](Assembler& a) { a.ret(); });
  for (int n : {0, 8, 65535}) {
    const auto n16 = static_cast<std::uint16_t>(n);
    r.add(I("ret", {imm_op(n, 16)}), [=](Assembler& a) { a.ret(n16); });
  }
  s.refusals().expect("jmp dword ptr [rax]", [](Assembler& a) { a.jmp(dword_ptr(rax)); });
}

// --- Atomics and miscellaneous --------------------------------------------------------------

void atomic_and_misc_forms(Suite& s) {
  Batch& b = s.batch("atomics");
  auto locked = [&](const std::string& mn, auto op) {
    auto each = [&](auto r) {
      using R = decltype(r);
      constexpr int size = kBits<R> / 8;
      for (const Addr& ad : small_addresses()) {
        if (is_high(r) && needs_rex(ad)) continue;
        const Mem m = to_mem(s, ad, size);
        b.add(I(mn, {M(s, ad, size), S(r)}), [=](Assembler& a) { op(a, m, r); });
        Instance in = I(mn, {M(s, ad, size), S(r)});
        in.prefix = "lock";
        b.add(std::move(in), [=](Assembler& a) {
          a.lock();
          op(a, m, r);
        });
      }
    };
    for (std::uint8_t id : {0, 3, 7, 8, 15}) {
      each(Gp8{id, false});
      each(Gp16{id});
      each(Gp32{id});
      each(Gp64{id});
    }
    each(ah);
    for (Gp32 d : regs<Gp32>()) {
      for (Gp32 r : {eax, ecx, r9d}) b.add(I(mn, {S(d), S(r)}), [=](Assembler& a) { op(a, d, r); });
    }
    for (Gp64 d : regs<Gp64>()) {
      for (Gp64 r : {rax, rsp, r12}) b.add(I(mn, {S(d), S(r)}), [=](Assembler& a) { op(a, d, r); });
    }
  };
  locked("cmpxchg", [](Assembler& a, auto x, auto y) { a.cmpxchg(x, y); });
  locked("xadd", [](Assembler& a, auto x, auto y) { a.xadd(x, y); });
  // lock with read-modify-write ALU and unary forms.
  for (const Addr& ad : small_addresses()) {
    const Mem m64 = to_mem(s, ad, 8), m32 = to_mem(s, ad, 4), m8 = to_mem(s, ad, 1);
    auto add_locked = [&](Instance in, std::function<void(Assembler&)> f) {
      in.prefix = "lock";
      b.add(std::move(in), [f](Assembler& a) {
        a.lock();
        f(a);
      });
    };
    add_locked(I("add", {M(s, ad, 8), S(rcx)}), [=](Assembler& a) { a.add(m64, rcx); });
    add_locked(I("sub", {M(s, ad, 4), imm_op(1, 32)}), [=](Assembler& a) { a.sub(m32, 1); });
    add_locked(I("or", {M(s, ad, 1), imm_op(-128, 8)}), [=](Assembler& a) { a.or_(m8, -128); });
    add_locked(I("inc", {M(s, ad, 8)}), [=](Assembler& a) { a.inc(m64); });
    add_locked(I("dec", {M(s, ad, 4)}), [=](Assembler& a) { a.dec(m32); });
    add_locked(I("bts", {M(s, ad, 8), imm_op(63, 8)}), [=](Assembler& a) { a.bts(m64, std::uint8_t{63}); });
  }
  s.refusals().expect("lock add rax, rcx (no memory destination)", [](Assembler& a) {
    a.lock();
    a.add(rax, rcx);
  });
  s.refusals().expect("lock mov qword ptr [rax], rcx (not lockable)", [](Assembler& a) {
    a.lock();
    a.mov(qword_ptr(rax), rcx);
  });
  s.refusals().expect("lock ret", [](Assembler& a) {
    a.lock();
    a.ret();
  });
  s.refusals().expect("lock jmp label", [](Assembler& a) {
    const Label l = a.new_label();
    a.bind(l);
    a.lock();
    a.jmp(l);
  });
  s.refusals().expect("lock call rax", [](Assembler& a) {
    a.lock();
    a.call(rax);
  });
  s.refusals().expect("lock nop", [](Assembler& a) {
    a.lock();
    a.nop();
  });
  s.refusals().expect("lock cmpxchg eax, ecx (register destination)", [](Assembler& a) {
    a.lock();
    a.cmpxchg(eax, ecx);
  });

  Batch& m = s.batch("misc");
  m.add(I("mfence", {}), [](Assembler& a) { a.mfence(); });
  m.add(I("lfence", {}), [](Assembler& a) { a.lfence(); });
  m.add(I("sfence", {}), [](Assembler& a) { a.sfence(); });
  m.add(I("pause", {}), [](Assembler& a) { a.pause(); });
  m.add(I("ud2", {}), [](Assembler& a) { a.ud2(); });
  m.add(I("int3", {}), [](Assembler& a) { a.int3(); });
  m.add(I("nop", {}), [](Assembler& a) { a.nop(); });
  m.add(I("cpuid", {}), [](Assembler& a) { a.cpuid(); });
  m.add(I("rdtsc", {}), [](Assembler& a) { a.rdtsc(); });
  m.add(I("rdtscp", {}), [](Assembler& a) { a.rdtscp(); });
}

// --- SSE2 -----------------------------------------------------------------------------------

void sse_forms(Suite& s) {
  Batch& b = s.batch("sse");
  auto xx = [&](const std::string& mn, auto op) {
    for (Xmm d : regs<Xmm>()) {
      for (Xmm r : regs<Xmm>()) b.add(I(mn, {S(d), S(r)}), [=](Assembler& a) { op(a, d, r); });
    }
  };
  auto xm = [&](const std::string& mn, int size, auto op) {
    for (std::uint8_t id : {0, 7, 8, 15}) {
      const Xmm d{id};
      for (const Addr& ad : small_addresses()) {
        const Mem m = to_mem(s, ad, size);
        b.add(I(mn, {S(d), M(s, ad, size)}), [=](Assembler& a) { op(a, d, m); });
      }
    }
  };
  auto mx = [&](const std::string& mn, int size, auto op) {
    for (std::uint8_t id : {0, 7, 8, 15}) {
      const Xmm r{id};
      for (const Addr& ad : small_addresses()) {
        const Mem m = to_mem(s, ad, size);
        b.add(I(mn, {M(s, ad, size), S(r)}), [=](Assembler& a) { op(a, m, r); });
      }
    }
  };
  {
    auto op = [](Assembler& a, auto x, auto y) { a.movsd(x, y); };
    xx("movsd", op);
    xm("movsd", 8, op);
    mx("movsd", 8, op);
  }
  {
    auto op = [](Assembler& a, auto x, auto y) { a.movq(x, y); };
    xx("movq", op);
    xm("movq", 8, op);
    mx("movq", 8, op);
    for (Xmm x : regs<Xmm>()) {
      for (Gp64 g : regs<Gp64>()) {
        b.add(I("movq", {S(x), S(g)}), [=](Assembler& a) { a.movq(x, g); });
        b.add(I("movq", {S(g), S(x)}), [=](Assembler& a) { a.movq(g, x); });
      }
    }
  }
  for (Xmm x : regs<Xmm>()) {
    for (Gp32 g : regs<Gp32>()) {
      b.add(I("movd", {S(x), S(g)}), [=](Assembler& a) { a.movd(x, g); });
      b.add(I("movd", {S(g), S(x)}), [=](Assembler& a) { a.movd(g, x); });
    }
  }
  {
    auto op = [](Assembler& a, auto x, auto y) { a.movapd(x, y); };
    xx("movapd", op);
    xm("movapd", 16, op);
    mx("movapd", 16, op);
  }
#define JITKIT_SSE_ARITH(name, size)                              \
  {                                                               \
    auto op = [](Assembler& a, auto x, auto y) { a.name(x, y); }; \
    xx(#name, op);                                                \
    xm(#name, size, op);                                          \
  }
  JITKIT_SSE_ARITH(addsd, 8)
  JITKIT_SSE_ARITH(subsd, 8)
  JITKIT_SSE_ARITH(mulsd, 8)
  JITKIT_SSE_ARITH(divsd, 8)
  JITKIT_SSE_ARITH(sqrtsd, 8)
  JITKIT_SSE_ARITH(minsd, 8)
  JITKIT_SSE_ARITH(maxsd, 8)
  JITKIT_SSE_ARITH(ucomisd, 8)
  JITKIT_SSE_ARITH(comisd, 8)
  JITKIT_SSE_ARITH(xorpd, 16)
  JITKIT_SSE_ARITH(andpd, 16)
#undef JITKIT_SSE_ARITH
  for (Xmm x : regs<Xmm>()) {
    for (Gp32 g : regs<Gp32>()) {
      b.add(I("cvtsi2sd", {S(x), S(g)}), [=](Assembler& a) { a.cvtsi2sd(x, g); });
      b.add(I("cvttsd2si", {S(g), S(x)}), [=](Assembler& a) { a.cvttsd2si(g, x); });
    }
    for (Gp64 g : regs<Gp64>()) {
      b.add(I("cvtsi2sd", {S(x), S(g)}), [=](Assembler& a) { a.cvtsi2sd(x, g); });
      b.add(I("cvttsd2si", {S(g), S(x)}), [=](Assembler& a) { a.cvttsd2si(g, x); });
    }
  }
  // A memory size that disagrees with what the instruction reads is refused, as for GP forms.
  s.refusals().expect("movsd xmm0, dword ptr [rax]", [](Assembler& a) { a.movsd(xmm0, dword_ptr(rax)); });
  s.refusals().expect("movsd word ptr [rax], xmm1", [](Assembler& a) { a.movsd(word_ptr(rax), xmm1); });
  s.refusals().expect("addsd xmm0, xmmword ptr [rax]", [](Assembler& a) { a.addsd(xmm0, xmmword_ptr(rax)); });
  s.refusals().expect("movapd xmm0, qword ptr [rax]", [](Assembler& a) { a.movapd(xmm0, qword_ptr(rax)); });
  s.refusals().expect("xorpd xmm0, qword ptr [rax]", [](Assembler& a) { a.xorpd(xmm0, qword_ptr(rax)); });
  s.refusals().expect("movq xmm0, dword ptr [rax]", [](Assembler& a) { a.movq(xmm0, dword_ptr(rax)); });
  s.refusals().expect("cvtsi2sd xmm0, word ptr [rax]", [](Assembler& a) { a.cvtsi2sd(xmm0, word_ptr(rax)); });
  s.refusals().expect("cvttsd2si eax, dword ptr [rax]",
                      [](Assembler& a) { a.cvttsd2si(eax, dword_ptr(rax)); });
  s.refusals().expect("movsd xmm0, qword ptr [rax+rsp*1]",
                      [](Assembler& a) { a.movsd(xmm0, qword_ptr(rax, rsp, 1, 0)); });
  for (const Addr& ad : small_addresses()) {
    const Mem m32 = to_mem(s, ad, 4), m64 = to_mem(s, ad, 8);
    b.add(I("cvtsi2sd", {S(xmm9), M(s, ad, 4)}), [=](Assembler& a) { a.cvtsi2sd(xmm9, m32); });
    b.add(I("cvtsi2sd", {S(xmm2), M(s, ad, 8)}), [=](Assembler& a) { a.cvtsi2sd(xmm2, m64); });
    b.add(I("cvttsd2si", {S(r10d), M(s, ad, 8)}), [=](Assembler& a) { a.cvttsd2si(r10d, m64); });
    b.add(I("cvttsd2si", {S(rbx), M(s, ad, 8)}), [=](Assembler& a) { a.cvttsd2si(rbx, m64); });
  }
}

}  // namespace jitkit::x64::test_util

// --- Random interleavings ------------------------------------------------------------------

namespace jitkit::x64::test_util {

// Relaxable jumps interleaved with RIP-relative references, calls, label binds, filler of random
// size (pushing distances across the rel8 boundary) and ordinary instructions: the layout pass
// must place everything exactly where GNU as' relaxation does. Deterministic; the seed can be
// changed with JITKIT_ASM_SEED to explore other interleavings.
void random_interleaving_forms(Suite& s) {
  std::uint64_t seed = 20261121;
  if (const char* env = std::getenv("JITKIT_ASM_SEED"); env != nullptr && *env != '\0') {
    seed = std::strtoull(env, nullptr, 0);
  }
  std::mt19937_64 rng(seed);
  auto pick = [&](std::size_t n) { return static_cast<std::size_t>(rng() % n); };
  for (int round = 0; round < 4; ++round) {
    Batch& b = s.batch("seed-" + std::to_string(seed) + "-" + std::to_string(round), true);
    std::vector<std::pair<Label, std::string>> bound = {{s.back_label(), s.back_name()}};
    std::vector<std::pair<Label, std::string>> pending = {{s.fwd_label(), s.fwd_name()}};
    auto any_label = [&]() -> std::pair<Label, std::string> {
      if (!pending.empty() && pick(2) == 0) return pending[pick(pending.size())];
      return bound[pick(bound.size())];
    };
    const auto& addrs = small_addresses();
    for (int step = 0; step < 6000; ++step) {
      const std::size_t what = pick(100);
      if (what < 8) {  // a new forward label, or bind one
        if (!pending.empty() && pick(2) == 0) {
          const std::size_t i = pick(pending.size());
          if (pending[i].first == s.fwd_label()) continue;  // bound by the suite at the end
          b.bind(pending[i].first, pending[i].second);
          bound.push_back(pending[i]);
          pending.erase(pending.begin() + static_cast<std::ptrdiff_t>(i));
        } else {
          const std::string name = s.fresh_label_name();
          pending.emplace_back(b.new_label(name), name);
        }
      } else if (what < 22) {  // jcc / jmp
        const auto [label, name] = any_label();
        const int c = static_cast<int>(pick(17)) - 1;
        Instance in = c < 0 ? I("jmp", {label_op(label, name)})
                            : I("j" + cond_gnu(c), {label_op(label, name)}, "j" + cond_zydis(c));
        b.add(std::move(in), [=, l = label](Assembler& a) {
          if (c < 0) {
            a.jmp(l);
          } else {
            a.jcc(static_cast<Cond>(c), l);
          }
        });
      } else if (what < 26) {  // call
        const auto [label, name] = any_label();
        b.add(I("call", {label_op(label, name)}), [l = label](Assembler& a) { a.call(l); });
      } else if (what < 36) {  // RIP-relative to any label
        const auto [label, name] = any_label();
        MemSpec m;
        m.size_bytes = 8;
        m.rip_label = true;
        m.label = label;
        m.label_name = name;
        m.disp = static_cast<std::int64_t>(pick(3)) * 8;
        const Mem mem = qword_ptr(label, static_cast<std::int32_t>(m.disp));
        const Gp64 r{static_cast<std::uint8_t>(pick(16))};
        if (pick(2) == 0) {
          b.add(I("mov", {S(r), mem_op(m)}), [=](Assembler& a) { a.mov(r, mem); });
        } else {
          m.size_bytes = 0;
          b.add(I("lea", {S(r), mem_op(m)}), [=](Assembler& a) { a.lea(r, mem.sized(0)); });
        }
      } else if (what < 40) {  // filler around the rel8 boundary
        b.data(std::vector<std::uint8_t>(pick(3) == 0 ? 100 + pick(60) : pick(8), 0x90));
      } else {  // an ordinary instruction
        const Gp64 r{static_cast<std::uint8_t>(pick(16))};
        const Gp32 r32{static_cast<std::uint8_t>(pick(16))};
        const Addr& ad = addrs[pick(addrs.size())];
        const Mem m64 = to_mem(s, ad, 8), m32 = to_mem(s, ad, 4);
        const std::int64_t v = imms(32)[pick(imms(32).size())];
        const std::int64_t v64 = imms(64)[pick(imms(64).size())];
        switch (pick(6)) {
          case 0:
            b.add(I("add", {S(r), M(s, ad, 8)}), [=](Assembler& a) { a.add(r, m64); });
            break;
          case 1:
            b.add(I("mov", {M(s, ad, 4), S(r32)}), [=](Assembler& a) { a.mov(m32, r32); });
            break;
          case 2:
            b.add(I("cmp", {S(r32), imm_op(v, 32)}), [=](Assembler& a) { a.cmp(r32, v); });
            break;
          case 3:
            b.add(I("sub", {M(s, ad, 8), imm_op(v64, 64)}), [=](Assembler& a) { a.sub(m64, v64); });
            break;
          case 4:
            b.add(I("imul", {S(r), M(s, ad, 8), imm_op(v64, 64)}),
                  [=](Assembler& a) { a.imul(r, m64, v64); });
            break;
          default:
            b.add(I("xor", {S(r32), S(r32)}), [=](Assembler& a) { a.xor_(r32, r32); });
            break;
        }
      }
    }
    for (const auto& [label, name] : pending) {
      if (label == s.fwd_label()) continue;
      b.bind(label, name);
    }
  }
}

}  // namespace jitkit::x64::test_util

// --- Host addresses -------------------------------------------------------------------------

namespace jitkit::x64::test_util {

void host_address_forms(Suite& s) {
  // Code placed where mmap usually puts it; targets on each side of every form boundary.
  constexpr std::uint64_t kCode = 0x7f0000000000;
  enum class Reach { kNear, kAbs32, kFar };
  struct Target {
    std::uint64_t address;
    Reach reach;
  };
  const std::vector<Target> targets = {
      {kCode + 0x10000000, Reach::kNear},      // 256 MiB ahead
      {kCode - 0x40000000, Reach::kNear},      // 1 GiB behind
      {0x12345678, Reach::kAbs32},             // low: absolute disp32
      {0x7fff0000, Reach::kAbs32},             // just below 2 GiB
      {0xffffffff80001000ULL, Reach::kAbs32},  // sign-extended negative disp32
      {0x3f0000000000, Reach::kFar},           // > 4 GiB, far from the code
      {kCode + 0xC0000000ULL, Reach::kFar},    // 3 GiB ahead: beyond rel32
  };
  Batch& b = s.batch("host", /*has_relaxable_jumps=*/true);
  b.set_base(kCode);
  b.assembler().allow_scratch(r11);
  int n = 0;
  for (const Target& t : targets) {
    const std::string sym = "jk_host_" + std::to_string(n++);
    b.define_symbol(sym, t.address);
    const HostAddress h = abs_address(t.address);
    auto host_mem = [&](int size, MemSpec::Host far_form) {
      MemSpec m;
      m.size_bytes = size;
      m.host = t.reach == Reach::kNear    ? MemSpec::Host::kRip
               : t.reach == Reach::kAbs32 ? MemSpec::Host::kAbs
                                          : far_form;
      m.host_symbol = sym;
      m.host_address = t.address;
      return m;
    };
    // Through r11 (allowed scratch) when far: `movabs r11, offset sym` then the access via [r11].
    auto scratch_mem = [&](int size) {
      MemSpec m;
      m.size_bytes = size;
      m.base = 11;
      return m;
    };
    auto add_mem_insn = [&](const std::string& mn, std::vector<OpSpec> ops, int mem_index, int size,
                            const std::function<void(Assembler&)>& emit) {
      if (t.reach == Reach::kFar) {
        b.add_leading(I("movabs",
                        {S(r11),
                         [&] {
                           OpSpec o = imm_op(static_cast<std::int64_t>(t.address), 64);
                           o.text_override = "offset " + sym;
                           return o;
                         }()},
                        "mov"));
        ops[static_cast<std::size_t>(mem_index)] = mem_op(scratch_mem(size));
      } else {
        ops[static_cast<std::size_t>(mem_index)] = mem_op(host_mem(size, MemSpec::Host::kNone));
      }
      b.add(I(mn, std::move(ops)), emit);
    };
    // Accumulator loads and stores: the 64-bit moffs form when far.
    auto acc = [&](auto reg, int size) {
      const Mem m = ptr(h).sized(static_cast<std::uint8_t>(size));
      const bool far = t.reach == Reach::kFar;
      b.add(I(far ? "movabs" : "mov", {S(reg), mem_op(host_mem(size, MemSpec::Host::kMoffs))},
              far ? "mov" : ""),
            [=](Assembler& a) { a.mov(reg, m); });
      b.add(I(far ? "movabs" : "mov", {mem_op(host_mem(size, MemSpec::Host::kMoffs)), S(reg)},
              far ? "mov" : ""),
            [=](Assembler& a) { a.mov(m, reg); });
    };
    acc(al, 1);
    acc(ax, 2);
    acc(eax, 4);
    acc(rax, 8);
    // movabs: the moffs64 form explicitly, whatever the distance.
    auto moffs = [&](auto reg, int size) {
      MemSpec m;
      m.size_bytes = size;
      m.host = MemSpec::Host::kMoffs;
      m.host_symbol = sym;
      m.host_address = t.address;
      b.add(I("movabs", {S(reg), mem_op(m)}, "mov"), [=](Assembler& a) { a.movabs(reg, h); });
      b.add(I("movabs", {mem_op(m), S(reg)}, "mov"), [=](Assembler& a) { a.movabs(h, reg); });
    };
    moffs(al, 1);
    moffs(ax, 2);
    moffs(eax, 4);
    moffs(rax, 8);
    if (n == 1) {
      s.refusals().expect("movabs ecx, [host] (not the accumulator)",
                          [=](Assembler& a) { a.movabs(ecx, h); });
      s.refusals().expect("movabs [host], r8", [=](Assembler& a) { a.movabs(h, r8); });
      s.refusals().expect("movabs ah, [host]", [=](Assembler& a) { a.movabs(ah, h); });
      s.refusals().expect("movabs [host], r8w", [=](Assembler& a) { a.movabs(h, r8w); });
    }
    const Mem d = dword_ptr(h), q = qword_ptr(h), by = byte_ptr(h);
    add_mem_insn("mov", {S(ecx), OpSpec{}}, 1, 4, [=](Assembler& a) { a.mov(ecx, d); });
    add_mem_insn("mov", {OpSpec{}, S(r14)}, 0, 8, [=](Assembler& a) { a.mov(q, r14); });
    add_mem_insn("mov", {OpSpec{}, imm_op(42, 32)}, 0, 4, [=](Assembler& a) { a.mov(d, 42); });
    add_mem_insn("add", {S(r9), OpSpec{}}, 1, 8, [=](Assembler& a) { a.add(r9, q); });
    add_mem_insn("cmp", {OpSpec{}, imm_op(-1, 8)}, 0, 1, [=](Assembler& a) { a.cmp(by, -1); });
    add_mem_insn("inc", {OpSpec{}}, 0, 8, [=](Assembler& a) { a.inc(q); });
    add_mem_insn("movsd", {S(xmm3), OpSpec{}}, 1, 8, [=](Assembler& a) { a.movsd(xmm3, q); });
    add_mem_insn("push", {OpSpec{}}, 0, 8, [=](Assembler& a) { a.push(q); });
    // lea: the address itself; when far, `mov r64, imm64` into the destination.
    if (t.reach == Reach::kFar) {
      OpSpec o = imm_op(static_cast<std::int64_t>(t.address), 64);
      o.text_override = "offset " + sym;
      b.add(I("movabs", {S(rdx), o}, "mov"), [=](Assembler& a) { a.lea(rdx, ptr(h)); });
    } else {
      b.add(I("lea", {S(rdx), mem_op(host_mem(0, MemSpec::Host::kNone))}),
            [=](Assembler& a) { a.lea(rdx, ptr(h)); });
    }
    // call/jmp: rel32 when near, otherwise through an 8-byte address slot after the code.
    for (const char* mn : {"call", "jmp"}) {
      const bool is_call = std::string(mn) == "call";
      auto emit = [=](Assembler& a) {
        if (is_call) {
          a.call(h);
        } else {
          a.jmp(h);
        }
      };
      if (t.reach == Reach::kNear) {
        OpSpec target;
        target.kind = OpSpec::Kind::kLabel;
        target.host_symbol = sym;
        target.host_address = t.address;
        b.add(I(mn, {target}), emit);
      } else {
        MemSpec m;
        m.size_bytes = 8;
        m.host = MemSpec::Host::kSlot;
        m.host_symbol = s.fresh_label_name().substr(2) + "_slot";  // unique, not a local label
        m.host_address = t.address;
        b.add(I(mn, {mem_op(m)}), emit);
      }
    }
    if (t.reach == Reach::kFar) {
      // Without a scratch register the far non-accumulator forms cannot be encoded: an error at
      // encode time (out of range), never a truncated address.
      s.refusals().expect_encode_failure("mov ecx, [far host] without scratch", kCode,
                                         [=](Assembler& a) { a.mov(ecx, d); });
      s.refusals().expect_encode_failure("add qword [far host], 1 without scratch", kCode,
                                         [=](Assembler& a) { a.add(q, 1); });
    }
  }
}

}  // namespace jitkit::x64::test_util
