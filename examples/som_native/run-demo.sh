#!/usr/bin/env bash
# Runs SortDemo.som with the sort native and checks it exactly (ctest example.som_native.*):
#   run-demo.sh <som-binary> <libsort_native.so> <source-root> <som options...>
# runs, from <source-root>,
#   som <options> --native <lib> -cp som/core-lib:examples/som_native examples/som_native/SortDemo.som
# and checks that stdout equals SortDemo.expected, stderr equals SortDemo.stderr (the error
# the demo ends with, and its SOM stack trace), and the exit status is 1 (that error).
set -uo pipefail
som=${1:?som binary}; lib=${2:?native library}; root=${3:?source root}; shift 3
dir=examples/som_native
cd "$root" || exit 2
out=$(mktemp); err=$(mktemp)
trap 'rm -f "$out" "$err"' EXIT
timeout 60 "$som" "$@" --native "$lib" -cp som/core-lib:$dir $dir/SortDemo.som >"$out" 2>"$err"
status=$?
fail=0
if [[ $status -ne 1 ]]; then
  echo "FAIL: exit status $status, expected 1"; fail=1
fi
if ! cmp -s "$out" $dir/SortDemo.expected; then
  echo "FAIL: stdout differs from $dir/SortDemo.expected:"; diff $dir/SortDemo.expected "$out"; fail=1
fi
if ! cmp -s "$err" $dir/SortDemo.stderr; then
  echo "FAIL: stderr differs from $dir/SortDemo.stderr:"; diff $dir/SortDemo.stderr "$err"; fail=1
fi
[[ $fail -eq 0 ]] && echo "ok SortDemo $*"
exit $fail
