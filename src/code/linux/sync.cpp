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

#include "jitkit/base/platform.h"
#include "jitkit/code/sync.h"

namespace jitkit::code {
namespace {

std::once_flag g_register_once;
int g_register_errno = 0;  // errno of the registration (0: registered); written once under g_register_once

long membarrier(int cmd) { return syscall(SYS_membarrier, cmd, 0, 0); }

void register_sync_core() {
  const MembarrierSupport& m = platform_facts().membarrier;
  if (!m.available) {
    g_register_errno = m.query_errno != 0 ? m.query_errno : ENOSYS;
  } else if (!m.private_expedited_sync_core) {
    g_register_errno = EOPNOTSUPP;
  } else if (membarrier(MEMBARRIER_CMD_REGISTER_PRIVATE_EXPEDITED_SYNC_CORE) != 0) {
    g_register_errno = errno;
  }
}

}  // namespace

bool cross_core_sync_available() {
  std::call_once(g_register_once, register_sync_core);
  return g_register_errno == 0;
}

Status serialize_all_cores() {
  std::call_once(g_register_once, register_sync_core);
  if (g_register_errno != 0) {
    return Error::from_errno(
        "cross-core serialization unavailable: membarrier(REGISTER_PRIVATE_EXPEDITED_SYNC_CORE); other "
        "threads "
        "must not run new or patched code",
        g_register_errno);
  }
  if (membarrier(MEMBARRIER_CMD_PRIVATE_EXPEDITED_SYNC_CORE) != 0) {
    return Error::from_errno("cross-core serialization: membarrier(PRIVATE_EXPEDITED_SYNC_CORE)", errno);
  }
  return ok();
}

}  // namespace jitkit::code
