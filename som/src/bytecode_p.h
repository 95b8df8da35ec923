// The SOM bytecode set (full description: docs/som-bytecode.md). Every instruction is one
// opcode byte followed by a fixed operand layout that depends only on the opcode, so a baseline
// JIT can translate it with one table: operands are u8 or u16 (little endian). Jump targets are
// absolute u16 byte offsets into the method's code. Send sites are numbered per method (u16),
// and each site owns a two-entry inline cache (SendSite in object_p.h).
#pragma once

#include <cstdint>
#include <string>

namespace som {

// X(name, mnemonic, operand layout): the opcode is k<name>, the mnemonic is what `som -d` and
// docs/som-bytecode.md print. Layout: "" none, "b" u8, "bb" u8 u8, "w" u16, "ww" u16 u16,
// "bw" u8 u16, "bbw" u8 u8 u16.
#define SOM_BYTECODES(X)                      \
  X(PushLocal, "PUSH_LOCAL", "b")             \
  X(PushArg, "PUSH_ARG", "b")                 \
  X(PushField, "PUSH_FIELD", "b")             \
  X(PushCtx, "PUSH_CTX", "bb")                \
  X(PushSelf, "PUSH_SELF", "")                \
  X(PushNil, "PUSH_NIL", "")                  \
  X(PushTrue, "PUSH_TRUE", "")                \
  X(PushFalse, "PUSH_FALSE", "")              \
  X(PushLiteral, "PUSH_LITERAL", "w")         \
  X(PushGlobal, "PUSH_GLOBAL", "w")           \
  X(PushBlock, "PUSH_BLOCK", "w")             \
  X(StoreLocal, "STORE_LOCAL", "b")           \
  X(StoreArg, "STORE_ARG", "b")               \
  X(StoreField, "STORE_FIELD", "b")           \
  X(StoreCtx, "STORE_CTX", "bb")              \
  X(Pop, "POP", "")                           \
  X(Dup, "DUP", "")                           \
  X(Send, "SEND", "w")                        \
  X(SuperSend, "SUPER_SEND", "w")             \
  X(SendAdd, "SEND_ADD", "w")                 \
  X(SendSub, "SEND_SUB", "w")                 \
  X(SendMul, "SEND_MUL", "w")                 \
  X(SendLt, "SEND_LT", "w")                   \
  X(SendGt, "SEND_GT", "w")                   \
  X(SendLe, "SEND_LE", "w")                   \
  X(SendGe, "SEND_GE", "w")                   \
  X(SendEq, "SEND_EQ", "w")                   \
  X(SendDiv, "SEND_DIV", "w")                 \
  X(SendMod, "SEND_MOD", "w")                 \
  X(SendBitand, "SEND_BITAND", "w")           \
  X(ReturnLocal, "RETURN_LOCAL", "")          \
  X(ReturnSelf, "RETURN_SELF", "")            \
  X(ReturnNonlocal, "RETURN_NONLOCAL", "b")   \
  X(Jump, "JUMP", "w")                        \
  X(JumpBack, "JUMP_BACK", "w")               \
  X(JumpIfTrue, "JUMP_IF_TRUE", "ww")         \
  X(JumpIfFalse, "JUMP_IF_FALSE", "ww")       \
  X(JumpIfNil, "JUMP_IF_NIL", "w")            \
  X(JumpIfNotNil, "JUMP_IF_NOT_NIL", "w")     \
  X(ForCheck, "FOR_CHECK", "w")               \
  X(ForTest, "FOR_TEST", "bbw")               \
  X(ForTestDown, "FOR_TEST_DOWN", "bbw")      \
  X(ForStep, "FOR_STEP", "bb")                \
  X(PushLocalLazy, "PUSH_LOCAL_LAZY", "bb")   \
  X(StoreLocalLazy, "STORE_LOCAL_LAZY", "bb") \
  X(PushArgLazy, "PUSH_ARG_LAZY", "bb")       \
  X(StoreArgLazy, "STORE_ARG_LAZY", "bb")     \
  X(NilCheck, "NIL_CHECK", "w")

enum Op : uint8_t {
#define SOM_OP_ENUM(name, mnemonic, layout) k##name,
  SOM_BYTECODES(SOM_OP_ENUM)
#undef SOM_OP_ENUM
      kOpCount
};

const char* op_name(uint8_t op);
const char* op_layout(uint8_t op);
int op_length(uint8_t op);  // opcode + operands, in bytes

struct Method;
class VM;
std::string disassemble(VM& vm, Method* m);

}  // namespace som
