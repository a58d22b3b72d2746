#!/usr/bin/env bash
# Memory per tap port: the daemon's RSS once it serves N tap ports (one VM's
# vNIC each, as on a hypervisor running EVPN itself), with the tap ring
# (--tap-capture-buffer, 256 KiB by default) and with every port's ring
# (--tap-capture-buffer 0: --capture-buffer, 2 MiB). Everything lives in a
# namespace removed on exit; no frame is sent. Prints a Markdown table (also
# written to $BENCH_TABLE when set); fails only on a broken run.
# Usage: sudo scripts/bench/tap-memory.sh [bin/rarp-replay] [N=50]
set -euo pipefail
# shellcheck source=common.sh
. "$(dirname "$0")/common.sh"
bin=$(realpath "${1:-bin/rarp-replay}") n=${2:-50}
ns=rr-tapmem-$$-$RANDOM log=$(mktemp) pid=
cleanup() {
  [ -n "$pid" ] && kill "$pid" 2>/dev/null && wait "$pid" 2>/dev/null
  ip netns del "$ns" 2>/dev/null || true
  rm -f "$log"
}
trap cleanup EXIT
ip netns add "$ns"
ip -n "$ns" link add br0 type bridge
ip -n "$ns" link set br0 up
for i in $(seq "$n"); do
  ip -n "$ns" tuntap add dev "tp$i" mode tap
  ip -n "$ns" link set "tp$i" master br0 up
done
rows=()
for args in "" "--tap-capture-buffer 0"; do
  # shellcheck disable=SC2086 # args is a list of flags
  ip netns exec "$ns" "$bin" listen -i any --log-format json $args >"$log" 2>&1 &
  pid=$!
  bench_wait_listening "$pid" "$log" tap-memory
  ports=$(grep -o '"ports":[0-9]*' "$log" | head -1 | cut -d: -f2)
  [ "$ports" = "$n" ] || { echo "tap-memory: $ports ports served, want $n" >&2; exit 1; }
  rss=$(awk '/^VmRSS/ { printf "%.0f", $2 / 1024 }' "/proc/$pid/status")
  rows+=("| ${args:-(default)} | $ports | $rss |")
  kill "$pid"; wait "$pid" 2>/dev/null || true; pid=
done
{
  echo "| flags | tap ports served | RSS MB |"
  echo "| --- | --- | --- |"
  printf '%s\n' "${rows[@]}"
} | tee "${BENCH_TABLE:-/dev/null}"
