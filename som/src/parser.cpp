// SOM lexer and parser. See parser_p.h. Internally a parse error unwinds with a C++ exception
// (ParseError) that never leaves parse_class(); nesting depth is bounded so hostile input cannot
// exhaust the C++ stack.
#include "parser_p.h"

#include <cerrno>
#include <cstdlib>
#include <utility>

namespace som {

namespace {
bool is_letter(char c) { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z'); }
bool is_digit(char c) { return c >= '0' && c <= '9'; }
bool is_ident_char(char c) { return is_letter(c) || is_digit(c) || c == '_'; }
}  // namespace

bool is_binary_op_char(char c) {
  switch (c) {
    case '~':
    case '&':
    case '|':
    case '*':
    case '/':
    case '\\':
    case '+':
    case '=':
    case '>':
    case '<':
    case ',':
    case '@':
    case '%':
    case '-':
      return true;
    default:
      return false;
  }
}

void Lexer::advance() {
  if (pos_ < src_.size()) {
    if (src_[pos_] == '\n') {
      line_++;
      col_ = 1;
    } else {
      col_++;
    }
    pos_++;
  }
}

void Lexer::skip_space_and_comments(Token& err) {
  for (;;) {
    char c = peek();
    if (at_end()) return;
    if (c == ' ' || c == '\t' || c == '\r' || c == '\n' || c == '\f') {
      advance();
    } else if (c == '"') {
      SrcPos start{line_, col_};
      advance();
      while (!at_end() && peek() != '"') advance();
      if (at_end()) {
        err.kind = Tok::kError;
        err.pos = start;
        err.text = "unterminated comment";
        return;
      }
      advance();
    } else {
      return;
    }
  }
}

Token Lexer::next() {
  Token t;
  skip_space_and_comments(t);
  if (t.kind == Tok::kError) return t;
  t.pos = {line_, col_};
  t.offset = pos_;
  if (at_end()) {
    t.kind = Tok::kEnd;
    t.end_offset = pos_;
    return t;
  }
  char c = peek();
  auto finish = [&](Tok k) {
    t.kind = k;
    t.end_offset = pos_;
    return t;
  };
  if (is_letter(c)) {
    while (is_ident_char(peek())) {
      t.text += peek();
      advance();
    }
    if (peek() == ':' && peek(1) != '=') {
      t.text += ':';
      advance();
      // A keyword immediately followed by more `ident:` parts is a keyword sequence
      // (only meaningful after '#'). `at:y` stays keyword + identifier.
      bool seq = false;
      for (;;) {
        size_t k = 0;
        if (!is_letter(peek(k))) break;
        while (is_ident_char(peek(k))) k++;
        if (peek(k) != ':' || peek(k + 1) == '=') break;
        for (size_t i = 0; i <= k; i++) {
          t.text += peek();
          advance();
        }
        seq = true;
      }
      return finish(seq ? Tok::kKeywordSeq : Tok::kKeyword);
    }
    if (t.text == "primitive") return finish(Tok::kPrimitive);
    return finish(Tok::kIdent);
  }
  if (is_digit(c)) {
    while (is_digit(peek())) {
      t.text += peek();
      advance();
    }
    if (peek() == '.' && is_digit(peek(1))) {
      t.text += '.';
      advance();
      while (is_digit(peek())) {
        t.text += peek();
        advance();
      }
      return finish(Tok::kDouble);
    }
    return finish(Tok::kInteger);
  }
  if (c == '\'') {
    advance();
    for (;;) {
      if (at_end()) {
        t.kind = Tok::kError;
        t.text = "unterminated string literal";
        return t;
      }
      char d = peek();
      if (d == '\'') {
        advance();
        break;
      }
      if (d == '\\') {
        advance();
        if (at_end()) continue;
        char e = peek();
        switch (e) {
          case 't':
            t.text += '\t';
            break;
          case 'b':
            t.text += '\b';
            break;
          case 'n':
            t.text += '\n';
            break;
          case 'r':
            t.text += '\r';
            break;
          case 'f':
            t.text += '\f';
            break;
          case '0':
            t.text += '\0';
            break;
          case '\'':
            t.text += '\'';
            break;
          case '\\':
            t.text += '\\';
            break;
          default:  // not one of the eight escapes: an error at the backslash
            t.kind = Tok::kError;
            t.pos = SrcPos{line_, col_ - 1};
            t.text = std::string("unknown escape sequence '\\") + e +
                     "' in a string literal (known: \\t \\b \\n \\r \\f \\0 \\' \\\\)";
            return t;
        }
        advance();
        continue;
      }
      if (d != '\r')
        t.text += d;  // CR LF and CR-only line ends become LF via the '\n' kept
      else if (peek(1) != '\n')
        t.text += '\n';
      advance();
    }
    return finish(Tok::kString);
  }
  if (c == '#') {
    advance();
    char d = peek();
    if (is_letter(d)) {
      while (is_ident_char(peek()) || peek() == ':') {
        t.text += peek();
        advance();
      }
      return finish(Tok::kSymbol);
    }
    if (d == '\'') {
      Token s = next();
      if (s.kind == Tok::kError) return s;
      t.text = std::move(s.text);
      return finish(Tok::kSymbol);
    }
    if (is_binary_op_char(d)) {
      while (is_binary_op_char(peek())) {
        t.text += peek();
        advance();
      }
      return finish(Tok::kSymbol);
    }
    return finish(Tok::kPound);
  }
  if (c == ':') {
    advance();
    if (peek() == '=') {
      advance();
      return finish(Tok::kAssign);
    }
    return finish(Tok::kColon);
  }
  if (c == '-' && peek(1) == '-' && peek(2) == '-' && peek(3) == '-') {
    while (peek() == '-') advance();
    return finish(Tok::kSeparator);
  }
  if (is_binary_op_char(c)) {
    while (is_binary_op_char(peek())) {
      // "a - -1": stop before a '-' that starts a negative number after another operator char
      if (!t.text.empty() && peek() == '-' && is_digit(peek(1))) break;
      t.text += peek();
      advance();
    }
    return finish(Tok::kOperator);
  }
  advance();
  switch (c) {
    case '(':
      return finish(Tok::kLParen);
    case ')':
      return finish(Tok::kRParen);
    case '[':
      return finish(Tok::kLBracket);
    case ']':
      return finish(Tok::kRBracket);
    case '^':
      return finish(Tok::kCaret);
    case '.':
      return finish(Tok::kPeriod);
    default:
      break;
  }
  t.kind = Tok::kError;
  t.text = std::string("unexpected character '") + c + "'";
  if (static_cast<unsigned char>(c) < 32 || static_cast<unsigned char>(c) > 126)
    t.text = "unexpected character (byte " + std::to_string(static_cast<unsigned char>(c)) + ")";
  return t;
}

namespace {

struct ParseError {
  SrcPos pos;
  std::string message;
};

constexpr int kMaxNesting = 400;

class Parser {
 public:
  explicit Parser(std::string_view src) : lexer_(src) {
    cur_ = lex();
    next_ = lex();
  }

  void parse_class_def(ClassDef& cls) {
    cls.name = expect_ident("class name");
    expect(Tok::kOperator, "=", "'=' after the class name");
    if (cur_.kind == Tok::kIdent || cur_.kind == Tok::kPrimitive) {
      cls.super_name = cur_.text;
      shift();
    }
    expect(Tok::kLParen, "", "'(' to start the class body");
    parse_fields(cls.inst_fields);
    while (cur_.kind != Tok::kSeparator && cur_.kind != Tok::kRParen) {
      cls.inst_methods.emplace_back();
      parse_method(cls.inst_methods.back());
    }
    if (cur_.kind == Tok::kSeparator) {
      shift();
      parse_fields(cls.class_fields);
      while (cur_.kind != Tok::kRParen) {
        cls.class_methods.emplace_back();
        parse_method(cls.class_methods.back());
      }
    }
    expect(Tok::kRParen, "", "')' to end the class body");
    if (cur_.kind != Tok::kEnd) fail(cur_.pos, "unexpected text after the end of the class");
  }

 private:
  Token lex() {
    Token t = lexer_.next();
    if (t.kind == Tok::kError) throw ParseError{t.pos, t.text};
    return t;
  }
  void shift() {
    cur_ = std::move(next_);
    next_ = lex();
  }
  [[noreturn]] void fail(SrcPos p, const std::string& msg) { throw ParseError{p, msg}; }
  std::string describe(const Token& t) {
    switch (t.kind) {
      case Tok::kEnd:
        return "end of file";
      case Tok::kString:
        return "string literal";
      case Tok::kSymbol:
        return "symbol #" + t.text;
      default:
        return "'" + t.text + "'";
    }
  }
  void expect(Tok k, const char* text, const char* what) {
    if (cur_.kind != k || (text[0] && cur_.text != text)) {
      std::string got = describe(cur_);
      if (cur_.kind == Tok::kLParen) got = "'('";
      if (cur_.kind == Tok::kRParen) got = "')'";
      if (cur_.kind == Tok::kLBracket) got = "'['";
      if (cur_.kind == Tok::kRBracket) got = "']'";
      if (cur_.kind == Tok::kPeriod) got = "'.'";
      if (cur_.kind == Tok::kCaret) got = "'^'";
      if (cur_.kind == Tok::kPound) got = "'#'";
      if (cur_.kind == Tok::kColon) got = "':'";
      if (cur_.kind == Tok::kAssign) got = "':='";
      if (cur_.kind == Tok::kSeparator) got = "'----'";
      fail(cur_.pos, std::string("expected ") + what + ", found " + got);
    }
    shift();
  }
  bool is_ident() const { return cur_.kind == Tok::kIdent || cur_.kind == Tok::kPrimitive; }
  std::string expect_ident(const char* what) {
    if (!is_ident()) expect(Tok::kIdent, "", what);
    std::string s = cur_.text;
    shift();
    return s;
  }
  bool is_bar() const { return cur_.kind == Tok::kOperator && cur_.text == "|"; }

  void parse_fields(std::vector<std::string>& out) {
    if (!is_bar()) return;
    shift();
    while (is_ident()) {
      for (const std::string& f : out)
        if (f == cur_.text) fail(cur_.pos, "field '" + f + "' is declared twice in this class");
      out.push_back(cur_.text);
      shift();
    }
    if (!is_bar()) expect(Tok::kOperator, "|", "'|' to end the field list");
    shift();
  }

  void parse_method(MethodDef& m) {
    m.pos = cur_.pos;
    std::vector<std::string>& params = m.body.params;
    auto check_param = [&](const std::string& p, SrcPos pos) {
      for (auto& q : params)
        if (q == p) fail(pos, "duplicate argument name '" + p + "'");
      if (p == "self" || p == "super") fail(pos, "'" + p + "' cannot be an argument name");
      params.push_back(p);
    };
    if (is_ident()) {
      m.selector = cur_.text;
      shift();
    } else if (cur_.kind == Tok::kOperator) {
      m.selector = cur_.text;
      shift();
      SrcPos p = cur_.pos;
      check_param(expect_ident("argument name after binary selector"), p);
    } else if (cur_.kind == Tok::kKeyword) {
      while (cur_.kind == Tok::kKeyword) {
        m.selector += cur_.text;
        shift();
        SrcPos p = cur_.pos;
        check_param(expect_ident("argument name after keyword"), p);
      }
    } else {
      expect(Tok::kIdent, "", "a method pattern (identifier, binary operator or keyword)");
    }
    expect(Tok::kOperator, "=", "'=' after the method pattern");
    if (cur_.kind == Tok::kPrimitive) {
      m.is_primitive = true;
      shift();
      return;
    }
    m.body.pos = cur_.pos;
    expect(Tok::kLParen, "", "'(' or 'primitive' to start the method body");
    parse_body(m.body, Tok::kRParen);
    expect(Tok::kRParen, "", "')' to end the method body");
  }

  void parse_body(BlockNode& b, Tok closer) {
    if (is_bar()) {
      shift();
      while (is_ident()) {
        b.locals.push_back(cur_.text);
        b.local_pos.push_back(cur_.pos);
        shift();
      }
      if (!is_bar()) expect(Tok::kOperator, "|", "'|' to end the local variable list");
      shift();
    } else if (cur_.kind == Tok::kOperator && cur_.text == "||") {
      shift();  // empty local list
    }
    for (;;) {
      if (cur_.kind == closer) return;
      if (cur_.kind == Tok::kCaret) {
        SrcPos p = cur_.pos;
        shift();
        NodePtr r = std::make_unique<Node>();
        r->kind = NodeKind::kReturn;
        r->pos = p;
        r->receiver = parse_expr();
        b.body.push_back(std::move(r));
        if (cur_.kind == Tok::kPeriod) shift();
        if (cur_.kind != closer)
          fail(cur_.pos, "statement after a return ('^' must be in the last statement)");
        return;
      }
      b.body.push_back(parse_expr());
      if (cur_.kind == Tok::kPeriod) {
        shift();
        continue;
      }
      if (cur_.kind != closer)
        fail(cur_.pos, std::string("expected '.' or '") + (closer == Tok::kRParen ? ")" : "]") +
                           "' after a statement, found " + describe(cur_));
      return;
    }
  }

  struct DepthGuard {
    int& d;
    DepthGuard(int& depth, Parser& p, SrcPos pos) : d(depth) {
      if (++d > kMaxNesting) p.fail(pos, "expression nested too deeply");
    }
    ~DepthGuard() { d--; }
  };

  NodePtr parse_expr() {
    DepthGuard g(depth_, *this, cur_.pos);
    if (is_ident() && next_.kind == Tok::kAssign) {
      NodePtr a = std::make_unique<Node>();
      a->kind = NodeKind::kAssign;
      a->pos = cur_.pos;
      a->name = cur_.text;
      if (a->name == "self" || a->name == "super") fail(a->pos, "cannot assign to '" + a->name + "'");
      shift();
      shift();
      a->receiver = parse_expr();
      return a;
    }
    NodePtr p = parse_primary();
    return parse_messages(std::move(p));
  }

  NodePtr make_send(NodePtr rcv, std::string sel, SrcPos pos) {
    NodePtr s = std::make_unique<Node>();
    s->kind = NodeKind::kSend;
    s->pos = pos;
    s->name = std::move(sel);
    s->is_super = rcv->kind == NodeKind::kVariable && rcv->name == "super";
    s->receiver = std::move(rcv);
    return s;
  }

  NodePtr parse_unaries(NodePtr r) {
    while (is_ident()) {
      SrcPos p = cur_.pos;
      std::string sel = cur_.text;
      shift();
      r = make_send(std::move(r), std::move(sel), p);
    }
    return r;
  }
  NodePtr parse_binaries(NodePtr r) {
    while (cur_.kind == Tok::kOperator) {
      SrcPos p = cur_.pos;
      std::string sel = cur_.text;
      shift();
      NodePtr arg = parse_unaries(parse_primary());
      r = make_send(std::move(r), std::move(sel), p);
      r->args.push_back(std::move(arg));
    }
    return r;
  }
  NodePtr parse_messages(NodePtr r) {
    r = parse_binaries(parse_unaries(std::move(r)));
    if (cur_.kind == Tok::kKeyword) {
      SrcPos p = cur_.pos;
      std::string sel;
      std::vector<NodePtr> args;
      while (cur_.kind == Tok::kKeyword) {
        sel += cur_.text;
        shift();
        args.push_back(parse_binaries(parse_unaries(parse_primary())));
      }
      r = make_send(std::move(r), std::move(sel), p);
      r->args = std::move(args);
    }
    return r;
  }

  bool negative_number_ahead() const {
    return cur_.kind == Tok::kOperator && cur_.text == "-" &&
           (next_.kind == Tok::kInteger || next_.kind == Tok::kDouble) && next_.offset == cur_.end_offset;
  }

  Literal parse_number(bool negative) {
    Literal l;
    if (cur_.kind == Tok::kDouble) {
      l.kind = LitKind::kDouble;
      l.d = std::strtod(cur_.text.c_str(), nullptr);
      if (negative) l.d = -l.d;
    } else {
      errno = 0;
      std::string digits = (negative ? "-" : "") + cur_.text;
      char* end = nullptr;
      long long v = std::strtoll(digits.c_str(), &end, 10);
      if (errno == ERANGE) {
        l.kind = LitKind::kBigInteger;
        l.text = digits;
      } else {
        l.kind = LitKind::kInteger;
        l.i = v;
      }
    }
    shift();
    return l;
  }

  Literal parse_literal_array(SrcPos pos) {
    DepthGuard g(depth_, *this, pos);
    Literal arr;
    arr.kind = LitKind::kArray;
    // cur_ is '(' (after '#')
    shift();
    while (cur_.kind != Tok::kRParen) {
      if (cur_.kind == Tok::kEnd) fail(pos, "unterminated literal array");
      arr.elems.push_back(parse_array_element());
    }
    shift();
    return arr;
  }

  Literal parse_array_element() {
    Literal l;
    if (negative_number_ahead()) {
      shift();
      return parse_number(true);
    }
    switch (cur_.kind) {
      case Tok::kInteger:
      case Tok::kDouble:
        return parse_number(false);
      case Tok::kString:
        l.kind = LitKind::kString;
        l.text = cur_.text;
        shift();
        return l;
      case Tok::kSymbol:
        l.kind = LitKind::kSymbol;
        l.text = cur_.text;
        shift();
        return l;
      case Tok::kPound: {
        SrcPos p = cur_.pos;
        shift();
        if (cur_.kind != Tok::kLParen) fail(cur_.pos, "expected '(' after '#' in a literal array");
        return parse_literal_array(p);
      }
      default:
        fail(cur_.pos,
             "expected a literal (number, string, #symbol or #( ... )) in a literal "
             "array, found " +
                 describe(cur_));
    }
  }

  NodePtr parse_primary() {
    DepthGuard g(depth_, *this, cur_.pos);
    NodePtr n = std::make_unique<Node>();
    n->pos = cur_.pos;
    if (is_ident()) {
      n->kind = NodeKind::kVariable;
      n->name = cur_.text;
      shift();
      return n;
    }
    if (negative_number_ahead()) {
      shift();
      n->kind = NodeKind::kLiteral;
      n->lit = parse_number(true);
      return n;
    }
    switch (cur_.kind) {
      case Tok::kInteger:
      case Tok::kDouble:
        n->kind = NodeKind::kLiteral;
        n->lit = parse_number(false);
        return n;
      case Tok::kString:
        n->kind = NodeKind::kLiteral;
        n->lit.kind = LitKind::kString;
        n->lit.text = cur_.text;
        shift();
        return n;
      case Tok::kSymbol:
        n->kind = NodeKind::kLiteral;
        n->lit.kind = LitKind::kSymbol;
        n->lit.text = cur_.text;
        shift();
        return n;
      case Tok::kPound:
        shift();
        if (cur_.kind != Tok::kLParen) fail(cur_.pos, "expected a symbol or '(' after '#'");
        n->kind = NodeKind::kLiteral;
        n->lit = parse_literal_array(n->pos);
        return n;
      case Tok::kLParen: {
        shift();
        NodePtr e = parse_expr();
        expect(Tok::kRParen, "", "')'");
        return e;
      }
      case Tok::kLBracket: {
        shift();
        n->kind = NodeKind::kBlock;
        n->block = std::make_unique<BlockNode>();
        n->block->pos = n->pos;
        if (cur_.kind == Tok::kColon) {
          while (cur_.kind == Tok::kColon) {
            shift();
            SrcPos p = cur_.pos;
            std::string name = expect_ident("block parameter name after ':'");
            for (auto& q : n->block->params)
              if (q == name) fail(p, "duplicate block parameter '" + name + "'");
            if (name == "self" || name == "super") fail(p, "'" + name + "' cannot be a parameter");
            n->block->params.push_back(name);
          }
          if (cur_.kind == Tok::kOperator && cur_.text == "||") {
            // "[:a || t | ...]": parameter bar immediately followed by a locals bar
            cur_.text = "|";
          } else {
            if (!is_bar()) expect(Tok::kOperator, "|", "'|' after the block parameters");
            shift();
          }
        }
        parse_body(*n->block, Tok::kRBracket);
        expect(Tok::kRBracket, "", "']' to end the block");
        return n;
      }
      default:
        fail(cur_.pos, "expected an expression, found " + describe(cur_));
    }
  }

  Lexer lexer_;
  Token cur_, next_;
  int depth_ = 0;
};

}  // namespace

bool parse_class(std::string_view source, const std::string& file_name, ClassDef& out, std::string& error) {
  try {
    Parser p(source);
    p.parse_class_def(out);
    return true;
  } catch (const ParseError& e) {
    error = file_name + ":" + std::to_string(e.pos.line) + ":" + std::to_string(e.pos.col) +
            ": error: " + e.message;
    return false;
  }
}

}  // namespace som
