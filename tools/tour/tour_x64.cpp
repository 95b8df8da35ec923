// Tour section: the assembler and install, on a program that stores into host data placed far
// away (above 4 GiB and more than 2 GiB from the code), as a GC64 VM would have it: the address
// must be reached without ever being truncated to 32 bits.
#include <sys/mman.h>

#include <cstdint>
#include <cstdio>

#include "jitkit/base/format.h"
#include "jitkit/code/code_zone.h"
#include "jitkit/install/install.h"
#include "jitkit/x64/assembler.h"
#include "tour_p.h"

namespace {
using namespace jitkit::x64;

std::uint64_t dist(std::uint64_t a, std::uint64_t b) { return a > b ? a - b : b - a; }

// A page at a fixed high address at least 64 GiB away from the zone; nullptr if none is free.
void* map_far_page(const jitkit::code::CodeZone& zone) {
  for (std::uint64_t a : {0x100000000000ull, 0x200000000000ull, 0x3f0000000000ull, 0x600000000000ull}) {
    if (dist(a, zone.begin()) < (std::uint64_t{64} << 30)) continue;
    void* p = mmap(reinterpret_cast<void*>(a), 4096, PROT_READ | PROT_WRITE,
                   MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED_NOREPLACE, -1, 0);
    if (p == reinterpret_cast<void*>(a)) return p;
    if (p != MAP_FAILED) munmap(p, 4096);
  }
  return nullptr;
}

Assembler host_data_program(std::uint32_t* status, bool scratch) {
  Assembler a;
  if (scratch) a.allow_scratch(r11);
  a.mov(dword_ptr(abs(status)), 0xdeadbeef);
  a.mov(eax, 42);
  a.ret();
  return a;
}

bool show_assembler() {
  auto zone = jitkit::code::CodeZone::create();
  if (!zone) {
    std::printf("cannot create a code zone: %s\n", zone.error().message().c_str());
    return false;
  }
  void* page = map_far_page(**zone);
  if (!page) {
    std::printf("no free high address for the far data page\n");
    return false;
  }
  auto* status = static_cast<std::uint32_t*>(page);
  std::printf("program           mov dword [status], 0xdeadbeef ; mov eax, 42 ; ret\n");
  std::printf(
      "host data         %s (code zone at %s: %.1f GiB away)\n", jitkit::hex(page).c_str(),
      jitkit::hex((*zone)->begin()).c_str(),
      static_cast<double>(dist(reinterpret_cast<std::uintptr_t>(page), (*zone)->begin())) / double(1u << 30));

  bool ok = true;
  {  // Scratch register allowed: the 64-bit address is materialized in r11.
    Assembler a = host_data_program(status, true);
    auto code = jitkit::install::install(a, **zone, {.name = "host_data"});
    if (!code) {
      std::printf("install failed: %s\n", code.error().message().c_str());
      return false;
    }
    int r = code->entry<int()>()();
    const auto& c = code->host_operands().at(0);
    std::printf("with scratch r11  form: %.*s (%u bytes); fn() = %d, status = 0x%x\n",
                static_cast<int>(name(c.form).size()), name(c.form).data(), c.size, r, *status);
    ok = ok && r == 42 && *status == 0xdeadbeef;
    (void)(*zone)->free(code->block());
  }
  {  // No scratch register: a clear error at install, not a crash or a truncated address.
    *status = 0;
    Assembler a = host_data_program(status, false);
    auto code = jitkit::install::install(a, **zone, {.name = "host_data"});
    std::printf("without scratch   %s\n", code ? "installed (unexpected)" : code.error().message().c_str());
    ok = ok && !code && *status == 0;
  }
  {  // The same data seen from a zone placed next to it: RIP-relative.
    jitkit::code::ZoneOptions o;
    o.reserve_bytes = 1 << 20;
    o.near = reinterpret_cast<std::uintptr_t>(page);
    o.near_span = 4096;
    auto near_zone = jitkit::code::CodeZone::create(o);
    if (near_zone) {
      Assembler a = host_data_program(status, false);
      auto code = jitkit::install::install(a, **near_zone);
      if (code) {
        int r = code->entry<int()>()();
        const auto& c = code->host_operands().at(0);
        std::printf("zone near data    form: %.*s (%u bytes); fn() = %d, status = 0x%x\n",
                    static_cast<int>(name(c.form).size()), name(c.form).data(), c.size, r, *status);
        ok = ok && r == 42;
      } else {
        std::printf("zone near data    install failed: %s\n", code.error().message().c_str());
        ok = false;
      }
    } else {
      std::printf("zone near data    not placeable: %s\n", near_zone.error().message().c_str());
    }
  }
  munmap(page, 4096);
  return ok;
}

}  // namespace

JITKIT_TOUR_SECTION(30, "Assembler", show_assembler);
