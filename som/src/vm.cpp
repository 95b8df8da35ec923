// VM setup, objects, class loading, method lookup, errors and GC roots. See vm_p.h.
#include "vm_p.h"

#include "bytecode_p.h"
#include "compiler_p.h"
#include "jit/jit_p.h"
#include "parser_p.h"

#include <sys/mman.h>

#include <gmp.h>
#include <chrono>
#include <fstream>
#include <sstream>
#include <unordered_set>

namespace som {

using jitkit::som::ErrorKind;

uint64_t now_micros() {
  using namespace std::chrono;
  return static_cast<uint64_t>(duration_cast<microseconds>(steady_clock::now().time_since_epoch()).count());
}

namespace {
// The lowest address SOM may use on the calling thread's native stack: compiled code and
// interpreter runs nested through natives report `stack overflow` below it. The margin leaves
// room for the runtime functions, a native's own frames and the error path (which formats the
// stack trace and throws).
uintptr_t native_stack_limit() {
  pthread_attr_t attr;
  void* addr = nullptr;
  size_t size = 0;
  if (pthread_getattr_np(pthread_self(), &attr) != 0) return 0;
  pthread_attr_getstack(&attr, &addr, &size);
  pthread_attr_destroy(&attr);
  return reinterpret_cast<uintptr_t>(addr) + (size_t{256} << 10);
}
}  // namespace

VM::VM() : owner_thread_(pthread_self()), lookup_cache_(8192, CacheEntry{UINT32_MAX, nullptr, nullptr}) {
  native_stack_limit_ = native_stack_limit();
  // The frame stack: 256 MiB of address space, committed lazily by the kernel. bootstrap()
  // reports a failure to reserve it.
  stack_bytes_ = size_t(256) << 20;
  void* mem =
      mmap(nullptr, stack_bytes_, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
  if (mem == MAP_FAILED) {
    stack_bytes_ = 0;
    mem = nullptr;
  }
  stack_base_ = static_cast<Value*>(mem);
  stack_limit_ = stack_base_ ? stack_base_ + stack_bytes_ / sizeof(Value) - 1024 : nullptr;
  sp_ = stack_base_ - 1;
  start_micros_ = now_micros();
  if (const char* st = std::getenv("SOM_GC_STRESS"); st && *st == '1') heap_.set_stress(true);
  register_primitives();
}

namespace {
void free_method_tree(Method* m) {
  for (Method* b : m->blocks) free_method_tree(b);
  delete m;
}
}  // namespace

VM::~VM() {
  jit_.reset();  // first: its compile thread may be reading methods, and its code refers to them
  if (stack_base_) munmap(stack_base_, stack_bytes_);
  // Permanent objects live as long as the VM: classes with their methods, symbols, literals.
  // A method replaced at run time may sit in several slots, or in none (replaced_methods_).
  std::unordered_set<Method*> methods(replaced_methods_.begin(), replaced_methods_.end());
  for (Class* c : class_table_) methods.insert(c->methods.begin(), c->methods.end());
  for (Method* m : methods) free_method_tree(m);
  for (Class* c : class_table_) delete c;
  for (auto& [key, m] : entry_methods_) delete m;
  for (auto& [target, m] : direct_entry_methods_) delete m;
  std::vector<Symbol*> syms;
  for (auto& [text, sym] : symbols_) syms.push_back(sym);
  symbols_.clear();
  for (Symbol* sym : syms) delete sym;
  for (Object* o : perm_objects_) std::free(o);
  close_native_libraries();
}

std::vector<std::string> split_class_path(const std::string& cp) {
  std::vector<std::string> dirs;
  size_t start = 0;
  while (start <= cp.size()) {
    size_t end = cp.find(':', start);
    if (end == std::string::npos) end = cp.size();
    if (end > start) dirs.push_back(cp.substr(start, end - start));
    start = end + 1;
  }
  return dirs;
}

void VM::set_class_path(const std::string& cp) {
  for (std::string& dir : split_class_path(cp)) class_path_.push_back(std::move(dir));
}

// --- objects -------------------------------------------------------------------------------

Object* VM::perm_alloc(uint8_t kind, uint32_t cls, uint32_t length) {
  size_t bytes = object_bytes(kind, length);
  auto* o = static_cast<Object*>(std::aligned_alloc(16, (bytes + 15) & ~size_t(15)));
  if (!o) {
    std::fprintf(stderr, "som: out of memory\n");
    std::exit(1);
  }
  std::memset(o, 0, bytes);
  o->cls = cls;
  o->hash = heap_.next_hash();
  o->length = length;
  o->kind = kind;
  o->flags = kPermanent;
  perm_objects_.push_back(o);
  return o;
}

Symbol* VM::intern(std::string_view s) {
  auto it = symbols_.find(s);
  if (it != symbols_.end()) return it->second;
  auto* sym = new Symbol();
  std::memset(static_cast<Object*>(sym), 0, sizeof(Object));
  sym->cls = symbol_tag_;
  sym->hash = 0;
  sym->kind = kSymbol;
  sym->flags = kPermanent;
  sym->global = 0;
  sym->has_global = false;
  sym->text = std::string(s);
  sym->length = static_cast<uint32_t>(s.size());
  // Selector arity: keywords count colons, binary selectors take one argument.
  int colons = 0;
  for (char c : s) colons += c == ':';
  sym->num_args = colons ? colons : (!s.empty() && is_binary_op_char(s[0]) ? 1 : 0);
  // String and Symbol hashes agree (content hash, LANGUAGE.md §3.7).
  uint32_t h = 2166136261u;
  for (char c : s) h = (h ^ static_cast<uint8_t>(c)) * 16777619u;
  sym->hash = h;
  symbols_.emplace(std::string_view(sym->text), sym);
  return sym;
}

Value VM::new_string(std::string_view s) {
  Object* o = heap_.alloc(kString, string_tag_, static_cast<uint32_t>(s.size()));
  if (!s.empty()) std::memcpy(o->bytes(), s.data(), s.size());
  o->bytes()[s.size()] = 0;
  return val(o);
}

Value VM::perm_string(std::string_view s) {
  Object* o = perm_alloc(kString, string_tag_, static_cast<uint32_t>(s.size()));
  if (!s.empty()) std::memcpy(o->bytes(), s.data(), s.size());
  return val(o);
}

Value VM::new_array(uint32_t n) {
  Object* o = heap_.alloc(kArray, array_tag_, n);
  Value* s = o->slots();
  for (uint32_t i = 0; i < n; i++) s[i] = nil_value_;
  return val(o);
}

Value VM::perm_array(uint32_t n) {
  Object* o = perm_alloc(kArray, array_tag_, n);
  for (uint32_t i = 0; i < n; i++) o->slots()[i] = nil_value_;
  perm_arrays_.push_back(o);
  return val(o);
}

Value VM::new_double(double d) {
  Object* o = heap_.alloc(kDouble, double_tag_, 0);
  o->dbl() = d;
  return val(o);
}

Value VM::perm_double(double d) {
  Object* o = perm_alloc(kDouble, double_tag_, 0);
  o->dbl() = d;
  return val(o);
}

Value VM::new_instance(Class* c) {
  uint32_t n = static_cast<uint32_t>(c->fields.size());
  Object* o = heap_.alloc(kInstance, c->tag, n);
  Value* s = o->slots();
  for (uint32_t i = 0; i < n; i++) s[i] = nil_value_;
  return val(o);
}

std::string VM::describe(Value v) {
  Class* c = class_of(v);
  if (is_int(v)) return "Integer " + std::to_string(int_of(v));
  if (v == nil_value_) return "nil";
  std::string n = c && c->name ? c->name->text : "?";
  if (obj(v)->kind == kClass) return "class " + static_cast<Class*>(obj(v))->name->text;
  return "instance of " + n;
}

// --- classes -------------------------------------------------------------------------------

Class* VM::new_class_shell(const char* name) {
  auto make_class = [&](bool meta) {
    auto* c = new Class();
    std::memset(static_cast<Object*>(c), 0, sizeof(Object));
    c->kind = kClass;
    c->flags = kPermanent;
    c->hash = heap_.next_hash();
    c->is_meta = meta;
    c->tag = static_cast<uint32_t>(class_table_.size());
    class_table_.push_back(c);
    return c;
  };
  Class* c = make_class(false);
  Class* m = make_class(true);
  c->meta = m;
  m->sole_instance = c;
  c->cls = m->tag;
  m->cls = metaclass_class_ ? metaclass_class_->tag : 0;
  c->name = intern(name);
  m->name = intern(std::string(name) + " class");
  return c;
}

Method* VM::lookup(Class* c, Symbol* sel) {
  size_t h = ((reinterpret_cast<uintptr_t>(sel) >> 4) ^ (c->tag * 2654435761u)) & 8191;
  CacheEntry& e = lookup_cache_[h];
  if (e.tag == c->tag && e.sel == sel) return e.m;
  Method* found = nullptr;
  for (Class* k = c; k; k = k->superclass) {
    auto it = k->method_map.find(sel);
    if (it != k->method_map.end()) {
      found = it->second;
      break;
    }
  }
  if (found) e = CacheEntry{c->tag, sel, found};
  return found;
}

Value VM::methods_array(Class* c) {
  if (!c->methods_array) {
    Value a = perm_array(static_cast<uint32_t>(c->methods.size()));
    for (size_t i = 0; i < c->methods.size(); i++) obj(a)->slots()[i] = val(c->methods[i]);
    obj(a)->flags |= kMethodTable;
    for (Method* m : c->methods) c->method_slots.push_back(m->signature);
    method_tables_[obj(a)] = c;
    c->methods_array = a;
  }
  return c->methods_array;
}

void VM::replace_method(Object* table, uint32_t index, Value v) {
  Class* c = method_tables_.at(table);
  if (is_int(v) || obj(v)->kind != kMethod)
    fatal("the methods of " + c->name->text + " are Methods and Primitives; cannot store " + describe(v) +
          " at " + std::to_string(index + 1));
  auto* m = static_cast<Method*>(obj(v));
  Method* old = c->methods[index];
  Symbol* sel = c->method_slots[index];
  if (m->num_args != old->num_args)
    fatal("cannot install " + m->signature->text + " (" + std::to_string(m->num_args) + " arguments) as " +
          c->name->text + ">>" + sel->text + " (" + std::to_string(old->num_args) + " arguments)");
  if (m == old) return;
  c->methods[index] = m;
  table->slots()[index] = v;
  c->method_map[sel] = m;
  bool still_used = false;
  for (Method* x : c->methods) still_used |= x == old;
  // The new method answers for the selector of the slot; the old one may still be running (or
  // sit in other slots), so it is kept until the VM goes away.
  if (!still_used) replaced_methods_.push_back(old);
  method_changed(c, sel);
}

void VM::install_method(Class* holder, Method* old, Method* m) {
  Symbol* sel = old->signature;
  for (size_t i = 0; i < holder->methods.size(); i++)
    if (holder->methods[i] == old) {
      holder->methods[i] = m;
      if (holder->methods_array) obj(holder->methods_array)->slots()[i] = val(m);
    }
  holder->method_map[sel] = m;
  replaced_methods_.push_back(old);  // it may be running: kept until the VM goes away
  method_changed(holder, sel);
}

namespace {
// Frame-less constant methods (`^nil`, `^true`, `^false`) answer a value fixed when they were
// compiled; once a pseudo-variable is rebound they push a frame and read the binding instead.
void forget_constant_pseudo_variables(Method* m) {
  if (m->trivial == Method::kConstant && !m->code.empty() &&
      (m->code[0] == kPushNil || m->code[0] == kPushTrue || m->code[0] == kPushFalse))
    m->trivial = Method::kNotTrivial;
}
}  // namespace

void VM::set_global(Symbol* name, Value v) {
  name->global = v;
  name->has_global = true;
  Value* binding = name->text == "nil"     ? &nil_binding_
                   : name->text == "true"  ? &true_binding_
                   : name->text == "false" ? &false_binding_
                                           : nullptr;
  if (!binding || *binding == v) return;
  *binding = v;
  for (Class* c : class_table_)
    for (Method* m : c->methods) forget_constant_pseudo_variables(m);
  for (Method* m : replaced_methods_) forget_constant_pseudo_variables(m);
}

namespace {
void forget_cached_targets(Method* m, Symbol* sel) {
  for (SendSite& s : m->sites) {
    if (s.selector != sel) continue;
    s.cached_tag = s.cached_tag2 = UINT32_MAX;
    s.cached_target = s.cached_target2 = nullptr;
    s.std_tag = s.std_tag2 = UINT32_MAX;
  }
  for (Method* b : m->blocks) forget_cached_targets(b, sel);
}
}  // namespace

void VM::method_changed(Class* holder, Symbol* selector) {
  method_epoch_++;
  // A change in `holder` can alter what `selector` means for it and every subclass, and a
  // subclass may have cached the answer from any class above it: drop every cached answer for
  // the selector, whatever class it was for. Changes are rare; sends pay nothing for this.
  for (CacheEntry& e : lookup_cache_)
    if (e.sel == selector) e = CacheEntry{UINT32_MAX, nullptr, nullptr};
  for (Class* c : class_table_)
    for (Method* m : c->methods) forget_cached_targets(m, selector);
  for (Method* m : replaced_methods_) forget_cached_targets(m, selector);
  for (auto& [key, m] : entry_methods_) forget_cached_targets(m, selector);
  for (auto& [target, m] : direct_entry_methods_) forget_cached_targets(m, selector);
  for (auto& [fn, context] : method_change_listeners_) fn(context, holder, selector);
}

static bool read_file(const std::string& path, std::string& out) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return false;
  std::ostringstream ss;
  ss << in.rdbuf();
  out = ss.str();
  return true;
}

Class* VM::load_class(Symbol* name) {
  if (name->has_global && !is_int(name->global) && obj(name->global)->kind == kClass) {
    auto* c = static_cast<Class*>(obj(name->global));
    if (c->loaded) return c;
  }
  std::string source, path;
  bool found = false;
  for (auto& dir : class_path_) {
    path = dir + "/" + name->text + ".som";
    if (read_file(path, source)) {
      found = true;
      break;
    }
  }
  if (!found) return nullptr;
  for (Symbol* l : loading_)
    if (l == name) raise(ErrorKind::kCompile, path + ":1:1: error: class '" + name->text + "' is its own (indirect) superclass");
  struct LoadingGuard {
    std::vector<Symbol*>& v;
    LoadingGuard(std::vector<Symbol*>& vec, Symbol* s) : v(vec) { v.push_back(s); }
    ~LoadingGuard() { v.pop_back(); }
  } guard(loading_, name);
  ClassDef def;
  std::string err;
  if (!parse_class(source, path, def, err)) raise(ErrorKind::kCompile, err);
  if (def.name != name->text)
    raise(ErrorKind::kCompile,
          path + ":1:1: error: file defines class '" + def.name + "', expected '" + name->text + "'");
  // Core classes have shells made at bootstrap (their tags are fixed); others are new.
  Class* cls = nullptr;
  if (name->has_global && !is_int(name->global) && obj(name->global)->kind == kClass)
    cls = static_cast<Class*>(obj(name->global));
  else
    cls = new_class_shell(name->text.c_str());
  define_class(cls, def, path);
  return cls;
}

void VM::define_class(Class* cls, ClassDef& def, const std::string& file) {
  Class* super = nullptr;
  if (def.super_name != "nil") {
    std::string sname = def.super_name.empty() ? "Object" : def.super_name;
    if (sname == def.name)
      raise(ErrorKind::kCompile, file + ":1:1: error: class '" + def.name + "' cannot be its own superclass");
    Symbol* ssym = intern(sname);
    super = load_class(ssym);
    if (!super)
      raise(ErrorKind::kCompile, file + ":1:1: error: cannot load superclass '" + sname + "' of '" + def.name +
                                     "' (not on the class path)");
  }
  Class* meta = cls->meta;
  cls->superclass = super;
  meta->superclass = super ? super->meta : class_class_;
  cls->fields = super ? super->fields : std::vector<Symbol*>{};
  for (auto& f : def.inst_fields) cls->fields.push_back(intern(f));
  meta->fields = super ? super->meta->fields : std::vector<Symbol*>{};
  for (auto& f : def.class_fields) meta->fields.push_back(intern(f));
  cls->class_fields.assign(meta->fields.size(), nil_value_);
  if (super && cls->inst_kind == kInstance) cls->inst_kind = super->inst_kind;
  cls->loaded = true;  // before compiling: methods may name the class itself
  cls->name->global = val(cls);
  cls->name->has_global = true;

  auto add_methods = [&](Class* holder, std::vector<MethodDef>& defs, bool class_side) {
    for (auto& md : defs) {
      Method* m = nullptr;
      if (md.is_primitive) {
        m = new Method();
        std::memset(static_cast<Object*>(m), 0, sizeof(Object));
        m->kind = kMethod;
        m->flags = kPermanent;
        m->hash = heap_.next_hash();
        m->cls = primitive_class_->tag;
        m->holder = holder;
        m->signature = intern(md.selector);
        m->num_args = m->signature->num_args;
        m->file_name = file;
        m->lines.push_back({0, md.pos.line});
        std::string key = def.name + (class_side ? " class>>" : ">>") + md.selector;
        auto it = primitives_.find(key);
        if (it == primitives_.end()) {
          m->mkind = MethodKind::kMissingPrimitive;
        } else {
          m->mkind = MethodKind::kPrimitive;
          m->prim = it->second.fn;
          m->special_prim = it->second.special;
        }
      } else {
        std::string err;
        m = compile_method(*this, holder, md, file, err);
        if (!m) raise(ErrorKind::kCompile, err);
        m->cls = method_class_->tag;
        if (debug_level_ > 0) std::fputs(disassemble(*this, m).c_str(), stderr);
      }
      auto it = holder->method_map.find(m->signature);
      if (it != holder->method_map.end()) {
        // A selector defined twice: the later definition wins.
        for (auto& x : holder->methods)
          if (x == it->second) x = m;
        free_method_tree(it->second);
        it->second = m;
      } else {
        holder->method_map[m->signature] = m;
        holder->methods.push_back(m);
      }
    }
  };
  add_methods(cls, def.inst_methods, false);
  add_methods(meta, def.class_methods, true);
  // Method caches never hold misses, and a class gets its methods before any send can reach
  // them, so loading needs no invalidation (changing them later does: replace_method).
}

bool VM::bootstrap() {
  if (!stack_base_) {
    pending_error_ = {ErrorKind::kRuntime, "cannot reserve the frame stack (256 MiB of address space)", "", 1};
    return false;
  }
  // Shells first, so every core class has its tag before any source is compiled.
  metaclass_class_ = nullptr;
  object_class_ = new_class_shell("Object");
  class_class_ = new_class_shell("Class");
  metaclass_class_ = new_class_shell("Metaclass");
  // Fix the headers of metaclasses created before Metaclass existed.
  for (Class* c : class_table_)
    if (c->is_meta) c->cls = metaclass_class_->tag;
  nil_class_ = new_class_shell("Nil");
  boolean_class_ = new_class_shell("Boolean");
  true_class_ = new_class_shell("True");
  false_class_ = new_class_shell("False");
  integer_class_ = new_class_shell("Integer");
  double_class_ = new_class_shell("Double");
  string_class_ = new_class_shell("String");
  symbol_class_ = new_class_shell("Symbol");
  array_class_ = new_class_shell("Array");
  block_class_ = new_class_shell("Block");
  block1_class_ = new_class_shell("Block1");
  block2_class_ = new_class_shell("Block2");
  block3_class_ = new_class_shell("Block3");
  method_class_ = new_class_shell("Method");
  primitive_class_ = new_class_shell("Primitive");
  system_class_ = new_class_shell("System");
  integer_tag_ = integer_class_->tag;
  double_tag_ = double_class_->tag;
  string_tag_ = string_class_->tag;
  symbol_tag_ = symbol_class_->tag;
  array_tag_ = array_class_->tag;
  nil_tag_ = nil_class_->tag;
  true_tag_ = true_class_->tag;
  false_tag_ = false_class_->tag;
  // Symbols interned before the Symbol class existed get their class now.
  for (auto& [k, s] : symbols_) s->cls = symbol_tag_;
  array_class_->inst_kind = kArray;
  string_class_->inst_kind = kString;
  symbol_class_->inst_kind = kString;

  nil_value_ = val(perm_alloc(kInstance, nil_tag_, 0));
  true_value_ = val(perm_alloc(kInstance, true_tag_, 0));
  false_value_ = val(perm_alloc(kInstance, false_tag_, 0));
  system_value_ = val(perm_alloc(kInstance, system_class_->tag, 0));
  auto def_global = [&](const char* n, Value v) {
    Symbol* s = intern(n);
    s->global = v;
    s->has_global = true;
  };
  def_global("nil", nil_value_);
  def_global("true", true_value_);
  def_global("false", false_value_);
  def_global("system", system_value_);
  nil_binding_ = nil_value_;
  true_binding_ = true_value_;
  false_binding_ = false_value_;
  for (Class* c : class_table_)
    if (!c->is_meta) {
      c->name->global = val(c);
      c->name->has_global = true;
    }
  sym_dnu_ = intern("doesNotUnderstand:arguments:");
  sym_unknown_global_ = intern("unknownGlobal:");
  sym_escaped_block_ = intern("escapedBlock:");
  sym_initialize_ = intern("initialize:");

  const char* core[] = {"Object",  "Class",  "Metaclass", "Nil",       "Boolean", "True",  "False",
                        "Integer", "Double", "String",    "Symbol",    "Array",   "Block", "Block1",
                        "Block2",  "Block3", "Method",    "Primitive", "System"};
  for (const char* n : core) {
    Class* c = load_class(intern(n));  // raises kCompile for a class that does not compile
    if (!c) {
      pending_error_ = {ErrorKind::kInvalidArgument,
                        std::string("cannot find core class ") + n +
                            ".som on the class path (use -cp with the core library directory)",
                        "", 1};
      return false;
    }
  }
  return true;
}

// --- running -------------------------------------------------------------------------------

Method* VM::entry_method(Symbol* sel, int argc) {
  auto key = std::make_pair(sel, argc);
  auto it = entry_methods_.find(key);
  if (it != entry_methods_.end()) return it->second;
  Method* m = new_entry_method(sel, argc);
  entry_methods_[key] = m;
  return m;
}

Method* VM::new_entry_method(Symbol* sel, int argc) {
  // A two-instruction trampoline: SEND site0; RETURN_LOCAL. Its frame is the entry frame.
  auto* m = new Method();
  std::memset(static_cast<Object*>(m), 0, sizeof(Object));
  m->kind = kMethod;
  m->flags = kPermanent;
  m->cls = method_class_->tag;
  m->signature = intern("<entry>");
  m->holder = system_class_;
  m->code = {kSend, 0, 0, kReturnLocal};
  SendSite s{};
  s.selector = sel;
  s.argc = static_cast<uint32_t>(argc);
  s.cached_tag = UINT32_MAX;
  s.cached_tag2 = UINT32_MAX;
  m->sites.push_back(s);
  m->max_stack = argc + 4;
  return m;
}

Value VM::send(Value rcv, Symbol* sel, std::initializer_list<Value> args, uint64_t entry_kind) {
  return run_entry(entry_method(sel, static_cast<int>(args.size())), rcv, args.begin(),
                   static_cast<uint32_t>(args.size()), entry_kind);
}

Value VM::run_entry(Method* m, Value rcv, const Value* args, uint32_t argc, uint64_t entry_kind) {
  Value* base = sp_ + 1;
  // Each entry nests an interpreter run on the native stack (natives calling back into SOM).
  if (base + kFrameWords + argc + 64 >= stack_limit_ ||
      reinterpret_cast<uintptr_t>(__builtin_frame_address(0)) < native_stack_limit_)
    fatal("stack overflow: recursion too deep");
  base[0] = rcv;  // the entry frame's "receiver"
  auto* f = reinterpret_cast<Frame*>(base + 1);
  f->caller = fp_;
  f->ret_pc = pc_;
  f->method = m;
  f->args = base;
  f->self = rcv;
  f->context = 0;
  f->outer_ctx = 0;
  f->is_entry = entry_kind;
  Value* s = f->locals() - 1;
  *++s = rcv;
  for (uint32_t i = 0; i < argc; i++) *++s = args[i];
  sp_ = s;
  fp_ = f;
  pc_ = m->code.data();
  return interpret();
}

Value VM::run_from_jit(Method* m, Value* base, uint32_t argc) {
  if (m->mkind == MethodKind::kBytecode) {
    // The frame goes right above the arguments, as the interpreter's push_frame would put it.
    if (heap_.need_gc_) collect_garbage();  // sp_ == base + argc: the arguments are roots
    if (base + argc + kFrameWords + m->num_locals + m->max_stack + 16 >= stack_limit_)
      fatal("stack overflow: recursion too deep");
    auto* f = reinterpret_cast<Frame*>(base + argc + 1);
    f->caller = fp_;
    f->ret_pc = pc_;
    f->method = m;
    f->args = base;
    if (m->is_block) {
      f->self = obj(base[0])->slots()[2];
      f->outer_ctx = obj(base[0])->slots()[1];
    } else {
      f->self = base[0];
      f->outer_ctx = 0;
    }
    f->context = 0;
    f->is_entry = kEntryFromJit;
    Value* l = f->locals();
    for (int i = 0; i < m->num_locals; i++) l[i] = nil_value_;
    sp_ = l + m->num_locals - 1;
    fp_ = f;
    if (m->has_context) enter_context(f);
    pc_ = m->code.data();
    return interpret();
  }
  // A primitive the interpreter performs itself: a one-send trampoline whose inline cache
  // already holds `m` for this receiver's class, so no lookup can pick another method.
  Method*& entry = direct_entry_methods_[m];
  if (!entry) entry = new_entry_method(m->signature, static_cast<int>(argc));
  SendSite& site = entry->sites[0];
  site.cached_tag = tag_of(base[0]);
  site.cached_target = m;
  site.cached_tag2 = UINT32_MAX;
  return run_entry(entry, base[0], base + 1, argc, kEntryFromJit);
}

Value VM::not_understood_from_jit(Symbol* sel, Value* base, uint32_t argc) {
  if (!lookup(class_of(base[0]), sym_dnu_))
    fatal(describe(base[0]) + " does not understand #" + sel->text +
          " (and no doesNotUnderstand:arguments: method)");
  Value arr = new_array(argc);
  for (uint32_t i = 0; i < argc; i++) obj(arr)->slots()[i] = base[1 + i];
  return send(base[0], sym_dnu_, {val(sel), arr}, kEntryFromJit);
}

void VM::run_main(const std::vector<std::string>& args, uint64_t entry_kind) {
  Value arr = new_array(static_cast<uint32_t>(args.size()));
  extra_roots_.push_back(arr);
  for (size_t i = 0; i < args.size(); i++) {
    Value s = new_string(args[i]);
    obj(extra_roots_.back())->slots()[i] = s;
  }
  arr = extra_roots_.back();
  extra_roots_.pop_back();
  send(system_value_, sym_initialize_, {arr}, entry_kind);
  std::fflush(stdout);
}

// --- errors --------------------------------------------------------------------------------

void VM::print_stack_trace(FILE* out) { std::fputs(stack_trace().c_str(), out); }

std::string VM::stack_trace() {
  // Collect (method, pc) per activation, most recent first; the trampolines of VM entries are
  // not shown. Very deep stacks print their top 25 and bottom 5 activations.
  std::vector<std::pair<Method*, const uint8_t*>> acts;
  const uint8_t* cur_pc = pc_;
  for (Frame* f = fp_; f; f = f->caller) {
    if (!(f->method->signature && f->method->signature->text == "<entry>"))
      acts.push_back({f->method, cur_pc});
    cur_pc = f->ret_pc;
  }
  std::string out = "SOM stack trace (most recent call first, " + std::to_string(acts.size()) + " activations):\n";
  for (size_t i = 0; i < acts.size(); i++) {
    if (acts.size() > 30 && i == 25) {
      out += "  ... " + std::to_string(acts.size() - 30) + " activations omitted ...\n";
      i = acts.size() - 5;
    }
    Method* m = acts[i].first;
    const uint8_t* p = acts[i].second;
    uint32_t off = p && !m->code.empty() && p >= m->code.data() && p <= m->code.data() + m->code.size()
                       ? static_cast<uint32_t>(p - m->code.data())
                       : 0;
    std::string holder = m->holder && m->holder->name ? m->holder->name->text : "?";
    out += "  " + holder + ">>" + (m->signature ? m->signature->text : std::string("?")) +
           (m->is_block ? " [block]" : "") + " (" + m->file_name + ":" +
           std::to_string(m->line_at(off > 0 ? off - 1 : 0)) + ")\n";
  }
  return out;
}

void VM::raise(ErrorKind kind, const std::string& message, int exit_status) {
  pending_error_ = {kind, message, kind == ErrorKind::kCompile ? std::string() : stack_trace(), exit_status};
  throw VmUnwind{};
}

void VM::fatal(const std::string& message) { raise(ErrorKind::kRuntime, message); }

void VM::cross_host_entry() {
  if (unwind_target_ == kUnwindToHost) throw VmUnwind{};  // pending_error_ holds it
  unwind_target_ = nullptr;
  fatal("non-local return across a VM entry boundary");
}

Value VM::call_native_out_of_line(Method* m, Value* base) { return call_native(m, base); }

void VM::raise_exit(int status) {
  // The reason, if the program is failing through Object>>error: (which prints it too).
  std::string message = "system exit: " + std::to_string(status);
  for (Frame* f = fp_; f; f = f->caller) {
    Method* m = f->method;
    if (m->signature && m->signature->text == "error:" && m->holder == object_class_ && is_string(f->args[1])) {
      message = std::string(string_of(f->args[1]));
      break;
    }
  }
  raise(ErrorKind::kExit, message, status);
}

void VM::fatal_bad_field(Method* m, Value self, uint32_t index) {
  // Name the field and its declaring class: with a library that declares fields this VM
  // implements as primitives (Class>>name, Object>>class), that is what the user must fix.
  const Class* h = m->holder;
  std::string field = std::to_string(index + 1);
  if (h && index < h->fields.size()) field += " ('" + h->fields[index]->text + "' of " + h->name->text + ")";
  fatal("method " + m->signature->text + " accesses field " + field + ", which " + describe(self) +
        " does not have");
}

void VmCheckpoint::abandon() {
  for (Frame* f = vm_.fp_; f && f != fp_; f = f->caller)
    if (f->context) obj(f->context)->slots()[1] = from_int(0);
  vm_.fp_ = fp_;
  vm_.pc_ = pc_;
  vm_.sp_ = sp_;
  vm_.extra_roots_.resize(roots_);
}

// --- GC ------------------------------------------------------------------------------------

void VM::collect_garbage() {
  uint64_t t0 = now_micros();
  heap_.begin();
  // Frame stack: every word from the base to sp is a Value except the frame headers, whose
  // Value fields are forwarded explicitly. Walk top-down: a frame owns the words above its
  // header; the words below it (its arguments, its caller's locals and operands) belong to the
  // next region down.
  Value* top = sp_;
  for (Frame* f = fp_; f; f = f->caller) {
    for (Value* p = f->locals(); p <= top; p++) heap_.forward_slot(p);
    heap_.forward_slot(&f->self);
    heap_.forward_slot(&f->context);
    heap_.forward_slot(&f->outer_ctx);
    top = reinterpret_cast<Value*>(f) - 1;
  }
  for (Value* p = stack_base_; p <= top; p++) heap_.forward_slot(p);
  heap_.forward_slot(&nil_binding_);
  heap_.forward_slot(&true_binding_);
  heap_.forward_slot(&false_binding_);
  for (auto& [k, s] : symbols_)
    if (s->has_global) heap_.forward_slot(&s->global);
  for (Class* c : class_table_)
    for (auto& v : c->class_fields) heap_.forward_slot(&v);
  for (Object* a : perm_arrays_)
    for (uint32_t i = 0; i < a->length; i++) heap_.forward_slot(&a->slots()[i]);
  for (auto& v : extra_roots_) heap_.forward_slot(&v);
  for (auto& v : handles_) heap_.forward_slot(&v);
  heap_.finish();
  double ms = static_cast<double>(now_micros() - t0) / 1000.0;
  heap_.gc_millis_ += ms;
  if (gc_verbose_)
    std::fprintf(stderr, "[GC %llu: %zu bytes live, %.2f ms]\n",
                 static_cast<unsigned long long>(heap_.collections_), heap_.live_bytes_after_last_gc(), ms);
}

}  // namespace som
