#!/usr/bin/env bash
# Profiling aid of issue 5 (never run by CI; docs/performance.md, round 4): server RSS per
# charge point right after N charge points connected, after ACTIVE seconds of MeterValues (10
# values every 10 s) and after 40 and 80 s of silence.
#   N=10000 scripts/fleet-rss.sh
# HEAPTRACK=1 also attaches heaptrack to the server and kills it (SIGKILL) at the end of the idle
# phase, so heaptrack's "leaked" is what was live then (issue 13's breakdown):
#   N=3000 HEAPTRACK=1 scripts/fleet-rss.sh; heaptrack_print -f $W/heap.zst -l 1 ...
# INUSE=1 also reads the heap in use before the fleet and at the end: jemalloc's allocated
# bytes from /metrics, or on a glibc build malloc_stats through gdb (a pause of well under a
# second); steadier than RSS, which keeps what the allocator has not given back.
set -euo pipefail
cd "$(dirname "$0")/.."
bin=${BIN:-target/release}; N=${N:-10000}; W=${W:-$(mktemp -d /tmp/ocpp-meter-rss.XXXXXX)}; ACTIVE=${ACTIVE:-60}
mkdir -p "$W"
# shellcheck source=scripts/profile-common.sh
. scripts/profile-common.sh
rss() { awk '$1=="VmRSS:" {print $2}' /proc/$sp/status; }
# KiB of heap in use: malloc_stats writes to the server's stderr (server.log); its last
# "in use bytes" line is the total over all arenas.
# A build on jemalloc (the default) reports its allocated bytes on /metrics instead.
inuse() {
  [ -n "${INUSE:-}" ] || { echo 0; return; }
  local allocated
  allocated=$(curl -fsS "http://127.0.0.1:$hp/metrics" | awk '$1=="ocpp_memory_allocated_bytes" {print int($2 / 1024)}')
  if [ -n "$allocated" ]; then echo "$allocated"; return; fi
  gdb -p $sp -batch -ex 'call (void) malloc_stats()' > /dev/null 2>&1
  { grep "in use bytes" "$W/server.log" || echo "in use bytes = 0"; } | tail -1 | awk '{print int($NF / 1024)}'
}
connected() { curl -fsS "http://127.0.0.1:$hp/metrics" | awk '$1=="ocpp_connected_charge_points" {print $2}'; }
start_redis_and_server
if [ -n "${HEAPTRACK:-}" ]; then
  heaptrack -o "$W/heap" -p $sp > "$W/heaptrack.log" 2>&1 &
  hp_pid=$!
  sleep 5
fi
r0=$(rss); u0=$(inuse)
$bin/ocpp-loadgen --url ws://127.0.0.1:$ws/ocpp/ --charge-points $N --samples-per-message 10 --interval-ms 10000 --connect-rate 2000 --source-addrs 2 --id-prefix FL --duration-secs $ACTIVE --idle-secs 100 --reply-timeout-secs 60 > $W/fleet.json 2> $W/fleet.log &
lp=$!
sleep $((N / 2000 + 2)); r1=$(rss)
sleep $((ACTIVE - N / 2000 - 2)); r2=$(rss)
sleep 40; r3=$(rss)
sleep 40; r4=$(rss); c4=$(connected); u4=$(inuse)
# Per charge point connected at the end (a refused or dropped connection would otherwise be
# counted as one that costs nothing).
python3 -c "
n=$c4
print(f'{n} of $N charge points connected at the end')
for name,v in (('base',$r0),('connected',$r1),('active end',$r2),('idle 40s',$r3),('idle 80s',$r4)):
    print(f'{name:12s} {v/1024:8.1f} MiB  {(v-$r0)/n:6.1f} KiB/CP over base')
if $u4:
    print(f'heap in use {$u0/1024:.1f} MiB before, {$u4/1024:.1f} MiB at the end: {($u4-$u0)/n:.1f} KiB/CP over base')"
if [ -n "${HEAPTRACK:-}" ]; then
  kill -KILL $sp; wait $hp_pid || true; echo "heaptrack data: $(ls "$W"/heap.*)"
else
  kill -TERM $sp
fi
kill $lp 2>/dev/null; wait $sp || true; kill $rp
