// tests/debug/test_code_memory.h — executable memory for the debug tests, in the two shapes
// that matter to gdb and perf:
//   kDual  one memfd mapped twice, MAP_SHARED: written through a read-write view, executed
//          through a read-execute view. perf sees "/memfd:jitkit-test (deleted)"; gdb cannot
//          plant software breakpoints there (the kernel refuses ptrace writes into a shared
//          read-only mapping), so the tests use hardware breakpoints (`hbreak`).
//   kAnon  an anonymous private mapping, read-write while written, then read-execute: perf's
//          "//anon", where the perf map file applies and gdb's `break` works.
// (Test code only: the library's own zones are jitkit::code::CodeZone.)
#pragma once

#include <sys/mman.h>
#include <unistd.h>

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>

namespace jitkit::debug::testing {

class TestCodeMemory {
 public:
  enum class Kind { kDual, kAnon };

  TestCodeMemory(Kind kind, std::size_t size) : kind_(kind), size_(size) {
    if (kind == Kind::kDual) {
      int fd = memfd_create("jitkit-test", MFD_CLOEXEC);
      if (fd < 0 || ftruncate(fd, static_cast<off_t>(size)) != 0) die("memfd");
      rw_ = static_cast<std::uint8_t*>(mmap(nullptr, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0));
      rx_ = static_cast<std::uint8_t*>(mmap(nullptr, size, PROT_READ | PROT_EXEC, MAP_SHARED, fd, 0));
      close(fd);
      if (rw_ == MAP_FAILED || rx_ == MAP_FAILED) die("mmap memfd views");
    } else {
      rx_ = static_cast<std::uint8_t*>(
          mmap(nullptr, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0));
      if (rx_ == MAP_FAILED) die("mmap anon");
      rw_ = rx_;
    }
    std::memset(rw_, 0xcc, size);
  }
  ~TestCodeMemory() {
    munmap(rx_, size_);
    if (rw_ != rx_) munmap(rw_, size_);
  }

  // Places `n` bytes at the next 64-byte boundary; returns their executable address.
  std::uint8_t* place(const void* bytes, std::size_t n) {
    if (used_ + n > size_) die("test code memory full");
    std::uint8_t* exec = rx_ + used_;
    std::memcpy(rw_ + used_, bytes, n);
    used_ = (used_ + n + 63) & ~std::size_t{63};
    return exec;
  }
  // Reserves `n` bytes; returns the executable address (write with write()).
  std::uint8_t* reserve(std::size_t n) {
    std::uint8_t* exec = rx_ + used_;
    used_ = (used_ + n + 63) & ~std::size_t{63};
    if (used_ > size_) die("test code memory full");
    return exec;
  }
  void write(std::uint8_t* exec, const void* bytes, std::size_t n) {
    std::memcpy(rw_ + (exec - rx_), bytes, n);
  }
  // kAnon: read-execute from now on (kDual is executable all along).
  void finish() {
    if (kind_ == Kind::kAnon && mprotect(rx_, size_, PROT_READ | PROT_EXEC) != 0) die("mprotect");
  }
  std::uint8_t* begin() const { return rx_; }

 private:
  [[noreturn]] static void die(const char* what) {
    std::perror(what);
    std::exit(2);
  }
  Kind kind_;
  std::size_t size_;
  std::size_t used_ = 0;
  std::uint8_t* rw_ = nullptr;
  std::uint8_t* rx_ = nullptr;
};

}  // namespace jitkit::debug::testing
