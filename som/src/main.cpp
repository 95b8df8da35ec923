// The `som` command: som [-cp path] [-d] [-g] [--jit=...] MainClass|File.som [args...]
#include "jit/jit_p.h"
#include "vm_p.h"

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

namespace {
void usage(FILE* out) {
  std::fprintf(out,
               "usage: som [options] -cp <dir1:dir2...> MainClass|path/File.som [args...]\n"
               "options:\n"
               "  -cp <path>   class path, ':'-separated (must include the core library)\n"
               "  -d           print the bytecode of every loaded method to stderr\n"
               "  -g           print garbage-collection statistics to stderr\n"
               "  -H<n>MB      accepted for compatibility (the heap grows on demand)\n"
               "  --no-opt     no inlining, fast paths or inline caches (for comparisons)\n"
               "  --jit=MODE   off: interpret only; on (default): compile hot methods and loops;\n"
               "               always: compile every method before it first runs\n"
               "  --jit-threshold=N  invocations + loop iterations before a method is compiled (default %u)\n"
               "  --jit-stats  print what the JIT compiled and the inline-cache states to stderr at exit\n"
               "  --jit-listing=Class>>selector  print that method's machine code and its inline\n"
               "               caches (PIC stubs included) to stderr at exit\n"
               "  -h, --help   this help\n",
               som::kDefaultJitThreshold);
}
}  // namespace

int main(int argc, char** argv) {
  static char out_buf[1 << 16];
  std::setvbuf(stdout, out_buf, _IOFBF, sizeof out_buf);
  std::string class_path;
  bool debug = false, gc_stats = false, no_opt = false, jit_stats = false;
  som::JitMode jit_mode = som::JitMode::kOn;
  std::string jit_listing;
  unsigned long jit_threshold = som::kDefaultJitThreshold;
  int i = 1;
  for (; i < argc; i++) {
    std::string a = argv[i];
    if (a == "-cp" || a == "--classpath") {
      if (i + 1 >= argc) {
        std::fprintf(stderr, "som: -cp needs a path argument\n");
        return 1;
      }
      if (!class_path.empty()) class_path += ":";
      class_path += argv[++i];
    } else if (a == "-h" || a == "--help") {
      usage(stdout);
      return 0;
    } else if (a == "-d") {
      debug = true;
    } else if (a == "-g") {
      gc_stats = true;
    } else if (a == "--no-opt") {
      no_opt = true;
    } else if (a == "--jit=off" || a == "--jit=on" || a == "--jit=always") {
      jit_mode = a == "--jit=off" ? som::JitMode::kOff : a == "--jit=on" ? som::JitMode::kOn : som::JitMode::kAlways;
    } else if (a.rfind("--jit-threshold=", 0) == 0) {
      char* end = nullptr;
      const std::string n = a.substr(16);
      jit_threshold = std::strtoul(n.c_str(), &end, 10);
      if (n.empty() || *end != 0 || jit_threshold > 1000000000) {
        std::fprintf(stderr, "som: --jit-threshold needs a number from 0 to 1000000000, got '%s'\n", n.c_str());
        return 1;
      }
    } else if (a.rfind("--jit-listing=", 0) == 0) {
      jit_listing = a.substr(14);
    } else if (a == "--jit-stats") {
      jit_stats = true;
    } else if (a.rfind("-H", 0) == 0) {
      // heap size: accepted and ignored
    } else if (!a.empty() && a[0] == '-') {
      std::fprintf(stderr, "som: unknown option %s\n", a.c_str());
      usage(stderr);
      return 1;
    } else {
      break;
    }
  }
  if (i >= argc) {
    usage(stderr);
    return 1;
  }
  std::string program = argv[i++];
  std::string dir;
  size_t slash = program.rfind('/');
  std::string name = program;
  if (slash != std::string::npos) {
    dir = program.substr(0, slash);
    name = program.substr(slash + 1);
  }
  if (name.size() > 4 && name.compare(name.size() - 4, 4, ".som") == 0) name.resize(name.size() - 4);

  som::VM vm;
  vm.debug_level_ = debug ? 1 : 0;
  vm.gc_verbose_ = gc_stats;
  vm.optimize_ = !no_opt;
  vm.set_class_path(class_path);
  // The program's directory joins the class path (after -cp, like SOM++); "." if none.
  vm.add_class_path_entry(dir.empty() ? "." : dir);
  if (!vm.bootstrap()) return 1;
  // --no-opt is the interpreter's reference configuration: it runs without the JIT.
  if (jit_mode != som::JitMode::kOff && !no_opt) {
    vm.jit_ = std::make_unique<som::Jit>(vm);
    vm.jit_threshold_ = jit_mode == som::JitMode::kAlways ? 0 : static_cast<uint32_t>(jit_threshold);
  }
  std::vector<std::string> args;
  args.push_back(name);
  for (; i < argc; i++) args.push_back(argv[i]);
  int status = vm.run_main(args);
  if (jit_stats && vm.jit_) vm.jit_->print_stats(stderr);
  if (!jit_listing.empty() && vm.jit_) {
    std::string text = vm.jit_->listing(jit_listing);
    std::fprintf(stderr, "%s", text.empty() ? ("[JIT] " + jit_listing + " was not compiled\n").c_str() : text.c_str());
  }
  if (gc_stats)
    std::fprintf(stderr, "[GC] %llu collections, %.2f ms, %llu bytes allocated\n",
                 static_cast<unsigned long long>(vm.heap_.collections_), vm.heap_.gc_millis_,
                 static_cast<unsigned long long>(vm.heap_.total_allocated()));
  vm.exit_vm(status);
}
