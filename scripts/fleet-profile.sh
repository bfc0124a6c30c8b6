#!/usr/bin/env bash
# Profiling aid of issue 5 (never run by CI; docs/performance.md, round 4): a private redis-server,
# the release server and a fleet of N charge points (MeterValues of 10 values every 10 s); after
# the warm-up, the CPU share of server, generator and Redis over PSECS seconds, and a perf profile
# of the server (PERF=fp: perf record -g; PERF=dwarf: call graphs through DWARF; PERF=none: none).
#   scripts/fleet-profile.sh                       # N=19000, PSECS=30, PERF=fp
#   N=2000 PERF=none PSECS=40 BIN=/tmp/old scripts/fleet-profile.sh
# Then: perf report -i $W/perf.data --no-children --sort symbol
set -euo pipefail
cd "$(dirname "$0")/.."
bin=${BIN:-target/release}; N=${N:-19000}; W=${W:-$(mktemp -d /tmp/ocpp-meter-profile.XXXXXX)}
mkdir -p "$W"
# shellcheck source=scripts/profile-common.sh
. scripts/profile-common.sh
cpu() { awk -v hz=100 '{print ($14 + $15) / hz}' /proc/$1/stat; }
start_redis_and_server
warm=$((N / 2000 + 12))
$bin/ocpp-loadgen --url ws://127.0.0.1:$ws/ocpp/ --charge-points $N --samples-per-message 10 --interval-ms 10000 --connect-rate 2000 --source-addrs 2 --id-prefix FL --warmup-secs $warm --duration-secs $((warm + ${PSECS:-30} + 10)) --idle-secs 0 --reply-timeout-secs 60 > $W/fleet.json 2> $W/fleet.log &
lp=$!
sleep $((warm + 3))
s0=$(cpu $sp); l0=$(cpu $lp); r0=$(cpu $rp); t0=$(date +%s.%N)
if [ "${PERF:-fp}" = none ]; then
  sleep ${PSECS:-30}
elif [ "${PERF:-fp}" = dwarf ]; then
  perf record -F 199 --call-graph dwarf,16384 -p $sp -o $W/perf.data -- sleep ${PSECS:-30} > /dev/null 2>&1
else
  perf record -F 999 -g -p $sp -o $W/perf.data -- sleep ${PSECS:-30} > /dev/null 2>&1
fi
s1=$(cpu $sp); l1=$(cpu $lp); r1=$(cpu $rp); t1=$(date +%s.%N)
python3 -c "d=$t1-$t0; print(f'window {d:.1f}s server {($s1-$s0)/d*100:.0f}% loadgen {($l1-$l0)/d*100:.0f}% redis {($r1-$r0)/d*100:.0f}% of a core')"
grep -E "^(Threads|VmRSS)" /proc/$sp/status
wait $lp || true
cat $W/fleet.json; echo
curl -s http://127.0.0.1:$hp/metrics | grep -E "samples_(ingested|stored)" | head -3
kill -TERM $sp; wait $sp || true; kill $rp
echo "perf data and logs: $W"
