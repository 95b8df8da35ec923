// Background compilation (Jit::start_compile_thread, som/src/jit/compile_thread_p.h) under real
// concurrency: the compile thread emits, installs and attaches send sites while the VM's thread
// interprets the same methods, runs compiled code through the inline caches (misses link them),
// collects garbage, replaces methods and deletes them. Each test checks the answers the sends
// give, and that the code the compile thread made is the code that runs.
//
// Label `stress` (make tsan runs it under ThreadSanitizer). SOM_COMPILE_THREAD_ROUNDS sets the
// rounds of the longer tests (default 20).
#include "jit/jit_p.h"
#include "vm_p.h"

#include <gtest/gtest.h>

#include <chrono>
#include <cstdlib>
#include <fstream>
#include <memory>
#include <string>
#include <thread>
#include <vector>

namespace som {
namespace {

int rounds() {
  const char* env = std::getenv("SOM_COMPILE_THREAD_ROUNDS");
  return env && std::atoi(env) > 0 ? std::atoi(env) : 20;
}

// `BgSums class>>sum<k>: n` answers 1 + 2 + ... + n + k, each a method of its own; `loop: n`
// is one long loop; `twice: x` calls `once:`, which tests replace.
std::string sums_class(int methods) {
  std::string src = "BgSums = ( ---- ";
  for (int k = 0; k < methods; k++)
    src += "sum" + std::to_string(k) + ": n = ( | s | s := " + std::to_string(k) +
           ". 1 to: n do: [ :i | s := s + i ]. ^s ) ";
  src += "loop: n = ( | s | s := 0. 1 to: n do: [ :i | s := s + (i % 7) ]. ^s ) ";
  src += "once: x = ( ^x + 1 ) ";
  src += "onceAgain: x = ( ^x + 2 ) ";
  src += "twice: x = ( ^(self once: x) + (self once: x) ) ";
  src += "indexOf: aSymbol = ( | ms | ms := self class methods. "
         "  1 to: ms length do: [ :i | (ms at: i) signature == aSymbol ifTrue: [ ^i ] ]. ^0 ) ";
  src += "swapOnce = ( | ms a b m | ms := self class methods. a := self indexOf: #once:. "
         "  b := self indexOf: #onceAgain:. m := ms at: a. ms at: a put: (ms at: b). ms at: b put: m ) ";
  return src + ")";
}

constexpr int kMethods = 12;

class BackgroundCompile : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/som_compile_thread_test_XXXXXX";
    ASSERT_NE(mkdtemp(tmpl), nullptr);
    dir_ = tmpl;
    std::ofstream(dir_ + "/BgSums.som") << sums_class(kMethods);
  }
  void TearDown() override { std::system(("rm -rf " + dir_).c_str()); }

  // A VM whose hot methods (threshold 2) compile on the compile thread.
  std::unique_ptr<VM> boot() {
    auto vm = std::make_unique<VM>();
    vm->set_class_path(std::string(SOM_CORE_LIB_DIR) + ":" + dir_);
    EXPECT_TRUE(vm->bootstrap());
    vm->jit_ = std::make_unique<Jit>(*vm);
    vm->jit_threshold_ = 2;
    vm->jit_->start_compile_thread();
    return vm;
  }
  Class* sums(VM& vm) {
    Class* c = vm.load_class(vm.intern("BgSums"));
    EXPECT_NE(c, nullptr);
    return c;
  }
  Method* class_method(VM& vm, const std::string& selector) {
    auto it = sums(vm)->meta->method_map.find(vm.intern(selector));
    return it == sums(vm)->meta->method_map.end() ? nullptr : it->second;
  }
  static int64_t sum_answer(int k, int64_t n) { return k + n * (n + 1) / 2; }
  // Calls sum<k>: for every k, checking each answer, until every method runs compiled or
  // `limit` passes. Answers whether all were compiled.
  bool call_until_compiled(VM& vm, std::chrono::seconds limit) {
    Class* c = sums(vm);
    const auto deadline = std::chrono::steady_clock::now() + limit;
    for (int64_t n = 1;; n = n % 50 + 1) {
      bool all = true;
      for (int k = 0; k < kMethods; k++) {
        const std::string selector = "sum" + std::to_string(k) + ":";
        const Value v = vm.send(val(c), vm.intern(selector), {from_int(n)});
        EXPECT_EQ(int_of(v), sum_answer(k, n)) << selector << " " << n;
        if (int_of(v) != sum_answer(k, n)) return false;
        Method* m = class_method(vm, selector);
        all = all && m && m->jit_entry != 0;
      }
      if (all) return true;
      if (std::chrono::steady_clock::now() > deadline) return false;
    }
  }

  std::string dir_;
};

TEST_F(BackgroundCompile, HotMethodsAreCompiledOnTheCompileThreadAndThenRunCompiled) {
  auto vm = boot();
  ASSERT_TRUE(call_until_compiled(*vm, std::chrono::seconds(30)));
  const JitStats& s = vm->jit_->stats();
  // Every method came from the compile thread: none was compiled on the VM's thread.
  EXPECT_GE(s.background_compiles, static_cast<uint64_t>(kMethods));
  EXPECT_EQ(s.methods_compiled + s.compile_failures, s.background_compiles);
  EXPECT_EQ(s.compile_failures, 0u);
  // The compiled code answers as the interpreter did, and the VM's thread spent less time on
  // the JIT than the compiles took.
  for (int k = 0; k < kMethods; k++)
    EXPECT_EQ(int_of(vm->send(val(sums(*vm)), vm->intern("sum" + std::to_string(k) + ":"), {from_int(1000)})),
              sum_answer(k, 1000));
  EXPECT_GT(s.compile_nanos, 0u);
}

TEST_F(BackgroundCompile, ALongLoopMovesIntoItsCodeByOnStackReplacementOnceTheCodeIsReady) {
  auto vm = boot();
  // Run once: its back-edges submit it, and a later back-edge enters the published code.
  constexpr int64_t n = 20'000'000;
  const Value v = vm->send(val(sums(*vm)), vm->intern("loop:"), {from_int(n)});
  int64_t expected = 0;
  for (int64_t i = 1; i <= n; i++) expected += i % 7;
  EXPECT_EQ(int_of(v), expected);
  EXPECT_GE(vm->jit_->stats().osr_entries, 1u);
  EXPECT_GE(vm->jit_->stats().background_compiles, 1u);
}

TEST_F(BackgroundCompile, DiscardTakesBackOrWaitsForTheCompileOfItsMethod) {
  for (int round = 0; round < rounds(); round++) {
    auto vm = boot();
    Class* c = sums(*vm);
    // Two calls each reach the threshold: every method is submitted, most still queued.
    for (int k = 0; k < kMethods; k++)
      for (int i = 0; i < 2; i++) vm->send(val(c), vm->intern("sum" + std::to_string(k) + ":"), {from_int(3)});
    for (int k = 0; k < kMethods; k++) {
      Method* m = class_method(*vm, "sum" + std::to_string(k) + ":");
      vm->jit_->discard(m);
      EXPECT_EQ(m->jit_entry, 0u) << k;
      EXPECT_FALSE(m->jit_queued) << k;
    }
    // No outcome of a withdrawn request arrives later: once the thread is idle, publishing what
    // has finished (a listing does) compiles none of them.
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
    for (int k = 0; k < kMethods; k++) {
      Method* m = class_method(*vm, "sum" + std::to_string(k) + ":");
      EXPECT_NE(vm->jit_->listing(m).find("not compiled"), std::string::npos) << k;
      EXPECT_EQ(m->jit_entry, 0u) << k;
    }
    // Interpreted again, then compiled again; the answers stay right throughout.
    ASSERT_TRUE(call_until_compiled(*vm, std::chrono::seconds(30))) << "round " << round;
  }
}

TEST_F(BackgroundCompile, AVmDestroyedWhileItsMethodsCompileWaitsForTheCompileInProgress) {
  for (int round = 0; round < rounds(); round++) {
    auto vm = boot();
    Class* c = sums(*vm);
    for (int k = 0; k < kMethods; k++)
      for (int i = 0; i < 3; i++)
        EXPECT_EQ(int_of(vm->send(val(c), vm->intern("sum" + std::to_string(k) + ":"), {from_int(10)})),
                  sum_answer(k, 10));
    vm.reset();  // the compile thread may be inside compile_method: the VM's methods must outlive it
  }
}

TEST_F(BackgroundCompile, MethodChangesAndCollectionsRaceTheCompileThread) {
  for (int round = 0; round < rounds(); round++) {
    auto vm = boot();
    vm->heap_.set_stress(round % 2 == 1);  // every other round: a collection at every safepoint
    Class* c = sums(*vm);
    bool swapped = false;
    for (int i = 0; i < 200; i++) {
      // twice: sends once: twice; its callers' caches and code are being made meanwhile.
      const int64_t x = i;
      const int64_t expected = swapped ? 2 * (x + 2) : 2 * (x + 1);
      ASSERT_EQ(int_of(vm->send(val(c), vm->intern("twice:"), {from_int(x)})), expected)
          << "round " << round << ", call " << i << (swapped ? " (swapped)" : "");
      vm->send(val(c), vm->intern("sum" + std::to_string(i % kMethods) + ":"), {from_int(5)});
      if (i % 37 == 36) {
        vm->send(val(c), vm->intern("swapOnce"));
        swapped = !swapped;
      }
    }
  }
}

}  // namespace
}  // namespace som
