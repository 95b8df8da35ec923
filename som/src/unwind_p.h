// How an error leaves SOM code (docs/som-embedding.md, "Errors and unwinding").
//
// An error raised anywhere in the VM (VM::raise, VM::fatal) is recorded as the VM's
// PendingError, with the SOM stack trace at that point, and travels to the outermost call the
// embedding program made. It travels in two ways, and changes between them at every border:
//  * Through the VM's own C++ code (interpreter, primitives, class loading) as the C++
//    exception VmUnwind, which carries nothing: the error is in the VM.
//  * Through compiled code and native methods, which an exception must never cross, as the
//    unwinding protocol non-local returns already use: VM::unwind_target_ is set to
//    kUnwindToHost, a target no frame matches, and every compiled frame, native and interpreter
//    run on the way returns in turn.
// A VmCheckpoint, taken where C++ is entered from compiled code or from a native (and by the
// embedding API), turns the exception back into the protocol, or into the caller's Error.
#pragma once

#include <cstdint>
#include <string>

#include "jitkit/som/vm.h"

namespace som {

struct Frame;
class VM;

// The error on its way out.
struct PendingError {
  jitkit::som::ErrorKind kind = jitkit::som::ErrorKind::kRuntime;
  std::string message;
  std::string stack_trace;
  int exit_status = 1;
};

// Thrown by VM::raise; caught only by VmCheckpoint users.
struct VmUnwind {};

// VM::unwind_target_ for an error: never a frame, so nothing stops it but an entry of kind
// kEntryFromHost, where the interpreter turns it back into a VmUnwind.
inline Frame* const kUnwindToHost = reinterpret_cast<Frame*>(uintptr_t{8});

// What the VM's registers were at a border (frame, pc, stack top, C++ roots), so that an error
// caught there can drop everything above it.
class VmCheckpoint {
 public:
  explicit VmCheckpoint(VM& vm);
  // After catching VmUnwind: every activation above the checkpoint is abandoned (its context
  // marked dead, so that a block from it can never return into the reused frame stack) and
  // the registers are as they were.
  void abandon();

 private:
  VM& vm_;
  Frame* fp_;
  const uint8_t* pc_;
  uint64_t* sp_;
  size_t roots_;
};

}  // namespace som
