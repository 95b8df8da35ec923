// tools/tour/tour_ic.cpp — the tour's inline-cache section: one send site linked by real sends
// through every state, its listing with the closed PIC behind it, and the engine's counters.
#include <cstdint>
#include <cstdio>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "jitkit/code/code_zone.h"
#include "jitkit/debug/installed_code.h"
#include "jitkit/ic/engine.h"
#include "jitkit/install/install.h"
#include "jitkit/x64/assembler.h"
#include "tour_p.h"

namespace {

using namespace jitkit;
using namespace jitkit::x64;

struct Object {
  std::uint32_t tag;
  std::uint32_t pad;
};

bool show_ic() {
  auto zone = code::CodeZone::create();
  if (!zone) {
    std::printf("code zone: %s\n", zone.error().message().c_str());
    return false;
  }
  constexpr std::uint32_t kDraw = 3;
  std::vector<ic::Method> methods;
  ic::VmInterface vm;
  vm.load_tag = [](Assembler& a, Gp64 receiver, Gp32 tag) { a.mov(tag, dword_ptr(receiver, 0)); };
  vm.lookup = [&](std::uint32_t tag, std::uint32_t sel) -> std::optional<ic::Method> {
    if (sel != kDraw || tag >= methods.size()) return std::nullopt;
    return methods[tag];
  };
  vm.not_understood = [](const ic::NotUnderstood&) -> std::uint64_t { return 0; };
  vm.selector_name = [](std::uint32_t) { return std::string("draw:"); };
  ic::EngineOptions options;
  options.max_pic_cases = 3;
  options.name = "tour";
  auto engine = ic::Engine::create(**zone, std::move(vm), options);
  if (!engine) {
    std::printf("engine: %s\n", engine.error().message().c_str());
    return false;
  }
  ic::Engine& ic = **engine;
  std::vector<debug::Registration> names;  // the methods' names in listings, gdb and perf
  for (std::int64_t k = 0; k < 5; ++k) {   // draw: of class k answers 100 + k
    Assembler a;
    auto entry = ic.emit_method_entry(a);
    if (!entry) return false;
    a.mov(eax, 100 + k);
    a.ret();
    auto code = install::install(
        a, **zone, {.name = "draw_" + std::to_string(k), .visibility = code::Visibility::kOtherThreads});
    if (!code) return false;
    if (auto r = debug::register_installed(*code)) names.push_back(std::move(r).value());
    methods.push_back({code->label_address(entry->checked), code->label_address(entry->unchecked)});
  }
  Assembler a;
  a.push(rbp);
  a.mov(rbp, rsp);
  auto send = ic.emit_send(a, kDraw);
  if (!send) return false;
  a.pop(rbp);
  a.ret();
  auto caller =
      install::install(a, **zone, {.name = "caller", .visibility = code::Visibility::kOtherThreads});
  if (!caller) return false;
  auto site = ic.attach(*caller, *send);
  if (!site) return false;
  auto fn = caller->entry<std::uint64_t(const Object*)>();

  std::printf("one send of draw: (max 3 PIC cases); receivers of classes 0, 1, 2, 3:\n");
  std::string listing;
  for (std::uint32_t k = 0; k < 4; ++k) {
    Object o{k, 0};
    const std::uint64_t r = fn(&o);
    auto info = ic.site(*site);
    if (!info || r != 100 + k) return false;
    std::printf("  class %u -> draw_%llu, site now %s", k, static_cast<unsigned long long>(r - 100),
                ic::kind_name(info->kind));
    if (info->kind == ic::SiteKind::kPolymorphic) std::printf(" (%zu cases)", info->cases.size());
    std::printf("\n");
    if (k == 1) {
      auto l = ic.listing(*site);
      if (!l) return false;
      listing = *l;
    }
  }
  std::printf("\nthe site and its closed PIC after two classes (names from jitkit::debug):\n%s",
              listing.c_str());
  const ic::EngineStats s = ic.stats();
  std::printf(
      "\ncounters: %llu misses, %llu ->mono, %llu ->pic, %llu pic extends, %llu ->mega, "
      "%llu table fills\n",
      static_cast<unsigned long long>(s.misses), static_cast<unsigned long long>(s.unlinked_to_mono),
      static_cast<unsigned long long>(s.mono_to_pic), static_cast<unsigned long long>(s.pic_extend),
      static_cast<unsigned long long>(s.pic_to_mega), static_cast<unsigned long long>(s.table_fills));
  if (auto f = ic.flush_all(); !f) {
    std::printf("flush: %s\n", f.error().message().c_str());
    return false;
  }
  std::printf("after flush_all(): site %s, %llu stubs freed after the grace period\n",
              ic::kind_name(ic.site(*site)->kind), static_cast<unsigned long long>(ic.stats().stubs_freed));
  return true;
}

}  // namespace

JITKIT_TOUR_SECTION(70, "Inline caches", show_ic);
