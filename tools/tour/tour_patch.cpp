// Tour section: live patching. A call site is retargeted over and over while a second thread
// keeps calling through it; every call is counted by the target it reached. Then the same with a
// call site whose rel32 crosses a cache line (breakpoint-first protocol) and with a batch.
// Everything printed is measured in this run.
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <thread>
#include <vector>

#include "jitkit/base/format.h"
#include "jitkit/code/code_zone.h"
#include "jitkit/install/install.h"
#include "jitkit/patch/patcher.h"
#include "jitkit/patch/trap.h"
#include "jitkit/x64/assembler.h"
#include "tour_p.h"

namespace {

using jitkit::install::PatchSite;
using jitkit::patch::Patcher;

constexpr int kTargets = 3;
std::atomic<std::uint64_t> g_hits[kTargets];

template <int K>
__attribute__((noinline)) void target() {
  g_hits[K].fetch_add(1, std::memory_order_relaxed);
}
using Fn = void (*)();
const Fn kFns[kTargets] = {&target<0>, &target<1>, &target<2>};

// `sub rsp,8; call site; add rsp,8; ret`: emitted by the assembler (its call_site aligns the
// rel32), or hand-placed with the rel32 across a cache line when `misaligned`.
struct Caller {
  Fn fn = nullptr;
  PatchSite site;
};

bool make_caller(jitkit::code::CodeZone& zone, bool misaligned, Caller* out) {
  using namespace jitkit::x64;  // NOLINT
  if (!misaligned) {
    Assembler a;
    a.sub(rsp, 8);
    a.call_site(abs(kFns[0]));
    a.add(rsp, 8);
    a.ret();
    jitkit::install::InstallOptions options;
    options.name = "tour-caller";
    options.visibility = jitkit::code::Visibility::kOtherThreads;
    auto code = jitkit::install::install(a, zone, options);
    if (!code || code->sites().size() != 1) return false;
    out->site = code->sites()[0];
    out->fn = code->entry<Fn>();
    return true;
  }
  // Hand-placed: the rel32 at bytes 62..65 of a 64-byte block, across a cache line — what the
  // assembler never emits, and what only the breakpoint protocol may patch.
  std::uint8_t b[72];
  std::memset(b, 0xCC, sizeof b);
  const std::uint8_t pro[] = {0x48, 0x83, 0xEC, 0x08, 0xEB, 61 - 6};
  std::memcpy(b, pro, sizeof pro);
  auto blk = zone.allocate(sizeof b, 64);
  if (!blk) return false;
  b[61] = 0xE8;
  const auto rel = static_cast<std::int32_t>(reinterpret_cast<std::uintptr_t>(kFns[0]) -
                                             reinterpret_cast<std::uintptr_t>(blk->exec + 66));
  std::memcpy(b + 62, &rel, 4);
  const std::uint8_t epi[] = {0x48, 0x83, 0xC4, 0x08, 0xC3};
  std::memcpy(b + 66, epi, sizeof epi);
  if (!zone.write(blk->exec, b, sizeof b) ||
      !zone.make_executable(*blk, jitkit::code::Visibility::kOtherThreads)) {
    return false;
  }
  out->fn = reinterpret_cast<Fn>(blk->exec);
  out->site = PatchSite{.kind = jitkit::x64::PatchSiteKind::kCall,
                        .insn = blk->exec + 61,
                        .insn_size = 5,
                        .field = blk->exec + 62,
                        .field_size = 4,
                        .pad = blk->exec + 61};
  return true;
}

template <typename PatchOnce>
bool race(const char* what, const std::vector<Caller>& callers, PatchOnce patch_once) {
  for (auto& h : g_hits) h = 0;
  std::atomic<bool> stop{false}, started{false};
  std::uint64_t calls = 0;
  std::thread runner([&] {
    started = true;
    std::uint64_t n = 0;
    while (!stop.load(std::memory_order_relaxed)) {
      for (const Caller& c : callers) c.fn();
      n += callers.size();
    }
    calls = n;
  });
  while (!started.load()) std::this_thread::yield();  // patch only while the runner runs
  const auto traps0 = jitkit::patch::trap_stats();
  const auto t0 = std::chrono::steady_clock::now();
  std::uint64_t patches = 0;
  bool ok = true;
  while (std::chrono::steady_clock::now() - t0 < std::chrono::milliseconds(500)) {
    if (!patch_once(patches)) {
      ok = false;
      break;
    }
    ++patches;
  }
  stop = true;
  runner.join();
  const auto traps1 = jitkit::patch::trap_stats();
  std::uint64_t sum = 0;
  for (auto& h : g_hits) sum += h.load();
  std::printf("%-34s %9llu patches, %10llu calls -> target0 %llu, target1 %llu, target2 %llu%s\n", what,
              static_cast<unsigned long long>(patches), static_cast<unsigned long long>(calls),
              static_cast<unsigned long long>(g_hits[0].load()),
              static_cast<unsigned long long>(g_hits[1].load()),
              static_cast<unsigned long long>(g_hits[2].load()),
              sum == calls ? " (all landed)" : " (COUNTS DISAGREE)");
  if (traps1.emulated != traps0.emulated || traps1.restarted != traps0.restarted) {
    std::printf("%-34s threads hit an int3: %llu emulated, %llu restarted on the finished code\n", "",
                static_cast<unsigned long long>(traps1.emulated - traps0.emulated),
                static_cast<unsigned long long>(traps1.restarted - traps0.restarted));
  }
  return ok && sum == calls;
}

bool show_patching() {
  jitkit::code::ZoneOptions o;
  o.reserve_bytes = 1u << 20;
  o.near = reinterpret_cast<std::uintptr_t>(kFns[0]);
  o.near_span = 1u << 20;
  auto zone = jitkit::code::CodeZone::create(o);
  if (!zone) {
    std::printf("no code zone: %s\n", zone.error().message().c_str());
    return false;
  }
  auto patcher = Patcher::create(**zone);
  if (!patcher) {
    std::printf("live patching unavailable: %s\n", patcher.error().message().c_str());
    return false;
  }
  Patcher& p = **patcher;
  Caller aligned, misaligned;
  if (!make_caller(**zone, false, &aligned) || !make_caller(**zone, true, &misaligned)) {
    std::printf("could not build the callers\n");
    return false;
  }
  std::printf(
      "call site by the assembler: rel32 at %s (%% 4 = %zu); hand-placed site: rel32 at %s "
      "(%% 64 = %zu, crosses a cache line)\n",
      jitkit::hex(aligned.site.field).c_str(), reinterpret_cast<std::uintptr_t>(aligned.site.field) % 4,
      jitkit::hex(misaligned.site.field).c_str(),
      reinterpret_cast<std::uintptr_t>(misaligned.site.field) % 64);
  auto refused = p.retarget(misaligned.site, reinterpret_cast<const void*>(kFns[1]));
  std::printf("aligned store on the misaligned site: %s\n",
              refused ? "accepted (unexpected)" : refused.error().message().c_str());
  std::printf("one thread calls in a loop while this one patches for 0.5 s:\n");
  bool ok = true;
  ok &= race("aligned store + SYNC_CORE", {aligned}, [&](std::uint64_t i) {
    return p.retarget(aligned.site, reinterpret_cast<const void*>(kFns[(i + 1) % kTargets])).has_value();
  });
  ok &= race("breakpoint protocol (misaligned)", {misaligned}, [&](std::uint64_t i) {
    return p.retarget_by_breakpoint(misaligned.site, reinterpret_cast<const void*>(kFns[(i + 1) % kTargets]))
        .has_value();
  });
  ok &= race("batch of both (3 syncs per batch)", {aligned, misaligned}, [&](std::uint64_t i) {
    jitkit::patch::PatchBatch batch(p);
    const void* t = reinterpret_cast<const void*>(kFns[(i + 1) % kTargets]);
    return batch.retarget(aligned.site, t).has_value() && batch.retarget(misaligned.site, t).has_value() &&
           p.commit(batch).has_value();
  });
  const auto st = p.stats();
  std::printf(
      "patcher totals: %llu aligned stores, %llu breakpoint rounds (%llu edits), %llu "
      "membarrier SYNC_CORE calls\n",
      static_cast<unsigned long long>(st.aligned_stores),
      static_cast<unsigned long long>(st.breakpoint_commits),
      static_cast<unsigned long long>(st.breakpoint_edits),
      static_cast<unsigned long long>(st.serializations));
  return ok && !refused;
}

}  // namespace

JITKIT_TOUR_SECTION(40, "Live patching", show_patching);
