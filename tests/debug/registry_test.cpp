// tests/debug/registry_test.cpp — the CodeRegistry's bookkeeping and the ELF objects it builds,
// checked in-process (the descriptor list gdb reads) and with readelf (the object's symbols,
// sections and CFI as an independent ELF/DWARF reader decodes them).
#include <gtest/gtest.h>

#include <sys/mman.h>
#include <unistd.h>

#include <atomic>
#include <cstring>
#include <fstream>
#include <thread>
#include <vector>

#include <elf.h>

#include "debug/elf_object_p.h"
#include "debug/gdb_jit_interface_p.h"
#include "debug/tool_runner_p.h"
#include "jitkit/debug/code_registry.h"

namespace jitkit::debug {
namespace {

using test_util::require_tool;
using test_util::run_command;

// Addresses the tests name. Nothing executes them; the registry never dereferences functions
// (only the jitdump writer copies code bytes, and it is disabled here).
alignas(64) std::uint8_t fake_code[1 << 16];

std::size_t descriptor_list_length() {
  std::size_t n = 0;
  for (jit_code_entry* e = __jit_debug_descriptor.first_entry; e != nullptr; e = e->next_entry) {
    if (e->next_entry != nullptr) {
      EXPECT_EQ(e->next_entry->prev_entry, e);
    }
    EXPECT_EQ(std::memcmp(e->symfile_addr,
                          "\x7f"
                          "ELF",
                          4),
              0);
    ++n;
  }
  return n;
}

std::string write_temp(const std::vector<std::uint8_t>& bytes) {
  char path[] = "/tmp/jitkit-debug-elf-XXXXXX";
  int fd = mkstemp(path);
  EXPECT_GE(fd, 0);
  EXPECT_EQ(write(fd, bytes.data(), bytes.size()), static_cast<ssize_t>(bytes.size()));
  close(fd);
  return path;
}

TEST(CodeRegistry, RejectsBadSymbolsWithMessagesNamingThem) {
  CodeRegistry& r = CodeRegistry::global();
  auto empty_name = r.add_function("", fake_code, 16);
  ASSERT_FALSE(empty_name);
  EXPECT_NE(empty_name.error().message().find("empty name"), std::string::npos);
  auto null_addr = r.add_function("f", nullptr, 16);
  ASSERT_FALSE(null_addr);
  EXPECT_NE(null_addr.error().message().find("null address"), std::string::npos);
  auto zero = r.add_function("zero_size", fake_code, 0);
  ASSERT_FALSE(zero);
  EXPECT_NE(zero.error().message().find("'zero_size'"), std::string::npos);
  auto bad_row = r.add_function("short_fn", fake_code, 3, FrameInfo::frame_pointer(1, 4));
  ASSERT_FALSE(bad_row);
  EXPECT_NE(bad_row.error().message().find("outside the function"), std::string::npos);

  SymbolBatch overlap;
  overlap.add_function("a", fake_code, 32);
  overlap.add_function("b", fake_code + 16, 32);
  auto o = r.add(std::move(overlap));
  ASSERT_FALSE(o);
  EXPECT_NE(o.error().message().find("overlaps function 'a'"), std::string::npos);
  EXPECT_FALSE(r.add(SymbolBatch{}));
}

TEST(CodeRegistry, RejectsASecondFunctionAtARegisteredAddress) {
  CodeRegistry& r = CodeRegistry::global();
  auto first = r.add_function("first", fake_code + 128, 8);
  ASSERT_TRUE(first) << first.error().message();
  auto second = r.add_function("second", fake_code + 128, 8);
  ASSERT_FALSE(second);
  EXPECT_NE(second.error().message().find("already registered"), std::string::npos);
  first->reset();
  auto third = r.add_function("third", fake_code + 128, 8);
  EXPECT_TRUE(third);
}

TEST(CodeRegistry, OneBatchIsOneGdbObjectAndReleaseUnlinksIt) {
  CodeRegistry& r = CodeRegistry::global();
  RegistryStats before = r.stats();
  std::size_t list_before = descriptor_list_length();
  SymbolBatch batch;
  for (int i = 0; i < 1000; ++i) {
    batch.add_function("batched_" + std::to_string(i), fake_code + 64 * i, 40,
                       FrameInfo::frame_pointer(1, 4, {39}), 64);
  }
  auto reg = r.add(std::move(batch), Grouping::kOwnObject);
  ASSERT_TRUE(reg) << reg.error().message();
  RegistryStats during = r.stats();
  EXPECT_EQ(during.gdb_objects, before.gdb_objects + 1);
  EXPECT_EQ(during.symbols, before.symbols + 1000);
  EXPECT_EQ(during.gdb_register_calls, before.gdb_register_calls + 1);
  EXPECT_EQ(descriptor_list_length(), list_before + 1);
  EXPECT_EQ(__jit_debug_descriptor.action_flag, static_cast<std::uint32_t>(JIT_NOACTION));

  reg->reset();
  RegistryStats after = r.stats();
  EXPECT_EQ(after.gdb_objects, before.gdb_objects);
  EXPECT_EQ(after.symbols, before.symbols);
  EXPECT_EQ(descriptor_list_length(), list_before);
}

TEST(CodeRegistry, RemoveFunctionRebuildsItsBatchWithoutIt) {
  CodeRegistry& r = CodeRegistry::global();
  SymbolBatch batch;
  batch.add_function("keep_a", fake_code + 4096, 16);
  batch.add_function("drop_b", fake_code + 4096 + 64, 16);
  batch.add_label("drop_b_label", fake_code + 4096 + 64 + 8);
  batch.add_function("keep_c", fake_code + 4096 + 128, 16);
  auto reg = r.add(std::move(batch), Grouping::kOwnObject);
  ASSERT_TRUE(reg);
  std::size_t symbols = r.stats().symbols;
  ASSERT_TRUE(r.remove_function(fake_code + 4096 + 64));
  EXPECT_EQ(r.stats().symbols, symbols - 2);  // the function and the label inside it
  // The rebuilt object is the newest entry (linked at the head).
  jit_code_entry* e = __jit_debug_descriptor.first_entry;
  ASSERT_NE(e, nullptr);
  std::string image(e->symfile_addr, e->symfile_size);
  EXPECT_NE(image.find("keep_a"), std::string::npos);
  EXPECT_NE(image.find("keep_c"), std::string::npos);
  EXPECT_EQ(image.find("drop_b"), std::string::npos);
  EXPECT_EQ(r.symbolize(reinterpret_cast<std::uintptr_t>(fake_code + 4096 + 64)), std::nullopt);
  EXPECT_EQ(r.symbolize(reinterpret_cast<std::uintptr_t>(fake_code + 4096 + 130)), "keep_c+0x2");
  EXPECT_FALSE(r.remove_function(fake_code + 4096 + 64));  // already gone
  ASSERT_TRUE(r.remove_function(fake_code + 4096));
  ASSERT_TRUE(r.remove_function(fake_code + 4096 + 128));
  EXPECT_EQ(r.symbolize(reinterpret_cast<std::uintptr_t>(fake_code + 4096 + 130)), std::nullopt);
  reg->reset();  // the batch is already empty: a no-op
}

TEST(CodeRegistry, FunctionsRegisteredOneAtATimeShareFewGdbObjects) {
  CodeRegistry& r = CodeRegistry::global();
  RegistryStats before = r.stats();
  std::size_t list_before = descriptor_list_length();
  constexpr std::size_t kN = 10000;
  // Distinct fake addresses, 4 bytes apart (a reserved range: nothing reads them).
  static std::uint8_t* area = static_cast<std::uint8_t*>(
      mmap(nullptr, kN * 4, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0));
  ASSERT_NE(area, MAP_FAILED);
  std::vector<Registration> regs;
  for (std::size_t i = 0; i < kN; ++i) {
    auto reg = r.add_function("one_" + std::to_string(i), area + 4 * i, 4, FrameInfo::leaf());
    ASSERT_TRUE(reg) << reg.error().message();
    regs.push_back(std::move(*reg));
  }
  RegistryStats during = r.stats();
  std::size_t objects = during.gdb_objects - before.gdb_objects;
  // ceil(10000 / 4096) = 3 full-ish objects plus a binary-counter tail of at most ~log2(4096).
  EXPECT_LE(objects, 3u + 13u);
  EXPECT_GE(objects, 3u);
  EXPECT_EQ(descriptor_list_length(), list_before + objects);
  // Amortized rebuilding: each symbol written O(log 4096) times, not O(n).
  std::uint64_t built = during.symbols_built - before.symbols_built;
  EXPECT_LE(built, kN * 14);
  // Every function is still in exactly one object: count the names in the linked images.
  std::size_t names = 0;
  for (jit_code_entry* e = __jit_debug_descriptor.first_entry; e != nullptr; e = e->next_entry) {
    std::string image(e->symfile_addr, e->symfile_size);
    for (std::size_t pos = image.find("one_"); pos != std::string::npos; pos = image.find("one_", pos + 1)) {
      ++names;
    }
  }
  EXPECT_EQ(names, kN);
  // Releasing from the middle rebuilds only the object holding it; all the rest stay named.
  regs.erase(regs.begin() + 5000);
  EXPECT_EQ(r.symbolize(reinterpret_cast<std::uintptr_t>(area + 4 * 5000)), std::nullopt);
  EXPECT_EQ(r.symbolize(reinterpret_cast<std::uintptr_t>(area + 4 * 5001)), "one_5001");
  regs.clear();
  EXPECT_EQ(r.stats().gdb_objects, before.gdb_objects);
  EXPECT_EQ(descriptor_list_length(), list_before);
}

std::size_t images_containing(const std::string& name) {
  std::size_t n = 0;
  for (jit_code_entry* e = __jit_debug_descriptor.first_entry; e != nullptr; e = e->next_entry) {
    std::string image(e->symfile_addr, e->symfile_size);
    if (image.find(name + '\0') != std::string::npos) ++n;
  }
  return n;
}

TEST(CodeRegistry, ReleasedNameLeavesGdbBeforeNewCodeOverlapsIt) {
  CodeRegistry& r = CodeRegistry::global();
  std::vector<Registration> regs;
  std::uint8_t* base = fake_code + 40960;
  for (int i = 0; i < 100; ++i) {
    auto reg = r.add_function("pooled_" + std::to_string(i), base + 64 * i, 48, FrameInfo::leaf());
    ASSERT_TRUE(reg);
    regs.push_back(std::move(*reg));
  }
  std::size_t dead_before = r.stats().released_symbols_in_gdb;
  regs[50].reset();
  // Released: jitkit no longer names it; its shared object keeps it until a rebuild (O(1)
  // release instead of rebuilding up to 4096 symbols).
  EXPECT_EQ(r.symbolize(reinterpret_cast<std::uintptr_t>(base + 64 * 50)), std::nullopt);
  EXPECT_EQ(r.stats().released_symbols_in_gdb, dead_before + 1);
  EXPECT_EQ(images_containing("pooled_50"), 1u);
  // New code over part of the released range (different start): the stale object is rebuilt
  // first, so gdb never has two names for the new code's addresses.
  auto fresh = r.add_function("fresh_code", base + 64 * 50 + 16, 40, FrameInfo::leaf());
  ASSERT_TRUE(fresh);
  EXPECT_EQ(images_containing("pooled_50"), 0u);
  EXPECT_EQ(images_containing("fresh_code"), 1u);
  EXPECT_EQ(images_containing("pooled_49"), 1u);
  EXPECT_EQ(images_containing("pooled_51"), 1u);
  EXPECT_EQ(r.stats().released_symbols_in_gdb, dead_before);
  regs.clear();
  fresh->reset();
  EXPECT_EQ(images_containing("pooled_0"), 0u);
}

TEST(CodeRegistry, OwnObjectGroupingGivesEachBatchItsObject) {
  CodeRegistry& r = CodeRegistry::global();
  RegistryStats before = r.stats();
  std::vector<Registration> regs;
  for (int i = 0; i < 100; ++i) {
    SymbolBatch b;
    b.add_function("own_" + std::to_string(i), fake_code + 32768 + 8 * i, 8);
    auto reg = r.add(std::move(b), Grouping::kOwnObject);
    ASSERT_TRUE(reg);
    regs.push_back(std::move(*reg));
  }
  EXPECT_EQ(r.stats().gdb_objects, before.gdb_objects + 100);
  regs.clear();
  EXPECT_EQ(r.stats().gdb_objects, before.gdb_objects);
}

TEST(ElfObject, ReadelfSeesSymbolsSectionsAtRunTimeAddressesAndCfi) {
  if (!require_tool("readelf", "binutils")) return;
  std::vector<Symbol> symbols(3);
  symbols[0] = {"fp_fn", 0x7f0000001000, 12, SymbolKind::kFunction, 64, FrameInfo::frame_pointer(1, 4, {11})};
  symbols[1] = {"leaf_fn", 0x7f0000001040, 4, SymbolKind::kFunction, 64, FrameInfo::leaf()};
  symbols[2] = {"far_data", 0x7f0000100000, 32, SymbolKind::kData, 0, {}};
  ASSERT_TRUE(detail::validate_symbols(symbols));
  auto objects = detail::build_elf_objects(symbols);
  ASSERT_EQ(objects.size(), 1u);
  std::string path = write_temp(objects[0]);
  auto r = run_command("readelf -W -S -s --debug-dump=frames " + path);
  unlink(path.c_str());
  SCOPED_TRACE(r.output);
  EXPECT_EQ(r.exit_code, 0);
  EXPECT_EQ(r.output.find("Warning"), std::string::npos);
  EXPECT_EQ(r.output.find("Error"), std::string::npos);
  // The two functions' extents touch (64-byte blocks): one .text section from 0x...1000, 0x80
  // long; the data gets its own .data section.
  EXPECT_TRUE(
      std::regex_search(r.output, std::regex(R"(\.text +NOBITS +00007f0000001000 [0-9a-f]+ 000080 .* AX)")));
  EXPECT_TRUE(
      std::regex_search(r.output, std::regex(R"(\.data +NOBITS +00007f0000100000 [0-9a-f]+ 000020 .* WA)")));
  EXPECT_TRUE(
      std::regex_search(r.output, std::regex(R"(0000000000000000 +12 FUNC +GLOBAL +DEFAULT +\d+ fp_fn)")));
  EXPECT_TRUE(
      std::regex_search(r.output, std::regex(R"(0000000000000040 +4 FUNC +GLOBAL +DEFAULT +\d+ leaf_fn)")));
  EXPECT_TRUE(std::regex_search(r.output, std::regex(R"(32 OBJECT +GLOBAL +DEFAULT +\d+ far_data)")));
  // CFI: the FDE covers fp_fn; push rbp -> CFA rsp+16, rbp saved at cfa-16; mov -> CFA rbp+16;
  // at the ret (offset 11) -> CFA rsp+8 and rbp restored.
  EXPECT_TRUE(
      std::regex_search(r.output, std::regex(R"(FDE cie=00000000 pc=00007f0000001000\.\.00007f000000100c)")));
  EXPECT_NE(r.output.find("DW_CFA_def_cfa: r7 (rsp) ofs 8"), std::string::npos);
  EXPECT_NE(r.output.find("DW_CFA_def_cfa: r7 (rsp) ofs 16"), std::string::npos);
  EXPECT_NE(r.output.find("DW_CFA_offset: r6 (rbp) at cfa-16"), std::string::npos);
  EXPECT_NE(r.output.find("DW_CFA_def_cfa: r6 (rbp) ofs 16"), std::string::npos);
  EXPECT_NE(r.output.find("DW_CFA_same_value: r6 (rbp)"), std::string::npos);
  EXPECT_TRUE(
      std::regex_search(r.output, std::regex(R"(FDE cie=00000000 pc=00007f0000001040\.\.00007f0000001044)")));
}

TEST(ElfObject, ScatteredFunctionsGetOneSectionEachAndTooManySplitTheBatch) {
  // 2 * kMaxRangesPerObject + 5 functions, none touching: three objects, no symbol lost.
  std::size_t n = 2 * detail::kMaxRangesPerObject + 5;
  std::vector<Symbol> symbols(n);
  for (std::size_t i = 0; i < n; ++i) {
    symbols[i].name = "s" + std::to_string(i);
    symbols[i].address = 0x100000000 + 4096 * i;
    symbols[i].size = 16;
  }
  auto objects = detail::build_elf_objects(symbols);
  ASSERT_EQ(objects.size(), 3u);
  std::size_t total_symbols = 0;
  for (const auto& o : objects) {
    Elf64_Ehdr eh;
    std::memcpy(&eh, o.data(), sizeof eh);
    EXPECT_LE(eh.e_shnum, 0xff00);
    Elf64_Shdr symtab;
    std::memcpy(&symtab, o.data() + eh.e_shoff + 3 * sizeof(Elf64_Shdr), sizeof symtab);
    EXPECT_EQ(symtab.sh_type, static_cast<Elf64_Word>(SHT_SYMTAB));
    total_symbols += symtab.sh_size / sizeof(Elf64_Sym) - 1;
  }
  EXPECT_EQ(total_symbols, n);
}

TEST(CodeRegistry, RseqSectionNamesDescriptorAndLabels) {
  alignas(32) static std::uint64_t cs[4];
  auto start = reinterpret_cast<std::uint64_t>(fake_code + 8192);
  cs[0] = 0;
  cs[1] = start;
  cs[2] = 10;
  cs[3] = start + 20;
  SymbolBatch batch;
  ASSERT_TRUE(batch.add_rseq_section("counter_inc", cs));
  ASSERT_EQ(batch.size(), 4u);
  EXPECT_EQ(batch.symbols()[0].name, "__rseq_cs_counter_inc");
  EXPECT_EQ(batch.symbols()[0].address, reinterpret_cast<std::uintptr_t>(cs));
  EXPECT_EQ(batch.symbols()[0].size, 32u);
  EXPECT_EQ(batch.symbols()[1].name, "__rseq_start_counter_inc");
  EXPECT_EQ(batch.symbols()[1].address, start);
  EXPECT_EQ(batch.symbols()[2].name, "__rseq_commit_counter_inc");
  EXPECT_EQ(batch.symbols()[2].address, start + 10);
  EXPECT_EQ(batch.symbols()[3].name, "__rseq_abort_counter_inc");
  EXPECT_EQ(batch.symbols()[3].address, start + 20);

  cs[3] = start + 4;  // abort inside [start, start + 10): the kernel would kill the thread
  auto inside = batch.add_rseq_section("bad", cs);
  ASSERT_FALSE(inside);
  EXPECT_NE(inside.error().message().find("abort_ip lies inside"), std::string::npos);
  cs[3] = start + 20;
  cs[0] = 1;
  EXPECT_FALSE(batch.add_rseq_section("bad_version", cs));
  EXPECT_FALSE(batch.add_rseq_section("misaligned", reinterpret_cast<std::uint8_t*>(cs) + 8));
}

TEST(CodeRegistry, ConcurrentRegistrationsKeepTheListConsistent) {
  CodeRegistry& r = CodeRegistry::global();
  std::size_t list_before = descriptor_list_length();
  RegistryStats before = r.stats();
  constexpr int kThreads = 4;
  constexpr int kRounds = 500;
  std::atomic<int> failures{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      std::vector<Registration> held;
      for (int i = 0; i < kRounds; ++i) {
        SymbolBatch b;
        // Disjoint addresses per thread and round.
        b.add_function("t" + std::to_string(t) + "_" + std::to_string(i),
                       fake_code + 16384 + (t * kRounds + i) * 8, 8, FrameInfo::leaf());
        auto reg = r.add(std::move(b));
        if (!reg) {
          failures.fetch_add(1);
          continue;
        }
        held.push_back(std::move(*reg));
        if (i % 3 == 0) held.erase(held.begin());  // release some while others register
      }
    });
  }
  for (auto& th : threads) th.join();
  EXPECT_EQ(failures.load(), 0);
  EXPECT_EQ(descriptor_list_length(), list_before);
  EXPECT_EQ(r.stats().symbols, before.symbols);
}

}  // namespace
}  // namespace jitkit::debug
