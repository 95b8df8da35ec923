// examples/host_data.cpp — generated code that writes a host variable and returns a value.
//
// The smallest program where the address of host data matters (docs/background.md tells how
// assemblers that encode it as a 32-bit displacement truncate it):
//
//     mov dword [status], 0xdeadbeef
//     mov eax, 42
//     ret
//
// `status` is an ordinary C++ variable. Its address may be anywhere in the 64-bit address
// space, far from where the generated code ends up. jitkit picks the encoding when the code is
// installed and its final address is known: RIP-relative if the variable is within ±2 GiB,
// an absolute 32-bit address if it fits, otherwise it loads the full address into the scratch
// register we allow here (r11). Without an allowed scratch register an unreachable address would
// be a clear error from install(), never a silently truncated address.
#include <cstdint>
#include <cstdio>

#include "jitkit/base/format.h"
#include "jitkit/code/code_zone.h"
#include "jitkit/install/install.h"
#include "jitkit/x64/assembler.h"

using namespace jitkit::x64;  // registers (eax, r11), dword_ptr, abs, Assembler

static std::uint32_t status = 0;

int main() {
  // 1. A code zone: executable memory that is never writable and executable at once.
  auto zone = jitkit::code::CodeZone::create();
  if (!zone) {
    std::fprintf(stderr, "cannot create a code zone: %s\n", zone.error().message().c_str());
    return 1;
  }

  // 2. Assemble. Instructions are methods named after their mnemonic.
  Assembler a;
  a.allow_scratch(r11);                        // r11 may be clobbered to reach far data
  a.mov(dword_ptr(abs(&status)), 0xdeadbeef);  // a host address, resolved at install
  a.mov(eax, 42);
  a.ret();

  // 3. Install: relocate to the final address, copy in, make executable.
  auto code = jitkit::install::install(a, **zone, {.name = "host_data"});
  if (!code) {
    std::fprintf(stderr, "install failed: %s\n", code.error().message().c_str());
    return 1;
  }

  // 4. Call it like a C function.
  int (*fn)() = code->entry<int()>();
  int result = fn();

  const auto& choice = code->host_operands().at(0);
  std::printf("code at %s, status at %s: the store was encoded as %.*s\n",
              jitkit::hex(code->block().exec).c_str(), jitkit::hex(&status).c_str(),
              static_cast<int>(name(choice.form).size()), name(choice.form).data());
  std::printf("fn() returned %d, status = 0x%x\n", result, status);
  return result == 42 && status == 0xdeadbeef ? 0 : 1;
}
