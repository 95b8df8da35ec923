// Native methods: binding `primitive` SOM methods to functions of a shared library
// (jitkit/som/native.h, docs/som-embedding.md). A library is loaded with dlopen, its one
// registration function lists its bindings, every binding is checked, and only then are they
// all installed: a library with one bad binding binds nothing.
#include <dlfcn.h>

#include <memory>

#include "vm_p.h"

namespace som {

namespace {

struct Target {
  Class* holder = nullptr;
  Method* method = nullptr;
};

}  // namespace

std::string VM::load_native(const std::string& path) {
  const std::string where = "native library " + path;
  // Closed on every way out but success (load_class below may raise).
  std::unique_ptr<void, int (*)(void*)> lib(dlopen(path.c_str(), RTLD_NOW | RTLD_LOCAL), dlclose);
  if (!lib) {
    const char* why = dlerror();
    return "cannot load " + where + ": " + (why ? why : "unknown reason");
  }
  auto reg = reinterpret_cast<jitkit::som::RegisterNativesFn>(dlsym(lib.get(), jitkit::som::kRegisterNativesSymbol));
  if (!reg) {
    return where + " does not export " + jitkit::som::kRegisterNativesSymbol +
           " (declare it extern \"C\", see jitkit/som/native.h)";
  }
  jitkit::som::NativeRegistry registry;
  reg(registry);
  if (registry.bindings().empty()) {
    return where + " binds no methods";
  }
  std::vector<Target> targets;
  for (const auto& b : registry.bindings()) {
    const std::string what = where + ": " + b.method + ": ";
    const size_t sep = b.method.find(">>");
    if (sep == std::string::npos || sep == 0 || sep + 2 == b.method.size()) {
      return what + "not a method name (expected Class>>selector or Class class>>selector)";
    }
    std::string class_name = b.method.substr(0, sep);
    const std::string selector = b.method.substr(sep + 2);
    bool class_side = false;
    if (class_name.size() > 6 && class_name.compare(class_name.size() - 6, 6, " class") == 0) {
      class_side = true;
      class_name.resize(class_name.size() - 6);
    }
    if (!b.fn) {
      return what + "bound to a null function";
    }
    Class* cls = load_class(intern(class_name));  // raises for a class that does not compile
    if (!cls) {
      return what + "unknown class " + class_name + " (no " + class_name + ".som on the class path)";
    }
    Class* holder = class_side ? cls->meta : cls;
    auto it = holder->method_map.find(intern(selector));
    if (it == holder->method_map.end()) {
      return what + holder->name->text + " has no method #" + selector;
    }
    Method* m = it->second;
    if (m->mkind == MethodKind::kBytecode) {
      return what + "the method is not declared primitive (" + m->file_name + ")";
    }
    if (m->mkind == MethodKind::kPrimitive && m->special_prim != SpecialPrim::kNative) {
      return what + "a primitive this VM implements itself cannot be rebound";
    }
    if (b.arity != m->num_args) {
      return what + "bound with " + std::to_string(b.arity) + " arguments, but #" + selector + " takes " +
             std::to_string(m->num_args);
    }
    for (const Target& t : targets)
      if (t.method == m) {
          return what + "bound twice";
      }
    targets.push_back({holder, m});
  }
  native_libraries_.push_back(lib.release());
  for (size_t i = 0; i < targets.size(); i++) {
    // A new Method object, installed like a method changed at run time: inline caches and
    // entry stubs made for the unbound primitive are dropped, and the old object is kept for
    // any frame that may still refer to it.
    Method* old = targets[i].method;
    auto* m = new Method();
    std::memcpy(static_cast<Object*>(m), static_cast<Object*>(old), sizeof(Object));
    m->hash = heap_.next_hash();
    m->mkind = MethodKind::kPrimitive;
    m->special_prim = SpecialPrim::kNative;
    m->native = registry.bindings()[i].fn;
    m->signature = old->signature;
    m->holder = old->holder;
    m->num_args = old->num_args;
    m->file_name = old->file_name;
    m->lines = old->lines;
    install_method(targets[i].holder, old, m);
  }
  return "";
}

void VM::close_native_libraries() {
  for (void* lib : native_libraries_) dlclose(lib);
  native_libraries_.clear();
}

}  // namespace som
