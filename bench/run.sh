#!/usr/bin/env bash
# honeyport load benchmark. Runnable from a fresh clone:
#
#   bench/run.sh
#
# Builds honeyport (release, in its own target dir) and the shared benchmark tools (scanload,
# bareserver), then measures, on loopback only:
#   1. scripted SMTP sessions per second at concurrency 100 and 1000, honeyport vs bareserver
#      (the ceiling) in the same run, then checks the store: every EHLO the client got an
#      answer to is recorded, every session.connect has its session.closed, nothing dropped;
#   2. RSS per connection with 15,000 idle connections held for 30 s (and bareserver's, for
#      comparison);
#   3. honeyport's idle RSS with the bench config;
#   4. telnet login captures per second (bench/telnet.toml), every credential checked;
#   5. what session classification costs: sessions/s with it on and off (detection, the
#      tagger, the SYN fingerprint: [classify] sessions, tags, syn), back to back.
# and appends a dated section (machine info, load average, numbers, targets met or not) to
# BENCHMARKS.md. Raw output (scanload JSON, honeyport stdout/stderr, RSS samples) stays in a
# work dir under /tmp whose path is printed and written into the section.
#
# Environment knobs (all optional):
#   BENCH_SKIP_BUILD=1        use the binaries already built
#   HP_BENCH_TARGET=DIR       cargo target dir for honeyport (default /tmp/hp-bench-target)
#   HONEYPORT_TOOLS_SRC=DIR   where scanload/bareserver sources are (default: ../shared/tools
#                             next to the repo, else /work/shared/tools)
#   HONEYPORT_TOOLS_DIR=DIR   where build.sh puts the tool binaries (default /tmp/honeyport-tools)
#   BENCH_CONCURRENCY="100 1000"
#   BENCH_CONNS=N             connections per SMTP run (default: calibrated on bareserver so
#                             that a run lasts >= BENCH_MIN_SECS)
#   BENCH_MIN_SECS=10
#   BENCH_HOLD_CONNS=15000  BENCH_HOLD_SECS=30
#   BENCH_BARE_ADDR=127.0.0.1:12626   (honeyport's address comes from bench/smtp.toml)
#   BENCH_CONFIG=FILE         default bench/smtp.toml
#   BENCH_OUT=FILE            default BENCHMARKS.md at the repo root
#   BENCH_NOTE="text"         a note written into the section (e.g. "machine shared, noisy")
#   BENCH_KEEP_DATA=1         keep the SMTP runs' data dirs (about 3 KB per session)
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$here/.." && pwd)"
tools_src="${HONEYPORT_TOOLS_SRC:-}"
if [[ -z "$tools_src" ]]; then
  for d in "$repo/../shared/tools" /work/shared/tools; do
    if [[ -x "$d/build.sh" ]]; then tools_src="$d"; break; fi
  done
fi
export HONEYPORT_TOOLS_DIR="${HONEYPORT_TOOLS_DIR:-/tmp/honeyport-tools}"
target="${HP_BENCH_TARGET:-/tmp/hp-bench-target}"
config="${BENCH_CONFIG:-$here/smtp.toml}"
telnet_config="${BENCH_TELNET_CONFIG-$here/telnet.toml}"   # empty: skip the telnet part
out="${BENCH_OUT:-$repo/BENCHMARKS.md}"
bare_addr="${BENCH_BARE_ADDR:-127.0.0.1:12626}"
concurrencies="${BENCH_CONCURRENCY:-100 1000}"
min_secs="${BENCH_MIN_SECS:-10}"
hold_conns="${BENCH_HOLD_CONNS:-15000}"
hold_secs="${BENCH_HOLD_SECS:-30}"
payload='EHLO scan{n}\r\n'

log() { printf '[bench %(%H:%M:%S)T] %s\n' -1 "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }

# Network safety: loopback only.
case "$bare_addr" in
  127.0.0.1:* | "[::1]:"*) ;;
  *) die "BENCH_BARE_ADDR must be a loopback address (127.0.0.1:PORT or [::1]:PORT)" ;;
esac

work="$(mktemp -d /tmp/hp-bench.XXXXXX)"
log "work dir: $work"

# ---------------------------------------------------------------------------------- build
if [[ "${BENCH_SKIP_BUILD:-0}" != 1 ]]; then
  [[ -n "$tools_src" ]] || die "cannot find the shared tools (scanload, bareserver): set HONEYPORT_TOOLS_SRC"
  log "building honeyport (release, CARGO_TARGET_DIR=$target)"
  (cd "$repo" && CARGO_TARGET_DIR="$target" cargo build --release -p honeyport)
  log "building scanload and bareserver ($tools_src/build.sh)"
  "$tools_src/build.sh" >&2
fi
hp="$target/release/honeyport"
scanload="$HONEYPORT_TOOLS_DIR/scanload"
bareserver="$HONEYPORT_TOOLS_DIR/bareserver"
for b in "$hp" "$scanload" "$bareserver"; do
  [[ -x "$b" ]] || die "missing binary $b (run without BENCH_SKIP_BUILD=1)"
done
"$hp" check -c "$config" >&2

# Every connection is a file descriptor, on both ends.
hard_nofile="$(ulimit -Hn)"
if [[ "$hard_nofile" != unlimited ]]; then
  ulimit -n "$hard_nofile"
  if (( hard_nofile < hold_conns + 200 )); then
    log "WARNING: open-files hard limit $hard_nofile is too low for $hold_conns held connections"
  fi
fi

# ------------------------------------------------------------------------------- helpers
pids=()
cleanup() {
  local p
  for p in "${pids[@]}"; do
    kill -TERM "$p" 2>/dev/null || true
  done
}
trap cleanup EXIT

# jget JSON KEY: the scalar value of KEY in scanload's one-line JSON output.
jget() { sed -n "s/.*\"$2\":\([^,}]*\).*/\1/p" <<<"$1" | tr -d '"'; }
jerrors() { sed -n 's/.*"errors":\({[^}]*}\).*/\1/p' <<<"$1"; }

rss_kib() { awk '/^VmRSS:/ {print $2}' "/proc/$1/status"; }
hwm_kib() { awk '/^VmHWM:/ {print $2}' "/proc/$1/status"; }
threads() { awk '/^Threads:/ {print $2}' "/proc/$1/status"; }
nfds() { ls "/proc/$1/fd" 2>/dev/null | wc -l; }
clk_tck="$(getconf CLK_TCK)"
# CPU time (user+system) of a process, in milliseconds.
cpu_ms() { awk -v t="$clk_tck" '{ sub(/^.*\) /, ""); print int(($12 + $13) * 1000 / t) }' "/proc/$1/stat"; }
loadavg() { cut -d' ' -f1-3 /proc/loadavg; }
kib_to_mb() { awk -v k="$1" 'BEGIN { printf "%.1f", k * 1024 / 1e6 }'; }

# start_honeyport DATADIR: starts the sensor, waits until it listens; sets hp_pid, hp_addr.
start_honeyport() {
  local dir="$1" cfg="${2:-$config}"
  rm -rf "$dir"
  mkdir -p "$dir"
  "$hp" --data-dir "$dir" run -c "$cfg" >"$dir.stdout" 2>"$dir.stderr" &
  hp_pid=$!
  pids+=("$hp_pid")
  local i
  for i in $(seq 1 200); do
    if grep -q 'storing events in' "$dir.stdout" 2>/dev/null; then break; fi
    kill -0 "$hp_pid" 2>/dev/null || { cat "$dir.stderr" >&2; die "honeyport exited at start"; }
    sleep 0.05
  done
  hp_addr="$(sed -n 's/^honeyport: listening on tcp \([^ ]*\) .*/\1/p' "$dir.stdout" | head -n1)"
  [[ -n "$hp_addr" ]] || die "honeyport printed no 'listening on tcp' line"
  case "$hp_addr" in
    127.0.0.1:* | "[::1]:"*) ;;
    *) die "honeyport listens on $hp_addr, not loopback: fix $config" ;;
  esac
}

# stop_honeyport DATADIR: SIGTERM, wait for exit; sets hp_rc and hp_stopped (the stopped line).
stop_honeyport() {
  local dir="$1"
  kill -TERM "$hp_pid"
  hp_rc=0
  wait "$hp_pid" || hp_rc=$?
  hp_stopped="$(grep '^honeyport: stopped\.' "$dir.stdout" || true)"
  [[ -n "$hp_stopped" ]] || log "WARNING: no 'stopped' line from honeyport (exit $hp_rc)"
}
# stopped_field LINE KEY: a number from the "honeyport: stopped." line.
stopped_field() { sed -n "s/.* $2=\([0-9]*\).*/\1/p" <<<"$1"; }

start_bare() {
  "$bareserver" "$bare_addr" >"$work/bareserver.log" 2>&1 &
  bare_pid=$!
  pids+=("$bare_pid")
  local port="${bare_addr##*:}" i
  for i in $(seq 1 100); do
    if ss -Hltn "sport = :$port" 2>/dev/null | grep -q .; then return; fi
    kill -0 "$bare_pid" 2>/dev/null || die "bareserver exited at start (port $port taken?)"
    sleep 0.05
  done
}
stop_bare() {
  kill -TERM "$bare_pid" 2>/dev/null || true
  wait "$bare_pid" 2>/dev/null || true
}

# smtp_run TARGET CONNS CONC NAME: one scanload send run; prints its JSON line.
smtp_run() {
  ss -s >"$work/$4.ss-before" 2>/dev/null || true
  "$scanload" --target "$1" --mode send --payload "$payload" --conns "$2" --concurrency "$3" \
    | tee "$work/$4.json"
}

declare -A R # results, keyed "what.c<C>"

# conns_for RATE: connections for a run of at least min_secs at RATE sessions/s.
conns_for() {
  awk -v r="$1" -v s="$min_secs" 'BEGIN { n = int(r * s * 1.25 / 1000 + 1) * 1000; if (n < 20000) n = 20000; print n }'
}

# ------------------------------------------------------------------- machine information
started_at="$(date -u '+%Y-%m-%d %H:%M:%S UTC')"
cpu_model="$(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -n1)"
mem_total="$(awk '/^MemTotal:/ {printf "%.1f GiB", $2 / 1048576}' /proc/meminfo)"
commit="$(git -C "$repo" rev-parse --short HEAD 2>/dev/null || echo unknown)"
if [[ -n "$(git -C "$repo" status --porcelain --untracked-files=no -- crates 2>/dev/null)" ]]; then
  commit="$commit (crates/ modified)"
fi
load_start="$(loadavg)"
log "load average at start: $load_start"

# --------------------------------------------------------- 1. scripted SMTP sessions/s
start_bare
for c in $concurrencies; do
  if [[ -n "${BENCH_CONNS:-}" ]]; then
    n="$BENCH_CONNS"
  else
    # Calibrate on the ceiling so the faster server's run still lasts >= min_secs.
    cal_n=$(( c * 20 > 10000 ? c * 20 : 10000 ))
    cal="$(smtp_run "$bare_addr" "$cal_n" "$c" "calibrate.c$c")"
    n="$(conns_for "$(jget "$cal" ok_per_s)")"
    log "c=$c: bareserver calibration $(jget "$cal" ok_per_s)/s -> $n connections per run"
  fi

  for attempt in 1 2; do
    log "c=$c: bareserver, $n connections"
    R[load_bare.c$c]="$(loadavg)"
    cpu0="$(cpu_ms "$bare_pid")"
    R[bare.c$c]="$(smtp_run "$bare_addr" "$n" "$c" "bare.c$c")"
    R[bare_cpu.c$c]=$(( $(cpu_ms "$bare_pid") - cpu0 ))
    # A calibration run can be too short to reach the steady rate: redo once if needed.
    if [[ -n "${BENCH_CONNS:-}" || $attempt == 2 ]] \
      || awk -v s="$(jget "${R[bare.c$c]}" secs)" -v m="$min_secs" 'BEGIN { exit !(s >= m * 0.9) }'; then
      break
    fi
    n="$(conns_for "$(jget "${R[bare.c$c]}" ok_per_s)")"
    log "c=$c: bareserver run was shorter than ${min_secs}s; again with $n connections"
  done
  R[n.c$c]="$n"

  log "c=$c: honeyport, $n connections"
  dir="$work/hp.c$c"
  start_honeyport "$dir"
  R[load_hp.c$c]="$(loadavg)"
  cpu0="$(cpu_ms "$hp_pid")"
  R[hp.c$c]="$(smtp_run "$hp_addr" "$n" "$c" "hp.c$c")"
  R[hp_cpu.c$c]=$(( $(cpu_ms "$hp_pid") - cpu0 ))
  R[hp_hwm.c$c]="$(hwm_kib "$hp_pid")"
  R[hp_threads.c$c]="$(threads "$hp_pid")"
  stop_honeyport "$dir"
  R[hp_rc.c$c]="$hp_rc"
  R[hp_stopped.c$c]="$hp_stopped"

  # The store: every EHLO scan{n} answered must be there; connect/closed must pair.
  db="$dir/honeyport.db"
  q_inputs="select json_extract(json, '\$.data.text') from events where eventid = 'session.input'"
  if command -v sqlite3 >/dev/null; then
    sqlite3 -readonly "$db" "$q_inputs" >"$dir.inputs"
    connects="$(sqlite3 -readonly "$db" "select count(*) from events where eventid = 'session.connect'")"
    closes="$(sqlite3 -readonly "$db" "select count(*) from events where eventid = 'session.closed'")"
    sqlite3 -readonly "$db" "select group_concat(r || ' ' || n, ', ') from (select
      json_extract(json, '\$.reason') as r, count(*) as n from events
      where eventid = 'session.closed' group by 1)" >"$dir.reasons"
  else
    "$hp" --data-dir "$dir" events --json --limit 1000000000 >"$dir.events"
    grep '"eventid":"session.input"' "$dir.events" >"$dir.inputs" || true
    connects="$(grep -c '"eventid":"session.connect"' "$dir.events" || true)"
    closes="$(grep -c '"eventid":"session.closed"' "$dir.events" || true)"
    echo "(sqlite3 not installed)" >"$dir.reasons"
  fi
  { grep -oE 'EHLO scan[0-9]+' "$dir.inputs" || true; } | sed 's/^EHLO scan//' | sort -u >"$dir.found"
  seq 0 $(( n - 1 )) | sort >"$dir.expected"
  absent="$(comm -23 "$dir.expected" "$dir.found" | wc -l)"
  R[absent.c$c]="$absent"
  R[connects.c$c]="$connects"
  R[closes.c$c]="$closes"
  R[reasons.c$c]="$(cat "$dir.reasons")"
  log "c=$c: store: connect=$connects closed=$closes absent EHLOs=$absent; $hp_stopped"
  rm -f "$dir.inputs" "$dir.expected" "$dir.events"
  # The store of a long run is about 3 KB per session: keep it only when asked.
  [[ "${BENCH_KEEP_DATA:-0}" == 1 ]] || rm -rf "$dir"
done
stop_bare

# ------------------------------------------ 2. idle connections held (RSS per connection)
# hold_run PID NAME: holds hold_conns connections to the server PID listens on (address in
# $hold_addr), samples its RSS and fd count every second; sets idle/held/open results.
hold_run() {
  local pid="$1" name="$2"
  sleep 2
  R[idle_rss.$name]="$(rss_kib "$pid")"
  local base_fds
  base_fds="$(nfds "$pid")"
  "$scanload" --target "$hold_addr" --mode hold --conns "$hold_conns" --hold "$hold_secs" \
    --concurrency 500 >"$work/hold.$name.json" &
  local sl=$!
  pids+=("$sl")
  : >"$work/hold.$name.samples"
  local t=0 shown=0
  while kill -0 "$sl" 2>/dev/null; do
    echo "$t $(rss_kib "$pid") $(( $(nfds "$pid") - base_fds ))" >>"$work/hold.$name.samples"
    if (( shown == 0 && t >= hold_secs / 2 )); then
      ss -s >"$work/hold.$name.ss" 2>/dev/null || true
      shown=1
    fi
    sleep 1
    t=$(( t + 1 ))
  done
  wait "$sl" || true
  R[hold.$name]="$(cat "$work/hold.$name.json")"
  R[hwm.$name]="$(hwm_kib "$pid")"
  # Held RSS: the median RSS over the samples where (almost) every connection was open.
  local maxfds
  maxfds="$(awk 'BEGIN { m = 0 } $3 > m { m = $3 } END { print m }' "$work/hold.$name.samples")"
  R[held_fds.$name]="$maxfds"
  R[held_rss.$name]="$(awk -v m="$maxfds" '$3 >= m * 0.999 { print $2 }' "$work/hold.$name.samples" \
    | sort -n | awk '{ a[NR] = $1 } END { print a[int((NR + 1) / 2)] }')"
}

log "hold: honeyport, $hold_conns idle connections for ${hold_secs}s"
dir="$work/hp.hold"
start_honeyport "$dir"
hold_addr="$hp_addr"
R[load_hold.hp]="$(loadavg)"
hold_run "$hp_pid" hp
stop_honeyport "$dir"
R[hold_stopped.hp]="$hp_stopped"

log "hold: bareserver, $hold_conns idle connections for ${hold_secs}s"
start_bare
hold_addr="$bare_addr"
hold_run "$bare_pid" bare
stop_bare

# ------------------------------------------------------- 4. telnet login captures per second
# scanload --mode telnet: wait for "login:", send u{n}, wait for "assword", send p{n}, read the
# answer, close. Each connection is one failed login the store must hold exactly. The ceiling is
# bareserver's session rate at the same concurrency in part 1 (bareserver speaks no telnet).
telnet_c="${BENCH_TELNET_CONCURRENCY:-100}"
if [[ -n "$telnet_config" ]]; then
  tn="${BENCH_TELNET_CONNS:-$(conns_for "$(jget "${R[bare.c$telnet_c]:-}" ok_per_s)")}"
  log "telnet: honeyport, $tn connections at c=$telnet_c"
  dir="$work/hp.telnet"
  start_honeyport "$dir" "$telnet_config"
  R[load_telnet]="$(loadavg)"
  cpu0="$(cpu_ms "$hp_pid")"
  R[telnet]="$("$scanload" --target "$hp_addr" --mode telnet --conns "$tn" --concurrency "$telnet_c" | tee "$work/telnet.json")"
  R[telnet_cpu]=$(( $(cpu_ms "$hp_pid") - cpu0 ))
  R[telnet_n]="$tn"
  stop_honeyport "$dir"
  R[telnet_stopped]="$hp_stopped"
  db="$dir/honeyport.db"
  # Every u{n}/p{n} pair scanload sent must be a login.failed event with exactly those bytes.
  sqlite3 -readonly "$db" "select json_extract(json, '\$.username.text') || ' ' || json_extract(json, '\$.password.text')
    from events where eventid = 'login.failed'" | sed -n 's/^u\([0-9]*\) p\1$/\1/p' | sort -u >"$dir.found"
  seq 0 $(( tn - 1 )) | sort >"$dir.expected"
  R[telnet_absent]="$(comm -23 "$dir.expected" "$dir.found" | wc -l)"
  R[telnet_logins]="$(sqlite3 -readonly "$db" "select count(*) from events where eventid = 'login.failed'")"
  log "telnet: $(jget "${R[telnet]}" ok_per_s)/s, absent credentials ${R[telnet_absent]}; $hp_stopped"
  [[ "${BENCH_KEEP_DATA:-0}" == 1 ]] || rm -rf "$dir"
fi

# ----------------------------------------------- 5. classification cost (on vs off, back to back)
class_c="${concurrencies%% *}"
class_n="${R[n.c$class_c]}"
class_cfg="$work/smtp-classify-off.toml"
{ cat "$config"; printf '\n[classify]\nsessions = false\ntags = false\nsyn = false\n'; } >"$class_cfg"
for mode in on off; do
  cfg="$config"
  [[ "$mode" == off ]] && cfg="$class_cfg"
  log "classification $mode: honeyport, $class_n connections at c=$class_c"
  dir="$work/hp.classify-$mode"
  start_honeyport "$dir" "$cfg"
  cpu0="$(cpu_ms "$hp_pid")"
  R[class.$mode]="$(smtp_run "$hp_addr" "$class_n" "$class_c" "classify-$mode")"
  R[class_cpu.$mode]=$(( $(cpu_ms "$hp_pid") - cpu0 ))
  stop_honeyport "$dir"
  R[class_rows.$mode]="$(sqlite3 -readonly "$dir/honeyport.db" "select (select count(*) from events where eventid = 'session.classified') || ' / ' || (select count(*) from events where eventid = 'tcp.syn')" 2>/dev/null || echo n/a)"
  rm -rf "$dir"
done

# -------------------------------------------------------------------------- 3. idle RSS
log "idle RSS: honeyport with $config, no connections"
dir="$work/hp.idle"
start_honeyport "$dir"
sleep 3
R[idle_rss]="$(rss_kib "$hp_pid")"
R[idle_threads]="$(threads "$hp_pid")"
stop_honeyport "$dir"

load_end="$(loadavg)"
log "load average at end: $load_end"

# ------------------------------------------------------------------------------- report
yes_no() { if [[ "$1" == 1 ]]; then echo "**met**"; else echo "**NOT met**"; fi; }
noisy=""
if awk -v l="${load_start%% *}" -v n="$(nproc)" 'BEGIN { exit !(l > n * 0.25) }'; then
  noisy=" The load average at start was ${load_start%% *} on $(nproc) CPUs: other work was running, so absolute numbers are noisy (ratios less so)."
fi

{
  echo
  echo "## $started_at — commit $commit"
  echo
  echo "Machine: $(nproc) CPUs ($cpu_model), kernel $(uname -r), $mem_total RAM."
  echo "Load average (1/5/15 min) at start: $load_start; at end: $load_end.${noisy}"
  if [[ -n "${BENCH_NOTE:-}" ]]; then echo "Note: $BENCH_NOTE"; fi
  echo "Config: \`${config#"$repo"/}\` (storage at its defaults: SQLite, synchronous = full)."
  echo "Raw output: \`$work\`. Command: \`bench/run.sh\`."
  echo
  echo "### 1. Scripted SMTP sessions (scanload --mode send --payload 'EHLO scan{n}\\r\\n')"
  echo
  echo "| concurrency | connections | server | ok/s | ratio | ok | failed | p50 ms | p99 ms | CPU ms/1k sessions | load at start |"
  echo "|---|---|---|---|---|---|---|---|---|---|---|"
  for c in $concurrencies; do
    b="${R[bare.c$c]}" h="${R[hp.c$c]}"
    ratio="$(awk -v h="$(jget "$h" ok_per_s)" -v b="$(jget "$b" ok_per_s)" 'BEGIN { if (b > 0) printf "%.2f", h / b; else print "n/a" }')"
    R[ratio.c$c]="$ratio"
    for who in bare hp; do
      j="${R[$who.c$c]}"
      ok="$(jget "$j" ok)"
      cpu="$(awk -v m="${R[${who}_cpu.c$c]}" -v k="$ok" 'BEGIN { if (k > 0) printf "%.0f", m * 1000 / k; else print "n/a" }')"
      if [[ $who == bare ]]; then label=bareserver; r=1.00; la="${R[load_bare.c$c]}"; else label=honeyport; r="$ratio"; la="${R[load_hp.c$c]}"; fi
      echo "| $c | ${R[n.c$c]} | $label | $(jget "$j" ok_per_s) | $r | $ok | $(jget "$j" failed) | $(jget "$j" p50_ms) | $(jget "$j" p99_ms) | $cpu | $la |"
    done
  done
  echo
  echo "Store check after SIGTERM (fresh data dir per run):"
  echo
  echo "| concurrency | EHLOs absent from store | answered but missing | session.connect | session.closed | closed reasons | stopped line | exit | peak RSS |"
  echo "|---|---|---|---|---|---|---|---|---|"
  for c in $concurrencies; do
    h="${R[hp.c$c]}"
    failed="$(jget "$h" failed)"
    # An EHLO whose session failed client-side may legitimately be absent; any absence
    # beyond the failed count is an answered session whose input was lost.
    a="${R[absent.c$c]}"
    missing=$(( a > failed ? a - failed : 0 ))
    R[missing.c$c]="$missing"
    echo "| $c | ${R[absent.c$c]} | $missing | ${R[connects.c$c]} | ${R[closes.c$c]} | ${R[reasons.c$c]} | \`${R[hp_stopped.c$c]#honeyport: }\` | ${R[hp_rc.c$c]} | $(kib_to_mb "${R[hp_hwm.c$c]}") MB |"
  done
  echo
  echo "Errors by kind: $(for c in $concurrencies; do echo -n "c=$c bareserver $(jerrors "${R[bare.c$c]}"), honeyport $(jerrors "${R[hp.c$c]}"); "; done)"
  echo
  echo "### 2. $hold_conns idle connections held for ${hold_secs} s"
  echo
  echo "| server | idle RSS | held RSS | RSS per connection | established | open after hold | peak RSS |"
  echo "|---|---|---|---|---|---|---|"
  for who in hp bare; do
    j="${R[hold.$who]}"
    per="$(awk -v h="${R[held_rss.$who]}" -v i="${R[idle_rss.$who]}" -v n="$hold_conns" 'BEGIN { printf "%.0f", (h - i) * 1024 / n }')"
    R[per_conn.$who]="$per"
    label=$([[ $who == hp ]] && echo honeyport || echo bareserver)
    echo "| $label | $(kib_to_mb "${R[idle_rss.$who]}") MB | $(kib_to_mb "${R[held_rss.$who]}") MB | $per B ($(awk -v b="$per" 'BEGIN { printf "%.2f", b / 1024 }') KiB) | $(jget "$j" established) | $(jget "$j" open_after_hold) | $(kib_to_mb "${R[hwm.$who]}") MB |"
  done
  echo
  echo "honeyport after the hold: \`${R[hold_stopped.hp]#honeyport: }\`"
  echo
  echo "### 3. Idle RSS"
  echo
  echo "\`honeyport run -c ${config#"$repo"/}\`, no connections, 3 s after start: $(kib_to_mb "${R[idle_rss]}") MB (${R[idle_rss]} KiB), ${R[idle_threads]} threads."
  echo
  if [[ -n "${R[telnet]:-}" ]]; then
    t="${R[telnet]}" b="${R[bare.c$telnet_c]:-}"
    R[telnet_ratio]="$(awk -v h="$(jget "$t" ok_per_s)" -v b="$(jget "$b" ok_per_s)" 'BEGIN { if (b > 0) printf "%.2f", h / b; else print "n/a" }')"
    echo "### 4. Telnet login captures (scanload --mode telnet, concurrency $telnet_c)"
    echo
    echo "Config \`${telnet_config#"$repo"/}\` (BusyBox-style telnet persona, every credential refused). Ceiling: bareserver's sessions/s at the same concurrency in part 1."
    echo
    echo "| connections | logins/s | ceiling/s | ratio | ok | failed | p50 ms | p99 ms | CPU ms/1k logins | login.failed in store | credentials absent | stopped line |"
    echo "|---|---|---|---|---|---|---|---|---|---|---|---|"
    tcpu="$(awk -v m="${R[telnet_cpu]}" -v k="$(jget "$t" ok)" 'BEGIN { if (k > 0) printf "%.0f", m * 1000 / k; else print "n/a" }')"
    echo "| ${R[telnet_n]} | $(jget "$t" ok_per_s) | $(jget "$b" ok_per_s) | ${R[telnet_ratio]} | $(jget "$t" ok) | $(jget "$t" failed) | $(jget "$t" p50_ms) | $(jget "$t" p99_ms) | $tcpu | ${R[telnet_logins]} | ${R[telnet_absent]} | \`${R[telnet_stopped]#honeyport: }\` |"
    echo
  fi
  on="$(jget "${R[class.on]}" ok_per_s)" off="$(jget "${R[class.off]}" ok_per_s)"
  R[class_loss]="$(awk -v a="$on" -v b="$off" 'BEGIN { if (b > 0) printf "%.1f", (1 - a / b) * 100; else print "n/a" }')"
  echo "### 5. Classification cost (scripted SMTP, concurrency $class_c, $class_n connections, on then off)"
  echo
  echo "On: protocol detection and the session summary, the tagger (client names, exploit rules, behaviour tags) and the TCP SYN fingerprint. Off: \`[classify] sessions = false, tags = false, syn = false\`."
  echo
  echo "| classification | sessions/s | ok | failed | CPU ms/1k sessions | session.classified / tcp.syn rows |"
  echo "|---|---|---|---|---|---|"
  for mode in on off; do
    j="${R[class.$mode]}"
    ccpu="$(awk -v m="${R[class_cpu.$mode]}" -v k="$(jget "$j" ok)" 'BEGIN { if (k > 0) printf "%.0f", m * 1000 / k; else print "n/a" }')"
    echo "| $mode | $(jget "$j" ok_per_s) | $(jget "$j" ok) | $(jget "$j" failed) | $ccpu | ${R[class_rows.$mode]} |"
  done
  echo
  echo "Throughput lost to classification: ${R[class_loss]}%"
  echo
  echo "### Targets"
  echo
  for c in $concurrencies; do
    echo "- Sessions/s ≥ 0.8 × ceiling at concurrency $c: ${R[ratio.c$c]} — $(yes_no "$(awk -v r="${R[ratio.c$c]}" 'BEGIN { print (r + 0 >= 0.8) ? 1 : 0 }')")"
  done
  for c in $concurrencies; do
    f="$(jget "${R[hp.c$c]}" failed)"
    echo "- Zero failed sessions at concurrency $c: $f failed — $(yes_no "$([[ $f == 0 ]] && echo 1 || echo 0)")"
  done
  for c in $concurrencies; do
    d="$(stopped_field "${R[hp_stopped.c$c]}" events_dropped)"
    ok=0
    [[ "${R[missing.c$c]}" == 0 && "${R[connects.c$c]}" == "${R[closes.c$c]}" && "$d" == 0 ]] && ok=1
    echo "- Zero lost events at concurrency $c: ${R[missing.c$c]} answered EHLOs missing, connect ${R[connects.c$c]} / closed ${R[closes.c$c]}, events_dropped=$d — $(yes_no $ok)"
  done
  per="${R[per_conn.hp]}"
  open="$(jget "${R[hold.hp]}" open_after_hold)"
  echo "- $hold_conns idle connections at < 4 KiB RSS each: $open open after ${hold_secs} s, $per B each — $(yes_no "$([[ $open == "$hold_conns" ]] && (( per < 4096 )) && echo 1 || echo 0)")"
  echo "- Idle RSS < 15 MB: $(kib_to_mb "${R[idle_rss]}") MB — $(yes_no "$(awk -v k="${R[idle_rss]}" 'BEGIN { print (k * 1024 < 15e6) ? 1 : 0 }')")"
  echo "- Classification costs < 10% of sessions/s: ${R[class_loss]}% — $(yes_no "$(awk -v l="${R[class_loss]}" 'BEGIN { print (l + 0 < 10) ? 1 : 0 }')")"
  if [[ -n "${R[telnet]:-}" ]]; then
    echo "- Telnet logins/s ≥ 0.6 × ceiling: ${R[telnet_ratio]} — $(yes_no "$(awk -v r="${R[telnet_ratio]}" 'BEGIN { print (r + 0 >= 0.6) ? 1 : 0 }')")"
    tf="$(jget "${R[telnet]}" failed)"
    echo "- Zero lost credentials: ${R[telnet_absent]} of ${R[telnet_n]} u{n}/p{n} pairs absent ($tf failed client-side) — $(yes_no "$(awk -v a="${R[telnet_absent]}" -v f="$tf" 'BEGIN { print (a + 0 <= f + 0) ? 1 : 0 }')")"
  fi
} >"$work/section.md"

if [[ ! -s "$out" ]]; then
  {
    echo "# Benchmarks"
    echo
    echo "Appended by \`bench/run.sh\` (one dated section per run; see the script's header for"
    echo "what is measured). Compare honeyport with bareserver (the ceiling) in the same section:"
    echo "absolute numbers on shared machines drift, ratios hold."
  } >"$out"
fi
cat "$work/section.md" >>"$out"
cat "$work/section.md"
log "appended to $out"
