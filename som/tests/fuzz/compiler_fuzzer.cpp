// libFuzzer target: every class the parser accepts goes through the bytecode compiler (each
// method compiled against Object as holder), the disassembler and the baseline JIT. Compile
// errors are fine; crashes, sanitizer reports, code that the disassembler cannot walk and
// bytecode the JIT refuses are failures.
#include "bytecode_p.h"
#include "compiler_p.h"
#include "jit/jit_p.h"
#include "parser_p.h"
#include "vm_p.h"

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>

namespace {
som::VM* booted_vm() {
  static som::VM* vm = [] {
    auto* v = new som::VM();
    v->set_class_path(SOM_CORE_LIB_DIR);
    if (!v->bootstrap()) std::abort();
    v->jit_ = std::make_unique<som::Jit>(*v);
    return v;
  }();
  return vm;
}

void check_code(som::Method* m) {
  size_t pc_ = 0;
  while (pc_ < m->code.size()) {
    uint8_t op = m->code[pc_];
    if (op >= som::kOpCount) std::abort();
    pc_ += static_cast<size_t>(som::op_length(op));
  }
  if (pc_ != m->code.size()) std::abort();  // instructions must tile the code exactly
  for (som::Method* b : m->blocks) check_code(b);
}

// Machine code for the method and its blocks (never run here: the JIT must accept every
// method the bytecode compiler produces).
void jit_compile(som::VM* vm, som::Method* m) {
  if (!vm->jit_->compile(m)) std::abort();
  for (som::Method* b : m->blocks) jit_compile(vm, b);
}

// Compiled methods are permanent in the VM; the fuzzer frees them (and their machine code) so
// long runs stay small (their literals and interned symbols still accumulate slowly).
void free_method(som::VM* vm, som::Method* m) {
  for (som::Method* b : m->blocks) free_method(vm, b);
  vm->jit_->discard(m);
  delete m;
}
}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view src(reinterpret_cast<const char*>(data), size);
  som::ClassDef def;
  std::string error;
  if (!som::parse_class(src, "fuzz.som", def, error)) return 0;
  som::VM* vm = booted_vm();
  for (auto* methods : {&def.inst_methods, &def.class_methods}) {
    for (som::MethodDef& md : *methods) {
      if (md.is_primitive) continue;
      std::string err;
      som::Method* m = som::compile_method(*vm, vm->object_class_, md, "fuzz.som", err);
      if (!m) {
        if (err.rfind("fuzz.som:", 0) != 0) std::abort();
        continue;
      }
      check_code(m);
      (void)som::disassemble(*vm, m);
      jit_compile(vm, m);
      free_method(vm, m);
    }
  }
  return 0;
}
