// Code-zone benchmarks, jitkit beside AsmJit in one binary and one run.
//
//   BM_AllocFree256/<lib>    allocate a 256-byte code block and free it.
//   BM_FunctionCycle/<lib>   the whole life of a small generated function: allocate, copy a
//                            prebuilt 20-instruction function in, make it executable, call it
//                            (the result is checked), free it.
// jitkit runs with dual mapping (the zone's mode is checked, not assumed). AsmJit entries:
//   asmjit           JitAllocator with default options (RWX pages on this Linux)
//   asmjit_dual      JitAllocator with kUseDualMapping (W^X, like jitkit)
//   asmjit_runtime   JitRuntime::add() of a CodeHolder holding the same bytes (the usual API)
// jitkit_other_threads finishes with Visibility::kOtherThreads, i.e. pays one membarrier
// SYNC_CORE per function, to show that cost separately.
#include <asmjit/asmjit.h>
#include <benchmark/benchmark.h>

#include <cstdint>
#include <cstring>

#include "jitkit/code/code_zone.h"

namespace {

using jitkit::code::CodeZone;
using jitkit::code::Visibility;
using jitkit::code::ZoneMode;

// 20 instructions computing a constant in eax (see expected_value()).
constexpr std::uint8_t kFunction[] = {
    0xB8, 0x07, 0x00, 0x00, 0x00,  // mov eax, 7
    0xB9, 0x03, 0x00, 0x00, 0x00,  // mov ecx, 3
    0x01, 0xC8,                    // add eax, ecx
    0x6B, 0xC0, 0x05,              // imul eax, eax, 5
    0x83, 0xE8, 0x04,              // sub eax, 4
    0x83, 0xF0, 0x55,              // xor eax, 0x55
    0x8D, 0x04, 0x48,              // lea eax, [rax + rcx*2]
    0xC1, 0xE0, 0x02,              // shl eax, 2
    0x01, 0xC1,                    // add ecx, eax
    0x89, 0xCA,                    // mov edx, ecx
    0xD1, 0xEA,                    // shr edx, 1
    0x01, 0xD0,                    // add eax, edx
    0x6B, 0xC9, 0x03,              // imul ecx, ecx, 3
    0x29, 0xC8,                    // sub eax, ecx
    0x83, 0xC0, 0x64,              // add eax, 100
    0xF7, 0xD0,                    // not eax
    0xF7, 0xD8,                    // neg eax
    0xFF, 0xC0,                    // inc eax
    0x25, 0xFF, 0xFF, 0x00, 0x00,  // and eax, 0xffff
    0xC3,                          // ret
};
using Fn = int (*)();

// The same computation in C++, so the check does not rely on a hard-coded answer.
int expected_value() {
  std::uint32_t eax = 7, ecx = 3, edx = 0;
  eax += ecx;
  eax *= 5;
  eax -= 4;
  eax ^= 0x55;
  eax = eax + ecx * 2;
  eax <<= 2;
  ecx += eax;
  edx = ecx;
  edx >>= 1;
  eax += edx;
  ecx *= 3;
  eax -= ecx;
  eax += 100;
  eax = ~eax;
  eax = 0u - eax;
  eax += 1;
  eax &= 0xFFFF;
  return static_cast<int>(eax);
}

std::unique_ptr<CodeZone> make_dual_zone(benchmark::State& state) {
  jitkit::code::ZoneOptions options;
  options.force_mode = ZoneMode::kDualMapped;
  auto zone = CodeZone::create(options);
  if (!zone) {
    state.SkipWithError(zone.error().message().c_str());
    return nullptr;
  }
  return std::move(zone).value();
}

void BM_AllocFree256_jitkit(benchmark::State& state) {
  auto zone = make_dual_zone(state);
  if (!zone) return;
  for (auto _ : state) {
    auto block = zone->allocate(256);
    if (!block) {
      state.SkipWithError(block.error().message().c_str());
      break;
    }
    benchmark::DoNotOptimize(block->exec);
    if (!zone->free(*block)) {
      state.SkipWithError("free failed");
      break;
    }
  }
}

void BM_AllocFree256_asmjit(benchmark::State& state) {
  asmjit::JitAllocator allocator;
  for (auto _ : state) {
    void* rx = nullptr;
    void* rw = nullptr;
    if (allocator.alloc(&rx, &rw, 256) != asmjit::kErrorOk) {
      state.SkipWithError("JitAllocator::alloc failed");
      break;
    }
    benchmark::DoNotOptimize(rx);
    allocator.release(rx);
  }
}

void function_cycle_jitkit(benchmark::State& state, Visibility visibility) {
  auto zone = make_dual_zone(state);
  if (!zone) return;
  const int expected = expected_value();
  for (auto _ : state) {
    auto block = zone->allocate(sizeof kFunction);
    if (!block || !zone->write(block->exec, kFunction, sizeof kFunction) ||
        !zone->make_executable(*block, visibility)) {
      state.SkipWithError("allocate/write/make_executable failed");
      break;
    }
    const int got = reinterpret_cast<Fn>(block->exec)();
    if (got != expected) {
      state.SkipWithError("generated function returned a wrong value");
      break;
    }
    if (!zone->free(*block)) {
      state.SkipWithError("free failed");
      break;
    }
  }
}

void BM_FunctionCycle_jitkit(benchmark::State& state) { function_cycle_jitkit(state, Visibility::kThisThread); }
void BM_FunctionCycle_jitkit_other_threads(benchmark::State& state) {
  function_cycle_jitkit(state, Visibility::kOtherThreads);
}

void function_cycle_asmjit_allocator(benchmark::State& state, asmjit::JitAllocatorOptions options) {
  asmjit::JitAllocator::CreateParams params;
  params.options = options;
  asmjit::JitAllocator allocator(&params);
  const int expected = expected_value();
  for (auto _ : state) {
    void* rx = nullptr;
    void* rw = nullptr;
    if (allocator.alloc(&rx, &rw, sizeof kFunction) != asmjit::kErrorOk) {
      state.SkipWithError("JitAllocator::alloc failed");
      break;
    }
    std::memcpy(rw, kFunction, sizeof kFunction);
    asmjit::VirtMem::flushInstructionCache(rx, sizeof kFunction);
    const int got = reinterpret_cast<Fn>(rx)();
    if (got != expected) {
      state.SkipWithError("generated function returned a wrong value");
      break;
    }
    allocator.release(rx);
  }
}

void BM_FunctionCycle_asmjit(benchmark::State& state) {
  function_cycle_asmjit_allocator(state, asmjit::JitAllocatorOptions::kNone);
}
void BM_FunctionCycle_asmjit_dual(benchmark::State& state) {
  function_cycle_asmjit_allocator(state, asmjit::JitAllocatorOptions::kUseDualMapping);
}

void BM_FunctionCycle_asmjit_runtime(benchmark::State& state) {
  asmjit::JitRuntime runtime;
  const int expected = expected_value();
  for (auto _ : state) {
    asmjit::CodeHolder code;
    code.init(runtime.environment());
    asmjit::x86::Assembler a(&code);
    a.embed(kFunction, sizeof kFunction);
    Fn fn = nullptr;
    if (runtime.add(&fn, &code) != asmjit::kErrorOk) {
      state.SkipWithError("JitRuntime::add failed");
      break;
    }
    if (fn() != expected) {
      state.SkipWithError("generated function returned a wrong value");
      break;
    }
    runtime.release(fn);
  }
}

}  // namespace

BENCHMARK(BM_AllocFree256_jitkit)->Name("BM_AllocFree256/jitkit");
BENCHMARK(BM_AllocFree256_asmjit)->Name("BM_AllocFree256/asmjit");
BENCHMARK(BM_FunctionCycle_jitkit)->Name("BM_FunctionCycle/jitkit");
BENCHMARK(BM_FunctionCycle_jitkit_other_threads)->Name("BM_FunctionCycle/jitkit_other_threads");
BENCHMARK(BM_FunctionCycle_asmjit)->Name("BM_FunctionCycle/asmjit");
BENCHMARK(BM_FunctionCycle_asmjit_dual)->Name("BM_FunctionCycle/asmjit_dual");
BENCHMARK(BM_FunctionCycle_asmjit_runtime)->Name("BM_FunctionCycle/asmjit_runtime");

BENCHMARK_MAIN();
