// src/debug/perf_outputs.cpp — the perf map file and the jitdump file (perf.h).
//
// jitdump layout follows tools/perf/Documentation/jitdump-specification.txt of the Linux tree:
// a file header, then records, each a {id, total_size, timestamp} prefix and a body. Only
// JIT_CODE_LOAD (with the code bytes) and JIT_CODE_CLOSE are written. Timestamps are
// CLOCK_MONOTONIC nanoseconds, which is what `perf record -k mono` stamps samples with, so that
// `perf inject --jit` can place each load before the samples that hit it.
#include "debug/perf_outputs_p.h"

#include <elf.h>
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <mutex>
#include <sstream>
#include <string>
#include <vector>

#include "jitkit/base/format.h"

namespace jitkit::debug {
namespace {

constexpr std::uint32_t kJitdumpMagic = 0x4A695444;  // "JiTD" read as a little-endian u32
constexpr std::uint32_t kJitdumpVersion = 1;
constexpr std::uint32_t kJitCodeLoad = 0;
constexpr std::uint32_t kJitCodeClose = 3;

struct JitdumpHeader {
  std::uint32_t magic;
  std::uint32_t version;
  std::uint32_t total_size;  // of this header
  std::uint32_t elf_mach;
  std::uint32_t pad1;
  std::uint32_t pid;
  std::uint64_t timestamp;
  std::uint64_t flags;  // 0: timestamps are the clock of `perf record -k`, not TSC
};
static_assert(sizeof(JitdumpHeader) == 40);

struct RecordPrefix {
  std::uint32_t id;
  std::uint32_t total_size;  // prefix + body + trailing name and code
  std::uint64_t timestamp;
};

struct CodeLoadBody {
  std::uint32_t pid;
  std::uint32_t tid;
  std::uint64_t vma;        // where the code runs
  std::uint64_t code_addr;  // same: we copy the bytes, there is no separate load address
  std::uint64_t code_size;
  std::uint64_t code_index;  // unique per load; names perf inject's jitted-<pid>-<index>.so
};

std::uint64_t monotonic_ns() {
  timespec ts{};
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<std::uint64_t>(ts.tv_sec) * 1000000000ull + static_cast<std::uint64_t>(ts.tv_nsec);
}

bool write_all(int fd, const void* data, std::size_t n) {
  const auto* p = static_cast<const std::uint8_t*>(data);
  while (n > 0) {
    ssize_t w = ::write(fd, p, n);
    if (w < 0) {
      if (errno == EINTR) continue;
      return false;
    }
    p += w;
    n -= static_cast<std::size_t>(w);
  }
  return true;
}

struct PerfOutputs {
  std::mutex mu;
  // perf map
  std::FILE* map_file = nullptr;
  std::string map_path;
  bool map_coverage_checked = false;
  // jitdump
  int dump_fd = -1;
  void* marker = nullptr;  // the PROT_EXEC mapping perf record notices
  std::size_t marker_size = 0;
  std::string dump_path;
  std::uint64_t code_index = 0;
  std::vector<std::uint8_t> buffer;  // one batch of records, written with one write()
};

PerfOutputs& outputs() {
  static PerfOutputs* o = new PerfOutputs;  // never destroyed: registrations may run at exit
  return *o;
}

void close_jitdump_locked(PerfOutputs& o) {
  if (o.dump_fd < 0) return;
  RecordPrefix close{kJitCodeClose, sizeof(RecordPrefix), monotonic_ns()};
  (void)write_all(o.dump_fd, &close, sizeof close);
  if (o.marker != nullptr) munmap(o.marker, o.marker_size);
  ::close(o.dump_fd);
  o.dump_fd = -1;
  o.marker = nullptr;
  o.dump_path.clear();
}

}  // namespace

Status enable_perf_map() {
  PerfOutputs& o = outputs();
  std::lock_guard lock(o.mu);
  if (o.map_file != nullptr) return ok();
  std::string path = "/tmp/perf-" + std::to_string(getpid()) + ".map";
  std::FILE* f = std::fopen(path.c_str(), "a");
  if (f == nullptr) return Error::from_errno("debug: open perf map file " + path, errno);
  o.map_file = f;
  o.map_path = path;
  return ok();
}

Status enable_jitdump(std::string_view dir_arg) {
  PerfOutputs& o = outputs();
  std::lock_guard lock(o.mu);
  std::string dir(dir_arg);
  if (dir.empty()) {
    const char* env = std::getenv("JITKIT_JITDUMP_DIR");
    dir = env != nullptr && *env != '\0' ? env : "/tmp";
  }
  // perf inject recognizes the file by its basename "jit-<pid>.dump" (and requires the pid to
  // be the one that mapped it).
  std::string path = dir + "/jit-" + std::to_string(getpid()) + ".dump";
  if (o.dump_fd >= 0) {
    if (path == o.dump_path) return ok();
    return Error(ErrorCode::kInvalidState,
                 "debug: jitdump already written to " + o.dump_path + ", not to " + path);
  }
  int fd = ::open(path.c_str(), O_CREAT | O_TRUNC | O_RDWR | O_CLOEXEC, 0644);
  if (fd < 0) return Error::from_errno("debug: create jitdump file " + path, errno);
  JitdumpHeader h{kJitdumpMagic,
                  kJitdumpVersion,
                  sizeof(JitdumpHeader),
                  EM_X86_64,
                  0,
                  static_cast<std::uint32_t>(getpid()),
                  monotonic_ns(),
                  0};
  if (!write_all(fd, &h, sizeof h)) {
    int e = errno;
    ::close(fd);
    return Error::from_errno("debug: write jitdump header to " + path, e);
  }
  // The marker: perf record logs executable mappings only, so the file is mapped with
  // PROT_EXEC (never executed). The mapping must stay until the file is closed.
  std::size_t page = static_cast<std::size_t>(sysconf(_SC_PAGESIZE));
  void* marker = mmap(nullptr, page, PROT_READ | PROT_EXEC, MAP_PRIVATE, fd, 0);
  if (marker == MAP_FAILED) {
    int e = errno;
    ::close(fd);
    return Error::from_errno(
        "debug: mmap jitdump file " + path + " with PROT_EXEC (the marker perf inject looks for)", e);
  }
  o.dump_fd = fd;
  o.marker = marker;
  o.marker_size = page;
  o.dump_path = path;
  return ok();
}

void disable_perf_outputs() {
  PerfOutputs& o = outputs();
  std::lock_guard lock(o.mu);
  if (o.map_file != nullptr) {
    std::fclose(o.map_file);
    o.map_file = nullptr;
    o.map_path.clear();
  }
  close_jitdump_locked(o);
}

bool perf_map_enabled() {
  PerfOutputs& o = outputs();
  std::lock_guard lock(o.mu);
  return o.map_file != nullptr;
}
bool jitdump_enabled() {
  PerfOutputs& o = outputs();
  std::lock_guard lock(o.mu);
  return o.dump_fd >= 0;
}
std::string perf_map_path() {
  PerfOutputs& o = outputs();
  std::lock_guard lock(o.mu);
  return o.map_path;
}
std::string jitdump_path() {
  PerfOutputs& o = outputs();
  std::lock_guard lock(o.mu);
  return o.dump_path;
}

Result<bool> perf_map_covers(std::uintptr_t address) {
  std::ifstream maps("/proc/self/maps");
  if (!maps) return Error::from_errno("debug: open /proc/self/maps", errno);
  std::string line;
  while (std::getline(maps, line)) {
    unsigned long begin = 0, end = 0;
    char perms[8] = {};
    unsigned long offset = 0;
    char dev[16] = {};
    unsigned long inode = 0;
    int consumed = 0;
    if (std::sscanf(line.c_str(), "%lx-%lx %7s %lx %15s %lu %n", &begin, &end, perms, &offset, dev, &inode,
                    &consumed) < 6) {
      continue;
    }
    if (address < begin || address >= end) continue;
    std::string name = consumed > 0 && static_cast<std::size_t>(consumed) <= line.size()
                           ? line.substr(static_cast<std::size_t>(consumed))
                           : std::string();
    // perf treats a mapping as anonymous (and consults the map file) when the kernel reports
    // no file for it ("//anon"), i.e. inode 0 and no name other than [anon:...] tags.
    bool anonymous = inode == 0 && (name.empty() || name.rfind("[anon", 0) == 0);
    return anonymous && perms[2] == 'x';
  }
  return Error(ErrorCode::kInvalidArgument, "debug: address is not mapped in this process");
}

namespace detail {

void perf_record_functions(std::span<const Symbol> symbols) {
  PerfOutputs& o = outputs();
  std::lock_guard lock(o.mu);
  if (o.map_file != nullptr) {
    for (const Symbol& s : symbols) {
      if (s.kind != SymbolKind::kFunction) continue;
      if (!o.map_coverage_checked) {
        // Once per process (reading /proc/self/maps per batch would cost more than the batch):
        // say so when the map file cannot work for this code, instead of leaving the user with
        // "memfd:... (deleted)" in perf report and no idea why.
        o.map_coverage_checked = true;
        Result<bool> covers = perf_map_covers(s.address);
        if (covers && !*covers) {
          std::fprintf(stderr,
                       "jitkit: %s: '%s' runs from a file-backed mapping (dual-mapped code zone?); "
                       "perf reads the map file only for anonymous memory. Use JITKIT_JITDUMP=1 "
                       "with `perf record -k mono` and `perf inject --jit` instead.\n",
                       o.map_path.c_str(), s.name.c_str());
        }
      }
      std::fprintf(o.map_file, "%lx %zx %s\n", static_cast<unsigned long>(s.address), s.size, s.name.c_str());
    }
    // perf reads the file after the run; flushing per batch keeps it complete even if the
    // process dies without running atexit handlers.
    std::fflush(o.map_file);
  }
  if (o.dump_fd >= 0) {
    o.buffer.clear();
    std::uint32_t pid = static_cast<std::uint32_t>(getpid());
    std::uint32_t tid = static_cast<std::uint32_t>(syscall(SYS_gettid));
    std::uint64_t now = monotonic_ns();
    for (const Symbol& s : symbols) {
      if (s.kind != SymbolKind::kFunction) continue;
      std::size_t total = sizeof(RecordPrefix) + sizeof(CodeLoadBody) + s.name.size() + 1 + s.size;
      if (total > 0xffffffffu) continue;  // the record's size field is 32 bits
      std::size_t record_start = o.buffer.size();
      RecordPrefix prefix{kJitCodeLoad, static_cast<std::uint32_t>(total), now};
      CodeLoadBody body{pid, tid, s.address, s.address, s.size, o.code_index};
      const auto* p = reinterpret_cast<const std::uint8_t*>(&prefix);
      o.buffer.insert(o.buffer.end(), p, p + sizeof prefix);
      p = reinterpret_cast<const std::uint8_t*>(&body);
      o.buffer.insert(o.buffer.end(), p, p + sizeof body);
      o.buffer.insert(o.buffer.end(), s.name.begin(), s.name.end());
      o.buffer.push_back(0);
      // The code is copied through its executable address (readable in every zone mode) with
      // process_vm_readv, which fails with EFAULT instead of crashing when a caller registered
      // an address that is not readable; such a function is left out of the dump.
      std::size_t code_at = o.buffer.size();
      o.buffer.resize(code_at + s.size);
      iovec local{o.buffer.data() + code_at, s.size};
      iovec remote{reinterpret_cast<void*>(s.address), s.size};
      ssize_t got = process_vm_readv(getpid(), &local, 1, &remote, 1, 0);
      const int read_errno = errno;
      if (got != static_cast<ssize_t>(s.size)) {
        o.buffer.resize(record_start);
        std::fprintf(stderr, "jitkit: jitdump: cannot read the code of '%s' at %s (%s); not dumped\n",
                     s.name.c_str(), hex(s.address).c_str(),
                     got < 0 ? std::strerror(read_errno) : "short read");
        continue;
      }
      ++o.code_index;
    }
    if (!o.buffer.empty() && !write_all(o.dump_fd, o.buffer.data(), o.buffer.size())) {
      std::fprintf(stderr, "jitkit: writing jitdump %s failed (%s); jitdump disabled\n", o.dump_path.c_str(),
                   std::strerror(errno));
      close_jitdump_locked(o);
    }
  }
}

bool perf_any_enabled() {
  PerfOutputs& o = outputs();
  std::lock_guard lock(o.mu);
  return o.map_file != nullptr || o.dump_fd >= 0;
}

}  // namespace detail
}  // namespace jitkit::debug
