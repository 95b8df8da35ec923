// Linux implementation of os_memory_p.h: reservations (with placement near an address),
// memfd / POSIX shm / unlinked-file memory objects, shared mappings and protections.
#include "code/linux/os_memory_p.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <sstream>
#include <vector>

#include "jitkit/base/bits.h"
#include "jitkit/base/format.h"
#include "jitkit/base/platform.h"

#ifndef MFD_CLOEXEC
#define MFD_CLOEXEC 0x0001U
#endif
#ifndef MFD_NOEXEC_SEAL
#define MFD_NOEXEC_SEAL 0x0008U
#endif
#ifndef MAP_FIXED_NOREPLACE
#define MAP_FIXED_NOREPLACE 0x100000
#endif

namespace jitkit::code::detail {
namespace {

std::string size_text(std::size_t bytes) {
  char buf[48];
  if (bytes >= (std::size_t{1} << 20) && bytes % (std::size_t{1} << 20) == 0) {
    std::snprintf(buf, sizeof buf, "%zu MiB", bytes >> 20);
  } else if (bytes >= 1024 && bytes % 1024 == 0) {
    std::snprintf(buf, sizeof buf, "%zu KiB", bytes >> 10);
  } else {
    std::snprintf(buf, sizeof buf, "%zu bytes", bytes);
  }
  return buf;
}

struct Range {
  std::uint64_t begin, end;
};

// Mapped ranges of this process, sorted (the kernel lists them in address order).
std::vector<Range> read_mappings() {
  std::vector<Range> out;
  std::ifstream maps("/proc/self/maps");
  std::string line;
  while (std::getline(maps, line)) {
    unsigned long long b = 0, e = 0;
    if (std::sscanf(line.c_str(), "%llx-%llx", &b, &e) == 2) out.push_back({b, e});
  }
  return out;
}

std::uint64_t read_mmap_min_addr() {
  std::ifstream f("/proc/sys/vm/mmap_min_addr");
  std::uint64_t v = 65536;
  if (!(f >> v)) v = 65536;
  return std::max<std::uint64_t>(v, 65536);
}

// Top of the user address space that mmap hands out without a high hint (47-bit VA).
constexpr std::uint64_t kUserTop = std::uint64_t{1} << 47;

int mmap_flags_reserve() { return MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE; }

}  // namespace

Result<std::uintptr_t> reserve_range(std::size_t bytes, std::uintptr_t near, std::size_t near_span) {
  const std::size_t page = platform_facts().page_size;
  if (near == 0) {
    void* p = mmap(nullptr, bytes, PROT_NONE, mmap_flags_reserve(), -1, 0);
    if (p == MAP_FAILED) return Error::from_errno("code zone: reserve " + size_text(bytes), errno);
    return reinterpret_cast<std::uintptr_t>(p);
  }
  const std::string what = "code zone: reserve " + size_text(bytes) + " within ±2 GiB of " + hex(near) +
                           (near_span ? " (+" + size_text(near_span) + ")" : std::string());
  // Every zone byte z and target t in [near, near + span] must satisfy |t - z| <= kRel32Reach:
  // z >= near + span - reach and z + bytes <= near + reach.
  const std::uint64_t span_end = std::uint64_t{near} + near_span;
  if (std::uint64_t{bytes} + near_span > 2 * kRel32Reach) {
    return Error(ErrorCode::kOutOfRange, what + ": the zone plus the span exceed the 4 GiB rel32 window");
  }
  const std::uint64_t min_addr = read_mmap_min_addr();
  std::uint64_t lo = span_end > kRel32Reach ? span_end - kRel32Reach : 0;
  lo = std::max(align_up(lo, page), align_up(min_addr, page));
  std::uint64_t hi = std::min<std::uint64_t>(std::uint64_t{near} + kRel32Reach, kUserTop);
  hi = align_down(hi, page);
  if (near >= kUserTop || hi <= lo || hi - lo < bytes) {
    return Error(ErrorCode::kOutOfRange, what + ": the window [" + hex(lo) + ", " + hex(hi) +
                                             ") holds no user address range of that size");
  }
  int searched = 0;
  for (int attempt = 0; attempt < 8; ++attempt) {
    // Candidate gaps between mappings, clipped to the window; pick the spot closest to `near`.
    const std::vector<Range> maps = read_mappings();
    std::uint64_t best = 0;
    std::uint64_t best_dist = ~std::uint64_t{0};
    std::uint64_t prev_end = min_addr;
    auto consider = [&](std::uint64_t gap_b, std::uint64_t gap_e) {
      gap_b = std::max(align_up(gap_b, page), lo);
      gap_e = std::min(align_down(gap_e, page), hi);
      if (gap_e <= gap_b || gap_e - gap_b < bytes) return;
      ++searched;
      // Closest placement of [z, z + bytes) to near within [gap_b, gap_e - bytes].
      std::uint64_t z = std::clamp<std::uint64_t>(align_down(near, page), gap_b, gap_e - bytes);
      const std::uint64_t dist = z > near ? z - near : near - z;
      if (dist < best_dist) {
        best_dist = dist;
        best = z;
      }
    };
    for (const Range& r : maps) {
      if (r.begin > prev_end) consider(prev_end, r.begin);
      prev_end = std::max(prev_end, r.end);
    }
    if (prev_end < kUserTop) consider(prev_end, kUserTop);
    if (best == 0) break;
    void* p = mmap(reinterpret_cast<void*>(best), bytes, PROT_NONE,
                   mmap_flags_reserve() | MAP_FIXED_NOREPLACE, -1, 0);
    if (p == MAP_FAILED) {
      if (errno == EEXIST) continue;  // another thread mapped there since we read the maps
      return Error::from_errno(what + ": mmap at " + hex(best), errno);
    }
    if (reinterpret_cast<std::uint64_t>(p) != best) {
      // A kernel older than 4.17 treats MAP_FIXED_NOREPLACE as a hint only.
      munmap(p, bytes);
      continue;
    }
    return static_cast<std::uintptr_t>(best);
  }
  return Error(ErrorCode::kOutOfRange, what + ": no free range (window [" + hex(lo) + ", " + hex(hi) + "), " +
                                           std::to_string(searched) + " candidate gaps tried)");
}

Status reset_to_reservation(std::uintptr_t addr, std::size_t bytes) {
  void* p = mmap(reinterpret_cast<void*>(addr), bytes, PROT_NONE, mmap_flags_reserve() | MAP_FIXED, -1, 0);
  if (p == MAP_FAILED) return Error::from_errno("code zone: re-reserve " + hex(addr), errno);
  return ok();
}

void release_range(std::uintptr_t addr, std::size_t bytes) noexcept {
  if (addr != 0 && bytes != 0) munmap(reinterpret_cast<void*>(addr), bytes);
}

namespace {

Status size_object(int fd, std::size_t bytes, const char* what) {
  if (ftruncate(fd, static_cast<off_t>(bytes)) != 0) {
    const int e = errno;
    close(fd);
    return Error::from_errno(std::string(what) + ": ftruncate to " + size_text(bytes), e);
  }
  return ok();
}

}  // namespace

Result<int> create_memfd(const std::string& name, std::size_t bytes) {
  // Kernels that know the exec flags (6.3+) get MFD_NOEXEC_SEAL: the object may never become an
  // executable program (execve), which is all vm.memfd_noexec is about, so neither =1 nor =2
  // warns about or refuses it. Mapping it PROT_EXEC is not execve and stays allowed (the
  // memfd lives on the kernel's internal mount, which is not noexec). Older kernels reject the
  // flag, and their memfds are executable anyway.
  const bool seal = platform_facts().memfd.mfd_exec_flag;
  const unsigned flags = MFD_CLOEXEC | (seal ? MFD_NOEXEC_SEAL : 0U);
  const std::string what = std::string("memfd_create(MFD_CLOEXEC") + (seal ? "|MFD_NOEXEC_SEAL" : "") + ")";
  const int fd = static_cast<int>(syscall(SYS_memfd_create, name.c_str(), flags));
  if (fd < 0) return Error::from_errno(what, errno);
  JITKIT_TRY(size_object(fd, bytes, "memfd"));
  return fd;
}

Result<int> create_posix_shm(const std::string& name, std::size_t bytes) {
  static std::atomic<unsigned> counter{0};
  for (int attempt = 0; attempt < 16; ++attempt) {
    const std::string path = "/" + name + "-" + std::to_string(getpid()) + "-" +
                             std::to_string(counter.fetch_add(1, std::memory_order_relaxed));
    const int fd = shm_open(path.c_str(), O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    if (fd < 0) {
      if (errno == EEXIST) continue;
      return Error::from_errno("shm_open(" + path + ")", errno);
    }
    // Unlinked at once: no other process can open it, and nothing is left behind on a crash.
    shm_unlink(path.c_str());
    JITKIT_TRY(size_object(fd, bytes, "POSIX shm object"));
    return fd;
  }
  return Error(ErrorCode::kSystem, "shm_open: no unused name after 16 attempts");
}

std::string tmp_dir_for(const std::string& dir) {
  if (!dir.empty()) return dir;
  const char* env = std::getenv("TMPDIR");
  return (env != nullptr && *env != '\0') ? env : "/tmp";
}

Result<int> create_tmp_file(const std::string& dir_option, std::size_t bytes) {
  const std::string dir = tmp_dir_for(dir_option);
  // O_TMPFILE: a file that never has a name. Fall back to mkstemp + unlink where the file
  // system does not support it.
  int fd = open(dir.c_str(), O_TMPFILE | O_RDWR | O_CLOEXEC, 0600);
  if (fd < 0) {
    std::string templ = dir + "/jitkit-code-XXXXXX";
    fd = mkostemp(templ.data(), O_CLOEXEC);
    if (fd < 0) return Error::from_errno("temporary file in " + dir, errno);
    unlink(templ.c_str());
  }
  JITKIT_TRY(size_object(fd, bytes, ("temporary file in " + dir).c_str()));
  return fd;
}

bool on_noexec_mount(int fd) noexcept {
  struct statvfs st {};
  return fstatvfs(fd, &st) == 0 && (st.f_flag & ST_NOEXEC) != 0;
}

Result<std::uintptr_t> map_shared(int fd, std::uintptr_t addr, std::size_t bytes) {
  const int flags = MAP_SHARED | (addr != 0 ? MAP_FIXED : 0);
  void* p = mmap(reinterpret_cast<void*>(addr), bytes, PROT_NONE, flags, fd, 0);
  if (p == MAP_FAILED) return Error::from_errno("mmap(MAP_SHARED) of the code object", errno);
  return reinterpret_cast<std::uintptr_t>(p);
}

namespace {

int prot_of(Access access) {
  switch (access) {
    case Access::kNone:
      return PROT_NONE;
    case Access::kRead:
      return PROT_READ;
    case Access::kReadWrite:
      return PROT_READ | PROT_WRITE;
    case Access::kReadExecute:
      return PROT_READ | PROT_EXEC;
    case Access::kReadWriteExecute:
      return PROT_READ | PROT_WRITE | PROT_EXEC;
  }
  return PROT_NONE;
}

const char* prot_name(Access access) {
  switch (access) {
    case Access::kNone:
      return "---";
    case Access::kRead:
      return "r--";
    case Access::kReadWrite:
      return "rw-";
    case Access::kReadExecute:
      return "r-x";
    case Access::kReadWriteExecute:
      return "rwx";
  }
  return "?";
}

}  // namespace

Status protect(std::uintptr_t addr, std::size_t bytes, Access access) {
  if (mprotect(reinterpret_cast<void*>(addr), bytes, prot_of(access)) != 0) {
    return Error::from_errno(
        "mprotect(" + hex(addr) + ", " + size_text(bytes) + ", " + prot_name(access) + ")", errno);
  }
  return ok();
}

Status map_object(int fd, std::uintptr_t addr, std::size_t offset, std::size_t bytes, Access access) {
  void* p = mmap(reinterpret_cast<void*>(addr), bytes, prot_of(access), MAP_SHARED | MAP_FIXED, fd,
                 static_cast<off_t>(offset));
  if (p == MAP_FAILED) {
    return Error::from_errno("mmap(" + hex(addr) + ", " + size_text(bytes) + ", " + prot_name(access) +
                                 ", MAP_SHARED) of the code object",
                             errno);
  }
  return ok();
}

Status dont_fork(std::uintptr_t addr, std::size_t bytes) {
  if (madvise(reinterpret_cast<void*>(addr), bytes, MADV_DONTFORK) != 0) {
    return Error::from_errno("madvise(MADV_DONTFORK) on the write view", errno);
  }
  return ok();
}

void close_fd(int fd) noexcept {
  if (fd >= 0) close(fd);
}

}  // namespace jitkit::code::detail
