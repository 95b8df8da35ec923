// Links against an installed jitkit and uses it: detects the page size through the library.
#include <jitkit/base/platform.h>
#include <jitkit/base/result.h>

#include <cstdio>

int main() {
  const jitkit::PlatformFacts& facts = jitkit::platform_facts();
  jitkit::Status status = jitkit::ok();
  std::printf("consumer: page size %zu, status %s\n", facts.page_size, status ? "ok" : "error");
  return facts.page_size > 0 && status ? 0 : 1;
}
