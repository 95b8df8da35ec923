// The jitkit tour: `make demo` runs it. It walks through every built module in layer order
// and prints what jitkit detected, generated and measured on this machine.
#include <algorithm>
#include <cstdio>
#include <vector>

#include "tour_p.h"

namespace jitkit::tour {
namespace {

struct Section {
  int order;
  const char* title;
  SectionFn fn;
};

std::vector<Section>& sections() {
  static std::vector<Section> all;
  return all;
}

}  // namespace

SectionRegistrar::SectionRegistrar(int order, const char* title, SectionFn fn) {
  sections().push_back({order, title, fn});
}

}  // namespace jitkit::tour

int main() {
  using jitkit::tour::sections;
  std::stable_sort(sections().begin(), sections().end(),
                   [](const auto& a, const auto& b) { return a.order < b.order; });
  int failures = 0;
  for (const auto& s : sections()) {
    std::printf("\n== %s ==\n", s.title);
    std::fflush(stdout);
    if (!s.fn()) {
      std::printf("!! section \"%s\" failed\n", s.title);
      ++failures;
    }
  }
  std::fflush(stdout);
  return failures == 0 ? 0 : 1;
}
