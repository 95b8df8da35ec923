// tests/code/refusal_filter_p.h — seccomp filters that make the kernel refuse what a hardened
// system refuses, for the real-refusal tests (refusal_child.cpp).
//
// A raw classic-BPF program installed with prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER): no
// libseccomp. It applies to the calling thread and its future children, so it is installed only
// in a child process that exists for one scenario.
#pragma once

#include <linux/audit.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/syscall.h>

#include <cerrno>
#include <cstddef>
#include <vector>

namespace jitkit::code::test_util {

struct Refusals {
  bool memfd = false;       // memfd_create fails with EPERM, as under a container's seccomp profile
  bool membarrier = false;  // membarrier fails with ENOSYS, as on an old kernel or under valgrind
  // Like SELinux without execmem: PROT_EXEC is refused (EACCES) for mmap of anonymous or
  // private memory and for every mprotect (a filter cannot see whether the target is shared
  // file memory, so it refuses them all). An executable MAP_SHARED mapping of a file is allowed.
  bool execmem = false;
};

// Installs the filter. Returns 0, or the errno of the failed prctl (EINVAL: no seccomp filter
// support in this kernel).
inline int install_refusal_filter(const Refusals& r) {
  constexpr unsigned kArgLow[6] = {offsetof(seccomp_data, args[0]), offsetof(seccomp_data, args[1]),
                                   offsetof(seccomp_data, args[2]), offsetof(seccomp_data, args[3]),
                                   offsetof(seccomp_data, args[4]), offsetof(seccomp_data, args[5])};
  const sock_filter kAllow = BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW);
  const sock_filter kDenyExec = BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ERRNO | (EACCES & SECCOMP_RET_DATA));
  std::vector<sock_filter> p;
  p.push_back(BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(seccomp_data, arch)));
  p.push_back(BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, AUDIT_ARCH_X86_64, 1, 0));
  p.push_back(kAllow);
  // One rule per system call: load the number, skip the rule's block unless it matches.
  auto rule = [&](long nr, const std::vector<sock_filter>& block) {
    p.push_back(BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(seccomp_data, nr)));
    p.push_back(BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, static_cast<unsigned>(nr), 0,
                         static_cast<unsigned char>(block.size())));
    p.insert(p.end(), block.begin(), block.end());
  };
  if (r.memfd) rule(SYS_memfd_create, {BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ERRNO | EPERM)});
  if (r.membarrier) rule(SYS_membarrier, {BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ERRNO | ENOSYS)});
  if (r.execmem) {
    rule(SYS_mmap, {
                       BPF_STMT(BPF_LD | BPF_W | BPF_ABS, kArgLow[2]),             // prot
                       BPF_JUMP(BPF_JMP | BPF_JSET | BPF_K, PROT_EXEC, 0, 5),      // not exec: allow
                       BPF_STMT(BPF_LD | BPF_W | BPF_ABS, kArgLow[3]),             // flags
                       BPF_JUMP(BPF_JMP | BPF_JSET | BPF_K, MAP_ANONYMOUS, 2, 0),  // anonymous: deny
                       BPF_STMT(BPF_ALU | BPF_AND | BPF_K, 0x0f),                  // MAP_TYPE
                       BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, MAP_PRIVATE, 0, 1),     // private: deny
                       kDenyExec,
                       kAllow,
                   });
    const std::vector<sock_filter> no_exec = {
        BPF_STMT(BPF_LD | BPF_W | BPF_ABS, kArgLow[2]),         // prot
        BPF_JUMP(BPF_JMP | BPF_JSET | BPF_K, PROT_EXEC, 0, 1),  // exec: deny
        kDenyExec,
        kAllow,
    };
    rule(SYS_mprotect, no_exec);
    rule(SYS_pkey_mprotect, no_exec);
  }
  p.push_back(kAllow);
  sock_fprog prog{static_cast<unsigned short>(p.size()), p.data()};
  if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0) return errno;
  if (prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &prog) != 0) return errno;
  return 0;
}

}  // namespace jitkit::code::test_util
