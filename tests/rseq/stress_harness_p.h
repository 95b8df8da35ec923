// Stress harness of the rseq tests, in the manner of the kernel's rseq selftests: many more
// threads than CPUs (6x), sched_yield() inside the loops, and SIGALRM delivered to the process
// every 50 us (a handler that does nothing) so that critical sections are preempted, migrated
// and interrupted by signals while they run.
//
// Duration of one run: jitkit::test_util::stress_seconds() (tests/support/stress_duration_p.h),
// 2 s by default; JITKIT_STRESS_SECONDS=<seconds> overrides it, e.g. JITKIT_STRESS_SECONDS=60
// for a soak run.
#pragma once

#include <pthread.h>
#include <signal.h>
#include <sys/time.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <functional>
#include <thread>
#include <vector>

#include "support/stress_duration_p.h"

namespace jitkit::rseq::test_util {

using jitkit::test_util::stress_seconds;

inline unsigned stress_threads() {
  unsigned cpus = std::thread::hardware_concurrency();
  return 6 * (cpus > 0 ? cpus : 1);
}

// Counts the SIGALRM deliveries, so that tests can show the signals really arrived.
inline std::atomic<std::uint64_t>& signals_delivered() {
  static std::atomic<std::uint64_t> n{0};
  return n;
}

// SIGALRM every `period_us` to the process (ITIMER_REAL), for the lifetime of the object.
class SignalStorm {
 public:
  explicit SignalStorm(long period_us = 50) {
    struct sigaction sa {};
    sa.sa_handler = [](int) { signals_delivered().fetch_add(1, std::memory_order_relaxed); };
    sigemptyset(&sa.sa_mask);
    sa.sa_flags = SA_RESTART;
    sigaction(SIGALRM, &sa, &old_);
    itimerval t{};
    t.it_interval.tv_usec = period_us;
    t.it_value.tv_usec = period_us;
    setitimer(ITIMER_REAL, &t, nullptr);
  }
  ~SignalStorm() {
    itimerval t{};
    setitimer(ITIMER_REAL, &t, nullptr);
    sigaction(SIGALRM, &old_, nullptr);
  }
  SignalStorm(const SignalStorm&) = delete;
  SignalStorm& operator=(const SignalStorm&) = delete;

 private:
  struct sigaction old_ {};
};

// Runs `worker(thread_index, stop)` on `threads` threads for `seconds` under a SignalStorm.
// Workers loop until `stop` is true.
inline void run_stress(unsigned threads, double seconds,
                       const std::function<void(unsigned, const std::atomic<bool>&)>& worker) {
  std::atomic<bool> stop{false};
  SignalStorm storm;
  std::vector<std::thread> pool;
  pool.reserve(threads);
  for (unsigned t = 0; t < threads; ++t) pool.emplace_back([&, t] { worker(t, stop); });
  // The workers (created above, with SIGALRM unblocked) take the storm; the controlling thread
  // blocks it: a sleep restarted every 50 us with 50 us of timer slack never ends.
  sigset_t alarm, old_mask;
  sigemptyset(&alarm);
  sigaddset(&alarm, SIGALRM);
  pthread_sigmask(SIG_BLOCK, &alarm, &old_mask);
  // Poll a deadline: a single long sleep can be restarted by the signal storm without end.
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::duration<double>(seconds);
  while (std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  stop.store(true);
  for (auto& th : pool) th.join();
  pthread_sigmask(SIG_SETMASK, &old_mask, nullptr);
}

}  // namespace jitkit::rseq::test_util
