// examples/debug_registration.cpp — giving generated code names that gdb and perf can show.
//
// Generated code is anonymous: a debugger shows `?? ()` frames and cannot unwind through them,
// and a profiler lumps its samples together. This program installs two functions, registers them
// with jitkit::debug as one batch, runs them and prints a listing in which calls are named.
//
//   * gdb: the batch becomes one in-memory ELF object (names, and unwind rules detected from the
//     code) handed to gdb's JIT interface: gdb can break on `add_one` by name and backtrace from
//     it through `add_two` to main. JITKIT_GDB_JIT=0 turns this off.
//   * perf: JITKIT_PERF_MAP=1 writes /tmp/perf-<pid>.map, JITKIT_JITDUMP=1 writes jit-<pid>.dump
//     for `perf record -k mono` + `perf inject --jit` (see docs/debugging-jit-code.md).
//
//   ./debug_registration                      # runs and prints the listing
//   gdb -ex 'set breakpoint pending on' -ex 'hbreak add_one' -ex run -ex bt ./debug_registration
//   JITKIT_PERF_MAP=1 ./debug_registration    # also writes the perf map file
//
// `hbreak`, not `break`: a dual-mapped code zone (the default where memfd works) executes from a
// shared read-only mapping, where gdb cannot plant a software breakpoint (docs/debugging-jit-code.md).
#include <cstdio>
#include <string>

#include "jitkit/code/code_zone.h"
#include "jitkit/debug/code_registry.h"
#include "jitkit/debug/installed_code.h"
#include "jitkit/debug/perf.h"
#include "jitkit/install/install.h"
#include "jitkit/x64/assembler.h"

using namespace jitkit::x64;  // registers (eax, edi, rbp, ...), Assembler, Label
namespace debug = jitkit::debug;

int main() {
  auto zone = jitkit::code::CodeZone::create();
  if (!zone) {
    std::fprintf(stderr, "cannot create a code zone: %s\n", zone.error().message().c_str());
    return 1;
  }

  // add_one(x) = x + 1: a leaf that never touches rsp.
  Assembler leaf;
  leaf.lea(eax, dword_ptr(rdi, 1));
  leaf.ret();
  auto add_one = jitkit::install::install(leaf, **zone, {.name = "add_one"});
  if (!add_one) {
    std::fprintf(stderr, "install add_one: %s\n", add_one.error().message().c_str());
    return 1;
  }

  // add_two(x) = add_one(add_one(x)), with a frame pointer, so that a backtrace from add_one
  // goes through it back to main.
  Assembler outer;
  outer.push(rbp);
  outer.mov(rbp, rsp);
  outer.call(abs_address(add_one->start()));
  outer.mov(edi, eax);
  outer.call(abs_address(add_one->start()));
  outer.pop(rbp);
  outer.ret();
  auto add_two = jitkit::install::install(outer, **zone, {.name = "add_two"});
  if (!add_two) {
    std::fprintf(stderr, "install add_two: %s\n", add_two.error().message().c_str());
    return 1;
  }

  // One batch, one ELF object for gdb. The frame shape of each function is read from its code.
  debug::SymbolBatch batch;
  for (const jitkit::install::InstalledCode* code : {&*add_one, &*add_two}) {
    if (auto s = debug::add_installed(batch, *code); !s) {
      std::fprintf(stderr, "%s\n", s.error().message().c_str());
      return 1;
    }
  }
  auto registration = debug::CodeRegistry::global().add(std::move(batch));
  if (!registration) {
    std::fprintf(stderr, "register: %s\n", registration.error().message().c_str());
    return 1;
  }

  const int result = add_two->entry<int(int)>()(40);
  std::printf("add_two(40) = %d\n", result);

  const debug::RegistryStats stats = debug::CodeRegistry::global().stats();
  std::printf("gdb JIT interface: %zu symbols in %zu ELF object(s)%s\n", stats.symbols, stats.gdb_objects,
              stats.gdb_objects == 0 ? " (off: JITKIT_GDB_JIT=0)" : "");
  const std::string map = debug::perf_map_path();
  const std::string dump = debug::jitdump_path();
  std::printf("perf map:          %s\n", map.empty() ? "off (JITKIT_PERF_MAP=1 turns it on)" : map.c_str());
  std::printf("jitdump:           %s\n", dump.empty() ? "off (JITKIT_JITDUMP=1 turns it on)" : dump.c_str());

  // Listings name the functions, and the targets of the calls, from the registry.
  std::printf("\n%s%s", debug::listing(*add_two).c_str(), debug::listing(*add_one).c_str());

  // Withdraw the names before the code goes away, so that nothing names freed memory.
  registration->reset();
  (void)(*zone)->free(add_two->block());
  (void)(*zone)->free(add_one->block());
  return result == 42 ? 0 : 1;
}
