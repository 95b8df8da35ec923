// tests/patch/patch_test_util_p.h — hand-encoded code for the patch tests: callers whose call
// site sits at a chosen offset (aligned, misaligned, crossing a cache line), counting targets,
// far thunks, static-key and immediate functions. Each target counts its calls per caller
// thread, so a test can check that every call landed in one of the valid targets.
#pragma once

#include <gtest/gtest.h>

#include <array>
#include <atomic>
#include <cstdint>
#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include "jitkit/code/code_zone.h"
#include "jitkit/install/patch_site.h"
#include "jitkit/patch/patcher.h"

namespace jitkit::patch::test_util {

constexpr int kMaxTargets = 8;

// One caller thread's counters, on its own cache lines.
struct alignas(64) Counters {
  std::array<std::uint64_t, kMaxTargets> hits{};
};

// Calls made with a null Counters* (single-threaded tests), by target.
inline std::atomic<std::uint64_t> g_uncounted_calls[kMaxTargets];

template <int K>
__attribute__((noinline)) int count_target(Counters* c) {
  if (c != nullptr) {
    c->hits[K]++;
  } else {
    g_uncounted_calls[K].fetch_add(1);
  }
  asm volatile("" ::: "memory");
  return K + 1;
}

using TargetFn = int (*)(Counters*);
inline const std::array<TargetFn, kMaxTargets> kTargets = {
    &count_target<0>, &count_target<1>, &count_target<2>, &count_target<3>,
    &count_target<4>, &count_target<5>, &count_target<6>, &count_target<7>};

inline std::uintptr_t addr(const void* p) { return reinterpret_cast<std::uintptr_t>(p); }
inline std::uintptr_t addr(TargetFn f) { return reinterpret_cast<std::uintptr_t>(f); }

// A zone within rel32 reach of this test binary's functions (the counting targets).
inline std::unique_ptr<code::CodeZone> make_zone_near_binary(std::size_t reserve = 8u << 20) {
  code::ZoneOptions o;
  o.reserve_bytes = reserve;
  o.near = addr(kTargets[0]);
  o.near_span = 1u << 20;
  auto z = code::CodeZone::create(o);
  if (!z) {
    ADD_FAILURE() << z.error().message();
    return nullptr;
  }
  return std::move(z).value();
}

// A zone whose every byte is more than 2 GiB away from `other` (for trampoline tests).
inline std::unique_ptr<code::CodeZone> make_far_zone(const code::CodeZone& other) {
  for (std::uintptr_t distance :
       {std::uintptr_t{16} << 30, std::uintptr_t{64} << 30, std::uintptr_t{256} << 30}) {
    code::ZoneOptions o;
    o.reserve_bytes = 1u << 20;
    o.near = other.begin() > distance + (std::uintptr_t{1} << 33) ? other.begin() - distance
                                                                  : other.begin() + distance;
    auto z = code::CodeZone::create(o);
    if (!z) continue;
    auto& zone = *z;
    const std::intptr_t d = static_cast<std::intptr_t>(zone->begin() - other.begin());
    if (d > (std::intptr_t{4} << 30) || d < -(std::intptr_t{4} << 30)) return std::move(z).value();
  }
  ADD_FAILURE() << "could not place a code zone more than 4 GiB from the first one";
  return nullptr;
}

inline void put_rel32(std::vector<std::uint8_t>& b, std::size_t at, std::uintptr_t insn_end,
                      std::uintptr_t target) {
  const std::int64_t d = static_cast<std::int64_t>(target - insn_end);
  EXPECT_TRUE(d >= INT32_MIN && d <= INT32_MAX) << "target out of rel32 reach";
  const auto r = static_cast<std::int32_t>(d);
  std::memcpy(b.data() + at, &r, 4);
}

inline code::CodeBlock install_bytes(code::CodeZone& zone, const std::vector<std::uint8_t>& bytes,
                                     std::size_t alignment = 64) {
  auto block = zone.allocate(bytes.size(), alignment);
  EXPECT_TRUE(block.has_value()) << (block ? "" : block.error().message());
  if (!block) return {};
  EXPECT_TRUE(zone.write(block->exec, bytes.data(), bytes.size()).has_value());
  EXPECT_TRUE(zone.make_executable(*block, code::Visibility::kOtherThreads).has_value());
  return *block;
}

// A caller: `sub rsp,8; [jmp over padding]; call rel32 target; add rsp,8; ret`, with the rel32
// field at byte `field_offset` of a 64-byte aligned block (>= 8). Returns the callee's eax.
struct CallerStub {
  code::CodeBlock block;
  install::PatchSite site;
  TargetFn fn() const { return reinterpret_cast<TargetFn>(block.exec); }
};

inline CallerStub make_caller(code::CodeZone& zone, std::uintptr_t target, std::size_t field_offset,
                              bool jump_site = false) {
  // Call sites: sub rsp, 8 (the callee gets a 16-byte aligned stack). Jump sites tail-call the
  // target with the caller's own stack, so they start with a 4-byte NOP instead.
  std::vector<std::uint8_t> b = jump_site ? std::vector<std::uint8_t>{0x0F, 0x1F, 0x40, 0x00}
                                          : std::vector<std::uint8_t>{0x48, 0x83, 0xEC, 0x08};
  const std::size_t insn = field_offset - 1;
  EXPECT_GE(insn, 4u);
  if (insn - 4 >= 2) {
    b.push_back(0xEB);  // jmp rel8 over the padding
    b.push_back(static_cast<std::uint8_t>(insn - 6));
  }
  while (b.size() < insn) b.push_back(0xCC);
  std::vector<std::uint8_t> tail;
  if (!jump_site) {
    b.push_back(0xE8);
    b.resize(b.size() + 4);
    tail = {0x48, 0x83, 0xC4, 0x08, 0xC3};  // add rsp, 8; ret
  } else {
    b.push_back(0xE9);  // jmp rel32: the target returns straight to our caller
    b.resize(b.size() + 4);
  }
  b.insert(b.end(), tail.begin(), tail.end());
  auto blk = zone.allocate(b.size(), 64);
  EXPECT_TRUE(blk.has_value());
  if (!blk) return {};
  put_rel32(b, field_offset, addr(blk->exec) + insn + 5, target);
  EXPECT_TRUE(zone.write(blk->exec, b.data(), b.size()).has_value());
  EXPECT_TRUE(zone.make_executable(*blk, code::Visibility::kOtherThreads).has_value());
  CallerStub s;
  s.block = *blk;
  s.site.kind = jump_site ? x64::PatchSiteKind::kJump : x64::PatchSiteKind::kCall;
  s.site.insn = blk->exec + insn;
  s.site.insn_size = 5;
  s.site.field = blk->exec + field_offset;
  s.site.field_size = 4;
  s.site.pad = s.site.insn;
  return s;
}

// `mov rax, imm64; jmp rax` to `target`, placed in `zone` (a far thunk for trampoline tests, a
// reclaimable target for quiescence tests).
inline code::CodeBlock make_thunk_block(code::CodeZone& zone, std::uintptr_t target) {
  std::vector<std::uint8_t> b = {0x48, 0xB8};
  b.resize(10);
  std::memcpy(b.data() + 2, &target, 8);
  b.push_back(0xFF);
  b.push_back(0xE0);
  return install_bytes(zone, b);
}
// `[lead NOPs] sub rsp,8; mov rax, target; call rax; add rsp,8; ret`: a target that stays on the
// stack (its return address points into it) while the counting function runs, so that freeing
// it too early sends the caller into int3 fill. `lead` varies the return offset between blocks
// that reuse the same memory.
inline code::CodeBlock make_calling_thunk(code::CodeZone& zone, std::uintptr_t target, std::size_t lead) {
  std::vector<std::uint8_t> b(lead, 0x90);
  b.insert(b.end(), {0x48, 0x83, 0xEC, 0x08, 0x48, 0xB8});
  const std::size_t at = b.size();
  b.resize(at + 8);
  std::memcpy(b.data() + at, &target, 8);
  b.insert(b.end(), {0xFF, 0xD0, 0x48, 0x83, 0xC4, 0x08, 0xC3});
  return install_bytes(zone, b);
}
inline std::uintptr_t make_thunk(code::CodeZone& zone, std::uintptr_t target) {
  return addr(make_thunk_block(zone, target).exec);
}

// Static key caller: `sub rsp,8; KEY(5 bytes: nop / jmp L_b); call A; jmp done; L_b: call B;
// done: add rsp,8; ret`. The key's rel32 field is 4-byte aligned.
struct KeyStub {
  code::CodeBlock block;
  install::PatchSite site;
  TargetFn fn() const { return reinterpret_cast<TargetFn>(block.exec); }
};

inline KeyStub make_key_caller(code::CodeZone& zone, std::uintptr_t a, std::uintptr_t b_target) {
  // 0: sub rsp,8 (4)  4..6: 3-byte nop  7: key (5)  12: call A (5)  17: jmp done (EB 05)
  // 19: call B (5)  24: add rsp,8 (4)  28: ret
  std::vector<std::uint8_t> b = {0x48, 0x83, 0xEC, 0x08, 0x0F, 0x1F, 0x00, 0x0F, 0x1F, 0x44,
                                 0x00, 0x00, 0xE8, 0,    0,    0,    0,    0xEB, 0x05, 0xE8,
                                 0,    0,    0,    0,    0x48, 0x83, 0xC4, 0x08, 0xC3};
  auto blk = zone.allocate(b.size(), 64);
  EXPECT_TRUE(blk.has_value());
  if (!blk) return {};
  const std::uintptr_t base = addr(blk->exec);
  put_rel32(b, 13, base + 17, a);
  put_rel32(b, 20, base + 24, b_target);
  EXPECT_TRUE(zone.write(blk->exec, b.data(), b.size()).has_value());
  EXPECT_TRUE(zone.make_executable(*blk, code::Visibility::kOtherThreads).has_value());
  KeyStub k;
  k.block = *blk;
  k.site.kind = x64::PatchSiteKind::kStaticKey;
  k.site.insn = blk->exec + 7;
  k.site.insn_size = 5;
  k.site.field = blk->exec + 8;
  k.site.field_size = 4;
  k.site.pad = k.site.insn;
  k.site.key_target = blk->exec + 19;
  return k;
}

// `mov rax, imm64; ret` at byte 0 with the imm64 8-byte aligned (field at byte 8), and
// `mov eax, imm32; ret` at byte 32 with the imm32 4-byte aligned (field at byte 36).
struct ImmStub {
  code::CodeBlock block;
  install::PatchSite imm64;
  install::PatchSite imm32;
  using Fn64 = std::uint64_t (*)();
  using Fn32 = std::uint32_t (*)();
  Fn64 fn64() const { return reinterpret_cast<Fn64>(block.exec); }
  Fn32 fn32() const { return reinterpret_cast<Fn32>(block.exec + 32); }
};

inline ImmStub make_imm_stub(code::CodeZone& zone, std::uint64_t v64, std::uint32_t v32) {
  // 0: 6-byte nop  6: 48 B8 imm64 (field 8..15)  16: ret  17..31: int3
  // 32: 3-byte nop 35: B8 imm32 (field 36..39)   40: ret
  std::vector<std::uint8_t> b = {0x66, 0x0F, 0x1F, 0x44, 0x00, 0x00, 0x48, 0xB8};
  b.resize(16);
  std::memcpy(b.data() + 8, &v64, 8);
  b.push_back(0xC3);
  while (b.size() < 32) b.push_back(0xCC);
  b.insert(b.end(), {0x0F, 0x1F, 0x00, 0xB8});
  b.resize(40);
  std::memcpy(b.data() + 36, &v32, 4);
  b.push_back(0xC3);
  auto blk = zone.allocate(b.size(), 64);
  EXPECT_TRUE(blk.has_value());
  if (!blk) return {};
  EXPECT_TRUE(zone.write(blk->exec, b.data(), b.size()).has_value());
  EXPECT_TRUE(zone.make_executable(*blk, code::Visibility::kOtherThreads).has_value());
  ImmStub s;
  s.block = *blk;
  s.imm64 = {.kind = x64::PatchSiteKind::kImm64,
             .insn = blk->exec + 6,
             .insn_size = 10,
             .field = blk->exec + 8,
             .field_size = 8,
             .pad = blk->exec + 6};
  s.imm32 = {.kind = x64::PatchSiteKind::kImm32,
             .insn = blk->exec + 35,
             .insn_size = 5,
             .field = blk->exec + 36,
             .field_size = 4,
             .pad = blk->exec + 35};
  return s;
}

}  // namespace jitkit::patch::test_util
