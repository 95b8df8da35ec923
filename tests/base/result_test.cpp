#include "jitkit/base/result.h"

#include <gtest/gtest.h>

#include <cerrno>
#include <memory>
#include <string>

namespace jitkit {
namespace {

Result<int> parse_digit(char c) {
  if (c < '0' || c > '9') return Error(ErrorCode::kInvalidArgument, std::string("not a digit: ") + c);
  return c - '0';
}

Result<int> sum_two(const char* s) {
  JITKIT_TRY(int a, parse_digit(s[0]));
  JITKIT_TRY(int b, parse_digit(s[1]));
  return a + b;
}

Status check_digit(char c) {
  JITKIT_TRY(parse_digit(c));
  return ok();
}

TEST(Result, HoldsValueOrError) {
  Result<int> good = parse_digit('7');
  ASSERT_TRUE(good.has_value());
  EXPECT_EQ(*good, 7);
  Result<int> bad = parse_digit('x');
  ASSERT_FALSE(bad.has_value());
  EXPECT_EQ(bad.error().code(), ErrorCode::kInvalidArgument);
  EXPECT_EQ(bad.error().message(), "not a digit: x");
}

TEST(Result, TryPropagatesTheFirstError) {
  EXPECT_EQ(*sum_two("34"), 7);
  Result<int> r = sum_two("3y");
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().message(), "not a digit: y");
  EXPECT_TRUE(check_digit('1').has_value());
  EXPECT_FALSE(check_digit('q').has_value());
}

TEST(Result, MoveOnlyValues) {
  Result<std::unique_ptr<int>> r = std::make_unique<int>(5);
  ASSERT_TRUE(r);
  std::unique_ptr<int> p = std::move(r).value();
  EXPECT_EQ(*p, 5);
}

TEST(Error, ContextReadsOutermostFirst) {
  Error e = Error(ErrorCode::kOutOfRange, "disp does not fit").context("mov [rax+x], ecx").context("finalize");
  EXPECT_EQ(e.message(), "finalize: mov [rax+x], ecx: disp does not fit");
  EXPECT_EQ(e.code(), ErrorCode::kOutOfRange);
}

TEST(Error, FromErrnoNamesTheReasonAndMapsTheCode) {
  Error e = Error::from_errno("mmap 4096 bytes", ENOMEM);
  EXPECT_EQ(e.code(), ErrorCode::kOutOfMemory);
  EXPECT_NE(e.message().find("mmap 4096 bytes: "), std::string::npos);
  EXPECT_NE(e.message().find("errno 12"), std::string::npos);
  EXPECT_EQ(Error::from_errno("x", EACCES).code(), ErrorCode::kPermissionDenied);
  EXPECT_EQ(Error::from_errno("x", ENOSYS).code(), ErrorCode::kUnsupported);
  EXPECT_EQ(error_code_name(ErrorCode::kUnsupported), "unsupported");
}

}  // namespace
}  // namespace jitkit
