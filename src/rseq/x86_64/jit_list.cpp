// JIT-emitted per-CPU list push and pop (jitkit/rseq/jit.h): the same sections as the
// ahead-of-time list_push/list_pop, emitted with the x64 assembler.
#include <sched.h>

#include "jitkit/rseq/jit.h"
#include "jitkit/x64/assembler.h"
#include "rseq/x86_64/jit_common_p.h"

namespace jitkit::rseq {
namespace {

using namespace jitkit::x64;
using detail::SectionLabels;

constexpr std::int32_t kArea = 0, kSlots = 8, kIndexOffset = 16, kNode = 24, kAborts = 32;
static_assert(offsetof(JitListArgs, area) == kArea);
static_assert(offsetof(JitListArgs, slots) == kSlots);
static_assert(offsetof(JitListArgs, index_offset) == kIndexOffset);
static_assert(offsetof(JitListArgs, node) == kNode);
static_assert(offsetof(JitListArgs, aborts) == kAborts);

// Registers: rdi args, r8 area, r9 slots, rsi index offset, r10 node; rax slot address, rcx
// head, rdx next, r11d delay counter.
void emit_slot_address(Assembler& a) {
  // The index is read inside the section: a migration after this load aborts it.
  a.mov(eax, dword_ptr(r8, rsi, 1));
  a.shl(rax, static_cast<std::uint8_t>(kSlotShift));
  a.add(rax, r9);
}

// `delay_spins` non-null (tests only): a delay loop of *delay_spins iterations.
void emit_delay(Assembler& a, const std::uint32_t* delay_spins) {
  if (delay_spins == nullptr) return;
  Label spin = a.new_label(), spun = a.new_label();
  a.movabs(r11, reinterpret_cast<std::uint64_t>(delay_spins));
  a.mov(r11d, dword_ptr(r11));
  a.bind(spin);
  a.test(r11d, r11d);
  a.jz(spun);
  a.dec(r11d);
  a.jmp(spin);
  a.bind(spun);
}

void emit_abort(Assembler& a, const SectionLabels& l, Label retry) {
  detail::emit_signature(a);
  a.bind(l.abort);
  a.inc(qword_ptr(rdi, kAborts));
  a.cmp(qword_ptr(rdi, kAborts), kMaxAttempts);
  a.jb(retry);
  a.mov(eax, static_cast<std::int64_t>(JitListOps::kGaveUp));
  a.ret();
}

// push: node->next = head; head = node (commit). Returns a JitListOps::Outcome.
SectionLabels emit_push(Assembler& a, const RseqCs* descriptor, const std::uint32_t* delay_spins) {
  SectionLabels l{a.new_label(), a.new_label(), a.new_label()};
  Label retry = a.new_label(), locked = a.new_label();
  a.mov(r8, qword_ptr(rdi, kArea));
  a.mov(r9, qword_ptr(rdi, kSlots));
  a.mov(rsi, qword_ptr(rdi, kIndexOffset));
  a.mov(r10, qword_ptr(rdi, kNode));
  a.bind(retry);
  a.lea(rax, qword_ptr(abs(descriptor)));
  a.mov(qword_ptr(r8, offsetof(RseqArea, rseq_cs)), rax);
  a.bind(l.start);
  emit_slot_address(a);
  a.cmp(qword_ptr(rax, 8), 0);  // slot lock: a cross-CPU operation owns the slot
  a.jne(locked);
  a.mov(rcx, qword_ptr(rax));
  a.mov(qword_ptr(r10), rcx);
  emit_delay(a, delay_spins);
  a.mov(qword_ptr(rax), r10);  // commit
  a.bind(l.end);
  a.xor_(eax, eax);
  a.ret();
  a.bind(locked);
  a.mov(eax, static_cast<std::int64_t>(JitListOps::kLocked));
  a.ret();
  emit_abort(a, l, retry);
  return l;
}

// pop: head' = head->next (commit); args->node = old head after the commit.
SectionLabels emit_pop(Assembler& a, const RseqCs* descriptor, const std::uint32_t* delay_spins) {
  SectionLabels l{a.new_label(), a.new_label(), a.new_label()};
  Label retry = a.new_label(), locked = a.new_label(), empty = a.new_label();
  a.mov(r8, qword_ptr(rdi, kArea));
  a.mov(r9, qword_ptr(rdi, kSlots));
  a.mov(rsi, qword_ptr(rdi, kIndexOffset));
  a.bind(retry);
  a.lea(rax, qword_ptr(abs(descriptor)));
  a.mov(qword_ptr(r8, offsetof(RseqArea, rseq_cs)), rax);
  a.bind(l.start);
  emit_slot_address(a);
  a.cmp(qword_ptr(rax, 8), 0);
  a.jne(locked);
  a.mov(rcx, qword_ptr(rax));
  a.test(rcx, rcx);
  a.jz(empty);
  a.mov(rdx, qword_ptr(rcx));
  emit_delay(a, delay_spins);
  a.mov(qword_ptr(rax), rdx);  // commit
  a.bind(l.end);
  a.mov(qword_ptr(rdi, kNode), rcx);
  a.xor_(eax, eax);
  a.ret();
  a.bind(locked);
  a.mov(eax, static_cast<std::int64_t>(JitListOps::kLocked));
  a.ret();
  a.bind(empty);
  a.mov(eax, static_cast<std::int64_t>(JitListOps::kEmpty));
  a.ret();
  emit_abort(a, l, retry);
  return l;
}

}  // namespace

JitListOps::JitListOps(code::CodeZone& zone, std::vector<RseqCs*> descriptors, install::InstalledCode code,
                       std::string name, Fn push_fn, Fn pop_fn)
    : zone_(zone),
      descriptors_(std::move(descriptors)),
      code_(std::move(code)),
      name_(std::make_unique<std::string>(std::move(name))),
      push_(push_fn),
      pop_(pop_fn) {}

Result<std::unique_ptr<JitListOps>> JitListOps::create(code::CodeZone& zone, const JitOptions& options) {
  return detail::JitFactory::list_ops(zone, options, nullptr);
}

Result<std::unique_ptr<JitListOps>> detail::JitFactory::list_ops(code::CodeZone& zone,
                                                                 const JitOptions& options,
                                                                 const std::uint32_t* delay_spins) {
  JITKIT_TRY(RseqCs * push_desc, detail::allocate_descriptor(zone));
  JITKIT_TRY(RseqCs * pop_desc, detail::allocate_descriptor(zone));
  Assembler a;
  Label push_entry = a.new_label(), pop_entry = a.new_label();
  a.bind(push_entry);
  SectionLabels push_labels = emit_push(a, push_desc, delay_spins);
  a.align(16);
  a.bind(pop_entry);
  SectionLabels pop_labels = emit_pop(a, pop_desc, delay_spins);
  install::InstallOptions io;
  io.name = options.name == JitOptions{}.name ? "jitkit_rseq_list_ops" : options.name;
  io.visibility = code::Visibility::kOtherThreads;
  auto installed = install::install(a, zone, io);
  if (!installed) return std::move(installed).error().context("rseq: JIT list ops: install");
  detail::fill_descriptor(push_desc, *installed, push_labels);
  detail::fill_descriptor(pop_desc, *installed, pop_labels);
  auto push_fn = reinterpret_cast<JitListOps::Fn>(installed->label_address(push_entry));
  auto pop_fn = reinterpret_cast<JitListOps::Fn>(installed->label_address(pop_entry));
  std::unique_ptr<JitListOps> ops(
      new JitListOps(zone, {push_desc, pop_desc}, std::move(installed).value(), io.name, push_fn, pop_fn));
  for (RseqCs* d : ops->descriptors_) detail::table_add(d, ops->code_, ops->name_->c_str());
  return ops;
}

JitListOps::~JitListOps() { (void)release(); }

void JitListOps::push(PerCpuList& list, PerCpuList::Node* node) {
  detail::tsan_release(node);
  RseqArea* area = detail::tls_area;
  if (area == nullptr) area = ensure_registered().area;
  if (area != nullptr && !released_) {
    JitListArgs args{area, list.slot_base(), list.index_offset(), node, 0};
    for (int attempt = 0; attempt < kMaxAttempts; ++attempt) {
      args.aborts = 0;
      std::uint64_t r = push_(&args);
      if (args.aborts != 0) detail::count_aborts(args.aborts);
      if (r == kCommitted) return;
      if (r == kGaveUp) break;
      sched_yield();  // kLocked: a cross-CPU operation owns the slot for a moment
    }
  }
  list.push_locked(node);
}

PerCpuList::Node* JitListOps::pop(PerCpuList& list) {
  RseqArea* area = detail::tls_area;
  if (area == nullptr) area = ensure_registered().area;
  if (area != nullptr && !released_) {
    JitListArgs args{area, list.slot_base(), list.index_offset(), nullptr, 0};
    for (int attempt = 0; attempt < kMaxAttempts; ++attempt) {
      args.aborts = 0;
      std::uint64_t r = pop_(&args);
      if (args.aborts != 0) detail::count_aborts(args.aborts);
      if (r == kCommitted) {
        detail::tsan_acquire(args.node);
        return args.node;
      }
      if (r == kEmpty) return nullptr;
      if (r == kGaveUp) break;
      sched_yield();
    }
  }
  return list.pop_locked();
}

Status JitListOps::release() {
  if (released_) return ok();
  released_ = true;
  return detail::reclaim(zone_, code_, descriptors_);
}

}  // namespace jitkit::rseq
