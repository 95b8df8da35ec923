// libFuzzer target: the SOM lexer + parser must answer every input with either a class
// definition or an error message "file:line:col: error: ...", never crash, hang or overflow.
#include "parser_p.h"

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view src(reinterpret_cast<const char*>(data), size);
  som::ClassDef def;
  std::string error;
  bool ok = som::parse_class(src, "fuzz.som", def, error);
  if (!ok && error.rfind("fuzz.som:", 0) != 0) std::abort();  // errors must carry a position
  if (ok && def.name.empty()) std::abort();
  return 0;
}
