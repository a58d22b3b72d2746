#!/usr/bin/env bash
# RARP -> first probe on the wire, p50/p99, with N bindings mirrored, against
# the floor: a raw-socket responder that answers each RARP with a fixed ARP
# request and looks nothing up. Both run in one switch namespace on their
# own veth, and each RARP and probe is captured at the VM side of the veth
# (kernel timestamps, tcpdump in immediate mode).
# Usage: sudo scripts/bench/latency.sh [bin/rarp-replay] [N=100000] [RARPS=200] [RUNS=3]
set -euo pipefail
bin=$(realpath "${1:-bin/rarp-replay}") n=${2:-100000} k=${3:-200} runs=${4:-3}
here=$(cd "$(dirname "$0")" && pwd)
id=$$-$RANDOM sw=rr-lat-sw-$id vd=rr-lat-vd-$id vf=rr-lat-vf-$id tmp=$(mktemp -d)
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  for ns in "$sw" "$vd" "$vf"; do ip netns del "$ns" 2>/dev/null || true; done
  rm -rf "$tmp"
}
trap cleanup EXIT
(cd "$here/../.." && go build -o "$tmp/latency" ./scripts/bench/latency)
for ns in "$sw" "$vd" "$vf"; do ip netns add "$ns"; done
ip -n "$sw" link add br0 address 02:00:5e:10:00:01 type bridge
ip -n "$sw" link set br0 up
ip -n "$sw" addr add 192.0.2.1/24 dev br0
ip -n "$sw" addr add 198.18.0.1/15 dev br0
ip -n "$sw" link add pd type veth peer name eth0 netns "$vd"   # the daemon's port
ip -n "$sw" link set pd master br0 up
ip -n "$sw" link add pf type veth peer name eth0 netns "$vf"   # the floor's port
ip -n "$sw" link set pf up
for ns in "$vd" "$vf"; do ip -n "$ns" link set eth0 up; done
base=02aa00000000
awk -v n="$n" -v k="$k" 'BEGIN {
  for (i = 0; i < n; i++)
    printf "neigh replace 198.%d.%d.%d lladdr 02:00:%02x:%02x:%02x:%02x dev br0 nud noarp extern_learn\n",
      18 + int(i / 65536), int(i / 256) % 256, i % 256, int(i / 16777216) % 256, int(i / 65536) % 256, int(i / 256) % 256, i % 256
  for (i = 0; i < k; i++)
    printf "neigh replace 192.0.2.%d lladdr 02:aa:00:00:%02x:%02x dev br0 nud noarp extern_learn\n", 2 + i % 250, int(i / 256), i % 256
}' >"$tmp/batch"
ip -n "$sw" -batch "$tmp/batch"
ip netns exec "$sw" "$bin" listen -i pd --probe-retries 0 --probe-timeout 50ms --cycle-window 100ms --log-format json >"$tmp/daemon.log" 2>&1 &
pids+=($!)
ip netns exec "$sw" "$tmp/latency" floor pf &
pids+=($!)
until grep -q '"msg":"listening"' "$tmp/daemon.log"; do sleep 0.01; done
echo "mirrored: $(grep -o '"bindings":[0-9]*' "$tmp/daemon.log" | cut -d: -f2) bindings; $k RARPs per run, 20 ms apart"
for r in $(seq "$runs"); do
  for side in d f; do
    ns=$vd; [ $side = f ] && ns=$vf
    ip netns exec "$ns" tcpdump --immediate-mode -i eth0 -U -n -w "$tmp/$side.pcap" 'rarp or arp or icmp6' 2>"$tmp/$side.err" &
    dump=$!
    until grep -q 'listening on' "$tmp/$side.err"; do sleep 0.01; done
    ip netns exec "$ns" "$tmp/latency" send eth0 "$k" 20ms "$base"
    sleep 0.3
    kill -INT "$dump"; wait "$dump" || true
    result=$("$tmp/latency" analyze "$tmp/$side.pcap")
    [ $side = d ] && who="rarp-replay" || who="floor      "
    echo "run $r $who $result"
  done
done
