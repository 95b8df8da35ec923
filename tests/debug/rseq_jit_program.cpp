// tests/debug/rseq_jit_program.cpp — a restartable sequence emitted at run time by the rseq
// module (rseq::JitCounterAdd), registered with jitkit::debug so that gdb names the function,
// its critical-section descriptor and the section's start, commit and abort labels.
// gdb_test.cpp runs it under gdb.
//
// Prints "descriptor=", "start_ip=", "commit_ip=", "abort_ip=", "function=" and, after
// 100000 per-CPU adds through the generated section, "value=100000". Then it calls
// rseq_sections_registered(), where the test stops to inspect the symbols.
#include <cstdio>

#include "jitkit/code/code_zone.h"
#include "jitkit/debug/installed_code.h"
#include "jitkit/rseq/jit.h"
#include "jitkit/rseq/percpu.h"

extern "C" __attribute__((noinline)) void rseq_sections_registered() { __asm__ volatile("" ::: "memory"); }

int main() {
  jitkit::code::ZoneOptions options;
  options.reserve_bytes = 1 << 20;
  options.force_mode = jitkit::code::ZoneMode::kDualMapped;
  auto zone = jitkit::code::CodeZone::create(options);
  if (!zone) {
    std::fprintf(stderr, "zone: %s\n", zone.error().message().c_str());
    return 2;
  }
  jitkit::rseq::JitOptions jit_options;
  jit_options.name = "jit_counter_add";
  auto jit = jitkit::rseq::JitCounterAdd::create(**zone, jit_options);
  if (!jit) {
    std::fprintf(stderr, "rseq jit: %s\n", jit.error().message().c_str());
    return 2;
  }
  jitkit::debug::SymbolBatch batch;
  if (auto s = jitkit::debug::add_installed(batch, (*jit)->code(), std::nullopt, "jit_counter_add"); !s) {
    std::fprintf(stderr, "%s\n", s.error().message().c_str());
    return 2;
  }
  if (auto s = batch.add_rseq_section("counter_add", (*jit)->descriptor()); !s) {
    std::fprintf(stderr, "%s\n", s.error().message().c_str());
    return 2;
  }
  auto reg = jitkit::debug::CodeRegistry::global().add(std::move(batch));
  if (!reg) {
    std::fprintf(stderr, "%s\n", reg.error().message().c_str());
    return 2;
  }
  const jitkit::rseq::RseqCs* cs = (*jit)->descriptor();
  std::printf("descriptor=%p\nstart_ip=%#llx\ncommit_ip=%#llx\nabort_ip=%#llx\nfunction=%#llx\n",
              static_cast<const void*>(cs), static_cast<unsigned long long>(cs->start_ip),
              static_cast<unsigned long long>(cs->start_ip + cs->post_commit_offset),
              static_cast<unsigned long long>(cs->abort_ip),
              static_cast<unsigned long long>((*jit)->code().start()));
  std::fflush(stdout);
  jitkit::rseq::PerCpuCounter counter;
  (*jit)->add(counter, 1, 100000);
  std::printf("value=%lld\n", static_cast<long long>(counter.value()));
  std::fflush(stdout);
  rseq_sections_registered();
  reg->reset();  // before the code is released
  if (auto s = (*jit)->release(); !s) {
    std::fprintf(stderr, "release: %s\n", s.error().message().c_str());
    return 2;
  }
  return counter.value() == 100000 ? 0 : 1;
}
