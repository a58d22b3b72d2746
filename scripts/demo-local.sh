#!/usr/bin/env bash
# A one-switch demo of rarp-replay, in network namespaces it creates and
# always removes: a leaf whose SVI holds a VM's bindings the way FRR installs
# remote EVPN bindings (nud noarp extern_learn), a VM arriving on a local
# access port and announcing itself with RARP, once without and once with
# `rarp-replay listen`. Usage: sudo scripts/demo-local.sh [path/to/rarp-replay]
# With RR_DEMO_SAVE=DIR it also saves what the daemon saw on swp1
# (DIR/migration.pcap, inbound, as tcpdump -w) and the leaf's neighbor table
# before the migration (DIR/migration.neigh.json, as ip -j neigh show), the
# inputs of `rarp-replay replay`.
set -euo pipefail
bin=${1:-$(dirname "$0")/../bin/rarp-replay}
[ -x "$bin" ] || { echo "build first: make build" >&2; exit 1; }
[ "$(id -u)" = 0 ] || { echo "run as root (namespaces)" >&2; exit 1; }

id=$(printf '%04x' $((RANDOM)))
sw=rr-demo-sw-$id vm=rr-demo-vm-$id
tmp=$(mktemp -d)
daemon= dump=
cleanup() {
  [ -n "$daemon" ] && kill "$daemon" 2>/dev/null && wait "$daemon" 2>/dev/null
  [ -n "$dump" ] && kill "$dump" 2>/dev/null && wait "$dump" 2>/dev/null
  ip netns del "$sw" 2>/dev/null || true
  ip netns del "$vm" 2>/dev/null || true
  rm -rf "$tmp"
}
trap cleanup EXIT

mac=02:00:5e:10:00:0a
ip netns add "$sw"; ip netns add "$vm"
ip -n "$sw" link add br10 address 02:00:5e:10:00:01 type bridge
ip netns exec "$sw" sysctl -qw net.ipv6.conf.br10.accept_dad=0
ip -n "$sw" link set br10 up
ip -n "$sw" addr add 192.0.2.1/24 dev br10
ip -n "$sw" addr add 2001:db8:10::1/64 dev br10 nodad
ip -n "$sw" link add swp1 type veth peer name eth0 netns "$vm"
ip -n "$sw" link set swp1 master br10 up
ip netns exec "$vm" sysctl -qw net.ipv6.conf.all.accept_dad=0 net.ipv6.conf.default.accept_dad=0
ip -n "$vm" link set eth0 address $mac
ip -n "$vm" addr add 192.0.2.10/24 dev eth0
ip -n "$vm" addr add 192.0.2.11/24 dev eth0
ip -n "$vm" addr add 2001:db8:10::10/64 dev eth0 nodad
ip -n "$vm" link set eth0 up

remote_bindings() {
  for a in 192.0.2.10 192.0.2.11 2001:db8:10::10 192.0.2.99; do
    ip -n "$sw" neigh replace $a lladdr $mac dev br10 nud noarp extern_learn
  done
}
show() { ip -n "$sw" neigh show dev br10 | grep -i "$mac" | sort | sed 's/^/    /'; }

echo "== The leaf holds the VM's bindings as EVPN installs remote ones"
echo "   (192.0.2.99 is bound to the VM's MAC but the VM does not own it):"
remote_bindings; show

echo
echo "== Without rarp-replay: the VM arrives on swp1 and sends QEMU's five RARPs"
ip netns exec "$vm" "$bin" send-rarp --mac $mac -i eth0 >/dev/null
sleep 0.5
show
echo "   -> nothing changed: the bindings stay remote, so zebra would advertise no MAC+IP."

echo
echo "== With rarp-replay listen -i any on the leaf"
if [ -n "${RR_DEMO_SAVE:-}" ]; then
  ip -n "$sw" -j neigh show >"$RR_DEMO_SAVE/migration.neigh.json"
  ip netns exec "$sw" tcpdump --immediate-mode -i swp1 -Q in -U -n -w "$tmp/migration.pcap" 'rarp or arp or icmp6' 2>"$tmp/dump.err" &
  dump=$!
  for _ in $(seq 100); do grep -q 'listening on' "$tmp/dump.err" && break; sleep 0.05; done
fi
ip netns exec "$sw" "$bin" listen -i any --log-format json >"$tmp/log" 2>&1 &
daemon=$!
for _ in $(seq 100); do grep -q '"msg":"listening"' "$tmp/log" && break; sleep 0.05; done
ip netns exec "$vm" "$bin" send-rarp --mac $mac -i eth0 >/dev/null
for _ in $(seq 300); do grep -q '"msg":"migration handled"' "$tmp/log" && break; sleep 0.05; done
show
echo "   -> 192.0.2.10, .11 and 2001:db8:10::10 are local and reachable (zebra advertises"
echo "      MAC+IP for them); 192.0.2.99 never answered, so it was never programmed."
if [ -n "$dump" ]; then
  sleep 0.2; kill -INT "$dump"; wait "$dump" || true; dump=
  cp "$tmp/migration.pcap" "$RR_DEMO_SAVE/migration.pcap"
fi
echo
echo "== The daemon's line for this migration:"
grep '"msg":"migration handled"' "$tmp/log" | sed 's/^/    /'
