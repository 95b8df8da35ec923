#!/bin/sh
# bench/debug/gdb_scaling.sh — how long gdb takes to load N JIT functions, batched vs one ELF
# object per function. Prints one line per run (times measured inside the debugged program,
# which is stopped while gdb loads each object).
#
# Usage: bench/debug/gdb_scaling.sh [build-dir] [sizes...]   (default sizes: 500 1000 2000 4000)
# Needs gdb (Debian package gdb).
set -eu
build=${1:-build}
shift || true
sizes=${*:-500 1000 2000 4000}
prog="$build/bench/bin/debug_gdb_scaling_program"
command -v gdb >/dev/null || { echo "gdb is not installed: apt-get install gdb" >&2; exit 1; }
[ -x "$prog" ] || { echo "$prog not built: cmake --build $build --target debug_gdb_scaling_program" >&2; exit 1; }
# For each N: one object per function (what makes gdb quadratic), one function at a time but
# merged (Grouping::kMerge, the default), and one batch of N.
for n in $sizes; do
  for run in "1 own" "1 merge" "$n own"; do
    set -- $run
    env -u DEBUGINFOD_URLS gdb -batch -nx -ex run --args "$prog" "$n" "$1" "$2" 2>&1 | grep '^N='
  done
done
