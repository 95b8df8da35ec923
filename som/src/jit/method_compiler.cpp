// Bytecode → x86-64 for one method or block (docs/som-jit.md, "Code").
//
// A baseline translation: one pass over the bytecode, each instruction becomes a template.
// The operand stack lives in the frame: the depth at every pc is static (docs/som-bytecode.md),
// so stack entry k is the frame slot locals[num_locals + k] at a constant offset from r12.
// Pushes are deferred: the compiler remembers what an entry holds (a constant, an argument,
// local or self, a VM word, or the value in kOperandReg) and the instruction that consumes it
// reads it from there, so `n - 1` is one `sub` with an immediate and `x := x + 1` never
// touches the stack slots. Every entry is written to its slot before anything that may collect,
// report an error or run SOM code, and at every jump target ("Deferred operands" in
// docs/som-jit.md), so the frame is exactly the interpreter's whenever anyone looks at it.
// Fast paths are inline; slow paths are emitted out of line after the body and call the runtime
// (runtime.cpp) or send through the site's jitkit::ic inline cache.
#include <chrono>
#include <functional>

#include "bytecode_p.h"
#include "jit/jit_impl_p.h"
#include "jitkit/debug/installed_code.h"

namespace som {

using namespace jitkit;
using namespace jitkit::x64;

namespace {

inline uint16_t u16at(const uint8_t* p) { return static_cast<uint16_t>(p[0] | (p[1] << 8)); }

// The register that holds a deferred operand stack entry computed by compiled code (an
// arithmetic result, a send's reply). At most one entry is in it at a time.
inline constexpr Gp64 kOperandReg = rdx;

// What a stack entry holds while its push is deferred.
struct Operand {
  enum class Kind : uint8_t {
    kInSlot,      // in its frame slot (the state of every entry at a jump target)
    kImmediate,   // `value`: a small integer or a permanent object (a literal)
    kFrameWord,   // the word at kFrameReg + offset: an argument, a local or self
    kVmWord,      // the word at kVmReg + offset: the nil, true or false binding
    kInRegister,  // kOperandReg
  };
  Kind kind = Kind::kInSlot;
  int32_t offset = 0;
  Value value = 0;
  // A small integer whose tagged form is a sign-extended 32-bit immediate.
  bool is_small_immediate() const {
    return kind == Kind::kImmediate && is_int(value) && static_cast<int64_t>(value) == static_cast<int32_t>(value);
  }
};

class MethodCompiler {
 public:
  MethodCompiler(const VM& vm, const Jit::Impl& impl, const CompileRequest& request)
      : vm_(vm),
        impl_(impl),
        request_(request),
        m_(request.method),
        off_(impl.vm_offsets),
        code_(request.method->code.data()) {}

  bool compile(CompiledMethod& out, std::string& error);

 private:
  // Frame slots.
  int32_t local_offset(int i) const { return kFrameLocals + 8 * i; }
  int32_t arg_offset(int i) const { return -8 * (m_->num_args + 1) + 8 * i; }
  Mem local(int i) const { return qword_ptr(kFrameReg, local_offset(i)); }
  Mem arg(int i) const { return qword_ptr(kFrameReg, arg_offset(i)); }
  Mem stack(int k) const { return local(m_->num_locals + k); }
  Mem vm_field(int32_t offset, int bytes = 8) const {
    return bytes == 8 ? qword_ptr(kVmReg, offset) : byte_ptr(kVmReg, offset);
  }
  uintptr_t bytecode_address(uint32_t pc) const { return reinterpret_cast<uintptr_t>(code_ + pc); }

  bool compute_depths(std::string& error);
  void emit_prologue();
  void emit_instruction(uint32_t pc, int d);
  // VM::fp_/sp_/pc_ describe this frame with `depth` operands, resuming at `resume_pc`: before a
  // call that may collect, report an error or run SOM code.
  void sync(int depth, uint32_t resume_pc);
  void call_runtime(const void* fn) { a_.call(abs(fn)); }
  void check_unwind() {
    a_.cmp(vm_field(off_.unwind_target), 0);
    a_.jne(unwind_);
  }
  void load_context(Gp64 dst, int depth);

  // Deferred operands: operands_ has one entry per stack entry of the instruction being compiled.
  void push_operand(Operand o) { operands_.push_back(o); }
  static Operand frame_word(int32_t offset) { return {Operand::Kind::kFrameWord, offset, 0}; }
  static Operand in_register() { return {Operand::Kind::kInRegister, 0, 0}; }
  // Loads entry `index` (described by `o`) into `dst`.
  void load_operand(const Operand& o, int index, Gp64 dst);
  // Writes entry `index` to its frame slot (rax is the scratch register).
  void store_operand(int index);
  // The code that writes entry `index`, described by `o`, to `dst` (through `scratch` where it
  // needs a register), leaving operands_ alone.
  void write_operand(const Operand& o, int index, const Mem& dst, Gp64 scratch = rax);
  // The same to the entry's own slot (nothing for an entry already there).
  void write_operand_slot(const Operand& o, int index);
  // Entries below `count` that read the frame word at `offset` take it to their slots: before
  // a store into that argument or local.
  void store_readers_of(int32_t offset, int count);
  // A slow path's call with deferred entries on the fast path: it writes `entries` (operands_
  // as the fast path left them) to their slots before the call, and afterwards reloads the
  // register entry from its slot (the collector may have moved what it points to). The other
  // kinds stay valid across the call: frame words are updated in place, immediates are
  // permanent.
  void write_operand_slots(const std::vector<Operand>& entries);
  void reload_register_operand(const std::vector<Operand>& entries);
  // Gives the entry in kOperandReg, if any, its slot: before an instruction that puts a new
  // value there.
  void spill_register_operand();
  // Writes entries 0 .. count-1 to their frame slots.
  void flush_operands(int count);
  void flush_operands() { flush_operands(static_cast<int>(operands_.size())); }
  // Every entry in its slot, `depth` of them: after an instruction that flushed, or at a label.
  void reset_operands(int depth) { operands_.assign(static_cast<size_t>(depth), Operand{}); }
  // The instructions that read their operands where they are (the others flush first).
  bool emit_deferred(uint32_t pc, int d);
  void emit_store_variable(int32_t offset, int d);
  // PUSH/STORE_LOCAL_LAZY and _ARG_LAZY: the frame slot until the activation has a Context,
  // the context slot afterwards.
  void emit_lazy_variable(uint32_t pc, int d);

  // A real send through the site's inline cache; receiver at stack(base). The reply goes to
  // stack(base), or stays in kOperandReg when `reply_in_register`.
  void emit_send(const SendSite& site, int base, uint32_t resume_pc, bool reply_in_register = false);
  void emit_field_access(uint32_t pc, int d, bool store);
  // `at:` (or `at:put:`) at a send site: inline for an exact Array receiver, a small-integer
  // index in bounds (and no method table) while VM::jit_inline_array_access_ is set; the real
  // send otherwise.
  void emit_array_access(const SendSite& site, uint32_t next, int d, bool put);
  void emit_arith(uint32_t pc, int d);
  // A new Double holding xmm0 into rax: Heap::alloc inlined, the VM's new_double when the chunk
  // is full. Clobbers rcx, rdx and the flags.
  void emit_box_double();
  void emit_conditional_jump(uint32_t pc, int d);
  void emit_fallback(const SendSite& site, int d);
  // The runtime function `fn` for the inlined control structure at `site` (receiver on top of
  // `d` operands): fallback_send, nil_check or for_check. A passing non-local return leaves.
  void call_control_runtime(const void* fn, const SendSite& site, int d);
  // The slow path of NIL_CHECK / FOR_CHECK: `fn` answers 1 (the inlined code runs: `done`) or 0
  // (it made the real send; resume at site.cont_pc).
  void emit_check_slow_path(const void* fn, const SendSite& site, int d, Label slow, Label done);
  void cold(std::function<void()> fn) { cold_.push_back(std::move(fn)); }

  const VM& vm_;
  const Jit::Impl& impl_;
  const CompileRequest& request_;
  const Method* m_;
  const VmOffsets& off_;
  const uint8_t* code_;
  Assembler a_{8192};
  std::vector<int> depth_;  // per pc: stack depth before the instruction, -1 unreachable
  std::vector<bool> jump_target_;
  std::vector<Label> pc_label_;
  std::vector<uint32_t> loop_heads_;
  std::vector<std::function<void()>> cold_;
  std::vector<std::pair<ic::SendSite, uint32_t>> sends_;
  std::vector<Operand> operands_;
  Label start_, ret_, unwind_, frame_gone_;
  std::string send_error_;
};

bool MethodCompiler::compute_depths(std::string& error) {
  const auto& code = m_->code;
  const auto size = static_cast<uint32_t>(code.size());
  depth_.assign(size + 1, -1);
  jump_target_.assign(size + 1, false);
  auto reach = [&](uint32_t pc, int d) -> bool {
    if (pc > size) return false;
    if (depth_[pc] >= 0 && depth_[pc] != d) return false;
    depth_[pc] = d;
    return true;
  };
  auto target = [&](uint32_t pc, int d) -> bool {
    jump_target_[pc] = true;
    return reach(pc, d);
  };
  depth_[0] = 0;
  for (uint32_t pc = 0; pc < size;) {
    const uint8_t op = code[pc];
    if (op >= kOpCount) {
      error = "bad opcode " + std::to_string(op) + " at pc " + std::to_string(pc);
      return false;
    }
    const uint32_t next = pc + static_cast<uint32_t>(op_length(op));
    const int d = depth_[pc];
    if (d < 0) {  // not reachable by fall-through or a jump seen so far
      pc = next;
      continue;
    }
    bool ok = true;
    const uint8_t* p = &code[pc];
    auto site_at = [&](int at) -> const SendSite& { return m_->sites[u16at(p + at)]; };
    switch (op) {
      case kPushLocal: case kPushArg: case kPushField: case kPushCtx: case kPushSelf: case kPushNil:
      case kPushTrue: case kPushFalse: case kPushLiteral: case kPushGlobal: case kPushBlock: case kDup:
      case kPushLocalLazy: case kPushArgLazy:
        ok = reach(next, d + 1);
        break;
      case kStoreLocal: case kStoreArg: case kStoreField: case kStoreCtx: case kStoreLocalLazy:
      case kStoreArgLazy: case kForStep:
        ok = reach(next, d);
        break;
      case kPop:
        ok = reach(next, d - 1);
        break;
      case kSend: case kSuperSend: case kSendAdd: case kSendSub: case kSendMul: case kSendLt: case kSendGt:
      case kSendLe: case kSendGe: case kSendEq: case kSendDiv: case kSendMod: case kSendBitand:
        ok = reach(next, d - static_cast<int>(site_at(1).argc));
        break;
      case kReturnLocal: case kReturnSelf: case kReturnNonlocal:
        break;  // no successor
      case kJump: case kJumpBack:
        ok = target(u16at(p + 1), d);
        if (op == kJumpBack) loop_heads_.push_back(u16at(p + 1));
        break;
      case kJumpIfTrue: case kJumpIfFalse:
        ok = target(u16at(p + 1), d - 1) && reach(next, d - 1) && target(site_at(3).cont_pc, d);
        break;
      case kJumpIfNil: case kJumpIfNotNil:
        ok = target(u16at(p + 1), d - 1) && reach(next, d - 1);
        break;
      case kNilCheck: case kForCheck:
        ok = reach(next, d) && target(site_at(1).cont_pc, d);
        break;
      case kForTest: case kForTestDown:
        ok = target(u16at(p + 3), d) && reach(next, d);
        break;
      default:
        ok = false;
    }
    if (!ok) {
      error = "inconsistent stack depth after " + std::string(op_name(op)) + " at pc " + std::to_string(pc);
      return false;
    }
    pc = next;
  }
  return true;
}

void MethodCompiler::sync(int depth, uint32_t resume_pc) {
  a_.mov(vm_field(off_.fp), kFrameReg);
  a_.lea(rax, local(m_->num_locals + depth - 1));
  a_.mov(vm_field(off_.sp), rax);
  a_.mov(rax, static_cast<int64_t>(bytecode_address(resume_pc)));
  a_.mov(vm_field(off_.pc), rax);
}

void MethodCompiler::load_context(Gp64 dst, int depth) {
  if (depth == 0) {
    a_.mov(dst, qword_ptr(kFrameReg, kFrameContext));
    return;
  }
  a_.mov(dst, qword_ptr(kFrameReg, kFrameOuterCtx));
  for (int i = 1; i < depth; i++) a_.mov(dst, qword_ptr(dst, kCtxOuter));
}

void MethodCompiler::load_operand(const Operand& o, int index, Gp64 dst) {
  switch (o.kind) {
    case Operand::Kind::kInSlot:
      a_.mov(dst, stack(index));
      break;
    case Operand::Kind::kImmediate:
      a_.mov(dst, static_cast<int64_t>(o.value));
      break;
    case Operand::Kind::kFrameWord:
      a_.mov(dst, qword_ptr(kFrameReg, o.offset));
      break;
    case Operand::Kind::kVmWord:
      a_.mov(dst, vm_field(o.offset));
      break;
    case Operand::Kind::kInRegister:
      if (dst.id != kOperandReg.id) a_.mov(dst, kOperandReg);
      break;
  }
}

void MethodCompiler::store_operand(int index) {
  Operand& o = operands_[static_cast<size_t>(index)];
  write_operand_slot(o, index);
  o = Operand{};
}

void MethodCompiler::write_operand(const Operand& o, int index, const Mem& dst, Gp64 scratch) {
  if (o.kind == Operand::Kind::kInRegister) {
    a_.mov(dst, kOperandReg);
  } else if (o.kind == Operand::Kind::kImmediate && static_cast<int64_t>(o.value) == static_cast<int32_t>(o.value)) {
    a_.mov(dst, static_cast<int64_t>(o.value));  // sign-extended
  } else {
    load_operand(o, index, scratch);
    a_.mov(dst, scratch);
  }
}

void MethodCompiler::write_operand_slot(const Operand& o, int index) {
  if (o.kind != Operand::Kind::kInSlot) write_operand(o, index, stack(index));
}

void MethodCompiler::store_readers_of(int32_t offset, int count) {
  for (int i = 0; i < count; i++) {
    const Operand& o = operands_[static_cast<size_t>(i)];
    if (o.kind == Operand::Kind::kFrameWord && o.offset == offset) store_operand(i);
  }
}

void MethodCompiler::write_operand_slots(const std::vector<Operand>& entries) {
  for (size_t i = 0; i < entries.size(); i++) write_operand_slot(entries[i], static_cast<int>(i));
}

void MethodCompiler::reload_register_operand(const std::vector<Operand>& entries) {
  for (size_t i = 0; i < entries.size(); i++)
    if (entries[i].kind == Operand::Kind::kInRegister) a_.mov(kOperandReg, stack(static_cast<int>(i)));
}

void MethodCompiler::spill_register_operand() {
  for (size_t i = 0; i < operands_.size(); i++)
    if (operands_[i].kind == Operand::Kind::kInRegister) store_operand(static_cast<int>(i));
}

void MethodCompiler::flush_operands(int count) {
  for (int i = 0; i < count; i++) store_operand(i);
}

void MethodCompiler::emit_prologue() {
  const int n = m_->num_args;
  Label overflow = a_.new_label();
  a_.push(rbp);
  a_.mov(rbp, rsp);
  a_.push(kFrameReg);  // the caller's frame; also keeps rsp 16-byte aligned for calls
  a_.sub(rsp, 8);
  // Room for the frame on the frame stack (as the interpreter's push_frame), and native stack.
  a_.lea(rax, qword_ptr(rsi, 8 * (n + 1 + static_cast<int>(kFrameWords) + m_->num_locals + m_->max_stack + 16)));
  a_.cmp(rax, vm_field(off_.stack_limit));
  a_.jae(overflow);
  a_.cmp(rsp, vm_field(off_.native_stack_limit));
  a_.jb(overflow);
  cold([this, overflow] {
    a_.bind(overflow);
    a_.mov(vm_field(off_.fp), kFrameReg);  // reported in the caller, as the interpreter does
    a_.mov(vm_field(off_.pc), kSenderPcReg);
    a_.mov(rdi, kVmReg);
    call_runtime(reinterpret_cast<const void*>(&jit_runtime::stack_overflow));
    // The error unwinds (unwind_p.h): leave before this activation has a frame; the caller
    // sees unwind_target_.
    a_.xor_(eax, eax);
    a_.mov(rsp, rbp);
    a_.pop(rbp);
    a_.ret();
  });
  // The frame header right above the arguments (object_p.h, Frame).
  a_.lea(rax, qword_ptr(rsi, 8 * (n + 1)));
  a_.mov(qword_ptr(rax, kFrameCaller), kFrameReg);
  a_.mov(qword_ptr(rax, kFrameRetPc), kSenderPcReg);
  a_.mov(rcx, static_cast<int64_t>(reinterpret_cast<uintptr_t>(m_)));
  a_.mov(qword_ptr(rax, kFrameMethod), rcx);
  a_.mov(qword_ptr(rax, kFrameArgs), rsi);
  if (m_->is_block) {
    a_.mov(rcx, qword_ptr(rdi, kBlockSelf));
    a_.mov(qword_ptr(rax, kFrameSelf), rcx);
    a_.mov(rcx, qword_ptr(rdi, kBlockContext));
    a_.mov(qword_ptr(rax, kFrameOuterCtx), rcx);
  } else {
    a_.mov(qword_ptr(rax, kFrameSelf), rdi);
    a_.mov(qword_ptr(rax, kFrameOuterCtx), 0);
  }
  a_.mov(qword_ptr(rax, kFrameContext), 0);
  a_.mov(qword_ptr(rax, kFrameIsEntry), 0);
  a_.mov(kFrameReg, rax);
  if (m_->num_locals > 0) {
    a_.mov(rcx, vm_field(off_.nil_value));
    for (int i = 0; i < m_->num_locals; i++) a_.mov(local(i), rcx);
  }
  if (m_->has_context) {
    a_.mov(rdi, kVmReg);
    a_.mov(rsi, kFrameReg);
    call_runtime(reinterpret_cast<const void*>(&jit_runtime::enter_context));
  }
  // Safepoint at entry and at `restart`: every value is in a frame slot.
  a_.bind(start_);
  Label gc = a_.new_label(), body = a_.new_label();
  a_.cmp(vm_field(off_.need_gc, 1), 0);
  a_.jne(gc);
  a_.bind(body);
  cold([this, gc, body] {
    a_.bind(gc);
    sync(0, 0);
    a_.mov(rdi, kVmReg);
    call_runtime(reinterpret_cast<const void*>(&jit_runtime::collect_garbage));
    a_.jmp(body);
  });
}

void MethodCompiler::emit_send(const SendSite& site, int base, uint32_t resume_pc, bool reply_in_register) {
  // VM::fp_ and pc_ are left alone: the entry stubs that leave compiled code store them.
  a_.mov(kSenderPcReg, static_cast<int64_t>(bytecode_address(resume_pc)));
  a_.lea(rsi, stack(base));
  a_.mov(rdi, qword_ptr(rsi, 0));
  auto send = impl_.engine->emit_send(a_, request_.site_selectors[static_cast<size_t>(&site - m_->sites.data())]);
  if (!send) {
    send_error_ = send.error().message();
    return;
  }
  sends_.push_back({*send, resume_pc});
  check_unwind();
  if (site.selector == impl_.restart_selector && site.argc == 0) {
    // Block>>restart restarts this activation (its entry stub answers 0, never a value).
    a_.test(rax, rax);
    a_.jz(start_);
  }
  if (reply_in_register)
    a_.mov(kOperandReg, rax);
  else
    a_.mov(stack(base), rax);
}

void MethodCompiler::emit_field_access(uint32_t pc, int d, bool store) {
  const uint32_t index = code_[pc + 1];
  const uint32_t next = pc + 2;
  const Mem field = qword_ptr(rcx, kObjSlots + 8 * static_cast<int32_t>(index));
  Label slow = a_.new_label(), done = a_.new_label();
  if (!store) spill_register_operand();  // the field's value goes to kOperandReg
  const std::vector<Operand> pending = operands_;
  a_.mov(rcx, qword_ptr(kFrameReg, kFrameSelf));
  a_.test(cl, 1);
  a_.jnz(slow);
  a_.cmp(byte_ptr(rcx, kObjKind), kInstance);
  a_.jne(slow);
  a_.cmp(dword_ptr(rcx, kObjLength), static_cast<int64_t>(index));
  a_.jbe(slow);
  if (store) {  // STORE_FIELD leaves the value on the stack
    write_operand(operands_[static_cast<size_t>(d - 1)], d - 1, field);
  } else {
    a_.mov(kOperandReg, field);
    push_operand(in_register());
  }
  a_.bind(done);
  cold([=, this] {
    // Class-side fields, and the error for a receiver without the field.
    a_.bind(slow);
    write_operand_slots(pending);
    sync(d, next);
    a_.mov(rdi, kVmReg);
    a_.mov(rsi, kFrameReg);
    a_.mov(edx, static_cast<int64_t>(index));
    if (store) {
      a_.mov(rcx, stack(d - 1));
      call_runtime(reinterpret_cast<const void*>(&jit_runtime::write_field));
      check_unwind();
      reload_register_operand(pending);
    } else {
      call_runtime(reinterpret_cast<const void*>(&jit_runtime::read_field));
      check_unwind();
      a_.mov(kOperandReg, rax);
    }
    a_.jmp(done);
  });
}

void MethodCompiler::emit_array_access(const SendSite& site, uint32_t next, int d, bool put) {
  const int base = d - (put ? 3 : 2);
  flush_operands(base);
  // receiver, index (, value): read where they are, written to their slots only for the send.
  const std::vector<Operand> args(operands_.begin() + base, operands_.end());
  operands_.resize(static_cast<size_t>(base));
  Label send = a_.new_label(), done = a_.new_label();
  load_operand(args[0], base, rdi);
  load_operand(args[1], base + 1, rax);
  a_.test(dil, 1);
  a_.jnz(send);
  a_.cmp(dword_ptr(rdi, kObjClass), static_cast<int64_t>(vm_.array_tag_));  // exactly an Array
  a_.jne(send);
  a_.cmp(vm_field(off_.inline_array_access, 1), 0);
  a_.je(send);
  if (put) {
    a_.test(byte_ptr(rdi, kObjFlags), kMethodTable);  // storing into it replaces a method
    a_.jnz(send);
  }
  emit_array_index(a_, rdi, rax, r8, r9, send);
  const Mem element = qword_ptr(rdi, r8, 8, kObjSlots);
  if (!put) {
    a_.mov(kOperandReg, element);
  } else {
    write_operand(args[2], base + 2, element, r9);
    a_.mov(kOperandReg, rdi);  // at:put: answers the receiver
  }
  a_.bind(done);
  push_operand(in_register());
  cold([=, this, &site] {
    a_.bind(send);  // rdx is as the fast path found it on every way here
    for (size_t i = 0; i < args.size(); i++) write_operand_slot(args[i], base + static_cast<int>(i));
    emit_send(site, base, next, /*reply_in_register=*/true);
    a_.jmp(done);
  });
}

void MethodCompiler::call_control_runtime(const void* fn, const SendSite& site, int d) {
  sync(d, site.cont_pc);
  a_.mov(rdi, kVmReg);
  a_.mov(rsi, kFrameReg);
  a_.mov(rdx, static_cast<int64_t>(reinterpret_cast<uintptr_t>(&site)));
  a_.lea(rcx, stack(d - 1));
  call_runtime(fn);
  check_unwind();
}

void MethodCompiler::emit_fallback(const SendSite& site, int d) {
  // Not a Boolean: the control structure's real send; its reply replaces the receiver and
  // execution resumes at site.cont_pc.
  call_control_runtime(reinterpret_cast<const void*>(&jit_runtime::fallback_send), site, d);
  a_.mov(stack(d - 1), rax);
  a_.jmp(pc_label_[site.cont_pc]);
}

void MethodCompiler::emit_check_slow_path(const void* fn, const SendSite& site, int d, Label slow, Label done) {
  cold([=, this, &site] {
    a_.bind(slow);
    call_control_runtime(fn, site, d);
    a_.test(rax, rax);
    a_.jnz(done);
    a_.jmp(pc_label_[site.cont_pc]);
  });
}

void MethodCompiler::emit_conditional_jump(uint32_t pc, int d) {
  const uint8_t op = code_[pc];
  const SendSite& site = m_->sites[u16at(code_ + pc + 3)];
  const bool on_true = op == kJumpIfTrue;
  Label not_bool = a_.new_label();
  // Both successors are jump targets: everything below the condition goes to its slot.
  flush_operands(d - 1);
  const Operand condition = operands_[static_cast<size_t>(d - 1)];
  operands_.pop_back();
  load_operand(condition, d - 1, rax);
  a_.cmp(rax, vm_field(on_true ? off_.true_value : off_.false_value));
  a_.je(pc_label_[u16at(code_ + pc + 1)]);
  a_.cmp(rax, vm_field(on_true ? off_.false_value : off_.true_value));
  a_.jne(not_bool);
  cold([=, this, &site] {
    a_.bind(not_bool);
    if (condition.kind != Operand::Kind::kInSlot) a_.mov(stack(d - 1), rax);  // the receiver
    emit_fallback(site, d);
  });
}

void MethodCompiler::emit_box_double() {
  // Heap::alloc(kDouble, double_tag_, 0) step by step, so that the interpreter and compiled code
  // allocate the same objects with the same hashes, and raise need_gc_ at the same allocation
  // (with SOM_GC_STRESS's budget of 0, at every one). Allocation never collects: the next
  // safepoint does, so nothing needs to be in a frame slot here.
  constexpr int32_t kBytes = sizeof(Object) + sizeof(double);
  static_assert(kBytes == kObjSlots + 8);
  Label full = a_.new_label(), counted = a_.new_label(), boxed = a_.new_label();
  a_.mov(rax, vm_field(off_.heap_top));
  a_.lea(rdx, qword_ptr(rax, kBytes));
  a_.cmp(rdx, vm_field(off_.heap_end));  // top + bytes > end: end - top < bytes
  a_.ja(full);
  a_.mov(vm_field(off_.heap_top), rdx);
  a_.mov(rdx, vm_field(off_.heap_allocated));
  a_.add(rdx, kBytes);
  a_.mov(vm_field(off_.heap_allocated), rdx);
  a_.cmp(rdx, vm_field(off_.heap_budget));
  a_.jbe(counted);
  a_.mov(vm_field(off_.need_gc, 1), 1);
  a_.bind(counted);
  // next_hash(): the LCG step, then (state >> kHashShift) | 1 as the header's hash word.
  a_.mov(rdx, static_cast<int64_t>(Heap::kHashMultiplier));
  a_.imul(rdx, vm_field(off_.heap_hash_state));
  a_.mov(rcx, static_cast<int64_t>(Heap::kHashIncrement));
  a_.add(rdx, rcx);
  a_.mov(vm_field(off_.heap_hash_state), rdx);
  a_.shr(rdx, Heap::kHashShift);
  a_.or_(edx, 1);
  // The header as two words: cls | hash << 32, then length, kind, flags, aux (all 0 but kind).
  static_assert(kObjClass == 0 && kObjHash == 4 && kObjLength == 8 && kObjKind > kObjLength &&
                kObjFlags > kObjKind && kObjSlots == 16);
  a_.shl(rdx, 32);
  a_.mov(ecx, static_cast<int64_t>(vm_.double_tag_));
  a_.or_(rdx, rcx);
  a_.mov(qword_ptr(rax, kObjClass), rdx);
  a_.mov(rcx, static_cast<int64_t>(uint64_t{kDouble} << (8 * (kObjKind - kObjLength))));
  a_.mov(qword_ptr(rax, kObjLength), rcx);
  a_.movsd(qword_ptr(rax, kObjSlots), xmm0);
  a_.bind(boxed);
  cold([this, full, boxed] {
    // The chunk is full: the VM takes a new one (xmm0 still holds the value).
    a_.bind(full);
    a_.mov(rdi, kVmReg);
    call_runtime(reinterpret_cast<const void*>(&jit_runtime::box_double));
    a_.jmp(boxed);
  });
}

void MethodCompiler::emit_arith(uint32_t pc, int d) {
  const uint8_t op = code_[pc];
  const SendSite& site = m_->sites[u16at(code_ + pc + 1)];
  const uint32_t next = pc + 3;
  const bool is_compare = op == kSendLt || op == kSendGt || op == kSendLe || op == kSendGe || op == kSendEq;
  const bool has_double = op != kSendDiv && op != kSendMod && op != kSendBitand;
  // A comparison followed by JUMP_IF_TRUE/FALSE (not itself a jump target) branches directly.
  const uint8_t next_op = next < m_->code.size() ? code_[next] : 0;
  const bool fused = is_compare && next < m_->code.size() && !jump_target_[next] &&
                     (next_op == kJumpIfTrue || next_op == kJumpIfFalse);
  Label slow = a_.new_label(), not_int = a_.new_label(), done = a_.new_label();
  Label is_true = a_.new_label(), is_false = a_.new_label();
  if (fused) {
    const uint32_t after = next + 5;
    Label taken = pc_label_[u16at(code_ + next + 1)];
    // JUMP_IF_TRUE jumps when true; JUMP_IF_FALSE when false.
    is_true = next_op == kJumpIfTrue ? taken : pc_label_[after];
    is_false = next_op == kJumpIfTrue ? pc_label_[after] : taken;
    // Reached by jumps from here: the main loop writes every entry to its slot before them.
    jump_target_[next] = true;
    jump_target_[after] = true;
  }
  // The operands are read where they are; everything below them goes to its slot, so that the
  // slow path's send and the jumps of a fused comparison see the interpreter's frame. Division
  // clobbers its operands' registers before it can fail, so it reads them from their slots.
  const bool divides = op == kSendDiv || op == kSendMod;
  flush_operands(divides ? d : d - 2);
  const Operand left = operands_[static_cast<size_t>(d - 2)];
  const Operand right = operands_[static_cast<size_t>(d - 1)];
  operands_.resize(static_cast<size_t>(d - 2));
  // A small-integer constant argument (`n - 1`, `i < 10`) needs no tag check and no register.
  const bool right_imm = right.is_small_immediate() && !divides;
  const auto imm = static_cast<int64_t>(right.value);  // tagged: 2b + 1
  load_operand(left, d - 2, rax);
  if (right_imm) {
    a_.test(al, 1);
  } else {
    load_operand(right, d - 1, rcx);
    a_.mov(edx, eax);
    a_.and_(edx, ecx);
    a_.test(edx, 1);
  }
  a_.jz(not_int);
  switch (op) {
    case kSendAdd:  // tagged: a + (b - 1)
      if (right_imm) {
        a_.mov(rdx, rax);
        a_.add(rdx, imm - 1);
      } else {
        a_.lea(rdx, qword_ptr(rcx, -1));
        a_.add(rdx, rax);
      }
      a_.jo(slow);
      break;
    case kSendSub:  // tagged: (a - b) + 1, which is a - (b - 1)
      a_.mov(rdx, rax);
      if (right_imm) {
        a_.sub(rdx, imm - 1);
        a_.jo(slow);
      } else {
        a_.sub(rdx, rcx);
        a_.jo(slow);
        a_.or_(rdx, 1);
      }
      break;
    case kSendMul:  // tagged: (a - 1) * (b >> 1) + 1; overflow of the 64-bit product = of 63 bits
      a_.lea(rdx, qword_ptr(rax, -1));
      if (right_imm) {
        a_.imul(rdx, rdx, imm >> 1);
      } else {
        a_.mov(r8, rcx);
        a_.sar(r8, 1);
        a_.imul(rdx, r8);
      }
      a_.jo(slow);
      a_.or_(rdx, 1);
      break;
    case kSendDiv:
    case kSendMod:
      a_.mov(r8, rcx);
      a_.sar(r8, 1);
      a_.jz(slow);  // division by zero: the primitive reports it
      a_.sar(rax, 1);
      a_.cqo();
      a_.idiv(r8);
      if (op == kSendDiv) {
        a_.add(rax, rax);  // the only quotient that does not fit: kSmallMin / -1
        a_.jo(slow);
        a_.or_(rax, 1);
      } else {
        Label sign_ok = a_.new_label();
        a_.mov(rax, rdx);  // remainder, with the sign of the divisor (floored modulo)
        a_.test(rax, rax);
        a_.jz(sign_ok);
        a_.mov(r9, rax);
        a_.xor_(r9, r8);
        a_.jns(sign_ok);
        a_.add(rax, r8);
        a_.bind(sign_ok);
        a_.add(rax, rax);
        a_.or_(rax, 1);
      }
      a_.mov(rdx, rax);
      break;
    case kSendBitand:
      a_.mov(rdx, rax);
      if (right_imm)
        a_.and_(rdx, imm);
      else
        a_.and_(rdx, rcx);
      break;
    default: {  // comparisons of tagged integers: the tag preserves the order
      if (right_imm)
        a_.cmp(rax, imm);
      else
        a_.cmp(rax, rcx);
      const Cond c = op == kSendLt ? Cond::kL : op == kSendGt ? Cond::kG : op == kSendLe ? Cond::kLE
                                                          : op == kSendGe ? Cond::kGE : Cond::kE;
      if (fused) {
        a_.jcc(c, is_true);
        a_.jmp(is_false);
      } else {
        a_.mov(rdx, vm_field(off_.false_value));  // mov leaves the flags alone
        a_.jcc(negate(c), done);
        a_.mov(rdx, vm_field(off_.true_value));
      }
    }
  }
  a_.bind(done);
  if (!fused) push_operand(in_register());
  cold([=, this, &site]() mutable {
    if (is_compare && !fused) {  // the Double comparisons' answers
      a_.bind(is_true);
      a_.mov(rdx, vm_field(off_.true_value));
      a_.jmp(done);
      a_.bind(is_false);
      a_.mov(rdx, vm_field(off_.false_value));
      a_.jmp(done);
    }
    a_.bind(not_int);
    if (right_imm) a_.mov(rcx, imm);
    if (has_double) {
      // Double receiver, Double or Integer argument: as the interpreter's fast path. Every way
      // to `slow` leaves rax and rcx as they were.
      Label arg_int = a_.new_label(), have_arg = a_.new_label();
      a_.test(rax, 1);
      a_.jnz(slow);
      a_.cmp(byte_ptr(rax, kObjKind), kDouble);
      a_.jne(slow);
      a_.movsd(xmm0, qword_ptr(rax, kObjSlots));
      a_.test(rcx, 1);
      a_.jnz(arg_int);
      a_.cmp(byte_ptr(rcx, kObjKind), kDouble);
      a_.jne(slow);
      a_.movsd(xmm1, qword_ptr(rcx, kObjSlots));
      a_.jmp(have_arg);
      a_.bind(arg_int);
      a_.sar(rcx, 1);
      a_.cvtsi2sd(xmm1, rcx);
      a_.bind(have_arg);
      switch (op) {
        case kSendAdd:
        case kSendSub:
        case kSendMul:
          if (op == kSendAdd) a_.addsd(xmm0, xmm1);
          if (op == kSendSub) a_.subsd(xmm0, xmm1);
          if (op == kSendMul) a_.mulsd(xmm0, xmm1);
          emit_box_double();
          a_.mov(rdx, rax);
          a_.jmp(done);
          break;
        case kSendLt:  // x < y
          a_.ucomisd(xmm1, xmm0);
          a_.ja(is_true);
          a_.jmp(is_false);
          break;
        case kSendGt:  // x > y
          a_.ucomisd(xmm0, xmm1);
          a_.ja(is_true);
          a_.jmp(is_false);
          break;
        case kSendLe:  // (y < x) not: true when unordered too
          a_.ucomisd(xmm0, xmm1);
          a_.jbe(is_true);
          a_.jmp(is_false);
          break;
        case kSendGe:  // (x < y) not
          a_.ucomisd(xmm1, xmm0);
          a_.jbe(is_true);
          a_.jmp(is_false);
          break;
        default:  // kSendEq: equal and ordered
          a_.ucomisd(xmm0, xmm1);
          a_.jp(is_false);
          a_.je(is_true);
          a_.jmp(is_false);
      }
    } else {
      a_.jmp(slow);
    }
    // The real send: its receiver and argument into their slots first (rax and rcx on every
    // way here, except a constant argument, which may not have been loaded).
    a_.bind(slow);
    if (left.kind != Operand::Kind::kInSlot) a_.mov(stack(d - 2), rax);
    if (right_imm)
      a_.mov(stack(d - 1), imm);
    else if (right.kind != Operand::Kind::kInSlot)
      a_.mov(stack(d - 1), rcx);
    emit_send(site, d - 2, next, /*reply_in_register=*/!fused);
    a_.jmp(fused ? pc_label_[next] : done);
  });
}

void MethodCompiler::emit_store_variable(int32_t offset, int d) {
  store_readers_of(offset, d - 1);  // they still read the variable's old value
  const Operand& value = operands_[static_cast<size_t>(d - 1)];  // STORE does not pop it
  if (value.kind == Operand::Kind::kFrameWord && value.offset == offset) return;  // x := x
  write_operand(value, d - 1, qword_ptr(kFrameReg, offset));
}

void MethodCompiler::emit_lazy_variable(uint32_t pc, int d) {
  const uint8_t* p = code_ + pc;
  const uint8_t op = *p;
  const bool is_arg = op == kPushArgLazy || op == kStoreArgLazy;
  const bool is_store = op == kStoreLocalLazy || op == kStoreArgLazy;
  const int32_t frame_offset = is_arg ? arg_offset(p[1]) : local_offset(p[1]);
  const Mem frame_slot = qword_ptr(kFrameReg, frame_offset);
  const Mem ctx_slot = qword_ptr(rcx, kCtxVars + 8 * p[2]);
  Label in_ctx = a_.new_label(), done = a_.new_label();
  Gp64 value = kOperandReg;
  if (is_store) {
    store_readers_of(frame_offset, d - 1);  // they still read the frame slot's old value
    const Operand& top = operands_[static_cast<size_t>(d - 1)];  // STORE does not pop it
    if (top.kind != Operand::Kind::kInRegister) {
      load_operand(top, d - 1, rax);
      value = rax;
    }
  } else {
    spill_register_operand();  // the value goes to kOperandReg
  }
  auto access = [&](const Mem& slot) {
    if (is_store)
      a_.mov(slot, value);
    else
      a_.mov(kOperandReg, slot);
  };
  a_.mov(rcx, qword_ptr(kFrameReg, kFrameContext));
  a_.test(rcx, rcx);
  a_.jnz(in_ctx);
  access(frame_slot);
  a_.jmp(done);
  a_.bind(in_ctx);
  access(ctx_slot);
  a_.bind(done);
  if (!is_store) push_operand(in_register());
}

bool MethodCompiler::emit_deferred(uint32_t pc, int d) {
  const uint8_t* p = code_ + pc;
  const uint8_t op = *p;
  switch (op) {
    case kPushLocal:
      push_operand(frame_word(local_offset(p[1])));
      return true;
    case kPushArg:
      push_operand(frame_word(arg_offset(p[1])));
      return true;
    case kPushSelf:
      push_operand(frame_word(kFrameSelf));
      return true;
    case kPushNil:
    case kPushTrue:
    case kPushFalse:
      push_operand({Operand::Kind::kVmWord,
                    op == kPushNil ? off_.nil_binding : op == kPushTrue ? off_.true_binding : off_.false_binding, 0});
      return true;
    case kPushLiteral:  // literals are permanent objects or small integers
      push_operand({Operand::Kind::kImmediate, 0, m_->literals[u16at(p + 1)]});
      return true;
    case kPop:
      operands_.pop_back();
      return true;
    case kStoreLocal:
      emit_store_variable(local_offset(p[1]), d);
      return true;
    case kStoreArg:
      emit_store_variable(arg_offset(p[1]), d);
      return true;
    case kPushLocalLazy:
    case kPushArgLazy:
    case kStoreLocalLazy:
    case kStoreArgLazy:
      emit_lazy_variable(pc, d);
      return true;
    case kPushCtx:  // a variable of an enclosing activation's Context
      spill_register_operand();
      load_context(rcx, p[1]);
      a_.mov(kOperandReg, qword_ptr(rcx, kCtxVars + 8 * p[2]));
      push_operand(in_register());
      return true;
    case kStoreCtx: {
      load_context(rcx, p[1]);
      // STORE does not pop the value.
      write_operand(operands_[static_cast<size_t>(d - 1)], d - 1, qword_ptr(rcx, kCtxVars + 8 * p[2]));
      return true;
    }
    case kPushField:
      emit_field_access(pc, d, false);
      return true;
    case kStoreField:
      emit_field_access(pc, d, true);
      return true;
    case kSend: {
      const SendSite& site = m_->sites[u16at(p + 1)];
      const int base = d - static_cast<int>(site.argc) - 1;
      if ((site.selector == impl_.at_selector && site.argc == 1) ||
          (site.selector == impl_.at_put_selector && site.argc == 2)) {
        emit_array_access(site, pc + static_cast<uint32_t>(op_length(op)), d, site.argc == 2);
        return true;
      }
      flush_operands();  // the receiver and arguments in their slots, everything else too
      emit_send(site, base, pc + static_cast<uint32_t>(op_length(op)), /*reply_in_register=*/true);
      reset_operands(base);
      push_operand(in_register());
      return true;
    }
    case kSendAdd: case kSendSub: case kSendMul: case kSendLt: case kSendGt: case kSendLe: case kSendGe:
    case kSendEq: case kSendDiv: case kSendMod: case kSendBitand:
      emit_arith(pc, d);
      return true;
    case kJumpIfTrue:
    case kJumpIfFalse:
      emit_conditional_jump(pc, d);
      return true;
    case kJumpIfNil:
    case kJumpIfNotNil: {
      flush_operands(d - 1);
      load_operand(operands_.back(), d - 1, rax);
      operands_.pop_back();
      a_.cmp(rax, vm_field(off_.nil_value));
      a_.jcc(op == kJumpIfNil ? Cond::kE : Cond::kNE, pc_label_[u16at(p + 1)]);
      return true;
    }
    case kReturnLocal:
      load_operand(operands_.back(), d - 1, rax);
      a_.jmp(ret_);
      reset_operands(0);  // nothing follows but a jump target or unreachable code
      return true;
    default:
      return false;
  }
}

void MethodCompiler::emit_instruction(uint32_t pc, int d) {
  if (emit_deferred(pc, d)) return;
  // Every other instruction works on the frame slots: the deferred entries go there first.
  flush_operands();
  const uint8_t* p = code_ + pc;
  const uint8_t op = *p;
  const uint32_t next = pc + static_cast<uint32_t>(op_length(op));
  const uint32_t size = static_cast<uint32_t>(m_->code.size());
  reset_operands(next <= size && depth_[next] >= 0 ? depth_[next] : 0);  // the state it leaves
  auto push = [&](Gp64 r) { a_.mov(stack(d), r); };
  switch (op) {
    case kPushGlobal: {
      auto* name = static_cast<Symbol*>(obj(m_->literals[u16at(p + 1)]));
      Label slow = a_.new_label(), done = a_.new_label();
      a_.mov(rcx, static_cast<int64_t>(reinterpret_cast<uintptr_t>(name)));
      a_.cmp(byte_ptr(rcx, impl_.symbol_has_global), 0);
      a_.je(slow);
      a_.mov(rax, qword_ptr(rcx, impl_.symbol_global));
      push(rax);
      a_.bind(done);
      cold([=, this] {
        // Undefined: load the class, else unknownGlobal: (which runs SOM code).
        a_.bind(slow);
        sync(d, next);
        a_.mov(rdi, kVmReg);
        a_.mov(rsi, kFrameReg);
        a_.mov(rdx, static_cast<int64_t>(reinterpret_cast<uintptr_t>(name)));
        call_runtime(reinterpret_cast<const void*>(&jit_runtime::read_global));
        check_unwind();
        a_.mov(stack(d), rax);
        a_.jmp(done);
      });
      break;
    }
    case kPushBlock:  // allocation never collects (heap_p.h), so no sync is needed
      a_.mov(rdi, kVmReg);
      a_.mov(rsi, kFrameReg);
      a_.mov(rdx, static_cast<int64_t>(reinterpret_cast<uintptr_t>(m_->blocks[u16at(p + 1)])));
      call_runtime(reinterpret_cast<const void*>(&jit_runtime::new_block));
      push(rax);
      break;
    case kDup:
      a_.mov(rax, stack(d - 1));
      push(rax);
      break;
    case kSuperSend: {
      // The target depends only on the method's holder; the runtime looks it up (global lookup
      // cache) and runs it.
      const SendSite& site = m_->sites[u16at(p + 1)];
      const int base = d - static_cast<int>(site.argc) - 1;
      sync(d, next);
      a_.mov(rdi, kVmReg);
      a_.lea(rsi, stack(base));
      a_.mov(rdx, static_cast<int64_t>(reinterpret_cast<uintptr_t>(&site)));
      call_runtime(reinterpret_cast<const void*>(&jit_runtime::super_send));
      check_unwind();
      a_.mov(stack(base), rax);
      break;
    }
    case kReturnSelf:
      a_.mov(rax, qword_ptr(kFrameReg, kFrameSelf));
      a_.jmp(ret_);
      break;
    case kReturnNonlocal:
      sync(d, next);
      a_.mov(rdi, kVmReg);
      a_.mov(rsi, kFrameReg);
      a_.mov(edx, static_cast<int64_t>(p[1]));
      a_.mov(rcx, stack(d - 1));
      call_runtime(reinterpret_cast<const void*>(&jit_runtime::nonlocal_return));
      check_unwind();
      a_.jmp(ret_);  // the home was dead: the reply of escapedBlock: is the block's value
      break;
    case kJump:
      a_.jmp(pc_label_[u16at(p + 1)]);
      break;
    case kJumpBack: {
      // A safepoint: collect here if an allocation asked for it.
      const uint32_t target = u16at(p + 1);
      Label gc = a_.new_label();
      a_.cmp(vm_field(off_.need_gc, 1), 0);
      a_.jne(gc);
      a_.jmp(pc_label_[target]);
      cold([=, this] {
        a_.bind(gc);
        sync(d, target);
        a_.mov(rdi, kVmReg);
        call_runtime(reinterpret_cast<const void*>(&jit_runtime::collect_garbage));
        a_.jmp(pc_label_[target]);
      });
      break;
    }
    case kNilCheck: {
      // nil, or a receiver class known to use Object's method (the site's two-entry cache,
      // filled by the runtime): the inlined code runs.
      const SendSite& site = m_->sites[u16at(p + 1)];
      Label done = a_.new_label(), slow = a_.new_label();
      a_.mov(rax, stack(d - 1));
      a_.cmp(rax, vm_field(off_.nil_value));
      a_.je(done);
      emit_load_tag(a_, rax, ecx, vm_.integer_tag_);
      a_.mov(rdx, static_cast<int64_t>(reinterpret_cast<uintptr_t>(&site)));
      a_.cmp(ecx, dword_ptr(rdx, static_cast<int32_t>(offsetof(SendSite, std_tag))));
      a_.je(done);
      a_.cmp(ecx, dword_ptr(rdx, static_cast<int32_t>(offsetof(SendSite, std_tag2))));
      a_.jne(slow);
      a_.bind(done);
      emit_check_slow_path(reinterpret_cast<const void*>(&jit_runtime::nil_check), site, d, slow, done);
      break;
    }
    case kForCheck: {
      const SendSite& site = m_->sites[u16at(p + 1)];
      Label done = a_.new_label(), slow = a_.new_label();
      a_.mov(rax, stack(d - 1));
      a_.test(rax, 1);
      a_.jz(slow);
      a_.bind(done);
      emit_check_slow_path(reinterpret_cast<const void*>(&jit_runtime::for_check), site, d, slow, done);
      break;
    }
    case kForTest:
    case kForTestDown: {
      const bool down = op == kForTestDown;
      Label exit = pc_label_[u16at(p + 3)];
      Label slow = a_.new_label(), done = a_.new_label();
      a_.mov(rax, local(p[1]));
      a_.mov(rcx, local(p[2]));
      a_.mov(edx, eax);
      a_.and_(edx, ecx);
      a_.test(edx, 1);
      a_.jz(slow);
      a_.cmp(rax, rcx);
      a_.jcc(down ? Cond::kL : Cond::kG, exit);
      a_.bind(done);
      cold([=, this] {
        a_.bind(slow);
        sync(d, pc);  // clobbers rax
        a_.mov(rdi, kVmReg);
        a_.mov(rsi, local(p[1]));
        a_.mov(rdx, local(p[2]));
        a_.mov(ecx, down ? 1 : 0);
        call_runtime(reinterpret_cast<const void*>(&jit_runtime::for_test));
        check_unwind();
        a_.test(rax, rax);
        a_.jz(exit);
        a_.jmp(done);
      });
      break;
    }
    case kForStep: {
      const bool down = p[2] != 0;
      const uint8_t counter = p[1];
      Label slow = a_.new_label(), done = a_.new_label();
      a_.mov(rax, local(counter));
      a_.test(rax, 1);
      a_.jz(slow);
      if (down)
        a_.sub(rax, 2);
      else
        a_.add(rax, 2);
      a_.jo(slow);  // leaves 63 bits: the big-integer path
      a_.mov(local(counter), rax);
      a_.bind(done);
      cold([=, this] {
        a_.bind(slow);
        sync(d, next);
        a_.mov(rdi, kVmReg);
        a_.mov(rsi, local(counter));
        a_.mov(edx, down ? 1 : 0);
        call_runtime(reinterpret_cast<const void*>(&jit_runtime::for_step));
        a_.mov(local(counter), rax);
        a_.jmp(done);
      });
      break;
    }
    default:
      a_.ud2();
  }
}

bool MethodCompiler::compile(CompiledMethod& out, std::string& error) {
  if (m_->mkind != MethodKind::kBytecode || m_->code.empty()) {
    error = "not a bytecode method";
    return false;
  }
  if (!compute_depths(error)) return false;
  const auto size = static_cast<uint32_t>(m_->code.size());
  pc_label_.resize(size + 1);  // a label at each instruction, and at the end
  for (uint32_t pc = 0; pc < size; pc += static_cast<uint32_t>(op_length(m_->code[pc]))) pc_label_[pc] = a_.new_label();
  pc_label_[size] = a_.new_label();
  for (uint32_t pc = 0; pc <= size; pc++)
    if (jump_target_[pc] && !pc_label_[pc].valid()) {
      error = "a jump into the middle of an instruction, at pc " + std::to_string(pc);
      return false;
    }
  cold_.reserve(64);
  start_ = a_.new_label();
  ret_ = a_.new_label();
  unwind_ = a_.new_label();
  frame_gone_ = a_.new_label();
  emit_prologue();
  std::vector<std::pair<Label, uint32_t>> pc_marks;
  for (uint32_t pc = 0; pc < size; pc += static_cast<uint32_t>(op_length(m_->code[pc]))) {
    if (depth_[pc] >= 0 && jump_target_[pc]) {
      // Jumps arrive with every entry in its slot; so does the fall-through, except a value
      // that a POP here discards on every path.
      if (m_->code[pc] == kPop && !operands_.empty() && operands_.size() == static_cast<size_t>(depth_[pc]))
        operands_.back() = Operand{};
      flush_operands();
      reset_operands(depth_[pc]);
    }
    a_.bind(pc_label_[pc]);
    if (depth_[pc] < 0) continue;  // unreachable: no code
    if (operands_.size() != static_cast<size_t>(depth_[pc])) {
      error = "internal error: operand stack of depth " + std::to_string(operands_.size()) + " at pc " +
              std::to_string(pc) + ", expected " + std::to_string(depth_[pc]);
      return false;
    }
    pc_marks.push_back({pc_label_[pc], pc});
    emit_instruction(pc, depth_[pc]);
  }
  a_.bind(pc_label_[size]);
  a_.ud2();  // no method falls off its end (the compiler ends each with a return)

  // Return: the activation's context no longer has a live frame (non-local returns to it
  // become escapedBlock:), then the caller's frame register and the native frame.
  a_.bind(ret_);
  if (m_->has_context || m_->lazy_context) {
    Label no_context = a_.new_label();
    a_.mov(rcx, qword_ptr(kFrameReg, kFrameContext));
    a_.test(rcx, rcx);
    a_.jz(no_context);
    a_.mov(qword_ptr(rcx, kCtxMarker), static_cast<int64_t>(from_int(0)));
    a_.bind(no_context);
  }
  a_.mov(kFrameReg, qword_ptr(rbp, -8));
  a_.mov(rsp, rbp);
  a_.pop(rbp);
  a_.bind(frame_gone_);
  a_.ret();
  // A non-local return is passing: finish it here if this frame is its home, else leave.
  a_.bind(unwind_);
  a_.mov(rcx, vm_field(off_.unwind_target));
  a_.cmp(rcx, kFrameReg);
  a_.jne(ret_);
  a_.mov(vm_field(off_.unwind_target), 0);
  a_.mov(rax, vm_field(off_.unwind_value));
  a_.jmp(ret_);
  for (size_t i = 0; i < cold_.size(); i++) cold_[i]();  // may append more cold paths

  if (!send_error_.empty()) {
    error = "inline cache: " + send_error_;
    return false;
  }
  if (!a_.ok()) {
    error = "assembler: " + a_.error()->message();
    return false;
  }
  auto code = install::install(a_, *impl_.zone, {.name = jit_method_name(m_), .visibility = request_.visibility});
  if (!code) {
    error = "install: " + code.error().message();
    return false;
  }
  out.code = std::move(*code);
  for (auto& [send, pc] : sends_) {
    auto site = impl_.engine->attach(out.code, send);
    if (!site) {
      error = "inline cache: " + site.error().message();
      (void)impl_.zone->free(out.code.block());
      return false;
    }
    out.sites.push_back(*site);
    out.site_pcs.push_back(pc);
  }
  out.frame_gone_offset = out.code.label_offset(frame_gone_);
  for (uint32_t head : loop_heads_) out.osr_entries.push_back({head, out.code.label_address(pc_label_[head])});
  for (auto& [label, pc] : pc_marks)
    out.instruction_offsets.push_back({out.code.label_offset(label), pc});
  return true;
}

}  // namespace

CompileOutcome compile_method(const VM& vm, const Jit::Impl& impl, const CompileRequest& request) {
  CompileOutcome outcome;
  outcome.method = request.method;
  const auto t0 = std::chrono::steady_clock::now();
  auto compiled = std::make_unique<CompiledMethod>();
  MethodCompiler compiler(vm, impl, request);
  const bool ok = compiler.compile(*compiled, outcome.error);
  const auto t1 = std::chrono::steady_clock::now();
  outcome.compile_nanos = static_cast<uint64_t>(std::chrono::duration_cast<std::chrono::nanoseconds>(t1 - t0).count());
  if (!ok) return outcome;
  // Unwind rules for gdb and perf: the rbp frame, gone at the one `ret`.
  if (auto reg = debug::register_installed(compiled->code,
                                           debug::FrameInfo::frame_pointer(1, 4, {compiled->frame_gone_offset})))
    compiled->registration = std::move(*reg);
  outcome.register_nanos = static_cast<uint64_t>(
      std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::steady_clock::now() - t1).count());
  outcome.compiled = std::move(compiled);
  return outcome;
}

}  // namespace som
