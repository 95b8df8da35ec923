// Tests of jitkit::x64::disassemble and decode_one (include/jitkit/x64/disassemble.h): the text
// of known encodings in both syntaxes, symbol names for branch targets, RIP-relative operands
// and labels, the operand data decode_one exposes, and that garbage never crashes or stalls.
#include "jitkit/x64/disassemble.h"

#include <gtest/gtest.h>

#include <cstdint>
#include <random>
#include <sstream>
#include <string>
#include <vector>

namespace jitkit::x64 {
namespace {

using Bytes = std::vector<std::uint8_t>;

std::vector<std::string> lines_of(const std::string& text) {
  std::vector<std::string> lines;
  std::istringstream in(text);
  for (std::string line; std::getline(in, line);) lines.push_back(line);
  return lines;
}

TEST(Disassemble, PrintsAddressBytesAndIntelTextOnOneLine) {
  const Bytes code = {0x48, 0x89, 0xc8};  // mov rax, rcx
  const std::string text = disassemble(code.data(), code.size(), 0x1000);
  const auto lines = lines_of(text);
  ASSERT_EQ(lines.size(), 1u) << text;
  EXPECT_EQ(lines[0].rfind("0x0000000000001000  48 89 c8 ", 0), 0u) << lines[0];
  EXPECT_NE(lines[0].find("mov rax, rcx"), std::string::npos) << lines[0];
}

TEST(Disassemble, AttSyntaxPutsSourceFirstWithPercentRegisters) {
  const Bytes code = {0x48, 0x89, 0xc8};  // mov rax, rcx
  DisassembleOptions options;
  options.syntax = Syntax::kAtt;
  const std::string text = disassemble(code.data(), code.size(), 0x1000, options);
  EXPECT_NE(text.find("%rcx, %rax"), std::string::npos) << text;
}

TEST(Disassemble, OneLinePerInstructionAndAddressesAdvanceByLength) {
  // push rbp; mov rbp, rsp; mov eax, 42; pop rbp; ret
  const Bytes code = {0x55, 0x48, 0x89, 0xe5, 0xb8, 0x2a, 0x00, 0x00, 0x00, 0x5d, 0xc3};
  const auto lines = lines_of(disassemble(code.data(), code.size(), 0x400000));
  ASSERT_EQ(lines.size(), 5u);
  EXPECT_EQ(lines[0].rfind("0x0000000000400000", 0), 0u);
  EXPECT_EQ(lines[1].rfind("0x0000000000400001", 0), 0u);
  EXPECT_EQ(lines[2].rfind("0x0000000000400004", 0), 0u);
  EXPECT_NE(lines[2].find("mov eax, 0x2A"), std::string::npos) << lines[2];
  EXPECT_EQ(lines[3].rfind("0x0000000000400009", 0), 0u);
  EXPECT_NE(lines[4].find("ret"), std::string::npos);
}

TEST(Disassemble, AddressAndBytesColumnsCanBeTurnedOff) {
  const Bytes code = {0xc3};
  DisassembleOptions options;
  options.show_address = false;
  options.show_bytes = false;
  EXPECT_EQ(disassemble(code.data(), code.size(), 0, options), "ret\n");
}

TEST(Disassemble, SymbolizerNamesCallTargetsAndLabels) {
  // 0x1000: call 0x1000 (rel32 = -5); 0x1005: jmp 0x1000 (rel8 = -7)
  const Bytes code = {0xe8, 0xfb, 0xff, 0xff, 0xff, 0xeb, 0xf9};
  DisassembleOptions options;
  std::vector<std::uint64_t> asked;
  options.symbolizer = [&](std::uint64_t address) -> std::optional<std::string> {
    asked.push_back(address);
    if (address == 0x1000) return std::string("entry");
    return std::nullopt;
  };
  const auto lines = lines_of(disassemble(code.data(), code.size(), 0x1000, options));
  ASSERT_EQ(lines.size(), 3u);
  EXPECT_EQ(lines[0], "entry:");
  EXPECT_NE(lines[1].find("call 0x0000000000001000 <entry>"), std::string::npos) << lines[1];
  EXPECT_NE(lines[2].find("jmp 0x0000000000001000 <entry>"), std::string::npos) << lines[2];
  // Asked about each instruction start and each target.
  EXPECT_NE(std::find(asked.begin(), asked.end(), 0x1005u), asked.end());
}

TEST(Disassemble, SymbolizerNamesRipRelativeOperands) {
  // mov rax, [rip+0x10] at 0x2000 -> address 0x2000 + 7 + 0x10 = 0x2017
  const Bytes code = {0x48, 0x8b, 0x05, 0x10, 0x00, 0x00, 0x00};
  DisassembleOptions options;
  options.label_lines = false;
  options.symbolizer = [](std::uint64_t address) -> std::optional<std::string> {
    if (address == 0x2017) return std::string("counter");
    return std::nullopt;
  };
  const std::string text = disassemble(code.data(), code.size(), 0x2000, options);
  EXPECT_NE(text.find("0x0000000000002017 <counter>"), std::string::npos) << text;
}

TEST(Disassemble, OverlongSymbolNameFallsBackToPlainAddress) {
  const Bytes code = {0xe8, 0x00, 0x00, 0x00, 0x00};  // call next
  DisassembleOptions options;
  options.label_lines = false;
  options.symbolizer = [](std::uint64_t) -> std::optional<std::string> { return std::string(10000, 'x'); };
  const std::string text = disassemble(code.data(), code.size(), 0x3000, options);
  EXPECT_NE(text.find("call 0x0000000000003005"), std::string::npos) << text;
  EXPECT_EQ(text.find("xxxx"), std::string::npos);
}

TEST(Disassemble, UndecodableBytesPrintAsBadAndListingContinues) {
  // 0x06 (push es) is invalid in 64-bit mode; then a valid ret.
  const Bytes code = {0x06, 0xc3};
  const auto lines = lines_of(disassemble(code.data(), code.size(), 0x10));
  ASSERT_EQ(lines.size(), 2u);
  EXPECT_NE(lines[0].find("(bad) 0x06"), std::string::npos) << lines[0];
  EXPECT_NE(lines[1].find("ret"), std::string::npos) << lines[1];
}

TEST(Disassemble, TruncatedInstructionPrintsEachByteAsBad) {
  const Bytes code = {0x48, 0x8b};  // REX.W mov r64, r/m64 with no ModRM
  const auto lines = lines_of(disassemble(code.data(), code.size(), 0));
  ASSERT_EQ(lines.size(), 2u);
  EXPECT_NE(lines[0].find("(bad) 0x48"), std::string::npos);
  EXPECT_NE(lines[1].find("(bad) 0x8b"), std::string::npos);
}

TEST(Disassemble, EmptyAndNullInputGiveEmptyText) {
  EXPECT_EQ(disassemble(nullptr, 16, 0), "");
  const Bytes code = {0x90};
  EXPECT_EQ(disassemble(code.data(), 0, 0), "");
}

TEST(Disassemble, RandomBytesNeverCrashAndCoverEveryByte) {
  std::mt19937 rng(1234);
  Bytes code(1 << 16);
  for (auto& b : code) b = static_cast<std::uint8_t>(rng());
  DisassembleOptions options;
  options.symbolizer = [](std::uint64_t a) -> std::optional<std::string> {
    if (a % 7 == 0) return "sym_" + std::to_string(a);
    return std::nullopt;
  };
  const std::string text = disassemble(code.data(), code.size(), 0x7f0000000000, options);
  // Every byte is shown exactly once in the byte column: count the hex pairs per line.
  std::size_t shown = 0;
  for (const std::string& line : lines_of(text)) {
    if (!line.empty() && line.back() == ':') continue;  // label line
    ASSERT_GT(line.size(), 20u) << line;
    std::size_t pos = 20;  // after "0x%016llx  "
    while (pos + 2 < line.size() && line[pos + 2] == ' ' && std::isxdigit(line[pos]) &&
           std::isxdigit(line[pos + 1])) {
      ++shown;
      pos += 3;
    }
  }
  EXPECT_EQ(shown, code.size());
}

TEST(DecodeOne, ReportsLengthMnemonicAndMemoryOperand) {
  // mov rax, qword ptr [rbx+rcx*8+0x10]
  const Bytes code = {0x48, 0x8b, 0x44, 0xcb, 0x10, 0xcc};
  auto decoded = decode_one(code.data(), code.size(), 0);
  ASSERT_TRUE(decoded) << decoded.error().message();
  EXPECT_EQ(decoded->length, 5);
  EXPECT_EQ(decoded->mnemonic, "mov");
  EXPECT_EQ(decoded->operand_width, 64);
  EXPECT_EQ(decoded->text, "mov rax, qword ptr [rbx+rcx*8+0x10]");
  ASSERT_EQ(decoded->operands.size(), 2u);
  EXPECT_EQ(decoded->operands[0].kind, DecodedOperand::Kind::kRegister);
  EXPECT_EQ(decoded->operands[0].reg, "rax");
  EXPECT_EQ(decoded->operands[0].size_bits, 64);
  const DecodedOperand& mem = decoded->operands[1];
  EXPECT_EQ(mem.kind, DecodedOperand::Kind::kMemory);
  EXPECT_EQ(mem.base, "rbx");
  EXPECT_EQ(mem.index, "rcx");
  EXPECT_EQ(mem.scale, 8);
  EXPECT_TRUE(mem.has_displacement);
  EXPECT_EQ(mem.displacement, 0x10);
  EXPECT_EQ(mem.size_bits, 64);
}

TEST(DecodeOne, ReportsHighByteRegistersAndSignExtendedImmediates) {
  // mov ah, bh
  const Bytes a = {0x88, 0xfc};
  auto mov8 = decode_one(a.data(), a.size(), 0);
  ASSERT_TRUE(mov8);
  ASSERT_EQ(mov8->operands.size(), 2u);
  EXPECT_EQ(mov8->operands[0].reg, "ah");
  EXPECT_EQ(mov8->operands[1].reg, "bh");
  EXPECT_EQ(mov8->operands[0].size_bits, 8);
  // add rax, -128 (imm8 sign-extended): 48 83 c0 80
  const Bytes b = {0x48, 0x83, 0xc0, 0x80};
  auto add = decode_one(b.data(), b.size(), 0);
  ASSERT_TRUE(add);
  ASSERT_EQ(add->operands.size(), 2u);
  EXPECT_EQ(add->operands[1].kind, DecodedOperand::Kind::kImmediate);
  EXPECT_EQ(add->operands[1].immediate, -128);
  EXPECT_TRUE(add->operands[1].is_signed);
}

TEST(DecodeOne, RelativeBranchReportsAbsoluteTarget) {
  const Bytes code = {0x0f, 0x85, 0x00, 0x01, 0x00, 0x00};  // jnz +0x100
  auto decoded = decode_one(code.data(), code.size(), 0x5000);
  ASSERT_TRUE(decoded);
  EXPECT_EQ(decoded->mnemonic, "jnz");
  EXPECT_EQ(decoded->length, 6);
  ASSERT_EQ(decoded->operands.size(), 1u);
  EXPECT_TRUE(decoded->operands[0].is_relative);
  EXPECT_EQ(decoded->operands[0].target, 0x5000u + 6 + 0x100);
}

TEST(DecodeOne, RipRelativeMemoryHasRipBase) {
  const Bytes code = {0x8b, 0x05, 0x78, 0x56, 0x34, 0x12};  // mov eax, [rip+0x12345678]
  auto decoded = decode_one(code.data(), code.size(), 0);
  ASSERT_TRUE(decoded);
  ASSERT_EQ(decoded->operands.size(), 2u);
  EXPECT_EQ(decoded->operands[1].base, "rip");
  EXPECT_EQ(decoded->operands[1].displacement, 0x12345678);
  EXPECT_EQ(decoded->operands[1].size_bits, 32);
}

TEST(DecodeOne, InvalidBytesGiveErrorNamingThem) {
  const Bytes code = {0x06};
  auto decoded = decode_one(code.data(), code.size(), 0);
  ASSERT_FALSE(decoded);
  EXPECT_EQ(decoded.error().code(), ErrorCode::kInvalidArgument);
  EXPECT_NE(decoded.error().message().find("[06]"), std::string::npos) << decoded.error().message();
}

TEST(DecodeOne, TruncatedInstructionIsAnError) {
  const Bytes code = {0x48, 0xb8, 0x01, 0x02};  // mov rax, imm64 cut short
  auto decoded = decode_one(code.data(), code.size(), 0);
  ASSERT_FALSE(decoded);
  EXPECT_NE(decoded.error().message().find("48 b8 01 02"), std::string::npos);
}

TEST(DecodeOne, EmptyInputIsAnError) {
  auto decoded = decode_one(nullptr, 0, 0);
  ASSERT_FALSE(decoded);
  EXPECT_EQ(decoded.error().code(), ErrorCode::kInvalidArgument);
}

}  // namespace
}  // namespace jitkit::x64
