#!/usr/bin/env bash
# Builds the SOM fuzzers with clang's libFuzzer + AddressSanitizer/UBSan in their own directory
# and runs each for a bounded time. Fails on any crash, sanitizer report or build failure.
#   run-fuzzer.sh <clang++> <som-source-dir> <build-dir> <jitkit static libraries...>
# SOM_FUZZ_SECONDS (default 60) is the total run time, split between the two fuzzers:
#   som_parser_fuzzer    lexer + parser alone
#   som_compiler_fuzzer  parser + bytecode compiler + disassembler + JIT (on a booted VM)
set -euo pipefail
cxx=${1:?clang++}; src=${2:?som dir}; out=${3:?build dir}; shift 3
libs=("$@")
command -v "$cxx" >/dev/null || {
  echo "run-fuzzer: $cxx not found: install the Debian packages clang-14 libclang-rt-14-dev" >&2; exit 1; }
seconds=${SOM_FUZZ_SECONDS:-60}
half=$(( (seconds + 1) / 2 ))
flags=(-std=c++20 -O1 -g -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined
       -I"$src/src" -I"$src/../include")
mkdir -p "$out/corpus"
"$cxx" "${flags[@]}" "$src/tests/fuzz/parser_fuzzer.cpp" "$src/src/parser.cpp" \
  -o "$out/som_parser_fuzzer"
vm_sources=(parser compiler bytecode heap vm interpreter numbers primitives native_methods api/vm jit/compile_thread jit/jit
            jit/method_compiler jit/runtime)
"$cxx" "${flags[@]}" -Wno-gnu-label-as-value -DSOM_CORE_LIB_DIR="\"$src/core-lib\"" \
  "$src/tests/fuzz/compiler_fuzzer.cpp" $(printf "$src/src/%s.cpp " "${vm_sources[@]}") \
  -Wl,--start-group "${libs[@]}" -Wl,--end-group -lZydis -lZycore -lgmp -lpthread -ldl \
  -o "$out/som_compiler_fuzzer" 2>&1 | sed 's/^/  /'
for f in "$out"/som_compiler_fuzzer; do [[ -x "$f" ]] || { echo "build of $f failed" >&2; exit 1; }; done
# Starting corpus: the core library and the test classes (copied so the fuzzer may add files).
for f in "$src"/core-lib/*.som "$src"/tests/som/*.som "$src"/tests/programs/*.som; do
  [[ -f "$f" ]] && cp -n "$f" "$out/corpus/" 2>/dev/null || true
done
cd "$out"
common=(-max_len=8192 -timeout=10 -rss_limit_mb=2048 -print_final_stats=1)
./som_parser_fuzzer -max_total_time="$half" "${common[@]}" corpus
JITKIT_GDB_JIT=0 ASAN_OPTIONS=detect_leaks=0 ./som_compiler_fuzzer -max_total_time="$half" "${common[@]}" corpus
