// The SOM abstract syntax tree, as produced by the parser (parser_p.h) and consumed by the
// bytecode compiler (compiler_p.h). It is deliberately independent of the VM (no Values, no heap),
// so that the parser can be fuzzed and unit-tested alone.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

namespace som {

struct SrcPos {
  int line = 0;
  int col = 0;
};

enum class LitKind : uint8_t { kInteger, kBigInteger, kDouble, kString, kSymbol, kArray };

// A literal as written in the source. BigInteger keeps its decimal text (with a leading '-').
struct Literal {
  LitKind kind = LitKind::kInteger;
  int64_t i = 0;
  double d = 0;
  std::string text;            // String/Symbol bytes, BigInteger digits
  std::vector<Literal> elems;  // Array elements
};

enum class NodeKind : uint8_t { kVariable, kAssign, kLiteral, kSend, kBlock, kReturn };

struct BlockNode;
struct Node;
using NodePtr = std::unique_ptr<Node>;

struct Node {
  NodeKind kind = NodeKind::kVariable;
  SrcPos pos;
  std::string name;                  // Variable / Assign target / Send selector
  NodePtr receiver;                  // Send receiver, Assign value, Return value
  std::vector<NodePtr> args;         // Send arguments
  bool is_super = false;             // Send whose receiver is the pseudo-variable `super`
  Literal lit;                       // Literal
  std::unique_ptr<BlockNode> block;  // Block
};

// A method body or a block: parameters, locals and statements. The compiler annotates it.
struct BlockNode {
  SrcPos pos;
  std::vector<std::string> params;
  std::vector<std::string> locals;
  std::vector<SrcPos> local_pos;
  std::vector<NodePtr> body;  // a Return node can only be the last statement
  // Compiler annotation: inlined into the enclosing scope (set by the compiler only).
  bool inlined = false;
};

struct MethodDef {
  SrcPos pos;
  std::string selector;
  bool is_primitive = false;
  BlockNode body;  // params = method arguments
};

struct ClassDef {
  std::string name;
  std::string super_name;  // empty: Object; "nil": root class
  std::vector<std::string> inst_fields, class_fields;
  std::vector<MethodDef> inst_methods, class_methods;
};

}  // namespace som
