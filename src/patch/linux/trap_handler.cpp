// src/patch/linux/trap_handler.cpp — jitkit's SIGTRAP handler (see jitkit/patch/trap.h) and the
// process-wide table of breakpoints in flight (see patch/trap_table_p.h).
//
// Everything the handler touches is a lock-free atomic, a code byte, or the interrupted
// thread's registers and stack, so it is async-signal-safe and may interrupt the patcher itself.
#include <cpuid.h>
#include <sched.h>
#include <signal.h>
#include <ucontext.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <mutex>

#include "jitkit/patch/trap.h"
#include "patch/trap_table_p.h"

namespace jitkit::patch {
namespace {

namespace x86_64 = detail::x86_64;  // the instruction forms of insn_p.h

std::atomic<const detail::TrapTable*> g_table{nullptr};
std::atomic<std::uint64_t> g_generation{0};
std::atomic<std::uint32_t> g_in_flight{0};

// Zones with a Patcher, process-wide. A fixed table, because the SIGTRAP handler searches it
// (no locks, no allocation); 16 bytes an entry. A SOM VM with its JIT takes two.
constexpr int kMaxRanges = 1024;
struct Range {
  std::atomic<std::uintptr_t> begin{0};
  std::atomic<std::uintptr_t> end{0};
};
Range g_ranges[kMaxRanges];
std::mutex g_ranges_mutex;

std::atomic<std::uint64_t> g_emulated{0};
std::atomic<std::uint64_t> g_restarted{0};
std::atomic<std::uint64_t> g_forwarded{0};

// The disposition to forward unrelated traps to. Two buffers so that re-installing never
// rewrites the one a running handler may be reading.
struct sigaction g_previous[2];
std::atomic<int> g_previous_index{-1};
std::mutex g_install_mutex;

static_assert(std::atomic<const detail::TrapTable*>::is_always_lock_free);
static_assert(std::atomic<std::uint64_t>::is_always_lock_free);

bool in_patch_range(std::uintptr_t addr) {
  for (Range& r : g_ranges) {
    const std::uintptr_t b = r.begin.load();
    if (b == 0 || addr < b) continue;
    if (addr < r.end.load()) return true;
  }
  return false;
}

// Serializes the executing core (CPUID is a serializing instruction, SDM Vol. 3A "Serializing
// Instructions"), so
// that after a restart it fetches the finished instruction, not bytes prefetched before it.
void serialize_this_core() {
  unsigned a = 0, b = 0, c = 0, d = 0;
  __cpuid(0, a, b, c, d);
  asm volatile("" ::"r"(a), "r"(b), "r"(c), "r"(d) : "memory");
}

// Decides what to do with an int3 trap at `addr`. Returns false if it is not jitkit's.
bool handle_int3(ucontext_t* uc) {
  greg_t* regs = uc->uc_mcontext.gregs;
  const std::uintptr_t addr = static_cast<std::uintptr_t>(regs[REG_RIP]) - 1;
  if (!in_patch_range(addr)) return false;  // only zones with a Patcher ever hold our int3s
  for (;;) {
    // A consistent snapshot of (table, byte): no publish/retire happened in between (g1 == g2).
    const std::uint64_t g1 = g_generation.load();
    const detail::TrapTable* table = g_table.load();
    const std::uint8_t byte = __atomic_load_n(reinterpret_cast<const std::uint8_t*>(addr), __ATOMIC_SEQ_CST);
    const std::uint64_t g2 = g_generation.load();
    if (g1 != g2) continue;  // a round started or ended meanwhile: look again
    if (table != nullptr) {
      const auto& e = table->entries;
      auto it = std::lower_bound(e.begin(), e.end(), addr,
                                 [](const detail::TrapEntry& x, std::uintptr_t a) { return x.insn < a; });
      if (it != e.end() && it->insn == addr) {
        const x86_64::Emulation& em = it->emulation;
        switch (em.op) {
          case x86_64::EmulatedOp::kCall: {
            // What `call` does: push the return address, continue at the target. rsp - 8 lies
            // in the interrupted frame's red zone, below which the kernel put our signal frame,
            // so this clobbers exactly what the real call would.
            const std::uintptr_t sp = static_cast<std::uintptr_t>(regs[REG_RSP]) - 8;
            *reinterpret_cast<std::uint64_t*>(sp) = addr + em.length;
            regs[REG_RSP] = static_cast<greg_t>(sp);
            regs[REG_RIP] = static_cast<greg_t>(em.target);
            break;
          }
          case x86_64::EmulatedOp::kJump:
            regs[REG_RIP] = static_cast<greg_t>(em.target);
            break;
          case x86_64::EmulatedOp::kNop:
            regs[REG_RIP] = static_cast<greg_t>(addr + em.length);
            break;
        }
        g_emulated.fetch_add(1, std::memory_order_relaxed);
        return true;
      }
    }
    if (byte != x86_64::kInt3) {
      // Our int3 was already replaced by the finished instruction (this thread trapped, then
      // ran its handler only after the round completed): execute the instruction again.
      serialize_this_core();
      regs[REG_RIP] = static_cast<greg_t>(addr);
      g_restarted.fetch_add(1, std::memory_order_relaxed);
      return true;
    }
    return false;  // an int3 that is still there and not in the table: someone else's
  }
}

void forward(int sig, siginfo_t* info, void* context) {
  g_forwarded.fetch_add(1, std::memory_order_relaxed);
  const int idx = g_previous_index.load(std::memory_order_acquire);
  struct sigaction prev {};
  if (idx >= 0) {
    prev = g_previous[idx];
  } else {
    prev.sa_handler = SIG_DFL;
  }
  const bool from_instruction = info != nullptr && info->si_code == SI_KERNEL;
  if (prev.sa_handler == SIG_IGN) {
    // The kernel turns an ignored SIGTRAP raised by an instruction into SIG_DFL (force_sig);
    // a SIGTRAP sent with kill/raise stays ignored.
    if (!from_instruction) return;
  } else if (prev.sa_handler != SIG_DFL) {
    if (prev.sa_flags & SA_SIGINFO) {
      prev.sa_sigaction(sig, info, context);
    } else {
      prev.sa_handler(sig);
    }
    return;
  }
  // Default action: terminate with SIGTRAP (and a core dump), exactly as without jitkit.
  struct sigaction dfl {};
  dfl.sa_handler = SIG_DFL;
  sigemptyset(&dfl.sa_mask);
  sigaction(SIGTRAP, &dfl, nullptr);
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGTRAP);
  sigprocmask(SIG_UNBLOCK, &set, nullptr);  // SIGTRAP is blocked while its handler runs
  raise(SIGTRAP);
}

void on_sigtrap(int sig, siginfo_t* info, void* context) {
  const int saved_errno = errno;
  bool handled = false;
  // int3 raises SIGTRAP with si_code SI_KERNEL on x86-64 Linux; kill/raise/tkill and ptrace
  // single-steps have other codes and are never ours.
  if (info != nullptr && info->si_code == SI_KERNEL && context != nullptr) {
    g_in_flight.fetch_add(1);  // before reading the table: keeps it alive (see retire)
    handled = handle_int3(static_cast<ucontext_t*>(context));
    g_in_flight.fetch_sub(1);
  }
  if (!handled) forward(sig, info, context);
  errno = saved_errno;
}

bool is_ours(const struct sigaction& sa) {
  return (sa.sa_flags & SA_SIGINFO) != 0 && sa.sa_sigaction == &on_sigtrap;
}

}  // namespace

Status install_trap_handler() {
  std::lock_guard<std::mutex> lock(g_install_mutex);
  struct sigaction current {};
  if (sigaction(SIGTRAP, nullptr, &current) != 0) {
    return Error::from_errno("patch: query the SIGTRAP disposition", errno);
  }
  if (is_ours(current)) return ok();
  const int next = g_previous_index.load() == 0 ? 1 : 0;
  g_previous[next] = current;
  g_previous_index.store(next, std::memory_order_release);
  struct sigaction sa {};
  sa.sa_sigaction = &on_sigtrap;
  // SA_ONSTACK: use the thread's alternate stack if it has one. SA_RESTART: a trap interrupting
  // a system call (impossible for int3, possible for a forwarded kill) restarts it.
  sa.sa_flags = SA_SIGINFO | SA_RESTART | SA_ONSTACK;
  sigemptyset(&sa.sa_mask);
  if (sigaction(SIGTRAP, &sa, nullptr) != 0) {
    return Error::from_errno("patch: install the SIGTRAP handler", errno);
  }
  return ok();
}

bool trap_handler_installed() {
  struct sigaction current {};
  if (sigaction(SIGTRAP, nullptr, &current) != 0) return false;
  return is_ours(current);
}

TrapStats trap_stats() {
  return TrapStats{g_emulated.load(std::memory_order_relaxed), g_restarted.load(std::memory_order_relaxed),
                   g_forwarded.load(std::memory_order_relaxed)};
}

namespace detail {

std::mutex& breakpoint_round_mutex() {
  static std::mutex m;
  return m;
}

void publish_trap_table(const TrapTable* table) {
  // Hazard: a thread hitting one of the round's int3s must find it. The table is stored before
  // the generation moves and both before the first int3 (the caller's next stores).
  g_table.store(table);
  g_generation.fetch_add(1);
}

void retire_trap_table() {
  g_table.store(nullptr);
  g_generation.fetch_add(1);
  // Hazard: a handler that loaded the old table may still be searching it. Handlers increment
  // g_in_flight before loading the table, so once the count is seen at zero after the store
  // above, no handler can reach the old table any more.
  while (g_in_flight.load() != 0) sched_yield();
}

int max_patch_ranges() { return kMaxRanges; }

bool register_patch_range(std::uintptr_t begin, std::uintptr_t end) {
  std::lock_guard<std::mutex> lock(g_ranges_mutex);
  for (Range& r : g_ranges) {
    if (r.begin.load() == 0) {
      r.end.store(end);
      r.begin.store(begin);  // published last: a reader never sees a begin without its end
      return true;
    }
  }
  return false;
}

void unregister_patch_range(std::uintptr_t begin, std::uintptr_t end) {
  std::lock_guard<std::mutex> lock(g_ranges_mutex);
  for (Range& r : g_ranges) {
    if (r.begin.load() == begin && r.end.load() == end) {
      r.begin.store(0);
      r.end.store(0);
      return;
    }
  }
}

}  // namespace detail
}  // namespace jitkit::patch
