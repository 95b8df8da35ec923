// tests/debug/jit_frames_program.cpp — the program gdb_test.cpp runs under gdb.
//
// It installs hand-encoded functions that call each other and then a host function, registers
// them with jitkit::debug (one batch: gdb gets one ELF object), runs them, then unregisters
// them and calls a host function that gdb can stop in to check that the names are gone.
//
//   main -> jit_outer      (frame pointer: push rbp; mov rbp, rsp; call; pop rbp; ret)
//        -> jit_middle     (NO frame pointer: sub rsp, 24; fills the 24 bytes; call; add rsp, 24;
//                           ret; only the CFI tells gdb where its caller's frame is)
//        -> jit_inner      (frame pointer; calls host_callback through rax)
//        -> host_callback  (C++; `break host_callback` + `bt` must reach main through the above)
//   main -> jit_leaf       (leaf: lea eax, [rdi+1]; ret)
//   jit_rseq_demo + descriptor: an rseq-shaped critical section named __rseq_cs_demo etc.
//
// Usage: jit_frames_program dual|anon [nocfi|attach]
//   dual: CodeZone kDualMapped (memfd RW/RX views); anon: CodeZone kToggled (anonymous pages); nocfi:
//   jit_middle without unwind rows
// Prints "jit_inner=0x..." style lines, then "result=<n>" and exits 0 when all calls worked.
#include <unistd.h>

#include <cinttypes>
#include <cstdio>
#include <cstring>
#include <vector>

#include "debug/test_code_memory_p.h"
#include "jitkit/debug/code_registry.h"

using jitkit::debug::FrameInfo;
using jitkit::debug::SymbolBatch;
using jitkit::debug::UnwindRow;
using jitkit::debug::test_util::TestCodeMemory;

extern "C" {
volatile int host_callback_calls = 0;
// Called from jit_inner. noinline + the volatile keep it a real frame gdb can stop in.
__attribute__((noinline)) int host_callback() {
  host_callback_calls = host_callback_calls + 1;
  return 40 + host_callback_calls;
}
// Called after the batch is unregistered, with the former address of jit_inner.
__attribute__((noinline)) void after_unregister(const void* former_jit_inner) {
  __asm__ volatile("" : : "r"(former_jit_inner) : "memory");
}
}

namespace {

void put_rel32(std::vector<std::uint8_t>& code, const std::uint8_t* exec_of_code,
               const std::uint8_t* target) {
  // rel32 is relative to the end of the 4-byte field.
  std::int64_t rel = target - (exec_of_code + code.size() + 4);
  auto r = static_cast<std::int32_t>(rel);
  const auto* p = reinterpret_cast<const std::uint8_t*>(&r);
  code.insert(code.end(), p, p + 4);
}

alignas(32) std::uint8_t rseq_descriptor[32];

}  // namespace

int main(int argc, char** argv) {
  bool dual = argc < 2 || std::strcmp(argv[1], "anon") != 0;
  // "nocfi": register jit_middle without unwind rows, to show that gdb needs them (its
  // prologue analysis cannot see through `sub rsp, 24`: see jit_middle below).
  bool no_cfi = argc >= 3 && std::strcmp(argv[2], "nocfi") == 0;
  // "attach": after registering, print "ready" and wait (up to 60 s) for a debugger to attach
  // and read the objects registered before it came.
  bool wait_for_attach = argc >= 3 && std::strcmp(argv[2], "attach") == 0;
  TestCodeMemory mem(dual ? TestCodeMemory::Kind::kDual : TestCodeMemory::Kind::kAnon, 1 << 16);
  jitkit::code::CodeBlock b_outer = mem.reserve(64), b_middle = mem.reserve(64), b_inner = mem.reserve(64),
                          b_leaf = mem.reserve(64), b_rseq = mem.reserve(64);
  std::uint8_t* outer = b_outer.exec;
  std::uint8_t* middle = b_middle.exec;
  std::uint8_t* inner = b_inner.exec;
  std::uint8_t* leaf = b_leaf.exec;
  std::uint8_t* rseq = b_rseq.exec;

  // jit_outer: push rbp; mov rbp, rsp; call jit_middle; pop rbp; ret
  std::vector<std::uint8_t> c_outer = {0x55, 0x48, 0x89, 0xe5, 0xe8};
  put_rel32(c_outer, outer, middle);
  c_outer.insert(c_outer.end(), {0x5d, 0xc3});
  // jit_middle: sub rsp, 24; mov qword [rsp], 0x0badc0de; mov qword [rsp+8], 0;
  //             mov qword [rsp+16], 0; call jit_inner; add rsp, 24; ret
  // Without CFI, gdb's prologue analysis finds no `push rbp` and takes jit_middle for a function
  // that has not moved rsp: it reads the caller's pc at [rsp], inside the 24 bytes, instead of at
  // [rsp+24]. Left unwritten, those bytes held what earlier calls had left there, and the
  // backtrace depended on it: a 0 ended it; three words that are neither 0 nor code made gdb
  // (which assumes the same of a pc it cannot name, one word further up each time) reach the
  // return address at [rsp+24], i.e. jit_outer; a code address unwound through that code.
  // Filled, the words gdb reads are the poison 0x0badc0de (no code there), as jit_middle's
  // caller, and then 0, where it stops: the same backtrace whatever ran before.
  std::vector<std::uint8_t> c_middle = {0x48, 0x83, 0xec, 0x18,                                //
                                        0x48, 0xc7, 0x04, 0x24, 0xde, 0xc0, 0xad, 0x0b,        //
                                        0x48, 0xc7, 0x44, 0x24, 0x08, 0x00, 0x00, 0x00, 0x00,  //
                                        0x48, 0xc7, 0x44, 0x24, 0x10, 0x00, 0x00, 0x00, 0x00,  //
                                        0xe8};
  put_rel32(c_middle, middle, inner);
  c_middle.insert(c_middle.end(), {0x48, 0x83, 0xc4, 0x18, 0xc3});
  // jit_inner: push rbp; mov rbp, rsp; movabs rax, host_callback; call rax; pop rbp; ret
  std::vector<std::uint8_t> c_inner = {0x55, 0x48, 0x89, 0xe5, 0x48, 0xb8};
  auto host = reinterpret_cast<std::uint64_t>(&host_callback);
  const auto* hp = reinterpret_cast<const std::uint8_t*>(&host);
  c_inner.insert(c_inner.end(), hp, hp + 8);
  c_inner.insert(c_inner.end(), {0xff, 0xd0, 0x5d, 0xc3});
  // jit_leaf: lea eax, [rdi+1]; ret
  std::vector<std::uint8_t> c_leaf = {0x8d, 0x47, 0x01, 0xc3};
  // jit_rseq_demo: start: mov eax, 7 (the "critical section"); commit: ret; then the 4-byte
  // signature the kernel checks before an abort handler, then abort: mov eax, -1; ret.
  std::vector<std::uint8_t> c_rseq = {0xb8, 7,    0,    0,    0,    0xc3, 0x53, 0x30,
                                      0x05, 0x53, 0xb8, 0xff, 0xff, 0xff, 0xff, 0xc3};
  mem.write(b_outer, c_outer.data(), c_outer.size());
  mem.write(b_middle, c_middle.data(), c_middle.size());
  mem.write(b_inner, c_inner.data(), c_inner.size());
  mem.write(b_leaf, c_leaf.data(), c_leaf.size());
  mem.write(b_rseq, c_rseq.data(), c_rseq.size());
  mem.finish();

  // struct rseq_cs {version 0, flags 0, start_ip, post_commit_offset, abort_ip}
  std::uint64_t cs[4] = {0, reinterpret_cast<std::uint64_t>(rseq), 5,
                         reinterpret_cast<std::uint64_t>(rseq + 10)};
  std::memcpy(rseq_descriptor, cs, sizeof cs);

  SymbolBatch batch;
  batch.add_function("jit_outer", outer, c_outer.size(), FrameInfo::frame_pointer(1, 4, {10}), b_outer.size);
  FrameInfo middle_frame;
  middle_frame.has_unwind = true;
  middle_frame.rows = {{0, UnwindRow::Base::kRsp, 8, false},
                       {4, UnwindRow::Base::kRsp, 32, false},
                       {39, UnwindRow::Base::kRsp, 8, false}};
  batch.add_function("jit_middle", middle, c_middle.size(), no_cfi ? FrameInfo::none() : middle_frame,
                     b_middle.size);
  batch.add_function("jit_inner", inner, c_inner.size(), FrameInfo::frame_pointer(1, 4, {17}), b_inner.size);
  batch.add_function("jit_leaf", leaf, c_leaf.size(), FrameInfo::leaf(), b_leaf.size);
  batch.add_function("jit_rseq_demo", rseq, c_rseq.size(), FrameInfo::leaf(), b_rseq.size);
  if (auto s = batch.add_rseq_section("demo", rseq_descriptor); !s) {
    std::fprintf(stderr, "add_rseq_section: %s\n", s.error().message().c_str());
    return 1;
  }
  auto reg = jitkit::debug::CodeRegistry::global().add(std::move(batch));
  if (!reg) {
    std::fprintf(stderr, "register: %s\n", reg.error().message().c_str());
    return 1;
  }
  std::printf("jit_outer=%p\njit_middle=%p\njit_inner=%p\njit_leaf=%p\nrseq_cs=%p\n",
              static_cast<void*>(outer), static_cast<void*>(middle), static_cast<void*>(inner),
              static_cast<void*>(leaf), static_cast<void*>(rseq_descriptor));
  std::fflush(stdout);
  if (wait_for_attach) {
    std::printf("ready\n");
    std::fflush(stdout);
    for (int i = 0; i < 600; ++i) usleep(100000);
    return 3;  // not killed by the test: it did not finish its job
  }

  int leaf_result = reinterpret_cast<int (*)(int)>(leaf)(41);
  int outer_result = reinterpret_cast<int (*)()>(outer)();
  int rseq_result = reinterpret_cast<int (*)()>(rseq)();
  reg->reset();  // unregister before the code goes away
  after_unregister(inner);
  std::printf("result=%d,%d,%d\n", leaf_result, outer_result, rseq_result);
  return leaf_result == 42 && outer_result == 41 && rseq_result == 7 ? 0 : 1;
}
