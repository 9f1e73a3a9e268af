#!/usr/bin/env bash
# Store write benchmark: `honeyport bench-data` (synthetic sessions written through the
# sensor's own store writer, one transaction per batch) with this build and with a baseline
# build, alternated, so a change to the write path is measured against the code before it on
# the same machine in the same run. No network.
#
#   BASE_BIN=/path/to/old/honeyport bench/write.sh
#
# Knobs: BENCH_SESSIONS (200000), BENCH_DAYS (60), BENCH_ROUNDS (2), NEW_BIN (default: the
# release build in target/), BENCH_OUT (BENCHMARKS.md), BENCH_NOTE.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$here/.." && pwd)"
new="${NEW_BIN:-$repo/target/release/honeyport}"
base="${BASE_BIN:?set BASE_BIN to the baseline honeyport binary}"
sessions="${BENCH_SESSIONS:-200000}"
days="${BENCH_DAYS:-60}"
rounds="${BENCH_ROUNDS:-2}"
out="${BENCH_OUT:-$repo/BENCHMARKS.md}"
work="$(mktemp -d /tmp/hp-bench-write.XXXXXX)"
trap 'rm -rf "$work"' EXIT

run() { # bin label -> sessions/s
  local dir="$work/$2-$RANDOM"
  local t0 t1
  t0=$(date +%s.%N)
  "$1" --data-dir "$dir" bench-data --sessions "$sessions" --days "$days" --seed 7 >/dev/null
  t1=$(date +%s.%N)
  python3 -c "print(f'{$sessions/($t1-$t0):.0f}')"
  rm -rf "$dir"
}

rows=()
for r in $(seq 1 "$rounds"); do
  b=$(run "$base" base); n=$(run "$new" new)
  rows+=("| $r | $b | $n | $(python3 -c "print(f'{$n/$b:.2f}')") |")
  echo "round $r: base $b sessions/s, new $n sessions/s" >&2
done

{
  echo
  echo "## Store write path, $(date -u '+%Y-%m-%d %H:%M') UTC ($(git -C "$repo" rev-parse --short HEAD))"
  echo
  echo "Machine: $(nproc) cores, $(free -g | awk '/Mem:/{print $2}') GiB, load $(cut -d' ' -f1-3 /proc/loadavg)."
  echo "\`honeyport bench-data --sessions $sessions --days $days\` into a fresh SQLite store, baseline"
  echo "binary and this build alternated (sessions/s, wall clock, whole command).${BENCH_NOTE:+ $BENCH_NOTE}"
  echo
  echo "| round | baseline | this build | ratio |"
  echo "|---|---|---|---|"
  printf '%s\n' "${rows[@]}"
} >>"$out"
