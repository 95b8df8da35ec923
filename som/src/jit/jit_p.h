// The SOM baseline JIT: compiles bytecode methods and blocks to x86-64 with jitkit, and runs them
// beside the interpreter (docs/som-jit.md has the whole design).
//
//  * jitkit::x64 emits, jitkit::install puts the code into a dual-mapped CodeZone (never W+X),
//    jitkit::ic provides every send site's inline cache (monomorphic → PIC → megamorphic),
//    jitkit::patch retargets a method's entry stub when the method gets compiled, and
//    jitkit::debug names every compiled method `Class>>selector` for gdb and perf.
//  * Compiled frames have the interpreter's frame layout (object_p.h) and keep every value in
//    a frame slot, so the collector, stack traces and non-local return treat them alike.
//  * Tiering: a method is compiled after VM::jit_threshold_ interpreter invocations plus
//    back-edges; a back-edge past the threshold transfers the running frame into the compiled
//    code (on-stack replacement). With start_compile_thread() the compile runs on a thread of its
//    own (compile_thread_p.h) while the interpreter goes on, and the code is used from the
//    first tier-up check after it is ready.
#pragma once

#include <cstdint>
#include <cstdio>
#include <memory>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "object_p.h"

namespace jitkit::code {
class CodeZone;
}
namespace jitkit::ic {
class Engine;
}
namespace jitkit::patch {
class Patcher;
}

namespace som {

class VM;
struct CompileOutcome;  // jit_impl_p.h

// Interpreter invocations plus back-edges before a method is compiled (`som --jit=on`): the
// embedding API's default (jitkit/som/vm.h).
using jitkit::som::kDefaultJitThreshold;

// What `som --jit-stats` prints.
struct JitStats {
  uint64_t methods_compiled = 0;
  uint64_t compile_failures = 0;
  uint64_t bytecode_bytes = 0;  // of the compiled methods
  uint64_t code_bytes = 0;      // machine code of the compiled methods (without entry stubs)
  uint64_t compile_nanos = 0;   // bytecode -> installed code with attached send sites
  uint64_t register_nanos = 0;  // naming the code for gdb and perf (jitkit::debug)
  uint64_t background_compiles = 0;  // of methods_compiled and compile_failures
  // Time the interpreter's thread spent on compiling: foreground compiles whole, and for
  // background ones submitting the request and publishing the code.
  uint64_t foreground_nanos = 0;
  uint64_t osr_entries = 0;  // frames moved from the interpreter into compiled code
  uint64_t invalidations = 0;  // selectors whose caches were dropped after a method change
};

class Jit {
 public:
  // Makes the code zone, the inline-cache engine and the shared stubs; fatal on failure (the
  // VM cannot run compiled code without them, and `--jit=off` needs none of it).
  explicit Jit(VM& vm);
  ~Jit();
  Jit(const Jit&) = delete;
  Jit& operator=(const Jit&) = delete;

  // Compiles `m` (a bytecode method or block) now, on this thread, unless it is compiled
  // already (a background compile of it is waited for). False when it cannot be compiled (the
  // reason is printed under -d); the method then stays interpreted.
  bool compile(Method* m);
  // One invocation of bytecode method `m` outside compiled code: true when it runs compiled.
  // Once its invocations plus back-edges reach `threshold` (VM::jit_threshold_) it is compiled
  // (reached_threshold).
  bool tier_up(Method* m, uint32_t threshold) {
    return m->jit_entry || (++m->hotness >= threshold && !m->jit_failed && reached_threshold(m));
  }
  // A hot method: compiled now (true); or, once start_compile_thread() ran and with a threshold
  // above 0, submitted to the compile thread, answering whether its code has become ready.
  // Each call also publishes the code of every background compile that has finished.
  bool reached_threshold(Method* m);
  // Background compilation from now on (`som --jit-background=on`): starts the compile thread,
  // ahead of the first hot method. There is no way back.
  void start_compile_thread();

  // Runs compiled method `m` on the receiver and arguments at base[0..n] for the interpreter
  // frame `caller` (VM::fp_/pc_/sp_ describe the caller). Answers the method's value; with
  // VM::unwind_target_ set, a non-local return is passing through.
  Value enter(Method* m, Value* base, Frame* caller);
  // On-stack replacement: the compiled address that continues frame `f` at bytecode `pc` (a
  // loop head), compiling the method first; 0 if there is none.
  uintptr_t osr_entry(Frame* f, uint32_t pc);
  // Continues interpreter frame `f` in compiled code at `entry` until the frame returns.
  Value enter_osr(Frame* f, uintptr_t entry);

  // Frees `m`'s machine code and entry stub, for a method that is being deleted (the compiler
  // fuzzer's): no frame may be running it. The method is interpreted again afterwards.
  void discard(Method* m);

  // VM::on_method_changed: drops every inline cache that may hold a method for `selector`.
  void method_changed(Symbol* selector);

  // Compiled code, for -d, the demo and tests: the disassembly of `m` with names resolved, and
  // the state of each of its send sites' inline caches.
  std::string listing(Method* m);
  // The listings of every compiled method or block named `name` ("Class>>selector", blocks
  // "Class>>selector [block]"); empty if none.
  std::string listing(std::string_view name);
  std::string site_states(Method* m);
  const JitStats& stats() const { return stats_; }
  // Inline-cache counts: sites by state now, and transitions so far.
  std::string cache_report();
  // `som --jit-stats`.
  void print_stats(std::FILE* out);

  struct Impl;

 private:
  // Makes the outcome of a compile of `m` reachable, or marks `m` as staying interpreted.
  void publish(CompileOutcome outcome);
  // Takes a queued method back from the compile thread, publishing the compile it may have
  // finished: afterwards no background outcome for `m` can arrive.
  void withdraw(Method* m);
  // Publishes every finished background compile (publish_if_finished: if there is one, which
  // costs one atomic load).
  void publish_finished();
  void publish_if_finished();

  VM& vm_;
  JitStats stats_;
  std::unique_ptr<Impl> impl_;
};

}  // namespace som
