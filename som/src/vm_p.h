// The SOM virtual machine: symbols, classes, globals, class loading, the frame stack, the
// interpreter loop, primitives and garbage-collection roots. One VM per process is the normal
// case, but nothing is global except the pointer used by the fatal-error path.
#pragma once

#include "heap_p.h"
#include "object_p.h"
#include "unwind_p.h"

#include <pthread.h>

#include <cstdio>
#include <initializer_list>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

namespace som {

struct ClassDef;
class Jit;

struct PrimEntry {
  PrimFn fn = nullptr;
  SpecialPrim special = SpecialPrim::kNone;
};

class VM {
 public:
  VM();
  ~VM();
  VM(const VM&) = delete;
  VM& operator=(const VM&) = delete;

  // --- setup --------------------------------------------------------------------------
  void set_class_path(const std::string& cp);  // ':'-separated
  void add_class_path_entry(const std::string& dir) { class_path_.push_back(dir); }
  // Creates nil/true/false/system and loads the core classes from the class path.
  // On failure answers false with pending_error_ set (or raises, for a class that does not
  // compile).
  bool bootstrap();
  // The standard startup protocol: sends `initialize:` to system with the argument array.
  // Raises (VmUnwind) on errors and on `system exit:`.
  void run_main(const std::vector<std::string>& args, uint64_t entry_kind = kEntryFromHost);

  // Sends `sel` to `rcv` and runs the interpreter until it answers (a re-entrant entry point).
  // `entry_kind` says who is calling (object_p.h, kEntryFromHost / kEntryFromJit).
  Value send(Value rcv, Symbol* sel, std::initializer_list<Value> args = {},
             uint64_t entry_kind = kEntryFromHost);
  // Runs `m` exactly (no lookup) on the receiver and arguments at base[0..argc], the top of the
  // frame stack (sp_ == base + argc), for compiled code (entry kind kEntryFromJit). Bytecode
  // methods and blocks get their frame right there, as if the interpreter had sent them;
  // primitives the interpreter performs itself (perform:, invokeOn:with:, ...) run through a
  // one-send trampoline whose inline cache is filled with `m`.
  Value run_from_jit(Method* m, Value* base, uint32_t argc);
  // Sends doesNotUnderstand:arguments: for a failed lookup of `sel` (receiver and arguments at
  // base[0..argc]), as the interpreter does; fatal if the class has no such method either.
  Value not_understood_from_jit(Symbol* sel, Value* base, uint32_t argc);

  // --- objects ------------------------------------------------------------------------
  Symbol* intern(std::string_view s);
  Value new_string(std::string_view s);
  Value new_array(uint32_t n);
  Value new_double(double d);
  Value new_instance(Class* c);
  // A permanent object (never moved or collected); freed when the VM is destroyed.
  Object* perm_alloc(uint8_t kind, uint32_t cls, uint32_t length);
  Value perm_string(std::string_view s);
  Value perm_double(double d);
  Value perm_array(uint32_t n);  // registered as a GC root (literal arrays may be mutated)
  Value int_value(int64_t i);    // small or big
  // A closure over block method `bm` capturing `context` (0: none) and `self`.
  Value new_block(Method* bm, Value context, Value self) {
    Class* bc = bm->num_args == 0   ? block1_class_
                : bm->num_args == 1 ? block2_class_
                : bm->num_args == 2 ? block3_class_
                                    : block_class_;
    Object* b = heap_.alloc(kBlock, bc->tag, 3);
    b->slots()[0] = val(bm);
    b->slots()[1] = context ? context : nil_value_;
    b->slots()[2] = self;
    return val(b);
  }
  // The Context of activation `f` (layout: docs/som-vm.md, "Contexts"), made at frame entry
  // for methods with has_context and on the first fallback for lazy_context ones.
  Value new_context(Frame* f) {
    Method* m = f->method;
    Object* c = heap_.alloc(kContext, 0, static_cast<uint32_t>(2 + m->num_ctx_vars));
    Value* cs = c->slots();
    cs[0] = f->outer_ctx ? f->outer_ctx : nil_value_;
    cs[1] = val(f) | 1;
    for (int i = 0; i < m->num_ctx_vars; i++) cs[2 + i] = nil_value_;
    return val(c);
  }
  // Entry context of a has_context activation: captured arguments copied in.
  void enter_context(Frame* f) {
    Value c = new_context(f);
    for (auto& [arg_idx, slot] : f->method->ctx_args) obj(c)->slots()[2 + slot] = f->args[arg_idx];
    f->context = c;
  }
  // Pushes the arguments of the fallback send of an inlined control structure (`site`) above
  // `s`, the top of `f`'s operand stack (docs/som-bytecode.md, "Fallback sends get real
  // blocks"), making the lazy context first if a block needs it. Answers the new top.
  Value* push_fallback_args(Frame* f, SendSite* site, Value* s);

  Value big_from_decimal(const std::string& digits, bool permanent);

  uint32_t tag_of(Value v) const { return is_int(v) ? integer_tag_ : obj(v)->cls; }
  Class* class_of(Value v) const { return class_table_[tag_of(v)]; }
  Method* lookup(Class* c, Symbol* sel);
  Class* load_class(Symbol* name);  // nullptr if no file on the class path; raises kCompile
  bool is_string(Value v) const { return !is_int(v) && (obj(v)->kind == kString || obj(v)->kind == kSymbol); }
  std::string_view string_of(Value v) const {
    Object* o = obj(v);
    if (o->kind == kSymbol) return static_cast<Symbol*>(o)->text;
    return std::string_view(o->bytes(), o->length);
  }
  std::string describe(Value v);  // "instance of Foo", for error messages

  // `system global: name put: v`. nil, true and false are globals too (LANGUAGE.md §3): the
  // PUSH_NIL/PUSH_TRUE/PUSH_FALSE instructions read nil_binding_/true_binding_/false_binding_,
  // which are the objects nil/true/false until a program rebinds those globals. (Values the VM
  // makes itself, such as fresh locals and Array slots, are always the real nil.)
  void set_global(Symbol* name, Value v);

  // --- changing methods at run time ----------------------------------------------------
  // `Class>>methods` answers the class's method table (a permanent Array flagged
  // kMethodTable); `table at: i put: aMethod` lands in replace_method, which makes aMethod the
  // class's method for the selector of the method it replaces, and then announces the change.
  Value methods_array(Class* c);
  void replace_method(Object* table, uint32_t index, Value method);
  // The one "method changed" event (docs/som-vm.md, "Changing methods"): every cache that maps
  // (class, selector) to a method subscribes to it. The interpreter's own caches (global lookup
  // cache, send-site inline caches, NIL_CHECK caches) are flushed for `selector` first; then
  // each listener runs (a JIT drops or repatches its inline caches there). `method_epoch()`
  // counts the changes, for a cache that prefers to compare an epoch on a slow path.
  using MethodChangeListener = void (*)(void* context, Class* holder, Symbol* selector);
  void on_method_changed(MethodChangeListener fn, void* context) {
    method_change_listeners_.push_back({fn, context});
  }
  void method_changed(Class* holder, Symbol* selector);
  uint64_t method_epoch() const { return method_epoch_; }

  // --- errors (unwind_p.h, docs/som-embedding.md) ----------------------------------------
  // Records `message` and the SOM stack trace as pending_error_ and unwinds to the outermost
  // call of the embedding program (for the `som` command: prints it and exits).
  [[noreturn]] void raise(jitkit::som::ErrorKind kind, const std::string& message, int exit_status = 1);
  [[noreturn]] void fatal(const std::string& message);  // raise(kRuntime, message)
  // `system exit: status`: ends the outermost call with ErrorKind::kExit. Its message is the
  // argument of the innermost Object>>error: activation, if one is running (the library's
  // error: and doesNotUnderstand: end in `system exit: 1`).
  [[noreturn]] void raise_exit(int status);
  // PUSH_FIELD/STORE_FIELD of field `index` of `m`'s holder on a `self` without it.
  [[noreturn]] void fatal_bad_field(Method* m, Value self, uint32_t index);
  void print_stack_trace(FILE* out);
  std::string stack_trace();
  // An unwinding reached an entry of kind kEntryFromHost: an error (kUnwindToHost) continues as
  // a VmUnwind, a non-local return may not cross it (a runtime error). Out of line, so that
  // interpret() contains no throw.
  [[noreturn]] void cross_host_entry();

  // --- GC -----------------------------------------------------------------------------
  void collect_garbage();
  std::vector<Value> extra_roots_;  // values C++ code keeps across interpreter calls

  // --- baseline JIT (som/src/jit, docs/som-jit.md) ----------------------------------------
  // nullptr: --jit=off. Methods are compiled after jit_threshold_ interpreter invocations
  // plus back-edges (0: before they first run).
  std::unique_ptr<Jit> jit_;
  uint32_t jit_threshold_ = 0;
  // A non-local return in progress across compiled frames: the home frame it returns from, and
  // the value. Every compiled frame and interpreter run it passes unwinds itself (object_p.h).
  Frame* unwind_target_ = nullptr;
  Value unwind_value_ = 0;
  // 1 while Array>>at: and Array>>at:put: are the VM's primitives: compiled code then does them
  // inline at the send site for an exact Array receiver. The JIT clears it when either is
  // redefined (Jit::method_changed).
  uint8_t jit_inline_array_access_ = 0;
  // SOM runs on the owner thread's native stack (compiled code, and the interpreter re-entered
  // from natives); below this address it reports `stack overflow`.
  uintptr_t native_stack_limit_ = 0;

  // --- interpreter state ----------------------------------------------------------------
  Value interpret();  // runs from fp/pc until the current entry frame returns
  Value* stack_base_ = nullptr;
  Value* stack_limit_ = nullptr;
  Value* sp_ = nullptr;  // top element (stack_base - 1 when empty)
  Frame* fp_ = nullptr;
  const uint8_t* pc_ = nullptr;

  Heap heap_;
  std::vector<Class*> class_table_;  // tag -> class
  uint32_t integer_tag_ = 0, double_tag_ = 0, string_tag_ = 0, symbol_tag_ = 0, array_tag_ = 0;
  uint32_t nil_tag_ = 0, true_tag_ = 0, false_tag_ = 0;
  Class *object_class_ = nullptr, *class_class_ = nullptr, *metaclass_class_ = nullptr, *nil_class_ = nullptr,
        *boolean_class_ = nullptr, *true_class_ = nullptr, *false_class_ = nullptr, *integer_class_ = nullptr,
        *double_class_ = nullptr, *string_class_ = nullptr, *symbol_class_ = nullptr, *array_class_ = nullptr,
        *block_class_ = nullptr, *block1_class_ = nullptr, *block2_class_ = nullptr, *block3_class_ = nullptr,
        *method_class_ = nullptr, *primitive_class_ = nullptr, *system_class_ = nullptr;
  Value nil_value_ = 0, true_value_ = 0, false_value_ = 0, system_value_ = 0;
  Value nil_binding_ = 0, true_binding_ = 0, false_binding_ = 0;  // see set_global
  Symbol *sym_dnu_ = nullptr, *sym_unknown_global_ = nullptr, *sym_escaped_block_ = nullptr,
         *sym_initialize_ = nullptr;

  // Primitive table: key "Class>>sel" or "Class class>>sel".
  std::unordered_map<std::string, PrimEntry> primitives_;
  void register_primitives();  // primitives.cpp

  // false: compile without control-structure inlining, arithmetic fast-path opcodes and
  // frame-less trivial methods, and never fill inline caches (every send uses the global
  // lookup cache). A reference configuration for measuring what those optimizations buy.
  bool optimize_ = true;
  uint64_t start_micros_ = 0;
  int debug_level_ = 0;
  bool gc_verbose_ = false;
  std::map<std::pair<Symbol*, int>, Method*> entry_methods_;

  // (The embedding members come after the interpreter's, whose offsets from `this` its hot
  // paths encode.)
  // --- embedding (jitkit/som/vm.h) --------------------------------------------------------
  // What the owning thread is doing: nothing in the VM (kIdle), running SOM or the VM's own
  // code (kRunning), or running a native method (kInNative). The embedding API accepts calls
  // only when idle or from a native, and only on owner_thread_.
  enum class RunState : uint8_t { kIdle, kRunning, kInNative };
  RunState run_state_ = RunState::kIdle;
  PendingError pending_error_;  // the error on its way out (raise)
  pthread_t owner_thread_;
  // The API object natives receive (set by jitkit::som::Vm).
  jitkit::som::Vm* facade_ = nullptr;
  // Handle roots: slot i holds a value while a Handle owns it; free slots hold from_int(0).
  std::vector<Value> handles_;
  std::vector<uint32_t> free_handles_;
  // Native methods (native_methods.cpp): loads `path` and binds its methods. Answers an error
  // message, or "" on success; on error nothing is bound.
  std::string load_native(const std::string& path);
  // Calls native method `m` on the receiver and arguments at base[0..] (sp_ ends at the last).
  Value call_native(Method* m, Value* base) {
    run_state_ = RunState::kInNative;
    Value r = m->native(*facade_, reinterpret_cast<const jitkit::som::Value*>(base)).bits();
    run_state_ = RunState::kRunning;
    return r ? r : nil_value_;
  }
  Value call_native_out_of_line(Method* m, Value* base);  // the interpreter's, kept small
  // Makes `m` the method `holder` answers for `selector` instead of `old` (method tables,
  // `methods` arrays, caches: the one "method changed" event).
  void install_method(Class* holder, Method* old, Method* m);
  // The one-send trampoline method for `sel` with `argc` arguments (VM::send, the embedding
  // API's Selector) and an interpreter run of it: an entry of kind `entry_kind`.
  Method* entry_method(Symbol* sel, int argc);
  Value run_entry(Method* entry, Value rcv, const Value* args, uint32_t argc, uint64_t entry_kind);

 private:
  Class* new_class_shell(const char* name);
  void define_class(Class* cls, ClassDef& def, const std::string& file);
  void close_native_libraries();
  Method* new_entry_method(Symbol* sel, int argc);
  std::unordered_map<Method*, Method*> direct_entry_methods_;  // run_from_jit trampolines

  std::vector<std::string> class_path_;
  std::vector<Symbol*> loading_;  // classes being loaded (superclass cycle detection)
  std::unordered_map<std::string_view, Symbol*> symbols_;
  std::vector<Object*> perm_arrays_;
  std::vector<Object*> perm_objects_;  // everything perm_alloc returned
  struct CacheEntry {
    uint32_t tag;
    Symbol* sel;
    Method* m;
  };
  std::vector<CacheEntry> lookup_cache_;
  std::vector<std::pair<MethodChangeListener, void*>> method_change_listeners_;
  uint64_t method_epoch_ = 0;
  std::unordered_map<Object*, Class*> method_tables_;  // methods_array -> its class
  std::vector<Method*> replaced_methods_;              // no longer in a class; freed with the VM
  std::vector<void*> native_libraries_;                // dlopen handles, closed with the VM
  size_t stack_bytes_ = 0;
};

uint64_t now_micros();
// The directories of a ':'-separated class path, empty entries skipped.
std::vector<std::string> split_class_path(const std::string& cp);

// Inline, not in vm.cpp: compiled code takes a checkpoint around every runtime call that may run
// SOM code (run_guarded: every send to a method not compiled yet goes through one), where an
// out-of-line constructor showed up in profiles.
inline VmCheckpoint::VmCheckpoint(VM& vm)
    : vm_(vm), fp_(vm.fp_), pc_(vm.pc_), sp_(vm.sp_), roots_(vm.extra_roots_.size()) {}

}  // namespace som
