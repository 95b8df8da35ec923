// The SOM object model: tagged values, object headers and the layouts of every kind of object.
// docs/som-vm.md explains the design; the short version:
//  * Value is one 64-bit word. Low bit 1: a small integer (63-bit, value = word >> 1).
//    Low bit 0: a pointer to an Object (8-byte aligned). nil/true/false are real objects.
//  * Every Object starts with a 16-byte header holding its 32-bit class tag (index into the
//    VM's class table), its identity hash (fixed at allocation, so it survives moves), a length
//    and a kind that fixes the layout. The GC needs nothing else to size and scan an object.
//  * Objects live either in the moving heap (heap_p.h) or are permanent (symbols, classes,
//    methods, literals, nil/true/false/system): permanent objects never move and are never freed.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "jitkit/som/native.h"

namespace som {

using Value = uint64_t;

inline bool is_int(Value v) { return v & 1; }
inline int64_t int_of(Value v) { return static_cast<int64_t>(v) >> 1; }
constexpr int64_t kSmallMax = (int64_t(1) << 62) - 1;
constexpr int64_t kSmallMin = -(int64_t(1) << 62);
inline bool fits_small(int64_t i) { return i >= kSmallMin && i <= kSmallMax; }
inline Value from_int(int64_t i) { return (static_cast<uint64_t>(i) << 1) | 1; }

enum Kind : uint8_t {
  kInstance,  // slots = fields
  kArray,     // slots = elements
  kContext,   // slots: [0] outer context, [1] home frame marker, [2..] captured variables
  kBlock,     // slots: [0] block Method, [1] outer context, [2] self
  kString,    // bytes (UTF-8); aux caches whether they are all ASCII (primitives.cpp)
  kDouble,    // one double
  kBigInt,    // limbs; aux = sign (0 positive, 1 negative); length = limb count (never 0)
  kSymbol,    // permanent: struct Symbol
  kClass,     // permanent: struct Class
  kMethod,    // permanent: struct Method (also primitives and block methods)
};

// kMethodTable: the Array a class answers for `methods`; storing into it replaces a method of
// the class (VM::replace_method), so Array>>at:put: leaves its inline fast path for it.
enum ObjFlags : uint8_t { kPermanent = 1, kForwarded = 2, kMethodTable = 4 };

struct Object {
  uint32_t cls;     // class tag of this object
  uint32_t hash;    // identity hash
  uint32_t length;  // slots / bytes / limbs
  uint8_t kind;
  uint8_t flags;
  uint16_t aux;

  Value* slots() { return reinterpret_cast<Value*>(this + 1); }
  char* bytes() { return reinterpret_cast<char*>(this + 1); }
  double& dbl() { return *reinterpret_cast<double*>(this + 1); }
  uint64_t* limbs() { return reinterpret_cast<uint64_t*>(this + 1); }
};
static_assert(sizeof(Object) == 16);

inline Object* obj(Value v) { return reinterpret_cast<Object*>(v); }
inline Value val(const void* o) { return reinterpret_cast<Value>(o); }

// Size in bytes of a heap object of this kind and length (header included, 8-byte multiple).
inline size_t object_bytes(uint8_t kind, uint32_t length) {
  switch (kind) {
    case kString:
      return sizeof(Object) + ((size_t(length) + 1 + 7) & ~size_t(7));
    case kDouble:
      return sizeof(Object) + 8;
    default:
      return sizeof(Object) + size_t(length) * 8;
  }
}
inline bool has_slots(uint8_t kind) { return kind <= kBlock; }

struct Class;
struct Method;

// An interned symbol. Also the home of the global variable of that name, so that a global
// read is one load (no hash lookup): `global` is valid when `has_global` is set.
struct Symbol : Object {
  Value global;
  bool has_global;
  int num_args;  // arity if used as a selector
  std::string text;
};

struct SendSite;

// Method, primitive or block body. Permanent. `code` is the bytecode (docs/som-bytecode.md).
enum class MethodKind : uint8_t { kBytecode, kPrimitive, kMissingPrimitive };

struct SendSite {
  Symbol* selector;
  uint32_t argc;
  // Two-entry inline cache: receiver class tag -> method (UINT32_MAX = empty). Entry 0 is the
  // most recently filled; a miss moves it to entry 1. Super sends use cached_target only.
  uint32_t cached_tag;
  uint32_t cached_tag2;
  Method* cached_target;
  Method* cached_target2;
  Class* super_start;  // super sends: class where lookup starts (else nullptr)
  uint32_t cont_pc;    // inlined control flow: where a fallback send resumes
  // Inlined control flow: the arguments of the fallback send, one per argument (argc <= 3).
  // kFallbackNil: nil; >= 0: a new closure over `Method::blocks[k]` (the literal block compiled
  // as a real block too, created only when the fallback is taken); <= kFallbackLocal0: the frame
  // local `kFallbackLocal0 - v` (the evaluated limit/step of an inlined to:do: family loop).
  int32_t fallback_arg[3];
  // NIL_CHECK: receiver class tags whose method for `selector` is the library's Object one
  // (UINT32_MAX = empty). Separate from cachedTag: the fallback send fills that cache with
  // exactly the classes that are *not* standard.
  uint32_t std_tag;
  uint32_t std_tag2;
};
constexpr int32_t kFallbackNil = -1;
constexpr int32_t kFallbackLocal0 = -2;

// Primitives the interpreter performs itself, because they push frames or change control flow.
enum class SpecialPrim : uint8_t {
  kNone = 0,
  kValue,             // Block value / value: / value:with:
  kRestart,           // Block restart
  kPerform,           // perform:
  kPerformArgs,       // perform:withArguments:
  kPerformSuper,      // perform:inSuperclass:
  kPerformArgsSuper,  // perform:withArguments:inSuperclass:
  kInvoke,            // Method/Primitive invokeOn:with:
  kArrayAt,           // Array at: / at:put: / length: inline fast paths, `fn` on failure
  kArrayAtPut,
  kArrayLength,
  kNative,  // a native method (jitkit/som/native.h): Method::native, called directly
};

class VM;
using PrimFn = Value (*)(VM&, Value* args);  // args[0] = receiver

struct Method : Object {
  MethodKind mkind = MethodKind::kBytecode;
  bool is_block = false;
  bool has_context = false;  // allocates a Context on entry (contains real blocks)
  Symbol* signature = nullptr;
  Class* holder = nullptr;
  Method* outer = nullptr;  // for blocks: lexically enclosing method/block
  int num_args = 0;         // without receiver
  int num_locals = 0;       // frame locals (not captured), including inlined temporaries
  int num_ctx_vars = 0;     // context variables (captured)
  int max_stack = 0;
  PrimFn prim = nullptr;
  SpecialPrim special_prim = SpecialPrim::kNone;  // primitive the interpreter performs itself
  // Trivial bytecode methods the interpreter answers without pushing a frame.
  enum Trivial : uint8_t { kNotTrivial, kGetter, kSetter, kConstant, kSelf } trivial = kNotTrivial;
  uint16_t trivial_index = 0;  // field index (Getter/Setter)
  Value trivial_value = 0;     // the answer (Constant)
  std::vector<uint8_t> code;
  std::vector<Value> literals;
  std::vector<SendSite> sites;
  std::vector<Method*> blocks;
  std::vector<std::pair<int, int>> ctx_args;  // (arg index 1.., context slot) copied on entry
  // Lazy context (has_context is false): the activation needs a Context only for the real blocks
  // of control-structure fallback sends. It is created when the first fallback that passes a
  // block is taken; until then the variables those blocks use live in frame slots, accessed by
  // the *_LAZY instructions. lazyVars: (frame slot, context slot), frame slot = local index, or
  // -arg_index for an argument; copied into the Context when it is created.
  bool lazy_context = false;
  std::vector<std::pair<int, int>> lazy_vars;
  std::vector<std::pair<uint32_t, int>> lines;  // (pc, line) in increasing pc order
  // Baseline JIT (som/src/jit, docs/som-jit.md): the compiled body (0 while the method runs in
  // the interpreter), the tiering counter (invocations plus back-edges in the interpreter),
  // whether compiling it failed (it then stays interpreted) and whether it waits for the
  // background compile thread (jit/compile_thread_p.h).
  uintptr_t jit_entry = 0;
  uint32_t hotness = 0;
  bool jit_failed = false;
  bool jit_queued = false;
  std::string file_name;
  // SpecialPrim::kNative: the library function (last: the interpreter's hot fields stay put).
  jitkit::som::NativeFn native = nullptr;
  int line_at(uint32_t pc) const {
    int l = lines.empty() ? 0 : lines[0].second;
    for (auto& e : lines) {
      if (e.first > pc) break;
      l = e.second;
    }
    return l;
  }
};

struct Class : Object {
  uint32_t tag = 0;  // class tag of this class's instances
  Symbol* name = nullptr;
  Class* superclass = nullptr;  // nullptr = nil
  bool is_meta = false;
  bool loaded = false;
  Class* meta = nullptr;            // the metaclass (non-meta classes)
  Class* sole_instance = nullptr;   // for metaclasses
  uint8_t inst_kind = kInstance;    // layout of instances created by `new`
  std::vector<Symbol*> fields;      // instance field names, inherited first
  std::vector<Value> class_fields;  // values of class-side fields (non-meta classes)
  std::unordered_map<Symbol*, Method*> method_map;
  std::vector<Method*> methods;  // own methods in source order
  // The Array answered by `methods` (0 until first asked for): the same object every time, so
  // that storing into it changes the class (VM::replace_method).
  Value methods_array = 0;
  // The selector each slot of `methods` answers for (fixed when the table is first made): a
  // method stored into slot i becomes the class's method for method_slots[i].
  std::vector<Symbol*> method_slots;
};

// An activation. Frames live on the VM's contiguous frame stack (vm_p.h):
//   [receiver][arg1]..[argN] | Frame header | locals[num_locals] | operand stack ...
// The caller pushed receiver and arguments; they become the callee's argument area in place.
struct Frame {
  Frame* caller;          // nullptr for an entry frame
  const uint8_t* ret_pc;  // where the caller resumes (the caller's pc at the send)
  Method* method;
  Value* args;        // &receiver
  Value self;         // the home method's receiver (blocks: the closure's self)
  Value context;      // own Context object or 0 (no context)
  Value outer_ctx;    // blocks: the closure's outer context; methods: 0
  uint64_t is_entry;  // kEntryFromHost / kEntryFromJit: returning leaves the interpreter loop
  Value* locals() { return reinterpret_cast<Value*>(this + 1); }
};
constexpr size_t kFrameWords = sizeof(Frame) / sizeof(Value);

// Frame::is_entry: 0 for an ordinary activation; otherwise the first frame of an interpreter
// run started from outside the interpreter.
//  * kEntryFromHost: the embedding program's outermost send (VM::send, the embedding API). A
//    non-local return may not cross it; an error passing it continues as a C++ VmUnwind
//    (unwind_p.h) to the API, which answers the Error.
//  * kEntryFromJit: compiled code (docs/som-jit.md). A non-local return or an error crosses it:
//    the interpreter returns to the compiled caller with VM::unwind_target_ set and the compiled
//    frames unwind themselves by returning.
//  * kEntryFromNative: a native method's call back into SOM (docs/som-embedding.md). Crossed
//    like kEntryFromJit; the native's send answers ErrorKind::kUnwinding.
constexpr uint64_t kEntryFromHost = 1;
constexpr uint64_t kEntryFromJit = 2;
constexpr uint64_t kEntryFromNative = 3;

// The fields of `o` as PUSH_FIELD/STORE_FIELD number them: a class object's are its class-side
// fields.
inline Value* fields_of(Object* o) {
  return o->kind == kClass ? static_cast<Class*>(o)->class_fields.data() : o->slots();
}
// Does field i, as numbered by `holder` (the method's defining class), exist in self? Always
// true for sends found by normal lookup under this VM's own library; perform:inSuperclass: and
// invokeOn:with: can run a method on an unrelated receiver, which must not crash the VM.
// A class object's slots are its class-side fields, numbered like the fields of its METAclass,
// so only a class-side method (holder is a metaclass) may index them. An instance-side method
// of Class or Object reaching a class object numbers the fields Class/Object declare for their
// instances, which this VM's class objects do not have (`name`, `superclass`, `class` are
// primitives, LANGUAGE.md §4). Without the holder check such a read silently aliased a
// class-side field: an older standard library's `Class = ( | superClass name ... |
// name = ( ^name ) )` answered a user class's third class-side field as its name.
inline bool has_field(Value self, uint32_t i, const Class* holder) {
  if (is_int(self)) return false;
  Object* o = obj(self);
  if (o->kind == kInstance) return i < o->length;
  return o->kind == kClass && holder && holder->is_meta && i < static_cast<Class*>(o)->class_fields.size();
}
}  // namespace som
