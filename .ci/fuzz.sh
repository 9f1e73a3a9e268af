#!/usr/bin/env bash
# Short libFuzzer run of every cargo-fuzz target in fuzz/ (event decoding, the scripted
# persona's dialogue, echo-this and templates, config validation). Fails when a target
# crashes, panics, times out or runs out of memory; the input is left in
# fuzz/artifacts/<target>/ and printed.
#
#   bash .ci/fuzz.sh                 # every target, 20 s each
#   FUZZ_SECONDS=300 bash .ci/fuzz.sh config
#
# Only a stable toolchain is installed and rustup cannot fetch nightly: cargo-fuzz's -Z
# flags (sanitizer, coverage) are accepted by stable rustc with RUSTC_BOOTSTRAP=1.
set -euo pipefail
cd "$(dirname "$0")/../fuzz"

export RUSTC_BOOTSTRAP=1
# Instrumented builds have their own target dir (gitignored), apart from the workspace's.
export CARGO_TARGET_DIR="$PWD/target"
export CARGO_TERM_COLOR="${CARGO_TERM_COLOR:-never}"
secs="${FUZZ_SECONDS:-20}"

if ! cargo fuzz --version >/dev/null 2>&1; then
  echo "== installing cargo-fuzz"
  cargo install cargo-fuzz --locked
fi
cargo fuzz --version

if [ "$#" -gt 0 ]; then
  targets=("$@")
else
  mapfile -t targets < <(cargo fuzz list)
fi

# No sanitizer: every crate here denies `unsafe` (all but the two sockopt calls of
# honeyport's listener/syn.rs, which no target reaches), so AddressSanitizer would only
# instrument dependencies, and the targets look for panics, hangs and unbounded memory (libFuzzer's own
# -timeout and -rss_limit_mb). One build of every target at once: with ASan and one build per
# target the CI build took 560 s, this way 334 s.
sanitizer=(-s none)
echo "== building ${targets[*]} (sanitizer: none)"
start=$(date +%s)
if [ "$#" -gt 0 ]; then
  for t in "${targets[@]}"; do cargo fuzz build "${sanitizer[@]}" "$t"; done
else
  cargo fuzz build "${sanitizer[@]}"
fi
echo "build took $(($(date +%s) - start)) s"

failed=()
for t in "${targets[@]}"; do
  corpus="corpus/$t"
  mkdir -p "$corpus" "artifacts/$t"
  # Seeds are committed; the corpus grows across runs and stays out of git.
  if [ -d "seeds/$t" ]; then
    cp -n "seeds/$t"/* "$corpus"/ 2>/dev/null || true
  fi
  echo "== fuzz $t for ${secs}s"
  log="$(mktemp)"
  set +e
  cargo fuzz run "${sanitizer[@]}" "$t" "$corpus" -- \
    -max_total_time="$secs" -timeout=30 -rss_limit_mb=2048 -print_final_stats=1 >"$log" 2>&1
  rc=$?
  set -e
  grep -E '^(Done|stat::number_of_executed_units|stat::average_exec_per_sec|#[0-9]+[[:space:]]+DONE)' "$log" || true
  if [ "$rc" -ne 0 ]; then
    echo "!! $t failed (exit $rc); last lines of its log:"
    tail -n 60 "$log"
    for a in "artifacts/$t"/*; do
      [ -f "$a" ] || continue
      echo "-- $a (base64):"
      head -c 4096 "$a" | base64
    done
    failed+=("$t")
  fi
  rm -f "$log"
done

if [ "${#failed[@]}" -gt 0 ]; then
  echo "fuzz: FAILED: ${failed[*]} (reproduce: cd fuzz && RUSTC_BOOTSTRAP=1 cargo fuzz run <target> artifacts/<target>/<file>)"
  exit 1
fi
echo "fuzz: ${#targets[@]} targets, ${secs}s each, no crash"
