// The `som` command: som [-cp path] [-d] [-g] [--jit=...] [--native lib.so] MainClass|File.som
// [args...]. Built on the embedding API (jitkit/som/vm.h), like any program that embeds the VM.
#include <pthread.h>

#include "jit/jit_p.h"
#include "jitkit/som/vm.h"
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
               "  --jit-background=on|off  on: compile hot methods on a thread of the VM's own\n"
               "               while the interpreter goes on; off (default): the interpreter waits\n"
               "  --jit-stats  print what the JIT compiled and the inline-cache states to stderr at exit\n"
               "  --jit-listing=Class>>selector  print that method's machine code and its inline\n"
               "               caches (PIC stubs included) to stderr at exit\n"
               "  --native <lib.so>  load a library of native methods (jitkit/som/native.h)\n"
               "  -h, --help   this help\n",
               som::kDefaultJitThreshold);
}
struct Command {
  jitkit::som::Options options;
  std::vector<std::string> args;
  bool jit_stats = false;
  std::string jit_listing;
  int status = 0;
};

// Runs the program; answers the process exit status.
int run(Command& c) {
  auto created = jitkit::som::Vm::create(c.options);
  if (!created) {
    std::fflush(stdout);
    std::fprintf(stderr, "%s\n", created.error().describe().c_str());
    return 1;
  }
  jitkit::som::Vm& vm = **created;
  auto ran = vm.run_main(c.args);
  int status = 0;
  std::fflush(stdout);
  if (!ran) {
    const jitkit::som::Error& e = ran.error();
    status = e.exit_status();
    // `system exit:` has said what it had to say; every other error is reported here.
    if (e.kind() != jitkit::som::ErrorKind::kExit) std::fprintf(stderr, "%s\n", e.describe().c_str());
  }
  som::VM& impl = vm.internal();
  if (c.jit_stats && impl.jit_) impl.jit_->print_stats(stderr);
  if (!c.jit_listing.empty() && impl.jit_) {
    std::string text = impl.jit_->listing(c.jit_listing);
    std::fprintf(stderr, "%s",
                 text.empty() ? ("[JIT] " + c.jit_listing + " was not compiled\n").c_str() : text.c_str());
  }
  if (c.options.gc_verbose)
    std::fprintf(stderr, "[GC] %llu collections, %.2f ms, %llu bytes allocated\n",
                 static_cast<unsigned long long>(impl.heap_.collections_), impl.heap_.gc_millis_,
                 static_cast<unsigned long long>(impl.heap_.total_allocated()));
  std::fflush(stdout);
  std::fflush(stderr);
  std::_Exit(status);  // the VM's memory goes with the process
}

// SOM runs on a thread of its own with a large native stack, so that deep recursion through
// native methods (SOM -> native -> SOM ...) reaches the frame stack's limit, a clean `stack
// overflow` error, long before the native stack's. The pages are committed only when used.
constexpr size_t kSomThreadStackBytes = size_t{1} << 30;

int run_on_large_stack(Command& c) {
  pthread_attr_t attr;
  pthread_t thread;
  if (pthread_attr_init(&attr) == 0 && pthread_attr_setstacksize(&attr, kSomThreadStackBytes) == 0 &&
      pthread_create(
          &thread, &attr,
          [](void* p) -> void* {
            auto* cmd = static_cast<Command*>(p);
            cmd->status = run(*cmd);
            return nullptr;
          },
          &c) == 0) {
    pthread_attr_destroy(&attr);
    pthread_join(thread, nullptr);
    return c.status;
  }
  return run(c);  // no such thread: the main thread's stack
}

}  // namespace

int main(int argc, char** argv) {
  static char out_buf[1 << 16];
  std::setvbuf(stdout, out_buf, _IOFBF, sizeof out_buf);
  std::string class_path;
  bool debug = false, gc_stats = false, no_opt = false, jit_stats = false;
  jitkit::som::JitMode jit_mode = jitkit::som::JitMode::kOn;
  std::string jit_listing;
  unsigned long jit_threshold = som::kDefaultJitThreshold;
  bool jit_background = false;
  std::vector<std::string> natives;
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
      jit_mode = a == "--jit=off"  ? jitkit::som::JitMode::kOff
                 : a == "--jit=on" ? jitkit::som::JitMode::kOn
                                   : jitkit::som::JitMode::kAlways;
    } else if (a.rfind("--jit-threshold=", 0) == 0) {
      char* end = nullptr;
      const std::string n = a.substr(16);
      jit_threshold = std::strtoul(n.c_str(), &end, 10);
      if (n.empty() || *end != 0 || jit_threshold > 1000000000) {
        std::fprintf(stderr, "som: --jit-threshold needs a number from 0 to 1000000000, got '%s'\n", n.c_str());
        return 1;
      }
    } else if (a == "--jit-background=on" || a == "--jit-background=off") {
      jit_background = a == "--jit-background=on";
    } else if (a.rfind("--jit-listing=", 0) == 0) {
      jit_listing = a.substr(14);
    } else if (a == "--native") {
      if (i + 1 >= argc) {
        std::fprintf(stderr, "som: --native needs a library path\n");
        return 1;
      }
      natives.push_back(argv[++i]);
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

  Command c;
  jitkit::som::Options& o = c.options;
  o.debug_level = debug ? 1 : 0;
  o.gc_verbose = gc_stats;
  o.optimize = !no_opt;  // --no-opt is the interpreter's reference configuration, without the JIT
  o.class_path = som::split_class_path(class_path);
  // The program's directory joins the class path (after -cp, like SOM++); "." if none.
  o.class_path.push_back(dir.empty() ? "." : dir);
  o.jit = jit_mode;
  o.jit_threshold = static_cast<uint32_t>(jit_threshold);
  o.jit_background = jit_background;
  o.natives = natives;
  c.jit_stats = jit_stats;
  c.jit_listing = jit_listing;
  c.args.push_back(name);
  for (; i < argc; i++) c.args.push_back(argv[i]);
  return run_on_large_stack(c);
}
