#!/usr/bin/env bash
# Builds the SOM parser fuzzer with clang's libFuzzer + AddressSanitizer in its own directory
# and runs it for a bounded time. Fails on any crash, sanitizer report or build failure.
#   run-fuzzer.sh <clang++> <som-source-dir> <build-dir>
# SOM_FUZZ_SECONDS (default 60) sets the run time.
set -euo pipefail
cxx=${1:?clang++}; src=${2:?som dir}; out=${3:?build dir}
seconds=${SOM_FUZZ_SECONDS:-60}
mkdir -p "$out/corpus"
"$cxx" -std=c++20 -O1 -g -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined \
  -I"$src/src" "$src/tests/fuzz/parser_fuzzer.cpp" "$src/src/parser.cpp" -o "$out/som_parser_fuzzer"
# Seed corpus: the core library and the test classes (copied so the fuzzer may add files).
for f in "$src"/core-lib/*.som "$src"/tests/som/*.som "$src"/tests/programs/*.som; do
  [[ -f "$f" ]] && cp -n "$f" "$out/corpus/" 2>/dev/null || true
done
cd "$out"
exec ./som_parser_fuzzer -max_total_time="$seconds" -max_len=8192 -timeout=10 \
  -rss_limit_mb=2048 -print_final_stats=1 corpus
