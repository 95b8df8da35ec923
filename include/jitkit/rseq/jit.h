// jitkit/rseq/jit.h — per-CPU critical sections generated at run time, and their reclamation.
//
// JitListOps emits push and pop for a PerCpuList the same way (two sections in one block).
//
// JitCounterAdd emits, with the x64 assembler, a function that performs `count` per-CPU adds on a
// PerCpuCounter, each add its own critical section, exactly like PerCpuCounter::add():
//
//   loop: lea rax, [rip + descriptor]      ; descriptor in the zone's read-write data
//         mov [area + 8], rax              ; arm: rseq_cs = &descriptor
//   start:mov eax, [area + index_offset]   ; cpu_id or mm_cid, read inside the section
//         shl rax, 6 ; add rax, slots      ; this CPU's cache-line slot
//         mov rcx, [rax] ; add rcx, delta
//         mov [rax], rcx                   ; commit
//   end:  dec count ; jnz loop ; ...; ret
//         ud1 0x53053053(%rip), %edi       ; 0f b9 3d + kSignature: the 4 bytes before abort_ip
//   abort:inc aborts ; bounded: give up after kMaxAttempts aborts in one call ; jmp loop
//
// The descriptor (RseqCs) lives in the code zone's read-write data area, within rel32 reach of the
// code, and is not reused for anything else while the zone lives (data blocks are never freed).
//
// Reclamation, release() (also run by the destructor). Precondition: no thread runs the section
// or will call it again (unpublish its entry point and wait for callers first, as for any code).
// Threads that ran it may still hold rseq_cs == &descriptor: the kernel clears rseq_cs only when
// it next preempts or signals that thread. If the code block were then reused while the
// descriptor still described it, the kernel would move such a thread to the old abort handler
// when the new code runs at an address inside the old range. Steps:
//   1. remove the entry from the debugger table (jitkit_rseq_jit_table);
//   2. make the descriptor inert: post_commit_offset = 0 (one aligned 8-byte store; a torn read
//      yields a value <= the old one), so no address is ever inside it again — any stale pointer
//      is harmless from here on;
//   3. membarrier(MEMBARRIER_CMD_PRIVATE_EXPEDITED_RSEQ) on every CPU: every running thread of the
//      process passes through the kernel's rseq fix-up, which clears its rseq_cs (its IP is not
//      in a section of this descriptor any more); it is also a full barrier on those CPUs, so
//      they observe step 2;
//   4. for threads that were not running (blocked, preempted), compare-and-swap their rseq_cs
//      from &descriptor to 0 through the registry of live areas (glibc's or jitkit's);
//   5. free the code block.
// After release(), no thread's rseq_cs points at the descriptor (tests/rseq/jit_test.cpp checks
// every worker's area).
//
// Debuggers: every live JIT-emitted section is listed in `jitkit_rseq_jit_table` (C linkage, a
// stable layout with a version field), the run-time counterpart of the __rseq_cs sections:
//   struct { uint32 version (=1); uint32 entry_size (=32); uint64 count; uint64 generation;
//            JitTableEntry* entries; }
//   JitTableEntry { uint64 descriptor (RseqCs*); uint64 code_start; uint64 code_size;
//                   uint64 name (const char*, NUL-terminated) }
// `generation` is odd while the table is being changed and even otherwise: a debugger that
// reads a live process re-reads when it changed (a stopped process is always consistent).
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "jitkit/base/result.h"
#include "jitkit/code/code_zone.h"
#include "jitkit/install/install.h"
#include "jitkit/rseq/percpu.h"
#include "jitkit/rseq/rseq.h"

namespace jitkit::rseq {

struct JitTableEntry {
  std::uint64_t descriptor;  // address of the RseqCs
  std::uint64_t code_start;  // the function holding the section
  std::uint64_t code_size;
  std::uint64_t name;  // const char*, NUL-terminated
};
static_assert(sizeof(JitTableEntry) == 32);

struct JitTable {
  std::uint32_t version;
  std::uint32_t entry_size;
  std::uint64_t count;
  std::uint64_t generation;  // odd while changing
  JitTableEntry* entries;
};

// The arguments of a JIT-emitted counter function (one pointer in rdi). Offsets are part of the
// generated code's contract.
struct JitCounterAddArgs {
  RseqArea* area;              // +0  the calling thread's area
  std::uint8_t* slots;         // +8  PerCpuCounter::slot_base()
  std::int64_t delta;          // +16
  std::uint64_t count;         // +24 adds to perform
  std::uint64_t aborts;        // +32 out: aborts observed in this call
  std::uint64_t index_offset;  // +40 PerCpuCounter::index_offset()
};

struct JitOptions {
  std::string name = "jitkit_rseq_counter_add";
};

namespace detail {
struct JitFactory;  // emits and installs the sections (src/rseq/x86_64/jit_common_p.h)
}  // namespace detail

class JitCounterAdd {
 public:
  // The generated function: returns how many adds it committed (== args->count unless it gave
  // up after kMaxAttempts aborts in this call).
  using Fn = std::uint64_t (*)(JitCounterAddArgs*);

  // Emits and installs the section into `zone`, which must outlive this object. kUnsupported
  // if the assembler or the zone refuse (the message says why).
  static Result<std::unique_ptr<JitCounterAdd>> create(code::CodeZone& zone, const JitOptions& options = {});
  ~JitCounterAdd();
  JitCounterAdd(const JitCounterAdd&) = delete;
  JitCounterAdd& operator=(const JitCounterAdd&) = delete;

  // Adds `delta` to `counter`, `times` times, through the generated section; bounded retries,
  // then the counter's atomic fallback (and the fallback when the process has no rseq).
  void add(PerCpuCounter& counter, std::int64_t delta, std::uint64_t times = 1);

  // The reclamation protocol above, then frees the code. Idempotent.
  Status release();

  Fn function() const { return fn_; }
  const RseqCs* descriptor() const { return descriptor_; }
  const install::InstalledCode& code() const { return code_; }

 private:
  friend struct detail::JitFactory;
  JitCounterAdd(code::CodeZone& zone, RseqCs* descriptor, install::InstalledCode code, std::string name);
  code::CodeZone& zone_;
  RseqCs* descriptor_;
  install::InstalledCode code_;
  std::unique_ptr<std::string> name_;
  Fn fn_;
  bool released_ = false;
};

// The arguments of the JIT-emitted list functions (one pointer in rdi).
struct JitListArgs {
  RseqArea* area;              // +0
  std::uint8_t* slots;         // +8  PerCpuList::slot_base()
  std::uint64_t index_offset;  // +16 PerCpuList::index_offset()
  PerCpuList::Node* node;      // +24 push: the node; pop: out, the popped node
  std::uint64_t aborts;        // +32 out: aborts observed in this call
};

// JIT-emitted push and pop on a PerCpuList: one code block, two sections (two descriptors),
// the same instructions as the ahead-of-time list sections, including the slot-lock check that
// makes them safe against PerCpuList::drain(). Retries are bounded; then the list's locked path.
class JitListOps {
 public:
  // What a generated function returns.
  enum Outcome : std::uint64_t { kCommitted = 0, kLocked = 1, kGaveUp = 2, kEmpty = 3 };
  using Fn = std::uint64_t (*)(JitListArgs*);

  static Result<std::unique_ptr<JitListOps>> create(code::CodeZone& zone, const JitOptions& options = {});
  ~JitListOps();
  JitListOps(const JitListOps&) = delete;
  JitListOps& operator=(const JitListOps&) = delete;

  void push(PerCpuList& list, PerCpuList::Node* node);
  PerCpuList::Node* pop(PerCpuList& list);

  // The reclamation protocol for both descriptors, then frees the code. Idempotent.
  Status release();

  Fn push_function() const { return push_; }
  Fn pop_function() const { return pop_; }
  const std::vector<RseqCs*>& descriptors() const { return descriptors_; }
  const install::InstalledCode& code() const { return code_; }

 private:
  friend struct detail::JitFactory;
  JitListOps(code::CodeZone& zone, std::vector<RseqCs*> descriptors, install::InstalledCode code,
             std::string name, Fn push_fn, Fn pop_fn);
  code::CodeZone& zone_;
  std::vector<RseqCs*> descriptors_;
  install::InstalledCode code_;
  std::unique_ptr<std::string> name_;
  Fn push_;
  Fn pop_;
  bool released_ = false;
};

}  // namespace jitkit::rseq

extern "C" {
// The debugger table of live JIT-emitted sections (layout above).
extern jitkit::rseq::JitTable jitkit_rseq_jit_table;
}
