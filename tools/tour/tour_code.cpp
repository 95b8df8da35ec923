// Tour section: code zones — the mode this machine gives, why, and a function run from it.
#include <sys/mman.h>
#include <sys/statvfs.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <optional>
#include <string>

#include "jitkit/base/format.h"
#include "jitkit/base/platform.h"
#include "jitkit/code/code_zone.h"
#include "jitkit/code/sync.h"
#include "tour_p.h"

namespace {

using jitkit::code::CodeZone;
using jitkit::code::DataAccess;
using jitkit::code::Visibility;
using jitkit::code::ZoneMode;
using jitkit::code::ZoneOptions;

int tour_anchor() { return 0; }

// Mappings of this process that are writable and executable at once, counted from
// /proc/self/maps (the W^X claim, checked rather than asserted).
int count_wx_mappings() {
  std::ifstream maps("/proc/self/maps");
  std::string line;
  int n = 0;
  while (std::getline(maps, line)) {
    char perms[8] = {};
    if (std::sscanf(line.c_str(), "%*s %7s", perms) == 1 && perms[1] == 'w' && perms[2] == 'x') ++n;
  }
  return n;
}

void print_reasons(const CodeZone& zone) {
  if (zone.fallback_reasons().empty()) {
    std::printf("fallbacks         none\n");
    return;
  }
  for (const std::string& r : zone.fallback_reasons()) std::printf("fallback          %s\n", r.c_str());
}

// Whether the file system holding `path` is mounted noexec; nullopt if it cannot be asked.
std::optional<bool> mounted_noexec(const char* path) {
  struct statvfs st {};
  if (statvfs(path, &st) != 0) return std::nullopt;
  return (st.f_flag & ST_NOEXEC) != 0;
}

// Whether this process may map anonymous memory executable (what SELinux execmem and PaX
// refuse); the probe page is read-execute only and unmapped at once.
bool anonymous_exec_allowed() {
  void* p = mmap(nullptr, 4096, PROT_READ | PROT_EXEC, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (p == MAP_FAILED) return false;
  munmap(p, 4096);
  return true;
}

// The hardenings that decide a zone's mode, as this machine has them (docs/code-zones.md has
// the same table for every condition).
void print_diagnosis() {
  const jitkit::MemfdSupport& memfd = jitkit::platform_facts().memfd;
  std::printf("diagnosis\n");
  if (memfd.noexec_sysctl >= 0) {
    std::printf(
        "  vm.memfd_noexec=%d  %s; no effect on code zones (their memfd is sealed non-executable "
        "and only mapped)\n",
        memfd.noexec_sysctl,
        memfd.noexec_sysctl == 0   ? "memfds may be executable programs"
        : memfd.noexec_sysctl == 1 ? "memfds are non-executable unless created with MFD_EXEC"
                                   : "executable memfds are refused (MFD_EXEC fails with EACCES)");
  } else {
    std::printf("  vm.memfd_noexec    absent (kernel < 6.3): memfds are executable\n");
  }
  if (memfd.available) {
    std::printf("  memfd_create       allowed: dual mapping on memfd\n");
  } else {
    std::printf("  memfd_create       refused (%s): falls back to POSIX shm; an administrator can allow it\n",
                std::strerror(memfd.error));
  }
  const char* tmp_env = std::getenv("TMPDIR");
  const std::string tmp = (tmp_env != nullptr && *tmp_env != '\0') ? tmp_env : "/tmp";
  // The homes of the POSIX shm and temporary-file backings.
  for (const std::string& home : {std::string("/dev/shm"), tmp}) {
    const std::optional<bool> noexec = mounted_noexec(home.c_str());
    std::printf("  %-18s %s\n", home.c_str(),
                !noexec ? "cannot be inspected"
                : *noexec
                    ? "mounted noexec: unusable for code; an administrator can remount it without noexec"
                    : "executable mappings allowed");
  }
  std::printf("  execmem            %s\n",
              anonymous_exec_allowed() ? "executable anonymous memory allowed: toggled mode possible"
                                       : "executable anonymous memory refused (SELinux execmem, PaX): "
                                         "no toggled or RWX mode, dual mapping still works");
}

bool show_code_zones() {
  ZoneOptions options;
  options.near = reinterpret_cast<std::uintptr_t>(&tour_anchor);  // rel32 reach of this binary
  auto made = CodeZone::create(options);
  if (!made) {
    std::printf("code zone creation failed: %s\n", made.error().message().c_str());
    return false;
  }
  CodeZone& zone = **made;
  std::printf("mode              %s", std::string(jitkit::code::mode_name(zone.mode())).c_str());
  if (zone.mode() == ZoneMode::kDualMapped) {
    std::printf(" on %s", std::string(jitkit::code::backing_name(zone.backing())).c_str());
  }
  std::printf("\n");
  print_reasons(zone);
  print_diagnosis();
  const auto anchor = reinterpret_cast<std::intptr_t>(&tour_anchor);
  std::printf("code range        [%s, %s), %+.2f MiB from this binary's code\n",
              jitkit::hex(zone.begin()).c_str(), jitkit::hex(zone.end()).c_str(),
              static_cast<double>(static_cast<std::intptr_t>(zone.begin()) - anchor) / (1 << 20));
  const std::ptrdiff_t delta = zone.write_view_delta();
  std::printf("view distance     RW = RX %c %s (%.1f GiB; %s)\n", delta < 0 ? '-' : '+',
              jitkit::hex(static_cast<std::uint64_t>(delta < 0 ? -delta : delta)).c_str(),
              static_cast<double>(delta) / (1 << 30),
              delta != 0 ? "one addition away" : "no second view in this mode");

  // A tiny function: mov eax, 6 ; imul eax, eax, 7 ; ret.
  const std::uint8_t code[] = {0xB8, 0x06, 0x00, 0x00, 0x00, 0x6B, 0xC0, 0x07, 0xC3};
  auto block = zone.allocate(sizeof code);
  if (!block) {
    std::printf("allocate failed: %s\n", block.error().message().c_str());
    return false;
  }
  if (auto s = zone.write(block->exec, code, sizeof code); !s) {
    std::printf("write failed: %s\n", s.error().message().c_str());
    return false;
  }
  if (auto s = zone.make_executable(*block, Visibility::kThisThread); !s) {
    std::printf("make_executable failed: %s\n", s.error().message().c_str());
    return false;
  }
  const int result = reinterpret_cast<int (*)()>(block->exec)();
  std::printf("function          mov eax,6; imul eax,eax,7; ret at %s returned %d (%s)\n",
              jitkit::hex(block->exec).c_str(), result, result == 42 ? "right" : "WRONG");

  // A few more allocations, then the allocator's statistics.
  for (std::size_t size : {100u, 300u, 1000u, 5000u}) {
    if (!zone.allocate(size)) return false;
  }
  auto data = zone.allocate_data(64, 8, DataAccess::kReadOnly);
  auto slots = zone.allocate_data(64, 8, DataAccess::kReadWrite);
  if (!data || !slots) return false;
  const jitkit::code::ZoneStats s = zone.stats();
  std::printf(
      "allocator         5 blocks: reserved %zu KiB, committed %zu KiB, used %zu B, free %zu B, "
      "largest free %zu B\n",
      s.reserved_bytes >> 10, s.committed_bytes >> 10, s.used_bytes, s.free_bytes, s.largest_free_block);
  std::printf("data beside code  read-only at %+td bytes from the function, read-write at %+td\n",
              data->data - block->exec, slots->data - block->exec);
  const int wx = count_wx_mappings();
  std::printf("W^X               %d writable+executable mappings in /proc/self/maps\n", wx);
  if (auto sync = jitkit::code::serialize_all_cores(); sync) {
    std::printf("cross-core sync   membarrier SYNC_CORE registered and working\n");
  } else {
    std::printf("cross-core sync   unavailable: %s\n", sync.error().message().c_str());
  }

  return result == 42 && (zone.mode() == ZoneMode::kRwx || wx == 0);
}

}  // namespace

JITKIT_TOUR_SECTION(20, "Code zones", show_code_zones);
