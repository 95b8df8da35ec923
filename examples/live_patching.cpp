// examples/live_patching.cpp — retargeting a call in code that another thread is running.
//
// The generated function `int f()` calls a C++ function through a patch site
// (Assembler::call_site) and returns what it returns. A worker thread calls f() in a loop. While it
// runs, the main thread points the site at another function: the assembler placed the call's
// rel32 naturally aligned, so Patcher::retarget() changes it with one atomic store, then makes
// every core serialize (Sync::kAllCores). The worker sees f() return 1, then 2, and nothing else;
// every call it starts after retarget() has returned goes to the new function.
#include <atomic>
#include <cstdint>
#include <cstdio>
#include <thread>

#include "jitkit/code/code_zone.h"
#include "jitkit/install/install.h"
#include "jitkit/patch/patcher.h"
#include "jitkit/x64/assembler.h"

using namespace jitkit::x64;  // registers (rsp), abs, Assembler

__attribute__((noinline)) int old_target() { return 1; }
__attribute__((noinline)) int new_target() { return 2; }

// What the worker thread saw.
struct Observed {
  std::uint64_t old_results = 0;  // f() returned 1
  std::uint64_t new_results = 0;  // f() returned 2
  std::uint64_t other = 0;        // anything else: must stay 0
  std::uint64_t late_old = 0;     // 1 from a call started after retarget() returned: must stay 0
};

int main() {
  // 1. A code zone within rel32 reach of this program's functions, so the call site reaches both
  //    targets directly. Its default mode keeps a writable view of live code, which the patcher
  //    needs: it never makes pages that other threads execute writable.
  jitkit::code::ZoneOptions options;
  options.reserve_bytes = 1 << 20;
  options.near = reinterpret_cast<std::uintptr_t>(&old_target);
  options.near_span = 1 << 20;
  auto zone = jitkit::code::CodeZone::create(options);
  if (!zone) {
    std::fprintf(stderr, "cannot create a code zone: %s\n", zone.error().message().c_str());
    return 1;
  }

  // 2. int f() { return old_target(); } with the call as a patch site.
  Assembler a;
  a.sub(rsp, 8);  // the callee gets a 16-byte aligned stack
  PatchSiteId call = a.call_site(abs(&old_target));
  a.add(rsp, 8);
  a.ret();

  // 3. Install it for other threads to run, and create a patcher for the zone.
  auto code = jitkit::install::install(a, **zone,
                                       {.name = "f", .visibility = jitkit::code::Visibility::kOtherThreads});
  if (!code) {
    std::fprintf(stderr, "install failed: %s\n", code.error().message().c_str());
    return 1;
  }
  auto patcher = jitkit::patch::Patcher::create(**zone);
  if (!patcher) {
    std::fprintf(stderr, "no patcher: %s\n", patcher.error().message().c_str());
    return 1;
  }
  int (*f)() = code->entry<int()>();

  // 4. The worker calls f() until told to stop.
  std::atomic<std::uint64_t> calls{0};
  std::atomic<std::uint64_t> first_call_after_patch{UINT64_MAX};
  std::atomic<bool> stop{false};
  Observed seen;
  std::thread worker([&] {
    for (std::uint64_t i = 0; !stop.load(std::memory_order_relaxed); ++i) {
      const int r = f();
      if (r == 1) {
        ++seen.old_results;
        if (i >= first_call_after_patch.load()) ++seen.late_old;
      } else if (r == 2) {
        ++seen.new_results;
      } else {
        ++seen.other;
      }
      calls.store(i + 1);
    }
  });

  // 5. Let it run on the old target, retarget the site while it runs, let it run on the new one.
  while (calls.load() < 100000) std::this_thread::yield();
  auto path = (*patcher)->retarget(code->site(call), reinterpret_cast<const void*>(&new_target));
  // Calls numbered from here on start after retarget() returned (the one in progress may not).
  first_call_after_patch.store(calls.load() + 1);
  if (!path) {
    std::fprintf(stderr, "retarget failed: %s\n", path.error().message().c_str());
    stop.store(true);
    worker.join();
    return 1;
  }
  const std::uint64_t target = calls.load() + 100000;
  while (calls.load() < target) std::this_thread::yield();
  stop.store(true);
  worker.join();

  std::printf("retargeted with %s while the worker ran\n",
              *path == jitkit::patch::RetargetPath::kDirect ? "one aligned store" : "another path");
  std::printf(
      "worker: %llu calls returned 1 (old target), then %llu returned 2 (new target); "
      "%llu other results, %llu old results after the patch\n",
      static_cast<unsigned long long>(seen.old_results), static_cast<unsigned long long>(seen.new_results),
      static_cast<unsigned long long>(seen.other), static_cast<unsigned long long>(seen.late_old));
  const bool ok = *path == jitkit::patch::RetargetPath::kDirect && seen.old_results > 0 &&
                  seen.new_results > 0 && seen.other == 0 && seen.late_old == 0;
  // The code stays installed until the zone goes; here the process ends.
  return ok ? 0 : 1;
}
