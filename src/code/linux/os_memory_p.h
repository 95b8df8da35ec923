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
// The error message names the call and the errno.
Result<int> create_memfd(const std::string& name, std::size_t bytes);
Result<int> create_posix_shm(const std::string& name, std::size_t bytes);
Result<int> create_tmp_file(const std::string& dir, std::size_t bytes);

// The directory create_tmp_file() uses for the option `dir`: itself, else $TMPDIR, else /tmp.
std::string tmp_dir_for(const std::string& dir);

// True if the file system holding `fd` is mounted noexec (it refuses PROT_EXEC mappings).
bool on_noexec_mount(int fd) noexcept;

// mmap of `fd` (MAP_SHARED) at the fixed address `addr` (addr != 0) or anywhere (addr == 0),
// with PROT_NONE. Returns the mapped address.
Result<std::uintptr_t> map_shared(int fd, std::uintptr_t addr, std::size_t bytes);

enum class Access { kNone, kRead, kReadWrite, kReadExecute, kReadWriteExecute };
Status protect(std::uintptr_t addr, std::size_t bytes, Access access);

// Maps [offset, offset + bytes) of `fd` (MAP_SHARED) over [addr, addr + bytes) with `access`.
// Making shared pages executable with mmap rather than mprotect keeps dual mapping working
// under policies that refuse mprotect(PROT_EXEC) but allow executable shared file mappings
// (SELinux execmem denies anonymous and private executable memory, not shared file memory).
Status map_object(int fd, std::uintptr_t addr, std::size_t offset, std::size_t bytes, Access access);

// madvise(MADV_DONTFORK): a child of fork() does not get this range at all.
Status dont_fork(std::uintptr_t addr, std::size_t bytes);

void close_fd(int fd) noexcept;

}  // namespace jitkit::code::detail
