// The runtime functions compiled SOM code calls on its slow paths (jit_impl_p.h). They implement
// exactly what the interpreter does for the same bytecode; where they run SOM code they do it
// through the interpreter or the compiled code of the target, as an entry of kind kEntryFromJit.
//
// Every function compiled code calls is guarded (run_guarded): an error raised inside returns
// to the compiled code as the unwinding protocol, never as a C++ exception (unwind_p.h). The
// helpers in the anonymous namespace are the unguarded bodies, for calls between them.
#include "jit/jit_impl_p.h"
#include "numbers_p.h"

namespace som::jit_runtime {

namespace {

Value invoke_unguarded(VM* vm, Method* m, Value* base, uint32_t argc) {
  vm->sp_ = base + argc;
  if (m->mkind == MethodKind::kBytecode) {
    // A send from compiled code counts towards tiering up, like an interpreter invocation.
    if (vm->jit_->tier_up(m, vm->jit_threshold_)) return vm->jit_->enter(m, base, vm->fp_);
    return vm->run_from_jit(m, base, argc);
  }
  if (m->mkind == MethodKind::kPrimitive && m->special_prim == SpecialPrim::kNone) return m->prim(*vm, base);
  if (m->special_prim == SpecialPrim::kNative) return vm->call_native(m, base);
  return vm->run_from_jit(m, base, argc);  // the interpreter performs it (or reports it missing)
}

// A send of `selector` whose receiver and arguments are at base[0..argc], the top of the stack.
Value send(VM* vm, Symbol* selector, Class* lookup_start, Value* base, uint32_t argc) {
  vm->sp_ = base + argc;
  Method* m = vm->lookup(lookup_start ? lookup_start : vm->class_of(base[0]), selector);
  if (!m) return vm->not_understood_from_jit(selector, base, argc);
  return invoke_unguarded(vm, m, base, argc);
}

Value fallback_send_unguarded(VM* vm, Frame* f, SendSite* site, Value* receiver_slot) {
  vm->push_fallback_args(f, site, receiver_slot);
  return send(vm, site->selector, nullptr, receiver_slot, site->argc);
}

}  // namespace

void collect_garbage(VM* vm) { vm->collect_garbage(); }

void stack_overflow(VM* vm) {
  run_guarded(*vm, [vm] { vm->fatal("stack overflow: recursion too deep"); });
}

Value invoke_from_stub(VM* vm, Value* base, Method* m) {
  return run_guarded(*vm, [=] { return invoke_unguarded(vm, m, base, static_cast<uint32_t>(m->num_args)); });
}

Value call_primitive(VM* vm, Value* base, PrimFn fn) {
  // On the hot path of every primitive send from compiled code, so lighter than run_guarded:
  // a C++ primitive (SpecialPrim::kNone) pushes no frame and runs no SOM code, so when it
  // raises, fp_/pc_/sp_ still describe the compiled sender and there is nothing to abandon.
  try {
    return fn(*vm, base);
  } catch (const VmUnwind&) {
    vm->unwind_target_ = kUnwindToHost;
    return 0;
  }
}

void enter_context(VM* vm, Frame* f) { vm->enter_context(f); }

Value new_block(VM* vm, Frame* f, Method* block_method) { return vm->new_block(block_method, f->context, f->self); }

Value box_double(VM* vm, double d) { return vm->new_double(d); }

Value read_global(VM* vm, Frame* f, Symbol* name) {
  return run_guarded(*vm, [=]() -> Value {
    if (name->has_global) return name->global;  // defined since the code was compiled
    if (Class* c = vm->load_class(name)) return val(c);
    // Unknown: send unknownGlobal: to self; the reply is the value (never cached).
    Value* base = vm->sp_ + 1;
    base[0] = f->self;
    base[1] = val(name);
    vm->sp_ = base + 1;
    Method* m = vm->lookup(vm->class_of(base[0]), vm->sym_unknown_global_);
    if (!m) return vm->not_understood_from_jit(vm->sym_unknown_global_, base, 1);
    return invoke_unguarded(vm, m, base, 1);
  });
}

Value read_field(VM* vm, Frame* f, uint32_t index) {
  return run_guarded(*vm, [=] {
    if (!has_field(f->self, index, f->method->holder)) vm->fatal_bad_field(f->method, f->self, index);
    return fields_of(obj(f->self))[index];
  });
}

void write_field(VM* vm, Frame* f, uint32_t index, Value v) {
  run_guarded(*vm, [=] {
    if (!has_field(f->self, index, f->method->holder)) vm->fatal_bad_field(f->method, f->self, index);
    fields_of(obj(f->self))[index] = v;
  });
}

Value super_send(VM* vm, Value* base, SendSite* site) {
  return run_guarded(*vm, [=] { return send(vm, site->selector, site->super_start, base, site->argc); });
}

Value fallback_send(VM* vm, Frame* f, SendSite* site, Value* receiver_slot) {
  return run_guarded(*vm, [=] { return fallback_send_unguarded(vm, f, site, receiver_slot); });
}

int64_t nil_check(VM* vm, Frame* f, SendSite* site, Value* receiver_slot) {
  return run_guarded(*vm, [=]() -> int64_t {
    // As the interpreter's NIL_CHECK: a receiver whose class uses Object's method for the
    // selector runs the inlined code (1); any other gets the real send, whose reply replaces
    // the receiver (0).
    uint32_t tag = vm->tag_of(*receiver_slot);
    Method* m = vm->lookup(vm->class_table_[tag], site->selector);
    if (m && m->holder == vm->object_class_ && m->signature == site->selector) {
      site->std_tag2 = site->std_tag;
      site->std_tag = tag;
      return 1;
    }
    *receiver_slot = fallback_send_unguarded(vm, f, site, receiver_slot);
    return 0;
  });
}

int64_t for_check(VM* vm, Frame* f, SendSite* site, Value* receiver_slot) {
  return run_guarded(*vm, [=]() -> int64_t {
    if (is_number(*receiver_slot)) return 1;
    *receiver_slot = fallback_send_unguarded(vm, f, site, receiver_slot);
    return 0;
  });
}

int64_t for_test(VM* vm, Value counter, Value limit, int64_t down) {
  return run_guarded(*vm, [=]() -> int64_t {
    bool ok = true;
    int c = num_compare(counter, limit, &ok);
    if (!ok) vm->fatal("loop limit is not a number: " + vm->describe(limit));
    // As the library: `i <= limit` is `(limit < i) not`, `i >= limit` is `(i < limit) not`.
    return down ? c != -1 : c != 1;
  });
}

Value for_step(VM* vm, Value counter, int64_t down) {
  return down ? num_sub(*vm, counter, from_int(1)) : num_add(*vm, counter, from_int(1));
}

Value nonlocal_return(VM* vm, Frame* f, int64_t depth, Value result) {
  return run_guarded(*vm, [=]() -> Value {
    Value home = depth == 0 ? f->context : f->outer_ctx;
    for (int64_t i = 1; i < depth; i++) home = obj(home)->slots()[0];
    Value marker = obj(home)->slots()[1];
    if (marker != from_int(0)) {
      // Home alive: every frame from here down to it unwinds itself (docs/som-jit.md).
      vm->unwind_target_ = reinterpret_cast<Frame*>(marker & ~Value(1));
      vm->unwind_value_ = result;
      return 0;
    }
    // The home method has returned: escapedBlock: to the self of the activation that sent
    // value; its reply is the block's value.
    Value* base = vm->sp_ + 1;
    base[0] = f->caller->self;
    base[1] = f->args[0];
    return send(vm, vm->sym_escaped_block_, nullptr, base, 1);
  });
}

Value not_understood(VM* vm, Symbol* selector, Value* base, uint32_t argc) {
  return run_guarded(*vm, [=] {
    vm->sp_ = base + argc;
    return vm->not_understood_from_jit(selector, base, argc);
  });
}

Value raise_from_stub(VM* vm, const std::string& message) {
  return run_guarded(*vm, [&]() -> Value { vm->fatal(message); });
}

}  // namespace som::jit_runtime
