#!/usr/bin/env bash
# The crash-safety fault tests (tests/crash.rs) at the issue's full length, against the release
# binary: SIGKILL under load, a 20 s Redis outage under load, Redis at maxmemory, a full
# write-ahead log. `cargo test --workspace` runs the same tests with a 3 s outage on the debug
# build; this is the long form for a release candidate.
#
#   scripts/fault-tests.sh [OUTAGE_SECS]     (default 20)
set -euo pipefail
cd "$(dirname "$0")/.."
export FAULT_REDIS_OUTAGE_SECS="${1:-20}"
cargo test --release --test crash -- --nocapture --test-threads 1
