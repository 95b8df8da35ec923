// som_difftest_gen <seed> <out_dir>: writes one random SOM program for differential testing of
// the VM's execution modes (interpreter, JIT, --no-opt). The program is a main class
// `DiffTest<seed>` (startup sends it `run`) plus helper classes `DiffTest<seed>...`, all written
// into <out_dir>; the main file's path is printed on stdout. run-difftest.sh runs it under two
// flag sets and compares stdout and exit status byte for byte.
//
// The same seed always gives the same program (our own splitmix64, no std::rand), and every
// program is deterministic: it prints every value it computes, terminates in milliseconds, and
// never depends on hash order, time or identity hashes. It raises no runtime errors: divisors
// are non-zero literals, shifts stay within defined ranges, Doubles stay finite, and the one
// escaped block it may run goes to an `escapedBlock:` override that answers a value. It avoids
// the one place where the optimized VM and --no-opt legitimately differ: a closure created
// inside an inlined loop that captures a variable of the loop body and outlives the iteration.
//
// A program is a list of sections (one method each), covering: small-integer arithmetic at the
// 62-bit boundary and big integers, Doubles and mixed arithmetic, closures, non-local returns
// (also through methods and from an escaped block), polymorphic sends over 2..10 generated
// classes with inheritance, super sends and accessors, inlined and real control structures
// (including fallback sends to a non-Boolean/non-number receiver), recursion, Arrays and Strings.
#include <cerrno>
#include <cinttypes>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

namespace {

// splitmix64: small, fast and fully specified, so a seed means the same program everywhere.
class Rng {
 public:
  explicit Rng(uint64_t seed) : state_(seed) {}

  uint64_t next() {
    uint64_t z = (state_ += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
  }

  // Uniform in [lo, hi]; the span must fit 63 bits (all callers use small spans).
  int64_t range(int64_t lo, int64_t hi) {
    uint64_t span = static_cast<uint64_t>(hi - lo) + 1;
    return lo + static_cast<int64_t>(next() % span);
  }

  bool chance(int percent) { return range(0, 99) < percent; }

  template <class T>
  const T& pick(const std::vector<T>& items) {
    return items[static_cast<size_t>(range(0, static_cast<int64_t>(items.size()) - 1))];
  }

 private:
  uint64_t state_;
};

std::string str(int64_t v) { return std::to_string(v); }

// Negative literals are parenthesized so that they read the same in every operand position.
std::string operand(const std::string& text) { return text[0] == '-' ? "(" + text + ")" : text; }

constexpr int64_t kSmallMax = (int64_t{1} << 62) - 1;  // largest small (tagged) integer
constexpr int64_t kSmallMin = -(int64_t{1} << 62);     // smallest small integer

// Integers around the interesting boundaries: 32 bits, the 62-bit small-integer range, 64 bits.
const std::vector<std::string> kIntEdges = {"0",
                                            "1",
                                            "-1",
                                            "2",
                                            "-2",
                                            "3",
                                            "7",
                                            "-7",
                                            "10",
                                            "100",
                                            "255",
                                            "256",
                                            "65535",
                                            "65536",
                                            "2147483647",
                                            "2147483648",
                                            "-2147483648",
                                            "-2147483649",
                                            "4294967295",
                                            "4294967296",
                                            "3037000499",
                                            "3037000500",
                                            "-3037000500",
                                            "2147483649",
                                            "4611686018427387903",
                                            "4611686018427387904",
                                            "-4611686018427387904",
                                            "-4611686018427387905",
                                            "4611686018427387902",
                                            "-4611686018427387903",
                                            "2305843009213693952",
                                            "-2305843009213693952",
                                            "9223372036854775807",
                                            "9223372036854775808",
                                            "-9223372036854775808",
                                            "-9223372036854775809",
                                            "18446744073709551615",
                                            "18446744073709551616",
                                            "1180591620717411303424",
                                            "-1180591620717411303425",
                                            "85070591730234615865843651857942052864"};

// An Integer literal: boundary values, values next to ±2^62, small values, full 64-bit values.
std::string int_literal(Rng& rng) {
  switch (rng.range(0, 9)) {
    case 0:
    case 1:
    case 2:
      return rng.pick(kIntEdges);
    case 3:
    case 4:
      return str(kSmallMax - rng.range(-3, 6));  // includes 2^62 .. 2^62 + 3 (big)
    case 5:
      return str(kSmallMin + rng.range(-3, 6));
    case 6:
    case 7:
      return str(rng.range(-1000, 1000));
    case 8:
      return str(static_cast<int64_t>(rng.next()));
    default:
      return str(rng.range(-100000000, 100000000));
  }
}

std::string nonzero_int_literal(Rng& rng) {
  for (;;) {
    std::string s = int_literal(rng);
    if (s != "0") return s;
  }
}

// A small Integer literal (fits 62 bits), for the receiver of shifts and bit operations.
std::string small_int_literal(Rng& rng) {
  switch (rng.range(0, 3)) {
    case 0:
      return str(rng.range(-300, 300));
    case 1:
      return str(kSmallMax - rng.range(0, 5));
    case 2:
      return str(kSmallMin + rng.range(0, 5));
    default:
      return str(rng.range(-(int64_t{1} << 40), int64_t{1} << 40));
  }
}

// A Double literal `digits.digits` (no exponent in SOM). Zero only when allow_zero.
std::string double_literal(Rng& rng, bool allow_zero = true) {
  static const std::vector<std::string> kDoubleEdges = {"0.1",
                                                        "0.2",
                                                        "0.5",
                                                        "1.0",
                                                        "-1.0",
                                                        "2.5",
                                                        "-2.5",
                                                        "3.14159",
                                                        "0.3",
                                                        "1.5",
                                                        "4611686018427387904.0",
                                                        "-4611686018427387904.0",
                                                        "9007199254740993.0",
                                                        "1000000.0",
                                                        "0.001",
                                                        "123.456",
                                                        "-0.75",
                                                        "1.0000000000000002"};
  for (;;) {
    std::string s;
    if (rng.chance(40)) {
      s = rng.pick(kDoubleEdges);
    } else {
      s = (rng.chance(30) ? "-" : "") + str(rng.range(0, rng.chance(80) ? 1000 : 1000000000));
      s += "." + str(rng.range(0, 999));
      if (s == "-0.0" || s == "0.0") s = rng.chance(50) ? "0.0" : "-0.0";
    }
    if (allow_zero || (s != "0.0" && s != "-0.0")) return s;
  }
}

std::string nonzero_double_literal(Rng& rng) { return double_literal(rng, false); }

// A random Integer expression over literals and the given variables, fully parenthesized.
// Divisors are non-zero literals; shift and bit-operation receivers are small literals, so
// results stay defined (and below a few hundred bits).
std::string int_expr(Rng& rng, int depth, const std::vector<std::string>& vars) {
  if (depth == 0 || rng.chance(25)) {
    if (!vars.empty() && rng.chance(40)) return rng.pick(vars);
    return operand(int_literal(rng));
  }
  auto sub = [&] { return int_expr(rng, depth - 1, vars); };
  switch (rng.range(0, 13)) {
    case 0:
    case 1:
      return "(" + sub() + " + " + sub() + ")";
    case 2:
    case 3:
      return "(" + sub() + " - " + sub() + ")";
    case 4:
    case 5:
      return "(" + sub() + " * " + sub() + ")";
    case 6:
      return "(" + sub() + " / " + operand(nonzero_int_literal(rng)) + ")";
    case 7:
      return "(" + sub() + " % " + operand(nonzero_int_literal(rng)) + ")";
    case 8:
      return "(" + sub() + " rem: " + operand(nonzero_int_literal(rng)) + ")";
    case 9:
      return "(" + sub() + (rng.chance(50) ? " max: " : " min: ") + sub() + ")";
    case 10:
      return "(" + sub() + (rng.chance(50) ? " abs)" : " negated)");
    case 11:
      return "(" + operand(small_int_literal(rng)) + " << " + str(rng.range(0, 66)) + ")";
    case 12:
      return "(" + operand(small_int_literal(rng)) + " >>> " + str(rng.range(0, 63)) + ")";
    default:
      return "(" + operand(rng.chance(70) ? small_int_literal(rng) : int_literal(rng)) +
             (rng.chance(50) ? " & " : " bitXor: ") + operand(small_int_literal(rng)) + ")";
  }
}

// A random numeric expression mixing Doubles and Integers (mostly Doubles). Values stay
// finite: leaves are below 2^64 in magnitude, divisors are non-zero literals of at least 0.001,
// square roots take an absolute value.
std::string double_expr(Rng& rng, int depth, const std::vector<std::string>& vars) {
  if (depth == 0 || rng.chance(20)) {
    int k = static_cast<int>(rng.range(0, 9));
    if (!vars.empty() && k < 3) return rng.pick(vars);
    if (k < 8) return operand(double_literal(rng));
    return operand(rng.chance(50) ? str(rng.range(-50, 50)) : int_literal(rng));
  }
  auto sub = [&] { return double_expr(rng, depth - 1, vars); };
  switch (rng.range(0, 11)) {
    case 0:
    case 1:
      return "(" + sub() + " + " + sub() + ")";
    case 2:
    case 3:
      return "(" + sub() + " - " + sub() + ")";
    case 4:
    case 5:
      return "(" + sub() + " * " + sub() + ")";
    case 6:
      return "(" + sub() + " // " +
             operand(rng.chance(70) ? nonzero_double_literal(rng) : nonzero_int_literal(rng)) + ")";
    case 7:
      return "(" + sub() + " % " + operand(nonzero_double_literal(rng)) + ")";
    case 8:
      return "(" + sub() + (rng.chance(50) ? " abs)" : " negated)");
    case 9:
      return "(" + sub() + " abs sqrt)";
    case 10:
      return "(" + sub() + (rng.chance(50) ? " asDouble round)" : " asInteger)");
    default:
      return "(" + sub() + (rng.chance(50) ? " max: " : " min: ") + sub() + ")";
  }
}

const std::vector<std::string> kComparisons = {" < ", " > ", " <= ", " >= ", " = ", " ~= "};

// Writes the program. Each section becomes one method of the main class; helper methods it
// needs are appended to the main class too.
class Generator {
 public:
  Generator(uint64_t seed, std::string out_dir)
      : rng_(seed), out_dir_(std::move(out_dir)), main_name_("DiffTest" + std::to_string(seed)) {}

  bool write();
  const std::string& main_path() const { return main_path_; }

 private:
  // Appends a statement line (indented for a method body).
  void line(std::string& body, const std::string& text) { body += "        " + text + "\n"; }
  std::string fresh(const std::string& stem) { return stem + std::to_string(++counter_); }
  void add_method(const std::string& text) { methods_ += "    " + text + "\n\n"; }
  std::string section_method(const std::string& stem, const std::string& locals, const std::string& body);

  void make_classes();
  std::string class_name(int i) const { return main_name_ + "C" + std::to_string(i); }
  std::string fake_name() const { return main_name_ + "Fake"; }
  bool write_file(const std::string& name, const std::string& text);

  std::string int_section();
  std::string int_loop_section();
  std::string double_section();
  std::string block_section();
  std::string nlr_section();
  std::string poly_section();
  std::string loop_section();
  std::string fallback_section();
  std::string recursion_section();
  std::string array_string_section();

  Rng rng_;
  std::string out_dir_;
  std::string main_name_;
  std::string main_path_;
  std::string methods_;
  int counter_ = 0;
  int num_classes_ = 0;
  std::vector<int> parent_;  // index of the generated superclass, -1 for Object
  std::vector<std::string> class_text_;
};

std::string Generator::section_method(const std::string& stem, const std::string& locals,
                                      const std::string& body) {
  std::string name = fresh(stem);
  std::string decl = locals.empty() ? "" : "        | " + locals + " |\n";
  add_method(name + " = (\n" + decl + "        '-- " + name + "' println.\n" + body + "    )");
  return name;
}

// --- Integers -------------------------------------------------------------------------------

std::string Generator::int_section() {
  std::string body;
  std::vector<std::string> vars = {"a", "b", "c"};
  for (const std::string& v : vars) line(body, v + " := " + int_literal(rng_) + ".");
  int n = static_cast<int>(rng_.range(8, 16));
  for (int i = 0; i < n; i++) {
    int k = static_cast<int>(rng_.range(0, 9));
    if (k < 5) {
      line(body, int_expr(rng_, 3, vars) + " println.");
    } else if (k < 7) {
      line(body,
           "(" + int_expr(rng_, 2, vars) + rng_.pick(kComparisons) + int_expr(rng_, 2, vars) + ") println.");
    } else if (k < 8) {
      line(body, "(" + int_expr(rng_, 2, vars) + " // " + operand(nonzero_int_literal(rng_)) + ") println.");
    } else {
      // Reassign a variable so later expressions see small and big values at the same sites.
      line(body, "(" + rng_.pick(vars) + " := " + int_expr(rng_, 2, vars) + ") println.");
    }
  }
  // A table of boundary values combined pairwise at one set of send sites: each site sees
  // small/small, small/big and big/big operands, with and without overflow.
  int m = static_cast<int>(rng_.range(4, 7));
  line(body, "arr := Array new: " + str(m) + ".");
  for (int i = 1; i <= m; i++) line(body, "arr at: " + str(i) + " put: " + int_literal(rng_) + ".");
  std::vector<std::string> ops = {"(x + y)",  "(x - y)",    "(x * y)",  "(x < y)",          "(x = y)",
                                  "(x >= y)", "(x max: y)", "(x == y)", "((x + y) - y = x)"};
  std::vector<std::string> div_ops = {"(x / y)", "(x % y)", "(x rem: y)", "(x // y)"};
  std::vector<std::string> bit_ops = {"(x & y)", "(x bitXor: y)"};
  std::string stmts;
  int nops = static_cast<int>(rng_.range(3, 6));
  for (int i = 0; i < nops; i++) stmts += rng_.pick(ops) + " println. ";
  if (rng_.chance(70)) stmts += "y = 0 ifFalse: [ " + rng_.pick(div_ops) + " println ]. ";
  if (rng_.chance(50)) stmts += rng_.pick(bit_ops) + " println. ";
  line(body, "arr do: [ :x | arr do: [ :y | " + stmts + "] ].");
  return section_method("integers", "a b c arr", body);
}

// Loops whose variables cross the small/big boundary in both directions.
std::string Generator::int_loop_section() {
  std::string body;
  int64_t d = rng_.range(2, 9);
  line(body, "x := " + str(kSmallMax - d) + ".");
  line(body, "1 to: " + str(d + rng_.range(1, 4)) + " do: [ :i | x := x + 1. x println. (x - " +
                 str(kSmallMax) + ") println ].");
  line(body, "[ x > " + str(kSmallMax - d) + " ] whileTrue: [ x := x - 1 ]. x println.");
  line(body, "x := " + str(kSmallMin + d) + ".");
  line(body, "1 to: " + str(d + rng_.range(1, 4)) + " do: [ :i | x := x - 1. (x + 1) println ].");
  line(body, "x println. (x < " + str(kSmallMin) + ") println.");
  int64_t base = rng_.range(2, 7);
  int64_t steps = rng_.range(25, 70);
  line(body, "x := 1. n := 0.");
  line(body, "[ n < " + str(steps) + " ] whileTrue: [ x := x * " + str(base) +
                 ". n := n + 1. (n % 5) = 0 ifTrue: [ x println ] ].");
  line(body, "x println.");
  line(body, "[ x > 1 ] whileTrue: [ x := x / " + str(base) + ". (x + 1) println ].");
  line(body, "(x = 1) println. (x == 1) println.");
  int64_t start = kSmallMax - rng_.range(0, 12);
  if (rng_.chance(50)) {
    line(body,
         str(start) + " to: " + str(start + rng_.range(2, 8)) + " do: [ :i | i println. (i - 1) println ].");
  } else {
    line(body, str(start) + " to: " + str(start + rng_.range(10, 40)) + " by: " + str(rng_.range(2, 7)) +
                   " do: [ :i | i println ].");
  }
  int64_t low = kSmallMin + rng_.range(0, 6);
  line(body, str(low) + " downTo: " + str(low - rng_.range(1, 6)) + " do: [ :i | i println ].");
  line(body, "x := " + str(kSmallMax - rng_.range(0, 3)) + ". y := x + " + str(rng_.range(1, 9)) + ".");
  line(body, "(y - x) println. (y > x) println. ((y - 1) - x) println. (x - y) println.");
  line(body, "(x * -1) println. (x negated - 1) println. (x negated - 2) abs println.");
  line(body, "((1 << 62) - 1 = x) println. ((x + 1) / 2) println. (y // 2) println.");
  return section_method("intLoops", "x y n", body);
}

// --- Doubles ---------------------------------------------------------------------------------

std::string Generator::double_section() {
  std::string body;
  std::vector<std::string> vars = {"d", "e"};
  line(body, "d := " + double_literal(rng_) + ".");
  line(body, "e := " + int_literal(rng_) + ".");
  int n = static_cast<int>(rng_.range(8, 16));
  for (int i = 0; i < n; i++) {
    int k = static_cast<int>(rng_.range(0, 9));
    if (k < 5) {
      line(body, double_expr(rng_, 3, vars) + " println.");
    } else if (k < 7) {
      line(body, "(" + double_expr(rng_, 2, vars) + rng_.pick(kComparisons) + double_expr(rng_, 2, vars) +
                     ") println.");
    } else if (k < 8) {
      line(body,
           "(" + operand(int_literal(rng_)) + " / " + operand(nonzero_double_literal(rng_)) + ") println.");
    } else {
      line(body, "(" + rng_.pick(vars) + " := " + double_expr(rng_, 2, vars) + ") println.");
    }
  }
  // Mixed operands at the same sites: Double/Double, Double/Integer, Integer/Double.
  int m = static_cast<int>(rng_.range(4, 6));
  line(body, "arr := Array new: " + str(m) + ".");
  for (int i = 1; i <= m; i++) {
    line(body, "arr at: " + str(i) +
                   " put: " + (rng_.chance(65) ? double_literal(rng_) : str(rng_.range(-20, 20))) + ".");
  }
  line(body,
       "arr do: [ :x | arr do: [ :y | (x + y) println. (x * y) println. (x - y) println. "
       "(x < y) println. (x = y) println. (x <= y) println. "
       "y = 0 ifFalse: [ (x // y) println ] ] ].");
  line(body, "s := 0.0. arr do: [ :x | s := s + x ]. s println. (s * 0.1) println.");
  line(body, "s := 0. 1 to: " + str(rng_.range(5, 30)) + " do: [ :i | s := s + (i // " +
                 str(rng_.range(2, 9)) + ") ]. s println.");
  line(body, "1.5 to: " + str(rng_.range(-2, 6)) + "." + str(rng_.range(0, 9)) + " do: [ :x | x println ].");
  return section_method("doubles", "d e arr s", body);
}

// --- Blocks ----------------------------------------------------------------------------------

std::string Generator::block_section() {
  std::string body;
  int n = static_cast<int>(rng_.range(4, 8));
  for (int i = 0; i < n; i++) {
    switch (rng_.range(0, 9)) {
      case 0:
        line(body, "blk := self makeCounter: " + int_literal(rng_) + ".");
        line(body, str(rng_.range(1, 9)) + " timesRepeat: [ blk value ]. blk value println.");
        break;
      case 1:
        line(body, "s := " + int_literal(rng_) + ". blk := [ s := s + " + operand(int_literal(rng_)) +
                       " ]. blk2 := [ :x | s := s * x. s ].");
        line(body, "1 to: " + str(rng_.range(1, 6)) + " do: [ :j | blk value. (blk2 value: " +
                       str(rng_.range(-3, 3)) + ") println ]. s println.");
        break;
      case 2:
        line(body, "s := " + int_literal(rng_) + ".");
        line(body, "(self apply: [ :x :y | (x * y) - s ] to: " + operand(int_literal(rng_)) +
                       " with: " + operand(int_literal(rng_)) + ") println.");
        line(body, "(self apply: [ :x | s := x. x + 1 ] to: " + operand(int_literal(rng_)) +
                       ") println. s println.");
        line(body, "(self apply: [ s + 1 ]) println.");
        break;
      case 3:
        line(body, "blk := self makeAdder: " + operand(int_literal(rng_)) + ".");
        line(body, "(blk value: " + operand(int_literal(rng_)) + ") println.");
        line(body, "((self makeAdder: " + operand(small_int_literal(rng_)) +
                       ") value: (blk value: " + operand(small_int_literal(rng_)) + ")) println.");
        break;
      case 4:
        line(body, "s := 0.");
        line(body, "1 to: " + str(rng_.range(2, 6)) +
                       " do: [ :j | blk := [ :x | [ :y | s := s + x "
                       "+ y + j ] value: x * " +
                       str(rng_.range(1, 5)) + " ]. (blk value: j) println ].");
        line(body, "s println.");
        break;
      case 5: {
        int len = static_cast<int>(rng_.range(2, 7));
        line(body, "arr := Array new: " + str(len) + ".");
        line(body, "1 to: " + str(len) + " do: [ :j | arr at: j put: (self makeAdder: j * " +
                       operand(int_literal(rng_)) + ") ].");
        line(body, "s := " + operand(int_literal(rng_)) +
                       ". arr do: [ :f | s := f value: s. s println ]. s println.");
        break;
      }
      case 6:
        line(body, "t := 0. blk := [ t < " + str(rng_.range(0, 9)) + " ]. blk2 := [ t := t + " +
                       str(rng_.range(1, 3)) + " ].");
        line(body, "(blk whileTrue: blk2) println. t println.");
        line(body, "([ :x | x ] value: " + operand(int_literal(rng_)) + ") println. [] value println.");
        line(body, "([ :x :y | y ] value: 1 with: " + operand(int_literal(rng_)) +
                       ") println. ([ :x | x ] value) class println.");
        break;
      case 7:
        line(body, "s := " + str(rng_.range(0, 5)) + ".");
        line(body, "(self twice: [ s := s * 2 + 1 ]) println. s println.");
        line(body, "t := self invoke: [ s := s - 1. s ] depth: " + str(rng_.range(0, 6)) + ". t println.");
        break;
      case 8:
        // Escaped block: escapedBlock: (overridden in this class) answers a value.
        line(body, "(self escaper value: " + operand(int_literal(rng_)) + ") println.");
        line(body, "(self apply: self escaper to: " + str(rng_.range(0, 9)) + ") println.");
        break;
      default:
        line(body, "blk := [ :x :y | x + y ]. s := 0.");
        line(body, "#(" + str(rng_.range(-9, 9)) + " " + str(rng_.range(-9, 9)) + " " +
                       str(rng_.range(-9, 9)) + ") do: [ :e | s := blk value: s with: e ]. s println.");
        line(body,
             "(#(1 2 3) inject: " + operand(int_literal(rng_)) + " into: [ :acc :e | acc * e ]) println.");
        break;
    }
  }
  return section_method("blocks", "s t blk blk2 arr", body);
}

// --- Non-local returns -----------------------------------------------------------------------

std::string Generator::nlr_section() {
  std::string body;
  int lim = static_cast<int>(rng_.range(0, 12));

  std::string find = fresh("nlrFind");
  add_method(find + ": arr = ( arr do: [ :e | e > " + str(lim) + " ifTrue: [ ^e ] ]. ^#none )");
  line(body, "(self " + find + ": #(1 5 9 13 2)) println.");
  line(body, "(self " + find + ": #(-1 -2)) println.");

  std::string deep = fresh("nlrDeep");
  int depth = static_cast<int>(rng_.range(0, 8));
  add_method(deep + ": x = ( self invoke: [ ^x * " + str(rng_.range(2, 5)) + " ] depth: " + str(depth) +
             ". ^#notReached )");
  line(body, "(self " + deep + ": " + operand(int_literal(rng_)) + ") println.");

  std::string nested = fresh("nlrNested");
  add_method(nested + ": x = ( [ :y | [ :z | z > " + str(lim) +
             " ifTrue: [ ^z ]. y ] value: y + x ] "
             "value: x. ^x negated )");
  for (int i = 0; i < 3; i++) line(body, "(self " + nested + ": " + str(rng_.range(-5, 10)) + ") println.");

  std::string loop = fresh("nlrLoop");
  add_method(loop + " = ( | i | i := 0. [ true ] whileTrue: [ i := i + 1. i > " + str(lim) +
             " ifTrue: [ ^i * 10 ] ] )");
  line(body, "self " + loop + " println.");

  std::string grid = fresh("nlrGrid");
  int target = static_cast<int>(rng_.range(1, 40));
  add_method(grid + " = ( 1 to: 6 do: [ :i | 6 downTo: 1 do: [ :j | (i * j) = " + str(target) +
             " ifTrue: [ ^(i * 100) + j ] ] ]. ^0 )");
  line(body, "self " + grid + " println.");

  // ^ from a block that a real (non-inlined) loop send evaluates, with state changed on the way.
  std::string real = fresh("nlrReal");
  add_method(real + " = ( | blk | total := 0. blk := [ :i | total := total + i. i = " +
             str(rng_.range(1, 9)) + " ifTrue: [ ^total ] ]. 1 to: 10 do: blk. ^#end )");
  line(body, "self " + real + " println. total println.");

  // ^ through a polymorphic visit: send in the generated classes.
  std::string poly = fresh("nlrPoly");
  add_method(poly + ": objs = ( objs do: [ :o | o visit: [ :v | v > " + str(rng_.range(-5, 30)) +
             " ifTrue: [ ^v ]. v ] ]. ^#none )");
  line(body, "arr := Array new: " + str(num_classes_) + ".");
  line(body, "1 to: " + str(num_classes_) + " do: [ :i | arr at: i put: (self make: i) ].");
  line(body, "(self " + poly + ": arr) println.");

  // The same block both returns normally and non-locally, depending on its argument.
  std::string twice = fresh("nlrTwice");
  add_method(twice +
             ": k = ( | blk | blk := [ :x | x > k ifTrue: [ ^x ]. x * 2 ]. "
             "(blk value: 1) println. (blk value: 2) println. (blk value: 100) println. ^#end )");
  line(body, "(self " + twice + ": " + str(rng_.range(0, 4)) + ") println.");
  return section_method("nlr", "arr", body);
}

// --- Polymorphic sends -----------------------------------------------------------------------

// Generated classes C0..C(k-1): each has own fields f<i>a, f<i>b; a class whose superclass is
// Object defines every shared selector, a subclass overrides each with some probability, often
// through super.
void Generator::make_classes() {
  num_classes_ = static_cast<int>(rng_.range(2, 10));
  for (int i = 0; i < num_classes_; i++) {
    int parent = (i == 0 || rng_.chance(30)) ? -1 : static_cast<int>(rng_.range(0, i - 1));
    parent_.push_back(parent);
    bool root = parent < 0;
    std::string fa = "f" + str(i) + "a", fb = "f" + str(i) + "b";
    std::string text = "\"Generated by som_difftest_gen.\"\n" + class_name(i) + " = " +
                       (root ? std::string("Object") : class_name(parent)) + " (\n";
    text += "    | " + fa + " " + fb + " |\n";
    text += "    init = ( " + std::string(root ? "" : "super init. ") + fa + " := " + int_literal(rng_) +
            ". " + fb + " := " + str(rng_.range(-50, 50)) + " )\n";
    text += "    " + fa + " = ( ^" + fa + " )\n";
    text += "    " + fa + ": v = ( " + fa + " := v )\n";
    if (root || rng_.chance(60)) text += "    tag = ( ^#" + class_name(i) + " )\n";
    if (root || rng_.chance(70)) {
      std::string e = "(" + fb + " * x) + " + operand(str(rng_.range(-9, 9)));
      if (!root && rng_.chance(60)) e = "(super compute: x) + " + e;
      text += "    compute: x = ( ^" + e + " )\n";
    }
    if (root || rng_.chance(50)) {
      std::string upd = fb + " := " + fb + " + x. " + fa + " := " + fa + (rng_.chance(50) ? " + " : " - ") +
                        "(x * " + str(rng_.range(1, 1000)) + ")";
      if (!root && rng_.chance(50)) upd = "super update: x. " + upd;
      text += "    update: x = ( " + upd + " )\n";
    }
    if (root || rng_.chance(50)) text += "    value1 = ( ^" + fa + " )\n";
    if (root || rng_.chance(40)) text += "    value1: v = ( " + fa + " := v )\n";
    if (root || rng_.chance(50))
      text += "    describe = ( ^'" + class_name(i) + "(' + " + fa + " + ',' + " + fb + " + ')' )\n";
    if (root || rng_.chance(40)) {
      std::string v = root ? "self compute: 1" : "(super visit: blk) + 1";
      text += "    visit: blk = ( ^blk value: (" + v + ") )\n";
    }
    if (root)
      text += "    depth = ( ^0 )\n";
    else if (rng_.chance(70))
      text += "    depth = ( ^super depth + 1 )\n";
    text += ")\n";
    class_text_.push_back(text);
  }
  // make: i answers a fresh, initialized instance of class C(i-1).
  std::string make = "make: i = (\n";
  for (int i = 0; i < num_classes_; i++)
    make += "        i = " + str(i + 1) + " ifTrue: [ ^" + class_name(i) + " new init ].\n";
  make += "        ^nil )";
  add_method(make);
}

std::string Generator::poly_section() {
  std::string body;
  // How many classes the sites see: 1 (monomorphic), 2..4 (polymorphic) or all (megamorphic).
  int width;
  switch (rng_.range(0, 2)) {
    case 0:
      width = 1;
      break;
    case 1:
      width = static_cast<int>(rng_.range(2, 4 < num_classes_ ? 4 : num_classes_));
      break;
    default:
      width = num_classes_;
      break;
  }
  // `width` distinct classes (1-based for make:), each of them at least once in objs.
  std::vector<int> classes;
  for (int i = 1; i <= num_classes_; i++) classes.push_back(i);
  for (size_t i = classes.size() - 1; i > 0; i--)
    std::swap(classes[i], classes[static_cast<size_t>(rng_.range(0, static_cast<int64_t>(i)))]);
  classes.resize(static_cast<size_t>(width));
  int m = width + static_cast<int>(rng_.range(1, 6));
  line(body, "objs := Array new: " + str(m) + ".");
  for (int i = 1; i <= m; i++) {
    int cls = i <= width ? classes[static_cast<size_t>(i - 1)] : rng_.pick(classes);
    line(body, "objs at: " + str(i) + " put: (self make: " + str(cls) + ").");
  }
  int rounds = static_cast<int>(rng_.range(2, 5));
  std::vector<std::string> sends = {"(o compute: r) println.",
                                    "o update: r.",
                                    "o value1 println.",
                                    "o tag println.",
                                    "o describe println.",
                                    "o depth println.",
                                    "(o visit: [ :v | v - r ]) println.",
                                    "o value1: (o value1 + r). o value1 println.",
                                    "(o compute: o value1) println."};
  std::string stmts;
  int nsends = static_cast<int>(rng_.range(3, 7));
  for (int i = 0; i < nsends; i++) stmts += rng_.pick(sends) + " ";
  line(body, "1 to: " + str(rounds) + " do: [ :r | objs do: [ :o | " + stmts + "] ].");
  line(body, "sum := 0. objs do: [ :o | sum := sum + (o compute: 2) ]. sum println.");
  line(body, "objs do: [ :o | o describe println ].");
  std::string f = "f" + str(classes[0] - 1) + "a";
  line(body, "o := self make: " + str(classes[0]) + ". o " + f + ": " + int_literal(rng_) + ". o " + f +
                 " println. o value1 println.");
  return section_method("poly", "objs sum o", body);
}

// --- Loops and inlined control structures -----------------------------------------------------

std::string Generator::loop_section() {
  std::string body;
  int n = static_cast<int>(rng_.range(4, 9));
  for (int i = 0; i < n; i++) {
    int64_t a = rng_.range(-5, 5), b = rng_.range(-3, 12);
    switch (rng_.range(0, 11)) {
      case 0:
        line(body, "i := " + str(a) + ". s := 0. [ i < " + str(b) +
                       " ] whileTrue: [ s := s + (i * i). i := i + 1 ]. s println. i println.");
        break;
      case 1:
        line(body, "i := " + str(b) + ". s := 1. [ i <= " + str(a) +
                       " ] whileFalse: [ s := s * 3. i := i - 1 ]. s println. i println.");
        break;
      case 2:
        line(body, "s := 0. (" + operand(str(a)) + " to: " + operand(str(b)) +
                       " do: [ :k | s := s + k. k println ]) println. s println.");
        break;
      case 3:
        line(body, "s := 0. (" + operand(str(b)) + " downTo: " + operand(str(a)) +
                       " do: [ :k | s := s - k ]) println. s println.");
        break;
      case 4:
        line(body, "s := " + str(a) + ". (" + str(rng_.range(0, 6)) +
                       " timesRepeat: [ s := s * -2 ]) println. s println.");
        break;
      case 5:
        line(body, operand(str(a)) + " to: " + operand(str(b + 10)) + " by: " + str(rng_.range(1, 4)) +
                       " do: [ :k | k println ].");
        line(body, operand(str(b + 10)) + " downTo: " + operand(str(a)) + " by: " + str(rng_.range(1, 4)) +
                       " do: [ :k | k println ].");
        break;
      case 6:
        line(body, "1 to: " + str(rng_.range(2, 5)) +
                       ".5 do: [ :k | k println ]. 4 downTo: " + "1.5 do: [ :k | k println ].");
        break;
      case 7:
        // Real sends of the loop selectors: the block is a variable, not a literal.
        line(body, "s := 0. blk := [ :k | s := s + k ]. 1 to: " + str(b) + " do: blk. s println.");
        line(body, "s := 0. " + str(a + 5) + " timesRepeat: [ s := s + 1 ]. (" + str(b) +
                       " downTo: 1 do: blk) println. s println.");
        break;
      case 8:
        line(body, "c := " + str(a) + " < " + str(b) + ".");
        line(body,
             "(c ifTrue: [ #yes ] ifFalse: [ #no ]) println. (c ifTrue: 1 ifFalse: 2) "
             "println. (c ifFalse: [ 3 ]) println. (c not ifTrue: [ 4 ]) println.");
        line(body, "(c and: [ " + str(a) +
                       " > 0 ]) println. (c or: [ 7 ]) println. (c and: "
                       "c not) println. (c or: false) println. (c && [ true ]) println. (c || "
                       "[ false ]) println.");
        break;
      case 9:
        line(body, "r := " + std::string(rng_.chance(50) ? "nil" : int_literal(rng_)) + ".");
        line(body,
             "(r ifNil: [ #isNil ] ifNotNil: [ r + 1 ]) println. (r ifNil: [ 0 ]) println. "
             "(r ifNotNil: [ #notNil ]) println. (r ifNotNil: [ 1 ] ifNil: [ 2 ]) println.");
        line(body, "r isNil println. (r ifNil: 5) println.");
        break;
      case 10:
        // Nested inlined loops with conditionals and a result that uses every iteration.
        line(body, "s := 0. 1 to: " + str(rng_.range(2, 6)) +
                       " do: [ :x | | t | t := x. 1 to: " + str(rng_.range(2, 6)) +
                       " do: [ :y | ((x + y) % 2) = 0 ifTrue: [ t := t * "
                       "y ] ifFalse: [ t := t - y ] ]. s := s + t ]. s println.");
        break;
      default:
        line(body, "i := 0. s := 0. [ i := i + 1. i <= " + str(b) +
                       " ] whileTrue: [ (i % 3) = 0 ifTrue: [ s := s + i ] ]. s println.");
        line(body, "i := 10. [ (i := i - 1) > " + str(a) + " ] whileTrue: [ ]. i println.");
        break;
    }
  }
  return section_method("loops", "i s c r blk", body);
}

// Inlined control structures whose receiver is not a Boolean / number / nil: the fallback
// sends reach the Fake class, which evaluates the blocks it gets.
std::string Generator::fallback_section() {
  std::string body;
  int k = static_cast<int>(rng_.range(1, 9));
  line(body, "f := " + fake_name() + " new. x := " + str(k) + ".");
  line(body, "(f ifTrue: [ x := x + 1. x * 10 ]) println. x println.");
  line(body, "(f ifFalse: [ x := x * 2 ]) println. x println.");
  line(body, "(f ifTrue: [ 1 ] ifFalse: [ x ]) println.");
  line(body, "(f and: [ x > " + str(rng_.range(0, 20)) + " ]) println. (f or: [ x ]) println.");
  line(body, "(f to: " + str(rng_.range(0, 5)) + " do: [ :i | x := x + i ]) println. x println.");
  line(body, "(f timesRepeat: [ x := x - 1 ]) println. x println.");
  line(body, "(f ifNil: [ #nil ] ifNotNil: [ x ]) println.");
  std::string early = fresh("fallbackEarly");
  add_method(early + ": f = ( f ifTrue: [ ^#early ]. ^#late )");
  line(body, "(self " + early + ": f) println.");
  std::string loop = fresh("fallbackLoop");
  add_method(loop + ": f = ( | n | n := 0. 1 to: 3 do: [ :i | f ifTrue: [ n := n + i ] ]. ^n )");
  line(body, "(self " + loop + ": f) println.");
  return section_method("fallback", "f x", body);
}

// --- Recursion, Arrays and Strings ---------------------------------------------------------

std::string Generator::recursion_section() {
  std::string body;
  line(body, "(self fib: " + str(rng_.range(5, 17)) + ") println.");
  line(body,
       "(self sumTo: " + str(rng_.range(10, 1500)) + " acc: " + operand(int_literal(rng_)) + ") println.");
  line(body, "(self ack: " + str(rng_.range(0, 2)) + " with: " + str(rng_.range(0, 5)) + ") println.");
  line(body, "(self fact: " + str(rng_.range(15, 30)) + ") println.");
  return section_method("recursion", "", body);
}

std::string Generator::array_string_section() {
  std::string body;
  int len = static_cast<int>(rng_.range(0, 8));
  line(body, "arr := Array new: " + str(len) + ". arr length println.");
  line(body, "1 to: arr length do: [ :i | arr at: i put: i * " + operand(int_literal(rng_)) + " ].");
  line(body, "arr do: [ :e | e println ].");
  if (len > 0) line(body, "(arr at: " + str(rng_.range(1, len)) + ") println.");
  line(body, "(arr inject: 0 into: [ :acc :e | acc + e ]) println.");
  line(body, "(arr collect: [ :e | e // 2 ]) do: [ :e | e println ].");
  line(body, "s := ''. arr do: [ :e | s := s + e + ',' ]. s println. s length println.");
  line(body, "s := '" + std::string(rng_.chance(50) ? "abc" : "hello world") + "' + " +
                 operand(int_literal(rng_)) + " + " + operand(double_literal(rng_)) + ".");
  line(body, "s println. s length println. (s = s asSymbol) println. s asSymbol println.");
  line(body, "(s concatenate: #sym) println. ('x' + nil + true + #foo) println.");
  line(body, "(s indexOf: 'l') println. (s substringFrom: 1 to: 2) println.");
  line(body, "('ab' = 'ab') println. ('ab' = #ab) println. ('ab' == #ab) println.");
  line(body, "#(1 'two' #three 4.5 #(6 7)) do: [ :e | e println ].");
  line(body, "(Array with: 1 with: " + operand(int_literal(rng_)) +
                 " with: 'x') do: [ :e | e println ]. (arr = arr) println.");
  return section_method("arrays", "arr s", body);
}

bool Generator::write_file(const std::string& name, const std::string& text) {
  std::string path = out_dir_ + "/" + name + ".som";
  FILE* f = std::fopen(path.c_str(), "w");
  if (f == nullptr) {
    std::fprintf(stderr, "som_difftest_gen: cannot write %s: %s\n", path.c_str(), std::strerror(errno));
    return false;
  }
  bool ok = std::fwrite(text.data(), 1, text.size(), f) == text.size();
  ok = (std::fclose(f) == 0) && ok;
  if (!ok) std::fprintf(stderr, "som_difftest_gen: error writing %s\n", path.c_str());
  return ok;
}

bool Generator::write() {
  make_classes();

  // Fixed helpers used by the sections.
  add_method("apply: blk = ( ^blk value )");
  add_method("apply: blk to: x = ( ^blk value: x )");
  add_method("apply: blk to: x with: y = ( ^blk value: x with: y )");
  add_method("twice: blk = ( blk value. ^blk value )");
  add_method("invoke: blk depth: n = ( n = 0 ifTrue: [ ^blk value ]. ^self invoke: blk depth: n - 1 )");
  add_method("makeCounter: start = ( | c | c := start. ^[ c := c + 1. c ] )");
  add_method("makeAdder: k = ( ^[ :x | x + k ] )");
  add_method("escaper = ( ^[ :x | ^x ] )");
  add_method("escapedBlock: b = ( 'escaped' println. ^#escapedResult )");
  add_method("fib: n = ( n < 2 ifTrue: [ ^n ]. ^(self fib: n - 1) + (self fib: n - 2) )");
  add_method("sumTo: n acc: a = ( n = 0 ifTrue: [ ^a ]. ^self sumTo: n - 1 acc: a + n )");
  add_method(
      "ack: m with: n = ( m = 0 ifTrue: [ ^n + 1 ]. n = 0 ifTrue: [ ^self ack: m - 1 with: 1 ]. "
      "^self ack: m - 1 with: (self ack: m with: n - 1) )");
  add_method("fact: n = ( n <= 1 ifTrue: [ ^1 ]. ^n * (self fact: n - 1) )");

  // Every kind of section once, then a few more at random, in random order.
  using SectionFn = std::string (Generator::*)();
  std::vector<SectionFn> kinds = {&Generator::int_section,       &Generator::int_loop_section,
                                  &Generator::double_section,    &Generator::block_section,
                                  &Generator::nlr_section,       &Generator::poly_section,
                                  &Generator::loop_section,      &Generator::fallback_section,
                                  &Generator::recursion_section, &Generator::array_string_section};
  std::vector<SectionFn> plan = kinds;
  int extra = static_cast<int>(rng_.range(1, 4));
  for (int i = 0; i < extra; i++) plan.push_back(rng_.pick(kinds));
  for (size_t i = plan.size() - 1; i > 0; i--) {
    size_t j = static_cast<size_t>(rng_.range(0, static_cast<int64_t>(i)));
    std::swap(plan[i], plan[j]);
  }
  std::string run = "run = (\n";
  for (SectionFn fn : plan) run += "        self " + (this->*fn)() + ".\n";
  run += "        'done' println )";

  std::string main = "\"Generated by som_difftest_gen. The same seed always gives this program.\"\n" +
                     main_name_ + " = (\n    | total |\n\n    " + run + "\n\n" + methods_ + ")\n";
  main_path_ = out_dir_ + "/" + main_name_ + ".som";
  if (!write_file(main_name_, main)) return false;
  for (int i = 0; i < num_classes_; i++)
    if (!write_file(class_name(i), class_text_[static_cast<size_t>(i)])) return false;

  // The fallback receiver: implements the inlined selectors by evaluating its arguments.
  std::string fake = "\"Generated by som_difftest_gen: receiver for fallback sends.\"\n" + fake_name() +
                     " = (\n"
                     "    ifTrue: b = ( ^b value )\n"
                     "    ifFalse: b = ( ^#ifFalse )\n"
                     "    ifTrue: a ifFalse: b = ( ^a value + b value )\n"
                     "    and: b = ( ^b value )\n"
                     "    or: b = ( ^b )\n"
                     "    to: lim do: b = ( b value: lim. b value: lim + 1. ^#toDo )\n"
                     "    timesRepeat: b = ( b value. b value. b value )\n"
                     "    ifNil: a ifNotNil: b = ( ^b value * 1000 )\n"
                     "    asString = ( ^'a Fake' )\n"
                     ")\n";
  return write_file(fake_name(), fake);
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 3) {
    std::fprintf(stderr, "usage: som_difftest_gen <seed> <out_dir>\n");
    return 2;
  }
  errno = 0;
  char* end = nullptr;
  unsigned long long seed = std::strtoull(argv[1], &end, 10);
  if (errno != 0 || end == argv[1] || *end != '\0' || argv[1][0] == '-') {
    std::fprintf(stderr, "som_difftest_gen: bad seed '%s' (want a decimal number)\n", argv[1]);
    return 2;
  }
  Generator gen(seed, argv[2]);
  if (!gen.write()) return 1;
  std::printf("%s\n", gen.main_path().c_str());
  return 0;
}
