// A toy dynamically typed VM for the ic tests: objects whose first word is a class tag, small
// integers tagged by their low bit, and methods generated per (class, selector) whose result
// encodes which method ran and with which arguments:
//
//   result = method id << 48 | (arg0 * 1000 + arg1)        (args below 10^6)
//
// A send whose selector the class does not understand answers
//   kNotUnderstoodId << 48 | selector << 32 | tag << 16 | (arg0 & 0xffff).
//
// Every send is made through a generated caller `uint64 (*)(receiver, arg0, arg1)` holding one
// send site. Lookups read an atomic table that a test (or the stress mutator) may change.
#pragma once

#include <gtest/gtest.h>

#include <atomic>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "jitkit/code/code_zone.h"
#include "jitkit/ic/engine.h"
#include "jitkit/install/install.h"
#include "jitkit/x64/assembler.h"

namespace jitkit::ic::test_util {

using namespace jitkit::x64;

inline constexpr std::uint64_t kNotUnderstoodId = 0xFFFF;
inline constexpr std::uint32_t kSmallIntTag = 1000;  // the class of tagged small integers

struct Object {
  std::uint32_t tag;
  std::uint32_t pad = 0;
};

inline std::uint64_t method_result(std::uint64_t id, std::uint64_t a0, std::uint64_t a1) {
  return id << 48 | (a0 * 1000 + a1);
}
inline std::uint64_t nu_result(std::uint32_t sel, std::uint32_t tag, std::uint64_t a0) {
  return kNotUnderstoodId << 48 | std::uint64_t{sel} << 32 | std::uint64_t{tag} << 16 | (a0 & 0xffff);
}
inline std::uint64_t small_int(std::int64_t v) { return static_cast<std::uint64_t>(v) << 1 | 1; }

using CallerFn = std::uint64_t (*)(std::uint64_t receiver, std::uint64_t a0, std::uint64_t a1);

class World {
 public:
  static constexpr int kMaxTags = 16;
  static constexpr int kMaxSelectors = 8;

  struct MethodCode {
    std::uint64_t id = 0;
    Method entries;
    code::CodeBlock block;
  };

  // `options` may set max_pic_cases etc.; `zone_options` the zone (free_batch 1 by default, so
  // that freed code is int3 at once and a stale call traps).
  explicit World(EngineOptions options = {}, code::ZoneOptions zone_options = default_zone()) {
    for (auto& row : table_) {
      for (auto& m : row) m.store(-1);
    }
    auto z = code::CodeZone::create(zone_options);
    if (!z) {
      ADD_FAILURE() << z.error().message();
      return;
    }
    zone_ = std::move(z).value();
    auto e = Engine::create(*zone_, interface(), std::move(options));
    if (!e) {
      ADD_FAILURE() << e.error().message();
      return;
    }
    engine_ = std::move(e).value();
  }

  static code::ZoneOptions default_zone() {
    code::ZoneOptions o;
    o.reserve_bytes = 16u << 20;
    o.free_batch = 1;
    return o;
  }

  // The VM interface, reading this world's tables.
  VmInterface interface() {
    VmInterface vm;
    vm.load_tag = [](Assembler& a, Gp64 receiver, Gp32 tag) {
      const Label heap = a.new_label();
      const Label done = a.new_label();
      a.test(to_gp32(receiver), 1);
      a.jz(heap, JumpForm::kShort);
      a.mov(tag, kSmallIntTag);
      a.jmp(done, JumpForm::kShort);
      a.bind(heap);
      a.mov(tag, dword_ptr(receiver, 0));
      a.bind(done);
    };
    vm.lookup = [this](std::uint32_t tag, std::uint32_t sel) -> std::optional<Method> {
      lookups_.fetch_add(1, std::memory_order_relaxed);
      const int m = method_index(tag, sel);
      if (m < 0) return std::nullopt;
      std::lock_guard lock(methods_mutex_);
      return methods_[static_cast<std::size_t>(m)].entries;
    };
    vm.not_understood = [this](const NotUnderstood& nu) -> std::uint64_t {
      not_understood_.fetch_add(1, std::memory_order_relaxed);
      last_nu_receiver_.store(nu.receiver);
      last_nu_arg1_.store(nu.args.size() > 1 ? nu.args[1] : ~0ull);
      return nu_result(nu.selector, nu.tag, nu.args.empty() ? 0 : nu.args[0]);
    };
    vm.selector_name = [](std::uint32_t sel) {
      static const char* names[] = {"area", "perimeter", "scale:by:", "name", "draw:"};
      return sel < 5 ? std::string(names[sel]) : "sel" + std::to_string(sel);
    };
    return vm;
  }

  bool ok() const { return engine_ != nullptr; }
  Engine& engine() { return *engine_; }
  code::CodeZone& zone() { return *zone_; }

  int method_index(std::uint32_t tag, std::uint32_t sel) const {
    const int t = tag == kSmallIntTag ? kMaxTags - 1 : static_cast<int>(tag);
    if (t < 0 || t >= kMaxTags || sel >= kMaxSelectors) return -1;
    return table_[t][sel].load(std::memory_order_acquire);
  }

  // A new method body (entries + `return id << 48 | a0 * 1000 + a1`) with a fresh id.
  MethodCode make_method() {
    const std::uint64_t id = next_id_.fetch_add(1);
    Assembler a;
    auto labels = engine_->emit_method_entry(a);
    EXPECT_TRUE(labels.has_value());
    a.imul(rax, rsi, 1000);
    a.add(rax, rdx);
    a.movabs(r11, id << 48);
    a.add(rax, r11);
    a.ret();
    auto code = install::install(
        a, *zone_, {.name = "method" + std::to_string(id), .visibility = code::Visibility::kOtherThreads});
    EXPECT_TRUE(code.has_value()) << (code ? "" : code.error().message());
    MethodCode m;
    m.id = id;
    m.entries = {code->label_address(labels->checked), code->label_address(labels->unchecked)};
    m.block = code->block();
    return m;
  }

  // A new method, not yet the answer of any lookup; returns its index.
  int add_method() {
    MethodCode m = make_method();
    std::lock_guard lock(methods_mutex_);
    methods_.push_back(m);
    return static_cast<int>(methods_.size() - 1);
  }
  // Defines (tag, sel) with a new method; returns its index.
  int define(std::uint32_t tag, std::uint32_t sel) {
    const int index = add_method();
    slot(tag, sel).store(index, std::memory_order_release);
    return index;
  }
  // Makes (tag, sel) answer method `index` (e.g. an inherited one).
  void set(std::uint32_t tag, std::uint32_t sel, int index) {
    slot(tag, sel).store(index, std::memory_order_release);
  }
  MethodCode method(int index) {
    std::lock_guard lock(methods_mutex_);
    return methods_[static_cast<std::size_t>(index)];
  }
  // The result a send must give.
  std::uint64_t expected(std::uint32_t tag, std::uint32_t sel, std::uint64_t a0, std::uint64_t a1) {
    const int m = method_index(tag, sel);
    if (m < 0) return nu_result(sel, tag, a0);
    return method_result(method(m).id, a0, a1);
  }

  // A caller holding one send site of `sel`.
  struct Caller {
    CallerFn fn = nullptr;
    SiteId site;
    code::CodeBlock block;
  };
  Caller make_caller(std::uint32_t sel) {
    Assembler a;
    a.push(rbp);
    a.mov(rbp, rsp);
    auto send = engine_->emit_send(a, sel);
    EXPECT_TRUE(send.has_value());
    a.pop(rbp);
    a.ret();
    auto code = install::install(
        a, *zone_, {.name = "caller_" + std::to_string(sel), .visibility = code::Visibility::kOtherThreads});
    EXPECT_TRUE(code.has_value()) << (code ? "" : code.error().message());
    auto site = engine_->attach(*code, *send);
    EXPECT_TRUE(site.has_value()) << (site ? "" : site.error().message());
    return {code->entry<CallerFn>(), *site, code->block()};
  }

  Object* object(std::uint32_t tag) {
    objects_.push_back(std::make_unique<Object>(Object{tag}));
    return objects_.back().get();
  }
  static std::uint64_t ref(const Object* o) { return reinterpret_cast<std::uint64_t>(o); }

  std::uint64_t lookups() const { return lookups_.load(); }
  std::uint64_t not_understood_calls() const { return not_understood_.load(); }
  std::uint64_t last_nu_receiver() const { return last_nu_receiver_.load(); }
  std::uint64_t last_nu_arg1() const { return last_nu_arg1_.load(); }

  ~World() {
    engine_.reset();  // before the zone
  }

 private:
  std::atomic<int>& slot(std::uint32_t tag, std::uint32_t sel) {
    const int t = tag == kSmallIntTag ? kMaxTags - 1 : static_cast<int>(tag);
    return table_[t][sel];
  }

  std::unique_ptr<code::CodeZone> zone_;
  std::unique_ptr<Engine> engine_;
  std::atomic<int> table_[kMaxTags][kMaxSelectors];
  std::mutex methods_mutex_;
  std::vector<MethodCode> methods_;
  std::atomic<std::uint64_t> next_id_{1};
  std::vector<std::unique_ptr<Object>> objects_;
  std::atomic<std::uint64_t> lookups_{0};
  std::atomic<std::uint64_t> not_understood_{0};
  std::atomic<std::uint64_t> last_nu_receiver_{0};
  std::atomic<std::uint64_t> last_nu_arg1_{0};
};

}  // namespace jitkit::ic::test_util
