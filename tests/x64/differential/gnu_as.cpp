// GNU as driver for the differential encoder test (see gnu_as_p.h).
#include "x64/differential/gnu_as_p.h"

#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <sstream>

namespace jitkit::x64::test_util {
namespace {

std::string read_file(const std::string& path) {
  std::string out;
  if (FILE* f = std::fopen(path.c_str(), "rb")) {
    char buf[65536];
    for (std::size_t n; (n = std::fread(buf, 1, sizeof buf, f)) > 0;) out.append(buf, n);
    std::fclose(f);
  }
  return out;
}

// Runs `command` through /bin/sh; returns the exit status (-1 if it could not run).
int run(const std::string& command) {
  const int status = std::system(command.c_str());
  if (status == -1 || !WIFEXITED(status)) return -1;
  return WEXITSTATUS(status);
}

// A private scratch directory, removed when the object dies.
class ScratchDir {
 public:
  ScratchDir() {
    const char* tmp = std::getenv("TMPDIR");
    std::string pattern = std::string(tmp != nullptr && *tmp ? tmp : "/tmp") + "/jitkit-gas-XXXXXX";
    std::vector<char> buf(pattern.begin(), pattern.end());
    buf.push_back('\0');
    if (mkdtemp(buf.data()) != nullptr) path_ = buf.data();
  }
  ~ScratchDir() {
    if (!path_.empty()) (void)run("rm -rf '" + path_ + "'");
  }
  ScratchDir(const ScratchDir&) = delete;
  ScratchDir& operator=(const ScratchDir&) = delete;
  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

}  // namespace

bool gnu_as_available() {
  static const bool available =
      run("as --version >/dev/null 2>&1") == 0 && run("objcopy --version >/dev/null 2>&1") == 0;
  return available;
}

Result<std::vector<std::uint8_t>> assemble_with_gnu_as(const std::string& body, std::uint64_t link_base,
                                                       const std::vector<AbsoluteSymbol>& symbols) {
  ScratchDir dir;
  if (dir.path().empty()) {
    return Error::from_errno("gnu as: mkdtemp for the scratch directory", errno);
  }
  const std::string source = dir.path() + "/in.s";
  const std::string object = dir.path() + "/in.o";
  const std::string binary = dir.path() + "/text.bin";
  const std::string diagnostics = dir.path() + "/as.err";
  {
    std::ofstream out(source, std::ios::binary);
    // `.intel_syntax` shares line 1 with the first instruction's line via ';' so that GNU as'
    // line numbers equal the line numbers within `body`.
    out << ".intel_syntax noprefix; " << body;
    if (!out) return Error(ErrorCode::kSystem, "gnu as: cannot write " + source);
  }
  if (run("as --64 -o '" + object + "' '" + source + "' 2>'" + diagnostics + "'") != 0) {
    std::string message = read_file(diagnostics);
    if (message.size() > 4000) message.resize(4000);
    return Error(ErrorCode::kInvalidArgument, "gnu as rejected the source:\n" + message);
  }
  if (link_base == 0) {
    if (run("objcopy -O binary -j .text '" + object + "' '" + binary + "' 2>'" + diagnostics + "'") != 0) {
      return Error(ErrorCode::kSystem, "objcopy failed:\n" + read_file(diagnostics));
    }
  } else {
    // Symbols go through a linker script: `--defsym` rejects some names (e.g. FX).
    const std::string script = dir.path() + "/symbols.ld";
    {
      std::ofstream out(script);
      for (const AbsoluteSymbol& sym : symbols) {
        char value[32];
        std::snprintf(value, sizeof value, "0x%llx", static_cast<unsigned long long>(sym.value));
        out << sym.name << " = " << value << ";\n";
      }
    }
    char base[32];
    std::snprintf(base, sizeof base, "0x%llx", static_cast<unsigned long long>(link_base));
    if (run(std::string("ld -Ttext=") + base + " -e 0 --oformat=binary -o '" + binary + "' '" + object +
            "' '" + script + "' 2>'" + diagnostics + "'") != 0) {
      return Error(ErrorCode::kInvalidArgument, "ld failed:\n" + read_file(diagnostics));
    }
  }
  const std::string bytes = read_file(binary);
  return std::vector<std::uint8_t>(bytes.begin(), bytes.end());
}

}  // namespace jitkit::x64::test_util
