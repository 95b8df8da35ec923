// src/code/linux/os_memory_p.h — the Linux system calls behind code zones.
//
// Everything the zone needs from the OS sits behind these few functions, so that a port
// (macOS MAP_JIT, another BSD) replaces this folder and nothing else: reserving an address
// range (optionally within rel32 reach of an address), creating the shared memory object of a
// dual mapping, mapping it, and changing protections.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>

#include "jitkit/base/result.h"

namespace jitkit::code::detail {

// Largest |distance| that still counts as rel32-reachable. Kept 64 KiB short of 2 GiB so that
// an instruction's own length and small offsets from a target never push a displacement out.
constexpr std::uint64_t kRel32Reach = (std::uint64_t{1} << 31) - (std::uint64_t{64} << 10);

// Reserves `bytes` of inaccessible address space (PROT_NONE, nothing committed). With
// near != 0 every reserved byte lies within kRel32Reach of every address in
// [near, near + near_span]; kOutOfRange says clearly when no free range qualifies.
Result<std::uintptr_t> reserve_range(std::size_t bytes, std::uintptr_t near, std::size_t near_span);

// Returns [addr, addr + bytes) to an inaccessible private reservation (undoing a failed mode).
Status reset_to_reservation(std::uintptr_t addr, std::size_t bytes);

void release_range(std::uintptr_t addr, std::size_t bytes) noexcept;

// A memory object for dual mapping. On success returns an fd of `bytes` bytes (O_CLOEXEC).
// `simulate_errno` != 0 makes the creation fail with that errno (test seam). The error message
// names the call and the errno.
Result<int> create_memfd(const std::string& name, std::size_t bytes, int simulate_errno);
Result<int> create_posix_shm(const std::string& name, std::size_t bytes, int simulate_errno);
Result<int> create_tmp_file(const std::string& dir, std::size_t bytes, int simulate_errno);

// mmap of `fd` (MAP_SHARED) at the fixed address `addr` (addr != 0) or anywhere (addr == 0),
// with PROT_NONE. Returns the mapped address.
Result<std::uintptr_t> map_shared(int fd, std::uintptr_t addr, std::size_t bytes);

enum class Access { kNone, kRead, kReadWrite, kReadExecute, kReadWriteExecute };
Status protect(std::uintptr_t addr, std::size_t bytes, Access access);

// madvise(MADV_DONTFORK): a child of fork() does not get this range at all.
Status dont_fork(std::uintptr_t addr, std::size_t bytes);

void close_fd(int fd) noexcept;

}  // namespace jitkit::code::detail
