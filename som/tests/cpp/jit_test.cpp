// Inline caches of the baseline JIT at real SOM send sites: one site (`x tag` in
// `JitSites class>>tagOf:`) sees receivers of 1, 2..6 and more than 6 classes and goes
// monomorphic, polymorphic(k) and megamorphic (jitkit::ic's default of 6 PIC cases); a method
// the site calls is then replaced from SOM (`aClass methods at: i put: aMethod`), which must
// unlink the site so that the next send runs the new method, never the old one.
// Every test also checks what the sends answer, so a cache that dispatches to the wrong method
// fails even when its state looks right.
//
// Doubles boxed by compiled code (Heap::alloc inlined after `+ - *`, method_compiler.cpp) must
// be the interpreter's: the same identity hashes in the same order, the same bytes counted and,
// under SOM_GC_STRESS's budget of 0, a collection requested by every box, so that both collect
// at the same safepoints.
#include "jit/jit_p.h"
#include "vm_p.h"

#include <gtest/gtest.h>

#include <cstdlib>
#include <fstream>
#include <memory>
#include <regex>
#include <string>

namespace som {
namespace {

// JitTagA .. JitTagH: eight receiver classes, one more than a closed PIC holds.
constexpr const char* kLetters = "ABCDEFGH";

class SomJitSites : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/som_jit_test_XXXXXX";
    ASSERT_NE(mkdtemp(tmpl), nullptr);
    dir_ = tmpl;
    for (const char* p = kLetters; *p; p++) {
      const std::string l(1, *p);
      // `tag` has a local, so it runs as a compiled method rather than as a frame-less constant
      // in its entry stub; `newTag` is what replaces it; `kind` is another selector.
      write_class("JitTag" + l, "JitTag" + l + " = ( tag = ( | t | t := #tag" + l + ". ^t ) newTag = ( | t | t := #new" +
                                    l + ". ^t ) kind = ( | t | t := #kind" + l + ". ^t ) )");
    }
    write_class("JitSites",
                "JitSites = ( ---- "
                "tagOf: x = ( ^x tag ) "
                "kindOf: x = ( ^x kind ) "
                "indexOf: aSymbol in: aClass = ( | ms | ms := aClass methods. "
                "  1 to: ms length do: [ :i | (ms at: i) signature == aSymbol ifTrue: [ ^i ] ]. ^0 ) "
                "replace: selector in: aClass with: replacement = ( | ms | ms := aClass methods. "
                "  ms at: (self indexOf: selector in: aClass) put: (ms at: (self indexOf: replacement in: aClass)) ) )");
    vm_ = std::make_unique<VM>();
    vm_->set_class_path(std::string(SOM_CORE_LIB_DIR) + ":" + dir_);
    ASSERT_TRUE(vm_->bootstrap());
    vm_->jit_ = std::make_unique<Jit>(*vm_);
    vm_->jit_threshold_ = 0;  // every method is compiled before it first runs
    sites_ = vm_->load_class(vm_->intern("JitSites"));
    ASSERT_NE(sites_, nullptr);
    tag_of_ = class_side_method("tagOf:");
    kind_of_ = class_side_method("kindOf:");
  }
  void TearDown() override {
    vm_.reset();
    std::system(("rm -rf " + dir_).c_str());
  }

  void write_class(const std::string& name, const std::string& src) {
    std::ofstream(dir_ + "/" + name + ".som") << src;
  }
  Method* class_side_method(const char* selector) {
    auto it = sites_->meta->method_map.find(vm_->intern(selector));
    return it == sites_->meta->method_map.end() ? nullptr : it->second;
  }
  Class* tag_class(char letter) {
    Class* c = vm_->load_class(vm_->intern(std::string("JitTag") + letter));
    EXPECT_NE(c, nullptr) << letter;
    return c;
  }
  // `JitSites tagOf: JitTag<letter> new` (or kindOf:), as a string.
  std::string send_to_instance(const char* selector, char letter) {
    Value receiver = vm_->send(val(tag_class(letter)), vm_->intern("new"));
    return std::string(vm_->string_of(vm_->send(val(sites_), vm_->intern(selector), {receiver})));
  }
  std::string tag_of(char letter) { return send_to_instance("tagOf:", letter); }
  std::string kind_of(char letter) { return send_to_instance("kindOf:", letter); }
  // `JitSites replace: selector in: JitTag<letter> with: replacement`, run from SOM.
  void replace(const char* selector, char letter, const char* replacement) {
    vm_->send(val(sites_), vm_->intern("replace:in:with:"),
              {val(vm_->intern(selector)), val(tag_class(letter)), val(vm_->intern(replacement))});
  }
  // The state of the one send site of `m` ("monomorphic", "polymorphic(3)", ...), or a
  // description of why there is none.
  std::string site_state(Method* m, const char* selector) {
    const std::string states = vm_->jit_->site_states(m);
    std::smatch match;
    const std::regex one_site(std::string("pc [0-9]+ #") + selector + " ([a-z]+(\\([0-9]+\\))?)\n");
    if (!std::regex_match(states, match, one_site)) return "not one site of #" + std::string(selector) + ": '" + states + "'";
    return match[1].str();
  }
  std::string tag_site() { return site_state(tag_of_, "tag"); }

  std::string dir_;
  std::unique_ptr<VM> vm_;
  Class* sites_ = nullptr;
  Method* tag_of_ = nullptr;
  Method* kind_of_ = nullptr;
};

TEST_F(SomJitSites, SiteIsCompiledUnlinkedBeforeItsFirstSendAndMonomorphicAfterOneReceiverClass) {
  ASSERT_NE(tag_of_, nullptr);
  ASSERT_TRUE(vm_->jit_->compile(tag_of_));
  EXPECT_EQ(tag_site(), "unlinked");
  for (int i = 0; i < 3; i++) EXPECT_EQ(tag_of('A'), "tagA");
  EXPECT_EQ(tag_site(), "monomorphic");
}

TEST_F(SomJitSites, SiteSeeingTwoToSixReceiverClassesIsPolymorphicWithOneCasePerClass) {
  EXPECT_EQ(tag_of('A'), "tagA");
  for (int k = 2; k <= 6; k++) {
    const char letter = kLetters[k - 1];
    EXPECT_EQ(tag_of(letter), std::string("tag") + letter);
    EXPECT_EQ(tag_site(), "polymorphic(" + std::to_string(k) + ")") << k << " receiver classes";
  }
  // Classes already cached hit their own case: no new case, and each answers its own tag.
  for (int k = 1; k <= 6; k++) EXPECT_EQ(tag_of(kLetters[k - 1]), std::string("tag") + kLetters[k - 1]);
  EXPECT_EQ(tag_site(), "polymorphic(6)");
}

TEST_F(SomJitSites, SiteSeeingMoreThanSixReceiverClassesIsMegamorphicAndStillAnswersPerClass) {
  for (int k = 1; k <= 6; k++) EXPECT_EQ(tag_of(kLetters[k - 1]), std::string("tag") + kLetters[k - 1]);
  EXPECT_EQ(tag_site(), "polymorphic(6)");
  EXPECT_EQ(tag_of('G'), "tagG");
  EXPECT_EQ(tag_site(), "megamorphic");
  EXPECT_EQ(tag_of('H'), "tagH");
  for (int k = 1; k <= 8; k++) EXPECT_EQ(tag_of(kLetters[k - 1]), std::string("tag") + kLetters[k - 1]);
  EXPECT_EQ(tag_site(), "megamorphic");
}

TEST_F(SomJitSites, ReplacingTheMethodOfAMonomorphicSiteUnlinksItAndTheNewMethodAnswers) {
  EXPECT_EQ(tag_of('A'), "tagA");
  EXPECT_EQ(tag_site(), "monomorphic");
  replace("tag", 'A', "newTag");
  EXPECT_EQ(tag_site(), "unlinked");
  EXPECT_EQ(tag_of('A'), "newA");  // the old method no longer runs
  EXPECT_EQ(tag_site(), "monomorphic");
  EXPECT_EQ(tag_of('A'), "newA");
}

TEST_F(SomJitSites, ReplacingOneMethodOfAPolymorphicSiteUnlinksItAndOnlyThatClassChanges) {
  EXPECT_EQ(tag_of('A'), "tagA");
  EXPECT_EQ(tag_of('B'), "tagB");
  EXPECT_EQ(tag_of('C'), "tagC");
  EXPECT_EQ(tag_site(), "polymorphic(3)");
  replace("tag", 'B', "newTag");
  EXPECT_EQ(tag_site(), "unlinked");
  EXPECT_EQ(tag_of('B'), "newB");
  EXPECT_EQ(tag_of('A'), "tagA");
  EXPECT_EQ(tag_of('C'), "tagC");
  EXPECT_EQ(tag_site(), "polymorphic(3)");
  EXPECT_EQ(tag_of('B'), "newB");
}

TEST_F(SomJitSites, ReplacingAMethodOfAMegamorphicSiteUnlinksItAndTheNewMethodAnswers) {
  for (int k = 1; k <= 8; k++) EXPECT_EQ(tag_of(kLetters[k - 1]), std::string("tag") + kLetters[k - 1]);
  EXPECT_EQ(tag_site(), "megamorphic");
  replace("tag", 'E', "newTag");
  EXPECT_EQ(tag_site(), "unlinked");
  // The selector's open-PIC table must not answer the old method either.
  for (int k = 1; k <= 8; k++) {
    const char letter = kLetters[k - 1];
    EXPECT_EQ(tag_of(letter), std::string(letter == 'E' ? "new" : "tag") + letter);
  }
  EXPECT_EQ(tag_site(), "megamorphic");
  EXPECT_EQ(tag_of('E'), "newE");
}

TEST_F(SomJitSites, ReplacingAMethodLeavesSitesOfOtherSelectorsLinked) {
  EXPECT_EQ(tag_of('A'), "tagA");
  EXPECT_EQ(kind_of('A'), "kindA");
  EXPECT_EQ(kind_of('B'), "kindB");
  ASSERT_NE(kind_of_, nullptr);
  EXPECT_EQ(site_state(kind_of_, "kind"), "polymorphic(2)");
  replace("tag", 'A', "newTag");
  EXPECT_EQ(tag_site(), "unlinked");
  EXPECT_EQ(site_state(kind_of_, "kind"), "polymorphic(2)");
  EXPECT_EQ(kind_of('A'), "kindA");
  EXPECT_EQ(kind_of('B'), "kindB");
}

// One VM interpreting and one compiling every method before it runs (the same bootstrap, the
// same class) run the same Double loop; every observable effect of the boxes is compared.
class SomJitDoubles : public ::testing::Test {
 protected:
  struct Outcome {
    double value = 0;
    uint32_t hash_before = 0;  // next_hash() just before the loop: the runs start alike
    uint32_t result_hash = 0;  // the identity hash of the last box
    uint32_t hash_after = 0;   // next_hash() after it: as many hashes were taken
    uint64_t bytes = 0;        // allocated by the loop
    uint64_t collections = 0;  // during the loop
    uint64_t methods_compiled = 0;
  };

  void SetUp() override {
    char tmpl[] = "/tmp/som_jit_test_XXXXXX";
    ASSERT_NE(mkdtemp(tmpl), nullptr);
    dir_ = tmpl;
    // Three boxes per iteration: Double + Double, Double * Double, Double - Integer.
    std::ofstream(dir_ + "/JitDoubles.som") << "JitDoubles = ( ---- "
                                               "churn: n = ( | x y | x := 0.75. y := 0.0. "
                                               "  1 to: n do: [ :i | y := (y + x) * 0.5 - 1 ]. ^y ) )";
  }
  void TearDown() override { std::system(("rm -rf " + dir_).c_str()); }

  Outcome run(bool jit, bool gc_stress, int64_t n) {
    Outcome out;
    VM vm;
    vm.set_class_path(std::string(SOM_CORE_LIB_DIR) + ":" + dir_);
    EXPECT_TRUE(vm.bootstrap());
    if (jit) {
      vm.jit_ = std::make_unique<Jit>(vm);
      vm.jit_threshold_ = 0;
    }
    if (gc_stress) vm.heap_.set_stress(true);
    Class* c = vm.load_class(vm.intern("JitDoubles"));
    EXPECT_NE(c, nullptr);
    if (!c) return out;
    out.hash_before = vm.heap_.next_hash();
    const uint64_t bytes0 = vm.heap_.total_allocated(), collections0 = vm.heap_.collections_;
    Value y = vm.send(val(c), vm.intern("churn:"), {from_int(n)});
    EXPECT_TRUE(!is_int(y) && obj(y)->kind == kDouble);
    out.value = obj(y)->dbl();
    out.result_hash = obj(y)->hash;
    out.bytes = vm.heap_.total_allocated() - bytes0;
    out.collections = vm.heap_.collections_ - collections0;
    out.hash_after = vm.heap_.next_hash();
    if (jit) out.methods_compiled = vm.jit_->stats().methods_compiled;
    return out;
  }

  void expect_same(const Outcome& interpreted, const Outcome& compiled) {
    EXPECT_GT(compiled.methods_compiled, 0u);
    EXPECT_EQ(interpreted.hash_before, compiled.hash_before);
    EXPECT_EQ(interpreted.value, compiled.value);
    EXPECT_EQ(interpreted.result_hash, compiled.result_hash);
    EXPECT_EQ(interpreted.hash_after, compiled.hash_after);
    EXPECT_EQ(interpreted.bytes, compiled.bytes);
    EXPECT_EQ(interpreted.collections, compiled.collections);
  }

  std::string dir_;
};

TEST_F(SomJitDoubles, CompiledBoxesTakeTheInterpretersHashesAndBytesAcrossFullChunks) {
  // 150,000 boxes of 24 bytes: 3.4 MiB, so the inline path meets full 1 MiB chunks.
  constexpr int64_t kIterations = 50'000;
  const Outcome interpreted = run(false, false, kIterations);
  const Outcome compiled = run(true, false, kIterations);
  EXPECT_GE(interpreted.bytes, uint64_t{3 * 24 * kIterations});
  expect_same(interpreted, compiled);
}

TEST_F(SomJitDoubles, UnderGcStressEveryCompiledBoxRequestsTheCollectionTheInterpreterMakes) {
  constexpr int64_t kIterations = 300;
  const Outcome interpreted = run(false, true, kIterations);
  const Outcome compiled = run(true, true, kIterations);
  EXPECT_GE(interpreted.collections, uint64_t{kIterations});  // one per loop back-edge at least
  expect_same(interpreted, compiled);
}

}  // namespace
}  // namespace som
