// ic benchmarks: the cost of a send through each inline-cache state, beside its comparators in
// the same binary and run, and the cost of one transition.
//
// Every BM_Send entry runs a generated loop over 4096 receivers (an array of object pointers):
// load the receiver, pass two arguments, send, add the result. The methods are generated too
// (one per class, same body). `ns_per_send` is the time of one iteration of that loop.
//   direct          the loop calls the method's unchecked entry directly: the floor
//   mono            a monomorphic hit (checked entry)
//   pic2, pic6      a closed PIC with 2 / 6 classes; receivers rotate (predictable) or are random
//   mega            an open PIC, 64 classes in random order (table probe + indirect jump)
//   hashmap         C++: std::unordered_map<(tag, selector), entry> lookup + indirect call, same
//                   receivers and generated methods as mega
//   virtual         C++ virtual call on C++ objects of 1 / 6 / 64 classes (random for 6 and 64)
//   indirect_cell   no code patching: the site loads the expected tag and the target from a
//                   writable cell and calls through it (mono: the checked entry; pic: the PIC)
// BM_Transition/mono_to_pic and /pic_extend: one send that makes that transition, including
// the miss handler, the new or patched stub and the cross-core serialization (membarrier).
#include <benchmark/benchmark.h>

#include <array>
#include <cstdint>
#include <cstdio>
#include <memory>
#include <random>
#include <unordered_map>
#include <utility>
#include <vector>

#include "jitkit/code/code_zone.h"
#include "jitkit/ic/engine.h"
#include "jitkit/install/install.h"
#include "jitkit/x64/assembler.h"

namespace {

using namespace jitkit;
using namespace jitkit::x64;

constexpr std::size_t kReceivers = 65536;
constexpr std::uint32_t kClasses = 64;
constexpr std::uint32_t kArea = 7;

struct Object {
  std::uint32_t tag;
  std::uint32_t pad;
};

using LoopFn = std::uint64_t (*)(const std::uint64_t* receivers, std::size_t n, std::uint64_t arg);
using MethodFn = std::uint64_t (*)(std::uint64_t receiver, std::uint64_t a0, std::uint64_t a1);

void die(const Error& e) {
  std::fprintf(stderr, "ic_bench: %s\n", e.message().c_str());
  std::exit(1);
}
template <typename T>
T take(Result<T> r) {
  if (!r) die(r.error());
  return std::move(r).value();
}
void check(const Status& s) {
  if (!s) die(s.error());
}

class Bench {
 public:
  Bench() {
    code::ZoneOptions zo;
    zo.reserve_bytes = 64u << 20;
    zone_ = take(code::CodeZone::create(zo));
    ic::VmInterface vm;
    vm.load_tag = [](Assembler& a, Gp64 receiver, Gp32 tag) { a.mov(tag, dword_ptr(receiver, 0)); };
    vm.lookup = [this](std::uint32_t tag, std::uint32_t sel) -> std::optional<ic::Method> {
      if (sel != kArea || tag >= methods_.size()) return std::nullopt;
      return methods_[tag];
    };
    vm.not_understood = [](const ic::NotUnderstood&) -> std::uint64_t { return 0; };
    vm.selector_name = [](std::uint32_t) { return std::string("area"); };
    ic::EngineOptions eo;
    eo.register_stubs = false;  // keep the ELF building out of the transition numbers
    engine_ = take(ic::Engine::create(*zone_, std::move(vm), eo));
    for (std::uint32_t t = 0; t < kClasses; ++t) {
      Assembler a;
      auto entry = take(engine_->emit_method_entry(a));
      a.imul(rax, rsi, 1000);
      a.add(rax, rdx);
      a.add(rax, static_cast<std::int64_t>(t));
      a.ret();
      auto code = take(install::install(
          a, *zone_, {.name = "area" + std::to_string(t), .visibility = code::Visibility::kOtherThreads}));
      methods_.push_back({code.label_address(entry.checked), code.label_address(entry.unchecked)});
      objects_.push_back(std::make_unique<Object>(Object{t, 0}));
    }
    cell_ = take(zone_->allocate_data(16, 16, code::DataAccess::kReadWrite));
  }

  ic::Engine& engine() { return *engine_; }
  const ic::Method& method(std::uint32_t tag) const { return methods_[tag]; }
  std::uint64_t object(std::uint32_t tag) const {
    return reinterpret_cast<std::uint64_t>(objects_[tag].get());
  }
  std::uint64_t* cell() { return reinterpret_cast<std::uint64_t*>(cell_.data); }

  // The loop of the file comment; `emit_call` emits the send itself.
  template <typename EmitCall>
  LoopFn make_loop(EmitCall emit_call, ic::SiteId* site = nullptr) {
    Assembler a;
    a.push(rbp);
    a.mov(rbp, rsp);
    a.push(rbx);
    a.push(r12);
    a.push(r13);
    a.push(r14);
    a.mov(rbx, rdi);
    a.mov(r12, rsi);
    a.mov(r13, rdx);
    a.xor_(r14d, r14d);
    const Label loop = a.new_label();
    a.align(16);
    a.bind(loop);
    a.mov(rdi, qword_ptr(rbx, 0));
    a.mov(rsi, r13);
    a.mov(rdx, r13);
    std::optional<ic::SendSite> send = emit_call(a);
    a.add(r14, rax);
    a.add(rbx, 8);
    a.dec(r12);
    a.jnz(loop);
    a.mov(rax, r14);
    a.pop(r14);
    a.pop(r13);
    a.pop(r12);
    a.pop(rbx);
    a.pop(rbp);
    a.ret();
    auto code =
        take(install::install(a, *zone_, {.name = "loop", .visibility = code::Visibility::kOtherThreads}));
    if (send) {
      ic::SiteId id = take(engine_->attach(code, *send));
      if (site != nullptr) *site = id;
    }
    return code.entry<LoopFn>();
  }
  LoopFn send_loop(ic::SiteId* site = nullptr) {
    return make_loop(
        [this](Assembler& a) -> std::optional<ic::SendSite> { return take(engine_->emit_send(a, kArea)); },
        site);
  }

 private:
  std::unique_ptr<code::CodeZone> zone_;
  std::unique_ptr<ic::Engine> engine_;
  std::vector<ic::Method> methods_;
  std::vector<std::unique_ptr<Object>> objects_;
  code::DataBlock cell_;
};

Bench& bench() {
  static Bench b;
  return b;
}

// Receivers of `classes` classes, rotating (0, 1, 2, ..., 0, 1, ...) or in random order.
std::vector<std::uint64_t> receivers(std::uint32_t classes, bool random) {
  std::mt19937 rng(12345);
  std::vector<std::uint64_t> r(kReceivers);
  for (std::size_t i = 0; i < kReceivers; ++i) {
    const auto tag =
        random ? static_cast<std::uint32_t>(rng() % classes) : static_cast<std::uint32_t>(i % classes);
    r[i] = bench().object(tag);
  }
  return r;
}

void report(benchmark::State& state) {
  state.SetItemsProcessed(static_cast<std::int64_t>(state.iterations() * kReceivers));
  state.counters["time_per_send"] =
      benchmark::Counter(static_cast<double>(kReceivers),
                         benchmark::Counter::kIsIterationInvariantRate | benchmark::Counter::kInvert);
}

// What the loop must return: each receiver's own method ran (area<t> adds its tag t).
std::uint64_t expected_sum(const std::vector<std::uint64_t>& recv, std::uint64_t arg) {
  std::uint64_t sum = 0;
  for (std::uint64_t r : recv) sum += arg * 1000 + arg + reinterpret_cast<const Object*>(r)->tag;
  return sum;
}

void run_loop(benchmark::State& state, LoopFn fn, const std::vector<std::uint64_t>& recv,
              bool same_target = false) {
  const std::uint64_t got = fn(recv.data(), recv.size(), 3);  // warm up: links the site
  if (!same_target && got != expected_sum(recv, 3)) {
    state.SkipWithError("a send ran the wrong method");
    return;
  }
  const auto misses = bench().engine().stats().misses;
  for (auto _ : state) benchmark::DoNotOptimize(fn(recv.data(), recv.size(), 3));
  if (bench().engine().stats().misses != misses) state.SkipWithError("the cache missed after warm-up");
  report(state);
}

void BM_SendDirect(benchmark::State& state) {
  static LoopFn fn = bench().make_loop([](Assembler& a) -> std::optional<ic::SendSite> {
    a.call(abs_address(bench().method(0).unchecked_entry));
    return std::nullopt;
  });
  run_loop(state, fn, receivers(1, false), /*same_target=*/true);
}

void BM_SendIc(benchmark::State& state, std::uint32_t classes, bool random) {
  LoopFn fn = bench().send_loop();
  run_loop(state, fn, receivers(classes, random));
}

void BM_SendIndirectCell(benchmark::State& state, std::uint32_t classes, bool random) {
  Bench& b = bench();
  std::uint64_t* cell = b.cell();
  if (classes == 1) {
    cell[0] = 0;                          // expected tag
    cell[1] = b.method(0).checked_entry;  // target
  } else {
    // The target is a closed PIC of a site linked for these classes.
    ic::SiteId site;
    LoopFn warm = b.send_loop(&site);
    auto r = receivers(classes, false);
    benchmark::DoNotOptimize(warm(r.data(), r.size(), 3));
    cell[0] = 0;
    cell[1] = take(b.engine().site(site)).call_target;
  }
  const ic::CallingConvention& cc = b.engine().convention();
  LoopFn fn = b.make_loop([&](Assembler& a) -> std::optional<ic::SendSite> {
    a.mov(cc.selector, dword_ptr(abs(cell)));
    a.call(qword_ptr(abs(cell + 1)));
    return std::nullopt;
  });
  run_loop(state, fn, receivers(classes, random));
}

void BM_SendHashmap(benchmark::State& state) {
  std::unordered_map<std::uint64_t, MethodFn> table;
  for (std::uint32_t t = 0; t < kClasses; ++t) {
    table.emplace(std::uint64_t{kArea} << 32 | t,
                  reinterpret_cast<MethodFn>(bench().method(t).unchecked_entry));
  }
  const auto recv = receivers(kClasses, true);
  std::uint64_t sum = 0;
  for (auto _ : state) {
    sum = 0;
    for (std::uint64_t r : recv) {
      const std::uint32_t tag = reinterpret_cast<const Object*>(r)->tag;
      auto it = table.find(std::uint64_t{kArea} << 32 | tag);
      sum += it->second(r, 3, 3);
    }
    benchmark::DoNotOptimize(sum);
  }
  if (sum != expected_sum(recv, 3)) state.SkipWithError("a send ran the wrong method");
  report(state);
}

// C++ virtual calls: one class per tag, the same arithmetic as the generated methods.
struct Shape {
  virtual ~Shape() = default;
  virtual std::uint64_t area(std::uint64_t a0, std::uint64_t a1) const = 0;
};
template <std::uint32_t K>
struct ShapeK final : Shape {
  __attribute__((noinline)) std::uint64_t area(std::uint64_t a0, std::uint64_t a1) const override {
    return a0 * 1000 + a1 + K;
  }
};
template <std::uint32_t... K>
std::vector<std::unique_ptr<Shape>> make_shapes(std::integer_sequence<std::uint32_t, K...>) {
  std::vector<std::unique_ptr<Shape>> v;
  (v.push_back(std::make_unique<ShapeK<K>>()), ...);
  return v;
}

void BM_SendVirtual(benchmark::State& state, std::uint32_t classes, bool random) {
  static auto shapes = make_shapes(std::make_integer_sequence<std::uint32_t, kClasses>{});
  std::mt19937 rng(12345);
  std::vector<const Shape*> recv(kReceivers);
  for (std::size_t i = 0; i < kReceivers; ++i) {
    recv[i] = shapes[random ? rng() % classes : i % classes].get();
  }
  for (auto _ : state) {
    std::uint64_t sum = 0;
    for (const Shape* s : recv) {
      benchmark::DoNotOptimize(s);
      sum += s->area(3, 3);
    }
    benchmark::DoNotOptimize(sum);
  }
  report(state);
}

// One send that makes the transition; the site is reset (flush: unlink + grace period + free)
// and brought to the starting state outside the timing.
void BM_Transition(benchmark::State& state, std::size_t start_classes) {
  Bench& b = bench();
  ic::SiteId site;
  LoopFn fn = b.send_loop(&site);
  const std::uint64_t next = b.object(static_cast<std::uint32_t>(start_classes));
  for (auto _ : state) {
    state.PauseTiming();
    check(b.engine().flush_all());
    for (std::uint32_t t = 0; t < start_classes; ++t) check(b.engine().link(site, t));
    state.ResumeTiming();
    benchmark::DoNotOptimize(fn(&next, 1, 3));
  }
  const auto info = take(b.engine().site(site));
  if (info.kind != ic::SiteKind::kPolymorphic || info.cases.size() != start_classes + 1) {
    state.SkipWithError("the send did not make the transition");
  }
}

}  // namespace

int main(int argc, char** argv) {
  benchmark::RegisterBenchmark("BM_Send/direct", BM_SendDirect);
  benchmark::RegisterBenchmark("BM_Send/mono", BM_SendIc, 1, false);
  benchmark::RegisterBenchmark("BM_Send/pic2_predictable", BM_SendIc, 2, false);
  benchmark::RegisterBenchmark("BM_Send/pic2_random", BM_SendIc, 2, true);
  benchmark::RegisterBenchmark("BM_Send/pic6_predictable", BM_SendIc, 6, false);
  benchmark::RegisterBenchmark("BM_Send/pic6_random", BM_SendIc, 6, true);
  benchmark::RegisterBenchmark("BM_Send/mega", BM_SendIc, kClasses, true);
  benchmark::RegisterBenchmark("BM_Send/hashmap", BM_SendHashmap);
  benchmark::RegisterBenchmark("BM_Send/virtual_mono", BM_SendVirtual, 1, false);
  benchmark::RegisterBenchmark("BM_Send/virtual6_random", BM_SendVirtual, 6, true);
  benchmark::RegisterBenchmark("BM_Send/virtual64_random", BM_SendVirtual, kClasses, true);
  benchmark::RegisterBenchmark("BM_Send/indirect_cell_mono", BM_SendIndirectCell, 1, false);
  benchmark::RegisterBenchmark("BM_Send/indirect_cell_pic6_predictable", BM_SendIndirectCell, 6, false);
  benchmark::RegisterBenchmark("BM_Send/indirect_cell_pic6_random", BM_SendIndirectCell, 6, true);
  benchmark::RegisterBenchmark("BM_Transition/mono_to_pic", BM_Transition, 1);
  benchmark::RegisterBenchmark("BM_Transition/pic_extend", BM_Transition, 2);
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
