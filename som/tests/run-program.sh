#!/usr/bin/env bash
# Runs one SOM test program and checks it against its expectations.
#   run-program.sh <som-binary> <source-root> <Name>
# som/tests/programs/<Name>.som runs as
#   som -cp som/core-lib:som/tests/programs som/tests/programs/<Name>.som
# from <source-root>. Checks: stdout equals <Name>.expected exactly; the exit status equals
# <Name>.exitcode (default 0); stderr contains <Name>.stderr (if that file exists).
# SOM_FLAGS (optional): extra som options, e.g. --jit=always.
set -uo pipefail
som=${1:?som binary}; root=${2:?source root}; name=${3:?program name}
dir=som/tests/programs
cd "$root" || exit 2
out=$(mktemp); err=$(mktemp)
trap 'rm -f "$out" "$err"' EXIT
timeout "${SOM_PROGRAM_TIMEOUT:-60}" "$som" ${SOM_FLAGS:-} -cp som/core-lib:$dir "$dir/$name.som" >"$out" 2>"$err"
status=$?
want_status=0
[[ -f "$dir/$name.exitcode" ]] && want_status=$(tr -d ' \n' <"$dir/$name.exitcode")
fail=0
if [[ "$status" != "$want_status" ]]; then
  echo "FAIL $name: exit status $status, expected $want_status"; fail=1
fi
if ! cmp -s "$out" "$dir/$name.expected"; then
  echo "FAIL $name: stdout differs from $dir/$name.expected:"
  diff "$dir/$name.expected" "$out" | head -40; fail=1
fi
if [[ -f "$dir/$name.stderr" ]]; then
  want_err=$(cat "$dir/$name.stderr")
  want_err=${want_err%$'\n'}
  if ! grep -qF -- "$want_err" "$err"; then
    echo "FAIL $name: stderr does not contain: $want_err"; fail=1
  fi
fi
if [[ $fail -ne 0 ]]; then
  echo "--- stderr:"; head -30 "$err"
  exit 1
fi
echo "ok $name"
