#!/usr/bin/env bash
# Mirror at scale: `rarp-replay listen` starting on a leaf holding N remote
# bindings (extern_learn, as EVPN installs them; the kernel does not count
# those against gc_thresh), then CHANGES neighbor changes per second for 10 s.
# Reports time to ready (start to the "listening" log line), RSS when ready
# and after the changes, and the daemon's CPU during the changes.
# A Markdown table goes to $BENCH_TABLE when set; the exit status is
# non-zero when the daemon never became ready or mirrored nothing.
# Usage: sudo scripts/bench/mirror-scale.sh [bin/rarp-replay] [N=100000] [CHANGES=10000] [RUNS=3]
set -euo pipefail
bin=$(realpath "${1:-bin/rarp-replay}") n=${2:-100000} rate=${3:-10000} runs=${4:-3}
ns=rr-scale-$$-$RANDOM tmp=$(mktemp -d) pid=
cleanup() { [ -n "$pid" ] && kill "$pid" 2>/dev/null; ip netns del "$ns" 2>/dev/null || true; rm -rf "$tmp"; }
trap cleanup EXIT
ip netns add "$ns"
ip -n "$ns" link add br10 type bridge
ip -n "$ns" link set br10 up
ip -n "$ns" addr add 198.18.0.1/15 dev br10
# N bindings in 198.18.0.0/15, one MAC each.
awk -v n="$n" 'BEGIN { for (i = 0; i < n; i++)
  printf "neigh replace 198.%d.%d.%d lladdr 02:00:%02x:%02x:%02x:%02x dev br10 nud noarp extern_learn\n",
    18 + int(i / 65536), int(i / 256) % 256, i % 256, int(i / 16777216) % 256, int(i / 65536) % 256, int(i / 256) % 256, i % 256 }' >"$tmp/batch"
t0=$(date +%s%N); ip -n "$ns" -batch "$tmp/batch"; t1=$(date +%s%N)
echo "installed $(ip -n "$ns" neigh show dev br10 | wc -l) bindings in $(( (t1 - t0) / 1000000 )) ms"
# The changes: CHANGES bindings re-pointed to another MAC (odd seconds) and
# back (even seconds), so that every line is a real change.
for v in 1 0; do
  awk -v n="$n" -v c="$rate" -v v="$v" 'BEGIN { for (i = 0; i < c; i++) { j = i % n
    printf "neigh replace 198.%d.%d.%d lladdr 02:0%d:%02x:%02x:%02x:%02x dev br10 nud noarp extern_learn\n",
      18 + int(j / 65536), int(j / 256) % 256, j % 256, v, int(j / 16777216) % 256, int(j / 65536) % 256, int(j / 256) % 256, j % 256 } }' >"$tmp/changes$v"
done
rss() { awk '/^VmRSS:/ { print $2 }' "/proc/$1/status"; }
# shellcheck source=common.sh
. "$(dirname "$0")/common.sh"
table=$tmp/table
{ echo "| run | bindings mirrored | start → ready | RSS ready | RSS after the changes | CPU during $rate changes/s (10 s) |"
  echo "| --- | --- | --- | --- | --- | --- |"; } >"$table"
for r in $(seq "$runs"); do
  t0=$(date +%s%N)
  ip netns exec "$ns" "$bin" listen --log-format json >"$tmp/log" 2>&1 & pid=$!
  bench_wait_listening "$pid" "$tmp/log" mirror-scale
  t1=$(date +%s%N)
  ready_ms=$(( (t1 - t0) / 1000000 )); rss_ready=$(rss "$pid")
  bindings=$(grep -o '"bindings":[0-9]*' "$tmp/log" | head -1 | cut -d: -f2)
  c0=$(bench_cpu "$pid"); s0=$(date +%s%N)
  for s in $(seq 10); do   # 10 s of $rate changes per second
    b0=$(date +%s%N)
    ip -n "$ns" -batch "$tmp/changes$((s % 2))"
    left=$(( 1000000000 - ($(date +%s%N) - b0) )); [ $left -gt 0 ] && sleep "0.$(printf '%09d' $left)"
  done
  c1=$(bench_cpu "$pid"); s1=$(date +%s%N)
  cpu_pct=$(( (c1 - c0) * 100 * 1000000000 / bench_tck / (s1 - s0) ))
  rss_after=$(rss "$pid")
  echo "run $r: $bindings bindings mirrored, ready in $ready_ms ms, RSS $((rss_ready / 1024)) MB ready / $((rss_after / 1024)) MB after; $rate changes/s for 10 s: daemon CPU ${cpu_pct}% of one core"
  [ "${bindings:-0}" -gt 0 ] || { echo "mirror-scale: broken: nothing mirrored" >&2; exit 1; }
  echo "| $r | $bindings | $ready_ms ms | $((rss_ready / 1024)) MB | $((rss_after / 1024)) MB | ${cpu_pct} % of one core |" >>"$table"
  kill "$pid"; wait "$pid" 2>/dev/null || true; pid=
done
[ -n "${BENCH_TABLE:-}" ] && cp "$table" "$BENCH_TABLE"
exit 0
