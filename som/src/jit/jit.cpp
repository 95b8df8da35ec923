// The JIT's setup and bookkeeping: the code zone, the inline-cache engine and its VM interface,
// the shared stubs, per-method entry stubs, tiering, invalidation and statistics
// (docs/som-jit.md). The translation itself is method_compiler.cpp.
#include <algorithm>
#include <chrono>
#include <cstdio>

#include "bytecode_p.h"
#include "jit/compile_thread_p.h"
#include "jit/jit_impl_p.h"
#include "jitkit/debug/installed_code.h"

namespace som {

using namespace jitkit;
using namespace jitkit::x64;

static_assert(offsetof(Frame, caller) == kFrameCaller && offsetof(Frame, ret_pc) == kFrameRetPc &&
              offsetof(Frame, method) == kFrameMethod && offsetof(Frame, args) == kFrameArgs &&
              offsetof(Frame, self) == kFrameSelf && offsetof(Frame, context) == kFrameContext &&
              offsetof(Frame, outer_ctx) == kFrameOuterCtx && offsetof(Frame, is_entry) == kFrameIsEntry &&
              sizeof(Frame) == kFrameLocals);
static_assert(offsetof(Object, cls) == kObjClass && offsetof(Object, hash) == kObjHash &&
              offsetof(Object, length) == kObjLength && offsetof(Object, kind) == kObjKind &&
              offsetof(Object, flags) == kObjFlags && sizeof(Object) == kObjSlots);

namespace {

template <typename T>
int32_t offset_in(const void* base, const T* field) {
  return static_cast<int32_t>(reinterpret_cast<const char*>(field) - static_cast<const char*>(base));
}

[[noreturn]] void fail(VM& vm, const std::string& what, const Error& e) {
  vm.fatal("the JIT cannot start: " + what + ": " + e.message() + " (run with --jit=off)");
}

}  // namespace

std::string jit_method_name(const Method* m) {
  std::string name = (m->holder && m->holder->name ? m->holder->name->text : std::string("?")) + ">>" +
                     (m->signature ? m->signature->text : std::string("?"));
  return m->is_block ? name + " [block]" : name;
}

void emit_load_tag(Assembler& a, Gp64 value, Gp32 tag, uint32_t integer_tag) {
  Label done = a.new_label();
  a.mov(tag, static_cast<int64_t>(integer_tag));
  a.test(value, 1);
  a.jnz(done);
  a.mov(tag, dword_ptr(value, 0));
  a.bind(done);
}

void emit_array_index(Assembler& a, Gp64 array, Gp64 tagged_index, Gp64 index, Gp64 scratch, Label fail) {
  a.test(to_gp8(tagged_index), 1);
  a.jz(fail);
  if (index.id != tagged_index.id) a.mov(index, tagged_index);
  a.sar(index, 1);
  a.sub(index, 1);
  a.mov(to_gp32(scratch), dword_ptr(array, kObjLength));
  a.cmp(index, scratch);
  a.jae(fail);  // unsigned: also index < 1
}

Jit::Jit(VM& vm) : vm_(vm), impl_(std::make_unique<Impl>()) {
  Impl& impl = *impl_;
  VmOffsets& o = impl.vm_offsets;
  o.fp = offset_in(&vm, &vm.fp_);
  o.pc = offset_in(&vm, &vm.pc_);
  o.sp = offset_in(&vm, &vm.sp_);
  const int32_t heap = offset_in(&vm, &vm.heap_);
  const Heap::InlineAllocOffsets heap_fields = vm.heap_.inline_alloc_offsets();
  o.need_gc = heap + heap_fields.need_gc;
  o.heap_top = heap + heap_fields.top;
  o.heap_end = heap + heap_fields.end;
  o.heap_allocated = heap + heap_fields.allocated;
  o.heap_budget = heap + heap_fields.budget;
  o.heap_hash_state = heap + heap_fields.hash_state;
  o.stack_limit = offset_in(&vm, &vm.stack_limit_);
  o.native_stack_limit = offset_in(&vm, &vm.native_stack_limit_);
  o.unwind_target = offset_in(&vm, &vm.unwind_target_);
  o.unwind_value = offset_in(&vm, &vm.unwind_value_);
  o.nil_binding = offset_in(&vm, &vm.nil_binding_);
  o.true_binding = offset_in(&vm, &vm.true_binding_);
  o.false_binding = offset_in(&vm, &vm.false_binding_);
  o.nil_value = offset_in(&vm, &vm.nil_value_);
  o.true_value = offset_in(&vm, &vm.true_value_);
  o.false_value = offset_in(&vm, &vm.false_value_);
  o.run_state = offset_in(&vm, &vm.run_state_);
  o.facade = offset_in(&vm, &vm.facade_);
  o.inline_array_access = offset_in(&vm, &vm.jit_inline_array_access_);
  Method probe_method;
  impl.method_jit_entry = offset_in(&probe_method, &probe_method.jit_entry);
  impl.method_num_args = offset_in(&probe_method, &probe_method.num_args);
  Symbol* probe_symbol = vm.sym_dnu_;
  impl.symbol_global = offset_in(probe_symbol, &probe_symbol->global);
  impl.symbol_has_global = offset_in(probe_symbol, &probe_symbol->has_global);
  impl.restart_selector = vm.intern("restart");
  impl.at_selector = vm.intern("at:");
  impl.at_put_selector = vm.intern("at:put:");
  vm.jit_inline_array_access_ = impl.array_access_is_primitive(vm) ? 1 : 0;
  for (auto [key, op] : {std::pair{"Integer>>bitXor:", Impl::SmallIntOp::kBitXor},
                         {"Integer>>bitOr:", Impl::SmallIntOp::kBitOr},
                         {"Integer>><<", Impl::SmallIntOp::kShiftLeft},
                         {"Integer>>>>>", Impl::SmallIntOp::kShiftRightLogical}})
    if (auto it = vm.primitives_.find(key); it != vm.primitives_.end() && it->second.fn)
      impl.small_int_prims.emplace(it->second.fn, op);
  if (auto it = vm.primitives_.find("Object>>=="); it != vm.primitives_.end()) impl.identity_prim = it->second.fn;

  auto zone = code::CodeZone::create();
  if (!zone) fail(vm, "code zone", zone.error());
  impl.zone = std::move(*zone);
  auto patcher = patch::Patcher::create(*impl.zone);
  if (!patcher) fail(vm, "patcher", patcher.error());
  impl.patcher = std::move(*patcher);

  // How the inline caches see SOM: the class tag of a small integer is the Integer class's; any
  // other value points at a header whose first word is its class tag (object_p.h).
  ic::VmInterface vmi;
  const uint32_t integer_tag = vm.integer_tag_;
  vmi.load_tag = [integer_tag](Assembler& a, Gp64 receiver, Gp32 tag) {
    emit_load_tag(a, receiver, tag, integer_tag);
  };
  vmi.lookup = [this](uint32_t tag, uint32_t selector) -> std::optional<ic::Method> {
    Method* m = vm_.lookup(vm_.class_table_[tag], impl_->selectors[selector]);
    if (!m) return std::nullopt;
    EntryStub* stub = impl_->entry_stub(m);
    if (!stub) {
      // No exception may cross the engine: the send goes on to not_understood, which raises.
      impl_->lookup_error = "the JIT's code zone is full (entry stub of " + jit_method_name(m) + ")";
      return std::nullopt;
    }
    return stub->entries;
  };
  vmi.not_understood = [this](const ic::NotUnderstood& nu) -> uint64_t {
    Symbol* selector = impl_->selectors[nu.selector];
    auto* base = reinterpret_cast<Value*>(nu.args[0]);
    // The sender, as an entry stub that leaves compiled code records it (kSenderPcReg).
    vm_.pc_ = reinterpret_cast<const uint8_t*>(nu.args[1]);
    vm_.fp_ = reinterpret_cast<Frame*>(nu.args[2]);
    const auto argc = static_cast<uint32_t>(selector->num_args);
    if (!impl_->lookup_error.empty()) {
      std::string error = std::move(impl_->lookup_error);
      impl_->lookup_error.clear();
      return jit_runtime::raise_from_stub(&vm_, error);
    }
    return jit_runtime::not_understood(&vm_, selector, base, argc);
  };
  vmi.selector_name = [this](uint32_t selector) { return impl_->selectors[selector]->text; };
  ic::EngineOptions options;
  options.convention.receiver = rdi;
  // The address of the receiver slot (arguments follow it), then what the not-understood
  // handler needs to know the sender: its resume pc and its frame.
  options.convention.args = {rsi, kSenderPcReg, kFrameReg};
  options.name = "som";
  auto engine = ic::Engine::create(*impl.zone, std::move(vmi), options);
  if (!engine) fail(vm, "inline-cache engine", engine.error());
  impl.engine = std::move(*engine);

  // Shared stubs: entering compiled code from C++ (plain and on-stack replacement), and the
  // thunks through which entry stubs reach the interpreter.
  Assembler a;
  Label enter = a.new_label(), enter_osr = a.new_label(), osr_frame = a.new_label();
  Label invoke = a.new_label();
  // enter(vm, entry, receiver, base, caller, method): the System V callee-saved registers the
  // JIT uses are saved; rsp is 16-byte aligned at the call.
  auto save_host_registers = [&a] {
    a.push(rbp);
    a.mov(rbp, rsp);
    a.push(kVmReg);
    a.push(kFrameReg);
    a.mov(kVmReg, rdi);
  };
  auto restore_host_registers = [&a] {
    a.pop(kFrameReg);
    a.pop(kVmReg);
    a.pop(rbp);
    a.ret();
  };
  a.bind(enter);
  save_host_registers();
  a.mov(kFrameReg, r8);
  a.mov(rax, rsi);
  a.mov(rdi, rdx);
  a.mov(rsi, rcx);
  a.mov(rdx, r9);
  a.mov(kSenderPcReg, qword_ptr(kVmReg, o.pc));  // the C++ caller set it
  a.call(rax);
  restore_host_registers();
  // enter_osr(vm, frame, address): builds the native frame a compiled prologue would have
  // built for `frame` (saved rbp, the caller's frame register) and jumps into the body.
  a.bind(enter_osr);
  save_host_registers();
  a.call(osr_frame);
  restore_host_registers();
  a.bind(osr_frame);
  a.push(rbp);
  a.mov(rbp, rsp);
  a.push(qword_ptr(rsi, kFrameCaller));
  a.sub(rsp, 8);
  a.mov(kFrameReg, rsi);
  a.jmp(rdx);
  // The entry stubs' way out of compiled code (rsi = base, rdx = Method*): any method kind, run
  // by jit_runtime::invoke_from_stub (tier-up, the interpreter, or the primitive).
  a.bind(invoke);
  a.mov(qword_ptr(kVmReg, o.pc), kSenderPcReg);
  a.mov(qword_ptr(kVmReg, o.fp), kFrameReg);
  a.sub(rsp, 8);
  a.mov(rdi, kVmReg);
  a.call(abs(reinterpret_cast<const void*>(&jit_runtime::invoke_from_stub)));
  a.add(rsp, 8);
  a.ret();
  auto stubs = install::install(a, *impl.zone, {.name = "som_jit_stubs"});
  if (!stubs) fail(vm, "stubs", stubs.error());
  impl.stubs = std::move(*stubs);
  impl.enter = reinterpret_cast<decltype(impl.enter)>(impl.stubs.label_address(enter));
  impl.enter_osr = reinterpret_cast<decltype(impl.enter_osr)>(impl.stubs.label_address(enter_osr));
  impl.invoke_thunk = impl.stubs.label_address(invoke);
  if (auto reg = debug::register_installed(impl.stubs, debug::FrameInfo::none())) impl.stubs_registration = std::move(*reg);

  vm.on_method_changed([](void* jit, Class*, Symbol* selector) { static_cast<Jit*>(jit)->method_changed(selector); },
                       this);
}

Jit::~Jit() = default;

namespace {

// The small-integer case of an Integer primitive, in its entry stub: receiver in rdi, argument
// at [rsi + 8], both tagged (2n + 1). Answers in rax and returns, or jumps to `slow` (big or
// non-integer operands, negative or large shift counts, overflow), where the C++ primitive
// does everything, errors included.
void emit_small_int_primitive(Assembler& a, Jit::Impl::SmallIntOp op, Label slow) {
  using Op = Jit::Impl::SmallIntOp;
  a.test(rdi, 1);
  a.jz(slow);
  a.mov(rcx, qword_ptr(rsi, 8));
  a.test(rcx, 1);
  a.jz(slow);
  switch (op) {
    case Op::kBitXor:  // (2x+1) ^ (2y+1) = 2(x^y): the tag comes back with `or`
      a.mov(rax, rdi);
      a.xor_(rax, rcx);
      a.or_(rax, 1);
      break;
    case Op::kBitOr:
      a.mov(rax, rdi);
      a.or_(rax, rcx);
      break;
    case Op::kShiftLeft: {
      // 2x << n, kept only if shifting back gives 2x again (no bit lost, sign unchanged).
      a.sar(rcx, 1);
      a.cmp(rcx, 62);
      a.jae(slow);  // unsigned: negative counts too
      a.lea(rax, qword_ptr(rdi, -1));
      a.mov(rdx, rax);
      a.shl(rdx, cl);
      a.mov(r8, rdx);
      a.sar(r8, cl);
      a.cmp(r8, rax);
      a.jne(slow);
      a.lea(rax, qword_ptr(rdx, 1));
      break;
    }
    case Op::kShiftRightLogical:
      // A non-negative x: the logical shift is the arithmetic one and the result stays small.
      a.test(rdi, rdi);
      a.js(slow);
      a.sar(rcx, 1);
      a.cmp(rcx, 63);
      a.ja(slow);  // unsigned: negative counts too
      a.mov(rax, rdi);
      a.shr(rax, 1);
      a.shr(rax, cl);
      a.lea(rax, qword_ptr(no_base, rax, 2, 1));
      break;
  }
  a.ret();
}

// Object>>== in its entry stub: receiver in rdi, argument at [rsi + 8]. The same word is
// identical; two different words are not, unless both are numbers, which compare by value
// (1 == 1.0, two equal big integers): a boxed number on either side goes to `slow`, the primitive.
void emit_identity_primitive(Assembler& a, const VmOffsets& o, Label slow) {
  static_assert(kBigInt == kDouble + 1);
  Label identical = a.new_label(), different = a.new_label(), receiver_small = a.new_label();
  auto boxed_number_to_slow = [&](Gp64 value) {  // value is not a small integer
    a.movzx(eax, byte_ptr(value, kObjKind));
    a.sub(eax, kDouble);
    a.cmp(eax, 1);
    a.jbe(slow);
  };
  a.mov(rcx, qword_ptr(rsi, 8));
  a.cmp(rdi, rcx);
  a.je(identical);
  a.test(dil, 1);
  a.jnz(receiver_small);
  boxed_number_to_slow(rdi);
  a.jmp(different);  // the receiver is no number
  a.bind(receiver_small);
  a.test(cl, 1);
  a.jnz(different);  // two different small integers
  boxed_number_to_slow(rcx);
  a.bind(different);
  a.mov(rax, qword_ptr(kVmReg, o.false_value));
  a.ret();
  a.bind(identical);
  a.mov(rax, qword_ptr(kVmReg, o.true_value));
  a.ret();
}

}  // namespace

EntryStub* Jit::Impl::entry_stub(Method* m) {
  auto it = entry_stubs.find(m);
  if (it != entry_stubs.end()) return it->second.get();
  Assembler a;
  auto entries = engine->emit_method_entry(a);
  if (!entries) return nullptr;
  auto stub = std::make_unique<EntryStub>();
  std::optional<PatchSiteId> body_jump;
  const int32_t n = m->num_args;
  auto jump_to_method = [&](uintptr_t thunk) {
    a.mov(rdx, static_cast<int64_t>(reinterpret_cast<uintptr_t>(m)));
    a.jmp(abs(reinterpret_cast<const void*>(thunk)));
  };
  // Receiver checks of the frame-less paths; `slow` takes the general path.
  auto require_kind = [&](Label slow, uint8_t kind) {
    a.test(rdi, 1);
    a.jnz(slow);
    a.cmp(byte_ptr(rdi, kObjKind), kind);
    a.jne(slow);
  };
  // Leaving compiled code: VM::pc_/fp_ describe the sender (its resume pc is in `sender_pc`,
  // kSenderPcReg unless a fast path moved it; its frame is kFrameReg).
  auto record_sender = [&](Gp64 sender_pc) {
    a.mov(qword_ptr(kVmReg, vm_offsets.pc), sender_pc);
    a.mov(qword_ptr(kVmReg, vm_offsets.fp), kFrameReg);
  };
  auto call_primitive = [&](Gp64 sender_pc) {
    // A call of the C++ primitive through jit_runtime::call_primitive (which turns its errors
    // into the unwinding protocol): (VM*, receiver and arguments, the function), with sp_
    // ending at the last argument. A tail jump: the stub was entered like a function (the
    // sender's return address on top, rsp 8 mod 16), so the C++ function returns straight to
    // the sender, which saves a call and a return per primitive.
    record_sender(sender_pc);
    a.lea(rax, qword_ptr(rsi, 8 * n));
    a.mov(qword_ptr(kVmReg, vm_offsets.sp), rax);
    a.mov(rdi, kVmReg);
    a.mov(rdx, static_cast<int64_t>(reinterpret_cast<uintptr_t>(m->prim)));
    a.jmp(abs(reinterpret_cast<const void*>(&jit_runtime::call_primitive)));  // returns to the sender
  };
  auto call_native = [&] {
    // A native method (jitkit/som/native.h): a plain call of the library's function with
    // (the embedding API's Vm&, receiver and arguments), as VM::call_native does. Natives never
    // throw; an error or a non-local return they let pass is in unwind_target_, which the
    // sender checks after the send.
    Label answered = a.new_label();
    record_sender(kSenderPcReg);
    a.lea(rax, qword_ptr(rsi, 8 * n));
    a.mov(qword_ptr(kVmReg, vm_offsets.sp), rax);
    a.mov(byte_ptr(kVmReg, vm_offsets.run_state), static_cast<int64_t>(VM::RunState::kInNative));
    a.mov(rdi, qword_ptr(kVmReg, vm_offsets.facade));
    a.sub(rsp, 8);
    a.call(abs(reinterpret_cast<const void*>(m->native)));
    a.add(rsp, 8);
    a.mov(byte_ptr(kVmReg, vm_offsets.run_state), static_cast<int64_t>(VM::RunState::kRunning));
    a.test(rax, rax);  // an empty Value answers nil
    a.jnz(answered);
    a.mov(rax, qword_ptr(kVmReg, vm_offsets.nil_value));
    a.bind(answered);
    a.ret();
  };
  if (m->mkind == MethodKind::kBytecode) {
    Label general = a.new_label();
    const auto field = static_cast<int32_t>(m->trivial_index);
    switch (m->trivial) {  // frame-less accessors (docs/som-bytecode.md, "Methods without frames")
      case Method::kGetter:
      case Method::kSetter:
        require_kind(general, kInstance);
        a.cmp(dword_ptr(rdi, kObjLength), field);
        a.jbe(general);
        if (m->trivial == Method::kGetter) {
          a.mov(rax, qword_ptr(rdi, kObjSlots + 8 * field));
        } else {
          a.mov(rax, qword_ptr(rsi, 8));
          a.mov(qword_ptr(rdi, kObjSlots + 8 * field), rax);
          a.mov(rax, rdi);
        }
        a.ret();
        break;
      case Method::kConstant:
        a.mov(rax, static_cast<int64_t>(m->trivial_value));
        a.ret();
        break;
      case Method::kSelf:
        a.mov(rax, rdi);
        a.ret();
        break;
      default:
        break;
    }
    a.bind(general);
    // The body: compiled code once there is some (this jump is retargeted by jitkit::patch),
    // the interpreter until then.
    a.mov(rdx, static_cast<int64_t>(reinterpret_cast<uintptr_t>(m)));
    body_jump = a.jmp_site(abs(reinterpret_cast<const void*>(m->jit_entry ? m->jit_entry : invoke_thunk)));
  } else if (m->mkind == MethodKind::kPrimitive) {
    Label slow = a.new_label();
    switch (m->special_prim) {
      case SpecialPrim::kNone: {
        // The fast paths need rcx (a shift count must be in cl): the sender's pc waits in r9.
        const auto small_int = small_int_prims.find(m->prim);
        const bool fast_path = small_int != small_int_prims.end() || m->prim == identity_prim;
        if (fast_path) a.mov(r9, kSenderPcReg);
        if (small_int != small_int_prims.end())
          emit_small_int_primitive(a, small_int->second, slow);  // then the primitive below
        else if (m->prim == identity_prim)
          emit_identity_primitive(a, vm_offsets, slow);
        a.bind(slow);
        call_primitive(fast_path ? r9 : kSenderPcReg);
        break;
      }
      case SpecialPrim::kArrayAt:
      case SpecialPrim::kArrayAtPut:
        require_kind(slow, kArray);
        if (m->special_prim == SpecialPrim::kArrayAtPut) {
          a.test(byte_ptr(rdi, kObjFlags), kMethodTable);  // storing into it replaces a method
          a.jnz(slow);
        }
        a.mov(rax, qword_ptr(rsi, 8));
        emit_array_index(a, rdi, rax, rax, r8, slow);
        if (m->special_prim == SpecialPrim::kArrayAt) {
          a.mov(rax, qword_ptr(rdi, rax, 8, kObjSlots));
        } else {
          a.mov(r8, qword_ptr(rsi, 16));
          a.mov(qword_ptr(rdi, rax, 8, kObjSlots), r8);
          a.mov(rax, rdi);
        }
        a.ret();
        a.bind(slow);
        call_primitive(kSenderPcReg);  // reports the error
        break;
      case SpecialPrim::kArrayLength:
        require_kind(slow, kArray);
        a.mov(eax, dword_ptr(rdi, kObjLength));
        a.lea(rax, qword_ptr(no_base, rax, 2, 1));
        a.ret();
        a.bind(slow);
        call_primitive(kSenderPcReg);
        break;
      case SpecialPrim::kValue: {
        // Block evaluation: straight into the block's compiled body, or the interpreter.
        Label interpreted = a.new_label();
        require_kind(slow, kBlock);
        a.mov(rdx, qword_ptr(rdi, kBlockMethod));
        a.cmp(dword_ptr(rdx, method_num_args), n);
        a.jne(slow);
        a.mov(rax, qword_ptr(rdx, method_jit_entry));
        a.test(rax, rax);
        a.jz(interpreted);
        a.jmp(rax);
        a.bind(interpreted);
        a.jmp(abs(reinterpret_cast<const void*>(invoke_thunk)));
        a.bind(slow);
        jump_to_method(invoke_thunk);  // the interpreter reports the error
        break;
      }
      case SpecialPrim::kNative:
        call_native();
        break;
      case SpecialPrim::kRestart:
        // Only a `restart` send site calls this; it restarts its own activation on 0.
        a.xor_(eax, eax);
        a.ret();
        break;
      default:  // perform:, invokeOn:with:: the interpreter performs them
        jump_to_method(invoke_thunk);
    }
  } else {
    jump_to_method(invoke_thunk);  // a missing primitive: the interpreter reports it
  }
  auto code = install::install(a, *zone, {.name = "entry:" + jit_method_name(m)});
  if (!code) return nullptr;
  stub->code = std::move(*code);
  stub->entries = {stub->code.label_address(entries->checked), stub->code.label_address(entries->unchecked)};
  if (body_jump) stub->body_jump = stub->code.site(*body_jump);
  if (auto reg = debug::register_installed(stub->code, debug::FrameInfo::none())) stub->registration = std::move(*reg);
  EntryStub* result = stub.get();
  entry_stubs[m] = std::move(stub);
  return result;
}

CompileRequest Jit::Impl::request_for(Method* m, code::Visibility visibility) {
  CompileRequest request{.method = m, .site_selectors = {}, .visibility = visibility};
  request.site_selectors.reserve(m->sites.size());
  for (const SendSite& site : m->sites) request.site_selectors.push_back(selector_id(site.selector));
  return request;
}

namespace {

uint64_t nanos_since(std::chrono::steady_clock::time_point t0) {
  return static_cast<uint64_t>(
      std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::steady_clock::now() - t0).count());
}

}  // namespace

void Jit::withdraw(Method* m) {
  if (!m->jit_queued) return;
  // The thread may be compiling m right now: that outcome counts.
  if (std::optional<CompileOutcome> outcome = impl_->compile_thread->withdraw(m)) {
    stats_.background_compiles++;
    publish(std::move(*outcome));
  }
  m->jit_queued = false;
}

bool Jit::compile(Method* m) {
  withdraw(m);
  if (m->jit_entry) return true;
  if (m->jit_failed) return false;
  const auto t0 = std::chrono::steady_clock::now();
  publish(compile_method(vm_, *impl_, impl_->request_for(m, code::Visibility::kThisThread)));
  stats_.foreground_nanos += nanos_since(t0);
  return m->jit_entry != 0;
}

bool Jit::reached_threshold(Method* m) {
  if (!impl_->compile_thread || vm_.jit_threshold_ == 0) return compile(m);
  publish_if_finished();
  if (m->jit_entry || m->jit_failed || m->jit_queued) return m->jit_entry != 0;
  const auto t0 = std::chrono::steady_clock::now();
  impl_->compile_thread->submit(impl_->request_for(m, code::Visibility::kOtherThreads));
  m->jit_queued = true;
  stats_.foreground_nanos += nanos_since(t0);
  return false;
}

void Jit::start_compile_thread() {
  if (impl_->compile_thread) return;
  impl_->compile_thread = std::make_unique<CompileThread>(
      [&vm = vm_, &impl = *impl_](const CompileRequest& request) { return compile_method(vm, impl, request); });
}

void Jit::publish_if_finished() {
  if (impl_->compile_thread && impl_->compile_thread->has_outcomes()) publish_finished();
}

void Jit::publish_finished() {
  const auto t0 = std::chrono::steady_clock::now();
  for (CompileOutcome& outcome : impl_->compile_thread->take_outcomes()) {
    stats_.background_compiles++;
    publish(std::move(outcome));
  }
  stats_.foreground_nanos += nanos_since(t0);
}

void Jit::publish(CompileOutcome outcome) {
  Method* m = outcome.method;
  m->jit_queued = false;
  stats_.compile_nanos += outcome.compile_nanos;
  stats_.register_nanos += outcome.register_nanos;
  if (!outcome.compiled) {
    m->jit_failed = true;
    stats_.compile_failures++;
    if (vm_.debug_level_ > 0)
      std::fprintf(stderr, "[JIT] %s stays interpreted: %s\n", jit_method_name(m).c_str(), outcome.error.c_str());
    return;
  }
  CompiledMethod& cm = *outcome.compiled;
  stats_.methods_compiled++;
  stats_.bytecode_bytes += m->code.size();
  stats_.code_bytes += cm.code.code_size();
  m->jit_entry = cm.code.start();
  impl_->compiled[m] = std::move(outcome.compiled);
  // Send sites linked to this method's entry stub now reach the compiled body.
  auto it = impl_->entry_stubs.find(m);
  if (it != impl_->entry_stubs.end() && it->second->body_jump) {
    if (auto st = impl_->patcher->retarget(*it->second->body_jump, reinterpret_cast<const void*>(m->jit_entry)); !st)
      vm_.fatal("the JIT cannot patch the entry of " + jit_method_name(m) + ": " + st.error().message());
  }
  if (vm_.debug_level_ > 0)
    std::fprintf(stderr, "[JIT] compiled %s: %zu bytecode bytes -> %zu bytes of code\n", jit_method_name(m).c_str(),
                 m->code.size(), cm.code.code_size());
}

void Jit::discard(Method* m) {
  withdraw(m);
  if (auto stub = impl_->entry_stubs.find(m); stub != impl_->entry_stubs.end()) {
    (void)impl_->engine->invalidate_method(stub->second->entries);
    (void)impl_->engine->retire(stub->second->code.block());
    impl_->entry_stubs.erase(stub);
  }
  if (auto it = impl_->compiled.find(m); it != impl_->compiled.end()) {
    const install::InstalledCode& code = it->second->code;
    (void)impl_->engine->detach_range(code.start(), code.start() + code.used_size());
    it->second->registration.reset();
    (void)impl_->engine->retire(code.block());
    impl_->compiled.erase(it);
  }
  (void)impl_->engine->reclaim();
  m->jit_entry = 0;
}

Value Jit::enter(Method* m, Value* base, Frame* caller) {
  return impl_->enter(&vm_, m->jit_entry, base[0], base, caller, m);
}

uintptr_t Jit::osr_entry(Frame* f, uint32_t pc) {
  Method* m = f->method;
  if (!m->jit_entry && !reached_threshold(m)) return 0;
  for (auto& [head, address] : impl_->compiled[m]->osr_entries)
    if (head == pc) {
      stats_.osr_entries++;
      return address;
    }
  return 0;
}

Value Jit::enter_osr(Frame* f, uintptr_t entry) { return impl_->enter_osr(&vm_, f, entry); }

bool Jit::Impl::array_access_is_primitive(VM& vm) const {
  Class* array = vm.class_table_[vm.array_tag_];
  Method* at = vm.lookup(array, at_selector);
  Method* at_put = vm.lookup(array, at_put_selector);
  return at && at->mkind == MethodKind::kPrimitive && at->special_prim == SpecialPrim::kArrayAt && at_put &&
         at_put->mkind == MethodKind::kPrimitive && at_put->special_prim == SpecialPrim::kArrayAtPut;
}

void Jit::method_changed(Symbol* selector) {
  if ((selector == impl_->at_selector || selector == impl_->at_put_selector) && vm_.jit_inline_array_access_ &&
      !impl_->array_access_is_primitive(vm_))
    vm_.jit_inline_array_access_ = 0;  // for good: compiled sites fall back to their sends
  auto it = impl_->selector_ids.find(selector);
  if (it == impl_->selector_ids.end()) return;  // no compiled send of it
  stats_.invalidations++;
  if (auto st = impl_->engine->invalidate_selector(it->second); !st)
    vm_.fatal("the JIT cannot invalidate #" + selector->text + ": " + st.error().message());
}

std::string Jit::listing(Method* m) {
  publish_if_finished();
  auto it = impl_->compiled.find(m);
  if (it == impl_->compiled.end()) return jit_method_name(m) + ": not compiled\n";
  debug::ListingOptions options;
  for (auto [offset, pc] : it->second->instruction_offsets)
    options.labels.push_back({it->second->code.start() + offset, "pc " + std::to_string(pc) + ": " + op_name(m->code[pc])});
  std::string out = debug::listing(it->second->code, options);
  for (size_t i = 0; i < it->second->sites.size(); i++) {
    auto text = impl_->engine->listing(it->second->sites[i]);
    if (text) out += "\nsend site at pc " + std::to_string(it->second->site_pcs[i]) + ":\n" + *text;
  }
  return out;
}

std::string Jit::listing(std::string_view name) {
  publish_if_finished();
  std::vector<Method*> found;
  for (auto& [m, cm] : impl_->compiled)
    if (jit_method_name(m) == name) found.push_back(m);
  std::sort(found.begin(), found.end(), [](Method* a, Method* b) { return a->jit_entry < b->jit_entry; });
  std::string out;
  for (Method* m : found) out += listing(m) + "\n";
  return out;
}

std::string Jit::site_states(Method* m) {
  publish_if_finished();
  auto it = impl_->compiled.find(m);
  if (it == impl_->compiled.end()) return "";
  std::string out;
  for (size_t i = 0; i < it->second->sites.size(); i++) {
    auto info = impl_->engine->site(it->second->sites[i]);
    if (!info) continue;
    out += "pc " + std::to_string(it->second->site_pcs[i]) + " #" + impl_->selectors[info->selector]->text + " " +
           ic::kind_name(info->kind);
    if (info->kind == ic::SiteKind::kPolymorphic) out += "(" + std::to_string(info->cases.size()) + ")";
    out += "\n";
  }
  return out;
}

std::string Jit::cache_report() {
  size_t counts[4] = {0, 0, 0, 0};
  for (auto& [m, cm] : impl_->compiled)
    for (auto id : cm->sites)
      if (auto info = impl_->engine->site(id)) counts[static_cast<int>(info->kind)]++;
  const ic::EngineStats s = impl_->engine->stats();
  char buf[512];
  std::snprintf(buf, sizeof buf,
                "inline caches: %zu sites: %zu unlinked, %zu monomorphic, %zu polymorphic, %zu megamorphic\n"
                "transitions: %llu unlinked->mono, %llu mono->poly, %llu poly extended, %llu poly->mega; "
                "%llu misses, %llu not understood\n",
                counts[0] + counts[1] + counts[2] + counts[3], counts[0], counts[1], counts[2], counts[3],
                static_cast<unsigned long long>(s.unlinked_to_mono), static_cast<unsigned long long>(s.mono_to_pic),
                static_cast<unsigned long long>(s.pic_extend), static_cast<unsigned long long>(s.pic_to_mega),
                static_cast<unsigned long long>(s.misses), static_cast<unsigned long long>(s.not_understood));
  return buf;
}

void Jit::print_stats(std::FILE* out) {
  publish_if_finished();  // what is ready counts, and shows in the listings
  const double us = static_cast<double>(stats_.compile_nanos) / 1000.0;
  std::fprintf(out,
               "[JIT] %llu methods compiled (%llu failed), %llu bytecode bytes -> %llu code bytes (%.2f per byte), "
               "compile time %.3f ms (%.1f us per method, %.1f bytecode bytes per us) + %.3f ms naming the code "
               "for gdb/perf, %llu OSR entries, %zu entry stubs\n",
               static_cast<unsigned long long>(stats_.methods_compiled),
               static_cast<unsigned long long>(stats_.compile_failures),
               static_cast<unsigned long long>(stats_.bytecode_bytes),
               static_cast<unsigned long long>(stats_.code_bytes),
               stats_.bytecode_bytes ? static_cast<double>(stats_.code_bytes) / static_cast<double>(stats_.bytecode_bytes) : 0.0,
               us / 1000.0, stats_.methods_compiled ? us / static_cast<double>(stats_.methods_compiled) : 0.0,
               us > 0 ? static_cast<double>(stats_.bytecode_bytes) / us : 0.0,
               static_cast<double>(stats_.register_nanos) / 1e6, static_cast<unsigned long long>(stats_.osr_entries), impl_->entry_stubs.size());
  std::fprintf(out, "[JIT] the interpreter's thread spent %.3f ms compiling; %llu compiles ran on the compile thread",
               static_cast<double>(stats_.foreground_nanos) / 1e6,
               static_cast<unsigned long long>(stats_.background_compiles));
  if (CompileThread* thread = impl_->compile_thread.get()) {
    if (const size_t unfinished = thread->backlog()) std::fprintf(out, " (%zu more unfinished at exit)", unfinished);
  }
  std::fputc('\n', out);
  const ic::EngineStats s = impl_->engine->stats();
  std::fprintf(out, "[JIT] %s[JIT] invalidations: %llu selectors, %llu sites unlinked\n", cache_report().c_str(),
               static_cast<unsigned long long>(stats_.invalidations),
               static_cast<unsigned long long>(s.sites_unlinked));
}

}  // namespace som
