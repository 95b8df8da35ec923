// jitkit/code/code_writer.h — the one way bytes get into code memory.
//
// Every write to code goes through a CodeZone: CodeZone::write() copies through the write path
// of the zone's mode (the read-write view when dual-mapped; temporarily-writable pages, for code
// that does not execute yet, when toggled), CodeZone::writable() gives the writable alias of a
// live code address for one aligned atomic store (the patcher's path), and
// CodeZone::make_executable() finishes a write (instruction-cache maintenance plus, for
// Visibility::kOtherThreads, a cross-core serialization; see sync.h).
//
// CodeWriter is a small convenience over those calls: it fills one freshly allocated block
// front to back and finishes it.
//
//   CodeWriter w(*zone, block);
//   JITKIT_TRY(w.append(prologue, sizeof(prologue)));
//   JITKIT_TRY(w.append(body, body_size));
//   JITKIT_TRY(w.finish(Visibility::kOtherThreads));
#pragma once

#include <cstddef>
#include <cstdint>

#include "jitkit/base/result.h"
#include "jitkit/code/code_zone.h"
#include "jitkit/code/sync.h"

namespace jitkit::code {

class CodeWriter {
 public:
  CodeWriter(CodeZone& zone, CodeBlock block) noexcept : zone_(zone), block_(block) {}

  // Appends `n` bytes at the current offset. Fails with kOutOfRange when the block is full
  // (nothing is written then).
  [[nodiscard]] Status append(const void* bytes, std::size_t n);
  // Bytes written so far, and the executable address of the next byte.
  std::size_t offset() const noexcept { return offset_; }
  std::uint8_t* cursor() const noexcept { return block_.exec + offset_; }
  const CodeBlock& block() const noexcept { return block_; }
  // make_executable() on the written prefix of the block.
  [[nodiscard]] Status finish(Visibility visibility);

 private:
  CodeZone& zone_;
  CodeBlock block_;
  std::size_t offset_ = 0;
};

}  // namespace jitkit::code
