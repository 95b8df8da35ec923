// src/debug/elf_object.cpp — the ELF objects gdb reads through its JIT interface.
// See elf_object_p.h for the shape of an object and why it is that shape.
#include "debug/elf_object_p.h"

#include <elf.h>

#include <algorithm>
#include <cstring>
#include <numeric>
#include <string>

#include "jitkit/base/bits.h"
#include "jitkit/base/format.h"

namespace jitkit::debug::detail {
namespace {

// DWARF register numbers (System V x86-64 psABI, figure 3.36).
constexpr std::uint8_t kDwarfRbp = 6;
constexpr std::uint8_t kDwarfRsp = 7;
constexpr std::uint8_t kDwarfRip = 16;  // the return-address column

// DWARF call-frame opcodes used here (DWARF 4, section 6.4.2).
constexpr std::uint8_t kCfaAdvanceLoc = 0x40;  // | delta (6 bits)
constexpr std::uint8_t kCfaOffset = 0x80;      // | reg, ULEB factored offset
constexpr std::uint8_t kCfaAdvanceLoc1 = 0x02;
constexpr std::uint8_t kCfaAdvanceLoc2 = 0x03;
constexpr std::uint8_t kCfaAdvanceLoc4 = 0x04;
constexpr std::uint8_t kCfaSameValue = 0x08;
constexpr std::uint8_t kCfaDefCfa = 0x0c;
constexpr std::uint8_t kCfaNop = 0x00;
constexpr std::int64_t kDataAlign = -8;  // CIE data_alignment_factor

// Writers into memory sized beforehand: every object is built in one buffer whose size is
// bounded before anything is written (building it byte by byte into growing vectors, with a
// vector per section, made small objects cost more in allocation than in ELF).
template <typename T>
std::uint8_t* put(std::uint8_t* p, T v) {
  std::memcpy(p, &v, sizeof(T));
  return p + sizeof(T);
}
std::uint8_t* put_uleb(std::uint8_t* p, std::uint64_t v) {
  do {
    std::uint8_t b = v & 0x7f;
    v >>= 7;
    if (v != 0) b |= 0x80;
    *p++ = b;
  } while (v != 0);
  return p;
}
std::uint8_t* pad_to(std::uint8_t* begin, std::uint8_t* p, std::size_t alignment, std::uint8_t fill) {
  while (!is_aligned(static_cast<std::size_t>(p - begin), alignment)) *p++ = fill;
  return p;
}

// The most bytes one unwind row adds to a CFA program: an advance (opcode + 4), a def_cfa
// (opcode, register and offset as ULEBs of at most 1 and 5 bytes) and an rbp rule (2).
constexpr std::size_t kMaxCfaBytesPerRow = 5 + 7 + 2;
// An FDE's bytes besides its program: length, CIE pointer, address, size, padding to 8.
constexpr std::size_t kMaxFdeOverhead = 4 + 4 + 8 + 8 + 7;

std::uint64_t extent_end(const Symbol& s) {
  std::uint64_t len = std::max<std::uint64_t>({s.size, s.extent, 1});
  return s.address + len;
}

bool is_code(const Symbol& s) { return s.kind != SymbolKind::kData; }

// A maximal run of touching or overlapping extents: one NOBITS section.
struct Range {
  std::uint64_t begin = 0;
  std::uint64_t end = 0;
  bool code = true;
};

// The CIE shared by all FDEs of an object: CFA = rsp+8, return address at CFA-8 (the state at
// a function's first instruction, right after `call`). Fixed bytes, padded to 8.
constexpr std::uint8_t kCie[] = {
    20,
    0,
    0,
    0,  // length of what follows
    0xff,
    0xff,
    0xff,
    0xff,       // CIE_id of .debug_frame
    1,          // version 1: return_address_register is one byte
    0,          // augmentation ""
    1,          // code_alignment_factor (ULEB)
    0x78,       // data_alignment_factor -8 (SLEB)
    kDwarfRip,  // return_address_register
    kCfaDefCfa,
    kDwarfRsp,
    8,  // CFA = rsp + 8
    kCfaOffset | kDwarfRip,
    1,  // rip saved at CFA + 1 * -8
    kCfaNop,
    kCfaNop,
    kCfaNop,
    kCfaNop,
    kCfaNop,
    kCfaNop,
};
static_assert(sizeof(kCie) == 24 && kDataAlign == -8);

// The program of `frame` at `p` (room for kMaxCfaBytesPerRow per row); returns its end.
std::uint8_t* write_cfa_program(std::uint8_t* p, const FrameInfo& frame, std::size_t function_size) {
  // The CIE's initial state: CFA = rsp+8, rbp unchanged.
  UnwindRow::Base base = UnwindRow::Base::kRsp;
  std::int32_t cfa_offset = 8;
  bool rbp_saved = false;
  std::uint32_t loc = 0;
  for (const UnwindRow& row : frame.rows) {
    if (row.code_offset >= function_size) break;  // describes no instruction
    std::uint32_t delta = row.code_offset - loc;
    if (delta != 0) {
      if (delta < 64) {
        *p++ = kCfaAdvanceLoc | static_cast<std::uint8_t>(delta);
      } else if (delta <= 0xff) {
        *p++ = kCfaAdvanceLoc1;
        *p++ = static_cast<std::uint8_t>(delta);
      } else if (delta <= 0xffff) {
        *p++ = kCfaAdvanceLoc2;
        p = put<std::uint16_t>(p, static_cast<std::uint16_t>(delta));
      } else {
        *p++ = kCfaAdvanceLoc4;
        p = put<std::uint32_t>(p, delta);
      }
      loc = row.code_offset;
    }
    if (row.base != base || row.cfa_offset != cfa_offset) {
      *p++ = kCfaDefCfa;
      p = put_uleb(p, row.base == UnwindRow::Base::kRsp ? kDwarfRsp : kDwarfRbp);
      p = put_uleb(p, static_cast<std::uint32_t>(row.cfa_offset));
      base = row.base;
      cfa_offset = row.cfa_offset;
    }
    if (row.rbp_saved != rbp_saved) {
      if (row.rbp_saved) {
        *p++ = kCfaOffset | kDwarfRbp;  // rbp at CFA + 2 * -8
        p = put_uleb(p, 2);
      } else {
        *p++ = kCfaSameValue;
        p = put_uleb(p, kDwarfRbp);
      }
      rbp_saved = row.rbp_saved;
    }
  }
  return p;
}

}  // namespace

std::vector<std::uint8_t> cfa_program(const FrameInfo& frame, std::size_t function_size) {
  std::vector<std::uint8_t> out;
  append_cfa_program(out, frame, function_size);
  return out;
}

void append_cfa_program(std::vector<std::uint8_t>& out, const FrameInfo& frame, std::size_t function_size) {
  const std::size_t at = out.size();
  out.resize(at + kMaxCfaBytesPerRow * frame.rows.size());
  std::uint8_t* end = write_cfa_program(out.data() + at, frame, function_size);
  out.resize(static_cast<std::size_t>(end - out.data()));
}

Status validate_symbols(std::span<const Symbol> symbols) {
  auto bad = [](const Symbol& s, std::string_view why) {
    return Error(ErrorCode::kInvalidArgument,
                 "debug: symbol '" + s.name + "' at " + hex(s.address) + ": " + std::string(why));
  };
  for (const Symbol& s : symbols) {
    if (s.name.empty()) return bad(s, "empty name");
    if (s.name.find('\0') != std::string::npos) return bad(s, "name contains a NUL byte");
    if (s.name.find('\n') != std::string::npos) return bad(s, "name contains a newline");
    if (s.address == 0) return bad(s, "null address");
    if (s.kind == SymbolKind::kFunction && s.size == 0) return bad(s, "function of size 0");
    if (s.kind == SymbolKind::kLabel && s.size != 0) return bad(s, "a label has size 0");
    if (s.address + std::max<std::uint64_t>({s.size, s.extent, 1}) < s.address) {
      return bad(s, "range wraps around the address space");
    }
    if (s.kind != SymbolKind::kFunction && s.frame.has_unwind) {
      return bad(s, "only functions have unwind rows");
    }
    std::uint32_t prev = 0;
    for (std::size_t i = 0; i < s.frame.rows.size(); ++i) {
      const UnwindRow& r = s.frame.rows[i];
      if (r.code_offset > s.size) {
        return bad(s, "unwind row at offset " + std::to_string(r.code_offset) +
                          " is outside the function (size " + std::to_string(s.size) + ")");
      }
      if (i > 0 && r.code_offset <= prev) return bad(s, "unwind rows are not strictly sorted");
      if (r.cfa_offset < 8 || !is_aligned(static_cast<std::uint64_t>(r.cfa_offset), 8)) {
        return bad(s, "CFA offset " + std::to_string(r.cfa_offset) +
                          " is not a positive multiple of 8 (at least the return address)");
      }
      if (r.rbp_saved && r.cfa_offset < 16 && r.base == UnwindRow::Base::kRsp) {
        return bad(s, "rbp saved at CFA-16 but CFA is only rsp+8");
      }
      prev = r.code_offset;
    }
  }
  // Overlapping functions: gdb would pick one of them arbitrarily for a pc. (A batch of one
  // function, the most common, has nothing to compare.)
  std::vector<const Symbol*> functions;
  if (symbols.size() < 2) return ok();
  for (const Symbol& s : symbols) {
    if (s.kind == SymbolKind::kFunction) functions.push_back(&s);
  }
  std::sort(functions.begin(), functions.end(),
            [](const Symbol* a, const Symbol* b) { return a->address < b->address; });
  for (std::size_t i = 1; i < functions.size(); ++i) {
    const Symbol& a = *functions[i - 1];
    const Symbol& b = *functions[i];
    if (b.address < a.address + a.size) {
      return bad(b, "overlaps function '" + a.name + "' at " + hex(a.address));
    }
  }
  return ok();
}

namespace {

// One ELF object for `members` (indices into symbols, sorted by address) whose extents fall in
// `ranges` (sorted, code ranges and data ranges separately sorted but interleaved freely);
// member_range[m] is the range of members[m].
std::vector<std::uint8_t> build_one(std::span<const Symbol* const> symbols,
                                    std::span<const std::uint32_t> members,
                                    std::span<const std::uint32_t> member_range,
                                    std::span<const Range> ranges) {
  // Section header indices: 0 null, 1 .shstrtab, 2 .strtab, 3 .symtab, 4 .debug_frame,
  // 5.. one per range.
  constexpr std::uint16_t kFirstRange = 5;
  static const char kShstrtab[] = "\0.shstrtab\0.strtab\0.symtab\0.debug_frame\0.text\0.data";
  constexpr std::uint32_t kNameShstrtab = 1, kNameStrtab = 11, kNameSymtab = 19, kNameDebugFrame = 27,
                          kNameText = 40, kNameData = 46;

  // File layout: header, .shstrtab, .strtab, .symtab (8-aligned), .debug_frame (8-aligned),
  // section headers (8-aligned). Everything but the FDEs' programs has a known size, and those
  // have a bound: the buffer is sized once, written in place and trimmed.
  std::size_t name_bytes = 1;
  std::size_t locals = 0;
  std::size_t frame_bound = 0;
  for (std::uint32_t idx : members) {
    const Symbol& s = *symbols[idx];
    name_bytes += s.name.size() + 1;
    if (s.kind == SymbolKind::kLabel) ++locals;
    if (s.frame.has_unwind) frame_bound += kMaxFdeOverhead + kMaxCfaBytesPerRow * s.frame.rows.size();
  }
  if (frame_bound > 0) frame_bound += sizeof(kCie);
  const std::size_t shstrtab_off = sizeof(Elf64_Ehdr);
  const std::size_t strtab_off = shstrtab_off + sizeof(kShstrtab);
  const std::size_t symtab_off = align_up(strtab_off + name_bytes, 8);
  const std::size_t sym_count = members.size() + 1;
  const std::size_t frame_off = symtab_off + sym_count * sizeof(Elf64_Sym);
  const std::size_t section_count = kFirstRange + ranges.size();
  std::vector<std::uint8_t> out(frame_off + frame_bound + 7 + section_count * sizeof(Elf64_Shdr));
  std::uint8_t* const o = out.data();
  std::memcpy(o + shstrtab_off, kShstrtab, sizeof(kShstrtab));

  // .strtab and .symtab: null symbol (the zeroed first entry), locals (labels), then globals
  // (functions, data); each name is written beside its symbol.
  std::uint8_t* names = o + strtab_off + 1;
  std::uint8_t* sym = o + symtab_off + sizeof(Elf64_Sym);
  for (int pass = 0; pass < 2; ++pass) {
    for (std::size_t m = 0; m < members.size(); ++m) {
      const Symbol& s = *symbols[members[m]];
      bool local = s.kind == SymbolKind::kLabel;
      if (local != (pass == 0)) continue;
      const Range& r = ranges[member_range[m]];
      Elf64_Sym e{};
      e.st_name = static_cast<Elf64_Word>(names - (o + strtab_off));
      std::memcpy(names, s.name.data(), s.name.size());
      names += s.name.size() + 1;  // the NUL is already there
      unsigned char type = s.kind == SymbolKind::kFunction ? STT_FUNC
                           : s.kind == SymbolKind::kData   ? STT_OBJECT
                                                           : STT_NOTYPE;
      e.st_info = ELF64_ST_INFO(local ? STB_LOCAL : STB_GLOBAL, type);
      e.st_other = STV_DEFAULT;
      e.st_shndx = static_cast<Elf64_Section>(kFirstRange + member_range[m]);
      e.st_value = s.address - r.begin;  // ET_REL: section-relative
      e.st_size = s.size;
      sym = put(sym, e);
    }
  }

  // .debug_frame: the CIE at offset 0, then one FDE per function with unwind rows.
  std::uint8_t* const frame = o + frame_off;
  std::uint8_t* f = frame;
  if (frame_bound > 0) {
    std::memcpy(f, kCie, sizeof(kCie));
    f += sizeof(kCie);
    for (std::uint32_t idx : members) {
      const Symbol& s = *symbols[idx];
      if (!s.frame.has_unwind) continue;
      std::uint8_t* start = f;
      f = put<std::uint32_t>(f, 0);  // length, patched below
      f = put<std::uint32_t>(f, 0);  // CIE_pointer: the CIE at offset 0
      f = put<std::uint64_t>(f, s.address);
      f = put<std::uint64_t>(f, s.size);
      f = write_cfa_program(f, s.frame, s.size);
      f = pad_to(frame, f, 8, kCfaNop);
      put<std::uint32_t>(start, static_cast<std::uint32_t>(f - start - 4));
    }
  }
  const std::size_t frame_size = static_cast<std::size_t>(f - frame);
  const std::size_t shoff = align_up(frame_off + frame_size, 8);

  std::uint8_t* sh = o + shoff + sizeof(Elf64_Shdr);  // the null header is the zeroed first one
  sh = put(sh, Elf64_Shdr{kNameShstrtab, SHT_STRTAB, 0, 0, shstrtab_off, sizeof(kShstrtab), 0, 0, 1, 0});
  sh = put(sh, Elf64_Shdr{kNameStrtab, SHT_STRTAB, 0, 0, strtab_off, name_bytes, 0, 0, 1, 0});
  sh = put(sh, Elf64_Shdr{kNameSymtab, SHT_SYMTAB, 0, 0, symtab_off, sym_count * sizeof(Elf64_Sym), 2,
                          static_cast<Elf64_Word>(1 + locals), 8, sizeof(Elf64_Sym)});
  sh = put(sh, Elf64_Shdr{kNameDebugFrame, SHT_PROGBITS, 0, 0, frame_off, frame_size, 0, 0, 8, 0});
  for (const Range& r : ranges) {
    sh = put(sh, Elf64_Shdr{
                     r.code ? kNameText : kNameData, SHT_NOBITS,
                     r.code ? std::uint64_t{SHF_ALLOC | SHF_EXECINSTR} : std::uint64_t{SHF_ALLOC | SHF_WRITE},
                     r.begin, shoff, r.end - r.begin, 0, 0, 1, 0});
  }
  out.resize(shoff + section_count * sizeof(Elf64_Shdr));

  Elf64_Ehdr eh{};
  std::memcpy(eh.e_ident, ELFMAG, SELFMAG);
  eh.e_ident[EI_CLASS] = ELFCLASS64;
  eh.e_ident[EI_DATA] = ELFDATA2LSB;
  eh.e_ident[EI_VERSION] = EV_CURRENT;
  eh.e_ident[EI_OSABI] = ELFOSABI_SYSV;
  eh.e_type = ET_REL;
  eh.e_machine = EM_X86_64;
  eh.e_version = EV_CURRENT;
  eh.e_shoff = shoff;
  eh.e_ehsize = sizeof(Elf64_Ehdr);
  eh.e_shentsize = sizeof(Elf64_Shdr);
  eh.e_shnum = static_cast<Elf64_Half>(section_count);
  eh.e_shstrndx = 1;
  std::memcpy(out.data(), &eh, sizeof eh);
  return out;
}

}  // namespace

std::vector<std::vector<std::uint8_t>> build_elf_objects(std::span<const Symbol> symbols) {
  std::vector<const Symbol*> pointers;
  pointers.reserve(symbols.size());
  for (const Symbol& s : symbols) pointers.push_back(&s);
  return build_elf_objects(std::span<const Symbol* const>(pointers));
}

std::vector<std::vector<std::uint8_t>> build_elf_objects(std::span<const Symbol* const> symbols) {
  // Order by address; batches usually arrive sorted (allocation order), so check first.
  std::vector<std::uint32_t> order(symbols.size());
  std::iota(order.begin(), order.end(), 0u);
  auto by_address = [&](std::uint32_t a, std::uint32_t b) {
    return symbols[a]->address < symbols[b]->address;
  };
  if (!std::is_sorted(order.begin(), order.end(), by_address)) {
    std::stable_sort(order.begin(), order.end(), by_address);
  }

  // Ranges: code and data separately, each a union of touching extents. A symbol belongs to the
  // range open when it is reached (ranges only grow while symbols are sorted by address).
  std::vector<Range> ranges;
  std::vector<std::uint32_t> range_of(symbols.size());
  std::int64_t open_range[2] = {-1, -1};  // [code, data]
  for (std::uint32_t idx : order) {
    const Symbol& s = *symbols[idx];
    bool code = is_code(s);
    std::int64_t& open = open_range[code ? 0 : 1];
    if (open >= 0 && s.address <= ranges[open].end) {
      ranges[open].end = std::max(ranges[open].end, extent_end(s));
    } else {
      open = static_cast<std::int64_t>(ranges.size());
      ranges.push_back({s.address, extent_end(s), code});
    }
    range_of[idx] = static_cast<std::uint32_t>(open);
  }

  // Split into objects of at most kMaxRangesPerObject ranges (object k holds ranges
  // [k*max, (k+1)*max) and the symbols inside them), keeping each object's symbols sorted.
  std::vector<std::vector<std::uint8_t>> objects;
  if (ranges.size() <= kMaxRangesPerObject) {  // the usual case: one object, every symbol
    std::vector<std::uint32_t> member_range(order.size());
    for (std::size_t m = 0; m < order.size(); ++m) member_range[m] = range_of[order[m]];
    objects.push_back(build_one(symbols, order, member_range, ranges));
    return objects;
  }
  std::size_t object_count = (ranges.size() + kMaxRangesPerObject - 1) / kMaxRangesPerObject;
  std::vector<std::vector<std::uint32_t>> members(object_count);
  std::vector<std::vector<std::uint32_t>> member_range(object_count);
  for (std::uint32_t idx : order) {
    std::size_t object = range_of[idx] / kMaxRangesPerObject;
    members[object].push_back(idx);
    member_range[object].push_back(static_cast<std::uint32_t>(range_of[idx] - object * kMaxRangesPerObject));
  }
  for (std::size_t k = 0; k < object_count; ++k) {
    std::size_t first = k * kMaxRangesPerObject;
    std::size_t count = std::min(kMaxRangesPerObject, ranges.size() - first);
    objects.push_back(build_one(symbols, members[k], member_range[k],
                                std::span<const Range>(ranges).subspan(first, count)));
  }
  return objects;
}

}  // namespace jitkit::debug::detail
