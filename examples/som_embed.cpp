// examples/som_embed.cpp — a C++ program that embeds the SOM virtual machine.
//
// It boots a VM whose class path is the core library and examples/som_embed/ (where
// Toolbox.som lives; CMake passes both directories as SOM_CORE_LIB_DIR and SOM_EMBED_CLASS_DIR),
// sends Toolbox messages with arguments and reads the answers: a small integer, a big integer
// as decimal text, a string and an array. It keeps a value in a Handle across a send that
// allocates enough for the collector to run (and move the value), and it shows that a SOM
// error — a message not understood, a division by zero — comes back as an Error with its kind,
// message and SOM stack trace, after which the program simply goes on. It checks every result
// and exits with status 1 if one is wrong, so it runs as a test (ctest example.som_embed).
// The whole model is in docs/som-embedding.md.
#include <cstdint>
#include <cstdio>
#include <string>
#include <vector>

#include "jitkit/som/vm.h"

namespace js = jitkit::som;

namespace {

int g_failures = 0;

void check(bool ok, const char* what) {
  if (ok) return;
  std::fprintf(stderr, "som_embed: FAILED: %s\n", what);
  g_failures++;
}

// Reports a call that failed; answers whether it succeeded.
template <typename T>
bool succeeded(const js::Result<T>& r, const char* what) {
  if (r) return true;
  std::fprintf(stderr, "som_embed: FAILED: %s:\n%s\n", what, r.error().describe().c_str());
  g_failures++;
  return false;
}

}  // namespace

int main(int argc, char** argv) {
  js::Options options;
  options.class_path = {SOM_CORE_LIB_DIR, SOM_EMBED_CLASS_DIR};
  // The JIT compiles hot methods by default (JitMode::kOn); ctest also runs this program with
  // `off` (the interpreter alone) and `always` (every method compiled before it first runs).
  const std::string jit = argc > 1 ? argv[1] : "on";
  options.jit = jit == "off" ? js::JitMode::kOff : jit == "always" ? js::JitMode::kAlways : js::JitMode::kOn;
  auto created = js::Vm::create(options);
  if (!created) {
    std::fprintf(stderr, "som_embed: cannot start the VM:\n%s\n", created.error().describe().c_str());
    return 1;
  }
  js::Vm& vm = **created;

  // --- a class, an instance, sends with arguments --------------------------------------
  auto toolbox_class = vm.global("Toolbox");  // loads examples/som_embed/Toolbox.som
  if (!succeeded(toolbox_class, "looking up Toolbox")) return 1;
  auto made = vm.send(*toolbox_class, "named:", {vm.string("som_embed")});
  if (!succeeded(made, "Toolbox named:")) return 1;
  // A Value is valid only until the next call that runs SOM code (the collector may move the
  // object then). The toolbox is used for the whole program, so it lives in a Handle, which
  // the collector keeps current; box.get() is its value at any moment.
  js::Handle box = vm.hold(*made);

  auto sum = vm.send(box.get(), "add:to:", {vm.integer(40), vm.integer(2)});
  if (succeeded(sum, "add:to:")) {
    auto n = vm.to_int64(*sum);
    check(n && *n == 42, "40 + 2 answers 42");
    std::printf("add: 40 to: 2        -> %lld\n", n ? static_cast<long long>(*n) : -1LL);
  }

  // 30! does not fit in 64 bits: to_int64 refuses it, to_decimal gives every digit.
  auto big = vm.send(box.get(), "factorial:", {vm.integer(30)});
  if (succeeded(big, "factorial:")) {
    check(!vm.to_int64(*big), "30! does not fit in an int64_t");
    auto digits = vm.to_decimal(*big);
    check(digits && *digits == "265252859812191058636308480000000", "30! in decimal");
    std::printf("factorial: 30        -> %s\n", digits ? digits->c_str() : "?");
  }

  auto greeting = vm.send(box.get(), "greet:", {vm.string("world")});
  if (succeeded(greeting, "greet:")) {
    auto text = vm.to_string(*greeting);
    check(text && *text == "Hello, world, from som_embed!", "the greeting's text");
    std::printf("greet: 'world'       -> %s\n", text ? text->c_str() : "?");
  }

  auto primes = vm.send(box.get(), "primesUpTo:", {vm.integer(30)});
  if (succeeded(primes, "primesUpTo:")) {
    std::vector<std::int64_t> got;
    auto length = vm.array_length(*primes);
    for (std::uint32_t i = 0; length && i < *length; i++) {  // array_at is 0-based
      auto element = vm.array_at(*primes, i);
      auto n = element ? vm.to_int64(*element) : js::Result<std::int64_t>(element.error());
      got.push_back(n ? *n : -1);
    }
    check(got == std::vector<std::int64_t>{2, 3, 5, 7, 11, 13, 17, 19, 23, 29}, "the primes up to 30");
    std::printf("primesUpTo: 30       ->");
    for (std::int64_t p : got) std::printf(" %lld", static_cast<long long>(p));
    std::printf("\n");
  }

  // An Array made in C++ as an argument. Making values never collects, so `numbers` stays
  // valid while it is filled.
  js::Value numbers = vm.new_array(3);
  for (std::uint32_t i = 0; i < 3; i++) (void)vm.array_put(numbers, i, vm.integer(3 * (i + 1)));
  auto average = vm.send(box.get(), "average:", {numbers});
  if (succeeded(average, "average:")) {
    auto n = vm.to_int64(*average);
    check(n && *n == 6, "the average of 3 6 9 is 6");
    std::printf("average: #(3 6 9)    -> %lld\n", n ? static_cast<long long>(*n) : -1LL);
  }

  // --- a Handle across a collection ----------------------------------------------------
  // churn: allocates some 160 MiB of garbage, far past the collector's 32 MiB budget. The
  // collector copies every live object, so the greeting moves: the Handle follows it, while
  // the raw Value read before the send is stale afterwards (compared here, never used).
  auto kept_text = vm.send(box.get(), "greet:", {vm.string("the collector")});
  if (succeeded(kept_text, "greet:")) {
    js::Handle kept = vm.hold(*kept_text);
    const js::Value stale = *kept_text;
    auto churned = vm.send(box.get(), "churn:", {vm.integer(20000)});
    if (succeeded(churned, "churn:")) {
      check(kept.get() != stale, "a collection ran and moved the held string");
      auto text = vm.to_string(kept.get());
      check(text && *text == "Hello, the collector, from som_embed!",
            "the held string survives the collection");
      std::printf("after churn: 20000   -> %s (moved: %s)\n", text ? text->c_str() : "?",
                  kept.get() != stale ? "yes" : "no");
    }
  }  // `kept` releases its root here

  // --- errors come back as Results -----------------------------------------------------
  // A message Toolbox does not understand. The core library's doesNotUnderstand: reports it
  // through Object>>error:, which prints "ERROR: ..." on stdout and runs `system exit: 1`. In an
  // embedded VM that ends this send with ErrorKind::kExit; the process goes on.
  std::fflush(stdout);
  auto unknown = vm.send(box.get(), "fly");
  check(!unknown && unknown.error().kind() == js::ErrorKind::kExit && unknown.error().exit_status() == 1,
        "an unknown message ends the send with kExit, status 1");
  if (!unknown) {
    const js::Error& e = unknown.error();
    check(e.message().find("Method fly not found in class Toolbox") != std::string::npos,
          "the kExit message names the missing method");
    check(e.stack_trace().find("Object>>doesNotUnderstand:arguments:") != std::string::npos,
          "the stack trace shows the library's doesNotUnderstand:");
    std::printf("send #fly            -> %s\n", e.describe().c_str());
  }

  // A runtime error in SOM code: average: of an empty Array divides by zero. The stack trace
  // names the SOM method and line where it happened.
  auto divided = vm.send(box.get(), "average:", {vm.new_array(0)});
  check(!divided && divided.error().kind() == js::ErrorKind::kRuntime,
        "division by zero is a kRuntime error");
  if (!divided) {
    const js::Error& e = divided.error();
    check(e.message() == "division by zero", "the runtime error's message");
    check(e.stack_trace().find("Toolbox>>average: (") != std::string::npos,
          "the stack trace names Toolbox>>average:");
    std::printf("average: #()         -> %s\n", e.describe().c_str());
  }

  // The VM is as good as before the errors.
  auto again = vm.send(box.get(), "add:to:", {vm.integer(1), vm.integer(2)});
  if (succeeded(again, "add:to: after the errors")) {
    auto n = vm.to_int64(*again);
    check(n && *n == 3, "the VM works after the errors");
    std::printf("add: 1 to: 2         -> %lld (after the errors)\n", n ? static_cast<long long>(*n) : -1LL);
  }

  if (g_failures != 0) {
    std::fprintf(stderr, "som_embed: %d check(s) failed\n", g_failures);
    return 1;
  }
  std::printf("som_embed: all checks passed\n");
  return 0;
}
