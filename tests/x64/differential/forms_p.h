// The instruction families of the differential encoding test. Each family enumerates every
// operand form of some Assembler methods over the operand space that matters to the encoding
// (registers 0..15 in every role, ah..bh where legal, base/index/scale/displacement boundaries,
// no base, RIP-relative labels, immediate-size boundaries), adds the instances to batches, and
// records which illegal requests the Assembler must refuse with a sticky error.
#pragma once

#include <cstddef>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "x64/differential/instance_p.h"

namespace jitkit::x64::test_util {

// Requests the Assembler must refuse (sticky error, and encode() fails).
class Refusals {
 public:
  // Runs `emit` on a fresh assembler state and records a failure if it is accepted.
  void expect(const std::string& what, const std::function<void(Assembler&)>& emit);
  // Records a failure unless encoding (at `base`) fails: for requests only the final code address
  // makes impossible (a far host address without a scratch register).
  void expect_encode_failure(const std::string& what, std::uint64_t base,
                             const std::function<void(Assembler&)>& emit);
  std::size_t checked() const { return checked_; }
  const std::vector<std::string>& accepted() const { return accepted_; }

 private:
  Assembler a_{4096};
  std::size_t checked_ = 0;
  std::vector<std::string> accepted_;
};

// The batches and refusals of one family.
class Suite {
 public:
  explicit Suite(std::string family) : family_(std::move(family)) {}
  // A new batch; its first instance binds `back_label()` and `finish` binds `fwd_label()` at
  // its end, so that RIP-relative operands can point backward and forward.
  Batch& batch(const std::string& name, bool has_relaxable_jumps = false);
  Refusals& refusals() { return refusals_; }
  // Distinct label names across the suite.
  std::string fresh_label_name();

  struct Outcome {
    std::size_t compared = 0;
    std::size_t refusals_checked = 0;
    std::vector<Mismatch> mismatches;
  };
  Outcome run();

  // Labels of the current (most recent) batch.
  Label back_label() const { return back_; }
  Label fwd_label() const { return fwd_; }
  const std::string& back_name() const { return back_name_; }
  const std::string& fwd_name() const { return fwd_name_; }

 private:
  void finish_current();
  std::string family_;
  std::vector<std::unique_ptr<Batch>> batches_;
  Refusals refusals_;
  Label back_, fwd_;
  std::string back_name_, fwd_name_;
  std::size_t label_counter_ = 0;
  bool finished_ = false;  // the current batch's forward label is bound
};

// Families (forms.cpp).
void mov_forms(Suite& s);
void mov_full_address_forms(Suite& s);
void rex_combination_forms(Suite& s);
void alu_forms(Suite& s);
void test_and_unary_forms(Suite& s);
void imul_and_shift_forms(Suite& s);
void bit_forms(Suite& s);
void extend_lea_xchg_forms(Suite& s);
void condition_forms(Suite& s);
void control_flow_forms(Suite& s);
void atomic_and_misc_forms(Suite& s);
void sse_forms(Suite& s);
void host_address_forms(Suite& s);
void random_interleaving_forms(Suite& s);

}  // namespace jitkit::x64::test_util
