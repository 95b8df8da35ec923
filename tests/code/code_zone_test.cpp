// Basic behaviour of a default code zone: write a function through the zone, run it, free it.
#include <gtest/gtest.h>

#include <cstring>

#include "jitkit/code/code_writer.h"
#include "jitkit/code/code_zone.h"

namespace jitkit::code {
namespace {

// mov eax, 42 ; ret
constexpr std::uint8_t kReturn42[] = {0xB8, 0x2A, 0x00, 0x00, 0x00, 0xC3};

TEST(CodeZone, DefaultZoneIsDualMappedAndRunsWrittenCode) {
  auto zone = CodeZone::create();
  ASSERT_TRUE(zone) << zone.error().message();
  EXPECT_EQ((*zone)->mode(), ZoneMode::kDualMapped);
  EXPECT_NE((*zone)->write_view_delta(), 0);
  auto block = (*zone)->allocate(sizeof kReturn42);
  ASSERT_TRUE(block) << block.error().message();
  ASSERT_TRUE((*zone)->write(block->exec, kReturn42, sizeof kReturn42));
  ASSERT_TRUE((*zone)->make_executable(*block, Visibility::kThisThread));
  EXPECT_EQ(reinterpret_cast<int (*)()>(block->exec)(), 42);
  ASSERT_TRUE((*zone)->free(*block));
  ASSERT_TRUE((*zone)->flush_freed());
  EXPECT_EQ(block->exec[0], 0xCC);
}

}  // namespace
}  // namespace jitkit::code
