#!/usr/bin/env bash
# Report benchmark: how fast the reports answer on a large store. Runnable from a fresh clone:
#
#   bench/reports.sh
#
# Builds honeyport (release), writes a synthetic store with `honeyport bench-data` (default
# 10,000,000 sessions over 365 days: Zipf ports and sources, port 26 rising mid-year), then
# times, each BENCH_REPEAT times (median and max reported):
#   - report top-ports for the latest day          (target < 1 s)
#   - report port 26 --days 365                     (target < 1 s)
#   - explain 26 (30 days)                          (target < 2 s)
#   - report rising, report top-ports over 7 days, report sources/credentials for port 23
# and reports the store's size on disk per million sessions. Appends a dated section to
# BENCHMARKS.md. Nothing here touches the network (the ceiling server is for the network
# benchmarks; these numbers are wall-clock latencies of one process on the same machine, with
# the load average written next to them).
#
# Environment knobs (all optional):
#   BENCH_SKIP_BUILD=1            use the binary already built
#   HP_BENCH_TARGET=DIR           cargo target dir (default /tmp/hp-bench-target)
#   BENCH_SESSIONS=10000000  BENCH_DAYS=365
#   BENCH_STORE=DIR               reuse (or keep) the synthetic store here (default: a work dir)
#   BENCH_REPEAT=5
#   BENCH_OUT=FILE                default BENCHMARKS.md at the repo root
#   BENCH_NOTE="text"
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$here/.." && pwd)"
target="${HP_BENCH_TARGET:-/tmp/hp-bench-target}"
sessions="${BENCH_SESSIONS:-10000000}"
days="${BENCH_DAYS:-365}"
repeat="${BENCH_REPEAT:-5}"
out="${BENCH_OUT:-$repo/BENCHMARKS.md}"
work="$(mktemp -d /tmp/hp-bench-reports.XXXXXX)"
store="${BENCH_STORE:-$work/store}"

log() { printf '[bench %(%H:%M:%S)T] %s\n' -1 "$*" >&2; }
loadavg() { cut -d' ' -f1-3 /proc/loadavg; }

started_at="$(date -u '+%Y-%m-%d %H:%M UTC')"
commit="$(git -C "$repo" rev-parse --short HEAD 2>/dev/null || echo unknown)"
if ! git -C "$repo" diff --quiet HEAD 2>/dev/null; then commit="$commit (with uncommitted changes)"; fi
cpu_model="$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//')"
mem_total="$(awk '/MemTotal/ { printf "%.1f GiB", $2 / 1048576 }' /proc/meminfo)"

if [[ "${BENCH_SKIP_BUILD:-0}" != 1 ]]; then
  log "building honeyport (release) in $target"
  (cd "$repo" && CARGO_TARGET_DIR="$target" cargo build --release --locked -p honeyport >&2)
fi
hp="$target/release/honeyport"
[[ -x "$hp" ]] || { log "no binary at $hp"; exit 1; }

load_start="$(loadavg)"
if [[ -f "$store/honeyport.db" ]]; then
  log "reusing the store in $store"
  gen_line="reused an existing store"
else
  log "bench-data: $sessions sessions over $days days into $store"
  gen_line="$("$hp" --data-dir "$store" bench-data --sessions "$sessions" --days "$days")"
  log "$gen_line"
fi
db_bytes=0
for f in "$store"/honeyport.db "$store"/honeyport.db-wal; do
  [[ -f "$f" ]] && db_bytes=$(( db_bytes + $(stat -c %s "$f") ))
done
stored_sessions="$(sqlite3 -readonly "$store/honeyport.db" 'select count(*) from sessions')"
stored_events="$(sqlite3 -readonly "$store/honeyport.db" 'select max(id) from events')"
per_million="$(awk -v b="$db_bytes" -v s="$stored_sessions" 'BEGIN { printf "%.0f", b / 1048576 / (s / 1e6) }')"
latest="$(sqlite3 -readonly "$store/honeyport.db" "select max(day) from port_day where sensor = ''")"
latest_date="$(date -u -d "@$(( latest * 86400 ))" +%F)"

# One query, timed BENCH_REPEAT times after one warm-up: "median max" in seconds.
time_it() {
  local name="$1"; shift
  "$hp" --data-dir "$store" "$@" >"$work/$name.out"
  local t=()
  for _ in $(seq "$repeat"); do
    local s e
    s=$(date +%s%N)
    "$hp" --data-dir "$store" "$@" >/dev/null
    e=$(date +%s%N)
    t+=("$(( (e - s) / 1000000 ))")
  done
  printf '%s\n' "${t[@]}" | sort -n | awk '{ a[NR] = $1 } END { printf "%.3f %.3f", a[int((NR + 1) / 2)] / 1000, a[NR] / 1000 }'
}

declare -A T
T[top_day]="$(time_it top_day report top-ports --day "$latest_date")"
T[top_week]="$(time_it top_week report top-ports --since "$(date -u -d "$latest_date - 6 days" +%F)" --until "$latest_date")"
T[port_year]="$(time_it port_year report port 26 --days 365)"
T[rising]="$(time_it rising report rising)"
T[explain]="$(time_it explain explain 26)"
T[sources]="$(time_it sources report sources --port 23)"
T[creds]="$(time_it creds report credentials --port 23)"
load_end="$(loadavg)"

met() { awk -v v="$1" -v t="$2" 'BEGIN { if (v < t) print "**met**"; else print "**NOT met**" }'; }
row() { # name, key, target
  local m x
  read -r m x <<<"${T[$2]}"
  echo "| $1 | $m | $x | ${3:--} |"
}
{
  echo
  echo "## $started_at — reports on a synthetic store — commit $commit"
  echo
  echo "Machine: $(nproc) CPUs ($cpu_model), kernel $(uname -r), $mem_total RAM."
  echo "Load average (1/5/15 min) at start: $load_start; at end: $load_end."
  if [[ -n "${BENCH_NOTE:-}" ]]; then echo "Note: $BENCH_NOTE"; fi
  echo "Store: \`honeyport bench-data --sessions $sessions --days $days\`: $gen_line."
  echo "$stored_sessions sessions, $stored_events events; latest day $latest_date. Command: \`bench/reports.sh\`; outputs in \`$work\`."
  echo
  echo "| query | median s | max s | target |"
  echo "|---|---|---|---|"
  row "\`report top-ports --day $latest_date\`" top_day "< 1 s: $(met "${T[top_day]%% *}" 1)"
  row "\`report top-ports\` over 7 days" top_week
  row "\`report port 26 --days 365\`" port_year "< 1 s: $(met "${T[port_year]%% *}" 1)"
  row "\`explain 26\` (30 days)" explain "< 2 s: $(met "${T[explain]%% *}" 2)"
  row "\`report rising\`" rising
  row "\`report sources --port 23\` (30 days)" sources
  row "\`report credentials --port 23\` (30 days)" creds
  echo
  echo "Store size on disk: $(( db_bytes / 1048576 )) MiB, **$per_million MiB per million sessions** (events, session rows with their summary, rollups and indexes)."
} >>"$out"
log "appended to $out"
cat "$work/explain.out" | head -30 >&2
