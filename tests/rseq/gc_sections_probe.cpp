// A small program linked with -ffunction-sections -fdata-sections -Wl,--gc-sections: the
// descriptor sections must survive garbage collection (checked by descriptor_sections_test).
#include <cstdio>

#include "jitkit/rseq/percpu.h"

int main() {
  jitkit::rseq::PerCpuCounter counter;
  for (int i = 0; i < 1000; ++i) counter.add(1);
  jitkit::rseq::PerCpuList list;
  jitkit::rseq::PerCpuList::Node node{};
  list.push(&node);
  bool popped = list.pop() == &node;
  std::printf("%lld %d\n", static_cast<long long>(counter.value()), popped ? 1 : 0);
  return counter.value() == 1000 && popped ? 0 : 1;
}
