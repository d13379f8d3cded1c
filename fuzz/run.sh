#!/usr/bin/env bash
# Runs every fuzz target for a fixed budget, starting from its kept corpus.
#   bash fuzz/run.sh [SECONDS_PER_TARGET] [TARGET ...]
# Needs cargo-fuzz (`cargo install --locked cargo-fuzz`) and a C++ compiler; works on
# stable Rust (no sanitizer, so no -Z flags). New inputs the run finds go to a
# temporary directory, not the committed corpus; a crash or timeout stops the run,
# prints the input and leaves it under fuzz/artifacts/ (keep it in
# fuzz/regressions/<target>/ once fixed: tests/it/attack.rs replays that directory).
set -euo pipefail
cd "$(dirname "$0")/.."

secs="${1:-20}"
shift || true
targets=("$@")
if [ "${#targets[@]}" -eq 0 ]; then
  targets=(order_body query_strings datetimes rrule_expansion feed_render)
fi

# Debug builds: compiling the whole service with coverage instrumentation dominates
# the cost, and the checks are about correctness, not speed.
# `cargo fuzz run` builds a target when it must; build them all at once first.
cargo fuzz build --sanitizer none --dev

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
for t in "${targets[@]}"; do
  mkdir -p "$work/$t"
  echo "fuzz: $t for ${secs}s"
  # -timeout: one input may take at most 10 s; -rss_limit_mb: and 2 GiB.
  cargo fuzz run --sanitizer none --dev "$t" "$work/$t" "fuzz/corpus/$t" -- \
    -max_total_time="$secs" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 \
    >"$work/$t.log" 2>&1 || {
      tail -n 60 "$work/$t.log"
      echo "fuzz: $t FAILED; the input is under fuzz/artifacts/$t/" >&2
      exit 1
    }
  grep -E '^stat::number_of_executed_units|^Done' "$work/$t.log" | sed "s/^/fuzz: $t: /"
done
