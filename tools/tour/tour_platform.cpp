// Tour section: the platform facts that decide which paths jitkit takes.
#include <cstdio>
#include <cstring>

#include "jitkit/base/platform.h"
#include "tour_p.h"

namespace {

const char* yes_no(bool b) { return b ? "yes" : "no"; }

bool show_platform() {
  const jitkit::PlatformFacts& f = jitkit::platform_facts();
  std::printf("kernel            %s\n", f.kernel_release.c_str());
  std::printf("page size         %zu bytes\n", f.page_size);
  std::printf("cache line        %zu bytes\n", f.cache_line_size);
  std::printf("CPUs              %u online, %u possible\n", f.online_cpus, f.possible_cpus);

  if (f.memfd.available) {
    std::printf("memfd_create      yes%s", !f.memfd.mfd_exec_flag  ? ", MFD_EXEC unknown (kernel < 6.3)"
                                        : f.memfd.exec_refused ? ", MFD_EXEC known but refused"
                                                               : ", MFD_EXEC known");
  } else {
    std::printf("memfd_create      no (%s)", std::strerror(f.memfd.error));
  }
  if (f.memfd.noexec_sysctl >= 0) std::printf(", vm.memfd_noexec=%d", f.memfd.noexec_sysctl);
  std::printf("\n");

  const jitkit::MembarrierSupport& m = f.membarrier;
  if (m.available) {
    std::printf("membarrier        yes (mask 0x%x): global=%s private_expedited=%s sync_core=%s rseq=%s\n",
                m.command_mask, yes_no(m.global), yes_no(m.private_expedited),
                yes_no(m.private_expedited_sync_core), yes_no(m.private_expedited_rseq));
  } else {
    std::printf("membarrier        no (%s)\n", std::strerror(m.query_errno));
  }

  const jitkit::RseqSupport& r = f.rseq;
  std::printf("rseq              kernel %s", r.kernel_supports ? "supports it" : "does not support it");
  if (r.glibc_registered) {
    std::printf("; registered by glibc (__rseq_size=%u, __rseq_offset=%td)", r.glibc_rseq_size,
                r.glibc_rseq_offset);
  } else if (r.glibc_rseq_size == 0) {
    std::printf("; not registered by glibc (no __rseq_size, or glibc.pthread.rseq=0)");
  }
  if (r.feature_size != 0) {
    std::printf("; feature size %lu, alignment %lu (AT_RSEQ_FEATURE_SIZE/ALIGN)", r.feature_size, r.alignment);
  } else {
    std::printf("; no AT_RSEQ_FEATURE_SIZE (kernel < 6.3: 20-byte original ABI)");
  }
  std::printf("\n");
  return f.page_size > 0;
}

}  // namespace

JITKIT_TOUR_SECTION(10, "Platform", show_platform);
