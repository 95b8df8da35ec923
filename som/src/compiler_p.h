// The bytecode compiler: AST (ast_p.h) -> Method (object_p.h) with bytecode (bytecode_p.h).
//
// Passes per method: (1) decide which literal blocks are inlined (control structures with
// literal-block arguments of the right arity, LANGUAGE.md §3.4); (2) resolve names and find the
// variables captured by real (non-inlined) blocks; (3) allocate every variable either a frame
// slot (not captured) or a Context slot (captured); (4) emit code.
#pragma once

#include "ast_p.h"
#include "object_p.h"

#include <string>

namespace som {

class VM;

// Compiles one method of `holder` (the class for instance methods, the metaclass for class
// methods). Primitive declarations are not compiled here. On error returns nullptr and sets
// `error` to "file:line:col: error: message".
Method* compile_method(VM& vm, Class* holder, MethodDef& def, const std::string& file, std::string& error);

}  // namespace som
