#!/usr/bin/env bash
# Two-leaf FRR EVPN lab on Cumulus-style leaves: one VLAN-aware bridge per
# leaf, symmetric IRB in a tenant VRF. Needs a kernel with 802.1Q, bridge
# VLAN filtering, VRF, macvlan and VXLAN (run it inside user-mode Linux on a
# host without them: scripts/uml/run.sh; see e2e-vlan.sh).
#
# Source this file (". scripts/lab/lab-vlan.sh"); it sources lab.sh for the
# generic helpers (run dir, namespaces, FRR start/stop, vtysh, waiting,
# rarp-replay daemons, fdb and neighbor monitors, lab_down) and adds:
#   lv_up                   leaves, FRR, client and VM; waits for EVPN
#   lv_vm_home              (re)create the VM on leaf1 and make it known
#   lv_bind_decoys          bind the decoys to the VM's MAC on leaf1
#   lv_migrate ORDER        ORDER = rarp-first | port-first
#   lv_migrate_wait         wait for the sender and the delayed port removal
#   lv_reset                back to the state lv_up left (VM on leaf1)
#   lab_down                (lab.sh) kill what we started, delete namespaces
#
# Topology (per leaf; leaf1 and leaf2 are iBGP peers over a direct veth
# underlay, VTEPs on lo):
#
#   bridge  vlan_filtering 1, vlan_default_pvid 0, MAC 02:52:52:0N:00:00
#     swp1     trunk to the VM's hypervisor: VLANs 10 and 20 tagged
#     swp2     access port, PVID 20 untagged (the client, leaf1 only)
#     vni10    VXLAN VNI 10,   VLAN 10 pvid untagged  } neigh_suppress on,
#     vni20    VXLAN VNI 20,   VLAN 20 pvid untagged  } learning off
#     vni4001  VXLAN VNI 4001, VLAN 4001 pvid untagged} (L3 VNI)
#   vlan10   SVI (bridge VLAN 10) in VRF tenant1, 192.0.2.N+1, 2001:db8:10::N+1
#   vlan10-v0 macvlan on vlan10, VRR MAC 00:00:5e:00:01:01, anycast gateway
#            192.0.2.1, 2001:db8:10::1 (same on both leaves)
#   vlan20   SVI in tenant1, 198.51.100.N+1; vlan20-v0 anycast 198.51.100.1
#   vlan4001 SVI of the L3 VNI in tenant1, no address
#   tenant1  VRF, table 1001; zebra "vrf tenant1 / vni 4001",
#            bgpd "router bgp 65000 vrf tenant1", advertise-all-vni
#
# Traditional per-VNI VXLAN devices on the VLAN-aware bridge, as Cumulus
# Linux builds them. (FRR 8.4 cannot drive a single VXLAN device with
# "external vnifilter": see e2e-vlan.sh's header.)
#
#   VM: namespace behind swp1; eth0 is the hypervisor's NIC (no address),
#       eth0.10 carries the VM's MAC 02:52:52:00:00:0a and 192.0.2.10,
#       192.0.2.11, 2001:db8:10::10, 2001:db8:10::11 (tagged VLAN 10 on the
#       trunk). Default routes via the anycast gateway.
#   client: namespace behind leaf1's swp2 (VLAN 20 untagged), 198.51.100.10,
#       2001:db8:20::10: reaches the VM routed through tenant1.
#   decoys: 192.0.2.99 and 2001:db8:10::99 bound to the VM's MAC on leaf1
#       (local, reachable) by lv_bind_decoys; the VM does not own them.
#
# The SVI vlan10 ignores ARP for the anycast address (arp_ignore 1), so the
# gateway answers only with the VRR MAC. FRR 8.4 ignores neighbors on a
# macvlan (zebra/rt_netlink.c: "not on a VLAN or a BRIDGE"), so the VM and
# the client make themselves known by pinging their leaf's SVI address,
# which puts their bindings on vlan10/vlan20, where zebra advertises them
# (and where it installs remote ones).
#
# Guests are kept silent: the quiet sysctls of lab.sh, IPv6 off on the
# hypervisor NIC, and tc clsact egress filters (flower) dropping IGMP, MLD
# reports and router solicitations; their leaf ports join the bridge only
# after the guest's link is up.
#
# Addresses: 192.0.2.0/24, 198.51.100.0/24, 203.0.113.0/24 (underlay, VTEPs)
# and 2001:db8::/32 only.

LV_SELF_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)

# ---------------------------------------------------------------- settings
# (before sourcing lab.sh, whose defaults do not override these)
: "${LAB_VTEP1:=203.0.113.1}"
: "${LAB_VTEP2:=203.0.113.2}"
: "${LAB_UL1:=203.0.113.129}"
: "${LAB_UL2:=203.0.113.130}"
: "${LAB_VNI_VM:=10}"
: "${LAB_VNI_CL:=20}"
: "${LAB_VM_MAC:=02:52:52:00:00:0a}"
: "${LAB_CL_MAC:=02:52:52:00:00:14}"
# shellcheck source=lab.sh
. "$LV_SELF_DIR/lab.sh"

: "${LV_BR:=bridge}"
: "${LV_VRF:=tenant1}"
: "${LV_TABLE:=1001}"
: "${LV_L3VNI:=4001}"
: "${LV_VRR_MAC:=00:00:5e:00:01:01}"
: "${LV_VM_VLAN:=10}"
: "${LV_CL_VLAN:=20}"
LV_VM_IPS=(192.0.2.10 192.0.2.11 2001:db8:10::10 2001:db8:10::11)
LV_DECOYS=(192.0.2.99 2001:db8:10::99)
LV_GW4=192.0.2.1 LV_GW6=2001:db8:10::1
LV_CL_IP4=198.51.100.10 LV_CL_IP6=2001:db8:20::10
LV_CL_GW4=198.51.100.1 LV_CL_GW6=2001:db8:20::1
LV_SVI_VM=vlan$LV_VM_VLAN LV_SVI_CL=vlan$LV_CL_VLAN LV_SVI_L3=vlan$LV_L3VNI
LV_VX_VM=vni$LAB_VNI_VM LV_VX_CL=vni$LAB_VNI_CL LV_VX_L3=vni$LV_L3VNI

# lv_svi_ip LEAF FAMILY(4|6) VLAN: the leaf's own address on an SVI.
lv_svi_ip() {
  local n=${1#leaf} host
  host=$((n + 1))
  case $2:$3 in
    4:$LV_VM_VLAN) echo "192.0.2.$host" ;;
    6:$LV_VM_VLAN) echo "2001:db8:10::$host" ;;
    4:$LV_CL_VLAN) echo "198.51.100.$host" ;;
    6:$LV_CL_VLAN) echo "2001:db8:20::$host" ;;
  esac
}
lv_bridge_mac() { printf '02:52:52:%02x:00:00' "${1#leaf}"; }

# ---------------------------------------------------------------- leaves
# _lv_leaf N: the leaf's underlay, bridge, VXLAN ports, VRF, SVIs and
# anycast gateways, in three "ip -batch"/"bridge -batch" runs (each command
# costs a fork and an exec, which user-mode Linux makes slow).
_lv_leaf() {
  local n=$1 ns vtep ul peer_vtep peer_ul v vni svi host
  ns=$(lab_ns "$n"); vtep=$(lab_vtep "$n"); host=$((n + 1))
  if [[ $n == 1 ]]; then ul=$LAB_UL1 peer_ul=$LAB_UL2 peer_vtep=$LAB_VTEP2
  else ul=$LAB_UL2 peer_ul=$LAB_UL1 peer_vtep=$LAB_VTEP1; fi
  _lab_sysctl "$ns" net.ipv4.ip_forward=1 net.ipv6.conf.all.forwarding=1 \
    net.ipv6.conf.default.accept_dad=0 net.ipv6.conf.all.accept_dad=0 \
    net.ipv6.conf.default.dad_transmits=0 || return 1
  {
    echo "addr add $vtep/32 dev lo"
    echo "addr add $ul/30 dev ul0"
    echo "link set ul0 up"
    echo "route add $peer_vtep/32 via $peer_ul"
    echo "link add $LV_BR address $(lv_bridge_mac "$n") type bridge vlan_filtering 1 vlan_default_pvid 0 stp_state 0 mcast_snooping 0"
    echo "link add $LV_VRF type vrf table $LV_TABLE"
    echo "link set $LV_VRF up"
    echo "link set $LV_BR up"
    # VXLAN devices, one per VNI, bridge ports.
    for vni in "$LAB_VNI_VM" "$LAB_VNI_CL" "$LV_L3VNI"; do
      echo "link add vni$vni type vxlan id $vni local $vtep dstport 4789 nolearning"
      echo "link set vni$vni addrgenmode none"
      echo "link set vni$vni master $LV_BR"
      echo "link set vni$vni up"
    done
    # SVIs in the VRF; anycast gateways: macvlans with the VRR MAC.
    for v in "$LV_VM_VLAN" "$LV_CL_VLAN" "$LV_L3VNI"; do
      echo "link add link $LV_BR name vlan$v type vlan id $v"
      echo "link set vlan$v master $LV_VRF"
    done
    for v in "$LV_VM_VLAN" "$LV_CL_VLAN"; do
      echo "link add link vlan$v name vlan$v-v0 address $LV_VRR_MAC type macvlan mode private"
      echo "link set vlan$v-v0 master $LV_VRF"
    done
  } | ip -n "$ns" -batch - || { lab_err "leaf$n: ip -batch (links) failed"; return 1; }
  {
    for v in "$LAB_VNI_VM:$LV_VM_VLAN" "$LAB_VNI_CL:$LV_CL_VLAN" "$LV_L3VNI:$LV_L3VNI"; do
      echo "vlan add dev $LV_BR vid ${v#*:} self"
      echo "vlan add dev vni${v%%:*} vid ${v#*:} pvid untagged"
      echo "link set dev vni${v%%:*} neigh_suppress on learning off"
    done
    for v in "$LV_VM_VLAN" "$LV_CL_VLAN"; do
      echo "fdb replace $LV_VRR_MAC dev $LV_BR self local vlan $v"
    done
  } | bridge -n "$ns" -batch - || { lab_err "leaf$n: bridge -batch failed"; return 1; }
  # The SVIs ignore ARP for addresses they do not hold (the anycast one).
  _lab_sysctl "$ns" "net.ipv4.conf.vlan$LV_VM_VLAN.arp_ignore=1" \
    "net.ipv4.conf.vlan$LV_CL_VLAN.arp_ignore=1" "net.ipv4.conf.vlan$LV_L3VNI.arp_ignore=1" || return 1
  {
    for v in "$LV_VM_VLAN" "$LV_CL_VLAN" "$LV_L3VNI"; do echo "link set vlan$v up"; done
    for v in "$LV_VM_VLAN" "$LV_CL_VLAN"; do echo "link set vlan$v-v0 up"; done
    echo "addr add $(lv_svi_ip "$n" 4 "$LV_VM_VLAN")/24 dev vlan$LV_VM_VLAN"
    echo "addr add $(lv_svi_ip "$n" 6 "$LV_VM_VLAN")/64 dev vlan$LV_VM_VLAN nodad"
    echo "addr add $(lv_svi_ip "$n" 4 "$LV_CL_VLAN")/24 dev vlan$LV_CL_VLAN"
    echo "addr add $(lv_svi_ip "$n" 6 "$LV_CL_VLAN")/64 dev vlan$LV_CL_VLAN nodad"
    echo "addr add $LV_GW4/24 dev vlan$LV_VM_VLAN-v0"
    echo "addr add $LV_GW6/64 dev vlan$LV_VM_VLAN-v0 nodad"
    echo "addr add $LV_CL_GW4/24 dev vlan$LV_CL_VLAN-v0"
    echo "addr add $LV_CL_GW6/64 dev vlan$LV_CL_VLAN-v0 nodad"
  } | ip -n "$ns" -batch - || { lab_err "leaf$n: ip -batch (addresses) failed"; return 1; }
}

# ---------------------------------------------------------------- FRR
_lv_frr_conf() { # N PEER RID: lab.sh's, plus the tenant VRF and its L3 VNI
  _lab_frr_conf "$1" "$2" "$3" "vrf $LV_VRF
 vni $LV_L3VNI
exit-vrf" "!
router bgp $LAB_ASN vrf $LV_VRF
 bgp router-id $3
!"
}

# ---------------------------------------------------------------- guests
# _lv_quiet_tc NS DEV: drop what a fresh guest sends unasked on DEV's
# egress: IGMP, MLD reports and done (131, 132, 143), router solicitations.
_lv_quiet_tc() {
  local ns=$1 dev=$2 t p=1
  tc -n "$ns" qdisc add dev "$dev" clsact || return 1
  tc -n "$ns" filter add dev "$dev" egress pref $((p++)) protocol ip flower ip_proto 2 action drop ||
    return 1
  for t in 131 132 133 143; do
    tc -n "$ns" filter add dev "$dev" egress pref $((p++)) protocol ipv6 flower \
      ip_proto icmpv6 type "$t" action drop || return 1
  done
}

# lv_guest_vm NS LEAF: the VM behind the leaf's trunk port swp1. The leaf
# side is up but not a bridge member (lv_attach_trunk enslaves it).
lv_guest_vm() {
  local ns=$1 leaf=$2 lns a
  lns=$(lab_ns "$leaf")
  _lab_ns_add "$ns" && _lab_quiet_guest_sysctls "$ns" || return 1
  ip -n "$lns" link add swp1 type veth peer name eth0 netns "$ns" &&
    ip -n "$lns" link set swp1 addrgenmode none &&
    _lab_sysctl "$lns" "net.ipv6.conf.swp1.disable_ipv6=1" &&
    _lab_sysctl "$ns" "net.ipv6.conf.eth0.disable_ipv6=1" &&
    ip -n "$ns" link set eth0 addrgenmode none &&
    ip -n "$ns" link add link eth0 name "eth0.$LV_VM_VLAN" address "$LAB_VM_MAC" type vlan id "$LV_VM_VLAN" &&
    ip -n "$ns" link set "eth0.$LV_VM_VLAN" addrgenmode none &&
    _lv_quiet_tc "$ns" "eth0.$LV_VM_VLAN" || return 1
  for a in "${LV_VM_IPS[@]}"; do
    if [[ $a == *:* ]]; then ip -n "$ns" addr add "$a/64" dev "eth0.$LV_VM_VLAN" nodad
    else ip -n "$ns" addr add "$a/24" dev "eth0.$LV_VM_VLAN"; fi || return 1
  done
  ip -n "$ns" link set eth0 up &&
    ip -n "$ns" link set "eth0.$LV_VM_VLAN" up &&
    ip -n "$lns" link set swp1 up &&
    ip -n "$ns" route add default via "$LV_GW4" &&
    ip -n "$ns" -6 route add default via "$LV_GW6"
}

# lv_attach_trunk LEAF PORT: PORT joins the bridge as a trunk (VLANs 10 and
# 20 tagged, no PVID).
lv_attach_trunk() {
  local ns
  ns=$(lab_ns "$1")
  ip -n "$ns" link set "$2" master "$LV_BR" &&
    bridge -n "$ns" vlan add dev "$2" vid "$LV_VM_VLAN" &&
    bridge -n "$ns" vlan add dev "$2" vid "$LV_CL_VLAN"
}

# The client behind leaf1's access port swp2 (VLAN 20 untagged).
_lv_guest_client() {
  local ns=$LAB_NS_CL lns
  lns=$(lab_ns 1)
  _lab_ns_add "$ns" && _lab_quiet_guest_sysctls "$ns" || return 1
  ip -n "$lns" link add swp2 type veth peer name eth0 netns "$ns" &&
    ip -n "$lns" link set swp2 addrgenmode none &&
    _lab_sysctl "$lns" "net.ipv6.conf.swp2.disable_ipv6=1" &&
    ip -n "$ns" link set eth0 address "$LAB_CL_MAC" addrgenmode none &&
    _lv_quiet_tc "$ns" eth0 &&
    ip -n "$ns" addr add "$LV_CL_IP4/24" dev eth0 &&
    ip -n "$ns" addr add "$LV_CL_IP6/64" dev eth0 nodad &&
    ip -n "$ns" link set eth0 up &&
    ip -n "$lns" link set swp2 up &&
    ip -n "$ns" route add default via "$LV_CL_GW4" &&
    ip -n "$ns" -6 route add default via "$LV_CL_GW6" || return 1
  sleep 0.2
  ip -n "$lns" link set swp2 master "$LV_BR" &&
    bridge -n "$lns" vlan add dev swp2 vid "$LV_CL_VLAN" pvid untagged || return 1
  # Known to the fabric: its binding on leaf1's vlan20.
  ip netns exec "$ns" ping -c1 -W2 "$(lv_svi_ip 1 4 "$LV_CL_VLAN")" >/dev/null &&
    ip netns exec "$ns" ping -6 -c1 -W2 "$(lv_svi_ip 1 6 "$LV_CL_VLAN")" >/dev/null
}

# ---------------------------------------------------------------- queries
# lv_neigh LEAF IP: "<state flags>" of the kernel's entry for IP on vlan10
# bound to the VM's MAC ("" when there is none).
lv_neigh() {
  local l
  l=$(ip -n "$(lab_ns "$1")" neigh show "$2" dev "$LV_SVI_VM" 2>/dev/null)
  [[ ${l,,} == *"lladdr ${LAB_VM_MAC,,} "* ]] && echo "$l"
}
lv_remote_neigh() { local l; l=$(lv_neigh "$@"); [[ $l == *extern_learn* ]]; }
lv_local_neigh() { local l; l=$(lv_neigh "$@"); [[ -n $l && $l != *extern_learn* ]]; }

# lv_vm_known: the VM's addresses are local on leaf1 (kernel) with MAC+IP
# routes via leaf1's VTEP on both leaves, and remote bindings on leaf2.
lv_vm_known() {
  local r1 r2 a
  r1=$(lab_macip_routes 1) r2=$(lab_macip_routes 2)
  for a in "${LV_VM_IPS[@]}"; do
    awk -v ip="$a" -v nh="$LAB_VTEP1" '$2 == ip && $3 == nh {f=1} END {exit !f}' <<<"$r1" || return 1
    awk -v ip="$a" -v nh="$LAB_VTEP1" '$2 == ip && $3 == nh {f=1} END {exit !f}' <<<"$r2" || return 1
    lv_local_neigh 1 "$a" && lv_remote_neigh 2 "$a" || return 1
  done
}
lv_decoys_known() {
  local a r1
  r1=$(lab_macip_routes 1)
  for a in "${LV_DECOYS[@]}"; do
    awk -v ip="$a" -v nh="$LAB_VTEP1" '$2 == ip && $3 == nh {f=1} END {exit !f}' <<<"$r1" || return 1
    lv_remote_neigh 2 "$a" || return 1
  done
}

lv_l3vni_up() { # LEAF
  lab_show "$1" "show evpn vni $LV_L3VNI json" 2>/dev/null |
    jq -e '(.state // "" | ascii_downcase) == "up"' >/dev/null 2>&1
}

# lv_route_dev LEAF IP: the device leaf's VRF routes IP through.
lv_route_dev() {
  local fam=-4
  [[ $2 == *:* ]] && fam=-6
  ip -n "$(lab_ns "$1")" "$fam" -j route get "$2" vrf "$LV_VRF" 2>/dev/null | jq -r '.[0].dev // "-"'
}

lv_dump() {
  local n
  for n in 1 2; do
    echo "=== leaf$n macip routes for $LAB_VM_MAC (mac ip nexthop origin seq rd)"
    lab_macip_routes "$n" | sed 's/^/  /'
    echo "=== leaf$n neighbors bound to $LAB_VM_MAC"
    ip -n "$(lab_ns "$n")" neigh show | grep -i "$LAB_VM_MAC" | sed 's/^/  /'
    echo "=== leaf$n fdb for $LAB_VM_MAC"
    bridge -n "$(lab_ns "$n")" fdb show | grep -i "$LAB_VM_MAC" | sed 's/^/  /'
    echo "=== leaf$n VRF $LV_VRF routes"
    ip -n "$(lab_ns "$n")" route show vrf "$LV_VRF" | sed 's/^/  /'
    ip -n "$(lab_ns "$n")" -6 route show vrf "$LV_VRF" | sed 's/^/  /'
  done
}

# lv_monitors_start: "bridge -timestamp monitor fdb" and "ip -ts monitor
# neigh" in both leaves (lab.sh's files and pid files, so that
# lab_monitor_stop, lab_neighmon_stop and lab_down stop them), at nice -15:
# each stamps a message when it reads it, and on user-mode Linux's single
# CPU a reader at the default priority waits behind zebra and bgpd, which
# work on the same events.
lv_monitors_start() {
  local n ns d
  for n in 1 2; do
    ns=$(lab_ns "$n"); d=$LAB_DIR/leaf$n
    if [[ ! -s $d/fdbmon.pid ]]; then
      nice -n -15 ip netns exec "$ns" bridge -timestamp monitor fdb >"$d/fdb.mon" 2>&1 &
      echo $! >"$d/fdbmon.pid"
    fi
    if [[ ! -s $d/neighmon.pid ]]; then
      nice -n -15 ip -ts -n "$ns" monitor neigh >"$d/neigh.mon" 2>&1 &
      echo $! >"$d/neighmon.pid"
    fi
  done
  sleep 0.2
}

# ---------------------------------------------------------------- lab up
lv_up() {
  lab_check_prereqs || return 1
  lab_init || return 1
  [[ ${LAB_NO_TRAP:-0} == 1 ]] || lab_trap
  local t0; t0=$(lab_now_ms)
  LV_GEN=0
  lab_log "creating namespaces"
  _lab_ns_add "$LAB_NS_L1" && _lab_ns_add "$LAB_NS_L2" || return 1
  ip -n "$LAB_NS_L1" link add ul0 type veth peer name ul0 netns "$LAB_NS_L2" || return 1
  _lv_leaf 1 && _lv_leaf 2 || { lab_err "leaf setup failed"; return 1; }

  lab_log "starting FRR"
  _lv_frr_conf 1 "$LAB_VTEP2" "$LAB_VTEP1" && _lv_frr_conf 2 "$LAB_VTEP1" "$LAB_VTEP2" || return 1
  _lab_frr_start 1 && _lab_frr_start 2 || return 1

  lab_log "waiting for BGP EVPN session"
  lab_wait "$LAB_TIMEOUT" lab_bgp_established 1 && lab_wait "$LAB_TIMEOUT" lab_bgp_established 2 ||
    { lab_err "BGP EVPN not established"; lab_show 1 "show bgp l2vpn evpn summary" >&2; return 1; }
  lab_wait "$LAB_TIMEOUT" lab_vni_ready 1 && lab_wait "$LAB_TIMEOUT" lab_vni_ready 2 ||
    { lab_err "L2 VNIs not known to bgpd"; lab_show 1 "show evpn vni" >&2; return 1; }
  lab_wait "$LAB_TIMEOUT" lv_l3vni_up 1 && lab_wait "$LAB_TIMEOUT" lv_l3vni_up 2 ||
    { lab_err "L3 VNI $LV_L3VNI not up"; lab_show 1 "show evpn vni $LV_L3VNI" >&2; return 1; }

  lab_log "creating the client"
  _lv_guest_client || { lab_err "client setup failed"; return 1; }
  lab_log "creating the VM"
  lv_vm_home || return 1
  lab_log "binding the decoys"
  lv_bind_decoys || return 1
  lab_log "checking routed reachability client -> VM"
  lv_client_reach_all || { lab_err "client cannot reach the VM"; lv_dump >&2; return 1; }
  lab_log "lab up in $(($(lab_now_ms) - t0)) ms"
}

# lv_vm_home: a new VM namespace on leaf1's trunk (LAB_NS_VM), known to the
# fabric: it pings leaf1's vlan10 address from each of its addresses, so
# leaf1 holds local bindings on vlan10 and leaf2 remote ones. Then its own
# neighbor cache is flushed (the VM is silent from now on).
lv_vm_home() {
  local a src
  ((LV_GEN++))
  LAB_NS_VM=$LAB_ID-vm$LV_GEN
  lv_guest_vm "$LAB_NS_VM" 1 || { lab_err "VM setup failed"; return 1; }
  sleep 0.2
  lv_attach_trunk 1 swp1 || return 1
  for a in "${LV_VM_IPS[@]}"; do
    if [[ $a == *:* ]]; then src=$(lv_svi_ip 1 6 "$LV_VM_VLAN"); else src=$(lv_svi_ip 1 4 "$LV_VM_VLAN"); fi
    ip netns exec "$LAB_NS_VM" ping -c1 -W2 -I "$a" "$src" >/dev/null ||
      { lab_err "VM $a cannot ping $src"; return 1; }
  done
  lab_log "VM announced; waiting for the fabric to agree"
  lab_wait "$LAB_TIMEOUT" lv_vm_known || { lab_err "VM bindings not on both leaves"; lv_dump >&2; return 1; }
  ip -n "$LAB_NS_VM" neigh flush all
}

# lv_bind_decoys: leaf1 binds each decoy to the VM's MAC (local, reachable);
# waits until leaf1 advertises them and leaf2 installs them as remote.
lv_bind_decoys() {
  local a
  for a in "${LV_DECOYS[@]}"; do
    ip -n "$LAB_NS_L1" neigh replace "$a" lladdr "$LAB_VM_MAC" dev "$LV_SVI_VM" nud reachable || return 1
  done
  lab_wait "$LAB_TIMEOUT" lv_decoys_known || { lab_err "decoys not advertised"; lv_dump >&2; return 1; }
}

lv_client_reach_all() {
  local a
  for a in "${LV_VM_IPS[@]}"; do lab_ping_vm "$a" 2 2 || return 1; done
}

# ---------------------------------------------------------------- migration
# lv_migrate ORDER: move the VM from leaf1 to leaf2 (namespace LV_NS_DST).
#   rarp-first: enslave leaf2's trunk port, send the RARP (tagged, VLAN 10),
#               delete leaf1's swp1 LAB_MIGRATE_GAP after leaf2 learned the MAC.
#   port-first: delete leaf1's swp1, wait LAB_MIGRATE_GAP, enslave, RARP.
# Sets LV_T_START_MS (before anything changed), LAB_T_RARP_MS; returns with
# the sender (and the delayed port removal) in the background.
lv_migrate() {
  local order=$1
  case $order in rarp-first | port-first) ;; *) lab_err "usage: lv_migrate rarp-first|port-first"; return 1 ;; esac
  lab_binary || return 1
  lab_log "migrating ($order)"
  ip -n "$LAB_NS_VM" neigh flush all
  LV_NS_DST=$LAB_ID-vmd$LV_GEN
  lv_guest_vm "$LV_NS_DST" 2 || { lab_err "destination VM setup failed"; return 1; }
  sleep 0.3
  ip -n "$LV_NS_DST" neigh flush all
  rm -f "$LAB_DIR/t_portdel"
  LV_T_START_MS=$(lab_now_ms)
  if [[ $order == port-first ]]; then
    lab_now_ms >"$LAB_DIR/t_portdel"
    ip -n "$LAB_NS_L1" link del swp1 || return 1
    sleep "$LAB_MIGRATE_GAP"
  fi
  lv_attach_trunk 2 swp1 || return 1
  LAB_T_RARP_MS=$(lab_now_ms)
  # shellcheck disable=SC2086
  ip netns exec "$LV_NS_DST" "$RARP_REPLAY" send-rarp --mac "$LAB_VM_MAC" -i eth0 \
    --vlan "$LV_VM_VLAN" ${LAB_RARP_ARGS:-} >"$LAB_DIR/send-rarp.out" 2>&1 &
  LAB_RARP_PID=$!
  LAB_PORTDEL_PID=
  if [[ $order == rarp-first ]]; then
    (
      _lv_wait_learned 3000
      sleep "$LAB_MIGRATE_GAP"
      lab_now_ms >"$LAB_DIR/t_portdel"
      ip -n "$LAB_NS_L1" link del swp1
    ) &
    LAB_PORTDEL_PID=$!
  fi
}
lv_migrate_wait() { lab_migrate_wait; }

# _lv_wait_learned TIMEOUT-ms: wait until leaf2's bridge learned the VM's
# MAC on swp1. Reads leaf2's fdb monitor (lab_monitor_start) with bash
# builtins only: a fork per poll would compete, on user-mode Linux's single
# CPU, with the daemon the test is timing. Without a monitor, polls
# "bridge fdb show" every 10 ms.
_lv_wait_learned() {
  local f=$LAB_DIR/leaf2/fdb.mon i c pat sfd
  pat="${LAB_VM_MAC,,} dev swp1 "
  exec {sfd}<> <(:) # a pipe nobody writes to: "read -t" on it sleeps without a fork
  for ((i = 0; i < $1 / 10; i++)); do
    if [[ -r $f ]]; then
      c=
      IFS= read -r -d '' c <"$f"
      [[ ${c,,} == *"$pat"* ]] && { exec {sfd}<&-; return 0; }
    elif bridge -n "$LAB_NS_L2" fdb show br "$LV_BR" 2>/dev/null | grep -qi "^$pat"; then
      exec {sfd}<&-; return 0
    fi
    read -r -t 0.01 -u "$sfd" c
  done
  exec {sfd}<&-
  return 1
}

# lv_reset: undo a migration: the destination VM goes away (its leaf2 port
# with it), every binding of the VM's MAC that is not zebra's (local
# leftovers, programmed ones) is deleted on both leaves, the VM comes back
# on leaf1 and the decoys are bound again: the state lv_up left.
lv_reset() {
  local n ns a l
  [[ -n ${LV_NS_DST:-} ]] && ip netns del "$LV_NS_DST" 2>/dev/null
  ip netns del "$LAB_NS_VM" 2>/dev/null
  LV_NS_DST=
  for n in 1 2; do
    ns=$(lab_ns "$n")
    ip -n "$ns" link del swp1 2>/dev/null
    while read -r a l; do
      [[ -n $a && $l != *extern_learn* ]] || continue
      ip -n "$ns" neigh del "$a" dev "${l%% *}" 2>/dev/null
    done < <(ip -n "$ns" neigh show | grep -i "lladdr $LAB_VM_MAC " | sed 's/ dev / /')
  done
  lv_vm_home && lv_bind_decoys
}
