// Bytecode tables and the disassembler (used by `som -d` and the compiler tests).
#include "bytecode_p.h"

#include "object_p.h"
#include "vm_p.h"

#include <cstring>

namespace som {

namespace {
const char* const kNames[] = {
#define SOM_OP_NAME(name, mnemonic, layout) mnemonic,
    SOM_BYTECODES(SOM_OP_NAME)
#undef SOM_OP_NAME
};
const char* const kLayouts[] = {
#define SOM_OP_LAYOUT(name, mnemonic, layout) layout,
    SOM_BYTECODES(SOM_OP_LAYOUT)
#undef SOM_OP_LAYOUT
};
}  // namespace

const char* op_name(uint8_t op) { return op < kOpCount ? kNames[op] : "?"; }
const char* op_layout(uint8_t op) { return op < kOpCount ? kLayouts[op] : ""; }

int op_length(uint8_t op) {
  int n = 1;
  for (const char* l = op_layout(op); *l; l++) n += *l == 'w' ? 2 : 1;
  return n;
}

std::string disassemble(VM& vm, Method* m) {
  std::string out;
  char buf[160];
  std::snprintf(buf, sizeof buf, "%s>>%s%s args=%d locals=%d ctx=%d%s maxStack=%d\n",
                m->holder && m->holder->name ? m->holder->name->text.c_str() : "?",
                m->signature ? m->signature->text.c_str() : "?", m->is_block ? " [block]" : "", m->num_args,
                m->num_locals, m->num_ctx_vars,
                m->has_context    ? " (context)"
                : m->lazy_context ? " (lazy context)"
                                  : "",
                m->max_stack);
  out += buf;
  size_t pc = 0;
  while (pc < m->code.size()) {
    uint8_t op = m->code[pc];
    std::snprintf(buf, sizeof buf, "  %4zu %-16s", pc, op_name(op));
    out += buf;
    size_t p = pc + 1;
    std::vector<int> operands;
    for (const char* l = op_layout(op); *l; l++) {
      if (p >= m->code.size()) break;
      if (*l == 'w') {
        operands.push_back(m->code[p] | (p + 1 < m->code.size() ? m->code[p + 1] << 8 : 0));
        p += 2;
      } else {
        operands.push_back(m->code[p]);
        p += 1;
      }
    }
    for (int v : operands) {
      std::snprintf(buf, sizeof buf, " %d", v);
      out += buf;
    }
    // Symbolic comment for sends and globals.
    bool is_send = op == kSend || op == kSuperSend || (op >= kSendAdd && op <= kSendBitand);
    if (is_send && !operands.empty() && static_cast<size_t>(operands[0]) < m->sites.size())
      out += "  ; #" + m->sites[operands[0]].selector->text;
    if ((op == kJumpIfTrue || op == kJumpIfFalse) && operands.size() == 2 &&
        static_cast<size_t>(operands[1]) < m->sites.size())
      out += "  ; fallback #" + m->sites[operands[1]].selector->text;
    if ((op == kForCheck || op == kNilCheck) && !operands.empty() &&
        static_cast<size_t>(operands[0]) < m->sites.size())
      out += "  ; fallback #" + m->sites[operands[0]].selector->text;
    if (op == kPushGlobal && !operands.empty() && static_cast<size_t>(operands[0]) < m->literals.size())
      out += "  ; " + std::string(vm.string_of(m->literals[operands[0]]));
    out += "\n";
    pc += static_cast<size_t>(op_length(op));
  }
  for (size_t i = 0; i < m->blocks.size(); i++) out += disassemble(vm, m->blocks[i]);
  return out;
}

}  // namespace som
