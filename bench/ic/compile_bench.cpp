// compile_bench: what a baseline JIT pays the toolkit to compile one method, stage by stage,
// without any VM: the same method shape as the SOM JIT's (som/src/jit), emitted into a fresh
// Assembler per method, as a method compiler that owns its Assembler does.
//
// The method: a frame-pointer prologue, then per "bytecode" a bound label, frame-slot moves,
// a tagged-integer check and an overflow check that jump forward to an out-of-line slow path,
// every 4th a send through an inline-cache site (ic::Engine::emit_send), every 8th a call of a
// host runtime function, every 16th a backward jump to an earlier bytecode; then the epilogue
// and the slow paths (a host call and a jump back). Arg = bytecodes: 10 gives about 900 bytes of
// code, 40 about 3.6 KB (the SOM JIT's methods are 300 to 2000 bytes).
//
//   BM_CompileStages/emit/<n>      emitting into a fresh Assembler
//   BM_CompileStages/encode/<n>    + Assembler::encode (layout for a base address)
//   BM_CompileStages/install/<n>   emitting + install::install into a code zone, then freeing it
//   BM_CompileStages/attach/<n>    + ic::Engine::attach of every send site (and detach_range)
//   BM_CompileStages/register/<n>  + debug::register_installed with the frame shape given (and
//                                  its release)
// Time is per method; code_bytes is its size, bytes_per_second counts code bytes.
//   BM_FirstCompileInZone/<n>      the whole pipeline (emit, install, attach, register) for the
//                                  first method of a new zone and engine (a new VM's first
//                                  compile): only that compile is timed, making the zone is not.
#include <benchmark/benchmark.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "jitkit/code/code_zone.h"
#include "jitkit/debug/installed_code.h"
#include "jitkit/ic/engine.h"
#include "jitkit/install/install.h"
#include "jitkit/x64/assembler.h"

namespace {

using namespace jitkit;
using namespace jitkit::x64;

[[noreturn]] void die(const Error& e) {
  std::fprintf(stderr, "compile_bench: %s\n", e.message().c_str());
  std::exit(1);
}
template <typename T>
T take(Result<T> r) {
  if (!r) die(r.error());
  return std::move(r).value();
}

// Host functions the generated code calls (never run).
extern "C" void compile_bench_runtime_a() {}
extern "C" void compile_bench_runtime_b() {}

enum class Stage { kEmit, kEncode, kInstall, kAttach, kRegister };

struct World {
  World() {
    code::ZoneOptions zo;
    zo.reserve_bytes = 64u << 20;
    make(zo);
  }
  explicit World(const code::ZoneOptions& zo) { make(zo); }
  void make(const code::ZoneOptions& zo) {
    zone = take(code::CodeZone::create(zo));
    ic::VmInterface vm;
    vm.load_tag = [](Assembler& a, Gp64 receiver, Gp32 tag) { a.mov(tag, dword_ptr(receiver, 0)); };
    vm.lookup = [](std::uint32_t, std::uint32_t) -> std::optional<ic::Method> { return std::nullopt; };
    vm.not_understood = [](const ic::NotUnderstood&) -> std::uint64_t { return 0; };
    ic::EngineOptions eo;
    eo.convention.receiver = rdi;
    eo.convention.args = {rsi};
    engine = take(ic::Engine::create(*zone, std::move(vm), eo));
  }
  std::unique_ptr<code::CodeZone> zone;
  std::unique_ptr<ic::Engine> engine;
};

// The method of the file comment into `a`; its send sites into `sends`.
void emit_method(Assembler& a, ic::Engine& engine, int bytecodes, std::vector<ic::SendSite>& sends) {
  const Gp64 frame = r12, vm = rbx;
  auto slot = [&](int i) { return qword_ptr(frame, 64 + 8 * (i % 12)); };
  std::vector<Label> pc(static_cast<std::size_t>(bytecodes) + 1);
  for (Label& l : pc) l = a.new_label();
  struct Slow {
    Label entry, resume;
    int pc;
  };
  std::vector<Slow> slow;
  a.push(rbp);
  a.mov(rbp, rsp);
  a.push(frame);
  a.sub(rsp, 8);
  a.mov(frame, rsi);
  for (int i = 0; i < bytecodes; ++i) {
    a.bind(pc[static_cast<std::size_t>(i)]);
    a.mov(rax, slot(i));
    a.mov(slot(i + 1), rax);
    Slow s{a.new_label(), a.new_label(), i};
    a.test(al, 1);
    a.jz(s.entry);
    a.mov(rcx, slot(i + 2));
    a.add(rcx, -1);
    a.add(rax, rcx);
    a.jo(s.entry);
    a.mov(slot(i + 3), rax);
    a.bind(s.resume);
    slow.push_back(s);
    if (i % 4 == 3) {
      a.mov(qword_ptr(vm, 8), frame);
      a.lea(rsi, slot(i));
      a.mov(rdi, qword_ptr(rsi, 0));
      auto send = engine.emit_send(a, static_cast<std::uint32_t>(i));
      if (!send) die(send.error());
      sends.push_back(*send);
      a.cmp(qword_ptr(vm, 16), 0);
      a.jne(pc[static_cast<std::size_t>(bytecodes)]);
      a.mov(slot(i), rax);
    }
    if (i % 8 == 5) {
      a.mov(rdi, vm);
      a.mov(rsi, frame);
      a.call(abs(reinterpret_cast<const void*>(&compile_bench_runtime_a)));
    }
    if (i % 16 == 15) {
      a.cmp(dword_ptr(vm, 24), 0);
      a.jne(pc[static_cast<std::size_t>(i - 12)]);
    }
  }
  a.bind(pc[static_cast<std::size_t>(bytecodes)]);
  a.mov(frame, qword_ptr(rbp, -8));
  a.mov(rsp, rbp);
  a.pop(rbp);
  a.ret();
  for (const Slow& s : slow) {
    a.bind(s.entry);
    a.mov(qword_ptr(vm, 0), static_cast<std::int64_t>(s.pc));
    a.mov(rdi, vm);
    a.lea(rsi, slot(s.pc));
    a.call(abs(reinterpret_cast<const void*>(&compile_bench_runtime_b)));
    a.mov(slot(s.pc + 3), rax);
    a.jmp(s.resume);
  }
}

void BM_CompileStages(benchmark::State& state, Stage stage) {
  static World* world = new World();  // lives as long as the process: its zone holds the code
  const int bytecodes = static_cast<int>(state.range(0));
  std::vector<ic::SendSite> sends;
  std::size_t code_bytes = 0;
  for (auto _ : state) {
    sends.clear();
    Assembler a;  // fresh per method, as a method compiler that owns its Assembler
    emit_method(a, *world->engine, bytecodes, sends);
    if (stage == Stage::kEmit) {
      code_bytes = a.buffer_size();  // without the relaxable jumps and host-address instructions
      benchmark::DoNotOptimize(code_bytes);
      continue;
    }
    if (stage == Stage::kEncode) {
      // For the zone's first address: the send sites' rel32 calls must reach the engine's stubs.
      auto encoded = take(a.encode(world->zone->begin()));
      code_bytes = encoded.code_size;
      benchmark::DoNotOptimize(encoded.bytes.data());
      continue;
    }
    auto code = take(install::install(a, *world->zone, {.name = "compile_bench_method"}));
    code_bytes = code.code_size();
    if (stage >= Stage::kAttach) {
      for (const ic::SendSite& s : sends) take(world->engine->attach(code, s));
    }
    std::optional<debug::Registration> registration;
    // With the frame shape given, as a JIT that knows its prologue does (no decoding).
    if (stage >= Stage::kRegister) {
      registration = take(debug::register_installed(code, debug::FrameInfo::frame_pointer(1, 4)));
    }
    registration.reset();
    if (stage >= Stage::kAttach) {
      if (auto s = world->engine->detach_range(code.start(), code.start() + code.used_size()); !s)
        die(s.error());
    }
    if (auto s = world->zone->free(code.block()); !s) die(s.error());
  }
  state.counters["code_bytes"] = static_cast<double>(code_bytes);
  state.SetBytesProcessed(static_cast<std::int64_t>(state.iterations() * code_bytes));
}

// emit + install + attach + register, and the sites' detach and the zone free afterwards.
std::size_t compile_once(World& world, int bytecodes, std::vector<ic::SendSite>& sends,
                         std::optional<debug::Registration>& registration, install::InstalledCode& code) {
  sends.clear();
  Assembler a;
  emit_method(a, *world.engine, bytecodes, sends);
  code = take(install::install(a, *world.zone, {.name = "compile_bench_method"}));
  for (const ic::SendSite& s : sends) take(world.engine->attach(code, s));
  registration = take(debug::register_installed(code, debug::FrameInfo::frame_pointer(1, 4)));
  return code.code_size();
}

void BM_FirstCompileInZone(benchmark::State& state) {
  const int bytecodes = static_cast<int>(state.range(0));
  std::vector<ic::SendSite> sends;
  std::size_t code_bytes = 0;
  code::ZoneOptions zo;
  zo.reserve_bytes = 8u << 20;
  for (auto _ : state) {
    auto world = std::make_unique<World>(zo);
    std::optional<debug::Registration> registration;
    install::InstalledCode code;
    const auto t0 = std::chrono::steady_clock::now();
    code_bytes = compile_once(*world, bytecodes, sends, registration, code);
    state.SetIterationTime(std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
    registration.reset();
  }
  state.counters["code_bytes"] = static_cast<double>(code_bytes);
}

}  // namespace

BENCHMARK(BM_FirstCompileInZone)->Arg(10)->Arg(40)->UseManualTime()->Unit(benchmark::kMicrosecond);
BENCHMARK_CAPTURE(BM_CompileStages, emit, Stage::kEmit)->Arg(10)->Arg(40)->Unit(benchmark::kMicrosecond);
BENCHMARK_CAPTURE(BM_CompileStages, encode, Stage::kEncode)->Arg(10)->Arg(40)->Unit(benchmark::kMicrosecond);
BENCHMARK_CAPTURE(BM_CompileStages, install, Stage::kInstall)
    ->Arg(10)
    ->Arg(40)
    ->Unit(benchmark::kMicrosecond);
BENCHMARK_CAPTURE(BM_CompileStages, attach, Stage::kAttach)->Arg(10)->Arg(40)->Unit(benchmark::kMicrosecond);
BENCHMARK_CAPTURE(BM_CompileStages, register, Stage::kRegister)
    ->Arg(10)
    ->Arg(40)
    ->Unit(benchmark::kMicrosecond);

BENCHMARK_MAIN();
