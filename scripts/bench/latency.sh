#!/usr/bin/env bash
# RARP -> first probe on the wire, with N bindings mirrored, against the
# floor, in one invocation so that the ratio comes from one run:
#   rarp-replay  `listen -i pd` on a bridge port, N+RARPS bindings mirrored
#   C floor      scripts/bench/floor.c: raw AF_PACKET socket with a kernel
#                filter for RARP, blocking recv in a tight loop, a prebuilt ARP request back,
#                no lookup (compiled here with gcc -O2)
#   Go floor     the same in Go (scripts/bench/latency floor): what the
#                language and its runtime add, with nothing of the daemon
#   libpcap floor  the same through the daemon's own capture code
#                (scripts/bench/latency pcapfloor: a capture/pcapio port
#                handle, read through Go's poller, the probe written through
#                it): what the capture path adds, without the daemon's decision
#   socket floor the same through Go's poller on a plain packet socket, no
#                libpcap (scripts/bench/latency pollfloor): the capture path
#                without libpcap's ring and cgo read
# Each responder has its own veth, a bridge port (the daemon's in its switch
# namespace, the floors' in another with its own bridge); RARPs for
# distinct MACs are sent from the VM side, SPACING apart, and tcpdump
# (immediate mode, kernel timestamps) on the VM side records each RARP going
# out and each probe coming in: latency is first probe minus RARP, per MAC.
# Blocks of RARPS RARPs alternate between the responders, both spacings, RUNS
# rounds, the order rotating each round. Prints each block, then a Markdown
# table (also written to $BENCH_TABLE when set). Exits non-zero only when a
# run is broken (a responder answered nothing, tcpdump saw no RARP), never on
# a time.
# Usage: sudo scripts/bench/latency.sh [bin/rarp-replay] [N=100000] [RARPS=200] [RUNS=5] [SPACINGS="5ms 20ms"]
set -euo pipefail
bin=$(realpath "${1:-bin/rarp-replay}") n=${2:-100000} k=${3:-200} runs=${4:-5} spacings=${5:-5ms 20ms}
here=$(cd "$(dirname "$0")" && pwd)
export PATH=$PATH:/usr/local/go/bin
id=$$-$RANDOM sw=rr-lat-sw-$id fs=rr-lat-fs-$id tmp=$(mktemp -d)
sides=(d c g p s)                                       # daemon, C, Go, libpcap and socket floors
declare -A vm=([d]=rr-lat-vd-$id [c]=rr-lat-vc-$id [g]=rr-lat-vg-$id [p]=rr-lat-vp-$id [s]=rr-lat-vs-$id)
declare -A name=([d]=rarp-replay [c]="C floor" [g]="Go floor" [p]="libpcap floor" [s]="socket floor")
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  ip netns del "$sw" 2>/dev/null || true
  ip netns del "$fs" 2>/dev/null || true
  for s in "${sides[@]}"; do ip netns del "${vm[$s]}" 2>/dev/null || true; done
  rm -rf "$tmp"
}
trap cleanup EXIT
(cd "$here/../.." && go build -o "$tmp/latency" ./scripts/bench/latency)
gcc -O2 -Wall -o "$tmp/floor" "$here/floor.c"
# The floors live in a namespace of their own: the daemon's any-device
# handle would otherwise wake up for their RARPs too.
ip netns add "$sw"; ip netns add "$fs"
for s in "${sides[@]}"; do ip netns add "${vm[$s]}"; done
ip -n "$sw" link add br0 address 02:00:5e:10:00:01 type bridge
ip -n "$sw" link set br0 up
ip -n "$sw" addr add 192.0.2.1/24 dev br0
ip -n "$sw" addr add 198.18.0.1/15 dev br0
declare -A home=([d]=$sw [c]=$fs [g]=$fs [p]=$fs [s]=$fs)
for s in "${sides[@]}"; do
  ip -n "${home[$s]}" link add "p$s" type veth peer name eth0 netns "${vm[$s]}"
  ip -n "${vm[$s]}" link set eth0 up
  ip -n "${home[$s]}" link set "p$s" up
done
ip -n "$sw" link set pd master br0   # the daemon serves bridge ports only
# The floors' ports are bridge ports too: the same path through the kernel
# (a frame entering a bridge port goes to the bridge after the packet
# sockets).
ip -n "$fs" link add br0 address 02:00:5e:10:00:02 type bridge
ip -n "$fs" link set br0 up
ip -n "$fs" link set pc master br0
ip -n "$fs" link set pg master br0
ip -n "$fs" link set pp master br0
ip -n "$fs" link set ps master br0
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
ip netns exec "$fs" "$tmp/floor" pc >"$tmp/c.out" 2>&1 &
pids+=($!)
ip netns exec "$fs" "$tmp/latency" floor pg >"$tmp/g.out" 2>&1 &
pids+=($!)
ip netns exec "$fs" "$tmp/latency" pcapfloor pp >"$tmp/p.out" 2>&1 &
pids+=($!)
ip netns exec "$fs" "$tmp/latency" pollfloor ps >"$tmp/s.out" 2>&1 &
pids+=($!)
for _ in $(seq 3000); do
  grep -q '"msg":"listening"' "$tmp/daemon.log" && grep -q ready "$tmp/c.out" && grep -q ready "$tmp/g.out" && grep -q ready "$tmp/p.out" && grep -q ready "$tmp/s.out" && break
  for p in "${pids[@]}"; do kill -0 "$p" 2>/dev/null || { cat "$tmp/daemon.log" "$tmp/c.out" "$tmp/g.out" "$tmp/p.out" "$tmp/s.out" >&2; echo "latency: a responder exited" >&2; exit 1; }; done
  sleep 0.01
done
bindings=$(grep -o '"bindings":[0-9]*' "$tmp/daemon.log" | head -1 | cut -d: -f2)
echo "mirrored: $bindings bindings; $runs rounds of $k RARPs per responder and spacing ($spacings)"
mkdir "$tmp/raw"
broken=0
for r in $(seq "$runs"); do
  for sp in $spacings; do
    for j in "${!sides[@]}"; do
      s=${sides[$(( (r + j) % ${#sides[@]} ))]}
      ns=${vm[$s]}
      ip netns exec "$ns" tcpdump --immediate-mode -i eth0 -U -n -w "$tmp/$s.pcap" 'rarp or arp or icmp6' 2>"$tmp/$s.err" &
      dump=$!
      until grep -q 'listening on' "$tmp/$s.err"; do sleep 0.01; done
      ip netns exec "$ns" "$tmp/latency" send eth0 "$k" "$sp" "$base"
      sleep 0.2
      kill -INT "$dump"; wait "$dump" || true
      if ! result=$("$tmp/latency" analyze "$tmp/$s.pcap" "$tmp/raw/$sp.$s.$r"); then
        echo "round $r $sp ${name[$s]}: broken run" >&2; broken=1; continue
      fi
      printf 'round %d %-5s %-12s %s\n' "$r" "$sp" "${name[$s]}" "$result"
      case $result in *" answered=0 "*) echo "round $r $sp ${name[$s]}: no probe seen" >&2; broken=1 ;; esac
    done
  done
done
echo
"$tmp/latency" summary "$tmp/raw" "$spacings" "$bindings" | tee "$tmp/table.md"
[ -n "${BENCH_TABLE:-}" ] && cp "$tmp/table.md" "$BENCH_TABLE"
exit $broken
