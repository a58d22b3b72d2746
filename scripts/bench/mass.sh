#!/usr/bin/env bash
# Mass migration: COUNT VMs (default 2,000) arrive on one port at once, each
# announced with QEMU's five RARP rounds within 1 s; a responder on the VM
# side answers every probe as the VM addressed. Reports the time from the
# first RARP to the last binding programmed (the daemon's "migration handled"
# log lines), how many migrations were handled, and libpcap's kernel drops
# for the port (from /metrics).
# A Markdown table goes to $BENCH_TABLE when set; the exit status is
# non-zero when a run handled no migration at all (never on a time).
# Usage: sudo scripts/bench/mass.sh [bin/rarp-replay] [COUNT=2000] [RUNS=3]
set -euo pipefail
bin=$(realpath "${1:-bin/rarp-replay}") count=${2:-2000} runs=${3:-3}
here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=common.sh
. "$here/common.sh"
id=$$-$RANDOM sw=rr-mass-sw-$id vm=rr-mass-vm-$id tmp=$(mktemp -d)
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  ip netns del "$sw" 2>/dev/null || true
  ip netns del "$vm" 2>/dev/null || true
  rm -rf "$tmp"
}
trap cleanup EXIT
(cd "$here/../.." && go build -o "$tmp/latency" ./scripts/bench/latency)
ip netns add "$sw"; ip netns add "$vm"
ip -n "$sw" link add br0 address 02:00:5e:10:00:01 type bridge
ip -n "$sw" link set br0 up
ip -n "$sw" addr add 198.18.0.1/15 dev br0
ip -n "$sw" link add p1 type veth peer name eth0 netns "$vm"
ip -n "$sw" link set p1 master br0 up
ip -n "$vm" link set eth0 up
ip -n "$sw" link set lo up
ip netns exec "$vm" "$tmp/latency" respond eth0 &
pids+=($!)
table=$tmp/table broken=0
{ echo "| run | VMs × 5 RARPs | migrations handled | with bindings programmed | first RARP → last programmed | pcap kernel drops on the port |"
  echo "| --- | --- | --- | --- | --- | --- |"; } >"$table"
for r in $(seq "$runs"); do
  base=02b${r}00000000
  awk -v n="$count" -v r="$r" 'BEGIN { for (i = 0; i < n; i++)
    printf "neigh replace 198.%d.%d.%d lladdr 02:b%d:00:00:%02x:%02x dev br0 nud noarp extern_learn\n", 18 + r, int(i / 256) % 256, i % 256, r, int(i / 256), i % 256 }' >"$tmp/batch"
  ip -n "$sw" -batch "$tmp/batch"
  ip netns exec "$sw" "$bin" listen -i p1 --log-format json --metrics-addr 127.0.0.1:9466 >"$tmp/log" 2>&1 &
  pid=$!; pids+=($pid)
  bench_wait_listening "$pid" "$tmp/log" mass
  start=$(ip netns exec "$vm" "$tmp/latency" mass eth0 "$count" "$base" | awk -F= '/start_unix_ns/ { print $2 }')
  for _ in $(seq 100); do [ "$(grep -c '"msg":"migration handled"' "$tmp/log")" -ge "$count" ] && break; sleep 0.1; done
  drops=$(ip netns exec "$sw" "$tmp/latency" get http://127.0.0.1:9466/metrics 2>/dev/null | awk '/^rarp_replay_pcap_kernel_drops_total\{port="p1"\}/ { print $2 }')
  kill "$pid"; wait "$pid" 2>/dev/null || true
  handled=$(grep -c '"msg":"migration handled"' "$tmp/log" || true)
  programmed=$(grep '"msg":"migration handled"' "$tmp/log" | grep -c '"programmed":\["' || true)
  if [ "$programmed" -eq 0 ]; then
    echo "run $r: broken: no binding programmed ($handled migrations handled)" >&2; broken=1
    ip -n "$sw" neigh flush dev br0; continue
  fi
  last=$(grep '"msg":"migration handled"' "$tmp/log" | sed 's/.*"time":"\([^"]*\)".*/\1/' | sort | tail -1)
  last_ns=$(date -d "$last" +%s%N)
  ms=$(( (last_ns - start) / 1000000 ))
  echo "run $r: $count VMs x 5 RARPs; $handled migrations handled, $programmed with bindings programmed; first RARP -> last programmed $ms ms; pcap kernel drops on the port: ${drops:-?}"
  echo "| $r | $count | $handled | $programmed | $ms ms | ${drops:-?} |" >>"$table"
  ip -n "$sw" neigh flush dev br0
done
[ -n "${BENCH_TABLE:-}" ] && cp "$table" "$BENCH_TABLE"
exit $broken
