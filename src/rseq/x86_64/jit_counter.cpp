// JIT-emitted per-CPU counter sections (jitkit/rseq/jit.h): emission with the x64 assembler,
// the descriptor in the code zone's data, the debugger table, and the reclamation protocol.
#include <algorithm>
#include <mutex>
#include <vector>

#include "jitkit/rseq/jit.h"
#include "jitkit/x64/assembler.h"
#include "rseq/registry_p.h"

extern "C" {
jitkit::rseq::JitTable jitkit_rseq_jit_table = {1, sizeof(jitkit::rseq::JitTableEntry), 0, 0,
                                                nullptr};
}

namespace jitkit::rseq {
namespace {

using namespace jitkit::x64;

// The table's backing store; guarded by its mutex. Writers bump `generation` to odd before and
// to even after a change so that a debugger reading a running process can detect a torn read.
struct TableStore {
  std::mutex mutex;
  std::vector<JitTableEntry> entries;

  template <typename Fn>
  void change(Fn&& fn) {
    std::lock_guard<std::mutex> lock(mutex);
    __atomic_fetch_add(&jitkit_rseq_jit_table.generation, 1, __ATOMIC_RELEASE);
    fn();
    jitkit_rseq_jit_table.entries = entries.empty() ? nullptr : entries.data();
    __atomic_store_n(&jitkit_rseq_jit_table.count, entries.size(), __ATOMIC_RELEASE);
    __atomic_fetch_add(&jitkit_rseq_jit_table.generation, 1, __ATOMIC_RELEASE);
  }
};

TableStore& table() {
  static TableStore* t = new TableStore;  // leaked: sections may be released during exit
  return *t;
}

// Offsets in JitCounterAddArgs, checked against the struct.
constexpr std::int32_t kArea = 0, kSlots = 8, kDelta = 16, kCount = 24, kAborts = 32,
                       kIndexOffset = 40, kSpins = 48;
static_assert(offsetof(JitCounterAddArgs, area) == kArea);
static_assert(offsetof(JitCounterAddArgs, slots) == kSlots);
static_assert(offsetof(JitCounterAddArgs, delta) == kDelta);
static_assert(offsetof(JitCounterAddArgs, count) == kCount);
static_assert(offsetof(JitCounterAddArgs, aborts) == kAborts);
static_assert(offsetof(JitCounterAddArgs, index_offset) == kIndexOffset);
static_assert(offsetof(JitCounterAddArgs, spins) == kSpins);

struct SectionLabels {
  Label start, end, abort;
};

// Emits the function described in jit.h. Registers: rdi args, r8 area, r9 slots, r10 delta,
// r11 remaining adds, rsi index offset; rax/rcx/edx scratch (all caller-saved in the SysV ABI).
SectionLabels emit_counter_add(Assembler& a, const RseqCs* descriptor, bool inject_delay) {
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
  if (inject_delay) {
    Label spin = a.new_label(), spun = a.new_label();
    a.mov(edx, dword_ptr(rdi, kSpins));
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
  // The signature right before abort_ip, as the 7-byte `ud1 0x53053053(%rip), %edi`: the kernel
  // refuses to jump to an abort handler without it, and a stray jump here traps.
  a.db(0x0f);
  a.db(0xb9);
  a.db(0x3d);
  a.dd(kSignature);
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
  auto data = zone.allocate_data(sizeof(RseqCs), alignof(RseqCs), code::DataAccess::kReadWrite);
  if (!data) {
    return std::move(data).error().context("rseq: JIT counter: descriptor in the zone's data");
  }
  auto* descriptor = reinterpret_cast<RseqCs*>(data->data);
  // Inert until filled in below: no address lies in an empty range.
  *descriptor = RseqCs{0, 0, 0, 0, 0};
  Assembler a;
  SectionLabels labels = emit_counter_add(a, descriptor, options.inject_delay);
  install::InstallOptions io;
  io.name = options.name;
  io.visibility = code::Visibility::kOtherThreads;
  auto installed = install::install(a, zone, io);
  if (!installed) return std::move(installed).error().context("rseq: JIT counter: install");
  const std::uint64_t start = installed->label_address(labels.start);
  const std::uint64_t end = installed->label_address(labels.end);
  const std::uint64_t abort = installed->label_address(labels.abort);
  descriptor->start_ip = start;
  descriptor->post_commit_offset = end - start;
  descriptor->abort_ip = abort;
  // Release: a thread that obtains the function pointer from us (happens-after) sees the
  // complete descriptor before it can arm it.
  __atomic_thread_fence(__ATOMIC_RELEASE);
  std::unique_ptr<JitCounterAdd> section(
      new JitCounterAdd(zone, descriptor, std::move(installed).value(), options.name));
  const JitCounterAdd* s = section.get();
  table().change([&] {
    table().entries.push_back(JitTableEntry{reinterpret_cast<std::uint64_t>(s->descriptor_),
                                            s->code_.start(), s->code_.code_size(),
                                            reinterpret_cast<std::uint64_t>(s->name_->c_str())});
  });
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
  JitCounterAddArgs args{area,  counter.slot_base(), delta, times, 0, counter.index_offset(),
                         detail::testing_inject_spins};
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
  // 1. Debuggers stop seeing it.
  table().change([&] {
    auto& e = table().entries;
    auto it = std::find_if(e.begin(), e.end(), [&](const JitTableEntry& x) {
      return x.descriptor == reinterpret_cast<std::uint64_t>(descriptor_);
    });
    if (it != e.end()) {
      *it = e.back();
      e.pop_back();
    }
  });
  // 2. Inert: an empty range. Hazard prevented: a stale rseq_cs making the kernel redirect a
  //    thread that later runs other code placed at these addresses to the old abort handler.
  __atomic_store_n(&descriptor_->post_commit_offset, 0, __ATOMIC_SEQ_CST);
  // 3. Running threads pass through the kernel's rseq fix-up (clears rseq_cs outside sections)
  //    and execute a full barrier (they observe step 2).
  Status fenced = fence(-1);
  // 4. Threads that were not running: clear their pointer if it is still ours.
  (void)detail::registry().clear_pointers_to(reinterpret_cast<std::uint64_t>(descriptor_));
  // 5. The code may now be reused.
  Status freed = zone_.free(code_.block());
  if (!fenced) return std::move(fenced).error().context("rseq: JIT counter release");
  if (!freed) return std::move(freed).error().context("rseq: JIT counter release: free");
  return ok();
}

}  // namespace jitkit::rseq
