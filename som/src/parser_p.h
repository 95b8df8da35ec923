// Lexer and recursive-descent parser for SOM class files (grammar: LANGUAGE.md §1-2).
// Errors carry `file:line:column: message`. The parser depends only on the standard library
// (C++20, compilable by clang 14) so it can be fuzzed on its own.
#pragma once

#include "ast_p.h"

#include <string>
#include <string_view>

namespace som {

enum class Tok : uint8_t {
  kEnd,
  kIdent,
  kKeyword,
  kKeywordSeq,
  kOperator,
  kInteger,
  kDouble,
  kString,
  kSymbol,
  kColon,
  kAssign,
  kLParen,
  kRParen,
  kLBracket,
  kRBracket,
  kPound,
  kCaret,
  kPeriod,
  kSeparator,
  kPrimitive,
  kError
};

struct Token {
  Tok kind = Tok::kEnd;
  std::string text;  // identifier/keyword/operator/string/symbol bytes, number digits
  SrcPos pos;
  size_t offset = 0;  // byte offset of the first character
  size_t end_offset = 0;
};

// Splits SOM source into tokens. Errors (unterminated string/comment, bad character) come
// back as a Tok::kError token whose text is the message.
class Lexer {
 public:
  explicit Lexer(std::string_view src) : src_(src) {}
  Token next();

 private:
  char peek(size_t k = 0) const { return pos_ + k < src_.size() ? src_[pos_ + k] : '\0'; }
  bool at_end(size_t k = 0) const { return pos_ + k >= src_.size(); }
  void advance();
  void skip_space_and_comments(Token& err);

  std::string_view src_;
  size_t pos_ = 0;
  int line_ = 1;
  int col_ = 1;
};

bool is_binary_op_char(char c);

// Parses one class definition. On failure returns false and sets `error` to
// "<file>:<line>:<col>: error: <message>".
bool parse_class(std::string_view source, const std::string& file_name, ClassDef& out, std::string& error);

}  // namespace som
