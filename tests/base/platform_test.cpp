#include "jitkit/base/platform.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <thread>

namespace jitkit {
namespace {

TEST(Platform, PageAndCacheLineArePowersOfTwo) {
  const PlatformFacts& f = platform_facts();
  EXPECT_EQ(f.page_size, static_cast<std::size_t>(getpagesize()));
  EXPECT_GE(f.cache_line_size, 32u);
  EXPECT_EQ(f.cache_line_size & (f.cache_line_size - 1), 0u);
}

TEST(Platform, PossibleCpusCoverOnlineCpus) {
  const PlatformFacts& f = platform_facts();
  EXPECT_GE(f.possible_cpus, f.online_cpus);
  EXPECT_GE(f.online_cpus, 1u);
  EXPECT_GE(f.possible_cpus, std::thread::hardware_concurrency());
}

TEST(Platform, MembarrierQueryIsConsistent) {
  MembarrierSupport m = detect_membarrier();
  if (m.available) {
    EXPECT_EQ(m.query_errno, 0);
    // PRIVATE_EXPEDITED arrived in Linux 4.14, before SYNC_CORE (4.16) and RSEQ (5.10).
    if (m.private_expedited_sync_core || m.private_expedited_rseq) {
      EXPECT_TRUE(m.private_expedited);
    }
  } else {
    EXPECT_NE(m.query_errno, 0);
    EXPECT_EQ(m.command_mask, 0u);
  }
}

TEST(Platform, MemfdProbeReportsAReasonWhenUnavailable) {
  MemfdSupport m = detect_memfd();
  if (!m.available) {
    EXPECT_NE(m.error, 0);
  }
  if (m.mfd_exec_flag) {
    EXPECT_TRUE(m.available);
  }
}

TEST(Platform, RseqRegistrationImpliesKernelSupport) {
  RseqSupport r = detect_rseq();
  if (r.glibc_registered) {
    EXPECT_TRUE(r.kernel_supports);
    EXPECT_GE(r.glibc_rseq_size, 20u);  // struct rseq's original ABI size is 20 (32 aligned)
  }
}

TEST(Platform, FactsAreCachedOnce) { EXPECT_EQ(&platform_facts(), &platform_facts()); }

}  // namespace
}  // namespace jitkit
