// How long a stress scenario runs, for every stress test of the project.
//
// Default: kDefaultStressSeconds per scenario, which keeps each stress binary well under CI's
// budget on a 2-core machine. JITKIT_STRESS_SECONDS=<seconds> (any positive number) runs every
// scenario that long instead, for a soak run:
//
//   JITKIT_STRESS_SECONDS=60 ctest --test-dir build -L stress
#pragma once

#include <cstdlib>

namespace jitkit::test_util {

inline constexpr double kDefaultStressSeconds = 2.0;

// Seconds one stress scenario runs: JITKIT_STRESS_SECONDS if it is a positive number, else
// kDefaultStressSeconds.
inline double stress_seconds() {
  if (const char* env = std::getenv("JITKIT_STRESS_SECONDS")) {
    const double v = std::atof(env);
    if (v > 0) return v;
  }
  return kDefaultStressSeconds;
}

}  // namespace jitkit::test_util
