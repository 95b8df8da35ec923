// Error construction and formatting for jitkit/base/result.h.
#include "jitkit/base/result.h"

#include <cstring>

namespace jitkit {

std::string_view error_code_name(ErrorCode code) noexcept {
  switch (code) {
    case ErrorCode::kInvalidArgument: return "invalid argument";
    case ErrorCode::kOutOfRange: return "out of range";
    case ErrorCode::kOutOfMemory: return "out of memory";
    case ErrorCode::kUnsupported: return "unsupported";
    case ErrorCode::kPermissionDenied: return "permission denied";
    case ErrorCode::kInvalidState: return "invalid state";
    case ErrorCode::kSystem: return "system error";
  }
  return "unknown error";
}

Error Error::from_errno(std::string_view what, int errnum) {
  ErrorCode code = ErrorCode::kSystem;
  switch (errnum) {
    case ENOMEM: code = ErrorCode::kOutOfMemory; break;
    case EPERM:
    case EACCES: code = ErrorCode::kPermissionDenied; break;
    case ENOSYS:
    case EOPNOTSUPP: code = ErrorCode::kUnsupported; break;
    case EINVAL: code = ErrorCode::kInvalidArgument; break;
    default: break;
  }
  std::string message(what);
  message += ": ";
  message += std::strerror(errnum);
  message += " (errno ";
  message += std::to_string(errnum);
  message += ")";
  return Error(code, std::move(message));
}

Error&& Error::context(std::string_view outer) && {
  std::string joined(outer);
  joined += ": ";
  joined += message_;
  message_ = std::move(joined);
  return std::move(*this);
}

}  // namespace jitkit
