// Tour section: debugging JIT code — a generated function registered with gdb's JIT interface
// and listed with names, and which perf outputs this run writes.
#include <cstdio>
#include <string>

#include "jitkit/code/code_zone.h"
#include "jitkit/debug/code_registry.h"
#include "jitkit/debug/installed_code.h"
#include "jitkit/debug/perf.h"
#include "jitkit/install/install.h"
#include "jitkit/x64/assembler.h"
#include "tour_p.h"

namespace {

using namespace jitkit::x64;  // NOLINT: registers read like assembly
namespace debug = jitkit::debug;
namespace install = jitkit::install;

bool show_debug() {
  auto zone = jitkit::code::CodeZone::create();
  if (!zone) {
    std::printf("code zone: %s\n", zone.error().message().c_str());
    return false;
  }
  // tour_square(x) = x * x: a leaf.
  Assembler sq;
  sq.mov(eax, edi);
  sq.imul(eax, edi);
  sq.ret();
  auto square = install::install(sq, **zone, {.name = "tour_square"});
  // tour_sum_of_squares(n) = sum of i*i for i = n..1, frame-pointer convention, calls tour_square.
  Assembler s;
  Label loop = s.new_label();
  Label done = s.new_label();
  s.push(rbp);
  s.mov(rbp, rsp);
  s.push(rbx);
  s.push(r12);
  s.xor_(ebx, ebx);
  s.mov(r12d, edi);
  s.test(r12d, r12d);
  s.jcc(Cond::kE, done);
  s.bind(loop);
  s.mov(edi, r12d);
  if (square) s.call(abs_address(square->start()));
  s.add(ebx, eax);
  s.dec(r12d);
  s.jcc(Cond::kNE, loop);
  s.bind(done);
  s.mov(eax, ebx);
  s.pop(r12);
  s.pop(rbx);
  s.pop(rbp);
  s.ret();
  if (!square) {
    std::printf("install tour_square: %s\n", square.error().message().c_str());
    return false;
  }
  auto sum = install::install(s, **zone, {.name = "tour_sum_of_squares"});
  if (!sum) {
    std::printf("install tour_sum_of_squares: %s\n", sum.error().message().c_str());
    return false;
  }

  // One batch for both: one ELF object for gdb.
  debug::SymbolBatch batch;
  if (auto st = debug::add_installed(batch, *square); !st) return false;
  if (auto st = debug::add_installed(batch, *sum); !st) return false;
  bool square_leaf = batch.symbols()[0].frame.rows.size() == 1;
  bool sum_fp = batch.symbols()[1].frame.rows.size() >= 3;
  auto reg = debug::CodeRegistry::global().add(std::move(batch));
  if (!reg) {
    std::printf("register: %s\n", reg.error().message().c_str());
    return false;
  }
  int result = sum->entry<int(int)>()(10);
  std::printf("zone              %s\n", std::string(jitkit::code::mode_name((*zone)->mode())).c_str());
  std::printf("ran               tour_sum_of_squares(10) = %d (expected 385)\n", result);
  debug::RegistryStats st = debug::CodeRegistry::global().stats();
  std::printf("gdb JIT interface %zu symbols in %zu in-memory ELF object(s), %zu bytes, "
              "linked into __jit_debug_descriptor%s\n",
              st.symbols, st.gdb_objects, st.gdb_object_bytes,
              st.gdb_objects == 0 ? " (disabled by JITKIT_GDB_JIT=0)" : "");
  std::printf("frames (CFI)      tour_square: %s; tour_sum_of_squares: %s (detected from the code)\n",
              square_leaf ? "leaf, CFA=rsp+8" : "none",
              sum_fp ? "frame pointer, CFA=rbp+16 after the prologue" : "none");
  std::string map = debug::perf_map_path();
  std::string dump = debug::jitdump_path();
  std::printf("perf map          %s\n",
              map.empty() ? "off (JITKIT_PERF_MAP=1 writes /tmp/perf-<pid>.map)" : map.c_str());
  std::printf("jitdump           %s\n",
              dump.empty() ? "off (JITKIT_JITDUMP=1 writes jit-<pid>.dump for perf inject --jit)"
                           : dump.c_str());
  auto covers = debug::perf_map_covers(sum->start());
  if (covers) {
    std::printf("perf map covers   %s\n",
                *covers ? "yes: the code runs from anonymous memory"
                        : "no: the code runs from a file mapping (dual mapping); use jitdump");
  }
  std::printf("\n%s", debug::listing(*sum, {.labels = {{sum->label_address(loop), "loop"},
                                                        {sum->label_address(done), "done"}}})
                          .c_str());
  std::printf("%s", debug::listing(*square).c_str());
  reg->reset();
  (void)(*zone)->free(sum->block());
  (void)(*zone)->free(square->block());
  return result == 385;
}

}  // namespace

JITKIT_TOUR_SECTION(60, "Debugging JIT code", show_debug);
