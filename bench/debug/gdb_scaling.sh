#!/bin/sh
# bench/debug/gdb_scaling.sh — how long gdb takes to load N JIT functions, batched vs one ELF
# object per function. Prints one line per run (times measured inside the debugged program,
# which is stopped while gdb loads each object).
#
# Usage: [OWN_MAX=n] bench/debug/gdb_scaling.sh [build-dir] [sizes...]
#        (default sizes: 1000 2000 4000 16000 64000)
# Needs gdb (Debian package gdb).
set -eu
build=${1:-build}
shift || true
sizes=${*:-1000 2000 4000 16000 64000}
prog="$build/bench/bin/debug_gdb_scaling_program"
command -v gdb >/dev/null || { echo "gdb is not installed: apt-get install gdb" >&2; exit 1; }
[ -x "$prog" ] || { echo "$prog not built: cmake --build $build --target debug_gdb_scaling_program" >&2; exit 1; }
# For each N: one object per function (what makes gdb quadratic; only up to OWN_MAX functions,
# default 4000: 16000 took gdb over 5 CPU minutes and 1.5 GB before we stopped it), one function
# at a time but merged (Grouping::kMerge, the default), and one batch of N.
own_max=${OWN_MAX:-4000}
for n in $sizes; do
  runs="1:merge $n:own"
  [ "$n" -le "$own_max" ] && runs="1:own $runs"
  for run in $runs; do
    set -- $(echo "$run" | tr ':' ' ')
    env -u DEBUGINFOD_URLS gdb -batch -nx -ex run --args "$prog" "$n" "$1" "$2" 2>&1 | grep '^N='
  done
done
