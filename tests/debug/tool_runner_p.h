// tests/debug/tool_runner_p.h — runs gdb / perf / readelf from tests and captures their output.
// A missing tool is a test FAILURE that names the Debian package to install, never a skip.
#pragma once

#include <gtest/gtest.h>

#include <array>
#include <cstdio>
#include <regex>
#include <string>

namespace jitkit::debug::test_util {

struct CommandResult {
  int exit_code = -1;
  std::string output;  // stdout and stderr, interleaved
};

inline CommandResult run_command(const std::string& command) {
  CommandResult r;
  std::FILE* p = ::popen((command + " 2>&1").c_str(), "r");
  if (p == nullptr) return r;
  std::array<char, 4096> buf;
  std::size_t n;
  while ((n = std::fread(buf.data(), 1, buf.size(), p)) > 0) r.output.append(buf.data(), n);
  int status = ::pclose(p);
  r.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  return r;
}

// Fails the current test (and returns false) when `tool` is not on PATH.
inline bool require_tool(const std::string& tool, const std::string& package) {
  CommandResult r = run_command("command -v " + tool);
  if (r.exit_code != 0) {
    ADD_FAILURE() << tool << " is not installed, so this test cannot check what it must. "
                  << "Install it: apt-get install " << package
                  << " (it is listed in tools/debian-packages.txt).";
    return false;
  }
  return true;
}

// The lines of the first gdb `bt` in `out` (from "#0" to the last consecutive "#n" line).
inline std::string first_backtrace(const std::string& out) {
  std::size_t start = out.find("\n#0 ");
  if (start == std::string::npos) return {};
  std::size_t end = start + 1;
  while (end < out.size() && out[end] == '#') {
    std::size_t nl = out.find('\n', end);
    if (nl == std::string::npos) return out.substr(start + 1);
    end = nl + 1;
  }
  return out.substr(start + 1, end - start - 1);
}

// The first capture group of `pattern` in `text`, or "" when absent.
inline std::string find_group(const std::string& text, const std::string& pattern) {
  std::smatch m;
  if (std::regex_search(text, m, std::regex(pattern)) && m.size() > 1) return m[1].str();
  return {};
}

}  // namespace jitkit::debug::test_util
