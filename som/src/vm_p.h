// The SOM virtual machine: symbols, classes, globals, class loading, the frame stack, the
// interpreter loop, primitives and garbage-collection roots. One VM per process is the normal
// case, but nothing is global except the pointer used by the fatal-error path.
#pragma once

#include "heap_p.h"
#include "object_p.h"

#include <cstdio>
#include <initializer_list>
#include <map>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

namespace som {

struct ClassDef;

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
  void setClassPath(const std::string& cp);  // ':'-separated
  void addClassPathEntry(const std::string& dir) { classPath_.push_back(dir); }
  // Creates nil/true/false/system and loads the core classes from the class path.
  // On failure prints a message to stderr and returns false.
  bool bootstrap();
  // The standard startup protocol: sends `initialize:` to system with the argument array.
  // Returns the process exit status.
  int runMain(const std::vector<std::string>& args);

  // Sends `sel` to `rcv` and runs the interpreter until it answers (a re-entrant entry point).
  Value send(Value rcv, Symbol* sel, std::initializer_list<Value> args = {});

  // --- objects ------------------------------------------------------------------------
  Symbol* intern(std::string_view s);
  Value newString(std::string_view s);
  Value newArray(uint32_t n);
  Value newDouble(double d);
  Value newInstance(Class* c);
  // A permanent object (never moved or collected); freed when the VM is destroyed.
  Object* permAlloc(uint8_t kind, uint32_t cls, uint32_t length);
  Value permString(std::string_view s);
  Value permDouble(double d);
  Value permArray(uint32_t n);  // registered as a GC root (literal arrays may be mutated)
  Value intValue(int64_t i);    // small or big
  Value bigFromDecimal(const std::string& digits, bool permanent);

  uint32_t tagOf(Value v) const { return isInt(v) ? integerTag : obj(v)->cls; }
  Class* classOf(Value v) const { return classTable[tagOf(v)]; }
  Method* lookup(Class* c, Symbol* sel);
  Class* loadClass(Symbol* name);  // nullptr if no file on the class path; exits on errors
  bool isString(Value v) const { return !isInt(v) && (obj(v)->kind == kString || obj(v)->kind == kSymbol); }
  std::string_view stringOf(Value v) const {
    Object* o = obj(v);
    if (o->kind == kSymbol) return static_cast<Symbol*>(o)->text;
    return std::string_view(o->bytes(), o->length);
  }
  std::string describe(Value v);  // "instance of Foo", for error messages

  // --- errors -------------------------------------------------------------------------
  [[noreturn]] void fatal(const std::string& message);
  void printStackTrace(FILE* out);
  [[noreturn]] void exitVM(int status);

  // --- GC -----------------------------------------------------------------------------
  void collectGarbage();
  std::vector<Value> extraRoots;  // values C++ code keeps across interpreter calls

  // --- interpreter state ----------------------------------------------------------------
  Value interpret();  // runs from fp/pc until the current entry frame returns
  Value* stackBase = nullptr;
  Value* stackLimit = nullptr;
  Value* sp = nullptr;  // top element (stackBase - 1 when empty)
  Frame* fp = nullptr;
  const uint8_t* pc = nullptr;

  Heap heap;
  std::vector<Class*> classTable;  // tag -> class
  uint32_t integerTag = 0, doubleTag = 0, stringTag = 0, symbolTag = 0, arrayTag = 0;
  uint32_t nilTag = 0, trueTag = 0, falseTag = 0;
  Class *objectClass = nullptr, *classClass = nullptr, *metaclassClass = nullptr, *nilClass = nullptr,
        *booleanClass = nullptr, *trueClass = nullptr, *falseClass = nullptr, *integerClass = nullptr,
        *doubleClass = nullptr, *stringClass = nullptr, *symbolClass = nullptr, *arrayClass = nullptr,
        *blockClass = nullptr, *block1Class = nullptr, *block2Class = nullptr, *block3Class = nullptr,
        *methodClass = nullptr, *primitiveClass = nullptr, *systemClass = nullptr;
  Value nilV = 0, trueV = 0, falseV = 0, systemV = 0;
  Symbol *symDNU = nullptr, *symUnknownGlobal = nullptr, *symEscapedBlock = nullptr, *symInitialize = nullptr;

  // Primitive table: key "Class>>sel" or "Class class>>sel".
  std::unordered_map<std::string, PrimEntry> primitives;
  void registerPrimitives();  // primitives.cpp

  // false: compile without control-structure inlining, arithmetic fast-path opcodes and
  // frame-less trivial methods, and never fill inline caches (every send uses the global
  // lookup cache). A reference configuration for measuring what those optimizations buy.
  bool optimize = true;
  uint64_t startMicros = 0;
  int debugLevel = 0;
  bool gcVerbose = false;
  std::map<std::pair<Symbol*, int>, Method*> entryMethods;

 private:
  Class* newClassShell(const char* name);
  bool defineClass(Class* cls, ClassDef& def, const std::string& file);
  Method* entryMethod(Symbol* sel, int argc);

  std::vector<std::string> classPath_;
  std::vector<Symbol*> loading_;  // classes being loaded (superclass cycle detection)
  std::unordered_map<std::string_view, Symbol*> symbols_;
  std::vector<Object*> permArrays_;
  std::vector<Object*> permObjects_;  // everything permAlloc returned
  struct CacheEntry {
    uint32_t tag;
    Symbol* sel;
    Method* m;
  };
  std::vector<CacheEntry> lookupCache_;
  size_t stackBytes_ = 0;
};

uint64_t nowMicros();

}  // namespace som
