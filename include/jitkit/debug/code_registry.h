// jitkit/debug/code_registry.h — naming generated code for gdb and perf.
//
// Generated code is anonymous: gdb shows `?? ()` frames and cannot unwind through them, perf
// attributes samples to "//anon" or, under dual mapping, to "memfd:jitkit-code (deleted)".
// The CodeRegistry gives that code names and unwind rules, and hands them to every enabled sink:
//
//   gdb   The GDB JIT interface (on by default; JITKIT_GDB_JIT=0 turns it off). A batch of
//         symbols goes into ONE in-memory ELF object (symbols, one .text section per contiguous
//         address range, and .debug_frame CFI describing the frames) — its own, or for small
//         batches one shared with other small batches (Grouping) — linked into
//         `__jit_debug_descriptor`, after which `__jit_debug_register_code()` is called; gdb
//         has a breakpoint there and reads the object. One ELF object per function makes gdb
//         quadratic (it re-processes its objects on each registration), hence batches.
//   perf  /tmp/perf-<pid>.map (opt-in: JITKIT_PERF_MAP=1 or enable_perf_map(), perf.h) and the
//         jitdump file jit-<pid>.dump (opt-in: JITKIT_JITDUMP=1 or enable_jitdump()), for
//         `perf record -k mono` + `perf inject --jit` + `perf report`.
//
// The registry knows only (name, address, size, frame shape): this header does not depend on the
// assembler or the code zones, so anything that puts code in memory can use it
// (installed_code.h adds install::InstalledCode, frame detection and listings).
//
//   jitkit::debug::SymbolBatch batch;
//   batch.add_function("add_one", block.exec, 12, jitkit::debug::FrameInfo::frame_pointer(1, 4, {10}));
//   batch.add_function("leaf", other.exec, 6, jitkit::debug::FrameInfo::leaf());
//   JITKIT_TRY(jitkit::debug::Registration reg, jitkit::debug::CodeRegistry::global().add(std::move(batch)));
//   ...                           // gdb, perf see the names while `reg` lives
//   reg.reset();                  // unregisters the batch (call before freeing the code)
//
// Cost: building an ELF object is linear in its symbols (symbols, FDEs, strings); each function
// also costs one hash-table entry (for remove_function). Small batches are merged into shared
// objects (Grouping::kMerge, the default) so that registering one function at a time does not
// leave gdb with one object per function; each symbol is then rebuilt O(log 4096) times
// (amortized). Nothing is quadratic in the number of registered functions. Removing ONE
// function rebuilds the object holding it (O(its symbols): at most 4096 in the merge pool, the
// whole batch for a big kOwnObject batch); dropping a kOwnObject Registration is O(1).
//
// Thread safety: every member of CodeRegistry may be called from any thread (one internal mutex
// serializes the GDB descriptor protocol, which permits one action at a time).
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "jitkit/base/result.h"

namespace jitkit::debug {

// Where the Canonical Frame Address (the caller's rsp before its `call`) is, from some offset
// of a function on, and whether the caller's rbp is saved at CFA-16. The return address is always
// at CFA-8 (x86-64 `call`).
struct UnwindRow {
  enum class Base : std::uint8_t { kRsp, kRbp };
  std::uint32_t code_offset = 0;  // from the function start; rows are sorted by it
  Base base = Base::kRsp;
  std::int32_t cfa_offset = 8;    // CFA = base + cfa_offset
  bool rbp_saved = false;         // caller's rbp at CFA-16 (else rbp still holds it)
};

// How to unwind one function: a list of UnwindRows (DWARF CFI is generated from it).
struct FrameInfo {
  // No CFI: gdb falls back to its own prologue analysis.
  bool has_unwind = false;
  std::vector<UnwindRow> rows;

  // No unwind information.
  static FrameInfo none() { return {}; }
  // Leaf code that never moves rsp: CFA = rsp+8 everywhere.
  static FrameInfo leaf();
  // Frame-pointer convention: `push rbp` ends at `push_end`, `mov rbp, rsp` ends at `mov_end`
  // (1 and 4 for the usual encodings at offset 0). `frame_gone` lists the offsets right after
  // each `pop rbp` / `leave` (typically the offset of each `ret`), where CFA is rsp+8 again;
  // the row after it (if any code follows a `ret`) returns to the established frame.
  static FrameInfo frame_pointer(std::uint32_t push_end = 1, std::uint32_t mov_end = 4,
                                 std::vector<std::uint32_t> frame_gone = {});
};

// What kind of address a symbol names.
enum class SymbolKind : std::uint8_t {
  kFunction,  // code with a size and (optionally) unwind rules: gdb `break name`, perf samples
  kLabel,     // a point inside code (size 0): rseq start/abort labels, IC entry points
  kData,      // data (e.g. an rseq critical-section descriptor): gdb `p &__rseq_cs_x`, `x/4gx`
};

struct Symbol {
  std::string name;
  std::uintptr_t address = 0;
  std::size_t size = 0;
  SymbolKind kind = SymbolKind::kFunction;
  // The memory this code owns, >= size (e.g. its CodeBlock, rounded to the zone granularity).
  // Adjacent extents share one ELF section; 0 means `size`. Never overlapping other code.
  std::size_t extent = 0;
  FrameInfo frame;
};

// The symbols registered together: one ELF object for gdb, one flush of the perf files.
class SymbolBatch {
 public:
  SymbolBatch() = default;

  void add_function(std::string name, const void* address, std::size_t size,
                    FrameInfo frame = {}, std::size_t extent = 0);
  void add_label(std::string name, const void* address);
  void add_data(std::string name, const void* address, std::size_t size);
  void add(Symbol symbol) { symbols_.push_back(std::move(symbol)); }
  void reserve(std::size_t n) { symbols_.reserve(n); }

  // Names a restartable-sequence critical section that code emitted at run time: the
  // descriptor (`struct rseq_cs`, 32 bytes) as data symbol `__rseq_cs_<name>`, and its start,
  // post-commit and abort addresses as labels `__rseq_start_<name>`, `__rseq_commit_<name>`
  // (start + post_commit_offset) and `__rseq_abort_<name>`. The descriptor's fields are read
  // from memory (it must be fully written), so what gdb is told matches what the kernel uses.
  // Fails with kInvalidArgument when the descriptor is not a valid version-0 rseq_cs.
  [[nodiscard]] Status add_rseq_section(std::string_view name, const void* descriptor);

  std::span<const Symbol> symbols() const { return symbols_; }
  std::size_t size() const { return symbols_.size(); }
  bool empty() const { return symbols_.empty(); }

 private:
  std::vector<Symbol> symbols_;
};

class CodeRegistry;

// A registered batch. Movable; destroying it (or reset()) withdraws what is left of the batch:
// at once from jitkit (symbolize) and from gdb when the batch has its own object; in a shared
// object the names stay until that object's next rebuild, which happens before any new code is
// registered over them (see Grouping). perf map / jitdump entries are never withdrawn (perf has
// no record for that: a later registration at the same address supersedes them).
class Registration {
 public:
  Registration() = default;
  Registration(Registration&& other) noexcept;
  Registration& operator=(Registration&& other) noexcept;
  Registration(const Registration&) = delete;
  Registration& operator=(const Registration&) = delete;
  ~Registration();

  void reset();
  bool active() const { return registry_ != nullptr; }
  // The batch's number (stable, for logs).
  std::uint64_t id() const { return id_; }

 private:
  friend class CodeRegistry;
  Registration(CodeRegistry* registry, std::uint64_t id) : registry_(registry), id_(id) {}
  CodeRegistry* registry_ = nullptr;
  std::uint64_t id_ = 0;
};

// How a batch is grouped into gdb objects.
enum class Grouping : std::uint8_t {
  // Small batches (fewer than kMaxMergedSymbols symbols) are merged with other small batches
  // into shared objects, so that code registered one function at a time (a JIT compiling
  // methods as they get hot) still gives gdb few objects: at most
  // total/kMaxMergedSymbols + O(log kMaxMergedSymbols) of them. Merging rebuilds a symbol's
  // object O(log kMaxMergedSymbols) times over its life (amortized), and releasing a batch
  // rebuilds its shared object (at most kMaxMergedSymbols symbols): both bounded per function.
  kMerge,
  // The batch gets object(s) of its own, built once. Cheapest for big batches; with many
  // small ones gdb (when attached) slows down quadratically, see bench/debug/gdb_scaling.sh.
  kOwnObject,
};

// The size cap of merged objects (kMerge).
inline constexpr std::size_t kMaxMergedSymbols = 4096;

// Which sinks a registry feeds.
struct RegistryOptions {
  bool gdb = true;       // the GDB JIT interface (only the global() registry may use it)
};

// Counters for tests, logs and the tour.
struct RegistryStats {
  std::size_t batches = 0;          // batches currently registered
  std::size_t symbols = 0;          // symbols currently registered
  std::size_t gdb_objects = 0;      // ELF objects currently linked into __jit_debug_descriptor
  std::size_t gdb_object_bytes = 0; // their total size
  std::uint64_t gdb_register_calls = 0;    // __jit_debug_register_code() calls so far
  std::uint64_t symbols_built = 0;         // symbols written into ELF objects so far (merges
                                           // and rebuilds count again)
  std::size_t released_symbols_in_gdb = 0; // released, still in a shared object (see Grouping)
};

class CodeRegistry {
 public:
  // The process-wide registry, the only one tied to __jit_debug_descriptor. Its gdb sink honours
  // JITKIT_GDB_JIT=0; its perf sinks are enabled by JITKIT_PERF_MAP=1 / JITKIT_JITDUMP=1 (read
  // once, at first use) or by perf.h's enable_* functions.
  static CodeRegistry& global();

  CodeRegistry(const CodeRegistry&) = delete;
  CodeRegistry& operator=(const CodeRegistry&) = delete;
  ~CodeRegistry();

  // Registers a batch with every enabled sink. Errors (kInvalidArgument, nothing registered):
  // an empty batch, an empty name, a null address, a function of size 0, unwind rows beyond the
  // function, functions overlapping within the batch (gdb would pick one arbitrarily), a
  // function starting where a registered one starts.
  [[nodiscard]] Result<Registration> add(SymbolBatch batch, Grouping grouping = Grouping::kMerge);
  // One function, as a batch of one (merged with other small batches: see Grouping).
  [[nodiscard]] Result<Registration> add_function(std::string name, const void* address,
                                                  std::size_t size, FrameInfo frame = {});

  // Withdraws the function starting at `address` (registered in any batch) from gdb: its batch's
  // ELF object is rebuilt without it (O(size of the batch)), or unregistered when it was the
  // last symbol. Labels and data inside the function's extent go with it. kInvalidArgument if no
  // registered function starts there.
  [[nodiscard]] Status remove_function(const void* address);

  // The registered name of the function or data containing `address`, as "name" or "name+0x1c".
  // For listings and logs.
  std::optional<std::string> symbolize(std::uintptr_t address) const;

  RegistryStats stats() const;

  struct Impl;

 private:
  friend class Registration;
  explicit CodeRegistry(const RegistryOptions& options);
  void release(std::uint64_t id);
  std::unique_ptr<Impl> impl_;
};

}  // namespace jitkit::debug
