#!/usr/bin/env bash
# Unsolicited answers on a busy leaf: what ARP replies and Neighbor
# Advertisements that answer no probe of the daemon's (the VMs answering the
# leaf's own neighbor refreshes, and each other) cost rarp-replay while no
# migration is under way. One switch namespace (bridge br10 with an SVI
# address, one VM-facing port p0) runs `rarp-replay listen`; from the VM side
# of p0, RATE answers per second (half ARP replies, half NAs, addressed to
# the SVI) for SECONDS. Reports the daemon's CPU over that window, and from
# /metrics the answers it saw (dropped as unsolicited) and those the
# any-device handle handed over. Exit status non-zero when the daemon never
# became ready or saw none of the answers (a broken run), never on a time.
# A Markdown table goes to $BENCH_TABLE when set.
# Usage: scripts/bench/replies.sh [bin/rarp-replay] [RATE=10000] [SECONDS=10] [RUNS=3]
set -euo pipefail
bin=$(realpath "${1:-bin/rarp-replay}") rate=${2:-10000} secs=${3:-10} runs=${4:-3}
here=$(cd "$(dirname "$0")" && pwd)
sw=rr-rsw-$$-$RANDOM vm=rr-rvm-$$-$RANDOM tmp=$(mktemp -d) pid=
cleanup() {
  [ -n "$pid" ] && kill "$pid" 2>/dev/null && wait "$pid" 2>/dev/null
  ip netns del "$sw" 2>/dev/null; ip netns del "$vm" 2>/dev/null; rm -rf "$tmp"
}
trap cleanup EXIT
go build -o "$tmp/latency" "$here/latency"
ip netns add "$sw"; ip netns add "$vm"
ip -n "$sw" link add br10 type bridge
ip -n "$sw" link add p0 type veth peer name v0 netns "$vm"
ip -n "$sw" link set p0 master br10
ip -n "$sw" addr add 192.0.2.1/24 dev br10
ip -n "$sw" addr add 2001:db8::1/64 dev br10 nodad
for l in br10 p0 lo; do ip -n "$sw" link set "$l" up; done
ip -n "$vm" link set v0 up; ip -n "$vm" link set lo up
svi=$(ip -n "$sw" -br link show br10 | awk '{ print $3 }')
metric() { # NAME: the value of a metric line, 0 when absent
  ip netns exec "$sw" "$tmp/latency" get http://127.0.0.1:9465/metrics | awk -v n="$1" '$1 == n { v = $2 } END { print v + 0 }'
}
# shellcheck source=common.sh
. "$here/common.sh"
table=$tmp/table
{ echo "| run | answers sent | seen by the port's handle (unsolicited) | via the any-device handle | daemon CPU | per 1,000 answers |"
  echo "| --- | --- | --- | --- | --- | --- |"; } >"$table"
for r in $(seq "$runs"); do
  ip netns exec "$sw" "$bin" listen --log-format json --metrics-addr 127.0.0.1:9465 >"$tmp/log" 2>&1 & pid=$!
  bench_wait_listening "$pid" "$tmp/log" replies
  u0=$(metric 'rarp_replay_drops_total{reason="unsolicited-reply"}')
  a0=$(metric rarp_replay_replies_via_any_total)
  c0=$(bench_cpu "$pid"); s0=$(date +%s%N)
  sent=$(ip netns exec "$vm" "$tmp/latency" replies v0 "$rate" "$secs" "$svi" | sed -n 's/^sent=\([0-9]*\).*/\1/p')
  c1=$(bench_cpu "$pid"); s1=$(date +%s%N)
  u1=$(metric 'rarp_replay_drops_total{reason="unsolicited-reply"}')
  a1=$(metric rarp_replay_replies_via_any_total)
  cpu_ms=$(( (c1 - c0) * 1000 / bench_tck )); pct=$(( (c1 - c0) * 1000 * 1000000000 / bench_tck / (s1 - s0) ))
  seen=$((u1 - u0)) any=$((a1 - a0))
  per=$(awk -v c="$cpu_ms" -v n="$sent" 'BEGIN { printf "%.1f", n ? c * 1000 / n : 0 }')
  echo "run $r: $sent answers sent in ${secs} s, $seen seen by the port's handle, $any via the any device; daemon CPU $cpu_ms ms ($((pct / 10)).$((pct % 10)) % of one core), $per ms per 1,000 answers"
  [ "$seen" -gt 0 ] || { cat "$tmp/log" >&2; echo "replies: broken: the daemon saw none of the answers" >&2; exit 1; }
  echo "| $r | $sent | $seen | $any | $cpu_ms ms ($((pct / 10)).$((pct % 10)) % of one core) | $per ms |" >>"$table"
  kill "$pid"; wait "$pid" 2>/dev/null || true; pid=
done
[ -n "${BENCH_TABLE:-}" ] && cp "$table" "$BENCH_TABLE"
exit 0
