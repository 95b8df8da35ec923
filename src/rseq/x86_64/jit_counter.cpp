// JIT-emitted per-CPU counter sections (jitkit/rseq/jit.h).
#include "jitkit/rseq/jit.h"
#include "jitkit/x64/assembler.h"
#include "rseq/x86_64/jit_common_p.h"

namespace jitkit::rseq {
namespace {

using namespace jitkit::x64;
using detail::SectionLabels;

// Offsets in JitCounterAddArgs, checked against the struct.
constexpr std::int32_t kArea = 0, kSlots = 8, kDelta = 16, kCount = 24, kAborts = 32, kIndexOffset = 40;
static_assert(offsetof(JitCounterAddArgs, area) == kArea);
static_assert(offsetof(JitCounterAddArgs, slots) == kSlots);
static_assert(offsetof(JitCounterAddArgs, delta) == kDelta);
static_assert(offsetof(JitCounterAddArgs, count) == kCount);
static_assert(offsetof(JitCounterAddArgs, aborts) == kAborts);
static_assert(offsetof(JitCounterAddArgs, index_offset) == kIndexOffset);

// Emits the function described in jit.h. Registers: rdi args, r8 area, r9 slots, r10 delta,
// r11 remaining adds, rsi index offset; rax/rcx/rdx scratch (all caller-saved in the SysV ABI).
// `delay_spins` non-null (tests only): a delay loop of *delay_spins iterations before the add.
SectionLabels emit_counter_add(Assembler& a, const RseqCs* descriptor, const std::uint32_t* delay_spins) {
  SectionLabels l{a.new_label(), a.new_label(), a.new_label()};
  Label loop = a.new_label(), done = a.new_label();
  a.mov(r8, qword_ptr(rdi, kArea));
  a.mov(r9, qword_ptr(rdi, kSlots));
  a.mov(r10, qword_ptr(rdi, kDelta));
  a.mov(r11, qword_ptr(rdi, kCount));
  a.mov(rsi, qword_ptr(rdi, kIndexOffset));
  a.test(r11, r11);
  a.jz(done);
  a.align(16);
  a.bind(loop);
  // Arm: rseq_cs = &descriptor (rip-relative: the zone's data is within rel32 reach).
  a.lea(rax, qword_ptr(abs(descriptor)));
  a.mov(qword_ptr(r8, offsetof(RseqArea, rseq_cs)), rax);
  a.bind(l.start);
  // The index is read inside the section: a migration after this load aborts it.
  a.mov(eax, dword_ptr(r8, rsi, 1));
  a.shl(rax, static_cast<std::uint8_t>(kSlotShift));
  a.add(rax, r9);
  a.mov(rcx, qword_ptr(rax));
  if (delay_spins != nullptr) {
    Label spin = a.new_label(), spun = a.new_label();
    a.movabs(rdx, reinterpret_cast<std::uint64_t>(delay_spins));
    a.mov(edx, dword_ptr(rdx));
    a.bind(spin);
    a.test(edx, edx);
    a.jz(spun);
    a.dec(edx);
    a.jmp(spin);
    a.bind(spun);
  }
  a.add(rcx, r10);
  a.mov(qword_ptr(rax), rcx);  // commit
  a.bind(l.end);
  a.dec(r11);
  a.jnz(loop);
  a.bind(done);
  a.mov(rax, qword_ptr(rdi, kCount));
  a.sub(rax, r11);
  a.ret();
  detail::emit_signature(a);
  a.bind(l.abort);
  a.inc(qword_ptr(rdi, kAborts));
  a.cmp(qword_ptr(rdi, kAborts), kMaxAttempts);
  a.jb(loop);  // bounded: after kMaxAttempts aborts in one call, return what was committed
  a.jmp(done);
  return l;
}

}  // namespace

JitCounterAdd::JitCounterAdd(code::CodeZone& zone, RseqCs* descriptor, install::InstalledCode code,
                             std::string name)
    : zone_(zone),
      descriptor_(descriptor),
      code_(std::move(code)),
      name_(std::make_unique<std::string>(std::move(name))),
      fn_(code_.entry<Fn>()) {}

Result<std::unique_ptr<JitCounterAdd>> JitCounterAdd::create(code::CodeZone& zone,
                                                             const JitOptions& options) {
  return detail::JitFactory::counter_add(zone, options, nullptr);
}

Result<std::unique_ptr<JitCounterAdd>> detail::JitFactory::counter_add(code::CodeZone& zone,
                                                                       const JitOptions& options,
                                                                       const std::uint32_t* delay_spins) {
  JITKIT_TRY(RseqCs * descriptor, detail::allocate_descriptor(zone));
  Assembler a;
  SectionLabels labels = emit_counter_add(a, descriptor, delay_spins);
  install::InstallOptions io;
  io.name = options.name;
  io.visibility = code::Visibility::kOtherThreads;
  auto installed = install::install(a, zone, io);
  if (!installed) return std::move(installed).error().context("rseq: JIT counter: install");
  detail::fill_descriptor(descriptor, *installed, labels);
  std::unique_ptr<JitCounterAdd> section(
      new JitCounterAdd(zone, descriptor, std::move(installed).value(), options.name));
  detail::table_add(section->descriptor_, section->code_, section->name_->c_str());
  return section;
}

JitCounterAdd::~JitCounterAdd() { (void)release(); }

void JitCounterAdd::add(PerCpuCounter& counter, std::int64_t delta, std::uint64_t times) {
  RseqArea* area = detail::tls_area;
  if (area == nullptr) area = ensure_registered().area;
  if (area == nullptr || released_) {
    // No area in this thread (or no rseq in the process): the counter's atomic cell.
    counter.add_fallback(delta * static_cast<std::int64_t>(times));
    return;
  }
  JitCounterAddArgs args{area, counter.slot_base(), delta, times, 0, counter.index_offset()};
  while (args.count > 0) {
    args.aborts = 0;
    std::uint64_t committed = fn_(&args);
    if (args.aborts != 0) detail::count_aborts(args.aborts);
    args.count -= committed;
    if (args.count > 0 && committed == 0) {
      // A whole call of kMaxAttempts aborts without progress: stop retrying.
      counter.add_fallback(delta * static_cast<std::int64_t>(args.count));
      return;
    }
  }
}

Status JitCounterAdd::release() {
  if (released_) return ok();
  released_ = true;
  return detail::reclaim(zone_, code_, {descriptor_});
}

}  // namespace jitkit::rseq
