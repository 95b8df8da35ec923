// src/code/test_hooks_p.h — fault injection for the code module's tests. Only tests include it.
//
// A hook here makes one system call behave as if the kernel had refused it, for a refusal that
// a test cannot produce for real. Hooks are read only where a zone is created or cross-core
// serialization is registered, never on the allocate / write / make_executable paths.
#pragma once

namespace jitkit::code::test_hooks {

// Non-zero: creating that backing of a dual mapping fails with this errno, and the fallback
// reason says "[simulated]". Read by CodeZone::create().
// Why a hook: each refusal needs root and its own namespaces to produce for real (a seccomp
// filter, a noexec mount); these cover the fallback order on any developer machine.
struct BackingRefusals {
  int memfd = 0;
  int shm = 0;
  int tmpfile = 0;
};
void refuse_backings(const BackingRefusals& refusals) noexcept;  // {} restores

// Non-zero: cross-core serialization reports itself unavailable with this errno, as if
// registering membarrier SYNC_CORE had failed; 0 restores the real registration result.
// Why a hook: registration happens once per process, so a test process that already
// registered cannot see a refusal any more.
void refuse_membarrier(int errnum) noexcept;

}  // namespace jitkit::code::test_hooks
