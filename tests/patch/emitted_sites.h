// tests/patch/emitted_sites.h — code with patch sites emitted by the assembler (x64::Assembler's
// *_site emitters), laid out for its final address with Assembler::encode and copied into a
// zone, so that the patcher is tested on the sites the assembler really produces.
#pragma once

#include <gtest/gtest.h>

#include <algorithm>
#include <vector>

#include "jitkit/code/code_zone.h"
#include "jitkit/install/install.h"
#include "jitkit/patch/patcher.h"
#include "jitkit/x64/assembler.h"

namespace jitkit::patch::testing {

struct EmittedCode {
  code::CodeBlock block;
  std::vector<PatchSite> sites;  // in emission order (PatchSiteId::index)
  std::vector<x64::PatchSiteRecord> records;
  template <typename Fn>
  Fn entry() const { return reinterpret_cast<Fn>(block.exec); }
};

inline EmittedCode emit(code::CodeZone& zone, const x64::Assembler& a) {
  EmittedCode out;
  EXPECT_TRUE(a.ok()) << (a.error() ? a.error()->message() : "");
  auto blk = zone.allocate(a.size_upper_bound(), std::max<std::size_t>(64, a.required_alignment()));
  EXPECT_TRUE(blk.has_value()) << (blk ? "" : blk.error().message());
  if (!blk) return out;
  const auto base = reinterpret_cast<std::uintptr_t>(blk->exec);
  auto enc = a.encode(base);
  EXPECT_TRUE(enc.has_value()) << (enc ? "" : enc.error().message());
  if (!enc) return out;
  EXPECT_TRUE(zone.write(blk->exec, enc->bytes.data(), enc->bytes.size()).has_value());
  EXPECT_TRUE(zone.make_executable(*blk, code::Visibility::kOtherThreads).has_value());
  out.block = *blk;
  out.records = enc->sites;
  for (const x64::PatchSiteRecord& r : enc->sites) {
    install::InstalledSite s;
    s.record = r;
    s.code_start = base;
    out.sites.push_back(site_from(s));
  }
  return out;
}

}  // namespace jitkit::patch::testing
