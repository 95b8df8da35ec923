#!/usr/bin/env bash
# Runs one conformance test of a standard SOM checkout (the SOM-st/SOM repository layout:
# Smalltalk/, TestSuite/, IntegrationTests/Tests/) against our VM, with either core library.
#   run-std-test.sh <som-binary> <std-dir> <core-lib> testsuite
#   run-std-test.sh <som-binary> <std-dir> <core-lib> integration <Name>
# <core-lib> is `std` (the checkout's Smalltalk/) or the path of another core library (ours:
# som/core-lib). Exit status 77 (ctest's SKIP_RETURN_CODE) when <std-dir> is empty or is not a
# standard SOM checkout, so an unconfigured machine reports the tests as skipped, not passed.
#
# testsuite: `som -cp <core-lib>:TestSuite TestSuite/TestHarness.som`; passes when the VM
# exits 0 and the harness reports as many successful tests as tests.
# integration: IntegrationTests/Tests/<Name>.som. Its header comment states the expectations:
#   "
#   VM:
#     status: success | error | <exit status>
#     custom_classpath: <path>      (optional; `./core-lib/Smalltalk` names the core library)
#     stdout: <one line>            (or `stdout:` followed by indented lines)
#     stderr: ...                   (not checked: each VM words its own stack traces)
#   "
# The program runs from a scratch folder in which `core-lib` is the checkout, as the tests'
# own file names assume. `success` is exit status 0, `error` any non-zero status. stdout must
# consist of the expected lines in order (leading and trailing blanks and empty lines ignored);
# an expected line `...` stands for any number of lines, and a line ending in `...` matches any
# line that starts with the rest. Lines compare without regard to case unless the header says
# `case_sensitive: true` (so `inf...` accepts both `inf` and `Infinity`).
set -uo pipefail
som=${1:?som binary}; std=${2-}; corelib=${3:?core library}; kind=${4:?testsuite|integration}
name=${5-}

if [[ -z "$std" || ! -d "$std/Smalltalk" || ! -d "$std/TestSuite" ]]; then
  echo "SKIP: SOM_STD_DIR does not name a standard SOM checkout (got '${std}')"
  exit 77
fi
std=$(cd "$std" && pwd)
som=$(cd "$(dirname "$som")" && pwd)/$(basename "$som")
if [[ "$corelib" == std ]]; then
  corelib=$std/Smalltalk
else
  corelib=$(cd "$corelib" && pwd)
fi
timeout_s=${SOM_STD_TIMEOUT:-120}

if [[ "$kind" == testsuite ]]; then
  cd "$std" || exit 2
  out=$(timeout "$timeout_s" "$som" ${SOM_FLAGS:-} -cp "$corelib:TestSuite" TestSuite/TestHarness.som 2>&1)
  status=$?
  printf '%s\n' "$out" | tail -25
  if [[ $status -ne 0 ]]; then echo "FAIL: TestHarness exit status $status"; exit 1; fi
  total=$(printf '%s\n' "$out" | sed -n 's/^Total number of tests: *//p')
  passed=$(printf '%s\n' "$out" | sed -n 's/^Number of successful tests: *//p')
  if [[ -z "$total" || "$total" != "$passed" ]]; then
    echo "FAIL: ${passed:-?} of ${total:-?} tests passed"; exit 1
  fi
  echo "ok: $passed/$total tests passed"
  exit 0
fi

[[ "$kind" == integration && -n "$name" ]] || { echo "usage: see the header of $0"; exit 2; }
file=$std/IntegrationTests/Tests/$name.som
[[ -f "$file" ]] || { echo "FAIL: no test $file"; exit 1; }

# The header: the lines between the opening `"` and the next line starting with `"`.
header=$(awk 'NR == 1 { next } /^"/ { exit } { print }' "$file")
field() { # field <name>: the value written on the key's own line
  printf '%s\n' "$header" | sed -n "s/^[[:space:]]*$1:[[:space:]]*//p" | head -1
}
want_status=$(field status)
classpath=$(field custom_classpath)
inline_stdout=$(field stdout)
want_stdout=$(printf '%s\n' "$header" | awk '
  /^[[:space:]]*[a-z_]+:/ { key = $1; sub(/:.*/, "", key); next }
  key == "stdout" { print }')
[[ -n "$inline_stdout" ]] && want_stdout=$inline_stdout

scratch=$(mktemp -d)
trap 'rm -rf "$scratch"' EXIT
ln -s "$std" "$scratch/core-lib"
if [[ -n "$classpath" ]]; then
  classpath=${classpath//.\/core-lib\/Smalltalk/$corelib}
else
  classpath=$corelib
fi
cd "$scratch" || exit 2
timeout "$timeout_s" "$som" ${SOM_FLAGS:-} -cp "$classpath" "core-lib/IntegrationTests/Tests/$name.som" \
  >"$scratch/stdout" 2>"$scratch/stderr"
status=$?

fail=0
case "$want_status" in
  success) [[ $status -eq 0 ]] || { echo "FAIL $name: exit status $status, expected 0"; fail=1; } ;;
  error) [[ $status -ne 0 && $status -lt 124 ]] || {
      echo "FAIL $name: exit status $status, expected an error exit"; fail=1; } ;;
  *) [[ $status -eq $want_status ]] || {
      echo "FAIL $name: exit status $status, expected $want_status"; fail=1; } ;;
esac

# stdout against the expected lines, `...` matching any run of lines (backtracking match).
sensitive=0
[[ "$(field case_sensitive | tr A-Z a-z)" == true ]] && sensitive=1
if ! awk -v want="$want_stdout" -v sensitive=$sensitive '
  function trim(s) { gsub(/^[[:space:]]+|[[:space:]]+$/, "", s); return s }
  function match_from(i, j,   k) {
    if (i > nw) return j > ng
    if (w[i] == "...") {
      for (k = j; k <= ng + 1; k++) if (match_from(i + 1, k)) return 1
      return 0
    }
    return j <= ng && line_matches(g[j], w[i]) && match_from(i + 1, j + 1)
  }
  function line_matches(got, want,   n) {
    if (!sensitive) { got = tolower(got); want = tolower(want) }
    if (got == want) return 1
    n = length(want)
    return n > 3 && substr(want, n - 2) == "..." && substr(got, 1, n - 3) == substr(want, 1, n - 3)
  }
  { t = trim($0); if (t != "") g[++ng] = t }
  END {
    n = split(want, raw, "\n")
    for (i = 1; i <= n; i++) { t = trim(raw[i]); if (t != "") w[++nw] = t }
    exit match_from(1, 1) ? 0 : 1
  }' "$scratch/stdout"; then
  echo "FAIL $name: stdout does not match the expected lines"
  echo "--- expected:"; printf '%s\n' "$want_stdout"
  echo "--- got:"; head -40 "$scratch/stdout"
  fail=1
fi
if [[ $fail -ne 0 ]]; then
  echo "--- stderr:"; head -20 "$scratch/stderr"
  exit 1
fi
echo "ok $name"
