// jitkit/code/code_zone.h — W^X code zones: where generated machine code lives.
//
// A CodeZone reserves one contiguous range of addresses for code, plus two small data areas
// right after it (read-only and read-write data), so that code reaches its constants, address
// slots and descriptors with rel32 / RIP-relative operands. The range can be placed within
// ±2 GiB of a chosen address (the host binary, a data region) so that rel32 calls reach it.
// Memory is committed lazily, in large chunks, as the allocator needs it.
//
// No page is ever writable and executable at the same virtual address (W^X), except in the
// RWX mode that a caller must allow explicitly. A zone runs in one of three modes, tried in
// this order; every fallback taken is recorded with its reason (fallback_reasons()):
//   kDualMapped  one memory object (memfd, else an unlinked POSIX shm object, else an unlinked
//                file in $TMPDIR) mapped twice, both MAP_SHARED: a read-execute view that runs
//                the code and a read-write view that writes it, at a constant distance
//                (write_view_delta()). Live code is patched through the write view.
//   kToggled     one private mapping; a block's pages are read-write until make_executable()
//                turns them read-execute. Live code is never re-protected, so a block cannot be
//                written after make_executable() (write() then fails with kInvalidState), and
//                blocks are page-granular so that no two blocks share a page.
//   kRwx         read-write-execute pages. Only with ZoneOptions::allow_rwx.
//
// Every write to code goes through the zone: write() (all modes) or writable() (kDualMapped and
// kRwx: the address to store to, for single aligned atomic stores by the patcher). After
// writing a block, make_executable() finishes it: instruction-cache maintenance (sync.h) and,
// for Visibility::kOtherThreads, a cross-core serialization (membarrier SYNC_CORE).
//
// fork(): a child keeps the parent's read-execute view (it may be running generated code when
// fork() returns) but never its write view (MADV_DONTFORK), so it cannot corrupt the parent's
// code. In the child every mutating call on an inherited zone fails with kInvalidState; a child
// that wants to generate code creates a fresh zone.
//
//   JITKIT_TRY(auto zone, jitkit::code::CodeZone::create());
//   JITKIT_TRY(auto block, zone->allocate(sizeof(bytes)));
//   JITKIT_TRY(zone->write(block.exec, bytes, sizeof(bytes)));
//   JITKIT_TRY(zone->make_executable(block, jitkit::code::Visibility::kThisThread));
//   int v = reinterpret_cast<int (*)()>(block.exec)();
//   JITKIT_TRY(zone->free(block));
//
// Thread safety: all member functions may be called from any thread, and a block may be freed
// by another thread than the one that allocated it. In kDualMapped and kRwx zones each thread
// keeps a small cache of blocks per zone, so that allocating and freeing small blocks (up to 64
// granules) takes no lock and no atomic read-modify-write; otherwise allocate()/free() take a
// short internal lock (no system call except when a commit chunk is added). write() takes no
// lock except in kToggled mode. Destroying a zone while other threads still use it is a bug.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "jitkit/base/result.h"

namespace jitkit::code {

// How a zone keeps code unwritable where it executes. See the file comment.
enum class ZoneMode { kDualMapped, kToggled, kRwx };

// Which memory object backs a dual-mapped zone.
enum class DualBacking { kMemfd, kPosixShm, kTmpFile };

// Access that generated code has to a data block (the program can always read it).
enum class DataAccess {
  kReadOnly,   // mapped read-only where code sees it; written with CodeZone::write()/writable()
  kReadWrite,  // private read-write memory, written directly through DataBlock::data
};

// Which threads may execute a block right after make_executable().
enum class Visibility {
  // Only the calling thread executes the block until a later make_executable(kOtherThreads) or
  // serialize_all_cores(). No cross-core serialization: for the caller, new bytes are
  // self-modifying code, which x86 orders by program order (the write precedes the call).
  // Address reuse is safe under this rule: a freed block's old bytes may sit in other cores'
  // pipelines, but those threads can only reach the new code through a pointer published later,
  // and publishing requires kOtherThreads. See docs/code-zones.md.
  kThisThread,
  // Other threads may execute the block (or patched code) as soon as this returns: every core
  // running this process executes a serializing instruction (membarrier SYNC_CORE) first.
  kOtherThreads,
};

struct ZoneOptions {
  // Size of the executable code area (rounded up to pages). Data areas come on top of it.
  std::size_t reserve_bytes = std::size_t{64} << 20;
  // 0: anywhere. Otherwise every byte of the zone (code and data) is placed so that rel32
  // displacements reach every address of [near, near + near_span].
  std::uintptr_t near = 0;
  std::size_t near_span = 0;
  // Force one mode (no fallback). kRwx also needs allow_rwx.
  std::optional<ZoneMode> force_mode;
  // Permit falling back to (or forcing) RWX pages.
  bool allow_rwx = false;
  // Allocation unit of code blocks, a power of two in [16, 4096]; blocks start at multiples of
  // it. In kToggled mode blocks are rounded to whole pages on top of this.
  std::size_t granularity = 64;
  // Sizes of the data areas placed right after the code (rounded up to pages; may be 0).
  std::size_t ro_data_bytes = std::size_t{1} << 20;
  std::size_t rw_data_bytes = std::size_t{1} << 20;
  // free() fills freed blocks with int3 and makes them reusable in batches of this many blocks
  // (or 64 KiB, whichever comes first), one batch per freeing thread; 1 fills every block at
  // once. Batching exists for speed: a store into code that just ran costs a pipeline clear
  // (self-modifying-code detection), and one batch pays it once instead of once per block.
  // Until its batch is filled a freed block is neither allocated nor allocatable. A batch is
  // filled when full, by flush_freed() in the freeing thread, when that thread exits, and
  // before allocate() reports exhaustion.
  std::size_t free_batch = 256;
  // Memory is committed (made accessible and filled with int3) in chunks of this many bytes.
  std::size_t commit_chunk = std::size_t{256} << 10;
  // Name of the memory object (shows in /proc/self/maps as "/memfd:<name> (deleted)").
  std::string name = "jitkit-code";
  // Directory of the last-resort backing file; empty: $TMPDIR, else /tmp.
  std::string tmp_dir;
};

// A block of code. `exec` is the executable address (what code calls and jumps to);
// `size` is the usable size: the requested size rounded up to the granularity (to whole pages
// in kToggled mode). Freshly allocated bytes are int3.
struct CodeBlock {
  std::uint8_t* exec = nullptr;
  std::size_t size = 0;
};

// A block of data beside the code. `data` is the address code uses (RIP-relative reach).
// kReadWrite data is written directly through `data`; kReadOnly data through the zone.
// Data blocks live as long as the zone.
struct DataBlock {
  std::uint8_t* data = nullptr;
  std::size_t size = 0;
  DataAccess access = DataAccess::kReadOnly;
};

// Allocator statistics of the code area (bytes). free_bytes = reserved_bytes - used_bytes -
// pending_free_bytes (allocatable without a new zone); largest_free_block counts uncommitted
// space too.
struct ZoneStats {
  std::size_t reserved_bytes = 0;
  std::size_t committed_bytes = 0;
  std::size_t used_bytes = 0;
  std::size_t free_bytes = 0;
  std::size_t largest_free_block = 0;
  std::size_t block_count = 0;
  // Freed, waiting for their batched int3 fill (neither used nor allocatable yet).
  std::size_t pending_free_bytes = 0;
  // Data areas: reserved and handed out (each area is a bump allocator).
  std::size_t ro_data_reserved = 0;
  std::size_t ro_data_used = 0;
  std::size_t rw_data_reserved = 0;
  std::size_t rw_data_used = 0;
};

class CodeZone {
 public:
  // Reserves the zone. Fails with kOutOfRange when placement near `options.near` is impossible,
  // kPermissionDenied/kUnsupported when no allowed mode works (the message lists every reason),
  // kInvalidArgument for bad options.
  [[nodiscard]] static Result<std::unique_ptr<CodeZone>> create(const ZoneOptions& options = {});

  CodeZone(const CodeZone&) = delete;
  CodeZone& operator=(const CodeZone&) = delete;
  ~CodeZone();

  ZoneMode mode() const noexcept;
  // Backing object; meaningful in kDualMapped mode only.
  DualBacking backing() const noexcept;
  // Why each preferred mode or backing was not used, in the order they were tried. Empty when
  // the zone got dual mapping on memfd.
  const std::vector<std::string>& fallback_reasons() const noexcept;

  // The executable code range [begin, end).
  std::uintptr_t begin() const noexcept;
  std::uintptr_t end() const noexcept;
  // The whole zone including the data areas [begin, zone_end).
  std::uintptr_t zone_end() const noexcept;
  bool contains(const void* addr) const noexcept;
  // kDualMapped: writable address = executable address + delta (same for code and read-only
  // data). 0 in the other modes.
  std::ptrdiff_t write_view_delta() const noexcept;
  std::size_t granularity() const noexcept;

  // Allocates a code block of at least `size` bytes, aligned to `alignment` (0: granularity;
  // otherwise a power of two, at most the page size). Thread-safe.
  [[nodiscard]] Result<CodeBlock> allocate(std::size_t size, std::size_t alignment = 0);
  // Returns a block to the allocator, which fills it with int3 (in batches, see
  // ZoneOptions::free_batch) before reusing it. No thread may execute it any more. A block that
  // this zone did not hand out (wrong address or size, double free) is an error; two threads
  // racing to free the same block at the same instant are not detected.
  [[nodiscard]] Status free(CodeBlock block);
  // Fills the freed blocks still waiting for their batch — the calling thread's and those of
  // kToggled zones — with int3 and makes them allocatable. Other threads' batches are filled
  // by those threads (when full, by their own flush_freed(), or when they exit).
  [[nodiscard]] Status flush_freed();

  // Data beside the code; `alignment` 0 means 8. See DataAccess.
  [[nodiscard]] Result<DataBlock> allocate_data(std::size_t size, std::size_t alignment, DataAccess access);

  // Copies `n` bytes to `exec_dst` (inside a code block or read-only data) through the write
  // path of the mode. kToggled: fails with kInvalidState once the block is executable.
  [[nodiscard]] Status write(std::uint8_t* exec_dst, const void* src, std::size_t n);
  // Writable alias of an executable (or read-only data) address, for single aligned atomic
  // stores to live code. kDualMapped: exec_addr + delta; kRwx: exec_addr; kToggled, outside
  // the zone's committed memory, or in a forked child: nullptr.
  std::uint8_t* writable(std::uint8_t* exec_addr) noexcept;
  // Finishes writing a block (or a patched range given as a CodeBlock): kToggled turns its
  // pages read-execute; then instruction-cache maintenance; then, for kOtherThreads, a
  // cross-core serialization (fails clearly if membarrier SYNC_CORE is unavailable).
  [[nodiscard]] Status make_executable(CodeBlock block, Visibility visibility);

  ZoneStats stats() const;

  struct Impl;

 private:
  explicit CodeZone(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

// "dual-mapped", "toggled", "rwx"; "memfd", "posix-shm", "tmpfile".
std::string_view mode_name(ZoneMode mode) noexcept;
std::string_view backing_name(DualBacking backing) noexcept;

}  // namespace jitkit::code
