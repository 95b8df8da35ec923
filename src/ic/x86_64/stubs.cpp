// x86-64 code of the inline caches: send sites, method entries, the miss and not-understood
// stubs, closed PICs and open PICs. The layouts and the reasons for them are in
// include/jitkit/ic/stubs.h and send_site.h; this file only emits them.
#include <bit>
#include <cstdint>
#include <utility>

#include "ic/engine_p.h"
#include "jitkit/base/format.h"
#include "jitkit/debug/installed_code.h"
#include "jitkit/x64/assembler.h"

namespace jitkit::ic {

using namespace jitkit::x64;

namespace {

// Distance between the rel32/imm32 sites and the code start of a stub is irrelevant; everything
// a stub needs is in reach because it lives in the same zone as the VM's methods.
install::InstallOptions stub_options(std::string name) {
  install::InstallOptions o;
  o.name = std::move(name);
  o.visibility = code::Visibility::kOtherThreads;  // any thread may run it once it is reachable
  return o;
}

// push rbp / mov rbp, rsp, then the save block [tag, selector, receiver, args...] at rsp, with
// rsp 16-byte aligned for the C++ call (rsp+8 was aligned at entry, so after `push rbp` it is;
// an odd number of 8-byte slots needs one more).
void emit_save_block(Assembler& a, const Engine::Impl& impl) {
  const CallingConvention& cc = impl.options.convention;
  a.push(rbp);
  a.mov(rbp, rsp);
  const std::size_t slots = detail::kSavedArgs + cc.args.size();
  if (slots % 2 != 0) a.sub(rsp, 8);
  for (auto it = cc.args.rbegin(); it != cc.args.rend(); ++it) a.push(*it);
  a.push(cc.receiver);
  a.push(to_gp64(cc.selector));
  impl.vm.load_tag(a, cc.receiver, cc.tag);
  a.mov(cc.tag, cc.tag);  // the upper half of the saved slot is zero whatever the loader wrote
  a.push(to_gp64(cc.tag));
}

debug::FrameInfo frame_with_tail(std::uint32_t tail_offset) {
  // push rbp ends at 1, mov rbp, rsp at 4; from tail_offset on the frame is gone.
  return debug::FrameInfo::frame_pointer(1, 4, {tail_offset});
}

}  // namespace

Result<SendSite> Engine::emit_send(Assembler& a, std::uint32_t selector) const {
  if (selector > kMaxSelector) {
    return Error(ErrorCode::kInvalidArgument, "ic: send site: selector " + hex(selector) +
                                                  " is above kMaxSelector (" + hex(kMaxSelector) +
                                                  "); the top bit marks unlinked sites");
  }
  const CallingConvention& cc = impl_->options.convention;
  SendSite s;
  s.selector = selector;
  s.imm = a.mov_imm32_site(cc.selector, static_cast<std::int32_t>(selector | kUnlinkedMark));
  s.call = a.call_site(abs_address(miss_stub()));
  return s;
}

Result<MethodEntryLabels> Engine::emit_method_entry(Assembler& a) const {
  const CallingConvention& cc = impl_->options.convention;
  MethodEntryLabels l{a.new_label(), a.new_label()};
  const Label miss = a.new_label();
  // The mismatch jump sits before the checked entry, so the `jne` is a short backward jump.
  a.bind(miss);
  a.jmp(abs_address(miss_stub()));
  a.bind(l.checked);
  impl_->vm.load_tag(a, cc.receiver, cc.tag);
  a.cmp(cc.tag, cc.selector);
  a.jne(miss);
  a.bind(l.unchecked);
  if (!a.ok()) return Error(*a.error()).context("ic: method entry");
  return l;
}

namespace detail {

Result<StubLayout> install_miss_stub(Engine::Impl& impl) {
  const CallingConvention& cc = impl.options.convention;
  Assembler a;
  emit_save_block(a, impl);
  // handle_miss(impl, return address, save block): load rdx and rsi before rdi, from memory and
  // rsp only, so that no VM register the convention put in rdi/rsi/rdx is needed afterwards.
  a.mov(rdx, rsp);
  a.mov(rsi, qword_ptr(rbp, 8));
  a.movabs(rdi, reinterpret_cast<std::uint64_t>(&impl));
  a.call(abs(&handle_miss));
  a.mov(cc.scratch, rax);
  a.add(rsp, 8);                // the tag slot: tag is clobbered by convention
  a.pop(to_gp64(cc.selector));  // may hold the selector now (for the not-understood stub)
  a.pop(cc.receiver);
  for (auto r : cc.args) a.pop(r);
  a.mov(rsp, rbp);
  a.pop(rbp);
  const Label tail = a.new_label();
  a.bind(tail);
  a.jmp(cc.scratch);  // to the entry the handler chose; [rsp] is the site's return address
  JITKIT_TRY(auto code, install::install(a, *impl.zone, stub_options("ic_miss:" + impl.options.name)));
  const std::uint32_t tail_offset = code.label_offset(tail);
  return StubLayout{std::move(code), tail_offset};
}

Result<StubLayout> install_not_understood_stub(Engine::Impl& impl) {
  Assembler a;
  emit_save_block(a, impl);
  a.mov(rsi, rsp);
  a.movabs(rdi, reinterpret_cast<std::uint64_t>(&impl));
  a.call(abs(&handle_not_understood));
  a.mov(rsp, rbp);
  a.pop(rbp);
  const Label tail = a.new_label();
  a.bind(tail);
  a.ret();  // the handler's answer in rax is the send's result
  JITKIT_TRY(auto code,
             install::install(a, *impl.zone, stub_options("ic_not_understood:" + impl.options.name)));
  const std::uint32_t tail_offset = code.label_offset(tail);
  return StubLayout{std::move(code), tail_offset};
}

Result<std::unique_ptr<Pic>> install_pic(Engine::Impl& impl, std::uint32_t selector,
                                         const std::vector<SiteCase>& cases) {
  const CallingConvention& cc = impl.options.convention;
  const std::uintptr_t miss = impl.miss->code.start();
  Assembler a;
  impl.vm.load_tag(a, cc.receiver, cc.tag);
  // All compares first, so that the path to case k runs k not-taken branches and one taken
  // one (taken branches are what limits the front end), then the jumps.
  const std::size_t n = impl.options.max_pic_cases;
  std::vector<Label> hit(n);
  std::vector<PatchSiteId> cmp(n);
  std::vector<PatchSiteId> jmp(n);
  for (std::size_t i = 0; i < n; ++i) {
    hit[i] = a.new_label();
    const std::uint32_t tag = i < cases.size() ? cases[i].tag : kEmptyCaseTag;
    cmp[i] = a.cmp_imm32_site(cc.tag, static_cast<std::int32_t>(tag));
    a.je(hit[i]);
  }
  a.jmp(abs_address(miss));
  for (std::size_t i = 0; i < n; ++i) {
    a.bind(hit[i]);
    jmp[i] = a.jmp_site(abs_address(i < cases.size() ? cases[i].unchecked_entry : miss));
  }
  JITKIT_TRY(auto code, install::install(a, *impl.zone, stub_options(impl.stub_name("pic", selector))));
  auto pic = std::make_unique<Pic>();
  for (std::size_t i = 0; i < n; ++i) pic->slots.push_back({code.site(cmp[i]), code.site(jmp[i])});
  JITKIT_TRY(pic->stub, impl.finish_stub(std::move(code), debug::FrameInfo::leaf()));
  return pic;
}

Result<std::unique_ptr<StubCode>> install_open_pic(Engine::Impl& impl, std::uint32_t selector) {
  const CallingConvention& cc = impl.options.convention;
  const Gp64 tag64 = to_gp64(cc.tag);
  const Gp64 key = to_gp64(cc.selector);
  const Gp64 slot = cc.scratch;
  const Gp32 slot32 = to_gp32(cc.scratch);
  const unsigned log2 = static_cast<unsigned>(std::countr_zero(impl.buckets));
  Assembler a;
  impl.vm.load_tag(a, cc.receiver, cc.tag);
  a.mov(cc.tag, cc.tag);  // zero the upper half: the key below uses the full register
  // The bucket's byte offset (engine_p.h, table_offset): multiply, xor, mask.
  a.imul(slot32, cc.tag,
         static_cast<std::int64_t>(static_cast<std::int32_t>(detail::kTagHashMultiplier << 5)));
  a.xor_(slot32, static_cast<std::int64_t>(static_cast<std::int32_t>(detail::selector_hash(selector) << 5)));
  a.and_(slot32, static_cast<std::int64_t>(((std::uint64_t{1} << log2) - 1) << 5));
  // Off the critical path: the key and the table base.
  a.movabs(key, static_cast<std::uint64_t>(selector) << 32);
  a.or_(key, tag64);
  a.lea(tag64, ptr(abs(impl.table)));
  a.add(slot, tag64);
  const Label second = a.new_label();
  const Label miss = a.new_label();
  // Key first, then the entry: x86 does not reorder the two loads, and the engine stores the
  // entry before the key, so a matching key comes with its own entry.
  a.cmp(qword_ptr(slot, 0), key);
  a.jne(second, JumpForm::kShort);
  a.jmp(qword_ptr(slot, 8));
  a.bind(second);
  a.cmp(qword_ptr(slot, 16), key);
  a.jne(miss, JumpForm::kShort);
  a.jmp(qword_ptr(slot, 24));
  a.bind(miss);
  a.jmp(abs_address(impl.miss->code.start()));
  JITKIT_TRY(auto code,
             install::install(a, *impl.zone, stub_options(impl.stub_name("megamorphic", selector))));
  return impl.finish_stub(std::move(code), debug::FrameInfo::leaf());
}

}  // namespace detail

namespace detail {

// Kept here so that the stubs' frame shapes sit beside the code they describe.
Result<std::unique_ptr<StubCode>> finish_frame_stub(Engine::Impl& impl, StubLayout layout) {
  return impl.finish_stub(std::move(layout.code), frame_with_tail(layout.tail_offset));
}

}  // namespace detail
}  // namespace jitkit::ic
