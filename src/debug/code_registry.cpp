// src/debug/code_registry.cpp — the CodeRegistry: batches of symbols, their gdb objects and the
// perf outputs (code_registry.h).
//
// Bookkeeping per batch: its symbols, its ELF object(s) and one jit_code_entry per object. Per
// function: one entry in a hash map from start address to batch id (for remove_function). All
// operations on the gdb list are O(1) (link at head, unlink by pointer); the only per-batch work
// is building the batch's objects, linear in the batch.
#include "jitkit/debug/code_registry.h"

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <map>
#include <mutex>
#include <unordered_map>

#include "jitkit/base/bits.h"
#include "jitkit/base/format.h"
#include "jitkit/base/linux/rseq_abi.h"

#include "debug/elf_object_p.h"
#include "debug/gdb_jit_interface_p.h"
#include "debug/perf_outputs_p.h"

namespace jitkit::debug {

// ---- FrameInfo ----------------------------------------------------------------------------

FrameInfo FrameInfo::leaf() {
  FrameInfo f;
  f.has_unwind = true;
  f.rows.push_back({0, UnwindRow::Base::kRsp, 8, false});
  return f;
}

FrameInfo FrameInfo::frame_pointer(std::uint32_t push_end, std::uint32_t mov_end,
                                   std::vector<std::uint32_t> frame_gone) {
  FrameInfo f;
  f.has_unwind = true;
  f.rows.push_back({0, UnwindRow::Base::kRsp, 8, false});         // after call
  f.rows.push_back({push_end, UnwindRow::Base::kRsp, 16, true});  // after push rbp
  f.rows.push_back({mov_end, UnwindRow::Base::kRbp, 16, true});   // after mov rbp, rsp
  std::sort(frame_gone.begin(), frame_gone.end());
  for (std::uint32_t gone : frame_gone) {
    if (gone <= mov_end) continue;  // not after the frame was set up: nothing to describe
    // From right after `pop rbp`/`leave` (the `ret`) the entry state holds again; code after
    // that one-byte `ret` (another exit path) runs with the frame still established. When the
    // `ret` ends the function that second row lies at its end, where it describes no
    // instruction: the CFI generator skips rows at the function's end.
    f.rows.push_back({gone, UnwindRow::Base::kRsp, 8, false});
    f.rows.push_back({gone + 1, UnwindRow::Base::kRbp, 16, true});
  }
  return f;
}

// ---- SymbolBatch --------------------------------------------------------------------------

void SymbolBatch::add_function(std::string name, const void* address, std::size_t size, FrameInfo frame,
                               std::size_t extent) {
  Symbol s;
  s.name = std::move(name);
  s.address = reinterpret_cast<std::uintptr_t>(address);
  s.size = size;
  s.kind = SymbolKind::kFunction;
  s.extent = extent;
  s.frame = std::move(frame);
  symbols_.push_back(std::move(s));
}

void SymbolBatch::add_label(std::string name, const void* address) {
  Symbol s;
  s.name = std::move(name);
  s.address = reinterpret_cast<std::uintptr_t>(address);
  s.kind = SymbolKind::kLabel;
  symbols_.push_back(std::move(s));
}

void SymbolBatch::add_data(std::string name, const void* address, std::size_t size) {
  Symbol s;
  s.name = std::move(name);
  s.address = reinterpret_cast<std::uintptr_t>(address);
  s.size = size;
  s.kind = SymbolKind::kData;
  symbols_.push_back(std::move(s));
}

Status SymbolBatch::add_rseq_section(std::string_view name, const void* descriptor) {
  std::string where = "debug: rseq section '" + std::string(name) + "'";
  if (name.empty()) return Error(ErrorCode::kInvalidArgument, where + ": empty name");
  if (descriptor == nullptr) return Error(ErrorCode::kInvalidArgument, where + ": null descriptor");
  if (!is_aligned(reinterpret_cast<std::uintptr_t>(descriptor), 32)) {
    return Error(ErrorCode::kInvalidArgument,
                 where + ": descriptor is not 32-byte aligned (the kernel requires it)");
  }
  RseqCs cs;
  std::memcpy(&cs, descriptor, sizeof cs);
  if (cs.version != 0) {
    return Error(ErrorCode::kInvalidArgument,
                 where + ": descriptor version " + std::to_string(cs.version) + ", expected 0");
  }
  if (cs.start_ip == 0 || cs.abort_ip == 0 || cs.post_commit_offset == 0) {
    return Error(ErrorCode::kInvalidArgument,
                 where + ": descriptor has a zero start_ip, abort_ip or post_commit_offset");
  }
  if (cs.abort_ip >= cs.start_ip && cs.abort_ip < cs.start_ip + cs.post_commit_offset) {
    return Error(ErrorCode::kInvalidArgument,
                 where + ": abort_ip lies inside the critical section (the kernel rejects it)");
  }
  std::string n(name);
  add_data("__rseq_cs_" + n, descriptor, sizeof(RseqCs));
  add_label("__rseq_start_" + n, reinterpret_cast<const void*>(cs.start_ip));
  add_label("__rseq_commit_" + n, reinterpret_cast<const void*>(cs.start_ip + cs.post_commit_offset));
  add_label("__rseq_abort_" + n, reinterpret_cast<const void*>(cs.abort_ip));
  return ok();
}

// ---- CodeRegistry -------------------------------------------------------------------------

namespace {

struct GdbObject {
  std::vector<std::uint8_t> bytes;
  std::unique_ptr<jit_code_entry> entry;  // stable address: gdb identifies objects by it
};

// What the caller registered together; released together by its Registration.
struct Batch {
  std::vector<Symbol> symbols;
  std::uint64_t run = 0;  // the run (gdb object group) holding its symbols
  std::size_t pos = 0;    // index in its run's `batches` (O(1) removal by swap)
  bool dead = false;      // released, but still in its run's objects until compaction
};

// A group of batches that share gdb object(s). Grouping::kOwnObject: exactly one batch.
// Grouping::kMerge: small batches merged up to kMaxMergedSymbols symbols.
// Batches are referred to by pointer inside runs: they live in Impl::batches, a node-based map,
// whose elements keep their address, so walking a run's symbols hashes nothing.
struct Run {
  std::vector<Batch*> batches;              // live
  std::vector<std::uint64_t> dead_batches;  // released, still in `objects`
  std::size_t symbols = 0;                  // live symbols
  std::size_t dead_symbols = 0;
  bool pooled = false;
  std::vector<GdbObject> objects;  // linked into __jit_debug_descriptor while registered
};

// The extent of a released function or data symbol still present in a shared object.
struct DeadRange {
  std::uintptr_t end;
  std::uint64_t run;
};

struct IndexEntry {
  std::uintptr_t begin;
  std::uintptr_t end;
  const std::string* name;
};

bool env_flag(const char* name, bool fallback) {
  const char* v = std::getenv(name);
  if (v == nullptr || *v == '\0') return fallback;
  return !(std::strcmp(v, "0") == 0 || std::strcmp(v, "no") == 0 || std::strcmp(v, "off") == 0 ||
           std::strcmp(v, "false") == 0);
}

}  // namespace

struct CodeRegistry::Impl {
  RegistryOptions options;
  mutable std::mutex mu;
  std::uint64_t next_id = 1;
  std::unordered_map<std::uint64_t, Batch> batches;
  std::unordered_map<std::uint64_t, Run> runs;
  // Merge pool: run ids, oldest first. Sizes roughly halve towards the top, as in a binary
  // counter, so each symbol is rebuilt O(log kMaxMergedSymbols) times and the pool holds
  // total/kMaxMergedSymbols + O(log kMaxMergedSymbols) objects.
  std::vector<std::uint64_t> pool;
  std::unordered_map<std::uintptr_t, std::uint64_t> function_batch;  // start -> batch id
  // Released symbols still in shared objects, by start address; new code overlapping one of
  // them compacts its run first, so gdb never holds a stale name for live code.
  std::multimap<std::uintptr_t, DeadRange> dead;
  std::size_t max_dead_extent = 0;
  std::size_t dead_symbols = 0;
  std::size_t dead_batch_total = 0;
  std::size_t symbol_count = 0;
  std::size_t gdb_objects = 0;
  std::size_t gdb_bytes = 0;
  std::uint64_t gdb_calls = 0;
  std::uint64_t symbols_built = 0;
  std::vector<const Symbol*> relink_symbols;  // relink()'s list, kept for its capacity
  // Sorted address index for symbolize(), rebuilt lazily after changes.
  mutable std::vector<IndexEntry> index;
  mutable bool index_dirty = true;

  void unlink(Run& run) {
    for (GdbObject& obj : run.objects) {
      detail::gdb_unregister(obj.entry.get());
      ++gdb_calls;
      --gdb_objects;
      gdb_bytes -= obj.bytes.size();
    }
    run.objects.clear();
  }

  // (Re)builds the run's gdb object(s) from its batches' symbols and links them.
  void relink(Run& run) {
    unlink(run);
    if (!options.gdb || run.symbols == 0) return;
    std::vector<const Symbol*>& symbols = relink_symbols;
    symbols.clear();
    for (const Batch* batch : run.batches) {
      for (const Symbol& s : batch->symbols) symbols.push_back(&s);
    }
    symbols_built += symbols.size();
    for (auto& image : detail::build_elf_objects(std::span<const Symbol* const>(symbols))) {
      GdbObject obj;
      obj.bytes = std::move(image);
      obj.entry = std::make_unique<jit_code_entry>();
      obj.entry->symfile_addr = reinterpret_cast<const char*>(obj.bytes.data());
      obj.entry->symfile_size = obj.bytes.size();
      detail::gdb_register(obj.entry.get());
      ++gdb_calls;
      ++gdb_objects;
      gdb_bytes += obj.bytes.size();
      run.objects.push_back(std::move(obj));
    }
  }

  void add_to_run(Run& run, std::uint64_t run_id, Batch& batch) {
    batch.run = run_id;
    batch.pos = run.batches.size();
    run.batches.push_back(&batch);
  }
  // O(1): the last batch takes the removed one's place (order within a run does not matter).
  void remove_from_run(Run& run, const Batch& batch) {
    std::size_t pos = batch.pos;
    Batch* last = run.batches.back();
    run.batches[pos] = last;
    last->pos = pos;
    run.batches.pop_back();
  }

  // Forgets the run's released batches (after a rebuild that left them out).
  void purge_dead(Run& run) {
    for (std::uint64_t id : run.dead_batches) {
      Batch& batch = batches.at(id);
      for (const Symbol& sym : batch.symbols) {
        if (sym.kind == SymbolKind::kLabel) continue;
        auto [lo, hi] = dead.equal_range(sym.address);
        for (auto it = lo; it != hi; ++it) {
          if (it->second.run == batch.run) {
            dead.erase(it);
            break;
          }
        }
      }
      batches.erase(id);
    }
    dead_symbols -= run.dead_symbols;
    dead_batch_total -= run.dead_batches.size();
    run.dead_batches.clear();
    run.dead_symbols = 0;
  }

  // Rebuilds the run from its live batches only.
  void compact(std::uint64_t run_id) {
    Run& run = runs.at(run_id);
    relink(run);
    purge_dead(run);
  }

  void drop_run(std::uint64_t run_id) {
    Run& run = runs.at(run_id);
    unlink(run);
    purge_dead(run);
    if (run.pooled) std::erase(pool, run_id);
    runs.erase(run_id);
  }

  // Compacts every run holding a released symbol that overlaps [begin, end).
  void compact_overlapping(std::uintptr_t begin, std::uintptr_t end) {
    if (dead.empty()) return;
    std::uintptr_t from = begin > max_dead_extent ? begin - max_dead_extent : 0;
    std::vector<std::uint64_t> stale;
    for (auto it = dead.lower_bound(from); it != dead.end() && it->first < end; ++it) {
      if (it->second.end > begin) stale.push_back(it->second.run);
    }
    std::sort(stale.begin(), stale.end());
    stale.erase(std::unique(stale.begin(), stale.end()), stale.end());
    for (std::uint64_t run_id : stale) compact(run_id);
  }

  // Places a new batch in a run of its own, or in the merge pool.
  void place(std::uint64_t batch_id, Grouping grouping) {
    Batch& batch = batches.at(batch_id);
    std::uint64_t run_id = next_id++;
    Run& run = runs[run_id];
    add_to_run(run, run_id, batch);
    run.symbols = batch.symbols.size();
    if (grouping == Grouping::kOwnObject || run.symbols >= kMaxMergedSymbols) {
      relink(run);
      return;
    }
    run.pooled = true;
    pool.push_back(run_id);
    // Merge the top two while the lower one is at most twice the upper one and the result
    // stays under the cap (a binary counter: each symbol takes part in O(log cap) merges).
    // Merging is bookkeeping only; the surviving run is rebuilt and linked once at the end, so
    // a registration costs gdb one notification plus one per run it absorbed (amortized about
    // two), not a rebuild per merge level. Absorbed runs' released batches go with them.
    while (pool.size() >= 2) {
      std::uint64_t upper_id = pool[pool.size() - 1];
      std::uint64_t lower_id = pool[pool.size() - 2];
      Run& upper = runs.at(upper_id);
      Run& lower = runs.at(lower_id);
      if (lower.symbols > 2 * upper.symbols || lower.symbols + upper.symbols > kMaxMergedSymbols) {
        break;
      }
      unlink(upper);  // nothing to do for the new run: it was never linked
      purge_dead(upper);
      for (Batch* b : upper.batches) add_to_run(lower, lower_id, *b);
      lower.symbols += upper.symbols;
      pool.pop_back();
      runs.erase(upper_id);
    }
    compact(pool.back());
  }

  // Takes a released batch out of its run. Own-object runs go at once. In a shared run the
  // batch's symbols stay in the object (marked dead) until half the run is dead, new code
  // overlaps them, or a merge rebuilds the run: rebuilding a shared object on every release
  // would cost O(kMaxMergedSymbols) per release instead of O(1) amortized.
  void release_batch(std::uint64_t batch_id) {
    Batch& batch = batches.at(batch_id);
    std::uint64_t run_id = batch.run;
    Run& run = runs.at(run_id);
    remove_from_run(run, batch);
    run.symbols -= batch.symbols.size();
    if (run.batches.empty()) {
      batches.erase(batch_id);
      drop_run(run_id);
      return;
    }
    if (!run.pooled || 2 * (run.dead_symbols + batch.symbols.size()) >=
                           run.symbols + run.dead_symbols + batch.symbols.size()) {
      batches.erase(batch_id);
      compact(run_id);
      return;
    }
    batch.dead = true;
    ++dead_batch_total;
    run.dead_batches.push_back(batch_id);
    run.dead_symbols += batch.symbols.size();
    dead_symbols += batch.symbols.size();
    for (const Symbol& sym : batch.symbols) {
      if (sym.kind == SymbolKind::kLabel) continue;
      std::size_t len = std::max<std::size_t>({sym.size, sym.extent, 1});
      max_dead_extent = std::max(max_dead_extent, len);
      dead.emplace(sym.address, DeadRange{sym.address + len, run_id});
    }
  }

  void forget_functions(const Batch& batch) {
    for (const Symbol& s : batch.symbols) {
      if (s.kind == SymbolKind::kFunction) function_batch.erase(s.address);
    }
    symbol_count -= batch.symbols.size();
  }
};

CodeRegistry::CodeRegistry(const RegistryOptions& options) : impl_(std::make_unique<Impl>()) {
  impl_->options = options;
}

CodeRegistry::~CodeRegistry() {
  std::lock_guard lock(impl_->mu);
  for (auto& [id, run] : impl_->runs) impl_->unlink(run);
}

CodeRegistry& CodeRegistry::global() {
  // Never destroyed: code may be registered or released from other static destructors, and gdb
  // may still read the objects while the process exits.
  static CodeRegistry* registry = [] {
    RegistryOptions options;
    options.gdb = env_flag("JITKIT_GDB_JIT", true);
    auto* r = new CodeRegistry(options);
    if (env_flag("JITKIT_PERF_MAP", false)) {
      Status s = enable_perf_map();
      if (!s) std::fprintf(stderr, "jitkit: JITKIT_PERF_MAP is set but %s\n", s.error().message().c_str());
    }
    if (env_flag("JITKIT_JITDUMP", false)) {
      Status s = enable_jitdump();
      if (!s) std::fprintf(stderr, "jitkit: JITKIT_JITDUMP is set but %s\n", s.error().message().c_str());
    }
    return r;
  }();
  return *registry;
}

Result<Registration> CodeRegistry::add(SymbolBatch batch_in, Grouping grouping) {
  std::vector<Symbol> symbols;
  symbols.assign(std::make_move_iterator(batch_in.symbols().begin()),
                 std::make_move_iterator(batch_in.symbols().end()));
  if (symbols.empty()) return Error(ErrorCode::kInvalidArgument, "debug: empty symbol batch");
  JITKIT_TRY(detail::validate_symbols(symbols));

  std::lock_guard lock(impl_->mu);
  for (const Symbol& s : symbols) {
    if (s.kind == SymbolKind::kFunction && impl_->function_batch.count(s.address) != 0) {
      return Error(ErrorCode::kInvalidArgument,
                   "debug: function '" + s.name + "' at " + hex(s.address) +
                       ": a function is already registered there (remove it first)");
    }
  }
  for (const Symbol& s : symbols) {
    if (s.kind == SymbolKind::kLabel) continue;
    impl_->compact_overlapping(s.address, s.address + std::max<std::size_t>({s.size, s.extent, 1}));
  }
  std::uint64_t id = impl_->next_id++;
  Batch& batch = impl_->batches[id];
  batch.symbols = std::move(symbols);
  for (const Symbol& s : batch.symbols) {
    if (s.kind == SymbolKind::kFunction) impl_->function_batch.emplace(s.address, id);
  }
  impl_->symbol_count += batch.symbols.size();
  impl_->index_dirty = true;
  impl_->place(id, grouping);
  if (detail::perf_any_enabled()) detail::perf_record_functions(impl_->batches.at(id).symbols);
  return Registration(this, id);
}

Result<Registration> CodeRegistry::add_function(std::string name, const void* address, std::size_t size,
                                                FrameInfo frame) {
  SymbolBatch batch;
  batch.add_function(std::move(name), address, size, std::move(frame));
  return add(std::move(batch));
}

Status CodeRegistry::remove_function(const void* address) {
  auto addr = reinterpret_cast<std::uintptr_t>(address);
  std::lock_guard lock(impl_->mu);
  auto it = impl_->function_batch.find(addr);
  if (it == impl_->function_batch.end()) {
    return Error(ErrorCode::kInvalidArgument,
                 "debug: remove_function: no registered function starts at " + hex(addr));
  }
  std::uint64_t id = it->second;
  Batch& batch = impl_->batches.at(id);
  impl_->function_batch.erase(it);
  // The function and every label/data symbol inside its extent leave together.
  const Symbol* fn = nullptr;
  for (const Symbol& s : batch.symbols) {
    if (s.kind == SymbolKind::kFunction && s.address == addr) fn = &s;
  }
  if (fn == nullptr) {
    return Error(ErrorCode::kInvalidState, "debug: remove_function: registry index is inconsistent");
  }
  std::uintptr_t end = addr + std::max<std::size_t>({fn->size, fn->extent, 1});
  Run& run = impl_->runs.at(batch.run);
  std::size_t before = batch.symbols.size();
  std::erase_if(batch.symbols, [&](const Symbol& s) {
    return s.address >= addr && s.address < end && (s.kind != SymbolKind::kFunction || s.address == addr);
  });
  std::size_t removed = before - batch.symbols.size();
  impl_->symbol_count -= removed;
  impl_->index_dirty = true;
  run.symbols -= removed;
  std::uint64_t run_id = batch.run;
  if (batch.symbols.empty()) {
    impl_->remove_from_run(run, batch);
    impl_->batches.erase(id);
    if (run.batches.empty()) {
      impl_->drop_run(run_id);
      return ok();
    }
  }
  impl_->compact(run_id);  // the removed function's name leaves gdb now
  return ok();
}

void CodeRegistry::release(std::uint64_t id) {
  std::lock_guard lock(impl_->mu);
  auto it = impl_->batches.find(id);
  if (it == impl_->batches.end()) return;  // every symbol was removed one by one
  impl_->forget_functions(it->second);
  impl_->release_batch(id);
  impl_->index_dirty = true;
}

std::optional<std::string> CodeRegistry::symbolize(std::uintptr_t address) const {
  std::lock_guard lock(impl_->mu);
  if (impl_->index_dirty) {
    impl_->index.clear();
    for (const auto& [id, batch] : impl_->batches) {
      if (batch.dead) continue;
      for (const Symbol& s : batch.symbols) {
        if (s.kind == SymbolKind::kLabel) continue;  // names of points, not of ranges
        impl_->index.push_back({s.address, s.address + std::max<std::size_t>(s.size, 1), &s.name});
      }
    }
    std::sort(impl_->index.begin(), impl_->index.end(),
              [](const IndexEntry& a, const IndexEntry& b) { return a.begin < b.begin; });
    impl_->index_dirty = false;
  }
  auto it = std::upper_bound(impl_->index.begin(), impl_->index.end(), address,
                             [](std::uintptr_t a, const IndexEntry& e) { return a < e.begin; });
  if (it == impl_->index.begin()) return std::nullopt;
  --it;
  if (address >= it->end) return std::nullopt;
  if (address == it->begin) return *it->name;
  return *it->name + "+" + hex(address - it->begin);
}

RegistryStats CodeRegistry::stats() const {
  std::lock_guard lock(impl_->mu);
  RegistryStats s;
  s.batches = impl_->batches.size() - impl_->dead_batch_total;
  s.symbols = impl_->symbol_count;
  s.gdb_objects = impl_->gdb_objects;
  s.gdb_object_bytes = impl_->gdb_bytes;
  s.gdb_register_calls = impl_->gdb_calls;
  s.symbols_built = impl_->symbols_built;
  s.released_symbols_in_gdb = impl_->dead_symbols;
  return s;
}

// ---- Registration -------------------------------------------------------------------------

Registration::Registration(Registration&& other) noexcept : registry_(other.registry_), id_(other.id_) {
  other.registry_ = nullptr;
}

Registration& Registration::operator=(Registration&& other) noexcept {
  if (this != &other) {
    reset();
    registry_ = other.registry_;
    id_ = other.id_;
    other.registry_ = nullptr;
  }
  return *this;
}

Registration::~Registration() { reset(); }

void Registration::reset() {
  if (registry_ != nullptr) registry_->release(id_);
  registry_ = nullptr;
}

}  // namespace jitkit::debug
