// jitkit/base/result.h — the error and result types of the whole toolkit.
//
// No exception ever crosses jitkit's API. A function that can fail returns `Result<T>` (a value
// or an `Error`) or `Status` (nothing or an `Error`). Both are [[nodiscard]]: ignoring a failure
// is a compile-time warning, and an error in CI.
//
// An `Error` carries an `ErrorCode` a program can branch on and a message a person can act on.
// The message says what went wrong and where: the operation, the object it was applied to, and
// the system's reason, e.g.
//   "code zone: reserve 64 MiB within ±2 GiB of 0x55d0c0de0000: no free range (tried 31 hints)".
// Callers add their own context on the way up with `Error::context()`, so the final message reads
// from the outermost operation inward.
//
//   jitkit::Result<int> parse(std::string_view s);
//   jitkit::Status run() {
//     JITKIT_TRY(int n, parse("42"));    // on error, returns it from run()
//     ...
//     return jitkit::ok();
//   }
#pragma once

#include <cassert>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>
#include <variant>

namespace jitkit {

// What kind of failure happened. Stable: programs may branch on it.
enum class ErrorCode {
  kInvalidArgument,   // the caller passed something the API does not accept
  kOutOfRange,        // a value does not fit its encoding or an address is out of reach
  kOutOfMemory,       // an allocation or a reservation failed
  kUnsupported,       // the platform or the kernel lacks a required feature
  kPermissionDenied,  // the system refused (SELinux execmem, noexec mounts, seccomp, ...)
  kInvalidState,      // the object is not in a state that allows the operation
  kSystem,            // a system call failed for another reason (the message has errno text)
};

// Human-readable name of an ErrorCode, e.g. "out of range".
std::string_view error_code_name(ErrorCode code) noexcept;

class [[nodiscard]] Error {
 public:
  Error(ErrorCode code, std::string message) : code_(code), message_(std::move(message)) {}

  // An error for a failed system call: appends ": <strerror(errnum)>" to `what`.
  static Error from_errno(std::string_view what, int errnum);

  ErrorCode code() const noexcept { return code_; }
  const std::string& message() const noexcept { return message_; }

  // Prefixes the message with the caller's context: "context: message".
  Error&& context(std::string_view outer) &&;

 private:
  ErrorCode code_;
  std::string message_;
};

// Either a value of type T or an error of type E. E is jitkit::Error throughout the toolkit; a
// layer with richer errors uses its own (the SOM embedding API: jitkit::som::Error, which adds a
// SOM stack trace).
template <typename T, typename E = Error>
class [[nodiscard]] Result {
  static_assert(!std::is_same_v<T, E>, "a Result of its own error type is meaningless");

 public:
  Result(T value) : state_(std::in_place_index<0>, std::move(value)) {}  // NOLINT: implicit by design
  Result(E error) : state_(std::in_place_index<1>, std::move(error)) {}  // NOLINT

  bool has_value() const noexcept { return state_.index() == 0; }
  explicit operator bool() const noexcept { return has_value(); }

  // Accessors assert that the result holds what is asked for.
  T& value() & { assert(has_value()); return std::get<0>(state_); }
  const T& value() const& { assert(has_value()); return std::get<0>(state_); }
  T&& value() && { assert(has_value()); return std::get<0>(std::move(state_)); }
  T& operator*() & { return value(); }
  const T& operator*() const& { return value(); }
  T* operator->() { return &value(); }
  const T* operator->() const { return &value(); }

  const E& error() const& { assert(!has_value()); return std::get<1>(state_); }
  E&& error() && { assert(!has_value()); return std::get<1>(std::move(state_)); }

 private:
  std::variant<T, E> state_;
};

// Success or an error.
template <typename E>
class [[nodiscard]] Result<void, E> {
 public:
  Result() = default;
  Result(E error) : error_(std::in_place_index<1>, std::move(error)) {}  // NOLINT: implicit by design

  bool has_value() const noexcept { return error_.index() == 0; }
  explicit operator bool() const noexcept { return has_value(); }
  const E& error() const& { assert(!has_value()); return std::get<1>(error_); }
  E&& error() && { assert(!has_value()); return std::get<1>(std::move(error_)); }

 private:
  std::variant<std::monostate, E> error_;
};

using Status = Result<void>;

// The successful Status.
inline Status ok() { return Status(); }

}  // namespace jitkit

#define JITKIT_CONCAT_INNER_(a, b) a##b
#define JITKIT_CONCAT_(a, b) JITKIT_CONCAT_INNER_(a, b)

// JITKIT_TRY(expr): if the Status/Result `expr` failed, return its Error from the caller.
// JITKIT_TRY(decl, expr): also binds the value, e.g. JITKIT_TRY(auto zone, CodeZone::create()).
#define JITKIT_TRY_1_(expr)                                          \
  do {                                                               \
    auto&& jitkit_try_result_ = (expr);                              \
    if (!jitkit_try_result_) return std::move(jitkit_try_result_).error(); \
  } while (0)
#define JITKIT_TRY_2_(decl, expr) JITKIT_TRY_2_IMPL_(decl, expr, JITKIT_CONCAT_(jitkit_try_, __LINE__))
#define JITKIT_TRY_2_IMPL_(decl, expr, tmp)                   \
  auto tmp = (expr);                                          \
  if (!tmp) return std::move(tmp).error();                    \
  decl = std::move(tmp).value()
#define JITKIT_TRY_PICK_(_1, _2, name, ...) name
#define JITKIT_TRY(...) JITKIT_TRY_PICK_(__VA_ARGS__, JITKIT_TRY_2_, JITKIT_TRY_1_, unused)(__VA_ARGS__)
