// The critical-section descriptors are where debuggers look for them (docs/rseq.md):
//  * in this test binary, every descriptor of __rseq_cs is well-formed, __rseq_cs_ptr_array
//    points at each of them, every exit point leaves a known section, and every abort handler
//    is preceded by the signature;
//  * in a separate program linked with --gc-sections, the sections are still there (readelf).
#include <gtest/gtest.h>

#include <cstdint>
#include <cstdio>
#include <cstring>
#include <set>
#include <string>

#include "jitkit/rseq/percpu.h"
#include "jitkit/rseq/rseq.h"

extern "C" {
// Defined by the linker for sections whose names are C identifiers.
extern const jitkit::rseq::RseqCs __start___rseq_cs[] __attribute__((weak));
extern const jitkit::rseq::RseqCs __stop___rseq_cs[] __attribute__((weak));
extern const std::uint64_t __start___rseq_cs_ptr_array[] __attribute__((weak));
extern const std::uint64_t __stop___rseq_cs_ptr_array[] __attribute__((weak));
extern const std::uint64_t __start___rseq_exit_point_array[] __attribute__((weak));
extern const std::uint64_t __stop___rseq_exit_point_array[] __attribute__((weak));
}

namespace jitkit::rseq {
namespace {

// Instantiates every kind of section in this binary.
void use_every_operation() {
  PerCpuCounter c;
  c.add(1);
  PerCpuWord w;
  (void)w.compare_and_store(0, 1);
  PerCpuList l;
  PerCpuList::Node n{};
  l.push(&n);
  (void)l.pop();
}

TEST(DescriptorSections, EveryDescriptorIsWellFormedAndListed) {
  use_every_operation();
  ASSERT_NE(__start___rseq_cs, nullptr);
  const RseqCs* begin = __start___rseq_cs;
  const RseqCs* end = __stop___rseq_cs;
  ASSERT_LT(begin, end);
  std::set<std::uint64_t> descriptors, starts;
  for (const RseqCs* cs = begin; cs < end; ++cs) {
    EXPECT_EQ(cs->version, 0u);
    EXPECT_EQ(cs->flags, 0u);
    EXPECT_GT(cs->post_commit_offset, 0u);
    EXPECT_LT(cs->post_commit_offset, 256u);
    // The abort handler lies outside [start_ip, start_ip + post_commit_offset) ...
    EXPECT_FALSE(cs->abort_ip >= cs->start_ip && cs->abort_ip < cs->start_ip + cs->post_commit_offset);
    // ... and is preceded by `ud1 0x53053053(%rip), %edi`: 0f b9 3d + the signature.
    const auto* abort = reinterpret_cast<const std::uint8_t*>(cs->abort_ip);
    std::uint32_t sig = 0;
    std::memcpy(&sig, abort - 4, 4);
    EXPECT_EQ(sig, kSignature);
    EXPECT_EQ(abort[-7], 0x0f);
    EXPECT_EQ(abort[-6], 0xb9);
    EXPECT_EQ(abort[-5], 0x3d);
    descriptors.insert(reinterpret_cast<std::uint64_t>(cs));
    starts.insert(cs->start_ip);
  }
  // Four kinds of section, instantiated above (the inline fast paths and the slow paths each
  // hold a copy of some).
  EXPECT_GE(descriptors.size(), 4u);
  std::set<std::uint64_t> pointed;
  for (const std::uint64_t* p = __start___rseq_cs_ptr_array; p < __stop___rseq_cs_ptr_array; ++p) {
    EXPECT_TRUE(descriptors.count(*p)) << std::hex << *p;
    pointed.insert(*p);
  }
  EXPECT_EQ(pointed, descriptors);
  ASSERT_NE(__start___rseq_exit_point_array, nullptr);
  std::size_t exits = 0;
  for (const std::uint64_t* p = __start___rseq_exit_point_array; p + 1 < __stop___rseq_exit_point_array;
       p += 2) {
    EXPECT_TRUE(starts.count(p[0])) << "exit point of an unknown section " << std::hex << p[0];
    ++exits;
  }
  EXPECT_GE(exits, 3u);  // compare-store (locked, mismatch), push (locked), pop (locked, empty)
}

std::string run(const std::string& cmd) {
  std::string out;
  FILE* f = popen(cmd.c_str(), "r");
  if (f == nullptr) return out;
  char buf[4096];
  std::size_t n;
  while ((n = std::fread(buf, 1, sizeof buf, f)) > 0) out.append(buf, n);
  pclose(f);
  return out;
}

TEST(DescriptorSections, SurviveGcSectionsInALinkedProgram) {
  const std::string probe = JITKIT_RSEQ_GC_PROBE;
  std::string sections = run("readelf -SW '" + probe + "' 2>&1");
  ASSERT_NE(sections.find("Section Headers"), std::string::npos) << sections;
  for (const char* name :
       {"__rseq_cs ", "__rseq_cs_ptr_array", "__rseq_exit_point_array", "__rseq_failure"}) {
    EXPECT_NE(sections.find(name), std::string::npos) << name << " missing from\n" << sections;
  }
  // And the program works: its sections were linked, not just kept.
  EXPECT_EQ(run("'" + probe + "'"), "1000 1\n");
}

}  // namespace
}  // namespace jitkit::rseq
