// The rseq module's test-hook state (test_hooks_p.h). Portable: it exists wherever the module is
// built, whatever the OS and ISA parts compiled beside it.
#include "rseq/test_hooks_p.h"

namespace jitkit::rseq::test_hooks {

std::uint32_t inject_spins = 0;

}  // namespace jitkit::rseq::test_hooks
