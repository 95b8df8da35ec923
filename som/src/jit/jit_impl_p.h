// The JIT's shared state (Jit::Impl) and the runtime functions compiled code calls. Private to
// som/src/jit: jit.cpp owns the state, method_compiler.cpp emits code against it,
// runtime.cpp implements the calls. docs/som-jit.md describes the conventions used here.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <type_traits>
#include <unordered_map>
#include <vector>

#include "jit/jit_p.h"
#include "jitkit/code/code_zone.h"
#include "jitkit/debug/code_registry.h"
#include "jitkit/ic/engine.h"
#include "jitkit/install/install.h"
#include "jitkit/patch/patcher.h"
#include "jitkit/x64/assembler.h"
#include "vm_p.h"

namespace som {

class CompileThread;  // compile_thread_p.h

// Registers of compiled code. kVmReg and kFrameReg are callee-saved in the System V ABI, so the
// runtime functions (C++) preserve them; everything else is scratch at every call.
//   rbx  the VM                       r12  the current Frame
//   rdi  receiver at a send, rsi  address of the receiver slot (base of the arguments),
//   rcx  the sender's resume pc at a send (kSenderPcReg),
//   rdx  the Method* an entry stub passes on; eax/r10d/r11: inline-cache machinery.
inline constexpr jitkit::x64::Gp64 kVmReg = jitkit::x64::rbx;
inline constexpr jitkit::x64::Gp64 kFrameReg = jitkit::x64::r12;
// At a send, the sender's resume pc (a bytecode address): the callee's prologue stores it as
// its frame's ret_pc. An argument register of the inline caches' convention, so the send
// machinery preserves it; entry stubs that leave compiled code store it, and kFrameReg, in
// VM::pc_ and VM::fp_ (compiled sends do not).
inline constexpr jitkit::x64::Gp64 kSenderPcReg = jitkit::x64::rcx;

// Byte offsets of the VM fields compiled code reads, from kVmReg.
struct VmOffsets {
  int32_t fp, pc, sp, need_gc, stack_limit, native_stack_limit, unwind_target, unwind_value;
  int32_t nil_binding, true_binding, false_binding, nil_value, true_value, false_value;
  int32_t run_state, facade, inline_array_access;
  // The heap's bump allocator (Heap::inline_alloc_offsets), for the inline Double boxes.
  int32_t heap_top, heap_end, heap_allocated, heap_budget, heap_hash_state;
};

// Offsets into objects (object_p.h). Frame fields are fixed by the struct (asserted in jit.cpp).
inline constexpr int32_t kFrameCaller = 0, kFrameRetPc = 8, kFrameMethod = 16, kFrameArgs = 24,
                         kFrameSelf = 32, kFrameContext = 40, kFrameOuterCtx = 48, kFrameIsEntry = 56,
                         kFrameLocals = 64;
inline constexpr int32_t kObjClass = 0, kObjHash = 4, kObjLength = 8, kObjKind = 12, kObjFlags = 13,
                         kObjSlots = 16;
// Context slots: [0] outer, [1] home marker, [2..] variables; Block slots: method, context, self.
inline constexpr int32_t kCtxOuter = kObjSlots, kCtxMarker = kObjSlots + 8, kCtxVars = kObjSlots + 16;
inline constexpr int32_t kBlockMethod = kObjSlots, kBlockContext = kObjSlots + 8, kBlockSelf = kObjSlots + 16;

// The code of one compiled method or block.
struct CompiledMethod {
  jitkit::install::InstalledCode code;
  std::vector<std::pair<uint32_t, uintptr_t>> osr_entries;  // loop-head pc -> address
  std::vector<jitkit::ic::SiteId> sites;                     // in bytecode order
  std::vector<uint32_t> site_pcs;                            // pc of each of `sites`
  // Where each bytecode instruction's code starts (code offset, pc), for listings; the text
  // ("pc 12: SEND") is made only when a listing is asked for.
  std::vector<std::pair<uint32_t, uint32_t>> instruction_offsets;
  std::optional<jitkit::debug::Registration> registration;  // Class>>selector for gdb, perf
  uint32_t frame_gone_offset = 0;                           // of the `ret` (unwind rules)
};

// One method to compile. The compiler may run on any thread (compile_thread_p.h): it reads
// only what does not change once a method exists (bytecode, literals, its send sites' selectors
// and arities, its blocks) and the VM's fixed class tags; what belongs to the interpreter's
// thread is resolved here, by that thread.
struct CompileRequest {
  Method* method = nullptr;
  // The engine's number of each send site's selector, in Method::sites order (Impl::selector_id
  // is the interpreter thread's).
  std::vector<uint32_t> site_selectors;
  // kOtherThreads when the code is compiled on another thread than the one that will run it.
  jitkit::code::Visibility visibility = jitkit::code::Visibility::kThisThread;
};

// What a compile produced: the code, installed, its send sites attached and named for gdb and
// perf, but not yet reachable (Jit::publish makes it so, on the interpreter's thread); or why
// there is none.
struct CompileOutcome {
  Method* method = nullptr;
  std::unique_ptr<CompiledMethod> compiled;  // nullptr: the compile failed, `error` says why
  std::string error;
  uint64_t compile_nanos = 0;   // bytecode -> installed code with attached send sites
  uint64_t register_nanos = 0;  // naming the code for gdb and perf
};

// A method's entry stub: what inline caches link to (ic::Method). It checks the receiver's tag
// (checked entry), then answers a frame-less accessor or a primitive directly, or jumps to the
// compiled body — a patch site that starts at the interpreter and is retargeted when the
// method gets compiled.
struct EntryStub {
  jitkit::install::InstalledCode code;
  jitkit::ic::Method entries;
  std::optional<jitkit::install::PatchSite> body_jump;
  std::optional<jitkit::debug::Registration> registration;  // entry:Class>>selector
};

struct Jit::Impl {
  std::unique_ptr<jitkit::code::CodeZone> zone;
  std::unique_ptr<jitkit::ic::Engine> engine;
  std::unique_ptr<jitkit::patch::Patcher> patcher;
  VmOffsets vm_offsets{};
  int32_t method_jit_entry = 0, method_num_args = 0, symbol_global = 0, symbol_has_global = 0;

  // Shared stubs (one code block).
  jitkit::install::InstalledCode stubs;
  Value (*enter)(VM* vm, uintptr_t entry, Value receiver, Value* base, Frame* caller, Method* m) = nullptr;
  Value (*enter_osr)(VM* vm, Frame* f, uintptr_t entry) = nullptr;
  uintptr_t invoke_thunk = 0;  // rdx = Method*: jit_runtime::invoke_from_stub

  std::unordered_map<Method*, std::unique_ptr<CompiledMethod>> compiled;
  std::unordered_map<Method*, std::unique_ptr<EntryStub>> entry_stubs;
  std::optional<jitkit::debug::Registration> stubs_registration;

  // Selectors as the engine's 31-bit numbers.
  std::unordered_map<Symbol*, uint32_t> selector_ids;
  std::vector<Symbol*> selectors;
  uint32_t selector_id(Symbol* s) {
    auto [it, added] = selector_ids.try_emplace(s, static_cast<uint32_t>(selectors.size()));
    if (added) selectors.push_back(s);
    return it->second;
  }
  Symbol* restart_selector = nullptr;
  Symbol* at_selector = nullptr;      // at:, answered inline for Arrays (VM::jit_inline_array_access_)
  Symbol* at_put_selector = nullptr;  // at:put:, likewise
  // Whether Array's at: and at:put: are still the primitives (jit.cpp).
  bool array_access_is_primitive(VM& vm) const;
  // Integer primitives whose entry stubs answer small-integer operands inline (the C++
  // primitive on any other operand), by their function. (`&` needs none: compiled code does
  // it inline at the send, as + and - .)
  enum class SmallIntOp : uint8_t { kBitXor, kBitOr, kShiftLeft, kShiftRightLogical };
  std::unordered_map<PrimFn, SmallIntOp> small_int_prims;
  PrimFn identity_prim = nullptr;  // Object>>==, answered in its entry stub unless both are numbers
  // Set by the inline caches' lookup when it cannot make an entry stub (the zone is full): the
  // engine then calls not_understood, which raises this error instead.
  std::string lookup_error;

  EntryStub* entry_stub(Method* m);  // jit.cpp; nullptr if it cannot be made
  // What compile_method needs to compile `m` (interpreter thread).
  CompileRequest request_for(Method* m, jitkit::code::Visibility visibility);

  // Background compilation: on from Jit::start_compile_thread. Last, so that
  // it stops, and the compile it may be running ends, before anything above goes away.
  std::unique_ptr<CompileThread> compile_thread;
};

// "Class>>selector" ("Class class>>selector" on the class side, "... [block]" for blocks): the
// name of m's code for gdb, perf, listings and messages (jit.cpp).
std::string jit_method_name(const Method* m);
// Loads the class tag of `value` into `tag`: the Integer tag for a small integer, else the
// header's first word. Writes only `tag` and the flags (the inline caches' tag loader, jit.cpp).
void emit_load_tag(jitkit::x64::Assembler& a, jitkit::x64::Gp64 value, jitkit::x64::Gp32 tag, uint32_t integer_tag);
// The index check of Array at: and at:put: (entry stubs, and compiled send sites): jumps to
// `fail` unless `tagged_index` is a small integer 1 .. the length of `array`; else leaves its
// 0-based value in `index` (which may be `tagged_index`). Clobbers `scratch` and the flags.
void emit_array_index(jitkit::x64::Assembler& a, jitkit::x64::Gp64 array, jitkit::x64::Gp64 tagged_index,
                      jitkit::x64::Gp64 index, jitkit::x64::Gp64 scratch, jitkit::x64::Label fail);

// Compiles request.method (method_compiler.cpp), on any thread: see CompileRequest.
CompileOutcome compile_method(const VM& vm, const Jit::Impl& impl, const CompileRequest& request);

// Runs `body`, which C++ entered from compiled code: an error raised inside (a VmUnwind) is
// caught here and comes back to the compiled code as the unwinding protocol, unwind_target_ =
// kUnwindToHost with a zero result, which the compiled code checks (unwind_p.h). Never lets an
// exception reach a compiled frame, which has no unwind tables for C++.
template <typename Body>
auto run_guarded(VM& vm, Body&& body) noexcept -> decltype(body()) {
  VmCheckpoint checkpoint(vm);
  try {
    return body();
  } catch (const VmUnwind&) {
    checkpoint.abandon();
    vm.unwind_target_ = kUnwindToHost;
    if constexpr (!std::is_void_v<decltype(body())>) return {};
  }
}

// Runtime functions compiled code and stubs call (runtime.cpp). Each takes the VM first; the
// ones that may collect or report an error expect VM::fp_/sp_/pc_ to describe the compiled
// frame (the compiled code stores them first). The ones that can fail or run SOM code are
// guarded (run_guarded): on an error they return 0 with unwind_target_ set, and the compiled
// code checks it after the call.
namespace jit_runtime {
void collect_garbage(VM* vm);
void stack_overflow(VM* vm);  // raises, guarded: always returns with an error unwinding
// An entry stub's method that compiled code cannot run directly (not compiled yet, or a
// primitive the interpreter performs itself): any method kind, on its own arguments.
Value invoke_from_stub(VM* vm, Value* base, Method* m);
// An entry stub's direct call of the C++ primitive `fn` on base[0..], guarded.
Value call_primitive(VM* vm, Value* base, PrimFn fn);
// The inline caches' not-understood handler: doesNotUnderstand:arguments:, guarded.
Value not_understood(VM* vm, Symbol* selector, Value* base, uint32_t argc);
// Raises `message` as a runtime error from a stub (guarded: returns with it unwinding).
Value raise_from_stub(VM* vm, const std::string& message);
void enter_context(VM* vm, Frame* f);
Value new_block(VM* vm, Frame* f, Method* block_method);
// A new Double: compiled code boxes inline and calls this only when the heap's chunk is full.
Value box_double(VM* vm, double d);
Value read_global(VM* vm, Frame* f, Symbol* name);
Value read_field(VM* vm, Frame* f, uint32_t index);
void write_field(VM* vm, Frame* f, uint32_t index, Value v);
Value super_send(VM* vm, Value* base, SendSite* site);
Value fallback_send(VM* vm, Frame* f, SendSite* site, Value* receiver_slot);
int64_t nil_check(VM* vm, Frame* f, SendSite* site, Value* receiver_slot);
int64_t for_check(VM* vm, Frame* f, SendSite* site, Value* receiver_slot);
int64_t for_test(VM* vm, Value counter, Value limit, int64_t down);
Value for_step(VM* vm, Value counter, int64_t down);
Value nonlocal_return(VM* vm, Frame* f, int64_t depth, Value result);
}  // namespace jit_runtime

}  // namespace som
