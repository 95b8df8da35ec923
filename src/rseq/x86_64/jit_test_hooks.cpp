// The tests' entry points to the delay-injected JIT-emitted sections (test_hooks_p.h): the
// production emitters, asked for the delay loop. Nothing in the library calls these.
#include "rseq/test_hooks_p.h"
#include "rseq/x86_64/jit_common_p.h"

namespace jitkit::rseq::test_hooks {

Result<std::unique_ptr<JitCounterAdd>> create_counter_add_with_injected_delay(code::CodeZone& zone,
                                                                              const JitOptions& options) {
  return detail::JitFactory::counter_add(zone, options, &inject_spins);
}

Result<std::unique_ptr<JitListOps>> create_list_ops_with_injected_delay(code::CodeZone& zone,
                                                                        const JitOptions& options) {
  return detail::JitFactory::list_ops(zone, options, &inject_spins);
}

}  // namespace jitkit::rseq::test_hooks
