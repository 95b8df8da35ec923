// The SOM bytecode set (full description: docs/som-bytecode.md). Every instruction is one
// opcode byte followed by a fixed operand layout that depends only on the opcode, so a baseline
// JIT can translate it with one table: operands are u8 or u16 (little endian). Jump targets are
// absolute u16 byte offsets into the method's code. Send sites are numbered per method (u16),
// and each site owns a two-entry inline cache (SendSite in object_p.h).
#pragma once

#include <cstdint>
#include <string>

namespace som {

// X(name, operand layout) -- layout: "" none, "b" u8, "bb" u8 u8, "w" u16, "ww" u16 u16,
// "bw" u8 u16, "bbw" u8 u8 u16.
#define SOM_BYTECODES(X)            \
  X(PUSH_LOCAL, "b")                \
  X(PUSH_ARG, "b")                  \
  X(PUSH_FIELD, "b")                \
  X(PUSH_CTX, "bb")                 \
  X(PUSH_SELF, "")                  \
  X(PUSH_NIL, "")                   \
  X(PUSH_TRUE, "")                  \
  X(PUSH_FALSE, "")                 \
  X(PUSH_LITERAL, "w")              \
  X(PUSH_GLOBAL, "w")               \
  X(PUSH_BLOCK, "w")                \
  X(STORE_LOCAL, "b")               \
  X(STORE_ARG, "b")                 \
  X(STORE_FIELD, "b")               \
  X(STORE_CTX, "bb")                \
  X(POP, "")                        \
  X(DUP, "")                        \
  X(SEND, "w")                      \
  X(SUPER_SEND, "w")                \
  X(SEND_ADD, "w")                  \
  X(SEND_SUB, "w")                  \
  X(SEND_MUL, "w")                  \
  X(SEND_LT, "w")                   \
  X(SEND_GT, "w")                   \
  X(SEND_LE, "w")                   \
  X(SEND_GE, "w")                   \
  X(SEND_EQ, "w")                   \
  X(SEND_DIV, "w")                  \
  X(SEND_MOD, "w")                  \
  X(SEND_BITAND, "w")               \
  X(RETURN_LOCAL, "")               \
  X(RETURN_SELF, "")                \
  X(RETURN_NONLOCAL, "b")           \
  X(JUMP, "w")                      \
  X(JUMP_BACK, "w")                 \
  X(JUMP_IF_TRUE, "ww")             \
  X(JUMP_IF_FALSE, "ww")            \
  X(JUMP_IF_NIL, "w")               \
  X(JUMP_IF_NOT_NIL, "w")           \
  X(FOR_CHECK, "w")                 \
  X(FOR_TEST, "bbw")                \
  X(FOR_TEST_DOWN, "bbw")           \
  X(FOR_STEP, "bb")                 \
  X(PUSH_LOCAL_LAZY, "bb")          \
  X(STORE_LOCAL_LAZY, "bb")         \
  X(PUSH_ARG_LAZY, "bb")            \
  X(STORE_ARG_LAZY, "bb")           \
  X(NIL_CHECK, "w")

enum Op : uint8_t {
#define SOM_OP_ENUM(name, layout) OP_##name,
  SOM_BYTECODES(SOM_OP_ENUM)
#undef SOM_OP_ENUM
  OP_COUNT
};

const char* opName(uint8_t op);
const char* opLayout(uint8_t op);
int opLength(uint8_t op); // opcode + operands, in bytes

struct Method;
class VM;
std::string disassemble(VM& vm, Method* m);

} // namespace som
