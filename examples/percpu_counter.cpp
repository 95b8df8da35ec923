// examples/percpu_counter.cpp — a counter that many threads bump without a single atomic
// instruction.
//
// jitkit::rseq::PerCpuCounter keeps one cache-line slot per CPU. add() runs a restartable
// sequence: it reads the number of the CPU it runs on, then loads, adds and stores that CPU's
// slot. If the kernel preempts, migrates or signals the thread in the middle, it restarts the
// sequence, so the plain load and store are exact without a lock prefix. value() sums the slots.
//
// Where restartable sequences cannot be used (a kernel without rseq(2), a seccomp filter,
// valgrind), the same calls take a fallback path with atomic adds: the total is the same, only
// slower. The program prints which path this process took.
#include <cstdint>
#include <cstdio>
#include <thread>
#include <vector>

#include "jitkit/rseq/percpu.h"
#include "jitkit/rseq/rseq.h"

namespace rseq = jitkit::rseq;

int main() {
  constexpr int kThreads = 4;
  constexpr std::int64_t kAddsPerThread = 1'000'000;
  rseq::PerCpuCounter hits;
  const std::uint64_t aborts_before = rseq::abort_count();

  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&hits] {
      for (std::int64_t i = 0; i < kAddsPerThread; ++i) hits.add(1);
    });
  }
  for (std::thread& t : threads) t.join();

  const std::int64_t total = hits.value();
  const std::int64_t expected = kThreads * kAddsPerThread;
  const rseq::ProcessStatus& status = rseq::process_status();
  if (status.rseq_enabled) {
    std::printf("path:    restartable sequences, %u per-CPU slots indexed by %s\n", status.slots,
                status.index == rseq::CpuIndex::kMmCid ? "mm_cid (concurrency id)" : "cpu_id");
    std::printf("         rseq area registered by %s; %llu sections aborted and retried\n",
                status.glibc_owns_registration ? "glibc" : "jitkit",
                static_cast<unsigned long long>(rseq::abort_count() - aborts_before));
  } else {
    std::printf("path:    fallback (atomic adds): %s\n", status.fallback_reason.c_str());
  }
  std::printf("total:   %lld from %d threads x %lld adds (expected %lld)\n", static_cast<long long>(total),
              kThreads, static_cast<long long>(kAddsPerThread), static_cast<long long>(expected));
  return total == expected ? 0 : 1;
}
