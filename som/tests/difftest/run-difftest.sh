#!/usr/bin/env bash
# Differential test of the SOM VM's execution modes.
#   run-difftest.sh <som-binary> <source-root> <som_difftest_gen> [<part>/<parts>]
# For every seed, som_difftest_gen writes a program into a scratch folder; the program runs as
#   som <flags> -cp <source-root>/som/core-lib <dir>/DiffTest<seed>.som
# once with flag set A and once with each other flag set, and stdout and the exit status must be
# byte-for-byte equal (the programs are deterministic and exit 0, so a non-zero status fails too).
#
# Seeds: SOM_DIFFTEST_FIRST_SEED (default 1) and SOM_DIFFTEST_SEEDS (default 800) name the
# range; with <part>/<parts> this run takes the part-th of <parts> contiguous slices of it (ctest
# runs the slices in parallel).
# Flag sets (words separated by spaces): SOM_DIFFTEST_FLAGS_A (default --jit=off),
# SOM_DIFFTEST_FLAGS_B (default --jit=always), and SOM_DIFFTEST_FLAGS_EXTRA: more sets,
# separated by ';', each compared with A. An empty set is allowed (`SOM_DIFFTEST_FLAGS_A=`).
# A failing program is kept in SOM_DIFFTEST_KEEP_DIR (default ${TMPDIR:-/tmp}/som-difftest-
# failures)/seed-<seed>, which the report names; rerun it with the som command printed there.
# Exit status: 0 all equal, 1 a difference or a failing run, 2 bad usage or setup (also when
# som does not start or rejects a flag: checked first with a probe program).
set -uo pipefail
som=${1:?usage: run-difftest.sh <som> <source-root> <generator> [part/parts]}
root=${2:?source root}
gen=${3:?generator binary}
part_spec=${4:-1/1}

first=${SOM_DIFFTEST_FIRST_SEED:-1}
total=${SOM_DIFFTEST_SEEDS:-800}
keep_root=${SOM_DIFFTEST_KEEP_DIR:-${TMPDIR:-/tmp}/som-difftest-failures}
timeout_s=${SOM_DIFFTEST_TIMEOUT:-30}
core_lib=$root/som/core-lib
max_failures=5

die() { echo "run-difftest: $*" >&2; exit 2; }
[[ "$first" =~ ^[0-9]+$ ]] || die "SOM_DIFFTEST_FIRST_SEED must be a number, not '$first'"
[[ "$total" =~ ^[0-9]+$ ]] || die "SOM_DIFFTEST_SEEDS must be a number, not '$total'"
[[ "$part_spec" =~ ^([0-9]+)/([0-9]+)$ ]] || die "bad part '$part_spec' (want k/n)"
part=${BASH_REMATCH[1]}; parts=${BASH_REMATCH[2]}
(( parts >= 1 && part >= 1 && part <= parts )) || die "bad part '$part_spec'"
[[ -x "$som" ]] || die "som binary '$som' is not executable"
[[ -x "$gen" ]] || die "generator '$gen' is not executable"
[[ -d "$core_lib" ]] || die "no core library at $core_lib"

# This part's slice of [first, first + total).
lo=$(( first + total * (part - 1) / parts ))
hi=$(( first + total * part / parts ))

flag_sets=("${SOM_DIFFTEST_FLAGS_A---jit=off}" "${SOM_DIFFTEST_FLAGS_B---jit=always}")
if [[ -n "${SOM_DIFFTEST_FLAGS_EXTRA:-}" ]]; then
  IFS=';' read -r -a extra <<<"$SOM_DIFFTEST_FLAGS_EXTRA"
  flag_sets+=("${extra[@]}")
fi

work=$(mktemp -d "${TMPDIR:-/tmp}/som-difftest.XXXXXX") || die "cannot create a scratch folder"
trap 'rm -rf "$work"' EXIT

# run_som <out-prefix> <flags> <program>: writes <out-prefix>.out/.err/.status.
run_som() {
  local prefix=$1 flags=$2 program=$3
  # shellcheck disable=SC2086  # the flag set is split into words on purpose
  timeout "$timeout_s" "$som" $flags -cp "$core_lib" "$program" >"$prefix.out" 2>"$prefix.err"
  echo $? >"$prefix.status"
}

# Probe: every flag set must start the VM and run a trivial program. An unknown flag makes som
# exit 1 with a usage message, which would otherwise look like two equal failing runs.
mkdir -p "$work/probe"
printf '%s\n' 'DiffTestProbe = ( run = ( (6 * 7) println ) )' >"$work/probe/DiffTestProbe.som"
for flags in "${flag_sets[@]}"; do
  run_som "$work/probe/run" "$flags" "$work/probe/DiffTestProbe.som"
  if [[ "$(cat "$work/probe/run.status")" != 0 || "$(cat "$work/probe/run.out")" != 42 ]]; then
    echo "run-difftest: som does not run a trivial program with flags '$flags'" \
         "(exit status $(cat "$work/probe/run.status")):" >&2
    head -20 "$work/probe/run.err" >&2
    exit 2
  fi
done

failures=0
# report <seed> <dir> <flags-b> <why>: keeps the program and prints the difference.
report() {
  local seed=$1 dir=$2 flags_b=$3 why=$4 keep="$keep_root/seed-$1"
  rm -rf "$keep"; mkdir -p "$keep" && cp "$dir"/*.som "$keep"/
  echo "FAIL seed $seed: $why"
  echo "  program kept in $keep/DiffTest$seed.som"
  echo "  rerun: $som <flags> -cp $core_lib $keep/DiffTest$seed.som"
  echo "  A = '${flag_sets[0]}': exit status $(cat "$dir/a.status");" \
       "B = '$flags_b': exit status $(cat "$dir/b.status")"
  diff -u --label "stdout with '${flag_sets[0]}'" --label "stdout with '$flags_b'" \
    "$dir/a.out" "$dir/b.out" | head -60
  for side in a b; do
    if [[ -s "$dir/$side.err" ]]; then echo "  stderr ($side):"; head -15 "$dir/$side.err"; fi
  done
  failures=$(( failures + 1 ))
}

count=0
for (( seed = lo; seed < hi; seed++ )); do
  dir=$work/$seed
  mkdir -p "$dir"
  if ! "$gen" "$seed" "$dir" >/dev/null; then
    echo "FAIL seed $seed: $gen could not write the program"; failures=$(( failures + 1 ))
  else
    program=$dir/DiffTest$seed.som
    run_som "$dir/a" "${flag_sets[0]}" "$program"
    for flags_b in "${flag_sets[@]:1}"; do
      run_som "$dir/b" "$flags_b" "$program"
      if ! cmp -s "$dir/a.out" "$dir/b.out" || ! cmp -s "$dir/a.status" "$dir/b.status"; then
        report "$seed" "$dir" "$flags_b" "outputs differ"
      elif [[ "$(cat "$dir/a.status")" != 0 ]]; then
        # Equal, but the programs are made to exit 0: a generator bug or a VM bug in both modes.
        report "$seed" "$dir" "$flags_b" "the program fails in both modes"
      fi
      (( failures >= max_failures )) && break
    done
  fi
  rm -rf "$dir"
  count=$(( count + 1 ))
  if (( failures >= max_failures )); then
    echo "run-difftest: stopping after $failures failures"; break
  fi
done

echo "run-difftest: seeds $lo..$(( hi - 1 )) ($count programs)," \
     "flag sets: $(printf "'%s' " "${flag_sets[@]}"), $failures failing"
(( failures == 0 )) || exit 1
exit 0
