// tests/patch/emitted_sites_p.h — code with patch sites emitted by the assembler (x64::Assembler's
// *_site emitters) and installed with install::install(), so that the patcher is tested on the
// sites the assembler and the installer really produce.
#pragma once

#include <gtest/gtest.h>

#include <vector>

#include "jitkit/code/code_zone.h"
#include "jitkit/install/install.h"
#include "jitkit/patch/patcher.h"
#include "jitkit/x64/assembler.h"

namespace jitkit::patch::test_util {

struct EmittedCode {
  install::InstalledCode installed;
  code::CodeBlock block;
  std::vector<install::PatchSite> sites;  // in emission order (PatchSiteId::index)
  std::vector<x64::PatchSiteRecord> records;
  template <typename Fn>
  Fn entry() const {
    return reinterpret_cast<Fn>(block.exec);
  }
  template <typename Fn>
  Fn at(x64::Label label) const {
    return reinterpret_cast<Fn>(installed.label_address(label));
  }
};

// Installs the assembler's code (install::install, visible to other threads) and takes its sites
// as install() returns them. The records are the assembler's own for the installed address
// (Assembler::encode is deterministic for a given base), for facts a PatchSite does not carry.
inline EmittedCode emit(code::CodeZone& zone, const x64::Assembler& a) {
  EmittedCode out;
  install::InstallOptions options;
  options.name = "patch-test";
  options.visibility = code::Visibility::kOtherThreads;
  auto code = install::install(a, zone, options);
  EXPECT_TRUE(code.has_value()) << (code ? "" : code.error().message());
  if (!code) return out;
  out.installed = std::move(code).value();
  out.block = out.installed.block();
  out.sites = out.installed.sites();
  auto encoded = a.encode(out.installed.start());
  EXPECT_TRUE(encoded.has_value()) << (encoded ? "" : encoded.error().message());
  if (encoded) out.records = encoded->sites;
  return out;
}

}  // namespace jitkit::patch::test_util
