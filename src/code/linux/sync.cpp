// Linux cross-core serialization for jitkit/code/sync.h: membarrier SYNC_CORE.
//
// MEMBARRIER_CMD_PRIVATE_EXPEDITED_SYNC_CORE interrupts every CPU currently running a thread
// of this process and makes it execute a core-serializing instruction before it returns to
// user space; threads not running serialize on their way back in. The kernel refuses the
// command (EPERM) unless the process registered for it first, so registration happens once,
// lazily, and its result is remembered.
#include <linux/membarrier.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <mutex>

#include "code/test_hooks_p.h"
#include "jitkit/base/platform.h"
#include "jitkit/code/sync.h"

namespace jitkit::code {
namespace {

std::once_flag g_register_once;
// errno of the registration (0: registered). Written once under g_register_once, and by
// test_hooks::refuse_membarrier(); an atomic so that the hook does not race with readers
// (a relaxed load is a plain load on x86-64).
std::atomic<int> g_register_errno{0};
int g_real_register_errno = 0;  // the kernel's answer, restored when the hook is cleared

long membarrier(int cmd) { return syscall(SYS_membarrier, cmd, 0, 0); }

void register_sync_core() {
  const MembarrierSupport& m = platform_facts().membarrier;
  if (!m.available) {
    g_real_register_errno = m.query_errno != 0 ? m.query_errno : ENOSYS;
  } else if (!m.private_expedited_sync_core) {
    g_real_register_errno = EOPNOTSUPP;
  } else if (membarrier(MEMBARRIER_CMD_REGISTER_PRIVATE_EXPEDITED_SYNC_CORE) != 0) {
    g_real_register_errno = errno;
  }
  g_register_errno.store(g_real_register_errno, std::memory_order_relaxed);
}

}  // namespace

void test_hooks::refuse_membarrier(int errnum) noexcept {
  std::call_once(g_register_once, register_sync_core);
  g_register_errno.store(errnum != 0 ? errnum : g_real_register_errno, std::memory_order_relaxed);
}

bool cross_core_sync_available() {
  std::call_once(g_register_once, register_sync_core);
  return g_register_errno.load(std::memory_order_relaxed) == 0;
}

Status serialize_all_cores() {
  std::call_once(g_register_once, register_sync_core);
  if (const int e = g_register_errno.load(std::memory_order_relaxed); e != 0) {
    return Error::from_errno(
        "cross-core serialization unavailable: membarrier(REGISTER_PRIVATE_EXPEDITED_SYNC_CORE); other "
        "threads "
        "must not run new or patched code",
        e);
  }
  if (membarrier(MEMBARRIER_CMD_PRIVATE_EXPEDITED_SYNC_CORE) != 0) {
    return Error::from_errno("cross-core serialization: membarrier(PRIVATE_EXPEDITED_SYNC_CORE)", errno);
  }
  return ok();
}

}  // namespace jitkit::code
