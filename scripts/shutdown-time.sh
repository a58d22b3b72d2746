#!/usr/bin/env bash
# Measures how long `rarp-replay listen` takes to exit after SIGTERM with N
# access ports open (default 200), in a namespace it creates and removes.
# Usage: sudo scripts/shutdown-time.sh [bin/rarp-replay] [PORTS] [RUNS]
set -euo pipefail
bin=${1:-bin/rarp-replay} ports=${2:-200} runs=${3:-5}
ns=rr-stop-$$-$RANDOM tmp=$(mktemp -d) pid=
cleanup() { [ -n "$pid" ] && kill "$pid" 2>/dev/null; ip netns del "$ns" 2>/dev/null || true; rm -rf "$tmp"; }
trap cleanup EXIT
ip netns add "$ns"
ip -n "$ns" link add br0 type bridge
ip -n "$ns" link set br0 up
for i in $(seq "$ports"); do
  ip -n "$ns" link add "p$i" type veth peer name "q$i"
  ip -n "$ns" link set "p$i" master br0 up
  ip -n "$ns" link set "q$i" up
done
for r in $(seq "$runs"); do
  ip netns exec "$ns" "$bin" listen --log-format json >"$tmp/log" 2>&1 & pid=$!
  for _ in $(seq 200); do grep -q '"msg":"listening"' "$tmp/log" && break; sleep 0.05; done
  t0=$(date +%s%N); kill -TERM "$pid"; wait "$pid" || true; t1=$(date +%s%N); pid=
  echo "run $r: $(grep -o '"ports":[0-9]*' "$tmp/log" | cut -d: -f2) ports open, exit $(( (t1 - t0) / 1000000 )) ms after SIGTERM"
done
