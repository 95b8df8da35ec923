// Shared parts of the JIT-emitted rseq operations: descriptors, signature, debugger table and
// the reclamation protocol (see jitkit/rseq/jit.h for why each step is there).
#include "rseq/x86_64/jit_common_p.h"

#include <algorithm>
#include <mutex>

#include "jitkit/rseq/jit.h"
#include "rseq/registry_p.h"

extern "C" {
jitkit::rseq::JitTable jitkit_rseq_jit_table = {1, sizeof(jitkit::rseq::JitTableEntry), 0, 0, nullptr};
}

namespace jitkit::rseq::detail {
namespace {

// The table's backing store, guarded by its mutex. Writers bump `generation` to odd before and
// to even after a change, so that a debugger reading a running process detects a torn read.
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

}  // namespace

Result<RseqCs*> allocate_descriptor(code::CodeZone& zone) {
  auto data = zone.allocate_data(sizeof(RseqCs), alignof(RseqCs), code::DataAccess::kReadWrite);
  if (!data) return std::move(data).error().context("rseq: JIT descriptor in the zone's data");
  auto* d = reinterpret_cast<RseqCs*>(data->data);
  *d = RseqCs{0, 0, 0, 0, 0};
  return d;
}

void emit_signature(x64::Assembler& a) {
  // The kernel refuses to jump to an abort handler whose 4 preceding bytes are not the
  // registered signature; as the tail of a ud1, disassemblers stay in sync and a stray jump traps.
  a.db(0x0f);
  a.db(0xb9);
  a.db(0x3d);
  a.dd(kSignature);
}

void fill_descriptor(RseqCs* d, const install::InstalledCode& code, const SectionLabels& l) {
  const std::uint64_t start = code.label_address(l.start);
  d->start_ip = start;
  d->post_commit_offset = code.label_address(l.end) - start;
  d->abort_ip = code.label_address(l.abort);
  __atomic_thread_fence(__ATOMIC_RELEASE);
}

void table_add(const RseqCs* d, const install::InstalledCode& code, const char* name) {
  table().change([&] {
    table().entries.push_back(JitTableEntry{reinterpret_cast<std::uint64_t>(d), code.start(),
                                            code.code_size(), reinterpret_cast<std::uint64_t>(name)});
  });
}

Status reclaim(code::CodeZone& zone, const install::InstalledCode& code,
               const std::vector<RseqCs*>& descriptors) {
  // 1. Debuggers stop seeing them.
  table().change([&] {
    auto& e = table().entries;
    e.erase(std::remove_if(e.begin(), e.end(),
                           [&](const JitTableEntry& x) {
                             return std::find(descriptors.begin(), descriptors.end(),
                                              reinterpret_cast<RseqCs*>(x.descriptor)) != descriptors.end();
                           }),
            e.end());
  });
  // 2. Inert: an empty range. Hazard prevented: a stale rseq_cs making the kernel redirect a
  //    thread that later runs other code placed at these addresses to the old abort handler.
  for (RseqCs* d : descriptors) __atomic_store_n(&d->post_commit_offset, 0, __ATOMIC_SEQ_CST);
  // 3. Running threads pass through the kernel's rseq fix-up (clears rseq_cs outside sections)
  //    and execute a full barrier (they observe step 2).
  Status fenced = fence(-1);
  // 4. Threads that were not running: clear their pointer if it is still one of ours.
  for (RseqCs* d : descriptors) {
    (void)registry().clear_pointers_to(reinterpret_cast<std::uint64_t>(d));
  }
  // 5. The code may now be reused.
  Status freed = zone.free(code.block());
  if (!fenced) return std::move(fenced).error().context("rseq: JIT release");
  if (!freed) return std::move(freed).error().context("rseq: JIT release: free");
  return ok();
}

}  // namespace jitkit::rseq::detail
