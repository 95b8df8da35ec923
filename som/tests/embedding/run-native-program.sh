#!/usr/bin/env bash
# Runs som/tests/embedding/<Name>.som with the test natives loaded and compares its stdout with
# <Name>.expected exactly; the exit status must be 0.
#   run-native-program.sh <som> <natives.so> <source-root> <Name> [som flags...]
set -uo pipefail
som=${1:?som}; natives=${2:?natives}; root=${3:?root}; name=${4:?name}; shift 4
dir=som/tests/embedding
cd "$root" || exit 2
out=$(mktemp); err=$(mktemp)
trap 'rm -f "$out" "$err"' EXIT
timeout 100 "$som" "$@" --native "$natives" -cp som/core-lib:$dir "$dir/$name.som" >"$out" 2>"$err"
status=$?
fail=0
[[ $status -eq 0 ]] || { echo "FAIL $name: exit status $status"; fail=1; }
cmp -s "$out" "$dir/$name.expected" || { echo "FAIL $name: stdout differs:"; diff "$dir/$name.expected" "$out" | head -40; fail=1; }
if [[ $fail -ne 0 ]]; then echo "--- stderr:"; head -30 "$err"; exit 1; fi
echo "ok $name $*"
