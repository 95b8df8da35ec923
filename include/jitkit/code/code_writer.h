// jitkit/code/code_writer.h — filling a fresh code block front to back.
//
// Bytes get into code memory only through a CodeZone, never by a store to an executable
// address. The zone offers two paths, and everything in jitkit uses one of them:
//   CodeZone::write()     copies a range through the write path of the zone's mode (the
//                         read-write view when dual-mapped; the block's still-writable pages,
//                         before it is executable, when toggled). install::install() copies
//                         each encoded function in with one write().
//   CodeZone::writable()  the writable alias of a live code address (dual-mapped and RWX
//                         zones), for the patcher's single aligned atomic stores.
// Either way, CodeZone::make_executable() finishes the write: instruction-cache maintenance
// plus, for Visibility::kOtherThreads, a cross-core serialization (see sync.h).
//
// CodeWriter is a small convenience over write() and make_executable() for code produced piece
// by piece: it appends to one freshly allocated block and finishes it. It adds no other path.
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
