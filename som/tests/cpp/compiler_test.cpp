// Bytecode compiler tests: inlining decisions, variable placement (frame vs. context),
// non-local returns, send-site numbering and compile errors.
#include "bytecode_p.h"
#include "compiler_p.h"
#include "parser_p.h"
#include "vm_p.h"

#include <gtest/gtest.h>

#include <string>
#include <vector>

namespace som {
namespace {

class SomCompiler : public ::testing::Test {
 protected:
  static VM* vm() {
    static VM* v = [] {
      auto* x = new VM();
      x->set_class_path(SOM_CORE_LIB_DIR);
      if (!x->bootstrap()) std::abort();
      return x;
    }();
    return v;
  }

  // Compiles the single instance method of `src` (a class body) with Object as holder.
  Method* compile(const std::string& method_src, std::string* error = nullptr) {
    ClassDef c;
    std::string err;
    if (!parse_class("T = ( " + method_src + " )", "T.som", c, err)) {
      ADD_FAILURE() << err;
      return nullptr;
    }
    std::string cerr;
    Method* m = compile_method(*vm(), vm()->object_class_, c.inst_methods.at(0), "T.som", cerr);
    if (error) *error = cerr;
    if (m) keep().push_back(m);  // reachable until exit, like the VM itself
    return m;
  }

  static std::vector<Method*>& keep() {
    static auto* methods = new std::vector<Method*>();  // never destroyed: stays reachable
    return *methods;
  }

  static std::vector<uint8_t> ops(Method* m) {
    std::vector<uint8_t> out;
    for (size_t pc = 0; pc < m->code.size(); pc += static_cast<size_t>(op_length(m->code[pc])))
      out.push_back(m->code[pc]);
    return out;
  }
  static bool has(Method* m, Op o) {
    for (uint8_t x : ops(m))
      if (x == o) return true;
    return false;
  }
};

TEST_F(SomCompiler, SimpleArithmeticUsesFastSendAndReturn) {
  Method* m = compile("m = ( ^1 + 2 )");
  ASSERT_NE(m, nullptr);
  EXPECT_EQ(ops(m), (std::vector<uint8_t>{kPushLiteral, kPushLiteral, kSendAdd, kReturnLocal}));
  ASSERT_EQ(m->sites.size(), 1u);
  EXPECT_EQ(m->sites[0].selector->text, "+");
  EXPECT_EQ(m->sites[0].argc, 1u);
}

TEST_F(SomCompiler, MethodWithoutReturnAnswersSelf) {
  Method* m = compile("m = ( 3 foo )");
  EXPECT_EQ(ops(m), (std::vector<uint8_t>{kPushLiteral, kSend, kPop, kReturnSelf}));
}

TEST_F(SomCompiler, LiteralBlockIfTrueIsInlinedWithFallbackSite) {
  Method* m = compile("m: c = ( ^c ifTrue: [ 1 ] ifFalse: [ 2 ] )");
  EXPECT_FALSE(has(m, kPushBlock));
  EXPECT_TRUE(has(m, kJumpIfFalse));
  // The conditional jump names a site with the original selector for non-Boolean receivers.
  ASSERT_EQ(m->sites.size(), 1u);
  EXPECT_EQ(m->sites[0].selector->text, "ifTrue:ifFalse:");
  EXPECT_GT(m->sites[0].cont_pc, 0u);
  // Both literal blocks also exist as real block methods, used only as the arguments of that
  // fallback send (no PUSH_BLOCK on the fast path, checked above).
  ASSERT_EQ(m->blocks.size(), 2u);
  EXPECT_EQ(m->sites[0].fallback_arg[0], 0);
  EXPECT_EQ(m->sites[0].fallback_arg[1], 1);
  EXPECT_EQ(m->blocks[0]->num_args, 0);
  EXPECT_FALSE(m->has_context);  // the blocks use no variable of m
}

TEST_F(SomCompiler, ToDoFallbackPassesLimitStepAndBlock) {
  Method* m = compile("m: k = ( 1 to: 10 by: k do: [ :i | i ] )");
  const SendSite* site = nullptr;
  for (auto& s : m->sites)
    if (s.selector->text == "to:by:do:") site = &s;
  ASSERT_NE(site, nullptr);
  EXPECT_LE(site->fallback_arg[0], kFallbackLocal0);            // the evaluated limit
  EXPECT_EQ(site->fallback_arg[1], site->fallback_arg[0] - 1);  // the step, in the next local
  ASSERT_EQ(m->blocks.size(), 1u);
  EXPECT_EQ(site->fallback_arg[2], 0);
  EXPECT_EQ(m->blocks[0]->num_args, 1);
  EXPECT_FALSE(has(m, kPushBlock));
}

TEST_F(SomCompiler, FallbackBlockCapturesLikeARealBlock) {
  // `s` is used inside an inlined block: its fallback copy is a real block, so `s` needs a
  // context slot shared by the inlined code and the fallback closure. No real block needs a
  // context here, so it is lazy: `s` stays in a frame slot until the first fallback.
  Method* m = compile("m: c = ( | s | s := 0. c ifTrue: [ s := s + 1 ]. ^s )");
  EXPECT_FALSE(m->has_context);
  EXPECT_TRUE(m->lazy_context);
  EXPECT_EQ(m->num_ctx_vars, 1);
  ASSERT_EQ(m->lazy_vars.size(), 1u);
  EXPECT_TRUE(has(m, kPushLocalLazy));
  EXPECT_TRUE(has(m, kStoreLocalLazy));
  EXPECT_FALSE(has(m, kPushCtx));
  ASSERT_EQ(m->blocks.size(), 1u);
  EXPECT_TRUE(has(m->blocks[0], kPushCtx));  // the fallback block reads s from the context
  // An argument and a `^` in a fallback block: lazy too (the `^` needs the home context).
  Method* r = compile("m: n = ( n < 2 ifTrue: [ ^n ]. ^n - 1 )");
  EXPECT_FALSE(r->has_context);
  EXPECT_TRUE(r->lazy_context);
  ASSERT_EQ(r->lazy_vars.size(), 1u);
  EXPECT_EQ(r->lazy_vars[0].first, -1);  // argument 1, copied into the context when it is made
  // n is never assigned, so frame and context agree: the method reads it with PUSH_ARG.
  EXPECT_FALSE(has(r, kPushArgLazy));
  EXPECT_FALSE(has(r, kPushCtx));
  EXPECT_TRUE(has(r->blocks[0], kReturnNonlocal));
  EXPECT_TRUE(has(r->blocks[0], kPushCtx));
  // An assigned argument must go through the lazy accessors.
  Method* a = compile("m: n = ( n := n + 1. n < 2 ifTrue: [ ^n ]. ^n - 1 )");
  EXPECT_TRUE(a->lazy_context);
  EXPECT_TRUE(has(a, kPushArgLazy));
  EXPECT_TRUE(has(a, kStoreArgLazy));
  // A real block that captures `s` gives the method a context on entry anyway: then the
  // fallback blocks' variables are ordinary context variables.
  Method* e = compile("m: c = ( | s t | s := 0. t := [ s ]. c ifTrue: [ s := s + 1 ]. ^t )");
  EXPECT_TRUE(e->has_context);
  EXPECT_FALSE(e->lazy_context);
  EXPECT_TRUE(e->lazy_vars.empty());
  EXPECT_FALSE(has(e, kPushLocalLazy));
  // Nested inlined structures: copies are not inlined again (no exponential growth).
  Method* n = compile(
      "m: c = ( ^c ifTrue: [ c ifTrue: [ c ifTrue: [ 1 ] ifFalse: [ 2 ] ] ifFalse: [ 3 ] ] "
      "ifFalse: [ 4 ] )");
  // outer: 2 copies; middle: 2; inner: 2 -> 6 block methods; the copies contain real sends.
  EXPECT_EQ(n->blocks.size(), 6u);
}

TEST_F(SomCompiler, NonBlockArgumentIsARealSend) {
  Method* m = compile("m: c = ( ^c ifTrue: 1 )");
  EXPECT_FALSE(has(m, kJumpIfFalse));
  EXPECT_TRUE(has(m, kSend));
  Method* w = compile("m: c = ( | b | b := [ 1 ]. ^c whileTrue: b )");
  EXPECT_FALSE(has(w, kJumpBack));
}

TEST_F(SomCompiler, WhileAndToDoBecomeLoops) {
  Method* m = compile("m = ( | i | i := 0. [ i < 10 ] whileTrue: [ i := i + 1 ]. ^i )");
  EXPECT_TRUE(has(m, kJumpBack));
  EXPECT_FALSE(has(m, kPushBlock));
  EXPECT_FALSE(m->has_context);
  Method* t = compile("m = ( | s | s := 0. 1 to: 10 do: [ :i | s := s + i ]. ^s )");
  EXPECT_TRUE(has(t, kForTest));
  EXPECT_TRUE(has(t, kForStep));
  EXPECT_FALSE(has(t, kPushBlock));
  Method* d = compile("m = ( 10 downTo: 1 do: [ :i | i ] )");
  EXPECT_TRUE(has(d, kForTestDown));
  Method* b = compile("m: k = ( 1 to: 10 by: k do: [ :i | i ] )");
  EXPECT_TRUE(has(b, kForTest));
  EXPECT_TRUE(has(b, kSendAdd));  // i := i + step, a real send if not small integers
  EXPECT_FALSE(has(b, kPushBlock));
  Method* r = compile("m = ( 5 timesRepeat: [ 1 ] )");
  EXPECT_TRUE(has(r, kForTest));
  EXPECT_FALSE(has(r, kPushBlock));
}

TEST_F(SomCompiler, CapturedVariablesLiveInTheContextOthersInTheFrame) {
  Method* m = compile("m: a = ( | x y | x := 1. y := 2. ^[ x + a ] )");
  ASSERT_NE(m, nullptr);
  EXPECT_TRUE(m->has_context);
  EXPECT_EQ(m->num_ctx_vars, 2);  // x and the argument a
  EXPECT_EQ(m->num_locals, 1);    // y
  ASSERT_EQ(m->ctx_args.size(), 1u);
  EXPECT_EQ(m->ctx_args[0].first, 1);
  ASSERT_EQ(m->blocks.size(), 1u);
  Method* b = m->blocks[0];
  EXPECT_TRUE(b->is_block);
  EXPECT_FALSE(b->has_context);
  // The block reads both captured variables at depth 1.
  int ctx_reads = 0;
  for (size_t pc = 0; pc < b->code.size(); pc += static_cast<size_t>(op_length(b->code[pc])))
    if (b->code[pc] == kPushCtx) {
      EXPECT_EQ(b->code[pc + 1], 1);
      ctx_reads++;
    }
  EXPECT_EQ(ctx_reads, 2);
}

TEST_F(SomCompiler, BlocksThatReachNothingOutsideNeedNoContext) {
  Method* m = compile("m: a = ( ^a collect: [ :x | x * 2 + self hash ] )");
  EXPECT_FALSE(m->has_context);  // only its parameter, self and literals
  Method* n = compile("m: a = ( | k | k := 3. ^a collect: [ :x | [ x + k ] ] )");
  EXPECT_TRUE(n->has_context);  // the inner block reaches k two levels up
  ASSERT_EQ(n->blocks.size(), 1u);
  EXPECT_TRUE(n->blocks[0]->has_context);  // and the middle block must pass the chain on
}

TEST_F(SomCompiler, ReturnInsideBlockIsNonLocal) {
  Method* m = compile("m = ( #(1 2) do: [ :e | e = 2 ifTrue: [ ^e ] ]. ^nil )");
  ASSERT_EQ(m->blocks.size(), 1u);
  EXPECT_TRUE(has(m->blocks[0], kReturnNonlocal));
  EXPECT_TRUE(m->has_context);  // the home context marks whether the activation is alive
  Method* inl = compile("m: c = ( c ifTrue: [ ^1 ]. ^2 )");
  EXPECT_FALSE(has(inl, kReturnNonlocal));  // inlined block: plain method return
}

TEST_F(SomCompiler, SuperSendStartsLookupInHolderSuperclass) {
  ClassDef c;
  std::string err;
  ASSERT_TRUE(parse_class("T = ( m = ( ^super printString ) )", "T.som", c, err));
  Method* m = compile_method(*vm(), vm()->integer_class_, c.inst_methods[0], "T.som", err);
  ASSERT_NE(m, nullptr) << err;
  keep().push_back(m);
  EXPECT_TRUE(has(m, kSuperSend));
  EXPECT_EQ(m->sites[0].super_start, vm()->integer_class_->superclass);
}

TEST_F(SomCompiler, SendSitesAreNumberedInOrder) {
  Method* m = compile("m = ( ^self a: self b c: self d )");
  ASSERT_EQ(m->sites.size(), 3u);
  EXPECT_EQ(m->sites[0].selector->text, "b");
  EXPECT_EQ(m->sites[1].selector->text, "d");
  EXPECT_EQ(m->sites[2].selector->text, "a:c:");
}

TEST_F(SomCompiler, AssigningAnUndeclaredNameIsACompileError) {
  std::string err;
  Method* m = compile("m = (\n  Foo := 3 )", &err);
  EXPECT_EQ(m, nullptr);
  EXPECT_NE(err.find("T.som:2:3: error: cannot assign to 'Foo'"), std::string::npos) << err;
}

TEST_F(SomCompiler, InlinedBlockLocalsAreResetEachEntry) {
  // A local declared in an inlined loop body must start nil on every iteration.
  Method* m = compile("m = ( 1 to: 3 do: [ :i | | t | t := i ] )");
  bool saw_nil_store = false;
  auto o = ops(m);
  for (size_t i = 0; i + 1 < o.size(); i++)
    if (o[i] == kPushNil && o[i + 1] == kStoreLocal) saw_nil_store = true;
  EXPECT_TRUE(saw_nil_store);
}

TEST_F(SomCompiler, DisassemblerNamesSelectors) {
  Method* m = compile("m = ( ^self foo: 1 )");
  std::string d = disassemble(*vm(), m);
  EXPECT_NE(d.find("SEND"), std::string::npos);
  EXPECT_NE(d.find("#foo:"), std::string::npos);
}

TEST_F(SomCompiler, IfNilFamilyChecksForAnOverridingReceiver) {
  Method* m = compile("m: x = ( ^x ifNil: [ 1 ] ifNotNil: [ 2 ] )");
  EXPECT_TRUE(has(m, kNilCheck));
  EXPECT_TRUE(has(m, kJumpIfNotNil));
  EXPECT_FALSE(has(m, kPushBlock));
  ASSERT_EQ(m->sites.size(), 1u);
  EXPECT_EQ(m->sites[0].selector->text, "ifNil:ifNotNil:");
  EXPECT_GT(m->sites[0].cont_pc, 0u);
  ASSERT_EQ(m->blocks.size(), 2u);
  EXPECT_EQ(m->sites[0].fallback_arg[0], 0);
  EXPECT_EQ(m->sites[0].fallback_arg[1], 1);
}

}  // namespace
}  // namespace som
