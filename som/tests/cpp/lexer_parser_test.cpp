// Lexer and parser tests: the token rules of LANGUAGE.md §1 and error positions.
#include "parser_p.h"

#include <gtest/gtest.h>

#include <string>
#include <vector>

namespace som {
namespace {

std::vector<Token> lex_all(const std::string& src) {
  Lexer lx(src);
  std::vector<Token> out;
  for (;;) {
    Token t = lx.next();
    out.push_back(t);
    if (t.kind == Tok::kEnd || t.kind == Tok::kError) break;
  }
  return out;
}

TEST(SomLexer, MinusIsBinaryAfterOperandAndNegativeLiteralOtherwise) {
  auto t = lex_all("3-1 3 - -2");
  ASSERT_GE(t.size(), 7u);
  EXPECT_EQ(t[0].kind, Tok::kInteger);
  EXPECT_EQ(t[1].kind, Tok::kOperator);
  EXPECT_EQ(t[1].text, "-");
  EXPECT_EQ(t[2].kind, Tok::kInteger);
  EXPECT_EQ(t[4].text, "-");
  EXPECT_EQ(t[5].text, "-");  // then "2": the parser joins them into -2 (adjacent)
  EXPECT_EQ(t[5].end_offset, t[6].offset);
}

TEST(SomLexer, KeywordSequencesSymbolsAndAssignment) {
  auto t = lex_all("#at:put: #+ #'hello world' x:=1 at: y at:y");
  EXPECT_EQ(t[0].kind, Tok::kSymbol);
  EXPECT_EQ(t[0].text, "at:put:");
  EXPECT_EQ(t[1].kind, Tok::kSymbol);
  EXPECT_EQ(t[1].text, "+");
  EXPECT_EQ(t[2].text, "hello world");
  EXPECT_EQ(t[3].kind, Tok::kIdent);  // x
  EXPECT_EQ(t[4].kind, Tok::kAssign);
  EXPECT_EQ(t[6].kind, Tok::kKeyword);
  EXPECT_EQ(t[8].kind, Tok::kKeyword);  // at:y is keyword + identifier, not a sequence
  EXPECT_EQ(t[8].text, "at:");
  EXPECT_EQ(t[9].kind, Tok::kIdent);
}

TEST(SomLexer, StringEscapesKeepNulAndNewlines) {
  auto t = lex_all("'a\\tb\\0c\\'d\\\\e\nf'");
  ASSERT_EQ(t[0].kind, Tok::kString);
  EXPECT_EQ(t[0].text, std::string("a\tb\0c'd\\e\nf", 11));
}

TEST(SomLexer, UnknownStringEscapeIsAnErrorAtTheBackslash) {
  auto t = lex_all("'ok' 'x\\ay'");
  ASSERT_EQ(t[0].kind, Tok::kString);
  ASSERT_EQ(t[1].kind, Tok::kError);
  EXPECT_NE(t[1].text.find("unknown escape sequence '\\a'"), std::string::npos) << t[1].text;
  EXPECT_EQ(t[1].pos.line, 1);
  EXPECT_EQ(t[1].pos.col, 8);
}

TEST(SomLexer, SeparatorAndMultiCharOperators) {
  auto t = lex_all("------ --> <= ~=");
  EXPECT_EQ(t[0].kind, Tok::kSeparator);
  EXPECT_EQ(t[1].text, "-->");
  EXPECT_EQ(t[2].text, "<=");
  EXPECT_EQ(t[3].text, "~=");
}

TEST(SomLexer, DoublesNeedDigitsOnBothSides) {
  auto t = lex_all("3.5 3. 1e10");
  EXPECT_EQ(t[0].kind, Tok::kDouble);
  EXPECT_EQ(t[1].kind, Tok::kInteger);
  EXPECT_EQ(t[2].kind, Tok::kPeriod);
  EXPECT_EQ(t[3].kind, Tok::kInteger);
  EXPECT_EQ(t[4].kind, Tok::kIdent);  // e10
}

TEST(SomLexer, UnterminatedStringAndCommentAreErrors) {
  auto t = lex_all("'abc");
  EXPECT_EQ(t.back().kind, Tok::kError);
  auto c = lex_all("\"never closed");
  EXPECT_EQ(c.back().kind, Tok::kError);
  EXPECT_NE(c.back().text.find("comment"), std::string::npos);
}

TEST(SomParser, ParsesClassWithSuperFieldsAndClassSide) {
  ClassDef c;
  std::string err;
  ASSERT_TRUE(
      parse_class("Foo = Bar ( | a b | x = ( ^a ) + other = ( ^other ) "
                  "at: i put: v = primitive ---- | count | new = ( ^super new ) )",
                  "Foo.som", c, err))
      << err;
  EXPECT_EQ(c.name, "Foo");
  EXPECT_EQ(c.super_name, "Bar");
  EXPECT_EQ(c.inst_fields, (std::vector<std::string>{"a", "b"}));
  ASSERT_EQ(c.inst_methods.size(), 3u);
  EXPECT_EQ(c.inst_methods[1].selector, "+");
  EXPECT_EQ(c.inst_methods[2].selector, "at:put:");
  EXPECT_TRUE(c.inst_methods[2].is_primitive);
  EXPECT_EQ(c.class_fields, (std::vector<std::string>{"count"}));
  ASSERT_EQ(c.class_methods.size(), 1u);
  EXPECT_TRUE(c.class_methods[0].body.body[0]->receiver->args.empty());
}

TEST(SomParser, PrecedenceUnaryBinaryKeyword) {
  ClassDef c;
  std::string err;
  ASSERT_TRUE(parse_class("A = ( m = ( ^x foo: 2 + 3 * y abs bar: -1 ) )", "A.som", c, err)) << err;
  Node& ret = *c.inst_methods[0].body.body[0];
  ASSERT_EQ(ret.kind, NodeKind::kReturn);
  Node& kw = *ret.receiver;
  EXPECT_EQ(kw.name, "foo:bar:");
  Node& mul = *kw.args[0];
  EXPECT_EQ(mul.name, "*");  // (2 + 3) * (y abs): binary is left to right
  EXPECT_EQ(mul.receiver->name, "+");
  EXPECT_EQ(mul.args[0]->name, "abs");
  EXPECT_EQ(kw.args[1]->kind, NodeKind::kLiteral);
  EXPECT_EQ(kw.args[1]->lit.i, -1);
}

TEST(SomParser, LiteralArraysAndBigIntegers) {
  ClassDef c;
  std::string err;
  ASSERT_TRUE(parse_class("A = ( m = ( ^#(1 -2.5 'x' #y #(3) #at:put:) + 123456789012345678901234 ) )",
                          "A.som", c, err))
      << err;
  Node& plus = *c.inst_methods[0].body.body[0]->receiver;
  const Literal& arr = plus.receiver->lit;
  ASSERT_EQ(arr.kind, LitKind::kArray);
  ASSERT_EQ(arr.elems.size(), 6u);
  EXPECT_EQ(arr.elems[1].kind, LitKind::kDouble);
  EXPECT_DOUBLE_EQ(arr.elems[1].d, -2.5);
  EXPECT_EQ(arr.elems[4].kind, LitKind::kArray);
  EXPECT_EQ(arr.elems[5].text, "at:put:");
  EXPECT_EQ(plus.args[0]->lit.kind, LitKind::kBigInteger);
  EXPECT_EQ(plus.args[0]->lit.text, "123456789012345678901234");
}

TEST(SomParser, BlockParametersWithSpaceAndLocals) {
  ClassDef c;
  std::string err;
  ASSERT_TRUE(parse_class("A = ( m = ( ^[: a :b | | t | t := a. t + b] ) )", "A.som", c, err)) << err;
  Node& blk = *c.inst_methods[0].body.body[0]->receiver;
  ASSERT_EQ(blk.kind, NodeKind::kBlock);
  EXPECT_EQ(blk.block->params, (std::vector<std::string>{"a", "b"}));
  EXPECT_EQ(blk.block->locals, (std::vector<std::string>{"t"}));
}

std::string parse_error(const std::string& src) {
  ClassDef c;
  std::string err;
  EXPECT_FALSE(parse_class(src, "T.som", c, err));
  return err;
}

TEST(SomParser, ErrorsCarryFileLineAndColumn) {
  EXPECT_EQ(parse_error("T = (\n  m = ( ^1. 2 )\n)"),
            "T.som:2:13: error: statement after a return ('^' must be in the last statement)");
  EXPECT_EQ(parse_error("T = ( m = ( 1 + ) )").substr(0, 11), "T.som:1:17:");
  EXPECT_NE(parse_error("T = ( m: a m: a = ( ) )").find("duplicate argument"), std::string::npos);
  EXPECT_NE(parse_error("T = ( m = ( self := 3 ) )").find("cannot assign to 'self'"), std::string::npos);
  EXPECT_NE(parse_error("T = ( m = ( ^1 )").find("end of file"), std::string::npos);
  EXPECT_NE(parse_error("T = ( m = ( 'abc ) )").find("unterminated string"), std::string::npos);
  EXPECT_NE(parse_error("T = ( ) extra").find("after the end of the class"), std::string::npos);
  EXPECT_EQ(parse_error("T = ( | a b a | )"), "T.som:1:13: error: field 'a' is declared twice in this class");
  EXPECT_NE(parse_error("T = ( ---- | x x | )").find("field 'x' is declared twice"), std::string::npos);
  EXPECT_EQ(parse_error("T = ( m = ( ^'a\\qb' ) )").substr(0, 18), "T.som:1:16: error:");
}

TEST(SomParser, DeepNestingIsAnErrorNotACrash) {
  std::string src = "T = ( m = ( ^" + std::string(100000, '(') + "1" + std::string(100000, ')') + " ) )";
  EXPECT_NE(parse_error(src).find("nested too deeply"), std::string::npos);
  std::string blocks = "T = ( m = ( ^";
  for (int i = 0; i < 50000; i++) blocks += "[";
  EXPECT_NE(parse_error(blocks).find("nested too deeply"), std::string::npos);
}

}  // namespace
}  // namespace som
