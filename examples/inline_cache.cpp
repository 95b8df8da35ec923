// examples/inline_cache.cpp — a send site that caches its dispatch in machine code.
//
// A toy dynamically typed program: shapes of five classes, each with its own generated `area`
// method. One generated function holds one send of `area`; jitkit::ic links that send as the
// receivers vary and the program prints each state it goes through:
//
//   unlinked -> monomorphic -> polymorphic(2) -> polymorphic(3) -> polymorphic(4) -> megamorphic
//
// with at most 4 cases per PIC (EngineOptions::max_pic_cases), so the fifth class sends the
// site to the open PIC. Every printed area is computed by the method of the receiver's class.
#include <cstdint>
#include <cstdio>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "jitkit/code/code_zone.h"
#include "jitkit/ic/engine.h"
#include "jitkit/install/install.h"
#include "jitkit/x64/assembler.h"

using namespace jitkit;
using namespace jitkit::x64;

namespace {

// An object: its class tag (a 32-bit class index), then its size.
struct Shape {
  std::uint32_t tag;
  std::uint32_t pad;
  std::int64_t size;
};

enum : std::uint32_t { kCircle, kSquare, kTriangle, kHexagon, kStar };
const char* const kClassNames[] = {"Circle", "Square", "Triangle", "Hexagon", "Star"};
constexpr std::uint32_t kArea = 0;  // the selector

// area = size * size * factor / divisor (integers keep the example short)
struct Formula {
  std::int32_t factor;
  std::int32_t divisor;
};
const Formula kFormulas[] = {{314, 100}, {1, 1}, {1, 2}, {260, 100}, {150, 100}};

std::string describe(const ic::SiteInfo& info) {
  switch (info.kind) {
    case ic::SiteKind::kUnlinked:
      return "unlinked";
    case ic::SiteKind::kMonomorphic:
      return "monomorphic";
    case ic::SiteKind::kPolymorphic:
      return "polymorphic(" + std::to_string(info.cases.size()) + ")";
    case ic::SiteKind::kMegamorphic:
      return "megamorphic";
  }
  return "?";
}

int fail(const char* what, const Error& e) {
  std::fprintf(stderr, "%s: %s\n", what, e.message().c_str());
  return 1;
}

}  // namespace

int main() {
  auto zone = code::CodeZone::create();
  if (!zone) return fail("code zone", zone.error());

  // The VM side: how to find a receiver's class, and the methods of each class.
  std::vector<ic::Method> methods;
  ic::VmInterface vm;
  vm.load_tag = [](Assembler& a, Gp64 receiver, Gp32 tag) { a.mov(tag, dword_ptr(receiver, 0)); };
  vm.lookup = [&](std::uint32_t tag, std::uint32_t selector) -> std::optional<ic::Method> {
    if (selector != kArea || tag >= methods.size()) return std::nullopt;
    return methods[tag];
  };
  vm.not_understood = [](const ic::NotUnderstood& nu) -> std::uint64_t {
    std::printf("  (class %u does not understand selector %u)\n", nu.tag, nu.selector);
    return 0;
  };
  vm.selector_name = [](std::uint32_t) { return std::string("area"); };
  ic::EngineOptions options;
  options.max_pic_cases = 4;
  auto engine = ic::Engine::create(**zone, std::move(vm), options);
  if (!engine) return fail("ic engine", engine.error());
  ic::Engine& ic = **engine;

  // One `area` method per class: entries emitted by the engine, then the body.
  for (const Formula& f : kFormulas) {
    Assembler a;
    auto entry = ic.emit_method_entry(a);
    if (!entry) return fail("method entry", entry.error());
    a.mov(rax, qword_ptr(rdi, 8));  // size (the receiver is in rdi)
    a.imul(rax, rax);
    a.imul(rax, rax, f.factor);
    a.cqo();
    a.mov(rcx, f.divisor);
    a.idiv(rcx);
    a.ret();
    auto code = install::install(a, **zone, {.name = "area", .visibility = code::Visibility::kOtherThreads});
    if (!code) return fail("install method", code.error());
    methods.push_back({code->label_address(entry->checked), code->label_address(entry->unchecked)});
  }

  // The caller: std::int64_t area_of(Shape*), one send site.
  Assembler a;
  a.push(rbp);
  a.mov(rbp, rsp);
  auto send = ic.emit_send(a, kArea);
  if (!send) return fail("send site", send.error());
  a.pop(rbp);
  a.ret();
  auto caller =
      install::install(a, **zone, {.name = "area_of", .visibility = code::Visibility::kOtherThreads});
  if (!caller) return fail("install caller", caller.error());
  auto site = ic.attach(*caller, *send);
  if (!site) return fail("attach", site.error());
  auto area_of = caller->entry<std::int64_t(const Shape*)>();

  auto state = [&] {
    auto info = ic.site(*site);
    return info ? describe(*info) : std::string("?");
  };
  std::printf("site: %s\n", state().c_str());
  const Shape shapes[] = {
      {kCircle, 0, 10}, {kSquare, 0, 10}, {kTriangle, 0, 10}, {kHexagon, 0, 10}, {kStar, 0, 10}};
  for (const Shape& s : shapes) {
    const std::string before = state();
    const std::int64_t area = area_of(&s);
    const std::string after = state();
    std::printf("%-9s area %4lld   site: %s%s\n", kClassNames[s.tag], static_cast<long long>(area),
                after.c_str(), before == after ? "" : ("   (was " + before + ")").c_str());
  }
  // Every class again: all hit the open PIC's table now.
  const auto misses = ic.stats().misses;
  std::int64_t total = 0;
  for (const Shape& s : shapes) total += area_of(&s);
  std::printf("all five again: total area %lld, %llu new misses\n", static_cast<long long>(total),
              static_cast<unsigned long long>(ic.stats().misses - misses));
  return total == 314 + 100 + 50 + 260 + 150 ? 0 : 1;
}
