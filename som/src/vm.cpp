// VM setup, objects, class loading, method lookup, errors and GC roots. See vm_p.h.
#include "vm_p.h"

#include "bytecode_p.h"
#include "compiler_p.h"
#include "parser_p.h"

#include <sys/mman.h>

#include <gmp.h>
#include <chrono>
#include <fstream>
#include <sstream>

namespace som {

uint64_t nowMicros() {
  using namespace std::chrono;
  return static_cast<uint64_t>(duration_cast<microseconds>(steady_clock::now().time_since_epoch()).count());
}

VM::VM() : lookupCache_(8192, CacheEntry{UINT32_MAX, nullptr, nullptr}) {
  // The frame stack: 256 MiB of address space, committed lazily by the kernel.
  stackBytes_ = size_t(256) << 20;
  void* mem =
      mmap(nullptr, stackBytes_, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
  if (mem == MAP_FAILED) {
    std::fprintf(stderr, "som: cannot reserve the frame stack\n");
    std::exit(1);
  }
  stackBase = static_cast<Value*>(mem);
  stackLimit = stackBase + stackBytes_ / sizeof(Value) - 1024;
  sp = stackBase - 1;
  startMicros = nowMicros();
  if (const char* st = std::getenv("SOM_GC_STRESS"); st && *st == '1') heap.setStress(true);
  registerPrimitives();
}

namespace {
void freeMethodTree(Method* m) {
  for (Method* b : m->blocks) freeMethodTree(b);
  delete m;
}
}  // namespace

VM::~VM() {
  munmap(stackBase, stackBytes_);
  // Permanent objects live as long as the VM: classes with their methods, symbols, literals.
  for (Class* c : classTable) {
    for (Method* m : c->methods) freeMethodTree(m);
    delete c;
  }
  for (auto& [key, m] : entryMethods) delete m;
  std::vector<Symbol*> syms;
  for (auto& [text, sym] : symbols_) syms.push_back(sym);
  symbols_.clear();
  for (Symbol* sym : syms) delete sym;
  for (Object* o : permObjects_) std::free(o);
}

void VM::setClassPath(const std::string& cp) {
  size_t start = 0;
  while (start <= cp.size()) {
    size_t end = cp.find(':', start);
    if (end == std::string::npos) end = cp.size();
    if (end > start) classPath_.push_back(cp.substr(start, end - start));
    start = end + 1;
  }
}

// --- objects -------------------------------------------------------------------------------

Object* VM::permAlloc(uint8_t kind, uint32_t cls, uint32_t length) {
  size_t bytes = objectBytes(kind, length);
  auto* o = static_cast<Object*>(std::aligned_alloc(16, (bytes + 15) & ~size_t(15)));
  if (!o) {
    std::fprintf(stderr, "som: out of memory\n");
    std::exit(1);
  }
  std::memset(o, 0, bytes);
  o->cls = cls;
  o->hash = heap.nextHash();
  o->length = length;
  o->kind = kind;
  o->flags = kPermanent;
  permObjects_.push_back(o);
  return o;
}

Symbol* VM::intern(std::string_view s) {
  auto it = symbols_.find(s);
  if (it != symbols_.end()) return it->second;
  auto* sym = new Symbol();
  std::memset(static_cast<Object*>(sym), 0, sizeof(Object));
  sym->cls = symbolTag;
  sym->hash = 0;
  sym->kind = kSymbol;
  sym->flags = kPermanent;
  sym->global = 0;
  sym->hasGlobal = false;
  sym->text = std::string(s);
  sym->length = static_cast<uint32_t>(s.size());
  // Selector arity: keywords count colons, binary selectors take one argument.
  int colons = 0;
  for (char c : s) colons += c == ':';
  sym->numArgs = colons ? colons : (!s.empty() && isBinaryOpChar(s[0]) ? 1 : 0);
  // String and Symbol hashes agree (content hash, LANGUAGE.md §3.7).
  uint32_t h = 2166136261u;
  for (char c : s) h = (h ^ static_cast<uint8_t>(c)) * 16777619u;
  sym->hash = h;
  symbols_.emplace(std::string_view(sym->text), sym);
  return sym;
}

Value VM::newString(std::string_view s) {
  Object* o = heap.alloc(kString, stringTag, static_cast<uint32_t>(s.size()));
  if (!s.empty()) std::memcpy(o->bytes(), s.data(), s.size());
  o->bytes()[s.size()] = 0;
  return val(o);
}

Value VM::permString(std::string_view s) {
  Object* o = permAlloc(kString, stringTag, static_cast<uint32_t>(s.size()));
  if (!s.empty()) std::memcpy(o->bytes(), s.data(), s.size());
  return val(o);
}

Value VM::newArray(uint32_t n) {
  Object* o = heap.alloc(kArray, arrayTag, n);
  Value* s = o->slots();
  for (uint32_t i = 0; i < n; i++) s[i] = nilV;
  return val(o);
}

Value VM::permArray(uint32_t n) {
  Object* o = permAlloc(kArray, arrayTag, n);
  for (uint32_t i = 0; i < n; i++) o->slots()[i] = nilV;
  permArrays_.push_back(o);
  return val(o);
}

Value VM::newDouble(double d) {
  Object* o = heap.alloc(kDouble, doubleTag, 0);
  o->dbl() = d;
  return val(o);
}

Value VM::permDouble(double d) {
  Object* o = permAlloc(kDouble, doubleTag, 0);
  o->dbl() = d;
  return val(o);
}

Value VM::newInstance(Class* c) {
  uint32_t n = static_cast<uint32_t>(c->fields.size());
  Object* o = heap.alloc(kInstance, c->tag, n);
  Value* s = o->slots();
  for (uint32_t i = 0; i < n; i++) s[i] = nilV;
  return val(o);
}

std::string VM::describe(Value v) {
  Class* c = classOf(v);
  if (isInt(v)) return "Integer " + std::to_string(intOf(v));
  if (v == nilV) return "nil";
  std::string n = c && c->name ? c->name->text : "?";
  if (obj(v)->kind == kClass) return "class " + static_cast<Class*>(obj(v))->name->text;
  return "instance of " + n;
}

// --- classes -------------------------------------------------------------------------------

Class* VM::newClassShell(const char* name) {
  auto makeClass = [&](bool meta) {
    auto* c = new Class();
    std::memset(static_cast<Object*>(c), 0, sizeof(Object));
    c->kind = kClass;
    c->flags = kPermanent;
    c->hash = heap.nextHash();
    c->isMeta = meta;
    c->tag = static_cast<uint32_t>(classTable.size());
    classTable.push_back(c);
    return c;
  };
  Class* c = makeClass(false);
  Class* m = makeClass(true);
  c->meta = m;
  m->soleInstance = c;
  c->cls = m->tag;
  m->cls = metaclassClass ? metaclassClass->tag : 0;
  c->name = intern(name);
  m->name = intern(std::string(name) + " class");
  return c;
}

Method* VM::lookup(Class* c, Symbol* sel) {
  size_t h = ((reinterpret_cast<uintptr_t>(sel) >> 4) ^ (c->tag * 2654435761u)) & 8191;
  CacheEntry& e = lookupCache_[h];
  if (e.tag == c->tag && e.sel == sel) return e.m;
  Method* found = nullptr;
  for (Class* k = c; k; k = k->superclass) {
    auto it = k->methodMap.find(sel);
    if (it != k->methodMap.end()) {
      found = it->second;
      break;
    }
  }
  if (found) e = CacheEntry{c->tag, sel, found};
  return found;
}

static bool readFile(const std::string& path, std::string& out) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return false;
  std::ostringstream ss;
  ss << in.rdbuf();
  out = ss.str();
  return true;
}

Class* VM::loadClass(Symbol* name) {
  if (name->hasGlobal && !isInt(name->global) && obj(name->global)->kind == kClass) {
    auto* c = static_cast<Class*>(obj(name->global));
    if (c->loaded) return c;
  }
  std::string source, path;
  bool found = false;
  for (auto& dir : classPath_) {
    path = dir + "/" + name->text + ".som";
    if (readFile(path, source)) {
      found = true;
      break;
    }
  }
  if (!found) return nullptr;
  for (Symbol* l : loading_)
    if (l == name) {
      std::fflush(stdout);
      std::fprintf(stderr, "%s:1:1: error: class '%s' is its own (indirect) superclass\n", path.c_str(),
                   name->text.c_str());
      exitVM(1);
    }
  struct LoadingGuard {
    std::vector<Symbol*>& v;
    LoadingGuard(std::vector<Symbol*>& vec, Symbol* s) : v(vec) { v.push_back(s); }
    ~LoadingGuard() { v.pop_back(); }
  } guard(loading_, name);
  ClassDef def;
  std::string err;
  if (!parseClass(source, path, def, err)) {
    std::fflush(stdout);
    std::fprintf(stderr, "%s\n", err.c_str());
    exitVM(1);
  }
  if (def.name != name->text) {
    std::fflush(stdout);
    std::fprintf(stderr, "%s:1:1: error: file defines class '%s', expected '%s'\n", path.c_str(),
                 def.name.c_str(), name->text.c_str());
    exitVM(1);
  }
  // Core classes have shells made at bootstrap (their tags are fixed); others are new.
  Class* cls = nullptr;
  if (name->hasGlobal && !isInt(name->global) && obj(name->global)->kind == kClass)
    cls = static_cast<Class*>(obj(name->global));
  else
    cls = newClassShell(name->text.c_str());
  if (!defineClass(cls, def, path)) exitVM(1);
  return cls;
}

bool VM::defineClass(Class* cls, ClassDef& def, const std::string& file) {
  Class* super = nullptr;
  if (def.superName != "nil") {
    std::string sname = def.superName.empty() ? "Object" : def.superName;
    if (sname == def.name) {
      std::fprintf(stderr, "%s:1:1: error: class '%s' cannot be its own superclass\n", file.c_str(),
                   def.name.c_str());
      return false;
    }
    Symbol* ssym = intern(sname);
    super = loadClass(ssym);
    if (!super) {
      std::fflush(stdout);
      std::fprintf(stderr, "%s:1:1: error: cannot load superclass '%s' of '%s' (not on the class path)\n",
                   file.c_str(), sname.c_str(), def.name.c_str());
      return false;
    }
  }
  Class* meta = cls->meta;
  cls->superclass = super;
  meta->superclass = super ? super->meta : classClass;
  cls->fields = super ? super->fields : std::vector<Symbol*>{};
  for (auto& f : def.instFields) cls->fields.push_back(intern(f));
  meta->fields = super ? super->meta->fields : std::vector<Symbol*>{};
  for (auto& f : def.classFields) meta->fields.push_back(intern(f));
  cls->classFields.assign(meta->fields.size(), nilV);
  if (super && cls->instKind == kInstance) cls->instKind = super->instKind;
  cls->loaded = true;  // before compiling: methods may name the class itself
  cls->name->global = val(cls);
  cls->name->hasGlobal = true;

  auto addMethods = [&](Class* holder, std::vector<MethodDef>& defs, bool classSide) -> bool {
    for (auto& md : defs) {
      Method* m = nullptr;
      if (md.isPrimitive) {
        m = new Method();
        std::memset(static_cast<Object*>(m), 0, sizeof(Object));
        m->kind = kMethod;
        m->flags = kPermanent;
        m->hash = heap.nextHash();
        m->cls = primitiveClass->tag;
        m->holder = holder;
        m->signature = intern(md.selector);
        m->numArgs = m->signature->numArgs;
        m->fileName = file;
        m->lines.push_back({0, md.pos.line});
        std::string key = def.name + (classSide ? " class>>" : ">>") + md.selector;
        auto it = primitives.find(key);
        if (it == primitives.end()) {
          m->mkind = MethodKind::kMissingPrimitive;
        } else {
          m->mkind = MethodKind::kPrimitive;
          m->prim = it->second.fn;
          m->specialPrim = it->second.special;
        }
      } else {
        std::string err;
        m = compileMethod(*this, holder, md, file, err);
        if (!m) {
          std::fflush(stdout);
          std::fprintf(stderr, "%s\n", err.c_str());
          return false;
        }
        m->cls = methodClass->tag;
        if (debugLevel > 0) std::fputs(disassemble(*this, m).c_str(), stderr);
      }
      auto it = holder->methodMap.find(m->signature);
      if (it != holder->methodMap.end()) {
        // A selector defined twice: the later definition wins.
        for (auto& x : holder->methods)
          if (x == it->second) x = m;
        freeMethodTree(it->second);
        it->second = m;
      } else {
        holder->methodMap[m->signature] = m;
        holder->methods.push_back(m);
      }
    }
    return true;
  };
  if (!addMethods(cls, def.instMethods, false)) return false;
  if (!addMethods(meta, def.classMethods, true)) return false;
  // Method caches never hold misses, and a class's methods are fixed once loaded, so no
  // invalidation is needed here.
  return true;
}

bool VM::bootstrap() {
  // Shells first, so every core class has its tag before any source is compiled.
  metaclassClass = nullptr;
  objectClass = newClassShell("Object");
  classClass = newClassShell("Class");
  metaclassClass = newClassShell("Metaclass");
  // Fix the headers of metaclasses created before Metaclass existed.
  for (Class* c : classTable)
    if (c->isMeta) c->cls = metaclassClass->tag;
  nilClass = newClassShell("Nil");
  booleanClass = newClassShell("Boolean");
  trueClass = newClassShell("True");
  falseClass = newClassShell("False");
  integerClass = newClassShell("Integer");
  doubleClass = newClassShell("Double");
  stringClass = newClassShell("String");
  symbolClass = newClassShell("Symbol");
  arrayClass = newClassShell("Array");
  blockClass = newClassShell("Block");
  block1Class = newClassShell("Block1");
  block2Class = newClassShell("Block2");
  block3Class = newClassShell("Block3");
  methodClass = newClassShell("Method");
  primitiveClass = newClassShell("Primitive");
  systemClass = newClassShell("System");
  integerTag = integerClass->tag;
  doubleTag = doubleClass->tag;
  stringTag = stringClass->tag;
  symbolTag = symbolClass->tag;
  arrayTag = arrayClass->tag;
  nilTag = nilClass->tag;
  trueTag = trueClass->tag;
  falseTag = falseClass->tag;
  // Symbols interned before the Symbol class existed get their class now.
  for (auto& [k, s] : symbols_) s->cls = symbolTag;
  arrayClass->instKind = kArray;
  stringClass->instKind = kString;
  symbolClass->instKind = kString;

  nilV = val(permAlloc(kInstance, nilTag, 0));
  trueV = val(permAlloc(kInstance, trueTag, 0));
  falseV = val(permAlloc(kInstance, falseTag, 0));
  systemV = val(permAlloc(kInstance, systemClass->tag, 0));
  auto defGlobal = [&](const char* n, Value v) {
    Symbol* s = intern(n);
    s->global = v;
    s->hasGlobal = true;
  };
  defGlobal("nil", nilV);
  defGlobal("true", trueV);
  defGlobal("false", falseV);
  defGlobal("system", systemV);
  for (Class* c : classTable)
    if (!c->isMeta) {
      c->name->global = val(c);
      c->name->hasGlobal = true;
    }
  symDNU = intern("doesNotUnderstand:arguments:");
  symUnknownGlobal = intern("unknownGlobal:");
  symEscapedBlock = intern("escapedBlock:");
  symInitialize = intern("initialize:");

  const char* core[] = {"Object",  "Class",  "Metaclass", "Nil",       "Boolean", "True",  "False",
                        "Integer", "Double", "String",    "Symbol",    "Array",   "Block", "Block1",
                        "Block2",  "Block3", "Method",    "Primitive", "System"};
  for (const char* n : core) {
    Class* c = loadClass(intern(n));
    if (!c) {
      std::fprintf(stderr,
                   "som: cannot find core class %s.som on the class path (use -cp with the "
                   "core library directory)\n",
                   n);
      return false;
    }
  }
  return true;
}

// --- running -------------------------------------------------------------------------------

Method* VM::entryMethod(Symbol* sel, int argc) {
  auto key = std::make_pair(sel, argc);
  auto it = entryMethods.find(key);
  if (it != entryMethods.end()) return it->second;
  // A two-instruction trampoline: SEND site0; RETURN_LOCAL. Its frame is the entry frame.
  auto* m = new Method();
  std::memset(static_cast<Object*>(m), 0, sizeof(Object));
  m->kind = kMethod;
  m->flags = kPermanent;
  m->cls = methodClass->tag;
  m->signature = intern("<entry>");
  m->holder = systemClass;
  m->code = {kSend, 0, 0, kReturnLocal};
  SendSite s{};
  s.selector = sel;
  s.argc = static_cast<uint32_t>(argc);
  s.cachedTag = UINT32_MAX;
  s.cachedTag2 = UINT32_MAX;
  m->sites.push_back(s);
  m->maxStack = argc + 4;
  entryMethods[key] = m;
  return m;
}

Value VM::send(Value rcv, Symbol* sel, std::initializer_list<Value> args) {
  Method* m = entryMethod(sel, static_cast<int>(args.size()));
  Value* base = sp + 1;
  base[0] = rcv;  // the entry frame's "receiver"
  auto* f = reinterpret_cast<Frame*>(base + 1);
  f->caller = fp;
  f->retPc = pc;
  f->method = m;
  f->args = base;
  f->self = rcv;
  f->context = 0;
  f->outerCtx = 0;
  f->isEntry = 1;
  Value* s = f->locals() - 1;
  *++s = rcv;
  for (Value a : args) *++s = a;
  sp = s;
  fp = f;
  pc = m->code.data();
  return interpret();
}

int VM::runMain(const std::vector<std::string>& args) {
  Value arr = newArray(static_cast<uint32_t>(args.size()));
  extraRoots.push_back(arr);
  for (size_t i = 0; i < args.size(); i++) {
    Value s = newString(args[i]);
    obj(extraRoots.back())->slots()[i] = s;
  }
  arr = extraRoots.back();
  extraRoots.pop_back();
  send(systemV, symInitialize, {arr});
  std::fflush(stdout);
  return 0;
}

// --- errors --------------------------------------------------------------------------------

void VM::printStackTrace(FILE* out) {
  // Collect (method, pc) per activation, most recent first; the trampolines of VM entries are
  // not shown. Very deep stacks print their top 25 and bottom 5 activations.
  std::vector<std::pair<Method*, const uint8_t*>> acts;
  const uint8_t* curPc = pc;
  for (Frame* f = fp; f; f = f->caller) {
    if (!(f->method->signature && f->method->signature->text == "<entry>"))
      acts.push_back({f->method, curPc});
    curPc = f->retPc;
  }
  std::fprintf(out, "SOM stack trace (most recent call first, %zu activations):\n", acts.size());
  for (size_t i = 0; i < acts.size(); i++) {
    if (acts.size() > 30 && i == 25) {
      std::fprintf(out, "  ... %zu activations omitted ...\n", acts.size() - 30);
      i = acts.size() - 5;
    }
    Method* m = acts[i].first;
    const uint8_t* p = acts[i].second;
    uint32_t off = p && !m->code.empty() && p >= m->code.data() && p <= m->code.data() + m->code.size()
                       ? static_cast<uint32_t>(p - m->code.data())
                       : 0;
    std::string holder = m->holder && m->holder->name ? m->holder->name->text : "?";
    std::fprintf(out, "  %s>>%s%s (%s:%d)\n", holder.c_str(), m->signature ? m->signature->text.c_str() : "?",
                 m->isBlock ? " [block]" : "", m->fileName.c_str(), m->lineAt(off > 0 ? off - 1 : 0));
  }
}

void VM::fatal(const std::string& message) {
  std::fflush(stdout);
  std::fprintf(stderr, "som: runtime error: %s\n", message.c_str());
  printStackTrace(stderr);
  std::fflush(stderr);
  std::_Exit(1);
}

void VM::exitVM(int status) {
  std::fflush(stdout);
  std::fflush(stderr);
  std::_Exit(status);
}

// --- GC ------------------------------------------------------------------------------------

void VM::collectGarbage() {
  uint64_t t0 = nowMicros();
  heap.begin();
  // Frame stack: every word from the base to sp is a Value except the frame headers, whose
  // Value fields are forwarded explicitly. Walk top-down: a frame owns the words above its
  // header; the words below it (its arguments, its caller's locals and operands) belong to the
  // next region down.
  Value* top = sp;
  for (Frame* f = fp; f; f = f->caller) {
    for (Value* p = f->locals(); p <= top; p++) heap.forwardSlot(p);
    heap.forwardSlot(&f->self);
    heap.forwardSlot(&f->context);
    heap.forwardSlot(&f->outerCtx);
    top = reinterpret_cast<Value*>(f) - 1;
  }
  for (Value* p = stackBase; p <= top; p++) heap.forwardSlot(p);
  for (auto& [k, s] : symbols_)
    if (s->hasGlobal) heap.forwardSlot(&s->global);
  for (Class* c : classTable)
    for (auto& v : c->classFields) heap.forwardSlot(&v);
  for (Object* a : permArrays_)
    for (uint32_t i = 0; i < a->length; i++) heap.forwardSlot(&a->slots()[i]);
  for (auto& v : extraRoots) heap.forwardSlot(&v);
  heap.finish();
  double ms = static_cast<double>(nowMicros() - t0) / 1000.0;
  heap.gcMillis += ms;
  if (gcVerbose)
    std::fprintf(stderr, "[GC %llu: %zu bytes live, %.2f ms]\n",
                 static_cast<unsigned long long>(heap.collections), heap.liveBytesAfterLastGC(), ms);
}

}  // namespace som
