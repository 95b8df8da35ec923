// CodeWriter: sequential filling of one code block through its zone (jitkit/code/code_writer.h).
#include "jitkit/code/code_writer.h"

namespace jitkit::code {

Status CodeWriter::append(const void* bytes, std::size_t n) {
  if (n > block_.size - offset_) {
    return Error(ErrorCode::kOutOfRange, "code writer: appending " + std::to_string(n) + " bytes at offset " +
                                             std::to_string(offset_) + " overflows the " +
                                             std::to_string(block_.size) + "-byte block");
  }
  JITKIT_TRY(zone_.write(block_.exec + offset_, bytes, n));
  offset_ += n;
  return ok();
}

Status CodeWriter::finish(Visibility visibility) {
  return zone_.make_executable(CodeBlock{block_.exec, block_.size}, visibility);
}

}  // namespace jitkit::code
