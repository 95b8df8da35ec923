// bench/patch/patch_bench.cpp — the cost of one retarget on each patch path, beside the naive
// way (mprotect a single-mapped page RW, write, mprotect back RX). One binary, one run:
//   BM_Retarget/store_only         one aligned rel32 store through the write view (Sync::kNone)
//   BM_Retarget/store_sync         the same plus membarrier SYNC_CORE (Sync::kAllCores)
//   BM_Retarget/breakpoint         breakpoint-first protocol on a misaligned site (3 syncs)
//   BM_Retarget/batched_per_site   64 misaligned sites per PatchBatch (3 syncs per batch); one
//                                  iteration per site, so the time is per site, commit included
//   BM_Retarget/mprotect_baseline  mprotect(RW) + 4-byte store + mprotect(RX) of one page
// Every entry alternates the site between two targets and checks once that the code runs.
// The process runs no other thread during the measurement, so membarrier and mprotect have no
// other CPU of this process to interrupt; with running threads both pay IPIs on top.
#include <benchmark/benchmark.h>
#include <sys/mman.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <vector>

#include "jitkit/code/code_zone.h"
#include "jitkit/install/patch_site.h"
#include "jitkit/patch/patcher.h"

namespace {

using jitkit::code::CodeBlock;
using jitkit::code::CodeZone;
using jitkit::install::PatchSite;
using jitkit::patch::PatchBatch;
using jitkit::patch::Patcher;
using jitkit::patch::Sync;
using jitkit::x64::PatchSiteKind;

__attribute__((noinline)) int target_a() { return 1; }
__attribute__((noinline)) int target_b() { return 2; }

[[noreturn]] void die(const char* what, const std::string& why) {
  std::fprintf(stderr, "patch_bench: %s: %s\n", what, why.c_str());
  std::abort();
}

struct Env {
  std::unique_ptr<CodeZone> zone;
  std::unique_ptr<Patcher> patcher;
};

Env& env() {
  static Env e = [] {
    Env x;
    jitkit::code::ZoneOptions o;
    o.reserve_bytes = 4u << 20;
    o.near = reinterpret_cast<std::uintptr_t>(&target_a);
    o.near_span = 1u << 20;
    auto z = CodeZone::create(o);
    if (!z) die("zone", z.error().message());
    x.zone = std::move(z).value();
    auto p = Patcher::create(*x.zone);
    if (!p) die("patcher", p.error().message());
    x.patcher = std::move(p).value();
    return x;
  }();
  return e;
}

// `sub rsp,8; call rel32; add rsp,8; ret` with the rel32 at `field_offset` (8: aligned,
// 62: misaligned and across a cache line).
PatchSite make_caller(std::size_t field_offset) {
  CodeZone& zone = *env().zone;
  std::vector<std::uint8_t> b = {0x48, 0x83, 0xEC, 0x08};
  const std::size_t insn = field_offset - 1;
  if (insn - 4 >= 2) {
    b.push_back(0xEB);
    b.push_back(static_cast<std::uint8_t>(insn - 6));
  }
  while (b.size() < insn) b.push_back(0xCC);
  b.push_back(0xE8);
  b.resize(b.size() + 4);
  b.insert(b.end(), {0x48, 0x83, 0xC4, 0x08, 0xC3});
  auto blk = zone.allocate(b.size(), 64);
  if (!blk) die("allocate", blk.error().message());
  const auto rel = static_cast<std::int32_t>(reinterpret_cast<std::uintptr_t>(&target_a) -
                                             reinterpret_cast<std::uintptr_t>(blk->exec + insn + 5));
  std::memcpy(b.data() + field_offset, &rel, 4);
  if (auto s = zone.write(blk->exec, b.data(), b.size()); !s) die("write", s.error().message());
  if (auto s = zone.make_executable(*blk, jitkit::code::Visibility::kOtherThreads); !s) {
    die("make_executable", s.error().message());
  }
  PatchSite site;
  site.kind = PatchSiteKind::kCall;
  site.insn = blk->exec + insn;
  site.insn_size = 5;
  site.field = blk->exec + field_offset;
  site.field_size = 4;
  site.pad = site.insn;
  return site;
}

int call(const PatchSite& site, std::size_t field_offset) {
  auto fn = reinterpret_cast<int (*)()>(site.field - field_offset);
  return fn();
}

const void* target(bool b) {
  return b ? reinterpret_cast<const void*>(&target_b) : reinterpret_cast<const void*>(&target_a);
}

void check(benchmark::State& state, const PatchSite& site, std::size_t off, bool flip) {
  if (call(site, off) != (flip ? 1 : 2)) state.SkipWithError("the patched code returned a wrong value");
}

void store(benchmark::State& state, Sync sync) {
  const PatchSite site = make_caller(8);
  bool flip = false;
  for (auto _ : state) {
    flip = !flip;
    auto r = env().patcher->retarget(site, target(flip), sync);
    if (!r) {
      state.SkipWithError(r.error().message().c_str());
      break;
    }
  }
  check(state, site, 8, !flip);
}

void BM_StoreOnly(benchmark::State& state) { store(state, Sync::kNone); }
void BM_StoreSync(benchmark::State& state) { store(state, Sync::kAllCores); }

void BM_Breakpoint(benchmark::State& state) {
  const PatchSite site = make_caller(62);
  bool flip = false;
  for (auto _ : state) {
    flip = !flip;
    auto r = env().patcher->retarget_by_breakpoint(site, target(flip));
    if (!r) {
      state.SkipWithError(r.error().message().c_str());
      break;
    }
  }
  check(state, site, 62, !flip);
}

void BM_BatchedPerSite(benchmark::State& state) {
  // One benchmark iteration per site: queue it; every 64th iteration commits the batch, so the
  // time per iteration is the batch's cost (3 serializations included) amortized per site.
  constexpr std::size_t kSites = 64;
  std::vector<PatchSite> sites;
  for (std::size_t i = 0; i < kSites; ++i) sites.push_back(make_caller(62));
  PatchBatch batch(*env().patcher);
  std::size_t i = 0;
  bool flip = true;
  for (auto _ : state) {
    if (auto r = batch.retarget(sites[i], target(flip)); !r) {
      state.SkipWithError(r.error().message().c_str());
      break;
    }
    if (++i == kSites) {
      if (auto r = env().patcher->commit(batch); !r) {
        state.SkipWithError(r.error().message().c_str());
        break;
      }
      i = 0;
      flip = !flip;
    }
  }
  if (i != 0) {  // after the timed loop: finish the partial batch so that all sites agree
    for (; i < kSites; ++i) (void)batch.retarget(sites[i], target(flip));
    if (auto r = env().patcher->commit(batch); !r) state.SkipWithError(r.error().message().c_str());
    flip = !flip;
  }
  for (const PatchSite& s : sites) check(state, s, 62, flip);
  state.counters["sites_per_batch"] = kSites;
}

void BM_MprotectBaseline(benchmark::State& state) {
  const long page = sysconf(_SC_PAGESIZE);
  // A page within rel32 reach of the targets (the binary), like the zone's code.
  void* mem = MAP_FAILED;
  const auto near = reinterpret_cast<std::uintptr_t>(&target_a) & ~static_cast<std::uintptr_t>(page - 1);
  for (std::uintptr_t off = std::uintptr_t{64} << 20; off < (std::uintptr_t{1} << 31); off += 64u << 20) {
    mem = mmap(reinterpret_cast<void*>(near + off), static_cast<std::size_t>(page), PROT_READ | PROT_WRITE,
               MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED_NOREPLACE, -1, 0);
    if (mem != MAP_FAILED) break;
  }
  if (mem == MAP_FAILED) die("mmap", "no free page within rel32 reach of the binary");
  auto* code = static_cast<std::uint8_t*>(mem);
  const std::uint8_t stub[] = {0x48, 0x83, 0xEC, 0x08, 0x0F, 0x1F, 0x00, 0xE8, 0,
                               0,    0,    0,    0x48, 0x83, 0xC4, 0x08, 0xC3};
  std::memcpy(code, stub, sizeof stub);
  auto rel_to = [&](bool b) {
    const auto t = reinterpret_cast<std::uintptr_t>(target(b));
    return static_cast<std::int32_t>(t - reinterpret_cast<std::uintptr_t>(code + 12));
  };
  std::int32_t r0 = rel_to(false);
  std::memcpy(code + 8, &r0, 4);
  if (mprotect(mem, static_cast<std::size_t>(page), PROT_READ | PROT_EXEC) != 0) die("mprotect", "RX");
  bool flip = false;
  for (auto _ : state) {
    flip = !flip;
    // The naive way: live code made writable (a thread running it would fault: W^X forbids
    // it being executable meanwhile), written, made executable again.
    if (mprotect(mem, static_cast<std::size_t>(page), PROT_READ | PROT_WRITE) != 0) die("mprotect", "RW");
    const std::int32_t r = rel_to(flip);
    __atomic_store_n(reinterpret_cast<std::int32_t*>(code + 8), r, __ATOMIC_RELEASE);
    if (mprotect(mem, static_cast<std::size_t>(page), PROT_READ | PROT_EXEC) != 0) die("mprotect", "RX");
  }
  if (reinterpret_cast<int (*)()>(code)() != (flip ? 2 : 1)) state.SkipWithError("wrong result");
  munmap(mem, static_cast<std::size_t>(page));
}

BENCHMARK(BM_StoreOnly)->Name("BM_Retarget/store_only");
BENCHMARK(BM_StoreSync)->Name("BM_Retarget/store_sync");
BENCHMARK(BM_Breakpoint)->Name("BM_Retarget/breakpoint");
BENCHMARK(BM_BatchedPerSite)->Name("BM_Retarget/batched_per_site");
BENCHMARK(BM_MprotectBaseline)->Name("BM_Retarget/mprotect_baseline");

}  // namespace

BENCHMARK_MAIN();
