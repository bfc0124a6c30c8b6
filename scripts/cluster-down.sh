#!/usr/bin/env bash
# Stops what scripts/cluster-up.sh started in --dir (default ./data/cluster): the ocpp-meter
# instances first (SIGTERM: each drains its buffers into the cluster), then the six Redis nodes,
# and removes the directory (the nodes keep nothing on disk worth keeping; --keep leaves it).
set -euo pipefail
cd "$(dirname "$0")/.."

dir=data/cluster
keep=0
while [ $# -gt 0 ]; do
  case "$1" in
    --dir) dir="$2"; shift 2 ;;
    --keep) keep=1; shift ;;
    *) echo "usage: $0 [--dir DIR] [--keep]" >&2; exit 2 ;;
  esac
done
[ -d "$dir" ] || { echo "no $dir" >&2; exit 0; }

for pidfile in "$dir"/instance-*/server.pid; do
  [ -e "$pidfile" ] || continue
  pid="$(cat "$pidfile")"
  kill -TERM "$pid" 2>/dev/null || true
done
for pidfile in "$dir"/instance-*/server.pid; do
  [ -e "$pidfile" ] || continue
  pid="$(cat "$pidfile")"
  for _ in $(seq 1 300); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
  kill -KILL "$pid" 2>/dev/null || true
  rm -f "$pidfile"
done
for pidfile in "$dir"/node-*/redis.pid; do
  [ -e "$pidfile" ] || continue
  kill -TERM "$(cat "$pidfile")" 2>/dev/null || true
done
sleep 0.3
if [ "$keep" = 0 ]; then
  rm -rf "$dir"
else
  rm -f "$dir/cluster.env"
fi
echo "stopped"
