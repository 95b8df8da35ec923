// src/debug/elf_object_p.h — builds the in-memory ELF objects handed to gdb's JIT interface.
//
// One object describes a batch of symbols (code_registry.h): a .symtab/.strtab with every name,
// one SHT_NOBITS section per contiguous address range (".text" for code, ".data" for data; the
// code itself is not copied, gdb reads it from the process like any other memory) and a
// .debug_frame with one CIE and one FDE per function that has unwind rows. The object is ET_REL
// with every section's sh_addr set to its run-time address, the shape LLVM's JIT hands gdb.
// Absolute 8-byte FDE addresses (.debug_frame, not .eh_frame) keep it free of pc-relative
// encodings, so the object needs no relocation.
//
// Linear in the batch: symbols are sorted only if they do not arrive sorted, every string is
// copied once, every FDE is a few dozen bytes. More than kMaxRangesPerObject disjoint ranges
// (ELF's 16-bit section count) split the batch into several objects.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <vector>

#include "jitkit/base/result.h"
#include "jitkit/debug/code_registry.h"

namespace jitkit::debug::detail {

inline constexpr std::size_t kMaxRangesPerObject = 60000;

// Checks a batch: names, addresses, sizes, unwind rows, overlapping functions. The message names
// the offending symbol.
[[nodiscard]] Status validate_symbols(std::span<const Symbol> symbols);

// Builds the ELF object(s) for already validated symbols (the pointer form serves merged
// objects, whose symbols live in several batches).
std::vector<std::vector<std::uint8_t>> build_elf_objects(std::span<const Symbol> symbols);
std::vector<std::vector<std::uint8_t>> build_elf_objects(std::span<const Symbol* const> symbols);

// The DWARF call-frame instructions of one function (exposed for tests). Rows at or past
// `function_size` describe no instruction and are skipped (validate_symbols() allows a row
// exactly at the end, as FrameInfo::frame_pointer() makes when a `ret` ends the function).
std::vector<std::uint8_t> cfa_program(const FrameInfo& frame, std::size_t function_size);
void append_cfa_program(std::vector<std::uint8_t>& out, const FrameInfo& frame, std::size_t function_size);

}  // namespace jitkit::debug::detail
