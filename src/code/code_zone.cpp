// CodeZone: mode selection (dual mapping -> toggled -> RWX), lazy commit, the allocator paths
// (per-thread caches without locks, the central bitmap allocator under a spin lock), batched
// int3 fill, the write path of each mode, and fork() protection. See jitkit/code/code_zone.h
// and docs/code-zones.md for the rules this file implements.
#include "jitkit/code/code_zone.h"

#include <pthread.h>
#include <sys/mman.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <bit>
#include <cerrno>
#include <cstring>
#include <mutex>
#include <utility>

#include "code/block_allocator_p.h"
#include "code/linux/os_memory_p.h"
#include "code/spin_lock_p.h"
#include "jitkit/base/bits.h"
#include "jitkit/base/format.h"
#include "jitkit/base/platform.h"
#include "jitkit/code/sync.h"
#include "jitkit/code/x86_64/trap_fill.h"

namespace jitkit::code {

using detail::Access;
using x86_64::kInt3;

namespace {

// Incremented in every child of fork(). A zone remembers the value at its creation; a
// mismatch means "this object was inherited through fork()": its write view is gone
// (MADV_DONTFORK) and its lock may have been held by a thread that does not exist here, so
// every mutating call refuses before touching either.
std::atomic<std::uint64_t> g_fork_generation{0};
std::once_flag g_atfork_once;

// Zone identities for the per-thread caches: never reused, so a thread's cache slot for a
// destroyed zone can never be mistaken for a new zone at the same address.
std::atomic<std::uint64_t> g_next_zone_id{1};
// Serializes a zone's destruction against threads handing back their caches on exit.
std::mutex g_cache_registry_mu;

constexpr std::uint32_t kAllocatedBit = 0x80000000u;

// fork() handlers. The registry mutex is held across fork() so that the child never inherits
// it locked by a thread that does not exist there (the child's thread-exit path takes it).
void before_fork() { g_cache_registry_mu.lock(); }
void after_fork_in_parent() { g_cache_registry_mu.unlock(); }
void after_fork_in_child() {
  g_cache_registry_mu.unlock();
  g_fork_generation.fetch_add(1, std::memory_order_relaxed);
}

// Error construction is kept out of line so that the fast paths of allocate() and free() do
// not pay for std::string temporaries in their stack frames.
[[gnu::cold, gnu::noinline]] Error bad_free(std::uintptr_t addr, std::size_t size, const char* why) {
  return Error(ErrorCode::kInvalidArgument,
               "code zone: free(" + hex(addr) + ", " + std::to_string(size) + " bytes): " + why);
}

[[gnu::cold, gnu::noinline]] Error bad_allocate(std::size_t size, std::size_t alignment, std::size_t limit) {
  if (size == 0 || size > limit) {
    return Error(ErrorCode::kInvalidArgument, "code zone: allocate " + std::to_string(size) +
                                                  " bytes: size must be in [1, " + std::to_string(limit) +
                                                  "]");
  }
  return Error(ErrorCode::kInvalidArgument, "code zone: allocate: alignment " + std::to_string(alignment) +
                                                " is not a power of two no larger than the page size");
}

[[gnu::cold, gnu::noinline]] Error forked_error(const char* op) {
  return Error(
      ErrorCode::kInvalidState,
      std::string("code zone: ") + op +
          ": this zone was inherited through fork(); a child may run the parent's code but not change "
          "it — create a fresh CodeZone in the child");
}

}  // namespace

// One thread's cache of code blocks for one zone (dual-mapped and RWX zones only). It makes
// the common cycle — allocate a small block, use it, free it — free of locks and atomic
// read-modify-writes (each costs 10-20 ns here, as much as the rest of the cycle):
//   pending   blocks this thread freed, waiting for their int3 batch;
//   ready     filled blocks of each size, for this thread's next allocations.
// The central allocator counts every block in a cache as allocated. Only the owning thread
// touches the vectors; the counters are single-writer atomics read by stats() under the
// zone lock. Bounded: at most free_batch pending blocks, and kMaxReadyPerSize ready blocks a size
// and kMaxReadyBytes in all.
struct ThreadCache {
  static constexpr std::size_t kMaxReadyPerSize = 256;
  static constexpr std::size_t kMaxReadyBytes = 256 << 10;
  CodeZone::Impl* zone = nullptr;  // null once the zone is destroyed (under g_cache_registry_mu)
  std::vector<detail::BlockAllocator::Run> pending;
  std::array<std::vector<std::uint32_t>, detail::BlockAllocator::kMaxCachedGranules + 1> ready;
  std::atomic<std::size_t> pending_granules{0}, pending_blocks{0}, ready_granules{0}, ready_blocks{0};

  // Single writer: a load + store, not a locked read-modify-write (plain moves on x86).
  // Release: stats() reads ready before pending with acquire, so it never sees a later
  // counter update without the earlier ones.
  static void add(std::atomic<std::size_t>& c, std::ptrdiff_t d) {
    c.store(c.load(std::memory_order_relaxed) + static_cast<std::size_t>(d), std::memory_order_release);
  }
};

struct CodeZone::Impl {
  ZoneOptions options;
  ZoneMode mode = ZoneMode::kDualMapped;
  DualBacking backing = DualBacking::kMemfd;
  std::vector<std::string> reasons;
  std::vector<std::string> advice;  // for the error when every mode is refused

  std::size_t page = 4096;
  std::size_t granule = 64;
  unsigned granule_shift = 6;
  std::size_t unit = 64;  // block size unit: granule, or page in kToggled mode
  std::size_t chunk = 256 << 10;

  std::uintptr_t base = 0;  // start of the reservation = start of code
  std::size_t code_bytes = 0, ro_bytes = 0, rw_bytes = 0, total = 0;
  std::uintptr_t write_base = 0;  // kDualMapped: write view of [code | ro data]
  int object_fd = -1;             // kDualMapped: the object, to map executable chunks of it
  std::ptrdiff_t delta = 0;
  std::uint64_t generation = 0;

  mutable detail::SpinLock mu;
  std::size_t free_batch = 64;
  std::size_t free_batch_bytes = 64 << 10;
  detail::BlockAllocator allocator;  // guarded by mu
  // Committed prefixes. Advanced under mu, after the memory is accessible; read without the
  // lock by write()/writable() (acquire pairs with the release store: a reader that sees the
  // new size also sees the protection change's effects ordered before it).
  std::atomic<std::size_t> code_committed{0};
  std::atomic<std::size_t> ro_committed{0};
  std::size_t rw_committed = 0;          // under mu
  std::size_t ro_used = 0, rw_used = 0;  // under mu
  std::vector<std::uint64_t> sealed;     // kToggled: one bit per code page that is r-x; under mu

  std::uint64_t id = 0;
  bool thread_caches = false;        // dual-mapped and RWX zones
  std::vector<ThreadCache*> caches;  // registered thread caches; under mu
  // Per granule: (granules | kAllocatedBit) at the start of each block allocated to a caller,
  // else 0. Lets free() validate a block without the lock. Lazily committed (mmap). Written
  // with relaxed stores: the allocating and freeing threads are ordered by however the caller
  // handed the block over. Two threads racing to free one block are not detected.
  std::atomic<std::uint32_t>* block_state = nullptr;
  std::size_t block_state_bytes = 0;

  explicit Impl(std::size_t granules) : allocator(granules) {}
  ~Impl() {
    if (block_state != nullptr) munmap(block_state, block_state_bytes);
    detail::close_fd(object_fd);
  }

  // Fills this cache's pending blocks with int3 and moves them to its ready lists (or, past
  // the per-size bound, back to the central allocator). Only the owning thread calls this.
  [[gnu::noinline]] void fill_pending(ThreadCache& c) {
    // Pending counts drop before ready counts rise: a concurrent stats() may see these blocks
    // as used for a moment, never as both pending and ready (which would underflow `used`).
    c.pending_granules.store(0, std::memory_order_release);
    c.pending_blocks.store(0, std::memory_order_release);
    std::vector<detail::BlockAllocator::Run> overflow;
    // Newest first into the LIFO ready lists, so that the block freed longest ago (the one least
    // likely to still sit in this core's instruction caches) is handed out first.
    for (auto it = c.pending.rbegin(); it != c.pending.rend(); ++it) {
      const detail::BlockAllocator::Run& r = *it;
      const std::uintptr_t off = std::uintptr_t{r.first} << granule_shift;
      // The write path of the mode: the RW view (dual) or the page itself (RWX).
      std::memset(reinterpret_cast<void*>((mode == ZoneMode::kDualMapped ? write_base : base) + off), kInt3,
                  std::size_t{r.n} << granule_shift);
      if (r.n <= detail::BlockAllocator::kMaxCachedGranules &&
          c.ready[r.n].size() < ThreadCache::kMaxReadyPerSize &&
          ((c.ready_granules.load(std::memory_order_relaxed) + r.n) << granule_shift) <=
              ThreadCache::kMaxReadyBytes) {
        c.ready[r.n].push_back(r.first);
        ThreadCache::add(c.ready_granules, r.n);
        ThreadCache::add(c.ready_blocks, 1);
      } else {
        overflow.push_back(r);
      }
    }
    c.pending.clear();
    if (!overflow.empty()) {
      std::lock_guard<detail::SpinLock> lock(mu);
      for (const detail::BlockAllocator::Run& r : overflow) allocator.release(r.first, r.n);
    }
  }

  // Fills and hands every block of the cache back to the central allocator. Owning thread
  // only. Counters drop before the central release so that stats() never counts a block
  // twice as free.
  void drain_cache(ThreadCache& c, bool unregister) {
    fill_pending(c);
    std::vector<detail::BlockAllocator::Run> all;
    for (std::size_t n = 1; n < c.ready.size(); ++n) {
      for (std::uint32_t first : c.ready[n]) all.push_back({first, static_cast<std::uint32_t>(n)});
      c.ready[n].clear();
    }
    c.ready_granules.store(0, std::memory_order_relaxed);
    c.ready_blocks.store(0, std::memory_order_relaxed);
    std::lock_guard<detail::SpinLock> lock(mu);
    for (const detail::BlockAllocator::Run& r : all) allocator.release(r.first, r.n);
    if (unregister) std::erase(caches, &c);
  }

  // Marks the run starting at granule `first` allocated to a caller and returns it as a block.
  CodeBlock hand_out(std::size_t first, std::size_t n) {
    block_state[first].store(static_cast<std::uint32_t>(n) | kAllocatedBit, std::memory_order_relaxed);
    return CodeBlock{reinterpret_cast<std::uint8_t*>(base + (first << granule_shift)), n << granule_shift};
  }

  // Pops the newest filled block of `n` granules from the calling thread's cache (which holds
  // one) and hands it out. Owning thread only: no lock, no atomic read-modify-write.
  CodeBlock take_ready(ThreadCache& c, std::size_t n) {
    const std::size_t first = c.ready[n].back();
    c.ready[n].pop_back();
    ThreadCache::add(c.ready_granules, -static_cast<std::ptrdiff_t>(n));
    ThreadCache::add(c.ready_blocks, -1);
    return hand_out(first, n);
  }

  // A run of `n` granules aligned to `align_g` granules from the central allocator, committed;
  // kNone when the bitmap has no room even after filling the zone's retired batch. Caller
  // holds mu. The commit (system calls) happens here, once per commit chunk.
  Result<std::size_t> take_central(std::size_t n, std::size_t align_g) {
    std::size_t got = allocator.allocate(n, align_g);
    if (got == detail::BlockAllocator::kNone && !allocator.retired().empty()) {
      JITKIT_TRY(fill_retired());
      got = allocator.allocate(n, align_g);
    }
    if (got == detail::BlockAllocator::kNone) return got;
    const std::size_t end = (got + n) << granule_shift;
    if (end > code_committed.load(std::memory_order_relaxed)) {
      if (Status s = commit_code(end); !s) {
        allocator.release(got, n);
        return std::move(s).error().context("code zone: allocate");
      }
    }
    return got;
  }

  [[gnu::cold, gnu::noinline]] Error exhausted(std::size_t bytes, std::size_t alignment) const {
    std::lock_guard<detail::SpinLock> lock(mu);
    return Error(ErrorCode::kOutOfMemory,
                 "code zone: allocate " + std::to_string(bytes) + " bytes (alignment " +
                     std::to_string(alignment) + "): no free run in the " + std::to_string(code_bytes) +
                     "-byte code area (used " + std::to_string(allocator.used_granules() << granule_shift) +
                     ", largest free " + std::to_string(allocator.largest_free_run() << granule_shift) +
                     "; blocks cached by other threads count as used)");
  }

  ThreadCache* this_thread_cache();
  ThreadCache* new_thread_cache();

  // The phases of CodeZone::create(): sizes from the options; the first mode (and backing)
  // that works, with a reason for each one skipped; the per-granule block table; and undoing
  // the reservation when any of them fails.
  void lay_out(const ZoneOptions& o, std::size_t page_size);
  Status enter_first_usable_mode();
  Status map_block_table();
  void release_mappings() noexcept;

  std::uintptr_t ro_base() const { return base + code_bytes; }
  std::uintptr_t rw_base() const { return ro_base() + ro_bytes; }
  bool forked() const { return g_fork_generation.load(std::memory_order_relaxed) != generation; }

  bool page_sealed(std::size_t p) const { return (sealed[p >> 6] >> (p & 63)) & 1; }
  void set_sealed(std::size_t p, bool v) {
    if (v) {
      sealed[p >> 6] |= std::uint64_t{1} << (p & 63);
    } else {
      sealed[p >> 6] &= ~(std::uint64_t{1} << (p & 63));
    }
  }

  // Makes code bytes [code_committed, to) usable: int3-filled, writable through the write path
  // and executable where code runs. The fill happens before the pages become executable, so no
  // thread can ever execute zero bytes left by the kernel.
  Status commit_code(std::size_t to) {
    const std::size_t from = code_committed.load(std::memory_order_relaxed);
    to = std::min(align_up(to, chunk), code_bytes);
    if (to <= from) return ok();
    const std::size_t len = to - from;
    switch (mode) {
      case ZoneMode::kDualMapped:
        JITKIT_TRY(detail::protect(write_base + from, len, Access::kReadWrite));
        std::memset(reinterpret_cast<void*>(write_base + from), kInt3, len);
        // Mapped anew rather than mprotect()ed: see detail::map_object.
        JITKIT_TRY(detail::map_object(object_fd, base + from, from, len, Access::kReadExecute));
        break;
      case ZoneMode::kToggled:
        // Not executable until make_executable(): W^X by construction.
        JITKIT_TRY(detail::protect(base + from, len, Access::kReadWrite));
        std::memset(reinterpret_cast<void*>(base + from), kInt3, len);
        break;
      case ZoneMode::kRwx:
        JITKIT_TRY(detail::protect(base + from, len, Access::kReadWriteExecute));
        std::memset(reinterpret_cast<void*>(base + from), kInt3, len);
        break;
    }
    code_committed.store(to, std::memory_order_release);
    return ok();
  }

  Status commit_ro(std::size_t to) {
    const std::size_t from = ro_committed.load(std::memory_order_relaxed);
    to = std::min(align_up(to, chunk), ro_bytes);
    if (to <= from) return ok();
    const std::size_t len = to - from;
    switch (mode) {
      case ZoneMode::kDualMapped:
        JITKIT_TRY(detail::protect(write_base + code_bytes + from, len, Access::kReadWrite));
        JITKIT_TRY(detail::protect(ro_base() + from, len, Access::kRead));
        break;
      case ZoneMode::kToggled:
        JITKIT_TRY(detail::protect(ro_base() + from, len, Access::kRead));
        break;
      case ZoneMode::kRwx:
        // Writes go to the same address in RWX mode, so read-only data is writable here too.
        JITKIT_TRY(detail::protect(ro_base() + from, len, Access::kReadWrite));
        break;
    }
    ro_committed.store(to, std::memory_order_release);
    return ok();
  }

  Status commit_rw(std::size_t to) {
    to = std::min(align_up(to, chunk), rw_bytes);
    if (to <= rw_committed) return ok();
    JITKIT_TRY(detail::protect(rw_base() + rw_committed, to - rw_committed, Access::kReadWrite));
    rw_committed = to;
    return ok();
  }

  // Dual mapping on one backing. On failure the reservation is restored and nothing leaks.
  // Creates the memory object of backing `b`.
  Result<int> create_object(DualBacking b, std::size_t bytes) const {
    switch (b) {
      case DualBacking::kMemfd:
        return detail::create_memfd(options.name, bytes);
      case DualBacking::kPosixShm:
        return detail::create_posix_shm(options.name, bytes);
      case DualBacking::kTmpFile:
        return detail::create_tmp_file(options.tmp_dir, bytes);
    }
    return Error(ErrorCode::kUnsupported, "unknown backing");
  }

  // Where the object of backing `b` lives, for messages.
  std::string object_home(DualBacking b) const {
    switch (b) {
      case DualBacking::kMemfd:
        return "the memfd";
      case DualBacking::kPosixShm:
        return "/dev/shm";
      case DualBacking::kTmpFile:
        return detail::tmp_dir_for(options.tmp_dir);
    }
    return "?";
  }

  // Dual mapping on one backing. On failure the reservation is restored and nothing leaks.
  Status setup_dual(DualBacking b) {
    const std::size_t shared_bytes = code_bytes + ro_bytes;
    Result<int> created = create_object(b, shared_bytes);
    if (!created) {
      advise(b == DualBacking::kMemfd
                 ? "allow memfd_create (a seccomp filter refuses it, or the kernel lacks it)"
             : b == DualBacking::kPosixShm ? "mount a writable tmpfs on /dev/shm"
                                           : "make TMPDIR (or ZoneOptions::tmp_dir) a writable directory");
      return std::move(created).error();
    }
    const int fd = *created;
    auto fail = [&](Error e) -> Status {
      if (write_base != 0) detail::release_range(write_base, shared_bytes);
      write_base = 0;
      delta = 0;
      object_fd = -1;
      code_committed.store(0, std::memory_order_relaxed);
      if (detail::on_noexec_mount(fd)) {
        e = Error(e.code(), e.message() + " [" + object_home(b) + " is mounted noexec]");
        advise(b == DualBacking::kPosixShm
                   ? "remount /dev/shm without noexec"
                   : "mount " + object_home(b) +
                         " without noexec, or point TMPDIR (or ZoneOptions::tmp_dir) at "
                         "a directory on a mount without noexec");
      } else {
        advise("allow executable shared mappings of " + object_home(b) + " (SELinux: execute on its files)");
      }
      detail::close_fd(fd);
      if (auto r = detail::reset_to_reservation(base, shared_bytes); !r) return std::move(r).error();
      return e;
    };
    // The RX view replaces the private reservation at the same addresses, so placement holds.
    if (auto r = detail::map_shared(fd, base, shared_bytes); !r) return fail(std::move(r).error());
    auto w = detail::map_shared(fd, 0, shared_bytes);
    if (!w) return fail(std::move(w).error());
    write_base = *w;
    delta = static_cast<std::ptrdiff_t>(write_base - base);
    object_fd = fd;
    mode = ZoneMode::kDualMapped;
    // A fork() child must not inherit the write view: it shares the object with the parent
    // (MAP_SHARED), so a child writing through it would change the parent's running code.
    if (auto r = detail::dont_fork(write_base, shared_bytes); !r) return fail(std::move(r).error());
    // Committing the first chunk proves that the object may be mapped executable: a noexec
    // /dev/shm or $TMPDIR, or a policy against executable shared memory, refuses it here.
    if (auto r = commit_code(chunk); !r) return fail(std::move(r).error());
    backing = b;
    return ok();
  }

  // Records what an administrator could change so that a refused step works; create() lists
  // these when no mode is left.
  void advise(const std::string& what) {
    if (std::find(advice.begin(), advice.end(), what) == advice.end()) advice.push_back(what);
  }

  Status setup_toggled() {
    mode = ZoneMode::kToggled;
    if (auto r = commit_code(chunk); !r) return r;
    // Probe that pages may become executable at all (SELinux execmem and PaX MPROTECT refuse
    // PROT_EXEC on anonymous memory) before promising this mode.
    if (auto r = detail::protect(base, page, Access::kReadExecute); !r) {
      code_committed.store(0, std::memory_order_relaxed);
      (void)detail::protect(base, chunk, Access::kNone);
      return std::move(r).error();
    }
    JITKIT_TRY(detail::protect(base, page, Access::kReadWrite));
    sealed.assign(code_bytes / page / 64 + 1, 0);
    return ok();
  }

  Status setup_rwx() {
    mode = ZoneMode::kRwx;
    return commit_code(chunk);
  }

  // Fills every retired block with int3 and makes it allocatable. Caller holds mu.
  // One burst of stores into recently executed code costs one self-modifying-code pipeline
  // clear on the writing core instead of one per block (measured in bench/code).
  Status fill_retired() {
    for (const detail::BlockAllocator::Run& r : allocator.retired()) {
      const std::uintptr_t off = std::uintptr_t{r.first} << granule_shift;
      const std::size_t bytes = std::size_t{r.n} << granule_shift;
      switch (mode) {
        case ZoneMode::kDualMapped:
          std::memset(reinterpret_cast<void*>(write_base + off), kInt3, bytes);
          break;
        case ZoneMode::kRwx:
          std::memset(reinterpret_cast<void*>(base + off), kInt3, bytes);
          break;
        case ZoneMode::kToggled: {
          // Blocks own whole pages here, and no thread executes a freed block any more, so
          // re-protecting its pages (r-x -> rw-) cannot fault anyone.
          const std::size_t pfirst = off / page, pend = (off + bytes) / page;
          bool any_sealed = false;
          for (std::size_t p = pfirst; p < pend; ++p) any_sealed |= page_sealed(p);
          if (any_sealed) {
            JITKIT_TRY(detail::protect(base + off, bytes, Access::kReadWrite));
            for (std::size_t p = pfirst; p < pend; ++p) set_sealed(p, false);
          }
          std::memset(reinterpret_cast<void*>(base + off), kInt3, bytes);
          break;
        }
      }
    }
    allocator.release_retired();
    return ok();
  }

  // free() without thread caches (kToggled): the zone's batch, under the lock.
  [[gnu::noinline]] Status free_central(std::size_t first, std::size_t n) {
    std::lock_guard<detail::SpinLock> lock(mu);
    allocator.retire(first, n);
    if (allocator.retired().size() >= free_batch ||
        (allocator.retired_granules() << granule_shift) >= free_batch_bytes) {
      return fill_retired();
    }
    return ok();
  }

  // Which area an executable-side address range [addr, addr + n) lies in.
  enum class Area { kNone, kCode, kRoData };
  Area locate(std::uintptr_t addr, std::size_t n) const {
    if (addr >= base && addr < base + code_bytes) {
      const std::size_t off = addr - base;
      const std::size_t limit = code_committed.load(std::memory_order_acquire);
      return (off <= limit && n <= limit - off) ? Area::kCode : Area::kNone;
    }
    if (addr >= ro_base() && addr < ro_base() + ro_bytes) {
      const std::size_t off = addr - ro_base();
      const std::size_t limit = ro_committed.load(std::memory_order_acquire);
      return (off <= limit && n <= limit - off) ? Area::kRoData : Area::kNone;
    }
    return Area::kNone;
  }
};

namespace {

// A thread's caches, one slot per zone it used recently (a few zones per thread is the norm;
// slots are reused round-robin beyond that). Trivially constructible and initial-exec TLS, so
// that the lookup on the fast path is a few loads relative to %fs, with no TLS guard and no
// __tls_get_addr call (the library is built position-independent).
struct ThreadCacheSlots {
  static constexpr int kSlots = 4;
  std::uint64_t ids[kSlots];
  ThreadCache* caches[kSlots];
  int next_victim;
};

[[gnu::tls_model("initial-exec")]] thread_local ThreadCacheSlots t_cache_slots;  // zero-initialized

void release_thread_cache(ThreadCache* c) {
  std::lock_guard<std::mutex> registry(g_cache_registry_mu);
  // In a fork() child the zone's lock may be held by a thread that does not exist here, and
  // the write view is gone: leave an inherited zone alone.
  if (c->zone != nullptr && !c->zone->forked()) c->zone->drain_cache(*c, /*unregister=*/true);
  delete c;
}

// On thread exit every cache is filled and handed back to its zone, if the zone still exists.
// Constructed (and its destructor registered) when the thread creates its first cache.
struct ThreadCacheReaper {
  bool armed = false;
  ~ThreadCacheReaper() {
    for (int i = 0; i < ThreadCacheSlots::kSlots; ++i) {
      if (t_cache_slots.caches[i] != nullptr) release_thread_cache(t_cache_slots.caches[i]);
      t_cache_slots.caches[i] = nullptr;
      t_cache_slots.ids[i] = 0;
    }
  }
};
thread_local ThreadCacheReaper t_cache_reaper;

}  // namespace

inline ThreadCache* CodeZone::Impl::this_thread_cache() {
  for (int i = 0; i < ThreadCacheSlots::kSlots; ++i) {
    if (t_cache_slots.ids[i] == id) return t_cache_slots.caches[i];
  }
  return new_thread_cache();
}

// Slow path of this_thread_cache(): a new cache for this (thread, zone) pair.
[[gnu::noinline]] ThreadCache* CodeZone::Impl::new_thread_cache() {
  ThreadCacheSlots& slots = t_cache_slots;
  t_cache_reaper.armed = true;  // constructs the reaper: the thread now has caches to hand back
  const int victim = slots.next_victim;
  slots.next_victim = (victim + 1) % ThreadCacheSlots::kSlots;
  if (slots.caches[victim] != nullptr) {
    release_thread_cache(slots.caches[victim]);
    slots.caches[victim] = nullptr;
    slots.ids[victim] = 0;
  }
  auto* c = new ThreadCache;
  c->zone = this;
  c->pending.reserve(free_batch);
  {
    std::lock_guard<std::mutex> registry(g_cache_registry_mu);
    std::lock_guard<detail::SpinLock> lock(mu);
    caches.push_back(c);
  }
  slots.ids[victim] = id;
  slots.caches[victim] = c;
  return c;
}

CodeZone::CodeZone(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}

CodeZone::~CodeZone() {
  Impl& z = *impl_;
  {
    // Threads still holding caches of this zone drop them on exit without touching it.
    std::lock_guard<std::mutex> registry(g_cache_registry_mu);
    for (ThreadCache* c : z.caches) c->zone = nullptr;
  }
  // In a fork() child the write view was never inherited; that address range may now hold an
  // unrelated mapping of the child, so it must not be unmapped.
  if (z.write_base != 0 && !z.forked()) detail::release_range(z.write_base, z.code_bytes + z.ro_bytes);
  detail::release_range(z.base, z.total);
}

namespace {

// Options that no mode can satisfy, rejected before anything is reserved.
Status check_options(const ZoneOptions& o) {
  if (o.reserve_bytes == 0) return Error(ErrorCode::kInvalidArgument, "code zone: reserve_bytes is 0");
  if (!is_power_of_two(o.granularity) || o.granularity < 16 || o.granularity > 4096) {
    return Error(ErrorCode::kInvalidArgument, "code zone: granularity " + std::to_string(o.granularity) +
                                                  " is not a power of two in [16, 4096]");
  }
  if (o.force_mode == ZoneMode::kRwx && !o.allow_rwx) {
    return Error(ErrorCode::kInvalidArgument, "code zone: force_mode kRwx requires allow_rwx = true");
  }
  const std::size_t code_bytes = align_up(o.reserve_bytes, platform_facts().page_size);
  if (code_bytes / o.granularity > std::size_t{0xFFFFFFFF}) {
    return Error(ErrorCode::kInvalidArgument, "code zone: reserve_bytes too large for the granularity");
  }
  return ok();
}

// The modes create() tries, in order.
std::vector<ZoneMode> modes_to_try(const ZoneOptions& o) {
  if (o.force_mode) return {*o.force_mode};
  std::vector<ZoneMode> order = {ZoneMode::kDualMapped, ZoneMode::kToggled};
  if (o.allow_rwx) order.push_back(ZoneMode::kRwx);
  return order;
}

}  // namespace

void CodeZone::Impl::lay_out(const ZoneOptions& o, std::size_t page_size) {
  options = o;
  page = page_size;
  granule = o.granularity;
  granule_shift = static_cast<unsigned>(std::countr_zero(o.granularity));
  chunk = align_up(std::max(o.commit_chunk, page), page);
  code_bytes = align_up(o.reserve_bytes, page);
  ro_bytes = align_up(o.ro_data_bytes, page);
  rw_bytes = align_up(o.rw_data_bytes, page);
  total = code_bytes + ro_bytes + rw_bytes;
  free_batch = std::max<std::size_t>(o.free_batch, 1);
  generation = g_fork_generation.load(std::memory_order_relaxed);
}

Status CodeZone::Impl::enter_first_usable_mode() {
  ErrorCode last_code = ErrorCode::kUnsupported;
  for (ZoneMode m : modes_to_try(options)) {
    if (m == ZoneMode::kDualMapped) {
      for (DualBacking b : {DualBacking::kMemfd, DualBacking::kPosixShm, DualBacking::kTmpFile}) {
        Status s = setup_dual(b);
        if (s) return ok();
        last_code = s.error().code();
        reasons.push_back("dual mapping on " + std::string(backing_name(b)) +
                          " failed: " + s.error().message());
      }
      continue;
    }
    Status s = m == ZoneMode::kToggled ? setup_toggled() : setup_rwx();
    if (s) return ok();
    last_code = s.error().code();
    reasons.push_back(std::string(mode_name(m)) + " mode failed: " + s.error().message());
    advise(m == ZoneMode::kToggled
               ? "allow executable anonymous memory (SELinux: turn off the deny_execmem boolean or grant "
                 "execmem; PaX: clear MPROTECT for this program)"
               : "allow writable and executable memory (SELinux execmem, PaX MPROTECT), or use dual mapping "
                 "instead of RWX");
  }
  std::string msg = "code zone: no usable mode";
  for (const std::string& r : reasons) msg += "; " + r;
  if (!options.allow_rwx && !options.force_mode) msg += "; RWX not allowed (ZoneOptions::allow_rwx)";
  if (!advice.empty()) {
    msg += ". An administrator can";
    for (std::size_t i = 0; i < advice.size(); ++i) msg += (i == 0 ? " " : "; or ") + advice[i];
  }
  return Error(last_code, std::move(msg));
}

Status CodeZone::Impl::map_block_table() {
  block_state_bytes = align_up((code_bytes / granule) * sizeof(std::uint32_t), page);
  void* states = mmap(nullptr, block_state_bytes, PROT_READ | PROT_WRITE,
                      MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
  if (states == MAP_FAILED) return Error::from_errno("code zone: block table", errno);
  block_state = static_cast<std::atomic<std::uint32_t>*>(states);
  return ok();
}

void CodeZone::Impl::release_mappings() noexcept {
  if (write_base != 0) detail::release_range(write_base, code_bytes + ro_bytes);
  write_base = 0;
  detail::release_range(base, total);
  base = 0;
}

Result<std::unique_ptr<CodeZone>> CodeZone::create(const ZoneOptions& o) {
  JITKIT_TRY(check_options(o));
  std::call_once(g_atfork_once,
                 [] { pthread_atfork(before_fork, after_fork_in_parent, after_fork_in_child); });
  const std::size_t page = platform_facts().page_size;
  auto impl = std::make_unique<Impl>(align_up(o.reserve_bytes, page) / o.granularity);
  Impl& z = *impl;
  z.lay_out(o, page);
  JITKIT_TRY(z.base, detail::reserve_range(z.total, o.near, o.near_span));
  Status ready = z.enter_first_usable_mode();
  if (ready) ready = z.map_block_table();
  if (!ready) {
    z.release_mappings();
    return std::move(ready).error();
  }
  z.unit = z.mode == ZoneMode::kToggled ? std::max(z.granule, page) : z.granule;
  z.id = g_next_zone_id.fetch_add(1, std::memory_order_relaxed);
  // Toggled zones change protections on free, a system call that dwarfs any lock: they use the
  // central allocator only.
  z.thread_caches = z.mode != ZoneMode::kToggled;
  return std::unique_ptr<CodeZone>(new CodeZone(std::move(impl)));
}

ZoneMode CodeZone::mode() const noexcept { return impl_->mode; }
DualBacking CodeZone::backing() const noexcept { return impl_->backing; }
const std::vector<std::string>& CodeZone::fallback_reasons() const noexcept { return impl_->reasons; }
std::uintptr_t CodeZone::begin() const noexcept { return impl_->base; }
std::uintptr_t CodeZone::end() const noexcept { return impl_->base + impl_->code_bytes; }
std::uintptr_t CodeZone::zone_end() const noexcept { return impl_->base + impl_->total; }
bool CodeZone::contains(const void* addr) const noexcept {
  const auto a = reinterpret_cast<std::uintptr_t>(addr);
  return a >= impl_->base && a < impl_->base + impl_->total;
}
std::ptrdiff_t CodeZone::write_view_delta() const noexcept { return impl_->delta; }
std::size_t CodeZone::granularity() const noexcept { return impl_->granule; }

namespace {

// allocate() when this thread's cache has no block of the size: argument checks, the central
// allocator, commit, and the error report. Out of line so that the fast path stays small.
[[gnu::noinline]] Result<CodeBlock> allocate_slow(CodeZone::Impl& z, std::size_t size, std::size_t alignment);

}  // namespace

Result<CodeBlock> CodeZone::allocate(std::size_t size, std::size_t alignment) {
  Impl& z = *impl_;
  // Fast path: a filled block of this size from this thread's cache. No lock, no atomic
  // read-modify-write. (forked() is checked first: a child must not touch its caches either.)
  if (z.thread_caches && alignment <= z.granule && (alignment == 0 || is_power_of_two(alignment)) &&
      size - 1 < (detail::BlockAllocator::kMaxCachedGranules << z.granule_shift) && !z.forked()) {
    const std::size_t n = align_up(size, z.granule) >> z.granule_shift;
    ThreadCache& cache = *z.this_thread_cache();
    if (!cache.ready[n].empty()) return z.take_ready(cache, n);
  }
  return allocate_slow(z, size, alignment);
}

namespace {

Result<CodeBlock> allocate_slow(CodeZone::Impl& z, std::size_t size, std::size_t alignment) {
  if (z.forked()) return forked_error("allocate");
  if (alignment == 0) alignment = z.granule;
  if (size == 0 || size > z.code_bytes || !is_power_of_two(alignment) || alignment > z.page) {
    return bad_allocate(size, alignment, z.code_bytes);
  }
  const std::size_t n = align_up(size, z.unit) >> z.granule_shift;
  const std::size_t align_g = std::max(alignment, z.unit) >> z.granule_shift;
  ThreadCache* cache = z.thread_caches ? z.this_thread_cache() : nullptr;
  if (cache != nullptr && n <= detail::BlockAllocator::kMaxCachedGranules && !cache->ready[n].empty() &&
      is_aligned(cache->ready[n].back(), align_g)) {
    return z.take_ready(*cache, n);  // a cached block that happens to satisfy a stronger alignment
  }
  std::size_t first;
  {
    std::lock_guard<detail::SpinLock> lock(z.mu);
    JITKIT_TRY(first, z.take_central(n, align_g));
  }
  if (first == detail::BlockAllocator::kNone && cache != nullptr) {
    // The blocks this thread keeps for itself may be exactly what is missing.
    z.drain_cache(*cache, /*unregister=*/false);
    std::lock_guard<detail::SpinLock> lock(z.mu);
    JITKIT_TRY(first, z.take_central(n, align_g));
  }
  if (first == detail::BlockAllocator::kNone) return z.exhausted(n << z.granule_shift, alignment);
  return z.hand_out(first, n);
}

}  // namespace

Status CodeZone::free(CodeBlock block) {
  Impl& z = *impl_;
  if (z.forked()) return forked_error("free");
  const auto addr = reinterpret_cast<std::uintptr_t>(block.exec);
  const std::size_t off = addr - z.base;
  auto bad = [&](const char* why) { return bad_free(addr, block.size, why); };
  if (addr < z.base || off >= z.code_bytes || block.size == 0) return bad("not inside this zone's code area");
  if (!is_aligned(off, z.unit)) return bad("not the start of a block");
  const std::size_t bytes = align_up(block.size, z.unit);
  const std::size_t first = off >> z.granule_shift;
  const std::size_t n = bytes >> z.granule_shift;
  if (z.block_state[first].load(std::memory_order_relaxed) !=
      (static_cast<std::uint32_t>(n) | kAllocatedBit)) {
    return bad("not a block allocated by this zone (double free or wrong size?)");
  }
  z.block_state[first].store(0, std::memory_order_relaxed);
  if (z.thread_caches) {
    // Fast path: into this thread's batch, filled with int3 when the batch is full.
    ThreadCache& c = *z.this_thread_cache();
    c.pending.push_back({static_cast<std::uint32_t>(first), static_cast<std::uint32_t>(n)});
    ThreadCache::add(c.pending_granules, static_cast<std::ptrdiff_t>(n));
    ThreadCache::add(c.pending_blocks, 1);
    if (c.pending.size() >= z.free_batch ||
        (c.pending_granules.load(std::memory_order_relaxed) << z.granule_shift) >= z.free_batch_bytes) {
      z.fill_pending(c);
    }
    return ok();
  }
  return z.free_central(first, n);
}

Status CodeZone::flush_freed() {
  Impl& z = *impl_;
  if (z.forked()) return forked_error("flush_freed");
  if (z.thread_caches) z.fill_pending(*z.this_thread_cache());
  std::lock_guard<detail::SpinLock> lock(z.mu);
  return z.fill_retired();
}

Result<DataBlock> CodeZone::allocate_data(std::size_t size, std::size_t alignment, DataAccess access) {
  Impl& z = *impl_;
  if (z.forked()) return forked_error("allocate_data");
  if (alignment == 0) alignment = 8;
  if (size == 0 || !is_power_of_two(alignment) || alignment > z.page) {
    return Error(ErrorCode::kInvalidArgument,
                 "code zone: allocate_data(" + std::to_string(size) + ", alignment " +
                     std::to_string(alignment) +
                     "): size must be > 0 and alignment a power of two <= page size");
  }
  const bool ro = access == DataAccess::kReadOnly;
  std::lock_guard<detail::SpinLock> lock(z.mu);
  std::size_t& used = ro ? z.ro_used : z.rw_used;
  const std::size_t area = ro ? z.ro_bytes : z.rw_bytes;
  const std::size_t off = align_up(used, alignment);
  if (off > area || size > area - off) {
    return Error(ErrorCode::kOutOfMemory,
                 std::string("code zone: allocate_data: the ") + (ro ? "read-only" : "read-write") +
                     " data area (" + std::to_string(area) + " bytes, ZoneOptions::" + (ro ? "ro" : "rw") +
                     "_data_bytes) cannot hold " + std::to_string(size) + " more bytes");
  }
  if (ro) {
    JITKIT_TRY(z.commit_ro(off + size));
  } else {
    JITKIT_TRY(z.commit_rw(off + size));
  }
  used = off + size;
  return DataBlock{reinterpret_cast<std::uint8_t*>((ro ? z.ro_base() : z.rw_base()) + off), size, access};
}

Status CodeZone::write(std::uint8_t* exec_dst, const void* src, std::size_t n) {
  Impl& z = *impl_;
  if (z.forked()) return forked_error("write");
  if (n == 0) return ok();
  const auto addr = reinterpret_cast<std::uintptr_t>(exec_dst);
  const Impl::Area area = z.locate(addr, n);
  if (area == Impl::Area::kNone) {
    return Error(ErrorCode::kOutOfRange, "code zone: write of " + std::to_string(n) + " bytes at " +
                                             hex(addr) +
                                             ": not inside the zone's committed code or read-only data");
  }
  switch (z.mode) {
    case ZoneMode::kDualMapped:
      // The RW view: the RX pages at exec_dst are never writable.
      std::memcpy(reinterpret_cast<void*>(addr + z.delta), src, n);
      return ok();
    case ZoneMode::kRwx:
      std::memcpy(exec_dst, src, n);
      return ok();
    case ZoneMode::kToggled:
      break;
  }
  std::lock_guard<detail::SpinLock> lock(z.mu);
  if (area == Impl::Area::kCode) {
    const std::size_t off = addr - z.base;
    for (std::size_t p = off / z.page; p <= (off + n - 1) / z.page; ++p) {
      if (z.page_sealed(p)) {
        return Error(
            ErrorCode::kInvalidState,
            "code zone: write at " + hex(addr) +
                ": the block is already executable and this zone is in toggled mode, where live code is "
                "never re-protected (use a dual-mapped zone to patch live code)");
      }
    }
    std::memcpy(exec_dst, src, n);
    return ok();
  }
  // Read-only data in toggled mode: r-- -> rw- -> r--. Readers never fault on either change
  // and the pages are never executable, so this is safe while code reads the data.
  const std::uintptr_t pb = align_down(addr, z.page);
  const std::size_t plen = align_up(addr + n, z.page) - pb;
  JITKIT_TRY(detail::protect(pb, plen, Access::kReadWrite));
  std::memcpy(exec_dst, src, n);
  return detail::protect(pb, plen, Access::kRead);
}

std::uint8_t* CodeZone::writable(std::uint8_t* exec_addr) noexcept {
  Impl& z = *impl_;
  if (z.mode == ZoneMode::kToggled || z.forked()) return nullptr;
  if (z.locate(reinterpret_cast<std::uintptr_t>(exec_addr), 1) == Impl::Area::kNone) return nullptr;
  return exec_addr + z.delta;
}

Status CodeZone::make_executable(CodeBlock block, Visibility visibility) {
  Impl& z = *impl_;
  if (z.forked()) return forked_error("make_executable");
  const auto addr = reinterpret_cast<std::uintptr_t>(block.exec);
  if (block.size == 0 || z.locate(addr, block.size) != Impl::Area::kCode) {
    return Error(ErrorCode::kOutOfRange, "code zone: make_executable(" + hex(addr) + ", " +
                                             std::to_string(block.size) +
                                             " bytes): not inside the committed code");
  }
  if (z.mode == ZoneMode::kToggled) {
    const std::size_t off = addr - z.base;
    const std::size_t pfirst = off / z.page;
    const std::size_t pend = align_up(off + block.size, z.page) / z.page;
    std::lock_guard<detail::SpinLock> lock(z.mu);
    bool all_sealed = true;
    for (std::size_t p = pfirst; p < pend; ++p) all_sealed &= z.page_sealed(p);
    if (!all_sealed) {
      // rw- -> r-x: the block's pages hold no other block (page-granular allocation), so
      // nothing else is being written there.
      JITKIT_TRY(detail::protect(z.base + pfirst * z.page, (pend - pfirst) * z.page, Access::kReadExecute));
      for (std::size_t p = pfirst; p < pend; ++p) z.set_sealed(p, true);
    }
  }
  flush_icache(block.exec, block.size);
  if (visibility == Visibility::kOtherThreads) {
    // Other cores may hold instruction bytes fetched before the write (a reused address, or a
    // patched site): make each of them serialize before running anything of this process.
    JITKIT_TRY(serialize_all_cores());
  }
  return ok();
}

ZoneStats CodeZone::stats() const {
  const Impl& z = *impl_;
  std::lock_guard<detail::SpinLock> lock(z.mu);
  ZoneStats s;
  s.reserved_bytes = z.code_bytes;
  s.committed_bytes = z.code_committed.load(std::memory_order_relaxed);
  s.used_bytes = z.allocator.used_granules() << z.granule_shift;
  s.largest_free_block = z.allocator.largest_free_run() << z.granule_shift;
  s.block_count = z.allocator.block_count();
  s.pending_free_bytes = z.allocator.retired_granules() << z.granule_shift;
  // Blocks in thread caches are allocated for the central allocator, free for the caller.
  // The owners update their counters without the lock, so this is a snapshot; the clamps keep
  // a transient mismatch from wrapping around.
  for (const ThreadCache* c : z.caches) {
    const std::size_t ready = c->ready_granules.load(std::memory_order_acquire) << z.granule_shift;
    const std::size_t ready_blocks = c->ready_blocks.load(std::memory_order_acquire);
    const std::size_t pending = c->pending_granules.load(std::memory_order_acquire) << z.granule_shift;
    const std::size_t pending_blocks = c->pending_blocks.load(std::memory_order_acquire);
    s.used_bytes -= std::min(s.used_bytes, pending + ready);
    s.pending_free_bytes += pending;
    s.block_count -= std::min(s.block_count, pending_blocks + ready_blocks);
  }
  s.free_bytes = s.reserved_bytes - s.used_bytes - s.pending_free_bytes;
  s.ro_data_reserved = z.ro_bytes;
  s.ro_data_used = z.ro_used;
  s.rw_data_reserved = z.rw_bytes;
  s.rw_data_used = z.rw_used;
  return s;
}

std::string_view mode_name(ZoneMode mode) noexcept {
  switch (mode) {
    case ZoneMode::kDualMapped:
      return "dual-mapped";
    case ZoneMode::kToggled:
      return "toggled";
    case ZoneMode::kRwx:
      return "rwx";
  }
  return "?";
}

std::string_view backing_name(DualBacking backing) noexcept {
  switch (backing) {
    case DualBacking::kMemfd:
      return "memfd";
    case DualBacking::kPosixShm:
      return "posix-shm";
    case DualBacking::kTmpFile:
      return "tmpfile";
  }
  return "?";
}

}  // namespace jitkit::code
