// tools/tour/tour_p.h — the sections of `make demo`.
//
// Each module adds one file tools/tour/tour_<module>.cpp that registers a section:
//   static void show_code_zone() { ... print real, detected or measured facts ... }
//   JITKIT_TOUR_SECTION(20, "Code zones", show_code_zone);
// Sections run in ascending order. A section that fails prints why and returns false; the
// tour then exits non-zero, so `make demo` never hides a failure.
#pragma once

namespace jitkit::tour {

using SectionFn = bool (*)();

struct SectionRegistrar {
  SectionRegistrar(int order, const char* title, SectionFn fn);
};

}  // namespace jitkit::tour

#define JITKIT_TOUR_CONCAT_INNER_(a, b) a##b
#define JITKIT_TOUR_CONCAT_(a, b) JITKIT_TOUR_CONCAT_INNER_(a, b)
#define JITKIT_TOUR_SECTION(order, title, fn) \
  static const ::jitkit::tour::SectionRegistrar JITKIT_TOUR_CONCAT_(tour_section_, __LINE__)(order, title, fn)
