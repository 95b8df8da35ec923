// VM behaviour tests that the SOM-level suites cannot express: bounded memory under heavy
// allocation, identity hashes across moving collections, and the process-level error paths
// (stack overflow, missing primitives, compile errors) of the `som` binary.
#include "vm_p.h"

#include <gtest/gtest.h>

#include <sys/wait.h>
#include <unistd.h>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <sstream>
#include <string>

namespace som {
namespace {

class SomVm : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/som_vm_test_XXXXXX";
    ASSERT_NE(mkdtemp(tmpl), nullptr);
    dir_ = tmpl;
  }
  void TearDown() override { std::system(("rm -rf " + dir_).c_str()); }

  void write_class(const std::string& name, const std::string& src) {
    std::ofstream(dir_ + "/" + name + ".som") << src;
  }
  static std::string read_file(const std::string& path) {
    std::ifstream in(path);
    std::stringstream ss;
    ss << in.rdbuf();
    return ss.str();
  }
  // Runs build/som/som on dir_/<name>.som with library `lib`; returns the exit status.
  int run_som(const std::string& name, std::string* out, std::string* err,
              const std::string& lib = SOM_CORE_LIB_DIR) {
    std::string cmd = std::string(SOM_BINARY) + " -cp " + lib + " " + dir_ + "/" + name + ".som >" + dir_ +
                      "/out.txt 2>" + dir_ + "/err.txt";
    int st = std::system(cmd.c_str());
    *out = read_file(dir_ + "/out.txt");
    *err = read_file(dir_ + "/err.txt");
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
  }

  std::string dir_;
};

TEST_F(SomVm, AllocationHeavyProgramKeepsTheHeapBounded) {
  write_class("Churn",
              "Churn = ( run: n = ( | keep | 1 to: n do: [ :i | keep := Array new: 100. "
              "keep at: 1 put: i asString ]. ^keep at: 1 ) )");
  VM vm;
  vm.set_class_path(std::string(SOM_CORE_LIB_DIR) + ":" + dir_);
  ASSERT_TRUE(vm.bootstrap());
  Class* c = vm.load_class(vm.intern("Churn"));
  ASSERT_NE(c, nullptr);
  Value inst = vm.send(val(c), vm.intern("new"));
  Value r = vm.send(inst, vm.intern("run:"), {from_int(400000)});
  EXPECT_EQ(vm.string_of(r), "400000");
  // 400000 arrays of 100 slots = more than 300 MiB allocated in total ...
  EXPECT_GT(vm.heap_.total_allocated(), size_t(300) << 20);
  EXPECT_GT(vm.heap_.collections_, 3u);
  // ... while the heap never holds more than the budget plus the live data.
  EXPECT_LT(vm.heap_.footprint_bytes(), size_t(120) << 20);
}

TEST_F(SomVm, IdentityHashSurvivesAMovingCollection) {
  VM vm;
  vm.set_class_path(SOM_CORE_LIB_DIR);
  ASSERT_TRUE(vm.bootstrap());
  vm.extra_roots_.push_back(vm.new_instance(vm.object_class_));
  Value before = vm.extra_roots_[0];
  uint32_t hash = obj(before)->hash;
  vm.collect_garbage();
  Value after = vm.extra_roots_[0];
  EXPECT_NE(before, after);           // the object moved ...
  EXPECT_EQ(obj(after)->hash, hash);  // ... and kept its identity hash
  Value h = vm.send(after, vm.intern("hashcode"));
  EXPECT_EQ(h, from_int(hash));
}

TEST_F(SomVm, DeepRecursionIsAStackOverflowErrorWithTrace) {
  write_class("Deep", "Deep = ( down: n = ( ^1 + (self down: n + 1) ) run = ( self down: 0 ) )");
  std::string out, err;
  EXPECT_EQ(run_som("Deep", &out, &err), 1);
  EXPECT_NE(err.find("stack overflow"), std::string::npos) << err;
  EXPECT_NE(err.find("Deep>>down: ("), std::string::npos) << err;
  EXPECT_NE(err.find("Deep>>run ("), std::string::npos) << err;
}

TEST_F(SomVm, MissingPrimitiveIsAClearRuntimeError) {
  write_class("Prim", "Prim = ( frobnicate = primitive run = ( 'before' println. self frobnicate ) )");
  std::string out, err;
  EXPECT_EQ(run_som("Prim", &out, &err), 1);
  EXPECT_EQ(out, "before\n");
  EXPECT_NE(err.find("primitive Prim>>frobnicate is declared but not implemented"), std::string::npos) << err;
  EXPECT_NE(err.find("Prim>>run"), std::string::npos) << err;
}

TEST_F(SomVm, PrimitiveFailureReportsSomStackTrace) {
  write_class("Bad", "Bad = ( run = ( #(1 2 3) at: 7 ) )");
  std::string out, err;
  EXPECT_EQ(run_som("Bad", &out, &err), 1);
  EXPECT_NE(err.find("index 7 out of bounds"), std::string::npos) << err;
  EXPECT_NE(err.find("Bad>>run (" + dir_ + "/Bad.som:1)"), std::string::npos) << err;
}

TEST_F(SomVm, CompileErrorsNameFileLineAndColumn) {
  write_class("Broken", "Broken = (\n  run = (\n    x := 3 ) )");
  std::string out, err;
  EXPECT_EQ(run_som("Broken", &out, &err), 1);
  EXPECT_NE(err.find(dir_ + "/Broken.som:3:5: error: cannot assign to 'x'"), std::string::npos) << err;
}

// A user-supplied library may declare fields that this VM implements as primitives (older
// standard libraries have `Class = ( | superClass name ... | name = ( ^name ) )`). Such an
// instance-side Class method reaching a class object must be a clear error naming the field,
// never a silent read of the class object's own class-side slots (which are numbered like the
// metaclass's fields, an unrelated index space).
TEST_F(SomVm, LibraryFieldOfClassDoesNotAliasClassSideFields) {
  std::string lib = dir_ + "/lib";
  ASSERT_EQ(std::system(("cp -r " + std::string(SOM_CORE_LIB_DIR) + " " + lib).c_str()), 0);
  std::string cls = read_file(lib + "/Class.som");
  size_t open = cls.find("Class = (");
  size_t name = cls.find("name = primitive");
  ASSERT_NE(open, std::string::npos);
  ASSERT_NE(name, std::string::npos);
  cls.replace(name, 16, "name = ( ^nameSlot )");
  cls.insert(open + 9, " | slotA slotB nameSlot | ");
  std::ofstream(lib + "/Class.som", std::ios::trunc) << cls;
  // nameSlot is field 3 of Class; Aliased's third class-side field is c.
  write_class("Aliased",
              "Aliased = ( run = ( Aliased setC. 'before' println. Aliased name println ) "
              "---- | a b c | setC = ( c := 'class-side c' ) )");
  std::string out, err;
  EXPECT_EQ(run_som("Aliased", &out, &err, lib + ":" + dir_), 1);
  EXPECT_EQ(out, "before\n");  // not "class-side c"
  EXPECT_NE(err.find("method name accesses field 3 ('nameSlot' of Class), which class Aliased "
                     "does not have"),
            std::string::npos)
      << err;
  // Class-side methods still reach the class-side fields.
  write_class("Counter",
              "Counter = ( run = ( Counter bump. Counter bump. Counter count println ) "
              "---- | n | bump = ( n isNil ifTrue: [ n := 0 ]. n := n + 1 ) "
              "count = ( ^n ) )");
  EXPECT_EQ(run_som("Counter", &out, &err, lib + ":" + dir_), 0) << err;
  EXPECT_EQ(out, "2\n");
}

TEST_F(SomVm, HelpOptionPrintsUsage) {
  int st = std::system((std::string(SOM_BINARY) + " -h >" + dir_ + "/h.txt").c_str());
  EXPECT_EQ(WEXITSTATUS(st), 0);
  EXPECT_NE(read_file(dir_ + "/h.txt").find("usage: som"), std::string::npos);
}

}  // namespace
}  // namespace som
