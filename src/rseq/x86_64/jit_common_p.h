// Private: what every JIT-emitted rseq operation shares — its descriptors in the zone's data,
// the signature before each abort handler, the debugger table, and the reclamation protocol
// (documented in jitkit/rseq/jit.h).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "jitkit/base/result.h"
#include "jitkit/code/code_zone.h"
#include "jitkit/install/install.h"
#include "jitkit/rseq/jit.h"
#include "jitkit/rseq/rseq.h"
#include "jitkit/x64/assembler.h"

namespace jitkit::rseq::detail {

// Emits and installs the JIT-emitted operations of jit.h. `delay_spins` null: the production
// code, as JitCounterAdd::create() and JitListOps::create() return it. Non-null: the same code
// with a delay loop of *delay_spins iterations (read at every attempt) between the loads and the
// commit, which only the tests' entry points ask for (test_hooks_p.h).
struct JitFactory {
  static Result<std::unique_ptr<JitCounterAdd>> counter_add(code::CodeZone& zone, const JitOptions& options,
                                                            const std::uint32_t* delay_spins);
  static Result<std::unique_ptr<JitListOps>> list_ops(code::CodeZone& zone, const JitOptions& options,
                                                      const std::uint32_t* delay_spins);
};

// 32 bytes of the zone's read-write data, inert (empty range) until filled.
Result<RseqCs*> allocate_descriptor(code::CodeZone& zone);

// The 7-byte `ud1 0x53053053(%rip), %edi` whose last 4 bytes are the signature, to be emitted
// right before binding an abort label.
void emit_signature(x64::Assembler& a);

struct SectionLabels {
  x64::Label start, end, abort;
};

// Fills `d` from the installed labels, then a release fence: a thread that obtains the entry
// point from the creator sees the complete descriptor before it can arm it.
void fill_descriptor(RseqCs* d, const install::InstalledCode& code, const SectionLabels& l);

void table_add(const RseqCs* d, const install::InstalledCode& code, const char* name);

// Steps 1-5 of jit.h's reclamation protocol for every descriptor of `code`.
Status reclaim(code::CodeZone& zone, const install::InstalledCode& code,
               const std::vector<RseqCs*>& descriptors);

}  // namespace jitkit::rseq::detail
