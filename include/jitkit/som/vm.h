// jitkit/som/vm.h — embedding the SOM virtual machine in a C++ program.
//
// A program creates a Vm with a class path, looks up classes, sends messages and reads the
// answers. Native code that the VM calls (native methods, jitkit/som/native.h) uses the same
// API to call back into SOM, at any depth: SOM → native → SOM → native → ... from interpreted
// and from compiled code alike (docs/som-embedding.md has the whole model).
//
//   jitkit::som::Options options;
//   options.class_path = {"/usr/share/jitkit/som/core-lib", "app/som"};
//   auto vm = jitkit::som::Vm::create(options);
//   if (!vm) { std::fprintf(stderr, "%s\n", vm.error().describe().c_str()); return 1; }
//   auto cls = (*vm)->global("Counter");                    // loads Counter.som
//   auto counter = (*vm)->send(*cls, "new");
//   jitkit::som::Handle keep = (*vm)->hold(*counter);       // survives collections
//   auto n = (*vm)->send(keep.get(), "add:", {(*vm)->integer(41)});
//   if (!n) std::fprintf(stderr, "%s\n", n.error().describe().c_str());   // never exits
//
// Values. A Value is one tagged machine word. Objects move when the collector runs, and the
// collector runs only while SOM code runs (making a value never collects), so a Value is
// valid until the next call that runs SOM code: send, global, run_main, load_native. To keep
// one across such calls, hold it in a Handle, which the collector updates. The arguments a
// native method receives are the exception: they live in the VM's frame stack, which the
// collector updates too (native.h).
//
// Errors. Nothing here throws, and the VM never exits the process. Every operation that can
// fail answers a Result: the value, or an Error with its kind, its message and the SOM stack
// trace at the point of failure. A runtime error in SOM code, a `doesNotUnderstand:`, or
// `system exit:` ends the outermost send the embedding program made; the program then
// decides what to do. Inside a native method, a send whose callee fails answers
// ErrorKind::kUnwinding: the native must return, and the VM goes on unwinding (native.h).
//
// Threads and signals. A Vm belongs to the thread that created it. A call from any other
// thread, and a call made while the VM is running SOM code (which is what a signal handler
// interrupting the VM would do), is refused with ErrorKind::kRefused and touches nothing.
#pragma once

#include <cstdint>
#include <initializer_list>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>
#include <vector>

#include "jitkit/base/result.h"

namespace som {
class VM;  // the implementation (som/src)
}

namespace jitkit::som {

class Vm;

// One SOM value: a small integer, or a reference to an object (nil, true and false are
// objects). Compare with == for identity. See "Values" above for how long it stays valid.
// The encoding of small integers is part of the ABI, so that natives can read and make them
// inline (is_small_integer and friends below): the word 2n+1 is the integer n, for n in
// [-2^62, 2^62-1]; every other non-zero word refers to an object.
class Value {
 public:
  constexpr Value() = default;  // no value (not nil): what a failed native answers
  constexpr explicit Value(std::uint64_t bits) : bits_(bits) {}
  constexpr std::uint64_t bits() const { return bits_; }
  constexpr bool is_empty() const { return bits_ == 0; }
  friend constexpr bool operator==(Value, Value) = default;

 private:
  std::uint64_t bits_ = 0;
};
static_assert(sizeof(Value) == 8 && std::is_trivially_copyable_v<Value>);

inline constexpr std::int64_t kSmallIntegerMin = -(std::int64_t{1} << 62);
inline constexpr std::int64_t kSmallIntegerMax = (std::int64_t{1} << 62) - 1;
constexpr bool is_small_integer(Value v) { return (v.bits() & 1) != 0; }
// The integer of a small-integer Value (check is_small_integer first).
constexpr std::int64_t small_integer_value(Value v) { return static_cast<std::int64_t>(v.bits()) >> 1; }
// The Value of n, which must be within [kSmallIntegerMin, kSmallIntegerMax] (Vm::integer
// takes any int64).
constexpr Value small_integer(std::int64_t n) { return Value((static_cast<std::uint64_t>(n) << 1) | 1); }

// An interned selector: what Vm::send looks up, made once (Vm::selector) and valid as long as
// its Vm. Sending through one skips interning the selector's text on every send.
class Selector {
 public:
  Selector() = default;
  int arity() const { return arity_; }
  explicit operator bool() const { return symbol_ != nullptr; }

 private:
  friend class Vm;
  void* symbol_ = nullptr;
  void* entry_ = nullptr;  // the VM's one-send trampoline for this selector
  int arity_ = 0;
};

enum class ErrorKind {
  kRuntime,          // a SOM runtime error: bad primitive argument, stack overflow, ...
  kExit,             // SOM ran `system exit: n` (Object>>error: and the default
                     // doesNotUnderstand: end there): exit_status() is n
  kCompile,          // a class's source does not parse or compile (file:line:column)
  kUnwinding,        // inside a native: an error or a non-local return is passing through
                     // this native's frame; return from the native (native.h)
  kRefused,          // wrong thread, signal handler, or a call while SOM code runs
  kInvalidArgument,  // the call itself is wrong: unknown class, a Value of the wrong kind, ...
  kNativeLibrary,    // loading or binding native methods failed (native.h)
};

// The name of an ErrorKind, e.g. "runtime error".
std::string_view error_kind_name(ErrorKind kind);

class Error {
 public:
  Error(ErrorKind kind, std::string message, std::string stack_trace = {}, int exit_status = 1)
      : kind_(kind), message_(std::move(message)), stack_trace_(std::move(stack_trace)), exit_status_(exit_status) {}
  // An error with a static message: makes no allocation, so that a refusal can be answered
  // even inside a signal handler that interrupted malloc.
  Error(ErrorKind kind, const char* static_message) : kind_(kind), static_message_(static_message), exit_status_(1) {}

  ErrorKind kind() const { return kind_; }
  std::string_view message() const { return static_message_ ? std::string_view(static_message_) : message_; }
  // "SOM stack trace (most recent call first, N activations):\n  Class>>selector (file:line)\n..."
  // for errors raised while SOM code ran; empty otherwise.
  const std::string& stack_trace() const { return stack_trace_; }
  // The status SOM asked for (kExit); 1 for other errors.
  int exit_status() const { return exit_status_; }
  // The message as the `som` command prints it ("som: runtime error: ..." and the trace).
  std::string describe() const;

 private:
  ErrorKind kind_;
  std::string message_;
  const char* static_message_ = nullptr;
  std::string stack_trace_;
  int exit_status_;
};

// A value or an Error: the toolkit's Result (jitkit/base/result.h) with the SOM Error.
template <typename T>
using Result = jitkit::Result<T, Error>;
using Status = Result<void>;

// Keeps one value alive and current across collections (a GC root). Move-only; releases its
// root when destroyed. Use it on the Vm's thread only (released on another thread, its root is
// leaked rather than raced), and do not let it outlive the Vm.
class Handle {
 public:
  Handle() = default;
  Handle(Handle&& other) noexcept : vm_(std::exchange(other.vm_, nullptr)), slot_(other.slot_) {}
  Handle& operator=(Handle&& other) noexcept;
  Handle(const Handle&) = delete;
  Handle& operator=(const Handle&) = delete;
  ~Handle() { reset(); }

  Value get() const;  // the value now (empty Value for an empty handle)
  void set(Value v);  // keep another value in the same root
  explicit operator bool() const { return vm_ != nullptr; }
  void reset();  // releases the root

 private:
  friend class Vm;
  Handle(Vm* vm, std::uint32_t slot) : vm_(vm), slot_(slot) {}
  Vm* vm_ = nullptr;
  std::uint32_t slot_ = 0;
};

enum class JitMode { kOff, kOn, kAlways };
// Options::jit_threshold's default (`som --jit-threshold`).
inline constexpr std::uint32_t kDefaultJitThreshold = 100;

struct Options {
  // Directories searched for Class.som files, in order. Must include the core library.
  std::vector<std::string> class_path;
  JitMode jit = JitMode::kOn;
  // Interpreter invocations plus loop iterations before a method is compiled (JitMode::kOn).
  std::uint32_t jit_threshold = kDefaultJitThreshold;
  // JitMode::kOn: true compiles hot methods on a thread of the VM's own while the interpreter
  // goes on running them (`som --jit-background=on`): the VM's thread then stops only to queue
  // a method and to publish its code, but the method runs interpreted until the code is ready
  // (docs/som-jit.md, "Background compilation"). false (the default) compiles them on the VM's
  // thread, which waits. JitMode::kAlways always compiles on the VM's thread, before a method
  // first runs.
  bool jit_background = false;
  // Shared libraries of native methods to load after the core classes (native.h).
  std::vector<std::string> natives;
  bool optimize = true;  // false: the interpreter's reference configuration (no JIT either)
  int debug_level = 0;   // 1: print bytecode and JIT decisions to stderr (`som -d`)
  bool gc_verbose = false;
};

class Vm {
 public:
  // Creates a VM on the calling thread, which then owns it, and loads the core classes and
  // Options::natives. Errors: kCompile (a core class does not compile), kInvalidArgument (a
  // core class is not on the class path), kNativeLibrary, or kRuntime (no memory for the
  // frame stack, or the JIT cannot start).
  static Result<std::unique_ptr<Vm>> create(const Options& options);
  ~Vm();
  Vm(const Vm&) = delete;
  Vm& operator=(const Vm&) = delete;

  // --- running SOM ---------------------------------------------------------------------
  // Sends `selector` to `receiver` and answers the reply. The number of arguments must match
  // the selector's arity (kInvalidArgument otherwise).
  Result<Value> send(Value receiver, std::string_view selector, std::span<const Value> args);
  Result<Value> send(Value receiver, std::string_view selector, std::initializer_list<Value> args = {}) {
    return send(receiver, selector, std::span<const Value>(args.begin(), args.size()));
  }
  // The same with a selector interned once: the fast way for natives that call back often.
  Result<Value> send(Value receiver, Selector selector, std::span<const Value> args);
  Result<Value> send(Value receiver, Selector selector, std::initializer_list<Value> args = {}) {
    return send(receiver, selector, std::span<const Value>(args.begin(), args.size()));
  }
  Result<Selector> selector(std::string_view name);
  // The value of global `name`; a class not loaded yet is loaded from the class path.
  // kInvalidArgument if there is no such global and no such class file.
  Result<Value> global(std::string_view name);
  // The `som` command's protocol: `system initialize: args` (args[0] is the main class).
  // Succeeds when initialize: returns; `system exit: n` comes back as an Error of kind kExit
  // with exit_status() n (also for n = 0).
  Status run_main(const std::vector<std::string>& args);

  // --- making values ------------------------------------------------------------------
  // These never collect. When the call is refused (another thread, a signal handler, a native
  // whose send is unwinding) they answer an empty Value and change nothing.
  Value nil() const;
  Value boolean(bool b) const;
  // A small or a big integer (a small one is made inline and touches no VM state).
  Value integer(std::int64_t i) {
    return i >= kSmallIntegerMin && i <= kSmallIntegerMax ? small_integer(i) : big_integer(i);
  }
  Result<Value> integer_from_decimal(std::string_view digits);  // any size, optional '-'
  Value dbl(double d);
  Value string(std::string_view utf8);
  Value symbol(std::string_view text);
  Value new_array(std::uint32_t length);  // filled with nil
  // 0-based. Storing into a class's `methods` Array replaces that method of the class, as
  // SOM's at:put: does (it may fail as a send does).
  Status array_put(Value array, std::uint32_t index, Value element);

  // --- reading values -----------------------------------------------------------------
  bool is_nil(Value v) const;
  bool is_integer(Value v) const;  // small or big
  // kInvalidArgument if not an Integer or too big. Small integers are read inline.
  Result<std::int64_t> to_int64(Value v) const {
    if (is_small_integer(v)) return small_integer_value(v);
    return big_to_int64(v);
  }
  Result<std::string> to_decimal(Value v) const;  // any Integer
  Result<double> to_double(Value v) const;  // a Double (or an Integer, converted)
  Result<bool> to_bool(Value v) const;
  Result<std::string> to_string(Value v) const;  // a String's or a Symbol's text
  Result<std::uint32_t> array_length(Value v) const;
  Result<Value> array_at(Value array, std::uint32_t index) const;  // 0-based
  std::string class_name(Value v) const;  // "Integer", "Foo class", ...

  // --- handles and natives ------------------------------------------------------------
  // An empty Handle when refused (another thread, a signal handler) or for an empty Value.
  Handle hold(Value v);
  // Loads a native library and binds its methods (native.h).
  Status load_native(std::string_view path);
  // For a native method: makes its send fail with a SOM runtime error carrying `message` and
  // the SOM stack trace; the native must return the Value this answers.
  Value fail(std::string_view message);

  // The implementation, for the `som` command and the VM's own tests.
  ::som::VM& internal() { return *vm_; }

 private:
  friend class Handle;
  explicit Vm(std::unique_ptr<::som::VM> vm);
  Value big_integer(std::int64_t i);
  Result<std::int64_t> big_to_int64(Value v) const;
  std::unique_ptr<::som::VM> vm_;
};

}  // namespace jitkit::som
