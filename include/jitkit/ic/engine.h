// jitkit/ic/engine.h — inline caches for a dynamically typed VM: the engine, its configuration
// and the small interface through which the VM plugs in.
//
// The engine owns the shared stubs (miss, not-understood), every PIC and open PIC, the open-PIC
// table and a map from send-site return addresses to sites. The VM supplies how to load a
// receiver's class tag (an emitter, so tagged immediates work), the lookup, the not-understood
// handler and the registers of its calling convention. Nothing here knows any particular VM.
//
//   ic::VmInterface vm;
//   vm.load_tag = [](x64::Assembler& a, x64::Gp64 recv, x64::Gp32 tag) {
//     a.mov(tag, dword_ptr(recv, 0));                       // the object's class index
//   };
//   vm.lookup = [&](std::uint32_t tag, std::uint32_t sel) -> std::optional<ic::Method> {...};
//   vm.not_understood = [&](const ic::NotUnderstood& nu) -> std::uint64_t {...};
//   JITKIT_TRY(auto engine, ic::Engine::create(*zone, std::move(vm)));
//
//   x64::Assembler a;                                        // a method with one send
//   JITKIT_TRY(ic::SendSite send, engine->emit_send(a, kDrawSelector));
//   JITKIT_TRY(auto code, install::install(a, *zone, {.name = "caller",
//                                                     .visibility = code::Visibility::kOtherThreads}));
//   JITKIT_TRY(ic::SiteId site, engine->attach(code, send));  // before the code runs
//
// See send_site.h for the states and the concurrency argument, stubs.h for the stubs and the
// rule that no frame returns into a PIC.
//
// Thread safety: any number of threads may run generated code through the engine's sites while
// other threads miss, link, invalidate or query. Transitions are serialized by one engine lock;
// a thread that misses while another links the same site waits, then acts on the site as it
// finds it (a second miss for the same tag links nothing and just completes its send).
// Functions that wait for a grace period (reclaim(), the invalidate_*() family, flush_all())
// must not be called by a thread that is an online participant of the engine's
// QuiescenceDomain: go offline() around them.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "jitkit/base/result.h"
#include "jitkit/code/code_zone.h"
#include "jitkit/ic/send_site.h"
#include "jitkit/ic/stubs.h"
#include "jitkit/install/install.h"
#include "jitkit/patch/quiescence.h"
#include "jitkit/x64/assembler.h"

namespace jitkit::ic {

// The VM's registers at a send. Every register must be distinct, and none may be rsp or rbp.
// At a send: `receiver` and `args` hold the send's operands (System V caller-saved registers
// by default, so that C++ can call a generated method directly); `tag`, `selector` and
// `scratch` are clobbered by the send machinery before the method runs.
struct CallingConvention {
  x64::Gp64 receiver = x64::rdi;
  std::vector<x64::Gp64> args = {x64::rsi, x64::rdx, x64::rcx, x64::r8, x64::r9};
  x64::Gp32 tag = x64::eax;
  x64::Gp32 selector = x64::r10d;
  x64::Gp64 scratch = x64::r11;
};

// A method's two entries (stubs.h), at installed addresses.
struct Method {
  std::uintptr_t checked_entry = 0;
  std::uintptr_t unchecked_entry = 0;
};

// A send whose selector the receiver's class does not understand.
struct NotUnderstood {
  std::uint32_t selector = 0;
  std::uint32_t tag = 0;
  std::uint64_t receiver = 0;
  // Every argument register of the convention, in order (the VM knows the selector's arity).
  std::span<const std::uint64_t> args;
};

struct VmInterface {
  // Emits code that loads the class tag of the object in `receiver` into `tag`. It may write
  // only `tag` and the flags, must not touch the stack, and must emit something.
  std::function<void(x64::Assembler& a, x64::Gp64 receiver, x64::Gp32 tag)> load_tag;
  // The method for (tag, selector), or nullopt for "not understood". Called under the engine
  // lock (it must not call back into the engine), from the thread that missed. A VM that changes
  // a method changes what lookup answers first, then calls an invalidate_*() function.
  std::function<std::optional<Method>(std::uint32_t tag, std::uint32_t selector)> lookup;
  // Answers a send that was not understood (e.g. by sending doesNotUnderstand:). Its value is
  // the send's result (rax). Called without the engine lock, on the sending thread.
  std::function<std::uint64_t(const NotUnderstood&)> not_understood;
  // Optional: a selector's name for stub names ("pic:draw:"); default "#<number>".
  std::function<std::string(std::uint32_t selector)> selector_name;
};

struct EngineOptions {
  CallingConvention convention;
  // Cases of a closed PIC before a site goes megamorphic: 1 .. kMaxPicCases.
  std::size_t max_pic_cases = kDefaultPicCases;
  // The open-PIC table has 2^table_buckets_log2 buckets of two slots (16 bytes each): 4 .. 20.
  unsigned table_buckets_log2 = 11;
  // The threads that run the engine's code report quiescent states here. nullptr: the engine
  // owns a domain (quiescence()) that those threads must join.
  patch::QuiescenceDomain* quiescence = nullptr;
  // How long a grace period may take before reclaim() gives up with an error.
  std::chrono::nanoseconds grace_timeout = std::chrono::seconds(30);
  // Names the stubs with jitkit::debug (gdb, perf); names carry this engine name.
  bool register_stubs = true;
  std::string name = "ic";
};

// Counters since the engine was created.
struct EngineStats {
  std::uint64_t misses = 0;  // calls of the miss handler
  std::uint64_t unlinked_to_mono = 0;
  std::uint64_t mono_to_pic = 0;
  std::uint64_t pic_extend = 0;  // cases added to an existing PIC
  std::uint64_t pic_to_mega = 0;
  std::uint64_t table_fills = 0;      // open-PIC table slots filled
  std::uint64_t table_evictions = 0;  // live slots evicted to make room
  std::uint64_t not_understood = 0;
  std::uint64_t uncached = 0;             // misses completed without caching (cooling, full)
  std::uint64_t sites_unlinked = 0;       // by invalidation and flushes
  std::uint64_t table_slots_cleared = 0;  // by invalidation and flushes
  std::uint64_t grace_periods = 0;
  std::uint64_t stubs_created = 0;  // PICs and open PICs
  std::uint64_t stubs_freed = 0;
  std::uint64_t code_freed = 0;  // blocks handed to retire() and freed
  std::size_t live_pics = 0;
  std::size_t live_open_pics = 0;
  std::size_t sites = 0;
  std::size_t link_failures = 0;  // transitions refused (e.g. zone full): send completed
};

class Engine {
 public:
  // Builds the miss and not-understood stubs in `zone` (which must outlive the engine, be
  // dual-mapped or RWX for live patching, and hold the VM's methods within rel32 reach) and the
  // open-PIC table in its read-write data area. Errors (kInvalidArgument): colliding registers,
  // a missing or empty tag loader, a missing lookup or not-understood handler, too many PIC
  // cases, a table size out of range; and the zone's own errors (out of space, ...).
  static Result<std::unique_ptr<Engine>> create(code::CodeZone& zone, VmInterface vm,
                                                EngineOptions options = {});
  // No thread may run the engine's code any more.
  ~Engine();
  Engine(const Engine&) = delete;
  Engine& operator=(const Engine&) = delete;

  // --- Emitters ---------------------------------------------------------------------------
  // A send site of `selector` (<= kMaxSelector), unlinked.
  Result<SendSite> emit_send(x64::Assembler& a, std::uint32_t selector) const;
  // A method's checked and unchecked entries, at the current position of `a`; the method's
  // body follows. The returned labels are bound.
  Result<MethodEntryLabels> emit_method_entry(x64::Assembler& a) const;

  // Registers an installed send site (before the code runs). Fails when the site does not
  // belong to `code` or is already attached.
  Result<SiteId> attach(const install::InstalledCode& code, const SendSite& site);
  // Forgets every site whose call lies in [begin, end) (the VM frees that method). Their PIC
  // stubs are retired. The caller frees its code after a grace period (retire()). Their SiteIds
  // are refused from then on (site(), link(), listing()), until attach() gives them to new sites:
  // an engine whose VM keeps replacing code holds only its live sites. Costs O(the sites in the
  // range), not O(every site of the engine).
  Status detach_range(std::uintptr_t begin, std::uintptr_t end);

  // --- Transitions and invalidation ---------------------------------------------------------
  // Does what a miss by a receiver of class `tag` at `site` would do (link, extend, go
  // megamorphic), without running a send. For warm-up, tests and benchmarks.
  Status link(SiteId site, std::uint32_t tag);
  // Every site, PIC case and table slot that may lead to a method of `selector` / of class
  // `tag` / to `method` (either entry) is unlinked or cleared; then a grace period passes, after
  // which no thread can still run a stale target through the caches, retired stubs and code
  // are freed, and the unlinked sites may be linked again.
  Status invalidate_selector(std::uint32_t selector);
  Status invalidate_tag(std::uint32_t tag);
  Status invalidate_method(const Method& method);
  Status flush_all();
  // Frees `block` (code of the VM's, e.g. a redefined method) after the next grace period.
  Status retire(code::CodeBlock block);
  // A grace period now: frees what was retired, re-arms cooled sites and table slots.
  Status reclaim();

  // --- Queries ------------------------------------------------------------------------------
  Result<SiteInfo> site(SiteId id) const;
  EngineStats stats() const;
  // Listing of the site's instructions and of the stub it calls (PIC or open PIC), with names.
  Result<std::string> listing(SiteId id) const;
  std::uintptr_t miss_stub() const;
  std::uintptr_t not_understood_stub() const;
  const CallingConvention& convention() const;
  patch::QuiescenceDomain& quiescence() const;
  code::CodeZone& zone() const;

  struct Impl;

 private:
  explicit Engine(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace jitkit::ic
