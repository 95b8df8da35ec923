// The embedding API (jitkit/som/vm.h) over the VM (som/src/vm_p.h): every call checks that it
// may touch the VM (owner thread, not while SOM code runs, not while unwinding), runs the VM as
// an entry of kind kEntryFromHost or, from a native, kEntryFromNative, and turns a VmUnwind
// into the caller's Error (unwind_p.h, docs/som-embedding.md).
#include "jitkit/som/vm.h"

#include <gmp.h>

#include <new>
#include <optional>

#include "jit/jit_p.h"
#include "numbers_p.h"
#include "vm_p.h"

namespace jitkit::som {

using ::som::VM;
using RunState = VM::RunState;

std::string_view error_kind_name(ErrorKind kind) {
  switch (kind) {
    case ErrorKind::kRuntime:
      return "runtime error";
    case ErrorKind::kExit:
      return "exit";
    case ErrorKind::kCompile:
      return "compile error";
    case ErrorKind::kUnwinding:
      return "unwinding";
    case ErrorKind::kRefused:
      return "refused";
    case ErrorKind::kInvalidArgument:
      return "invalid argument";
    case ErrorKind::kNativeLibrary:
      return "native library error";
  }
  return "error";
}

std::string Error::describe() const {
  // kCompile messages are complete diagnostics ("file:line:column: error: ...").
  if (kind_ == ErrorKind::kCompile) return std::string(message());
  std::string out = kind_ == ErrorKind::kExit
                        ? "som: exited with status " + std::to_string(exit_status_) + ": " + std::string(message())
                        : "som: " + std::string(error_kind_name(kind_)) + ": " + std::string(message());
  if (!stack_trace_.empty()) out += "\n" + stack_trace_;
  if (!out.empty() && out.back() == '\n') out.pop_back();
  return out;
}

namespace {

Error pending(const VM& vm) {
  const ::som::PendingError& p = vm.pending_error_;
  return Error(p.kind, p.message, p.stack_trace, p.exit_status);
}

// What a native's send answers while an error or a non-local return passes its frame.
Error unwinding(const VM& vm) {
  if (vm.unwind_target_ == ::som::kUnwindToHost)
    return Error(ErrorKind::kUnwinding, "an error is unwinding through this native: " + vm.pending_error_.message,
                 vm.pending_error_.stack_trace, vm.pending_error_.exit_status);
  return Error(ErrorKind::kUnwinding, "a non-local return is unwinding through this native to a method below it");
}

Value wrap(::som::Value v) { return Value(v); }
::som::Value raw(Value v) { return v.bits(); }

// Why the calling code may not use the VM now, if it may not. Reads two words and allocates
// nothing (static messages), so a signal handler gets its refusal safely.
std::optional<Error> refusal(const VM& vm) {
  if (!pthread_equal(pthread_self(), vm.owner_thread_))
    return Error(ErrorKind::kRefused,
                 "called from a thread that does not own this VM (a VM belongs to the thread that created it)");
  if (vm.run_state_ == RunState::kRunning)
    return Error(ErrorKind::kRefused,
                 "called while the VM is running SOM code (from a signal handler or from the VM's own code); only "
                 "the embedding program and native methods may call the VM");
  if (vm.unwind_target_)
    return Error(ErrorKind::kUnwinding,
                 "an error or a non-local return is unwinding through this native: return from the native");
  return std::nullopt;
}

// Runs `body(entry_kind)` as one call into the VM; answers its value or the Error.
template <typename Body>
Result<Value> run(VM& vm, Body&& body) {
  if (auto refused = refusal(vm)) return *refused;
  const RunState caller_state = vm.run_state_;
  const bool from_native = caller_state == RunState::kInNative;
  vm.run_state_ = RunState::kRunning;
  ::som::VmCheckpoint checkpoint(vm);
  try {
    ::som::Value r = body(from_native ? ::som::kEntryFromNative : ::som::kEntryFromHost);
    vm.run_state_ = caller_state;
    if (vm.unwind_target_) return unwinding(vm);  // only below a native: it passes through
    return wrap(r);
  } catch (const ::som::VmUnwind&) {
    checkpoint.abandon();
    vm.run_state_ = caller_state;
    if (from_native) {
      // The error goes on past the native: its send fails, and when it returns the VM
      // continues to unwind towards the embedding program's call.
      vm.unwind_target_ = ::som::kUnwindToHost;
      return unwinding(vm);
    }
    vm.unwind_target_ = nullptr;
    return pending(vm);
  } catch (const std::bad_alloc&) {
    checkpoint.abandon();
    vm.run_state_ = caller_state;
    vm.unwind_target_ = nullptr;
    return Error(ErrorKind::kRuntime, "out of memory");
  }
}

// Marks the VM busy while an API call changes its state outside SOM code (allocating, taking a
// handle), so that a signal handler interrupting it is refused like one interrupting SOM code.
class Busy {
 public:
  explicit Busy(VM& vm) : vm_(vm), caller_state_(vm.run_state_) { vm.run_state_ = RunState::kRunning; }
  ~Busy() { vm_.run_state_ = caller_state_; }
  Busy(const Busy&) = delete;
  Busy& operator=(const Busy&) = delete;

 private:
  VM& vm_;
  RunState caller_state_;
};

// A value-making call: refused (an empty Value) or made with the VM marked busy.
template <typename Make>
Value make_value(VM& vm, Make&& make) {
  if (refusal(vm)) return Value();
  Busy busy(vm);
  return wrap(make());
}

Error not_a(const VM& vm, const char* what, Value v) {
  return Error(ErrorKind::kInvalidArgument,
               std::string("expected ") + what + ", got " + const_cast<VM&>(vm).describe(raw(v)));
}

}  // namespace

Handle& Handle::operator=(Handle&& other) noexcept {
  if (this != &other) {
    reset();
    vm_ = std::exchange(other.vm_, nullptr);
    slot_ = other.slot_;
  }
  return *this;
}

Value Handle::get() const { return vm_ ? Value(vm_->vm_->handles_[slot_]) : Value(); }

void Handle::set(Value v) {
  if (vm_ && !v.is_empty()) vm_->vm_->handles_[slot_] = v.bits();
}

void Handle::reset() {
  if (!vm_) return;
  VM& vm = *vm_->vm_;
  vm_ = nullptr;
  // On another thread the root is left in place (a leak, never a race with the VM's thread).
  if (!pthread_equal(pthread_self(), vm.owner_thread_)) return;
  Busy busy(vm);
  vm.handles_[slot_] = 0;
  vm.free_handles_.push_back(slot_);
}

Vm::Vm(std::unique_ptr<VM> vm) : vm_(std::move(vm)) { vm_->facade_ = this; }

Vm::~Vm() = default;

Result<std::unique_ptr<Vm>> Vm::create(const Options& options) {
  std::unique_ptr<Vm> vm(new Vm(std::make_unique<VM>()));
  VM& impl = *vm->vm_;
  impl.debug_level_ = options.debug_level;
  impl.gc_verbose_ = options.gc_verbose;
  impl.optimize_ = options.optimize;
  for (const std::string& dir : options.class_path) impl.add_class_path_entry(dir);
  try {
    if (!impl.bootstrap()) return pending(impl);
    // The interpreter's reference configuration (optimize = false) runs without the JIT.
    if (options.jit != JitMode::kOff && options.optimize) {
      impl.jit_ = std::make_unique<::som::Jit>(impl);
      impl.jit_threshold_ = options.jit == JitMode::kAlways ? 0 : options.jit_threshold;
      if (options.jit_background && impl.jit_threshold_ > 0) impl.jit_->start_compile_thread();
    }
  } catch (const ::som::VmUnwind&) {
    return pending(impl);
  }
  for (const std::string& path : options.natives)
    if (auto st = vm->load_native(path); !st) return std::move(st).error();
  return vm;
}

Result<Selector> Vm::selector(std::string_view name) {
  if (auto refused = refusal(*vm_)) return *refused;
  if (name.empty()) return Error(ErrorKind::kInvalidArgument, "an empty selector");
  Busy busy(*vm_);
  Selector s;
  auto* sym = vm_->intern(name);
  s.symbol_ = sym;
  s.arity_ = sym->num_args;
  s.entry_ = vm_->entry_method(sym, sym->num_args);
  return s;
}

Result<Value> Vm::send(Value receiver, std::string_view selector, std::span<const Value> args) {
  auto sel = this->selector(selector);
  if (!sel) return std::move(sel).error();
  return send(receiver, *sel, args);
}

Result<Value> Vm::send(Value receiver, Selector selector, std::span<const Value> args) {
  VM& vm = *vm_;
  if (auto refused = refusal(vm)) return *refused;
  auto* sym = static_cast<::som::Symbol*>(selector.symbol_);
  if (!sym) return Error(ErrorKind::kInvalidArgument, "send of an empty Selector");
  if (receiver.is_empty()) return Error(ErrorKind::kInvalidArgument, "send #" + sym->text + " to no value");
  for (Value a : args)
    if (a.is_empty()) return Error(ErrorKind::kInvalidArgument, "send #" + sym->text + " with an empty argument");
  if (static_cast<size_t>(selector.arity_) != args.size())
    return Error(ErrorKind::kInvalidArgument, "#" + sym->text + " takes " + std::to_string(selector.arity_) +
                                                  " arguments, got " + std::to_string(args.size()));
  static_assert(sizeof(Value) == sizeof(::som::Value));
  const auto* raw_args = reinterpret_cast<const ::som::Value*>(args.data());
  const auto argc = static_cast<uint32_t>(args.size());
  auto* entry = static_cast<::som::Method*>(selector.entry_);
  return run(vm, [&](uint64_t entry_kind) { return vm.run_entry(entry, raw(receiver), raw_args, argc, entry_kind); });
}

Result<Value> Vm::global(std::string_view name) {
  VM& vm = *vm_;
  ::som::Symbol* sym = vm.intern(name);
  auto r = run(vm, [&](uint64_t) -> ::som::Value {
    if (sym->has_global) return sym->global;
    ::som::Class* c = vm.load_class(sym);  // raises kCompile for a class that does not compile
    return c ? ::som::val(c) : 0;
  });
  if (r && r->is_empty())
    return Error(ErrorKind::kInvalidArgument, "no global " + std::string(name) + " and no " + std::string(name) +
                                                  ".som on the class path");
  return r;
}

Status Vm::run_main(const std::vector<std::string>& args) {
  VM& vm = *vm_;
  auto r = run(vm, [&](uint64_t entry_kind) -> ::som::Value {
    vm.run_main(args, entry_kind);
    return vm.nil_value_;
  });
  if (!r) return std::move(r).error();
  return {};
}

Value Vm::nil() const { return wrap(vm_->nil_value_); }
Value Vm::boolean(bool b) const { return wrap(b ? vm_->true_value_ : vm_->false_value_); }

Value Vm::big_integer(std::int64_t i) {
  return make_value(*vm_, [&] { return vm_->int_value(i); });
}

Result<Value> Vm::integer_from_decimal(std::string_view digits) {
  if (auto refused = refusal(*vm_)) return *refused;
  std::string text(digits);
  const size_t start = !text.empty() && text[0] == '-' ? 1 : 0;
  bool valid = text.size() > start;
  for (size_t i = start; i < text.size(); i++) valid &= text[i] >= '0' && text[i] <= '9';
  if (!valid) return Error(ErrorKind::kInvalidArgument, "not a decimal integer: '" + text + "'");
  Busy busy(*vm_);
  return wrap(vm_->big_from_decimal(text, false));
}

Value Vm::dbl(double d) {
  return make_value(*vm_, [&] { return vm_->new_double(d); });
}

Value Vm::string(std::string_view utf8) {
  return make_value(*vm_, [&] { return vm_->new_string(utf8); });
}

Value Vm::symbol(std::string_view text) {
  return make_value(*vm_, [&] { return ::som::val(vm_->intern(text)); });
}

Value Vm::new_array(std::uint32_t length) {
  return make_value(*vm_, [&] { return vm_->new_array(length); });
}

Status Vm::array_put(Value array, std::uint32_t index, Value element) {
  if (auto refused = refusal(*vm_)) return *refused;
  auto length = array_length(array);
  if (!length) return std::move(length).error();
  if (index >= *length)
    return Error(ErrorKind::kInvalidArgument,
                 "index " + std::to_string(index) + " out of bounds (length " + std::to_string(*length) + ")");
  if (element.is_empty()) return Error(ErrorKind::kInvalidArgument, "cannot store an empty Value");
  ::som::Object* o = ::som::obj(raw(array));
  if (o->flags & ::som::kMethodTable) {
    // A class's `methods` Array: storing replaces a method of the class, as SOM's at:put: does.
    VM& vm = *vm_;
    auto r = run(vm, [&](uint64_t) -> ::som::Value {
      vm.replace_method(o, index, raw(element));
      return vm.nil_value_;
    });
    if (!r) return std::move(r).error();
    return {};
  }
  o->slots()[index] = raw(element);
  return {};
}

bool Vm::is_nil(Value v) const { return raw(v) == vm_->nil_value_; }

bool Vm::is_integer(Value v) const { return !v.is_empty() && (::som::is_int(raw(v)) || ::som::is_big(raw(v))); }

Result<std::int64_t> Vm::big_to_int64(Value v) const {
  if (!is_integer(v)) return not_a(*vm_, "an Integer", v);
  ::som::IntView view(raw(v));
  if (!mpz_fits_slong_p(view.z))
    return Error(ErrorKind::kInvalidArgument, ::som::integer_to_string(raw(v)) + " does not fit in 64 bits");
  return static_cast<std::int64_t>(mpz_get_si(view.z));
}

Result<std::string> Vm::to_decimal(Value v) const {
  if (!is_integer(v)) return not_a(*vm_, "an Integer", v);
  return ::som::integer_to_string(raw(v));
}

Result<double> Vm::to_double(Value v) const {
  if (v.is_empty() || !::som::is_number(raw(v))) return not_a(*vm_, "a Double or an Integer", v);
  return ::som::to_double(raw(v));
}

Result<bool> Vm::to_bool(Value v) const {
  if (raw(v) == vm_->true_value_) return true;
  if (raw(v) == vm_->false_value_) return false;
  return not_a(*vm_, "true or false", v);
}

Result<std::string> Vm::to_string(Value v) const {
  if (v.is_empty() || !vm_->is_string(raw(v))) return not_a(*vm_, "a String or a Symbol", v);
  return std::string(vm_->string_of(raw(v)));
}

Result<std::uint32_t> Vm::array_length(Value v) const {
  if (v.is_empty() || ::som::is_int(raw(v)) || ::som::obj(raw(v))->kind != ::som::kArray)
    return not_a(*vm_, "an Array", v);
  return ::som::obj(raw(v))->length;
}

Result<Value> Vm::array_at(Value array, std::uint32_t index) const {
  auto length = array_length(array);
  if (!length) return std::move(length).error();
  if (index >= *length)
    return Error(ErrorKind::kInvalidArgument,
                 "index " + std::to_string(index) + " out of bounds (length " + std::to_string(*length) + ")");
  return wrap(::som::obj(raw(array))->slots()[index]);
}

std::string Vm::class_name(Value v) const {
  if (v.is_empty()) return "(no value)";
  ::som::Class* c = vm_->class_of(raw(v));
  return c && c->name ? c->name->text : "?";
}

Handle Vm::hold(Value v) {
  VM& vm = *vm_;
  if (refusal(vm) || v.is_empty()) return Handle();
  Busy busy(vm);
  std::uint32_t slot;
  if (!vm.free_handles_.empty()) {
    slot = vm.free_handles_.back();
    vm.free_handles_.pop_back();
  } else {
    slot = static_cast<std::uint32_t>(vm.handles_.size());
    vm.handles_.push_back(0);
  }
  vm.handles_[slot] = raw(v);
  return Handle(this, slot);
}

Status Vm::load_native(std::string_view path) {
  VM& vm = *vm_;
  std::string error;
  auto r = run(vm, [&](uint64_t) -> ::som::Value {
    error = vm.load_native(std::string(path));
    return vm.nil_value_;
  });
  if (!r) return std::move(r).error();
  if (!error.empty()) return Error(ErrorKind::kNativeLibrary, error);
  return {};
}

Value Vm::fail(std::string_view message) {
  VM& vm = *vm_;
  // Only a running native can fail its send; the error then unwinds from the native's caller.
  if (vm.run_state_ != RunState::kInNative || vm.unwind_target_ || !pthread_equal(pthread_self(), vm.owner_thread_))
    return Value();
  vm.pending_error_ = {ErrorKind::kRuntime, std::string(message), vm.stack_trace(), 1};
  vm.unwind_target_ = ::som::kUnwindToHost;
  return Value();
}

}  // namespace jitkit::som
