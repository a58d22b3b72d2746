#!/usr/bin/env bash
# Every benchmark of docs/PERFORMANCE.md, in one command, as root:
#   sudo scripts/bench/run.sh [bin/rarp-replay]
set -euo pipefail
cd "$(dirname "$0")/../.."
bin=${1:-bin/rarp-replay}
export PATH=$PATH:/usr/local/go/bin
go build -o "$bin" ./cmd/rarp-replay
echo "== 4. resolver cost per lookup: netlink mirror vs /proc/net/arp per RARP"
go test -run '^$' -bench BenchmarkResolver -benchtime 300x ./neigh | grep Benchmark
echo "== 3. mirror at scale: 100k bindings, then 10k changes/s"
scripts/bench/mirror-scale.sh "$bin" 100000 10000 3
echo "== 1. RARP -> first probe on the wire, 100k bindings, against the raw-socket floor"
scripts/bench/latency.sh "$bin" 100000 200 3
echo "== 2. mass migration: 2,000 VMs x 5 RARP rounds within 1 s on one port"
scripts/bench/mass.sh "$bin" 2000 3
echo "== shutdown: SIGTERM -> exit with 200 veth pairs (400 ports)"
scripts/shutdown-time.sh "$bin" 200 3
