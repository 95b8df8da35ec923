// Links against an installed jitkit::som and embeds the VM: boots it with the installed core
// library (JITKIT_SOM_CORE_LIB_DIR), sends a message and checks the answer.
#include <jitkit/som/vm.h>

#include <cstdio>

int main() {
  jitkit::som::Options options;
  options.class_path = {SOM_CORE_LIB_DIR};
  auto vm = jitkit::som::Vm::create(options);
  if (!vm) {
    std::fprintf(stderr, "%s\n", vm.error().describe().c_str());
    return 1;
  }
  auto sum = (*vm)->send((*vm)->integer(40), "+", {(*vm)->integer(2)});
  auto n = sum ? (*vm)->to_int64(*sum) : jitkit::som::Result<std::int64_t>(sum.error());
  if (!n || *n != 42) {
    std::fprintf(stderr, "som consumer: 40 + 2 did not answer 42\n");
    return 1;
  }
  std::printf("som consumer: 40 + 2 = %lld\n", static_cast<long long>(*n));
  return 0;
}
