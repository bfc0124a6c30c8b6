#!/usr/bin/env bash
# Runs every cargo-fuzz target in fuzz/ for SECONDS each (docs/fuzzing.md).
#
#   bash scripts/fuzz.sh SECONDS [TARGET...]
#
# Needs a nightly toolchain (libFuzzer and AddressSanitizer use unstable rustc flags); without
# one it says how to get one and exits 0, so CI on a stable-only machine is not failed by it.
# Installs cargo-fuzz when missing. Targets run one after another, one libFuzzer process at a
# time. New inputs that a run finds go to fuzz/work/corpus/TARGET (not checked in); the seed
# corpus fuzz/corpus/TARGET is only read. Exits 1 if any target crashed, after running the rest,
# and names every crash input (fuzz/artifacts/TARGET/crash-*); reproduce one with
#   cargo +nightly fuzz run -a TARGET fuzz/artifacts/TARGET/crash-...
# Set FUZZ_NICE=19 to run at the lowest CPU priority on a shared machine. Set FUZZ_SEED=N for a
# reproducible run (libFuzzer -seed=N: the same inputs in the same order from the same corpus);
# CI does, so that a submission is not failed by a coincidence no earlier run could reproduce.
# Exploration (longer runs, random seeds) is for runs by hand; docs/fuzzing.md.
set -euo pipefail
cd "$(dirname "$0")/.."

usage="usage: bash scripts/fuzz.sh SECONDS [TARGET...]"
secs=${1:?$usage}
shift
case $secs in '' | *[!0-9]*) echo "$usage" >&2; exit 2 ;; esac

# Every target of fuzz/Cargo.toml.
TARGETS=(frame request answer sampled_value chunk_decode chunk_roundtrip rollup_decode wal_segment)
if [ $# -gt 0 ]; then
  TARGETS=("$@")
fi

if ! command -v rustup >/dev/null 2>&1 || ! rustup toolchain list | grep -q '^nightly'; then
  echo "fuzz.sh: no nightly toolchain, fuzzers not run. To run them:"
  echo "  rustup toolchain install nightly && cargo install cargo-fuzz --locked"
  echo "  bash scripts/fuzz.sh $secs"
  exit 0
fi
if ! cargo fuzz --version >/dev/null 2>&1; then
  echo "fuzz.sh: installing cargo-fuzz"
  cargo install cargo-fuzz --locked
fi

seed_arg=()
if [ -n "${FUZZ_SEED:-}" ]; then
  seed_arg=(-seed="$FUZZ_SEED")
fi

nice_cmd=()
if [ -n "${FUZZ_NICE:-}" ]; then
  nice_cmd=(nice -n "$FUZZ_NICE")
fi

# -a: debug assertions (overflow checks included) in the fuzzed code too.
"${nice_cmd[@]}" cargo +nightly fuzz build -a

crashed=()
# Crash inputs written by this run are the artifacts newer than this marker.
marker=$(mktemp)
trap 'rm -f "$marker"' EXIT
for target in "${TARGETS[@]}"; do
  mkdir -p "fuzz/work/corpus/$target" "fuzz/artifacts/$target"
  echo "fuzz.sh: $target for ${secs}s"
  # Inputs up to 4 KiB (frames and chunks are bigger in life, but the decoders' logic is all
  # reached well below that); 10 s per input or 2 GiB RSS counts as a failure too.
  if ! "${nice_cmd[@]}" cargo +nightly fuzz run -a "$target" \
    "fuzz/work/corpus/$target" "fuzz/corpus/$target" -- \
    -max_total_time="$secs" -max_len=4096 -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 \
    "${seed_arg[@]}"; then
    crashed+=("$target")
  fi
done

if [ ${#crashed[@]} -gt 0 ]; then
  echo "fuzz.sh: FAILED: ${crashed[*]}" >&2
  for target in "${crashed[@]}"; do
    find "fuzz/artifacts/$target" -type f -newer "$marker" | while read -r input; do
      echo "  $target crash input: $input" >&2
    done
  done
  echo "reproduce: cargo +nightly fuzz run -a TARGET INPUT" >&2
  exit 1
fi
echo "fuzz.sh: ${#TARGETS[@]} target(s), ${secs}s each, no crash"
