#!/usr/bin/env bash
# SSH login-capture benchmark, loopback only. Runnable from a fresh clone:
#
#   bench/ssh.sh
#
# Builds honeyport (release), the load client bench/sshload (a russh client) and the shared
# tools, then, with the ssh persona's rejection delay at 0 and at its default (2 s), runs
# sshload at concurrency 50 and 100: each worker connects, completes the SSH handshake (key
# exchange and host key), tries one password unique to the attempt (p{n}) as root, is
# refused, and disconnects. Measured: refused handshakes per second, honeyport's CPU time per
# handshake (from /proc), and after each sensor run that every refusal the client got is a
# login.failed in the store and every session is paired. bareserver (the ceiling for a bare
# accept/reply/close, via scanload's send mode) runs at the same concurrency in the same run:
# an SSH handshake is far more work than its exchange, so that ratio shows cost, not a target.
#
# Appends a dated section to BENCHMARKS.md. Knobs: BENCH_SKIP_BUILD=1, HP_BENCH_TARGET=DIR,
# HONEYPORT_TOOLS_SRC=DIR, HONEYPORT_TOOLS_DIR=DIR, BENCH_SSH_SECS (default 15),
# BENCH_SSH_CONCURRENCY ("50 100"), BENCH_OUT=FILE, BENCH_NOTE="text".
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
out="${BENCH_OUT:-$repo/BENCHMARKS.md}"
secs="${BENCH_SSH_SECS:-15}"
concurrencies="${BENCH_SSH_CONCURRENCY:-50 100}"
ssh_addr="127.0.0.1:12222"
bare_addr="127.0.0.1:12626"

log() { printf '[bench-ssh %(%H:%M:%S)T] %s\n' -1 "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }

work="$(mktemp -d /tmp/hp-bench-ssh.XXXXXX)"
log "work dir: $work"

if [[ "${BENCH_SKIP_BUILD:-0}" != 1 ]]; then
  [[ -n "$tools_src" ]] || die "cannot find the shared tools: set HONEYPORT_TOOLS_SRC"
  log "building honeyport (release, CARGO_TARGET_DIR=$target)"
  (cd "$repo" && CARGO_TARGET_DIR="$target" cargo build --release -p honeyport)
  log "building sshload"
  (cd "$here/sshload" && CARGO_TARGET_DIR="$target/sshload" cargo build --release)
  "$tools_src/build.sh" >&2
fi
hp="$target/release/honeyport"
sshload="$target/sshload/release/sshload"
scanload="$HONEYPORT_TOOLS_DIR/scanload"
bareserver="$HONEYPORT_TOOLS_DIR/bareserver"
for b in "$hp" "$sshload" "$scanload" "$bareserver"; do
  [[ -x "$b" ]] || die "missing binary $b (run without BENCH_SKIP_BUILD=1)"
done

pids=()
cleanup() { local p; for p in "${pids[@]}"; do kill -TERM "$p" 2>/dev/null || true; done; }
trap cleanup EXIT

jget() { sed -n "s/.*\"$2\":\([^,}]*\).*/\1/p" <<<"$1" | tr -d '"'; }
clk_tck="$(getconf CLK_TCK)"
cpu_ms() { awk -v t="$clk_tck" '{ sub(/^.*\) /, ""); print int(($12 + $13) * 1000 / t) }' "/proc/$1/stat"; }
loadavg() { cut -d' ' -f1-3 /proc/loadavg; }

# The sensor config: one ssh persona; host keys made on the first start and reused.
write_config() {
  local file="$1" delay_line="$2"
  cat >"$file" <<EOF
sensor = "honeyport-bench-ssh"
[limits]
max_connections = 20000
max_per_source = 20000
idle_timeout = "60s"
[personas.ssh]
type = "ssh"
host_keys = "$work/hostkeys"
$delay_line
[personas.ssh.credentials]
accept = []
accept_any_after = 0
[[listeners]]
name = "ssh"
ports = ${ssh_addr##*:}
bind = ["127.0.0.1"]
persona = "ssh"
EOF
}

start_honeyport() {
  local dir="$1" cfg="$2"
  rm -rf "$dir"; mkdir -p "$dir"
  "$hp" --data-dir "$dir" run -c "$cfg" >"$dir.stdout" 2>"$dir.stderr" &
  hp_pid=$!
  pids+=("$hp_pid")
  local i
  for i in $(seq 1 400); do
    grep -q 'storing events in' "$dir.stdout" 2>/dev/null && return
    kill -0 "$hp_pid" 2>/dev/null || { cat "$dir.stderr" >&2; die "honeyport exited at start"; }
    sleep 0.05
  done
  die "honeyport did not start"
}
stop_honeyport() {
  kill -TERM "$hp_pid"
  wait "$hp_pid" || true
}

started_at="$(date -u '+%Y-%m-%d %H:%M:%S UTC')"
cpu_model="$(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -n1)"
commit="$(git -C "$repo" rev-parse --short HEAD 2>/dev/null || echo unknown)"
if [[ -n "$(git -C "$repo" status --porcelain --untracked-files=no -- crates 2>/dev/null)" ]]; then
  commit="$commit (crates/ modified)"
fi
load_start="$(loadavg)"
log "load average at start: $load_start"

"$bareserver" "$bare_addr" >"$work/bareserver.log" 2>&1 &
bare_pid=$!
pids+=("$bare_pid")
sleep 0.3

rows=()
checks=()
verdict_500="met"
for delay in 0 default; do
  if [[ "$delay" == 0 ]]; then line='fail_delay = 0'; else line='# fail_delay: the default (2s)'; fi
  cfg="$work/ssh-$delay.toml"
  write_config "$cfg" "$line"
  "$hp" check -c "$cfg" >&2
  dir="$work/data-$delay"
  start_honeyport "$dir" "$cfg"
  total_refused=0
  keys="default rsa"
  [[ "$delay" == 0 ]] || keys="default"
  for key in $keys; do
  for c in $concurrencies; do
    # The ceiling, same concurrency, same moment.
    bare="$("$scanload" --target "$bare_addr" --mode send --payload 'EHLO scan{n}\r\n' \
      --conns $(( c * 200 )) --concurrency "$c" | tee "$work/bare-$delay-$key-c$c.json")"
    bare_rate="$(jget "$bare" ok_per_s)"
    c0="$(cpu_ms "$hp_pid")"
    lc0="$(awk '{print $1}' /proc/loadavg)"
    res="$("$sshload" --addr "$ssh_addr" --concurrency "$c" --secs "$secs" --host-key "$key" \
      2>"$work/sshload-$delay-$key-c$c.err" | tee "$work/sshload-$delay-$key-c$c.json")"
    c1="$(cpu_ms "$hp_pid")"
    refused="$(jget "$res" refused)"
    errors="$(jget "$res" errors)"
    rate="$(jget "$res" answered_per_sec)"
    total_refused=$(( total_refused + refused ))
    cpu_per="$(awk -v a="$c0" -v b="$c1" -v n="$refused" 'BEGIN { if (n > 0) printf "%.2f", (b - a) / n; else print "n/a" }')"
    ratio="$(awk -v a="$rate" -v b="$bare_rate" 'BEGIN { if (b > 0) printf "%.3f", a / b; else print "n/a" }')"
    log "delay=$delay key=$key c=$c: $rate refused handshakes/s ($refused, $errors errors), $cpu_per ms CPU each; bareserver $bare_rate/s"
    key_name="Ed25519 (russh default)"
    [[ "$key" == rsa ]] && key_name="RSA 3072 (rsa-sha2-512)"
    rows+=("| $delay | $key_name | $c | **$(printf '%.0f' "$rate")** | $refused | $errors | $cpu_per ms | $(printf '%.0f' "$bare_rate") | $ratio |")
    if [[ "$delay" == 0 && "$key" == default ]] && ! awk -v r="$rate" 'BEGIN { exit !(r >= 500) }'; then
      verdict_500="not met"
    fi
  done
  done
  stop_honeyport
  # Every refusal the client saw is in the store; every session is paired.
  db="$dir/honeyport.db"
  stored="$(sqlite3 "$db" "SELECT count(*) FROM events WHERE eventid = 'login.failed'")"
  connects="$(sqlite3 "$db" "SELECT count(*) FROM events WHERE eventid = 'session.connect'")"
  closes="$(sqlite3 "$db" "SELECT count(*) FROM events WHERE eventid = 'session.closed'")"
  stopped="$(grep '^honeyport: stopped\.' "$dir.stdout" || true)"
  log "delay=$delay: $stored login.failed stored for $total_refused refusals; $connects connects, $closes closes"
  checks+=("delay=$delay: $stored \`login.failed\` stored for $total_refused refusals the client saw; $connects \`session.connect\`, $closes \`session.closed\`; \`$stopped\`")
  rm -rf "$dir"
done
kill -TERM "$bare_pid" 2>/dev/null || true
load_end="$(loadavg)"

{
  echo
  echo "## $started_at: SSH failed-password handshakes (bench/ssh.sh)"
  echo
  echo "- commit $commit; $cpu_model, $(nproc) cores; load average $load_start at start, $load_end at end"
  [[ -n "${BENCH_NOTE:-}" ]] && echo "- note: $BENCH_NOTE"
  echo "- load: bench/sshload (russh client, same machine), ${secs} s per run; one password per connection; kex, cipher and MAC as russh's client prefers them (curve25519, chacha20-poly1305), host key Ed25519 or RSA as the row says; the target is judged on the delay-0 Ed25519 rows (every concurrency)"
  echo "- raw output: $work"
  echo
  echo "| rejection delay | host key | concurrency | refused handshakes/s | refused | client errors | honeyport CPU per handshake | bareserver sessions/s (same c) | ratio |"
  echo "|---|---|---|---|---|---|---|---|---|"
  printf '%s\n' "${rows[@]}"
  echo
  for l in "${checks[@]}"; do echo "- $l"; done
  echo "- target >= 500 failed-password handshakes/s (rejection delay 0): **$verdict_500**"
  echo "- CPU per handshake is honeyport's user+system time over the run divided by the handshakes; with the 2 s delay most of each session is waiting, so the rate is concurrency / 2 s by design"
} >>"$out"
log "appended to $out"
