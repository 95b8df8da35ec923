// tests/code/maps_util_p.h — reading /proc/self/maps in the code-zone tests.
#pragma once

#include <cstdint>
#include <cstdio>
#include <fstream>
#include <string>
#include <vector>

namespace jitkit::code::test_util {

struct Mapping {
  std::uintptr_t begin = 0, end = 0;
  bool r = false, w = false, x = false, shared = false;
  std::string device;            // "major:minor" of the mapped file, "00:00" for anonymous memory
  unsigned long long inode = 0;  // of the mapped file, 0 for anonymous memory
  std::string path;
  std::string line;
};

inline std::vector<Mapping> read_maps() {
  std::vector<Mapping> out;
  std::ifstream maps("/proc/self/maps");
  std::string line;
  while (std::getline(maps, line)) {
    Mapping m;
    unsigned long long b = 0, e = 0;
    char perms[8] = {};
    char device[16] = {};
    unsigned long long inode = 0;
    int path_at = 0;
    if (std::sscanf(line.c_str(), "%llx-%llx %7s %*s %15s %llu %n", &b, &e, perms, device, &inode, &path_at) <
        5) {
      continue;
    }
    m.device = device;
    m.inode = inode;
    m.begin = b;
    m.end = e;
    m.r = perms[0] == 'r';
    m.w = perms[1] == 'w';
    m.x = perms[2] == 'x';
    m.shared = perms[3] == 's';
    if (path_at > 0 && static_cast<std::size_t>(path_at) <= line.size()) m.path = line.substr(path_at);
    m.line = line;
    out.push_back(m);
  }
  return out;
}

// Every mapping that is writable and executable at once, as text ("" if none).
inline std::string writable_and_executable_mappings() {
  std::string out;
  for (const Mapping& m : read_maps()) {
    if (m.w && m.x) out += m.line + "\n";
  }
  return out;
}

// The protection of the mapping holding addr ("" if unmapped), as "rwx"-style text.
inline std::string protection_at(std::uintptr_t addr) {
  for (const Mapping& m : read_maps()) {
    if (addr >= m.begin && addr < m.end) {
      return std::string(m.r ? "r" : "-") + (m.w ? "w" : "-") + (m.x ? "x" : "-");
    }
  }
  return "";
}

inline const Mapping* find_mapping(const std::vector<Mapping>& maps, std::uintptr_t addr) {
  for (const Mapping& m : maps) {
    if (addr >= m.begin && addr < m.end) return &m;
  }
  return nullptr;
}

// True if both mappings show the same file (device and inode), e.g. the two views of one zone.
inline bool same_object(const Mapping& a, const Mapping& b) {
  return a.inode != 0 && a.inode == b.inode && a.device == b.device;
}

}  // namespace jitkit::code::test_util
