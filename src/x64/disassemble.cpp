// Disassembly through Zydis 4 (see include/jitkit/x64/disassemble.h).
//
// One decoder and one formatter per call: both are small structs that Zydis initialises in
// nanoseconds, and keeping them local makes `disassemble` safe to call from any thread without
// locks. Names from the symbolizer are added by hooking Zydis' "print absolute address" step,
// which Zydis uses for branch targets and for RIP-relative operands once a runtime address is
// known; the hook prints the address as usual and then ` <name>`.
#include "jitkit/x64/disassemble.h"

#include <Zydis/Zydis.h>

#include <array>
#include <cstdio>
#include <cstring>

namespace jitkit::x64 {
namespace {

constexpr std::size_t kMaxInsnLength = ZYDIS_MAX_INSTRUCTION_LENGTH;  // 15
// Text of one instruction; symbol names are appended inside it, so leave room for long
// (mangled C++) names. Zydis reports ZYAN_STATUS_INSUFFICIENT_BUFFER_SIZE beyond it, and we
// then reformat without names rather than truncate.
constexpr std::size_t kTextBufferSize = 2048;
// Width of the byte column: most instructions are at most 10 bytes; longer ones widen the line.
constexpr std::size_t kByteColumnBytes = 10;

// What the address hook needs; passed through Zydis' user_data pointer.
struct HookData {
  ZydisFormatterFunc original_print_address_abs = nullptr;
  const Symbolizer* symbolizer = nullptr;
};

ZyanStatus print_address_with_symbol(const ZydisFormatter* formatter, ZydisFormatterBuffer* buffer,
                                     ZydisFormatterContext* context) {
  const auto* data = static_cast<const HookData*>(context->user_data);
  ZYAN_CHECK(data->original_print_address_abs(formatter, buffer, context));
  if (data->symbolizer == nullptr || !*data->symbolizer) return ZYAN_STATUS_SUCCESS;

  ZyanU64 address = 0;
  if (!ZYAN_SUCCESS(ZydisCalcAbsoluteAddress(context->instruction, context->operand, context->runtime_address,
                                             &address))) {
    return ZYAN_STATUS_SUCCESS;  // not an address we can compute: print it bare
  }
  std::optional<std::string> name = (*data->symbolizer)(address);
  if (!name || name->empty()) return ZYAN_STATUS_SUCCESS;

  std::string decorated = " <" + *name + ">";
  ZYAN_CHECK(ZydisFormatterBufferAppend(buffer, ZYDIS_TOKEN_SYMBOL));
  ZyanString* string = nullptr;
  ZYAN_CHECK(ZydisFormatterBufferGetString(buffer, &string));
  ZyanStringView view;
  ZYAN_CHECK(ZyanStringViewInsideBufferEx(&view, decorated.data(), decorated.size()));
  return ZyanStringAppend(string, &view);
}

class Decoder {
 public:
  Decoder() { ZydisDecoderInit(&decoder_, ZYDIS_MACHINE_MODE_LONG_64, ZYDIS_STACK_WIDTH_64); }

  // Decodes one instruction; false when the bytes are invalid or truncated.
  bool decode(const std::uint8_t* code, std::size_t size, ZydisDecodedInstruction* insn,
              ZydisDecodedOperand* operands) const {
    return ZYAN_SUCCESS(ZydisDecoderDecodeFull(&decoder_, code, size, insn, operands));
  }

 private:
  ZydisDecoder decoder_;
};

class Formatter {
 public:
  // `symbolizer` may be null or empty: then addresses print without names.
  Formatter(Syntax syntax, const Symbolizer* symbolizer) {
    ZydisFormatterInit(&formatter_,
                       syntax == Syntax::kAtt ? ZYDIS_FORMATTER_STYLE_ATT : ZYDIS_FORMATTER_STYLE_INTEL);
    // Always print the memory operand size (`qword ptr`), as objdump does: a log reader should
    // not have to infer the width from the other operand.
    ZydisFormatterSetProperty(&formatter_, ZYDIS_FORMATTER_PROP_FORCE_SIZE, ZYAN_TRUE);
    hook_.symbolizer = symbolizer;
    if (symbolizer != nullptr && *symbolizer) {
      auto callback = reinterpret_cast<const void*>(&print_address_with_symbol);
      ZydisFormatterSetHook(&formatter_, ZYDIS_FORMATTER_FUNC_PRINT_ADDRESS_ABS, &callback);
      // SetHook hands back the function it replaced; the hook chains to it.
      hook_.original_print_address_abs = reinterpret_cast<ZydisFormatterFunc>(callback);
      hooked_ = true;
    }
  }

  // Formats into `out`; returns false only if Zydis fails even without names.
  bool format(const ZydisDecodedInstruction& insn, const ZydisDecodedOperand* operands,
              std::uint64_t runtime_address, std::string* out) {
    std::array<char, kTextBufferSize> text;
    ZyanStatus status =
        ZydisFormatterFormatInstruction(&formatter_, &insn, operands, insn.operand_count_visible, text.data(),
                                        text.size(), runtime_address, hooked_ ? &hook_ : nullptr);
    if (!ZYAN_SUCCESS(status) && hooked_) {
      // A name too long for the buffer (or a failing hook): fall back to the plain address.
      HookData plain{hook_.original_print_address_abs, nullptr};
      status = ZydisFormatterFormatInstruction(&formatter_, &insn, operands, insn.operand_count_visible,
                                               text.data(), text.size(), runtime_address, &plain);
    }
    if (!ZYAN_SUCCESS(status)) return false;
    out->assign(text.data());
    return true;
  }

 private:
  ZydisFormatter formatter_;
  HookData hook_;
  bool hooked_ = false;
};

void append_hex_address(std::string* out, std::uint64_t address) {
  char buf[24];
  std::snprintf(buf, sizeof buf, "0x%016llx", static_cast<unsigned long long>(address));
  out->append(buf);
}

void append_bytes_column(std::string* out, const std::uint8_t* bytes, std::size_t n) {
  static constexpr char kHex[] = "0123456789abcdef";
  std::size_t written = 0;
  for (std::size_t i = 0; i < n; ++i) {
    out->push_back(kHex[bytes[i] >> 4]);
    out->push_back(kHex[bytes[i] & 15]);
    out->push_back(' ');
    written += 3;
  }
  // Pad to a fixed column so that the text lines up; longer instructions just push it right.
  if (written < kByteColumnBytes * 3) out->append(kByteColumnBytes * 3 - written, ' ');
  out->push_back(' ');
}

std::string lower_register_name(ZydisRegister reg) {
  if (reg == ZYDIS_REGISTER_NONE) return {};
  const char* name = ZydisRegisterGetString(reg);
  return name != nullptr ? std::string(name) : std::string();
}

std::string hex_bytes(const std::uint8_t* bytes, std::size_t n) {
  std::string s;
  for (std::size_t i = 0; i < n; ++i) {
    char buf[4];
    std::snprintf(buf, sizeof buf, i == 0 ? "%02x" : " %02x", bytes[i]);
    s.append(buf);
  }
  return s;
}

}  // namespace

std::string disassemble(const void* code, std::size_t size, std::uint64_t runtime_address,
                        const DisassembleOptions& options) {
  const auto* bytes = static_cast<const std::uint8_t*>(code);
  if (bytes == nullptr) return {};
  Decoder decoder;
  Formatter formatter(options.syntax, &options.symbolizer);
  const bool names = static_cast<bool>(options.symbolizer);

  std::string out;
  out.reserve(size * 12);
  ZydisDecodedInstruction insn;
  ZydisDecodedOperand operands[ZYDIS_MAX_OPERAND_COUNT];
  std::string text;
  std::size_t offset = 0;
  while (offset < size) {
    const std::uint64_t address = runtime_address + offset;
    if (names && options.label_lines) {
      if (std::optional<std::string> label = options.symbolizer(address); label && !label->empty()) {
        out.append(*label);
        out.append(":\n");
      }
    }
    std::size_t length = 1;
    if (decoder.decode(bytes + offset, size - offset, &insn, operands) &&
        formatter.format(insn, operands, address, &text)) {
      length = insn.length;
    } else {
      // Invalid or truncated: show one byte and resynchronise at the next one, the way objdump
      // does, so data between functions does not end the listing.
      char buf[16];
      std::snprintf(buf, sizeof buf, "(bad) 0x%02x", bytes[offset]);
      text = buf;
    }
    if (options.show_address) {
      append_hex_address(&out, address);
      out.append("  ");
    }
    if (options.show_bytes) append_bytes_column(&out, bytes + offset, length);
    out.append(text);
    out.push_back('\n');
    offset += length;
  }
  return out;
}

Result<DecodedInstruction> decode_one(const void* code, std::size_t size, std::uint64_t runtime_address) {
  const auto* bytes = static_cast<const std::uint8_t*>(code);
  if (bytes == nullptr || size == 0) {
    return Error(ErrorCode::kInvalidArgument, "decode_one: no bytes to decode");
  }
  Decoder decoder;
  ZydisDecodedInstruction insn;
  ZydisDecodedOperand operands[ZYDIS_MAX_OPERAND_COUNT];
  if (!decoder.decode(bytes, size, &insn, operands)) {
    const std::size_t shown = size < kMaxInsnLength ? size : kMaxInsnLength;
    return Error(ErrorCode::kInvalidArgument, "decode_one: bytes [" + hex_bytes(bytes, shown) + "]" +
                                                  (size > shown ? "..." : "") +
                                                  " are not a valid x86-64 instruction (or are truncated)");
  }

  DecodedInstruction out;
  out.length = insn.length;
  const char* mnemonic = ZydisMnemonicGetString(insn.mnemonic);
  out.mnemonic = mnemonic != nullptr ? mnemonic : "";
  out.operand_width = insn.operand_width;
  out.address_width = insn.address_width;
  Formatter formatter(Syntax::kIntel, nullptr);
  if (!formatter.format(insn, operands, runtime_address, &out.text)) {
    return Error(ErrorCode::kInvalidArgument,
                 "decode_one: Zydis could not format [" + hex_bytes(bytes, insn.length) + "]");
  }

  for (std::uint8_t i = 0; i < insn.operand_count_visible; ++i) {
    const ZydisDecodedOperand& op = operands[i];
    DecodedOperand d;
    d.size_bits = op.size;
    switch (op.type) {
      case ZYDIS_OPERAND_TYPE_REGISTER:
        d.kind = DecodedOperand::Kind::kRegister;
        d.reg = lower_register_name(op.reg.value);
        break;
      case ZYDIS_OPERAND_TYPE_MEMORY:
        d.kind = DecodedOperand::Kind::kMemory;
        d.base = lower_register_name(op.mem.base);
        d.index = lower_register_name(op.mem.index);
        d.scale = op.mem.index == ZYDIS_REGISTER_NONE ? 0 : op.mem.scale;
        d.has_displacement = op.mem.disp.has_displacement;
        d.displacement = op.mem.disp.value;
        d.segment = lower_register_name(op.mem.segment);
        break;
      case ZYDIS_OPERAND_TYPE_IMMEDIATE:
        d.kind = DecodedOperand::Kind::kImmediate;
        d.immediate = op.imm.value.s;
        d.is_signed = op.imm.is_signed;
        d.is_relative = op.imm.is_relative;
        if (d.is_relative) {
          ZyanU64 target = 0;
          if (ZYAN_SUCCESS(ZydisCalcAbsoluteAddress(&insn, &op, runtime_address, &target))) {
            d.target = target;
          }
        }
        break;
      case ZYDIS_OPERAND_TYPE_POINTER:
        d.kind = DecodedOperand::Kind::kPointer;
        d.immediate = op.ptr.offset;
        break;
      default:
        continue;
    }
    out.operands.push_back(std::move(d));
  }
  return out;
}

}  // namespace jitkit::x64
