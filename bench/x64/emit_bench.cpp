// Emission throughput of jitkit's x64 Assembler against AsmJit and Xbyak, in one binary.
// BM_EmitMix/<library> emits one 10M-instruction function; BM_EmitFunctions/<library> (further
// down) emits the same mix as 10,000 functions of 70 instructions, each finalized on its own.
//
// BM_EmitMix/<library> emits the same instruction mix, repeated to ~10 million instructions, and
// finalizes it (every label resolved, the final bytes in a buffer ready to copy or install):
//
//   top:  mov r64, imm32          ; each library's own choice of encoding
//         add r64, r64
//         mov [r64+8], r64
//         mov r32, [rip+data]     ; forward label, resolved at the end
//         cmp r64, imm8
//         jne top                 ; backward label (a new one per group)
//         call fn                 ; forward label, resolved at the end
//   ...
//   fn:   ret
//   data: dq 0
//
// Registers rotate over 8 choices (including r12/r13, whose encodings need SIB/disp bytes) so no
// library sees one constant instruction. items_per_second counts instructions.
//
// Finalizing, per library:
//   jitkit  Assembler::encode_into(base, out) — relaxes, resolves labels, writes the final bytes
//           into `out` (reused across iterations).
//   AsmJit  CodeHolder::flatten(), resolveUnresolvedLinks(), relocateToBase(base), then
//           copyFlattenedData() into a preallocated destination (what JitRuntime::add does).
//   Xbyak   labels resolve as they are bound into its fixed buffer; ready() checks none is left.
// Each library reuses its emitter and output across iterations where its API allows (jitkit
// reset() + encode_into(); Xbyak reset() on a caller-provided buffer; AsmJit's CodeHolder has no
// such API, so it is re-initialised and its text buffer reserved up front; its destination buffer
// is reused), as a JIT compiling many functions does. Rates use CPU time: this machine is shared,
// and wall time mostly measures the other processes.
//
// After timing, each benchmark checks that the output is plausible (size per instruction within
// bounds, and the first group decodes, with Zydis, as the seven instructions above), so that a
// library that silently emitted nothing cannot produce a number.
#include <benchmark/benchmark.h>

#include <asmjit/x86.h>
#include <malloc.h>
#include <xbyak/xbyak.h>

#include <algorithm>
#include <array>
#include <cstdint>
#include <cstdlib>
#include <memory>
#include <string>
#include <vector>

#include "jitkit/x64/assembler.h"
#include "jitkit/x64/disassemble.h"

namespace {

constexpr std::size_t kInstructionsPerGroup = 7;
constexpr std::size_t kGroups = 10'000'000 / kInstructionsPerGroup;
constexpr std::size_t kInstructions = kGroups * kInstructionsPerGroup;
constexpr std::uint64_t kBase = 0x10000000;
// Bytes per group: at least 2+3+4+6+4+2+5, at most ~8+3+5+7+4+2+5 (with some slack).
constexpr std::size_t kMinGroupBytes = 24;
constexpr std::size_t kMaxGroupBytes = 40;
constexpr std::size_t kBufferBytes = kGroups * kMaxGroupBytes + 4096;

// Hardware numbers of the registers the mix rotates over.
constexpr std::array<std::uint8_t, 8> kRegs = {0, 1, 2, 3, 6, 7, 12, 13};
constexpr std::uint8_t reg(std::size_t g, std::size_t k) { return kRegs[(g + k) & 7]; }
constexpr std::int32_t imm(std::size_t g) { return static_cast<std::int32_t>((g & 0x7fff) + 1); }

// Checks what a library produced (`code` holds at least the first `available` of `size` bytes);
// returns an empty string when plausible.
std::string check_output(const std::uint8_t* code, std::size_t available, std::size_t size,
                         std::size_t groups = kGroups) {
  if (size < groups * kMinGroupBytes || size > groups * kMaxGroupBytes) {
    return "implausible code size " + std::to_string(size) + " bytes for " +
           std::to_string(groups * kInstructionsPerGroup) + " instructions";
  }
  static const std::array<const char*, kInstructionsPerGroup> kWant = {"mov", "add", "mov", "mov",
                                                                       "cmp", "jnz", "call"};
  // The labels were resolved: in the first group, jne goes back to its start, the rip-relative
  // load reads `data` (the last 8 bytes) and the call reaches `fn` (the ret before them).
  const std::uint64_t fn = kBase + size - 9;
  const std::uint64_t data = kBase + size - 8;
  std::size_t offset = 0;
  for (const char* want : kWant) {
    if (offset >= available) return "first group longer than the bytes kept";
    auto d = jitkit::x64::decode_one(code + offset, available - offset, kBase + offset);
    if (!d) return "first group does not decode: " + d.error().message();
    if (d->mnemonic != want) return "first group: '" + d->text + "' where " + want + " expected";
    const std::uint64_t next = kBase + offset + d->length;
    const std::string m = d->mnemonic;
    if ((m == "jnz" && d->operands[0].target != kBase) || (m == "call" && d->operands[0].target != fn)) {
      return "unresolved or wrong branch target in '" + d->text + "'";
    }
    if (m == "mov" && d->operands.size() == 2 && d->operands[1].base == "rip" &&
        next + static_cast<std::uint64_t>(d->operands[1].displacement) != data) {
      return "rip-relative load does not reach data: '" + d->text + "'";
    }
    offset += d->length;
  }
  if (code[size - 9] != 0xC3) return "no ret before the data";
  return {};
}

// --- jitkit ---------------------------------------------------------------------------------

// One function of `groups` repetitions of the mix.
void emit_jitkit(jitkit::x64::Assembler& a, std::size_t groups) {
  using namespace jitkit::x64;
  const Label fn = a.new_label();
  const Label data = a.new_label();
  for (std::size_t g = 0; g < groups; ++g) {
    const Label top = a.new_label();
    a.bind(top);
    a.mov(Gp64{reg(g, 0)}, imm(g));
    a.add(Gp64{reg(g, 1)}, Gp64{reg(g, 2)});
    a.mov(qword_ptr(Gp64{reg(g, 3)}, 8), Gp64{reg(g, 4)});
    a.mov(Gp32{reg(g, 5)}, dword_ptr(data));
    a.cmp(Gp64{reg(g, 6)}, 3);
    a.jne(top);
    a.call(fn);
  }
  a.bind(fn);
  a.ret();
  a.bind(data);
  a.dq(0);
}

void BM_EmitMix_jitkit(benchmark::State& state) {
  using namespace jitkit::x64;
  Assembler a(kBufferBytes);
  std::size_t size = 0;
  EncodedCode encoded;  // reused: encode_into keeps its capacity, like the others' buffers
  for (auto _ : state) {
    a.reset();
    emit_jitkit(a, kGroups);
    if (auto status = a.encode_into(kBase, encoded); !status) {
      state.SkipWithError(("jitkit encode failed: " + status.error().message()).c_str());
      return;
    }
    size = encoded.code_size;
    benchmark::DoNotOptimize(encoded.bytes.data());
    benchmark::ClobberMemory();
  }
  if (const std::string err = check_output(encoded.bytes.data(), size, size); !err.empty()) {
    state.SkipWithError(("jitkit: " + err).c_str());
  }
  state.SetItemsProcessed(static_cast<std::int64_t>(state.iterations() * kInstructions));
  state.counters["bytes"] = static_cast<double>(size);
}

// --- AsmJit ---------------------------------------------------------------------------------

void emit_asmjit(asmjit::x86::Assembler& a, std::size_t groups) {
  using namespace asmjit;
  static const std::array<x86::Gp, 16> gp64 = {x86::rax, x86::rcx, x86::rdx, x86::rbx, x86::rsp, x86::rbp,
                                               x86::rsi, x86::rdi, x86::r8,  x86::r9,  x86::r10, x86::r11,
                                               x86::r12, x86::r13, x86::r14, x86::r15};
  const Label fn = a.newLabel();
  const Label data = a.newLabel();
  for (std::size_t g = 0; g < groups; ++g) {
    const Label top = a.newLabel();
    a.bind(top);
    a.mov(gp64[reg(g, 0)], imm(g));
    a.add(gp64[reg(g, 1)], gp64[reg(g, 2)]);
    a.mov(x86::qword_ptr(gp64[reg(g, 3)], 8), gp64[reg(g, 4)]);
    a.mov(gp64[reg(g, 5)].r32(), x86::dword_ptr(data));
    a.cmp(gp64[reg(g, 6)], 3);
    a.jne(top);
    a.call(fn);
  }
  a.bind(fn);
  a.ret();
  a.bind(data);
  a.dq(0);
}

// Finalizes into `dest`; returns the code size, or 0 after reporting an error.
std::size_t finalize_asmjit(benchmark::State& state, asmjit::CodeHolder& code,
                            std::vector<std::uint8_t>& dest) {
  using namespace asmjit;
  Error err = code.flatten();
  if (err == kErrorOk) err = code.resolveUnresolvedLinks();
  if (err == kErrorOk) err = code.relocateToBase(kBase);
  const std::size_t size = code.codeSize();
  if (err == kErrorOk && size <= dest.size()) err = code.copyFlattenedData(dest.data(), dest.size());
  if (err != kErrorOk || size > dest.size()) {
    state.SkipWithError(err != kErrorOk ? DebugUtils::errorAsString(err) : "AsmJit output too large");
    return 0;
  }
  return size;
}

void BM_EmitMix_asmjit(benchmark::State& state) {
  using namespace asmjit;
  std::vector<std::uint8_t> dest(kBufferBytes);
  std::size_t size = 0;
  const Environment env(Arch::kX64);
  for (auto _ : state) {
    CodeHolder code;
    code.init(env);
    code.reserveBuffer(&code.textSection()->buffer(), kBufferBytes);
    x86::Assembler a(&code);
    emit_asmjit(a, kGroups);
    size = finalize_asmjit(state, code, dest);
    if (size == 0) return;
    benchmark::DoNotOptimize(dest.data());
    benchmark::ClobberMemory();
  }
  if (const std::string e = check_output(dest.data(), size, size); !e.empty()) {
    state.SkipWithError(("asmjit: " + e).c_str());
  }
  state.SetItemsProcessed(static_cast<std::int64_t>(state.iterations() * kInstructions));
  state.counters["bytes"] = static_cast<double>(size);
}

// --- Xbyak ----------------------------------------------------------------------------------

class XbyakMix : public Xbyak::CodeGenerator {
 public:
  XbyakMix(std::uint8_t* buffer, std::size_t size) : Xbyak::CodeGenerator(size, buffer) {}

  void emit(std::size_t groups) {
    const std::array<const Xbyak::Reg64*, 16> gp64 = {&rax, &rcx, &rdx, &rbx, &rsp, &rbp, &rsi, &rdi,
                                                      &r8,  &r9,  &r10, &r11, &r12, &r13, &r14, &r15};
    Xbyak::Label fn, data;
    for (std::size_t g = 0; g < groups; ++g) {
      Xbyak::Label top;
      L(top);
      mov(*gp64[reg(g, 0)], imm(g));
      add(*gp64[reg(g, 1)], *gp64[reg(g, 2)]);
      mov(qword[*gp64[reg(g, 3)] + 8], *gp64[reg(g, 4)]);
      mov(gp64[reg(g, 5)]->cvt32(), dword[rip + data]);
      cmp(*gp64[reg(g, 6)], 3);
      jne(top);
      call(fn);
    }
    L(fn);
    ret();
    L(data);
    dq(0);
    ready();
  }
};

void BM_EmitMix_xbyak(benchmark::State& state) {
  // Page-aligned caller buffer: Xbyak then neither allocates nor changes page protection.
  struct Free {
    void operator()(std::uint8_t* p) const { std::free(p); }
  };
  std::unique_ptr<std::uint8_t, Free> buffer(
      static_cast<std::uint8_t*>(std::aligned_alloc(4096, (kBufferBytes + 4095) / 4096 * 4096)));
  XbyakMix gen(buffer.get(), kBufferBytes);
  std::size_t size = 0;
  for (auto _ : state) {
    gen.reset();
    try {
      gen.emit(kGroups);
    } catch (const std::exception& e) {
      state.SkipWithError((std::string("xbyak: ") + e.what()).c_str());
      return;
    }
    size = gen.getSize();
    benchmark::DoNotOptimize(gen.getCode());
    benchmark::ClobberMemory();
  }
  if (const std::string e = check_output(gen.getCode(), size, size); !e.empty()) {
    state.SkipWithError(("xbyak: " + e).c_str());
  }
  state.SetItemsProcessed(static_cast<std::int64_t>(state.iterations() * kInstructions));
  state.counters["bytes"] = static_cast<double>(size);
}

// --- Many small functions ------------------------------------------------------------------
// BM_EmitFunctions/<library>: the same mix as 10,000 separate functions of 70 instructions, each
// finalized on its own, the shape of a method JIT. Per-function costs (resetting the emitter,
// labels, finalizing) weigh here; nothing is large enough to page-fault.

constexpr std::size_t kFunctionGroups = 10;
constexpr std::size_t kFunctions = 10'000;
constexpr std::size_t kFunctionInstructions = kFunctions * kFunctionGroups * kInstructionsPerGroup;
constexpr std::size_t kFunctionBytes = kFunctionGroups * kMaxGroupBytes + 64;

void BM_EmitFunctions_jitkit(benchmark::State& state) {
  using namespace jitkit::x64;
  Assembler a(kFunctionBytes);
  EncodedCode encoded;
  for (auto _ : state) {
    for (std::size_t f = 0; f < kFunctions; ++f) {
      a.reset();
      emit_jitkit(a, kFunctionGroups);
      if (auto status = a.encode_into(kBase, encoded); !status) {
        state.SkipWithError(("jitkit encode failed: " + status.error().message()).c_str());
        return;
      }
      benchmark::DoNotOptimize(encoded.bytes.data());
      benchmark::ClobberMemory();
    }
  }
  if (const std::string e =
          check_output(encoded.bytes.data(), encoded.code_size, encoded.code_size, kFunctionGroups);
      !e.empty()) {
    state.SkipWithError(("jitkit: " + e).c_str());
  }
  state.SetItemsProcessed(static_cast<std::int64_t>(state.iterations() * kFunctionInstructions));
}

void BM_EmitFunctions_asmjit(benchmark::State& state) {
  using namespace asmjit;
  std::vector<std::uint8_t> dest(kFunctionBytes);
  const Environment env(Arch::kX64);
  CodeHolder code;
  x86::Assembler a;
  std::size_t size = 0;
  for (auto _ : state) {
    for (std::size_t f = 0; f < kFunctions; ++f) {
      code.reset();  // AsmJit's way to reuse a CodeHolder: reset, init, re-attach the emitter
      code.init(env);
      code.attach(&a);
      emit_asmjit(a, kFunctionGroups);
      size = finalize_asmjit(state, code, dest);
      if (size == 0) return;
      benchmark::DoNotOptimize(dest.data());
      benchmark::ClobberMemory();
    }
  }
  if (const std::string e = check_output(dest.data(), size, size, kFunctionGroups); !e.empty()) {
    state.SkipWithError(("asmjit: " + e).c_str());
  }
  state.SetItemsProcessed(static_cast<std::int64_t>(state.iterations() * kFunctionInstructions));
}

void BM_EmitFunctions_xbyak(benchmark::State& state) {
  std::vector<std::uint8_t> buffer(kFunctionBytes);
  XbyakMix gen(buffer.data(), buffer.size());
  std::size_t size = 0;
  for (auto _ : state) {
    for (std::size_t f = 0; f < kFunctions; ++f) {
      gen.reset();
      try {
        gen.emit(kFunctionGroups);
      } catch (const std::exception& e) {
        state.SkipWithError((std::string("xbyak: ") + e.what()).c_str());
        return;
      }
      size = gen.getSize();
      benchmark::DoNotOptimize(gen.getCode());
      benchmark::ClobberMemory();
    }
  }
  if (const std::string e = check_output(gen.getCode(), size, size, kFunctionGroups); !e.empty()) {
    state.SkipWithError(("xbyak: " + e).c_str());
  }
  state.SetItemsProcessed(static_cast<std::int64_t>(state.iterations() * kFunctionInstructions));
}

BENCHMARK(BM_EmitMix_jitkit)->Name("BM_EmitMix/jitkit")->Unit(benchmark::kMillisecond);
BENCHMARK(BM_EmitMix_asmjit)->Name("BM_EmitMix/asmjit")->Unit(benchmark::kMillisecond);
BENCHMARK(BM_EmitMix_xbyak)->Name("BM_EmitMix/xbyak")->Unit(benchmark::kMillisecond);
BENCHMARK(BM_EmitFunctions_jitkit)->Name("BM_EmitFunctions/jitkit")->Unit(benchmark::kMillisecond);
BENCHMARK(BM_EmitFunctions_asmjit)->Name("BM_EmitFunctions/asmjit")->Unit(benchmark::kMillisecond);
BENCHMARK(BM_EmitFunctions_xbyak)->Name("BM_EmitFunctions/xbyak")->Unit(benchmark::kMillisecond);

}  // namespace

// Keep freed memory in the heap for reuse (no mmap/munmap per large buffer). AsmJit has no API to
// keep its code buffer across functions, so without this every AsmJit iteration would mostly
// measure the kernel faulting in ~45 MB of fresh pages; jitkit and Xbyak reuse their buffers
// anyway. This is the allocator configuration most favourable to the comparators.
int main(int argc, char** argv) {
  mallopt(M_MMAP_MAX, 0);
  mallopt(M_TRIM_THRESHOLD, 1 << 30);
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
