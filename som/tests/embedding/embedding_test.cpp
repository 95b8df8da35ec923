// The embedding API (jitkit/som/vm.h) and native methods (jitkit/som/native.h), through the
// public headers only: values, errors as Results, handles across collections, natives called
// from interpreted and compiled code, re-entry at depth, unwinding through natives, refusal
// from other threads and signal handlers, and bad native libraries.
//
// Built three times (CMakeLists.txt): SOM_EMBED_JIT selects the JIT mode (0 off, 2 always) and
// SOM_EMBED_SUITE the test suite's name; the third build runs under SOM_GC_STRESS=1, where
// every safepoint collects.
#include "jitkit/som/native.h"
#include "jitkit/som/vm.h"

#include <gtest/gtest.h>
#include <pthread.h>
#include <signal.h>

#include <atomic>
#include <chrono>
#include <functional>
#include <regex>
#include <string>
#include <thread>

namespace js = jitkit::som;

namespace {

constexpr js::JitMode kJitMode = SOM_EMBED_JIT == 0   ? js::JitMode::kOff
                                 : SOM_EMBED_JIT == 3 ? js::JitMode::kOn
                                                      : js::JitMode::kAlways;
constexpr bool kJitBackground = SOM_EMBED_JIT == 3;  // hot after 2 calls, compiled on the side
constexpr bool kGcStress = SOM_EMBED_GC_STRESS;
// AddressSanitizer's redzones make every native frame several times larger (about 6 KiB per
// sandwich level instead of 1). And ASan stops unpoisoning the stack when an exception is
// thrown more than 64 MiB below the stack's top (kMaxExpectedCleanupSize; false reports
// follow), so the stack overflow test stays below that there and expects less depth.
#if defined(__SANITIZE_ADDRESS__)
constexpr size_t kStackScale = 6;
constexpr size_t kOverflowStackBytes = size_t{48} << 20;
constexpr int64_t kOverflowMinDepth = 4000;
#else
constexpr size_t kStackScale = 1;
constexpr size_t kOverflowStackBytes = size_t{kGcStress ? 24 : 32} << 20;
constexpr int64_t kOverflowMinDepth = 10000;
#endif

// Runs `body` on a thread with a native stack of `stack_bytes`, with a VM that thread creates
// (and so owns). Sandwiches cost about 1 KiB of native stack per level.
void with_vm(const std::function<void(js::Vm&)>& body, size_t stack_bytes = (size_t{256} << 20) * kStackScale) {
  struct Call {
    const std::function<void(js::Vm&)>* body;
  } call{&body};
  pthread_attr_t attr;
  ASSERT_EQ(0, pthread_attr_init(&attr));
  ASSERT_EQ(0, pthread_attr_setstacksize(&attr, stack_bytes));
  pthread_t thread;
  ASSERT_EQ(0, pthread_create(
                   &thread, &attr,
                   [](void* p) -> void* {
                     js::Options options;
                     options.class_path = {SOM_CORE_LIB_DIR, SOM_EMBED_DIR};
                     options.jit = kJitMode;
                     options.jit_background = kJitBackground;
                     if (kJitBackground) options.jit_threshold = 2;
                     options.natives = {SOM_TEST_NATIVES};
                     auto vm = js::Vm::create(options);
                     EXPECT_TRUE(vm) << (vm ? "" : vm.error().describe());
                     if (vm) (*static_cast<Call*>(p)->body)(**vm);
                     return nullptr;
                   },
                   &call));
  pthread_join(thread, nullptr);
  pthread_attr_destroy(&attr);
}

// Sends and expects success; answers the reply (the empty Value on failure).
js::Value ok(js::Vm& vm, js::Result<js::Value> r) {
  EXPECT_TRUE(r) << (r ? "" : r.error().describe());
  (void)vm;
  return r ? *r : js::Value();
}

int64_t as_int(js::Vm& vm, js::Value v) {
  auto i = vm.to_int64(v);
  EXPECT_TRUE(i) << (i ? "" : std::string(i.error().message()));
  return i ? *i : -1;
}

js::Value native_test(js::Vm& vm) { return ok(vm, vm.global("NativeTest")); }
js::Value sample(js::Vm& vm) { return ok(vm, vm.send(ok(vm, vm.global("EmbedSample")), "make")); }
int64_t counter(js::Vm& vm, const char* selector) { return as_int(vm, ok(vm, vm.send(native_test(vm), selector))); }

class SOM_EMBED_SUITE : public ::testing::Test {};

TEST_F(SOM_EMBED_SUITE, SendsAnswerValuesOfEveryKind) {
  with_vm([](js::Vm& vm) {
    EXPECT_EQ(42, as_int(vm, ok(vm, vm.send(vm.integer(40), "+", {vm.integer(2)}))));
    // The header's inline small-integer encoding is the VM's.
    EXPECT_EQ(js::small_integer(-42), ok(vm, vm.send(vm.integer(-40), "-", {vm.integer(2)})));
    EXPECT_EQ(js::kSmallIntegerMax, as_int(vm, ok(vm, vm.send(vm.integer(js::kSmallIntegerMax - 1), "+", {vm.integer(1)}))));
    // Selectors interned once send like their text.
    auto plus = vm.selector("+");
    ASSERT_TRUE(plus);
    EXPECT_EQ(1, plus->arity());
    EXPECT_EQ(js::small_integer(7), ok(vm, vm.send(vm.integer(3), *plus, {vm.integer(4)})));
    EXPECT_EQ(js::ErrorKind::kInvalidArgument, vm.send(vm.integer(3), *plus).error().kind());
    // Past 62 bits the answer is a GMP integer, read back in decimal.
    js::Value big = ok(vm, vm.send(vm.integer(int64_t{1} << 61), "*", {vm.integer(1000)}));
    EXPECT_TRUE(vm.is_integer(big));
    EXPECT_EQ("2305843009213693952000", *vm.to_decimal(big));
    EXPECT_FALSE(vm.to_int64(big));
    auto from_text = vm.integer_from_decimal("-123456789012345678901234567890");
    ASSERT_TRUE(from_text);
    EXPECT_EQ("-123456789012345678901234567890", *vm.to_decimal(*from_text));
    EXPECT_EQ(js::ErrorKind::kInvalidArgument, vm.integer_from_decimal("12x").error().kind());
    // A Value is valid until the next send (which may collect, and under SOM_GC_STRESS does):
    // the receiver used across sends is held in a Handle.
    js::Handle s = vm.hold(sample(vm));
    EXPECT_EQ("jit kit", *vm.to_string(ok(vm, vm.send(s.get(), "concat:with:", {vm.string("jit "), vm.string("kit")}))));
    EXPECT_DOUBLE_EQ(1.25, *vm.to_double(ok(vm, vm.send(vm.dbl(0.5), "+", {vm.dbl(0.75)}))));
    EXPECT_EQ(true, *vm.to_bool(ok(vm, vm.send(vm.integer(1), "<", {vm.integer(2)}))));
    EXPECT_EQ("Symbol", vm.class_name(vm.symbol("abc")));
    js::Value a = vm.new_array(3);
    for (uint32_t i = 0; i < 3; i++) ASSERT_TRUE(vm.array_put(a, i, vm.integer(i + 1)));
    EXPECT_EQ(js::ErrorKind::kInvalidArgument, vm.array_put(a, 3, vm.nil()).error().kind());
    js::Value r = ok(vm, vm.send(s.get(), "reverse:", {a}));
    ASSERT_EQ(3u, *vm.array_length(r));
    EXPECT_EQ(3, as_int(vm, *vm.array_at(r, 0)));
    EXPECT_EQ(1, as_int(vm, *vm.array_at(r, 2)));
    EXPECT_TRUE(vm.is_nil(vm.nil()));
    EXPECT_EQ(true, *vm.to_bool(ok(vm, vm.send(vm.nil(), "isNil"))));
    EXPECT_EQ(js::ErrorKind::kInvalidArgument, vm.to_string(vm.integer(3)).error().kind());
  });
}

TEST_F(SOM_EMBED_SUITE, RuntimeErrorComesBackWithItsStackTraceAndTheVmGoesOn) {
  with_vm([](js::Vm& vm) {
    js::Handle s = vm.hold(sample(vm));
    auto r = vm.send(s.get(), "divide:by:", {vm.integer(1), vm.integer(0)});
    ASSERT_FALSE(r);
    EXPECT_EQ(js::ErrorKind::kRuntime, r.error().kind());
    EXPECT_EQ("division by zero", r.error().message());
    EXPECT_NE(std::string::npos, r.error().stack_trace().find("EmbedSample>>divide:by: (")) << r.error().stack_trace();
    EXPECT_NE(std::string::npos, r.error().describe().find("som: runtime error: division by zero"));
    // Nothing of the failed send is left: the next one works.
    EXPECT_EQ(5, as_int(vm, ok(vm, vm.send(s.get(), "add:", {vm.integer(5)}))));
  });
}

TEST_F(SOM_EMBED_SUITE, DoesNotUnderstandAndSystemExitComeBackAsExitErrors) {
  with_vm([](js::Vm& vm) {
    // The library's doesNotUnderstand:arguments: ends in error:, then `system exit: 1`.
    auto dnu = vm.send(vm.integer(3), "frobnicate");
    ASSERT_FALSE(dnu);
    EXPECT_EQ(js::ErrorKind::kExit, dnu.error().kind());
    EXPECT_EQ(1, dnu.error().exit_status());
    EXPECT_NE(std::string::npos, dnu.error().message().find("Method frobnicate not found in class Integer"))
        << dnu.error().message();
    EXPECT_NE(std::string::npos, dnu.error().stack_trace().find("Object>>doesNotUnderstand:arguments:"));
    auto exit = vm.send(sample(vm), "exitWith:", {vm.integer(7)});
    ASSERT_FALSE(exit);
    EXPECT_EQ(js::ErrorKind::kExit, exit.error().kind());
    EXPECT_EQ(7, exit.error().exit_status());
    EXPECT_EQ(2, as_int(vm, ok(vm, vm.send(vm.integer(1), "+", {vm.integer(1)}))));  // still alive
  });
}

TEST_F(SOM_EMBED_SUITE, BadCallsAreInvalidArguments) {
  with_vm([](js::Vm& vm) {
    EXPECT_EQ(js::ErrorKind::kInvalidArgument, vm.send(vm.integer(1), "+").error().kind());  // arity
    EXPECT_EQ(js::ErrorKind::kInvalidArgument, vm.send(js::Value(), "yourself").error().kind());
    auto missing = vm.global("NoSuchThingAnywhere");
    ASSERT_FALSE(missing);
    EXPECT_EQ(js::ErrorKind::kInvalidArgument, missing.error().kind());
    auto broken = vm.global("Broken");
    ASSERT_FALSE(broken);
    EXPECT_EQ(js::ErrorKind::kCompile, broken.error().kind());
    EXPECT_TRUE(std::regex_search(std::string(broken.error().message()), std::regex(R"(Broken\.som:4:\d+: error)")))
        << broken.error().message();
  });
}

TEST_F(SOM_EMBED_SUITE, HandleKeepsAValueCurrentAcrossCollections) {
  with_vm([](js::Vm& vm) {
    js::Value before = vm.string("kept across collections");
    js::Handle held = vm.hold(before);
    js::Handle moved = std::move(held);
    EXPECT_FALSE(held);
    for (int i = 0; i < 3; i++) ASSERT_TRUE(vm.send(ok(vm, vm.global("system")), "fullGC"));
    // The collector copies live objects: the old address is stale, the handle is not.
    EXPECT_NE(before, moved.get());
    EXPECT_EQ("kept across collections", *vm.to_string(moved.get()));
    moved.reset();
    EXPECT_TRUE(moved.get().is_empty());
  });
}

TEST_F(SOM_EMBED_SUITE, NativesAnswerFromInterpretedAndCompiledCallers) {
  with_vm([](js::Vm& vm) {
    EXPECT_EQ(7, as_int(vm, ok(vm, vm.send(native_test(vm), "add:to:", {vm.integer(3), vm.integer(4)}))));
    // 1 + 2 + ... + 1000 through a native per step; compiled under --jit=always.
    EXPECT_EQ(500500, as_int(vm, ok(vm, vm.send(sample(vm), "nativeSum:", {vm.integer(1000)}))));
  });
}

TEST_F(SOM_EMBED_SUITE, TenThousandNestedSandwichesReturnThroughEveryNative) {
  with_vm([](js::Vm& vm) {
    js::Value nt = native_test(vm);
    ASSERT_TRUE(vm.send(nt, "reset"));
    js::Value sandwich = ok(vm, vm.send(ok(vm, vm.global("Sandwich")), "new"));
    EXPECT_EQ(10000, as_int(vm, ok(vm, vm.send(sandwich, "depth:", {vm.integer(10000)}))));
    EXPECT_EQ(10000, counter(vm, "deepest"));
    EXPECT_EQ(10000, counter(vm, "destructorsRun"));
    EXPECT_EQ(0, counter(vm, "unwindingSeen"));
  });
}

TEST_F(SOM_EMBED_SUITE, StackOverflowReachesEveryNativeAsUnwindingThenTheCaller) {
  // A small native stack (32 MiB; 24 MiB under SOM_GC_STRESS, where every safepoint
  // collects the whole deep stack): the native stack's limit comes first, well before the
  // frame stack's; both report the same error.
  with_vm(
      [](js::Vm& vm) {
        ASSERT_TRUE(vm.send(native_test(vm), "reset"));
        auto r = vm.send(sample(vm), "overflow:", {vm.integer(0)});
        ASSERT_FALSE(r);
        EXPECT_EQ(js::ErrorKind::kRuntime, r.error().kind());
        EXPECT_EQ("stack overflow: recursion too deep", r.error().message());
        EXPECT_NE(std::string::npos, r.error().stack_trace().find("activations omitted"));
        const int64_t deepest = counter(vm, "deepest");
        EXPECT_GT(deepest, kOverflowMinDepth) << "the overflow came early";
        EXPECT_EQ(deepest, counter(vm, "unwindingSeen"));  // every native saw a failed send
        EXPECT_EQ(deepest, counter(vm, "destructorsRun"));  // and returned normally
        EXPECT_EQ(3, as_int(vm, ok(vm, vm.send(vm.integer(1), "+", {vm.integer(2)}))));
      },
      kOverflowStackBytes);
}

TEST_F(SOM_EMBED_SUITE, NonLocalReturnPassesTwoNatives) {
  with_vm([](js::Vm& vm) {
    ASSERT_TRUE(vm.send(native_test(vm), "reset"));
    js::Value sandwich = ok(vm, vm.send(ok(vm, vm.global("Sandwich")), "new"));
    EXPECT_EQ(10, as_int(vm, ok(vm, vm.send(sandwich, "findFirst:", {vm.integer(5)}))));
    EXPECT_EQ(2, counter(vm, "unwindingSeen"));
    EXPECT_EQ(2, counter(vm, "destructorsRun"));
  });
}

TEST_F(SOM_EMBED_SUITE, ErrorsInsideACallbackUnwindThroughTheNativeToTheCaller) {
  with_vm([](js::Vm& vm) {
    ASSERT_TRUE(vm.send(native_test(vm), "reset"));
    auto r = vm.send(sample(vm), "errorInCallback");
    ASSERT_FALSE(r);
    EXPECT_EQ(js::ErrorKind::kRuntime, r.error().kind());
    EXPECT_EQ("division by zero", r.error().message());
    EXPECT_NE(std::string::npos, r.error().stack_trace().find("EmbedSample>>errorInCallback [block]"));
    EXPECT_EQ(1, counter(vm, "unwindingSeen"));
    auto failed = vm.send(sample(vm), "failInNative");
    ASSERT_FALSE(failed);
    EXPECT_EQ(js::ErrorKind::kRuntime, failed.error().kind());
    EXPECT_EQ("refused by the native", failed.error().message());
    EXPECT_NE(std::string::npos, failed.error().stack_trace().find("EmbedSample>>failInNative [block]"));
  });
}

TEST_F(SOM_EMBED_SUITE, CollectionsAndCodeChangesUnderWaitingFramesKeepThemValid) {
  with_vm([](js::Vm& vm) {
    js::Value sandwich = ok(vm, vm.send(ok(vm, vm.global("Sandwich")), "new"));
    js::Handle keep = vm.hold(sandwich);
    EXPECT_EQ("outer string and 7 1275", *vm.to_string(ok(vm, vm.send(keep.get(), "survivesCollection"))));
    EXPECT_EQ("inner then old code, new code",
              *vm.to_string(ok(vm, vm.send(keep.get(), "askAcrossRedefinition"))));
    EXPECT_EQ(32, as_int(vm, ok(vm, vm.send(keep.get(), "polymorphicUnder"))));
  });
}

TEST_F(SOM_EMBED_SUITE, CallsFromAnotherThreadAreRefusedAndChangeNothing) {
  with_vm([](js::Vm& vm) {
    js::Value three = vm.integer(3);
    js::ErrorKind kind = js::ErrorKind::kRuntime;
    bool empty_value = false, empty_handle = false;
    std::thread other([&] {
      auto r = vm.send(three, "+", {three});
      kind = r ? js::ErrorKind::kRuntime : r.error().kind();
      empty_value = vm.string("x").is_empty();
      empty_handle = !vm.hold(three);
    });
    other.join();
    EXPECT_EQ(js::ErrorKind::kRefused, kind);
    EXPECT_TRUE(empty_value);
    EXPECT_TRUE(empty_handle);
    EXPECT_EQ(6, as_int(vm, ok(vm, vm.send(three, "+", {three}))));
  });
}

TEST_F(SOM_EMBED_SUITE, StoringIntoAMethodsArrayReplacesTheMethodAsInSom) {
  with_vm([](js::Vm& vm) {
    js::Handle table = vm.hold(ok(vm, vm.send(ok(vm, vm.global("EmbedSample")), "methods")));
    auto index_of = [&](const char* selector) -> uint32_t {
      for (uint32_t i = 0; i < *vm.array_length(table.get()); i++) {
        auto sig = vm.send(*vm.array_at(table.get(), i), "signature");
        if (sig && *vm.to_string(*sig) == selector) return i;
      }
      ADD_FAILURE() << "no method " << selector;
      return 0;
    };
    const uint32_t first = index_of("first"), second = index_of("second");
    js::Handle original = vm.hold(*vm.array_at(table.get(), first));
    EXPECT_EQ(1, as_int(vm, ok(vm, vm.send(sample(vm), "first"))));
    ASSERT_TRUE(vm.array_put(table.get(), first, *vm.array_at(table.get(), second)));
    EXPECT_EQ(2, as_int(vm, ok(vm, vm.send(sample(vm), "first"))));  // the class changed, caches too
    ASSERT_TRUE(vm.array_put(table.get(), first, original.get()));
    EXPECT_EQ(1, as_int(vm, ok(vm, vm.send(sample(vm), "first"))));
    auto wrong = vm.array_put(table.get(), first, vm.integer(3));
    ASSERT_FALSE(wrong);
    EXPECT_EQ(js::ErrorKind::kRuntime, wrong.error().kind());
  });
}

std::atomic<js::Vm*> g_signal_vm{nullptr};
std::atomic<int> g_signal_kind{-1};

TEST_F(SOM_EMBED_SUITE, CallsFromASignalHandlerWhileSomRunsAreRefused) {
  with_vm([](js::Vm& vm) {
    struct sigaction action {};
    action.sa_handler = [](int) {
      js::Vm* v = g_signal_vm.load();
      if (!v || g_signal_kind.load() != -1) return;
      auto r = v->send(js::Value(3), "+", {js::Value(3)});  // 1 and 1 as tagged small integers
      g_signal_kind.store(r ? 100 : static_cast<int>(r.error().kind()));
    };
    sigemptyset(&action.sa_mask);
    struct sigaction previous {};
    ASSERT_EQ(0, sigaction(SIGUSR1, &action, &previous));
    g_signal_kind = -1;
    g_signal_vm = &vm;
    const pthread_t vm_thread = pthread_self();
    std::atomic<bool> done{false};
    std::thread poker([&] {
      // Interrupt the VM thread until its handler has run once (while SOM code spins).
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
      while (!done && g_signal_kind.load() == -1) {
        pthread_kill(vm_thread, SIGUSR1);
        std::this_thread::sleep_for(std::chrono::milliseconds(5));
      }
    });
    // Spin until the handler has answered (bounded): each send runs SOM code for a while.
    js::Handle s = vm.hold(sample(vm));
    bool spun = true;
    for (int i = 0; i < 2000 && spun && g_signal_kind.load() == -1; i++)
      spun = static_cast<bool>(vm.send(s.get(), "spin:", {vm.integer(100000)}));
    EXPECT_TRUE(spun);
    done = true;
    poker.join();
    g_signal_vm = nullptr;
    sigaction(SIGUSR1, &previous, nullptr);
    // The handler ran while SOM code ran (the spin loop is nearly all of the time) or between
    // sends; only the first is a refusal. Both leave the VM untouched.
    const int kind = g_signal_kind.load();
    ASSERT_NE(-1, kind) << "the signal handler never ran";
    EXPECT_EQ(static_cast<int>(js::ErrorKind::kRefused), kind);
    EXPECT_EQ(6, as_int(vm, ok(vm, vm.send(vm.integer(3), "+", {vm.integer(3)}))));
  });
}

TEST_F(SOM_EMBED_SUITE, BadNativeLibrariesAreClearErrorsAndBindNothing) {
  with_vm([](js::Vm& vm) {
    struct Case {
      std::string library;
      std::string message;  // a regular expression the error message must match
    };
    const std::string dir = SOM_TEST_NATIVES_DIR;
    const Case cases[] = {
        {dir + "/libno_such_library.so", "cannot load native library .*libno_such_library.so: .*No such file"},
        {dir + "/libsom_bad_natives_no_registration.so", "does not export jitkit_som_register_natives"},
        {dir + "/libsom_bad_natives_1.so", "NoSuchClass class>>foo: unknown class NoSuchClass"},
        {dir + "/libsom_bad_natives_2.so", "NativeTest class has no method #noSuchMethod"},
        {dir + "/libsom_bad_natives_3.so", "Sandwich>>answerTwice: the method is not declared primitive"},
        {dir + "/libsom_bad_natives_4.so", "Integer>>\\+: a primitive this VM implements itself cannot be rebound"},
        {dir + "/libsom_bad_natives_5.so", "NativeTest class>>fail:: bound with 2 arguments, but #fail: takes 1"},
    };
    for (const Case& c : cases) {
      auto st = vm.load_native(c.library);
      ASSERT_FALSE(st) << c.library;
      EXPECT_EQ(js::ErrorKind::kNativeLibrary, st.error().kind());
      EXPECT_TRUE(std::regex_search(std::string(st.error().message()), std::regex(c.message)))
          << st.error().message() << "\n  expected: " << c.message;
    }
    // Each bad library also bound NativeTest class>>notBound correctly; none of them may have.
    auto r = vm.send(native_test(vm), "notBound");
    ASSERT_FALSE(r);
    EXPECT_EQ(js::ErrorKind::kRuntime, r.error().kind());
    EXPECT_NE(std::string::npos, r.error().message().find("declared but not implemented")) << r.error().message();
  });
}

}  // namespace
