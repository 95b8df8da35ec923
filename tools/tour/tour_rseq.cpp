// Tour section: restartable sequences — who registered this thread's rseq area, what the kernel
// offers, which index the per-CPU data uses, and a quick in-tour timing of the counter variants
// (the real numbers come from bench/rseq: `rseq_bench`).
#include <time.h>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <functional>
#include <thread>

#include "jitkit/code/code_zone.h"
#include "jitkit/rseq/jit.h"
#include "jitkit/rseq/percpu.h"
#include "jitkit/rseq/rseq.h"
#include "tour_p.h"

namespace {

const char* owner_name(jitkit::rseq::Owner o) {
  switch (o) {
    case jitkit::rseq::Owner::kGlibc:
      return "glibc (its area, found through __rseq_offset)";
    case jitkit::rseq::Owner::kJitkit:
      return "jitkit (nobody else had registered)";
    case jitkit::rseq::Owner::kNone:
      break;
  }
  return "nobody: the fallback path is used";
}

constexpr int kOps = 1000;

double thread_cpu_ns() {
  timespec ts{};
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
  return static_cast<double>(ts.tv_sec) * 1e9 + static_cast<double>(ts.tv_nsec);
}

// Best-of-7 nanoseconds per op of `block`, which performs kOps increments.
double ns_per_op(const std::function<void()>& block) {
  double best = 1e30;
  for (int rep = 0; rep < 7; ++rep) {
    // Thread CPU time: other processes on a shared machine do not inflate it.
    double t0 = thread_cpu_ns();
    for (int i = 0; i < 2000; ++i) block();
    double ns = (thread_cpu_ns() - t0) / (2000.0 * kOps);
    if (ns < best) best = ns;
  }
  return best;
}

bool show_rseq() {
  using namespace jitkit::rseq;
  const ProcessStatus& p = process_status();
  ThreadStatus t = ensure_registered();
  std::printf("registration      %s\n", owner_name(t.owner));
  std::printf("glibc __rseq_size %u\n", p.glibc_rseq_size);
  std::printf("feature size      %lu bytes (AT_RSEQ_FEATURE_SIZE)\n", p.feature_size);
  std::printf("per-CPU index     %s, %u slots of 64 bytes (possible CPUs)\n",
              p.index == CpuIndex::kMmCid ? "mm_cid (concurrency id, feature size >= 28)" : "cpu_id",
              p.slots);
  if (!p.rseq_enabled) {
    std::printf("rseq              not used: %s\n", p.fallback_reason.c_str());
    return true;  // the fallback is a supported configuration, not a failure
  }

  PerCpuCounter counter;
  static volatile std::int64_t plain = 0;
  alignas(64) static std::atomic<std::int64_t> xadd{0};
  auto zone = jitkit::code::CodeZone::create();
  if (!zone) {
    std::printf("!! code zone: %s\n", zone.error().message().c_str());
    return false;
  }
  auto jit = JitCounterAdd::create(**zone);
  if (!jit) {
    std::printf("!! JIT counter: %s\n", jit.error().message().c_str());
    return false;
  }
  std::uint64_t aborts0 = abort_count();
  double aot = ns_per_op([&] {
    for (int i = 0; i < kOps; ++i) counter.add(1);
  });
  double jitted = ns_per_op([&] { (*jit)->add(counter, 1, kOps); });
  double pl = ns_per_op([&] {
    for (int i = 0; i < kOps; ++i) plain = plain + 1;
  });
  double xa = ns_per_op([&] {
    for (int i = 0; i < kOps; ++i) xadd.fetch_add(1, std::memory_order_relaxed);
  });
  // Shared counter under 2 threads: this thread's time per increment while a second thread
  // increments the same cache line without pause.
  alignas(64) static std::atomic<std::int64_t> shared{0};
  std::atomic<bool> stop{false};
  std::thread other([&] {
    while (!stop.load(std::memory_order_relaxed)) shared.fetch_add(1, std::memory_order_relaxed);
  });
  double sh = ns_per_op([&] {
    for (int i = 0; i < kOps; ++i) shared.fetch_add(1, std::memory_order_relaxed);
  });
  stop.store(true);
  other.join();
  std::printf(
      "quick in-tour measurement (thread CPU time, best of 7 x 2M increments; "
      "bench/rseq has the real benchmark):\n");
  std::printf("  rseq add (ahead of time)   %.2f ns/op\n", aot);
  std::printf("  rseq add (JIT-emitted)     %.2f ns/op  (%.2fx the ahead-of-time one)\n", jitted,
              jitted / aot);
  std::printf("  plain volatile increment   %.2f ns/op  (rseq = %.2fx plain)\n", pl, aot / pl);
  std::printf("  lock xadd, uncontended     %.2f ns/op  (rseq is %.1fx faster)\n", xa, xa / aot);
  std::printf("  shared atomic, 2 threads   %.2f ns/op  (rseq is %.1fx faster)\n", sh, sh / aot);
  std::printf("  aborts observed meanwhile  %llu\n",
              static_cast<unsigned long long>(abort_count() - aborts0));
  return true;
}

}  // namespace

JITKIT_TOUR_SECTION(50, "Restartable sequences", show_rseq);
