#!/usr/bin/env bash
# Two-leaf FRR EVPN-VXLAN lab in network namespaces.
#
# Source this file (". scripts/lab/lab.sh") and call:
#   lab_up                  build leaves, FRR, VM and client; wait for EVPN
#   lab_start_daemons       run "$RARP_REPLAY listen -i any" in both leaves
#   lab_migrate ORDER       ORDER = rarp-first | port-first
#   lab_stop_daemons        stop the rarp-replay listeners started above
#   lab_down                kill what we started (by PID), delete namespaces
# Run it directly for a quick interactive lab: scripts/lab/lab.sh shell
#
# Needs root, iproute2, FRR (Debian "frr": /usr/lib/frr/{zebra,bgpd}, vtysh),
# jq and ping (iputils-ping). Nothing in the root namespace is changed: every
# link, address, route and sysctl lives in namespaces created here.
#
# Topology (one ordinary bridge per VNI; the bridge is also the SVI):
#
#   client --[br20/VNI 20]-- leaf1 ==veth underlay== leaf2 --[br10]-- vm (dst)
#   vm (src) --[br10/VNI 10]-'
#
# Addresses: only 192.0.2.0/24, 198.51.100.0/24, 198.18.0.0/15 and
# 2001:db8::/32; MACs are locally administered.

# ---------------------------------------------------------------- settings
: "${LAB_FRR_BIN:=/usr/lib/frr}"
: "${LAB_ASN:=65000}"
: "${LAB_VNI_VM:=10}"                 # VM's VNI (bridge br10)
: "${LAB_VNI_CL:=20}"                 # client's VNI (bridge br20)
: "${LAB_VM_MAC:=02:52:52:00:00:0a}"
: "${LAB_VM_IP4:=192.0.2.10}"
: "${LAB_VM_IP4B:=192.0.2.11}"
: "${LAB_VM_IP6:=2001:db8:10::10}"
: "${LAB_GW4:=192.0.2.1}"
: "${LAB_GW6:=2001:db8:10::1}"
: "${LAB_GW_MAC:=02:00:5e:10:00:01}"  # anycast gateway MAC of br10
: "${LAB_CL_IP4:=198.51.100.10}"
: "${LAB_CL_IP6:=2001:db8:20::10}"
: "${LAB_CL_GW4:=198.51.100.1}"
: "${LAB_CL_GW6:=2001:db8:20::1}"
: "${LAB_CL_GW_MAC:=02:00:5e:20:00:01}"
: "${LAB_CL_MAC:=02:52:52:00:00:14}"
: "${LAB_VTEP1:=198.18.255.1}"
: "${LAB_VTEP2:=198.18.255.2}"
: "${LAB_UL1:=198.18.0.1}"
: "${LAB_UL2:=198.18.0.2}"
: "${LAB_TIMEOUT:=60}"                # seconds to wait for lab_up conditions
: "${LAB_SETTLE:=8}"                  # seconds to poll after a migration
: "${LAB_MIGRATE_GAP:=0.5}"           # seconds between RARP and port removal
: "${LAB_DEBUG:=0}"                   # 1: FRR "debug zebra vxlan/kernel", bgp updates
: "${LAB_KEEP:=0}"                    # 1: keep the run dir (logs) after lab_down
: "${LAB_QUIET:=0}"

LAB_SELF_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
LAB_REPO_ROOT=$(cd "$LAB_SELF_DIR/../.." && pwd)

# ---------------------------------------------------------------- utilities
lab_log() { [[ $LAB_QUIET == 1 ]] || printf '[lab %s] %s\n' "$(date +%T.%3N)" "$*" >&2; }
lab_err() { printf '[lab %s] ERROR: %s\n' "$(date +%T.%3N)" "$*" >&2; }
lab_now_ms() { # wall clock in ms, without a fork when bash has EPOCHREALTIME
  local t=${EPOCHREALTIME:-}
  if [[ -n $t ]]; then t=${t//[!0-9]/}; echo $((10#$t / 1000)); return; fi
  t=$(date +%s%N); echo $((t / 1000000))
}

# Namespace names (valid after lab_init).
lab_ns() {
  case $1 in
    leaf1|1) echo "$LAB_NS_L1" ;; leaf2|2) echo "$LAB_NS_L2" ;;
    vm) echo "$LAB_NS_VM" ;; vm2) echo "$LAB_NS_VM2" ;; client) echo "$LAB_NS_CL" ;;
    *) return 1 ;;
  esac
}
lab_vtep() { case $1 in leaf1|1) echo "$LAB_VTEP1" ;; leaf2|2) echo "$LAB_VTEP2" ;; *) return 1 ;; esac; }

lab_check_prereqs() {
  local missing=() c
  [[ $(id -u) == 0 ]] || { lab_err "must run as root"; return 1; }
  for c in ip jq ping vtysh "$LAB_FRR_BIN/zebra" "$LAB_FRR_BIN/bgpd"; do
    command -v "$c" >/dev/null 2>&1 || missing+=("$c")
  done
  if ((${#missing[@]})); then
    lab_err "missing: ${missing[*]} (Debian: apt-get install frr jq iputils-ping iproute2)"
    return 1
  fi
}

# Allocate unique names and the run dir. Idempotent within one run.
lab_init() {
  [[ -n ${LAB_ID:-} ]] && return 0
  LAB_ID=$(printf 'rr%d%04x' $$ $((RANDOM)))
  LAB_DIR=$(mktemp -d "${TMPDIR:-/tmp}/rarp-lab.$LAB_ID.XXXX") || return 1
  chmod 0755 "$LAB_DIR" # FRR daemons run as user frr and must reach their files
  LAB_NS_L1=$LAB_ID-leaf1
  LAB_NS_L2=$LAB_ID-leaf2
  LAB_NS_VM=$LAB_ID-vm
  LAB_NS_VM2=$LAB_ID-vm2
  LAB_NS_CL=$LAB_ID-client
  LAB_NS_ALL=()
  LAB_DAEMON_PIDFILES=()
  LAB_BG_PIDS=()
  lab_log "run id $LAB_ID, run dir $LAB_DIR"
}

# Install the cleanup trap (EXIT, INT, TERM, HUP) in the calling shell
# (in an interactive shell only EXIT, so Ctrl-C does not end the session).
lab_trap() {
  LAB_TRAP_SET=1
  trap 'lab_down' EXIT
  [[ $- == *i* ]] && return 0
  trap 'exit 130' INT
  trap 'exit 143' TERM
  trap 'exit 129' HUP
}

_lab_ns_add() {
  local ns=$1
  ip netns add "$ns" || return 1
  LAB_NS_ALL+=("$ns")
  printf '%s\n' "$ns" >>"$LAB_DIR/namespaces"
  ip -n "$ns" link set lo up
}

_lab_sysctl() { # NS key=value...
  local ns=$1 kv; shift
  for kv in "$@"; do
    ip netns exec "$ns" sysctl -q -w "$kv" >/dev/null || { lab_err "sysctl $kv in $ns"; return 1; }
  done
}

# ---------------------------------------------------------------- RARP binary
# lab_go: the go command ($GO, else go on PATH, else /usr/local/go/bin/go;
# sudo often drops /usr/local/go/bin from PATH).
lab_go() {
  if [[ -n ${GO:-} ]]; then echo "$GO"
  elif command -v go >/dev/null 2>&1; then command -v go
  else echo /usr/local/go/bin/go; fi
}
# RARP_REPLAY: path of the rarp-replay binary. If unset, build it from the repo
# (./cmd/rarp-replay) into the run dir, if that package exists.
lab_binary() {
  if [[ -n ${RARP_REPLAY:-} ]]; then
    [[ -x $RARP_REPLAY ]] || { lab_err "RARP_REPLAY=$RARP_REPLAY is not executable"; return 1; }
    return 0
  fi
  if ! compgen -G "$LAB_REPO_ROOT/cmd/rarp-replay/*.go" >/dev/null; then
    lab_err "RARP_REPLAY unset and $LAB_REPO_ROOT/cmd/rarp-replay has no Go files"
    return 1
  fi
  lab_init || return 1
  lab_log "building rarp-replay"
  (cd "$LAB_REPO_ROOT" && "$(lab_go)" build -o "$LAB_DIR/rarp-replay" ./cmd/rarp-replay) || {
    lab_err "go build failed"; return 1; }
  RARP_REPLAY=$LAB_DIR/rarp-replay
}

# lab_script_init: what every script on top of this library does first. One
# trap for the whole script (lab_up must not replace it) that removes the lab
# and the binary built here on any exit; the prerequisites; RARP_REPLAY set,
# building ./cmd/rarp-replay once into a temporary directory when unset.
lab_script_init() {
  LAB_NO_TRAP=1
  _lab_bin_dir=
  trap '_lab_script_cleanup' EXIT
  trap 'exit 130' INT
  trap 'exit 143' TERM
  trap 'exit 129' HUP
  lab_check_prereqs || exit 1
  if [[ -z ${RARP_REPLAY:-} ]]; then
    _lab_bin_dir=$(mktemp -d "${TMPDIR:-/tmp}/rarp-lab-bin.XXXX") || exit 1
    lab_log "building rarp-replay"
    (cd "$LAB_REPO_ROOT" && "$(lab_go)" build -o "$_lab_bin_dir/rarp-replay" ./cmd/rarp-replay) ||
      { lab_err "go build failed"; exit 1; }
    export RARP_REPLAY=$_lab_bin_dir/rarp-replay
  fi
  [[ -x $RARP_REPLAY ]] || { lab_err "RARP_REPLAY=$RARP_REPLAY is not executable"; exit 1; }
}

_lab_script_cleanup() {
  lab_down
  [[ -z $_lab_bin_dir ]] || rm -rf -- "$_lab_bin_dir"
}

# ---------------------------------------------------------------- FRR
lab_vtysh() { # LEAF(1|2) vtysh-args...
  local n=${1#leaf}; shift
  vtysh --vty_socket "$LAB_DIR/leaf$n/run" --config_dir "$LAB_DIR/leaf$n/run" \
    -H /dev/null "$@"
}
lab_show() { # LEAF "show ..." : one command
  local n=$1; shift
  lab_vtysh "$n" -c "$*"
}

_lab_frr_conf() { # N PEER RID [ZEBRA-EXTRA [BGPD-EXTRA]]: the extras end each file
  local n=$1 peer=$2 rid=$3 zextra=${4:-} bextra=${5:-} d
  d=$LAB_DIR/leaf$n
  mkdir -p "$d/run" || return 1
  : >"$d/run/vtysh.conf"
  {
    echo "hostname leaf$n"
    echo "log file $d/zebra.log"
    echo "log timestamp precision 3"
    if [[ $LAB_DEBUG == 1 ]]; then
      echo "debug zebra vxlan"; echo "debug zebra kernel"; echo "debug zebra events"
    fi
    [[ -z $zextra ]] || printf '%s\n' "$zextra"
  } >"$d/zebra.conf"
  {
    echo "hostname leaf$n"
    echo "log file $d/bgpd.log"
    echo "log timestamp precision 3"
    [[ $LAB_DEBUG == 1 ]] && { echo "debug bgp updates"; echo "debug bgp zebra"; }
    cat <<EOF
router bgp $LAB_ASN
 bgp router-id $rid
 no bgp default ipv4-unicast
 neighbor $peer remote-as internal
 neighbor $peer update-source $rid
 neighbor $peer timers 3 9
 neighbor $peer timers connect 1
 neighbor $peer advertisement-interval 0
 address-family l2vpn evpn
  neighbor $peer activate
  advertise-all-vni
 exit-address-family
EOF
    [[ -z $bextra ]] || printf '%s\n' "$bextra"
  } >"$d/bgpd.conf"
}

_lab_wait_file() { # path timeout-s
  local i
  for ((i = 0; i < $2 * 20; i++)); do [[ -e $1 ]] && return 0; sleep 0.05; done
  return 1
}

# Start zebra and bgpd for leaf N in its namespace. Runtime files stay in
# $LAB_DIR/leafN: each daemon gets -f, -i, -z, --vty_socket, -P 0 (no TCP vty).
_lab_frr_start() {
  local n=$1 ns d
  ns=$(lab_ns "$n"); d=$LAB_DIR/leaf$n
  # Daemons drop privileges to the packaged frr user (root is not in the
  # frrvty group, so "-u root" is refused): the run dir must be theirs.
  chown -R frr:frr "$d" || return 1
  local common=(-d -P 0 -z "$d/run/zserv.api" --vty_socket "$d/run"
    --log "file:$d/startup.log")
  ip netns exec "$ns" "$LAB_FRR_BIN/zebra" "${common[@]}" -f "$d/zebra.conf" \
    -i "$d/run/zebra.pid" 2>>"$d/stderr.log" ||
    { lab_err "zebra failed to start on leaf$n"; cat "$d/stderr.log" >&2; return 1; }
  _lab_wait_file "$d/run/zserv.api" 10 || { lab_err "no zserv socket on leaf$n"; return 1; }
  ip netns exec "$ns" "$LAB_FRR_BIN/bgpd" "${common[@]}" -f "$d/bgpd.conf" \
    -i "$d/run/bgpd.pid" 2>>"$d/stderr.log" ||
    { lab_err "bgpd failed to start on leaf$n"; cat "$d/stderr.log" >&2; return 1; }
  _lab_wait_file "$d/run/bgpd.vty" 10 || { lab_err "no bgpd vty on leaf$n"; return 1; }
}

# Stop leaf N's zebra and bgpd as "systemctl stop frr" would: SIGTERM
# (zebra removes what it installed, the remote EVPN bindings among it).
lab_frr_stop() { # N
  local d=$LAB_DIR/leaf$1
  _lab_kill_pidfile "$d/run/bgpd.pid" bgpd
  _lab_kill_pidfile "$d/run/zebra.pid" zebra
  rm -f "$d/run/zserv.api" "$d/run/"*.vty
}

# Start leaf N's zebra and bgpd again and wait until the EVPN session is up
# and both VNIs are known.
lab_frr_up() { # N
  _lab_frr_start "$1" && lab_wait "$LAB_TIMEOUT" lab_bgp_established "$1" && lab_wait "$LAB_TIMEOUT" lab_vni_ready "$1" ||
    { lab_err "leaf$1: EVPN session not back after FRR started"; return 1; }
}

# Restart leaf N's FRR (lab_frr_stop, lab_frr_up), and with "remote" (the
# default) wait until the VM's addresses are remote bindings on the leaf
# again. Prints the milliseconds that took.
lab_frr_restart() { # N [remote|up]
  local n=$1 t0 a
  t0=$(lab_now_ms)
  lab_frr_stop "$n"
  lab_frr_up "$n" || return 1
  if [[ ${2:-remote} == remote ]]; then
    for a in "$LAB_VM_IP4" "$LAB_VM_IP4B" "$LAB_VM_IP6"; do
      lab_wait "$LAB_TIMEOUT" lab_remote_neigh "$n" "$a" ||
        { lab_err "leaf$n: $a not a remote binding again after the FRR restart"; return 1; }
    done
  fi
  echo $(($(lab_now_ms) - t0))
}

# Print the PID stored in FILE if that process is still alive and its
# command line contains MATCH (guards against a recycled PID); remove FILE.
_lab_pid_from() { # pidfile match-string
  local f=$1 match=$2 pid
  [[ -r $f ]] || return 0
  pid=$(<"$f")
  rm -f "$f"
  [[ $pid =~ ^[0-9]+$ && -r /proc/$pid/cmdline ]] || return 0
  tr '\0' ' ' </proc/"$pid"/cmdline | grep -qF -- "$match" && echo "$pid"
}
# Terminate the given PIDs: SIGTERM to all, then SIGKILL after 5 s.
_lab_kill_pids() {
  local pid i alive
  (($#)) || return 0
  kill -TERM "$@" 2>/dev/null
  for ((i = 0; i < 100; i++)); do
    alive=0
    for pid; do kill -0 "$pid" 2>/dev/null && alive=1; done
    ((alive)) || break
    sleep 0.05
  done
  for pid; do kill -0 "$pid" 2>/dev/null && kill -KILL "$pid" 2>/dev/null; done
  for pid; do wait "$pid" 2>/dev/null; done # reap if it was our child
  return 0
}
_lab_kill_pidfile() { # pidfile match-string
  local pid
  pid=$(_lab_pid_from "$1" "$2")
  [[ -z $pid ]] || _lab_kill_pids "$pid"
}

# ---------------------------------------------------------------- topology
_lab_leaf() { # N : underlay address, VTEP loopback, bridges/VXLAN per VNI
  local n=$1 ns vtep ul peer_vtep peer_ul
  ns=$(lab_ns "$n"); vtep=$(lab_vtep "$n")
  if [[ $n == 1 ]]; then ul=$LAB_UL1 peer_ul=$LAB_UL2 peer_vtep=$LAB_VTEP2
  else ul=$LAB_UL2 peer_ul=$LAB_UL1 peer_vtep=$LAB_VTEP1; fi
  _lab_sysctl "$ns" net.ipv4.ip_forward=1 net.ipv6.conf.all.forwarding=1 \
    net.ipv6.conf.default.accept_dad=0 net.ipv6.conf.all.accept_dad=0 || return 1
  ip -n "$ns" addr add "$vtep/32" dev lo &&
    ip -n "$ns" addr add "$ul/30" dev ul0 &&
    ip -n "$ns" link set ul0 up &&
    ip -n "$ns" route add "$peer_vtep/32" via "$peer_ul" || return 1
  _lab_svi "$n" "$LAB_VNI_VM" "$LAB_GW_MAC" "$LAB_GW4/24" "$LAB_GW6/64" || return 1
  _lab_svi "$n" "$LAB_VNI_CL" "$LAB_CL_GW_MAC" "$LAB_CL_GW4/24" "$LAB_CL_GW6/64" || return 1
}

_lab_svi() { # N VNI MAC IP4/len IP6/len
  local n=$1 vni=$2 mac=$3 a4=$4 a6=$5 ns vtep
  ns=$(lab_ns "$n"); vtep=$(lab_vtep "$n")
  ip -n "$ns" link add "br$vni" address "$mac" type bridge stp_state 0 mcast_snooping 0 &&
    _lab_sysctl "$ns" "net.ipv6.conf.br$vni.accept_dad=0" "net.ipv6.conf.br$vni.dad_transmits=0" &&
    ip -n "$ns" link add "vx$vni" type vxlan id "$vni" local "$vtep" dstport 4789 nolearning &&
    ip -n "$ns" link set "vx$vni" master "br$vni" addrgenmode none &&
    ip -n "$ns" link set "vx$vni" type bridge_slave neigh_suppress on learning off &&
    ip -n "$ns" link set "vx$vni" up &&
    ip -n "$ns" link set "br$vni" up &&
    ip -n "$ns" addr add "$a4" dev "br$vni" &&
    ip -n "$ns" addr add "$a6" dev "br$vni" nodad
}

# Sysctls that keep a guest silent unless spoken to. Applied to "default" and
# "all" before its interface exists, so eth0 inherits them.
_lab_quiet_guest_sysctls() {
  local ns=$1 s
  for s in default all; do
    _lab_sysctl "$ns" \
      "net.ipv6.conf.$s.accept_dad=0" "net.ipv6.conf.$s.dad_transmits=0" \
      "net.ipv6.conf.$s.router_solicitations=0" "net.ipv6.conf.$s.accept_ra=0" \
      "net.ipv6.conf.$s.force_mld_version=2" \
      "net.ipv6.conf.$s.mldv1_unsolicited_report_interval=10" \
      "net.ipv6.conf.$s.mldv2_unsolicited_report_interval=10" \
      "net.ipv6.conf.$s.ndisc_notify=0" \
      "net.ipv4.conf.$s.arp_notify=0" \
      "net.ipv4.conf.$s.igmpv2_unsolicited_report_interval=10" \
      "net.ipv4.conf.$s.igmpv3_unsolicited_report_interval=10" || return 1
  done
}

# Guest namespace NS with eth0 = peer of access port PORT in leaf LEAF.
# The leaf side is brought up standalone (not yet a bridge member); the caller
# enslaves it with _lab_attach. Anything the guest emits at link-up (MLD/IGMP
# reports) hits an unbridged port and is never learned by the fabric.
_lab_guest() { # NS LEAF PORT MAC IP4 IP4B IP6 GW4 GW6
  local ns=$1 leaf=$2 port=$3 mac=$4 ip4=$5 ip4b=$6 ip6=$7 gw4=$8 gw6=$9 lns
  lns=$(lab_ns "$leaf")
  _lab_ns_add "$ns" && _lab_quiet_guest_sysctls "$ns" || return 1
  ip -n "$lns" link add "$port" type veth peer name eth0 netns "$ns" &&
    ip -n "$lns" link set "$port" addrgenmode none &&
    _lab_sysctl "$lns" "net.ipv6.conf.$port.disable_ipv6=1" &&
    ip -n "$ns" link set eth0 address "$mac" addrgenmode none &&
    ip -n "$ns" addr add "$ip4/24" dev eth0 &&
    { [[ -z $ip4b ]] || ip -n "$ns" addr add "$ip4b/24" dev eth0; } &&
    ip -n "$ns" addr add "$ip6/64" dev eth0 nodad &&
    ip -n "$ns" link set eth0 up &&
    ip -n "$lns" link set "$port" up &&
    ip -n "$ns" route add default via "$gw4" &&
    ip -n "$ns" -6 route add default via "$gw6" || return 1
}

_lab_attach() { # LEAF PORT BRIDGE
  ip -n "$(lab_ns "$1")" link set "$2" master "$3"
}

lab_up() {
  lab_check_prereqs || return 1
  lab_init || return 1
  [[ ${LAB_NO_TRAP:-0} == 1 ]] || lab_trap
  local t0; t0=$(lab_now_ms)
  lab_log "creating namespaces"
  _lab_ns_add "$LAB_NS_L1" && _lab_ns_add "$LAB_NS_L2" || return 1
  ip -n "$LAB_NS_L1" link add ul0 type veth peer name ul0 netns "$LAB_NS_L2" || return 1
  _lab_leaf 1 && _lab_leaf 2 || { lab_err "leaf setup failed"; return 1; }

  lab_log "starting FRR"
  _lab_frr_conf 1 "$LAB_VTEP2" "$LAB_VTEP1" && _lab_frr_conf 2 "$LAB_VTEP1" "$LAB_VTEP2" || return 1
  _lab_frr_start 1 && _lab_frr_start 2 || return 1

  lab_log "creating VM and client"
  _lab_guest "$LAB_NS_VM" 1 vm0 "$LAB_VM_MAC" "$LAB_VM_IP4" "$LAB_VM_IP4B" "$LAB_VM_IP6" \
    "$LAB_GW4" "$LAB_GW6" || { lab_err "VM setup failed"; return 1; }
  _lab_guest "$LAB_NS_CL" 1 cl0 "$LAB_CL_MAC" "$LAB_CL_IP4" "" "$LAB_CL_IP6" \
    "$LAB_CL_GW4" "$LAB_CL_GW6" || { lab_err "client setup failed"; return 1; }
  sleep 0.2 # let link-up reports (if any) go to the unbridged ports
  _lab_attach 1 vm0 "br$LAB_VNI_VM" && _lab_attach 1 cl0 "br$LAB_VNI_CL" || return 1

  lab_log "waiting for BGP EVPN session"
  lab_wait "$LAB_TIMEOUT" lab_bgp_established 1 && lab_wait "$LAB_TIMEOUT" lab_bgp_established 2 ||
    { lab_err "BGP EVPN not established"; lab_show 1 "show bgp l2vpn evpn summary" >&2; return 1; }
  lab_wait "$LAB_TIMEOUT" lab_vni_ready 1 && lab_wait "$LAB_TIMEOUT" lab_vni_ready 2 ||
    { lab_err "VNIs not known to zebra/bgp"; lab_show 1 "show evpn vni" >&2; return 1; }

  lab_log "making the VM known to the fabric"
  lab_vm_announce || return 1
  lab_log "checking routed reachability client -> VM"
  lab_client_reach || { lab_err "client cannot reach the VM"; return 1; }
  lab_log "lab up in $(($(lab_now_ms) - t0)) ms"
}

# The VM talks once from each of its addresses (ping the gateway), so leaf1
# learns its MAC+IP bindings and leaf2 installs them as remote neighbors.
# Then its own neighbor cache is flushed.
lab_vm_announce() {
  local ns=${1:-$LAB_NS_VM}
  ip -n "$ns" neigh flush all
  ip netns exec "$ns" ping -c1 -W2 -I "$LAB_VM_IP4" "$LAB_GW4" >/dev/null &&
    ip -n "$ns" neigh flush all &&
    ip netns exec "$ns" ping -c1 -W2 -I "$LAB_VM_IP4B" "$LAB_GW4" >/dev/null &&
    ip netns exec "$ns" ping -6 -c1 -W2 -I "$LAB_VM_IP6" "$LAB_GW6" >/dev/null ||
    { lab_err "VM cannot ping its gateway"; return 1; }
  lab_wait "$LAB_TIMEOUT" lab_vm_known ||
    { lab_err "VM MAC+IP routes not on both leaves"; lab_dump >&2; return 1; }
  ip -n "$ns" neigh flush all
}

lab_client_reach() {
  local a
  for a in "$LAB_VM_IP4" "$LAB_VM_IP4B"; do
    ip netns exec "$LAB_NS_CL" ping -c1 -W2 "$a" >/dev/null || return 1
  done
  ip netns exec "$LAB_NS_CL" ping -6 -c1 -W2 "$LAB_VM_IP6" >/dev/null
}

# ---------------------------------------------------------------- waiting
lab_wait() { # TIMEOUT-s CMD... : poll CMD every 0.1 s
  local t=$1 end; shift
  end=$(($(lab_now_ms) + t * 1000))
  until "$@"; do
    (($(lab_now_ms) > end)) && return 1
    sleep 0.1
  done
}

lab_bgp_established() {
  lab_show "$1" "show bgp l2vpn evpn summary json" 2>/dev/null |
    jq -e '[.. | objects | select(has("state")) | .state] | any(. == "Established")' >/dev/null 2>&1
}

lab_vni_ready() { # both VNIs known to bgpd
  local out
  out=$(lab_show "$1" "show bgp l2vpn evpn vni json" 2>/dev/null) || return 1
  jq -e --arg a "$LAB_VNI_VM" --arg b "$LAB_VNI_CL" 'has($a) and has($b)' <<<"$out" >/dev/null 2>&1
}

# ---------------------------------------------------------------- queries
# lab_macip_routes LEAF [MAC]
# One line per best path of a type-2 route for MAC (default: the VM's):
#   <mac> <ip|-> <nexthop> <local|remote> <seq> <rd>
# "-" in the IP column marks a MAC-only route.
# jq program shared by lab_macip_routes and lab_poll_table: the best paths of
# the type-2 routes for $mac, as "mac ip|- nexthop local|remote seq rd" rows.
_LAB_MACIP_JQ='
    to_entries[] | select(.value | type == "object") | .key as $rd
    | .value | to_entries[] | select(.value | type == "object" and has("paths"))
    | .key as $pfx | .value.paths[] | (if type == "array" then .[] else . end)
    | select(.bestpath == true or (.bestpath | type == "object" and .overall == true))
    | ($pfx | capture("^\\[2\\]:\\[[0-9]+\\]:\\[48\\]:\\[(?<m>[0-9a-f:]+)\\](:\\[(32|128)\\]:\\[(?<ip>[^]]+)\\])?")) as $p
    | select($p.m == $mac)
    | [$p.m, ($p.ip // "-"), (.nexthops[0].ip // "?"),
       (if (.peerId // "") == "(unspec)" or (.peerId // "") == "" then "local" else "remote" end),
       (.extendedCommunity.string // "" | capture("MM:(?<s>[0-9]+)").s // "0"), $rd]
    | @tsv'
lab_macip_routes() {
  local n=$1 mac=${2:-$LAB_VM_MAC}
  lab_show "$n" "show bgp l2vpn evpn route type macip json" 2>/dev/null |
    jq -r --arg mac "${mac,,}" "$_LAB_MACIP_JQ" | sort -u
}

# Route classification helpers (operate on lab_macip_routes output).
lab_has_mac_only_via() { # LEAF VTEP [MAC]
  lab_macip_routes "$1" "${3:-}" | awk -v nh="$2" '$2 == "-" && $3 == nh {f=1} END {exit !f}'
}
lab_has_macip_via() { # LEAF IP VTEP [MAC]
  lab_macip_routes "$1" "${4:-}" | awk -v ip="$2" -v nh="$3" '$2 == ip && $3 == nh {f=1} END {exit !f}'
}
lab_count_macip() { # LEAF [MAC] : number of MAC+IP routes (any next hop)
  lab_macip_routes "$1" "${2:-}" | awk '$2 != "-" {c++} END {print c+0}'
}
lab_macip_ips() { # LEAF [MAC] : IPs that have a MAC+IP route
  lab_macip_routes "$1" "${2:-}" | awk '$2 != "-" {print $2}' | sort -u
}

# All three VM addresses present as MAC+IP routes on both leaves, with leaf1's
# VTEP as next hop, and installed on leaf2 as remote (noarp extern_learn).
lab_vm_known() {
  local n a
  for n in 1 2; do
    for a in "$LAB_VM_IP4" "$LAB_VM_IP4B" "$LAB_VM_IP6"; do
      lab_has_macip_via "$n" "$a" "$LAB_VTEP1" || return 1
    done
  done
  for a in "$LAB_VM_IP4" "$LAB_VM_IP4B" "$LAB_VM_IP6"; do
    lab_remote_neigh 2 "$a" || return 1
  done
}

lab_remote_neigh() { # LEAF IP : kernel neighbor is an EVPN remote entry
  local l      # e.g. "192.0.2.10 lladdr 02:.. extern_learn NOARP proto zebra"
  l=$(ip -n "$(lab_ns "$1")" neigh show "$2" dev "br$LAB_VNI_VM" 2>/dev/null)
  [[ ${l,,} == *"lladdr ${LAB_VM_MAC,,} "* && $l == *extern_learn* && $l == *NOARP* ]]
}

# Bug state on leaf1: a MAC-only route via leaf2's VTEP and no MAC+IP route.
lab_bug_state() {
  local r
  r=$(lab_macip_routes 1) || return 1
  _lab_cls_mac_only_via2 <<<"$r" && ! _lab_cls_any_macip <<<"$r"
}
# Fixed state on leaf1: MAC+IP routes for all VM addresses via leaf2's VTEP.
lab_fixed_state() {
  lab_macip_routes 1 | _lab_cls_all_macip_via2
}

lab_dump() { # human-readable state of both leaves
  local n
  for n in 1 2; do
    echo "=== leaf$n macip routes for $LAB_VM_MAC (mac ip nexthop origin seq rd)"
    lab_macip_routes "$n" | sed 's/^/  /'
    echo "=== leaf$n kernel neighbors on br$LAB_VNI_VM"
    ip -n "$(lab_ns "$n")" neigh show dev "br$LAB_VNI_VM" | grep -i "$LAB_VM_MAC" | sed 's/^/  /'
    echo "=== leaf$n fdb for $LAB_VM_MAC"
    bridge -n "$(lab_ns "$n")" fdb show br "br$LAB_VNI_VM" | grep -i "$LAB_VM_MAC" | sed 's/^/  /'
  done
}

# ---------------------------------------------------------------- rarp-replay daemons
# Extra args are passed to "rarp-replay listen"; LAB_DAEMON_NICE (default 0)
# is the daemons' nice value.
lab_start_daemons() {
  lab_binary || return 1
  local n ns pf nice=${LAB_DAEMON_NICE:-0}
  for n in 1 2; do
    ns=$(lab_ns "$n"); pf=$LAB_DIR/leaf$n/rarp-replay.pid
    nice -n "$nice" ip netns exec "$ns" "$RARP_REPLAY" listen -i any "$@" \
      >"$LAB_DIR/leaf$n/rarp-replay.log" 2>&1 &
    echo $! >"$pf"
    LAB_DAEMON_PIDFILES+=("$pf")
    lab_log "rarp-replay listen on leaf$n: pid $! (nice $nice)"
  done
  sleep 0.5
  for pf in "${LAB_DAEMON_PIDFILES[@]}"; do
    kill -0 "$(<"$pf")" 2>/dev/null || { lab_err "rarp-replay exited, see ${pf%.pid}.log"; return 1; }
  done
}

lab_stop_daemons() { # by the pid files, so it also works from a subshell
  local n pids=()
  [[ -n ${LAB_DIR:-} ]] || return 0
  for n in 1 2; do pids+=($(_lab_pid_from "$LAB_DIR/leaf$n/rarp-replay.pid" " listen ")); done
  _lab_kill_pids "${pids[@]}"
  LAB_DAEMON_PIDFILES=()
}

# ---------------------------------------------------------------- fdb monitors
# "bridge -timestamp monitor fdb" in both leaves, to time the first RARP's
# arrival (leaf2 learns the MAC on its access port) and leaf1's switch to the
# remote MAC more precisely than polling vtysh can.
lab_monitor_start() {
  local n pf
  for n in 1 2; do
    pf=$LAB_DIR/leaf$n/fdbmon.pid
    [[ -s $pf ]] && continue
    ip netns exec "$(lab_ns "$n")" bridge -timestamp monitor fdb >"$LAB_DIR/leaf$n/fdb.mon" 2>&1 &
    echo $! >"$pf"
  done
  sleep 0.2
}
lab_monitor_stop() {
  local n pids=()
  for n in 1 2; do pids+=($(_lab_pid_from "$LAB_DIR/leaf$n/fdbmon.pid" "monitor fdb")); done
  _lab_kill_pids "${pids[@]}"
}
# lab_monitor_first LEAF ERE SINCE_MS: wall-clock ms of the first fdb event
# (not a deletion) at or after SINCE_MS whose line matches ERE; -1 if none.
lab_monitor_first() {
  local f=$LAB_DIR/leaf$1/fdb.mon re=$2 since=$3 line ts=-1 d us ms
  [[ -r $f ]] || { echo -1; return; }
  while IFS= read -r line; do
    if [[ $line =~ ^Timestamp:\ (.*)\ ([0-9]+)\ usec$ ]]; then
      d=${BASH_REMATCH[1]} us=${BASH_REMATCH[2]}
      ts=$(($(date -d "$d" +%s) * 1000 + 10#$us / 1000))
    elif [[ $line != Deleted* && $line =~ $re ]] && ((ts >= since)); then
      echo "$ts"; return
    fi
  done <"$f"
  echo -1
}

# ---------------------------------------------------------------- migration
# lab_send_rarp NS IF [extra args]: "$RARP_REPLAY send-rarp" in a namespace.
lab_send_rarp() {
  local ns=$1 ifc=$2; shift 2
  ip netns exec "$ns" "$RARP_REPLAY" send-rarp --mac "$LAB_VM_MAC" -i "$ifc" "$@"
}

# lab_migrate ORDER: move the VM from leaf1 to leaf2 like a hypervisor pair.
#   rarp-first: attach the destination port, send RARPs, remove the old port
#               LAB_MIGRATE_GAP (0.5 s) after the first RARP.
#   port-first: remove the old port, wait LAB_MIGRATE_GAP, attach the
#               destination port and send RARPs.
# Returns as soon as the first RARP is on its way; the sender (and, for
# rarp-first, the delayed port removal) keep running in the background:
# poll with lab_observe, which also reaps them (or call lab_migrate_wait).
# Sets LAB_T_RARP_MS (wall clock ms when the sender started); the port
# removal time is in LAB_T_PORTDEL_MS after lab_migrate_wait.
# LAB_RARP_ARGS: extra send-rarp args (e.g. "--count 1"). LAB_MIGRATE_HOOK:
# see below.
lab_migrate() {
  local order=$1
  case $order in rarp-first | port-first) ;; *) lab_err "usage: lab_migrate rarp-first|port-first"; return 1 ;; esac
  lab_binary || return 1
  lab_log "migrating ($order)"
  # The source VM is paused from now on: forget its neighbors.
  ip -n "$LAB_NS_VM" neigh flush all
  # Destination VM: same MAC and addresses. Its leaf2 port is up but not yet
  # bridged, so whatever the guest emits at link-up (MLD reports) is not
  # learned; a hypervisor keeps the destination paused until it sends RARPs.
  _lab_guest "$LAB_NS_VM2" 2 vm0 "$LAB_VM_MAC" "$LAB_VM_IP4" "$LAB_VM_IP4B" "$LAB_VM_IP6" \
    "$LAB_GW4" "$LAB_GW6" || { lab_err "destination VM setup failed"; return 1; }
  # LAB_MIGRATE_HOOK: a command run once the destination VM exists, before
  # its port is attached (e.g. start a receiver in it); empty by default.
  if [[ -n ${LAB_MIGRATE_HOOK:-} ]]; then $LAB_MIGRATE_HOOK || return 1; fi
  sleep 0.3
  ip -n "$LAB_NS_VM2" neigh flush all
  rm -f "$LAB_DIR/t_portdel"

  if [[ $order == port-first ]]; then
    lab_now_ms >"$LAB_DIR/t_portdel"
    ip -n "$LAB_NS_L1" link del vm0 || return 1
    sleep "$LAB_MIGRATE_GAP"
  fi
  _lab_attach 2 vm0 "br$LAB_VNI_VM" || return 1
  LAB_T_RARP_MS=$(lab_now_ms)
  # shellcheck disable=SC2086
  lab_send_rarp "$LAB_NS_VM2" eth0 ${LAB_RARP_ARGS:-} &
  LAB_RARP_PID=$!
  LAB_PORTDEL_PID=
  if [[ $order == rarp-first ]]; then
    (
      # Count the gap from the first RARP's arrival (leaf2 learns the MAC on
      # its new port), not from the sender's start.
      for ((i = 0; i < 300; i++)); do
        bridge -n "$LAB_NS_L2" fdb show br "br$LAB_VNI_VM" 2>/dev/null |
          grep -qi "^$LAB_VM_MAC dev vm0 " && break
        sleep 0.01
      done
      sleep "$LAB_MIGRATE_GAP"
      lab_now_ms >"$LAB_DIR/t_portdel"
      ip -n "$LAB_NS_L1" link del vm0
    ) &
    LAB_PORTDEL_PID=$!
  fi
}

# Wait for the background parts of lab_migrate; non-zero if one failed.
lab_migrate_wait() {
  local rc=0
  if [[ -n ${LAB_RARP_PID:-} ]]; then
    wait "$LAB_RARP_PID" || { lab_err "send-rarp failed"; rc=1; }
    LAB_RARP_PID=
  fi
  if [[ -n ${LAB_PORTDEL_PID:-} ]]; then
    wait "$LAB_PORTDEL_PID" || { lab_err "removing the old port failed"; rc=1; }
    LAB_PORTDEL_PID=
  fi
  LAB_T_PORTDEL_MS=$(cat "$LAB_DIR/t_portdel" 2>/dev/null || echo -1)
  return $rc
}

# Classify a lab_macip_routes listing (stdin) for leaf1's point of view.
_lab_cls_mac_only_via2() { awk -v nh="$LAB_VTEP2" '$2 == "-" && $3 == nh {f=1} END {exit !f}'; }
_lab_cls_any_macip() { awk '$2 != "-" {f=1} END {exit !f}'; }
_lab_cls_all_macip_via2() {
  awk -v nh="$LAB_VTEP2" -v a="$LAB_VM_IP4" -v b="$LAB_VM_IP4B" -v c="$LAB_VM_IP6" \
    '$3 == nh && ($2 == a || $2 == b || $2 == c) {s[$2]=1} END {exit !(length(s) == 3)}'
}

# Poll leaf1 after lab_migrate for LAB_SETTLE seconds (from the first RARP)
# and record, in ms since the first RARP (-1 = not in that state at the end):
#   LAB_T_MAConly  since when a MAC-only route via leaf2's VTEP is present
#   LAB_T_NOMACIP  since when no MAC+IP route for the VM is left
#   LAB_T_BUG      since when both hold (the bug)
#   LAB_T_FIXED    since when all VM addresses have MAC+IP routes via leaf2
# Each is the start of the final uninterrupted stretch. LAB_FINAL holds the
# last listing, LAB_POLLS the number of polls. Then calls lab_migrate_wait.
lab_observe() {
  local end r now
  LAB_T_MAConly=-1 LAB_T_NOMACIP=-1 LAB_T_BUG=-1 LAB_T_FIXED=-1 LAB_POLLS=0
  end=$((LAB_T_RARP_MS + LAB_SETTLE * 1000))
  while :; do
    r=$(lab_macip_routes 1)
    now=$(($(lab_now_ms) - LAB_T_RARP_MS))
    ((LAB_POLLS++))
    if _lab_cls_mac_only_via2 <<<"$r"; then
      ((LAB_T_MAConly < 0)) && LAB_T_MAConly=$now
    else LAB_T_MAConly=-1; fi
    if ! _lab_cls_any_macip <<<"$r"; then
      ((LAB_T_NOMACIP < 0)) && LAB_T_NOMACIP=$now
    else LAB_T_NOMACIP=-1; fi
    if ((LAB_T_MAConly >= 0 && LAB_T_NOMACIP >= 0)); then
      ((LAB_T_BUG < 0)) && LAB_T_BUG=$now
    else LAB_T_BUG=-1; fi
    if _lab_cls_all_macip_via2 <<<"$r"; then
      ((LAB_T_FIXED < 0)) && LAB_T_FIXED=$now
    else LAB_T_FIXED=-1; fi
    (($(lab_now_ms) > end)) && break
    sleep 0.01
  done
  LAB_FINAL=$r
  lab_migrate_wait
}

# ---------------------------------------------------------------- e2e helpers
# Used by e2e.sh and ../demo.sh; all state stays in $LAB_DIR.

# _lab_ms VAR: set VAR to the wall clock in ms (no subshell).
_lab_ms() {
  local t=${EPOCHREALTIME:-}
  if [[ -n $t ]]; then t=${t//[!0-9]/}; printf -v "$1" '%d' $((10#$t / 1000))
  else printf -v "$1" '%d' $(($(date +%s%N) / 1000000)); fi
}

# lab_bind_foreign IP: leaf1 holds IP bound to the VM's MAC as a local,
# reachable neighbor on br10, an address the VM does not own. Waits until
# leaf1 advertises its MAC+IP route and leaf2 installs it as a remote
# (noarp extern_learn) binding, as it does for the VM's own addresses.
lab_bind_foreign() {
  ip -n "$LAB_NS_L1" neigh replace "$1" lladdr "$LAB_VM_MAC" dev "br$LAB_VNI_VM" nud reachable ||
    return 1
  lab_wait "$LAB_TIMEOUT" lab_has_macip_via 2 "$1" "$LAB_VTEP1" &&
    lab_wait "$LAB_TIMEOUT" lab_remote_neigh 2 "$1"
}

# lab_poll_start LEAF: poll LEAF's "show bgp l2vpn evpn route type macip json"
# back to back (as fast as vtysh answers) in the background until
# lab_poll_stop. Each answer is kept as
# $LAB_DIR/poll.leafN/<seq>_<start-ms>_<end-ms>.json; failed polls are listed
# in .../failed.
lab_poll_start() {
  local n=${1#leaf} d
  d=$LAB_DIR/poll.leaf$n
  mkdir -p "$d" && rm -f "$d"/*.json "$d/stop" "$d/failed" || return 1
  (
    trap - EXIT INT TERM HUP
    i=0
    while [[ ! -e $d/stop ]]; do
      _lab_ms t0
      out=$(lab_show "$n" "show bgp l2vpn evpn route type macip json" 2>/dev/null)
      _lab_ms t1
      if [[ $out == "{"* ]]; then
        printf '%s\n' "$out" >"$d/$(printf %06d "$i")_${t0}_${t1}.json"
      else
        echo "$t0 $t1" >>"$d/failed"
      fi
      ((i++))
    done
  ) &
  echo $! >"$d/pid"
  LAB_BG_PIDS+=($!)
}
lab_poll_stop() { # LEAF : let the poller finish its current poll, then reap it
  local n=${1#leaf} d pid i
  d=$LAB_DIR/poll.leaf$n
  [[ -r $d/pid ]] || return 0
  pid=$(<"$d/pid"); rm -f "$d/pid"
  : >"$d/stop"
  for ((i = 0; i < 100; i++)); do kill -0 "$pid" 2>/dev/null || break; sleep 0.05; done
  kill -0 "$pid" 2>/dev/null && kill "$pid" 2>/dev/null
  wait "$pid" 2>/dev/null
  return 0
}
# lab_poll_table LEAF [MAC]: the polls as rows "<start> <end> #poll" followed by
# that poll's routes for MAC, "<start> <end> mac ip|- nexthop origin seq rd".
lab_poll_table() {
  local n=${1#leaf} mac=${2:-$LAB_VM_MAC} files
  files=("$LAB_DIR/poll.leaf$n"/*.json)
  [[ -e ${files[0]} ]] || return 0
  jq -r --arg mac "${mac,,}" '
    (input_filename | capture("(?<a>[0-9]+)_(?<b>[0-9]+)\\.json$")) as $f
    | ($f.a + "\t" + $f.b + "\t#poll"),
      ('"$_LAB_MACIP_JQ"' | $f.a + "\t" + $f.b + "\t" + .)' "${files[@]}"
}
# lab_poll_summary LEAF REF_MS [FOREIGN_IP] [UNTIL_MS]: shell assignments (for
# eval) from leaf1's point of view over the polls that started before UNTIL_MS
# (wall clock; default: all), times in ms after REF_MS of the end of the first
# poll that showed the state (-1: never):
#   P_POLLS P_SPAN_MS   number of polls and the time they cover
#   P_MAC_ONLY          MAC-only route via leaf2's VTEP
#   P_ALL_MACIP         MAC+IP routes via leaf2's VTEP for every VM address
#   P_ALL_MACIP_STABLE  start of the final uninterrupted stretch of the above
#   P_BUG_STABLE        start of the final stretch of "MAC-only via leaf2 and
#                       no MAC+IP route at all" (the bug)
#   P_FOREIGN / P_FOREIGN_POLLS  FOREIGN_IP seen via leaf2's VTEP: first time,
#                       number of polls
#   P_LAST_END          end of the last poll
lab_poll_summary() {
  local n=${1#leaf} ref=$2 foreign=${3:-none} until=${4:-0}
  lab_poll_table "$n" | awk -F'\t' -v ref="$ref" -v nh="$LAB_VTEP2" -v fip="$foreign" -v until="$until" \
    -v a="$LAB_VM_IP4" -v b="$LAB_VM_IP4B" -v c="$LAB_VM_IP6" '
    function rel(t) { return t - ref }
    function close_poll() {
      if (!open) return
      all = (s[a] && s[b] && s[c])
      if (maconly && first_mo < 0) first_mo = rel(end)
      if (all && first_all < 0) first_all = rel(end)
      if (all) { if (stable_all < 0) stable_all = rel(end) } else stable_all = -1
      if (maconly && !anyip) { if (stable_bug < 0) stable_bug = rel(end) } else stable_bug = -1
      if (fseen) { fpolls++; if (first_f < 0) first_f = rel(end) }
      open = 0
    }
    BEGIN { first_mo = first_all = stable_all = stable_bug = first_f = -1; first = -1 }
    $3 == "#poll" {
      close_poll()
      if (until > 0 && $1 + 0 >= until + 0) { skip = 1; next }
      skip = 0; open = 1; polls++; start = $1; end = $2
      if (first < 0) first = start
      maconly = anyip = fseen = 0; delete s; next
    }
    skip { next }
    {
      # $3 mac, $4 ip, $5 next hop
      if ($4 == "-") { if ($5 == nh) maconly = 1 }
      else {
        anyip = 1
        if ($5 == nh) s[$4] = 1
        if ($4 == fip && $5 == nh) fseen = 1
      }
    }
    END {
      close_poll()
      printf "P_POLLS=%d P_SPAN_MS=%d P_MAC_ONLY=%d P_ALL_MACIP=%d P_ALL_MACIP_STABLE=%d ", \
        polls, (polls ? end - first : 0), first_mo, first_all, stable_all
      printf "P_BUG_STABLE=%d P_FOREIGN=%d P_FOREIGN_POLLS=%d P_LAST_END=%d\n", \
        stable_bug, first_f, fpolls, (polls ? rel(end) : -1)
    }'
}

# lab_neighmon_start LEAF: "ip -ts monitor neigh" in LEAF, into
# $LAB_DIR/leafN/neigh.mon, until lab_neighmon_stop.
lab_neighmon_start() {
  local n=${1#leaf} pf
  pf=$LAB_DIR/leaf$n/neighmon.pid
  [[ -s $pf ]] && return 0
  ip -ts -n "$(lab_ns "$n")" monitor neigh >"$LAB_DIR/leaf$n/neigh.mon" 2>&1 &
  echo $! >"$pf"
  sleep 0.1
}
lab_neighmon_stop() {
  local n pids=()
  [[ -n ${LAB_DIR:-} ]] || return 0
  for n in 1 2; do pids+=($(_lab_pid_from "$LAB_DIR/leaf$n/neighmon.pid" "monitor neigh")); done
  _lab_kill_pids "${pids[@]}"
}
# lab_neighmon_lines LEAF IP: the monitor's lines about IP.
lab_neighmon_lines() {
  grep -E "^(\[[^]]*\] )?(Deleted )?${2//./\\.} " "$LAB_DIR/leaf${1#leaf}/neigh.mon" 2>/dev/null
}
# lab_neighmon_local LEAF IP: the monitor's lines that show IP bound to the
# VM's MAC as anything but a remote EVPN binding (extern_learn NOARP).
lab_neighmon_local() {
  lab_neighmon_lines "$1" "$2" | grep -v '^\(\[[^]]*\] \)\?Deleted ' |
    grep -i "lladdr ${LAB_VM_MAC} " | grep -v 'extern_learn.*NOARP'
}

# lab_daemons_wait_listening [TIMEOUT-s]: both listeners logged "listening".
lab_daemons_wait_listening() {
  local n
  for n in 1 2; do
    lab_wait "${1:-10}" grep -qE '"msg":"listening"|msg=listening' "$LAB_DIR/leaf$n/rarp-replay.log" ||
      { lab_err "rarp-replay on leaf$n is not listening"; cat "$LAB_DIR/leaf$n/rarp-replay.log" >&2; return 1; }
  done
}
lab_daemon_log() { cat "$LAB_DIR/leaf${1#leaf}/rarp-replay.log" 2>/dev/null; }
# lab_daemon_handled LEAF: the daemon's "migration handled" lines (JSON log).
lab_daemon_handled() { lab_daemon_log "$1" | grep '"msg":"migration handled"'; }
# lab_daemons_alive: both listeners still running.
lab_daemons_alive() {
  local n
  for n in 1 2; do
    [[ -n $(_lab_pid_alive "$LAB_DIR/leaf$n/rarp-replay.pid" " listen ") ]] || return 1
  done
}
_lab_pid_alive() { # pidfile match : like _lab_pid_from, but keeps the file
  local pid
  [[ -r $1 ]] || return 0
  pid=$(<"$1")
  [[ $pid =~ ^[0-9]+$ && -r /proc/$pid/cmdline ]] || return 0
  tr '\0' ' ' </proc/"$pid"/cmdline | grep -qF -- "$2" && echo "$pid"
}

# lab_flush_vm_neighs LEAF: delete every neighbor on LEAF's br10 bound to the
# VM's MAC, as ageing would remove the old leaf's leftover local entries
# (zebra puts back the remote EVPN bindings it owns). Prints "addr(local)" or
# "addr(remote)" per entry deleted.
lab_flush_vm_neighs() {
  local ns a rest kind
  ns=$(lab_ns "$1")
  while read -r a rest; do
    [[ -n $a ]] || continue
    kind=local; [[ $rest == *extern_learn* ]] && kind=remote
    ip -n "$ns" neigh del "$a" dev "br$LAB_VNI_VM" 2>/dev/null && echo "$a($kind)"
  done < <(ip -n "$ns" neigh show dev "br$LAB_VNI_VM" | grep -i "lladdr $LAB_VM_MAC ")
}

# lab_ping_vm ADDR [TRIES] [WAIT-s]: the client pings ADDR (v4 or v6);
# success if one of TRIES single pings is answered.
lab_ping_vm() {
  local a=$1 tries=${2:-3} w=${3:-2} i fam=-4
  [[ $a == *:* ]] && fam=-6
  for ((i = 0; i < tries; i++)); do
    ip netns exec "$LAB_NS_CL" ping "$fam" -c1 -W"$w" "$a" >/dev/null 2>&1 && return 0
  done
  return 1
}

# ---------------------------------------------------------------- teardown
lab_down() {
  local n ns
  [[ -n ${LAB_ID:-} ]] || return 0
  if [[ ${LAB_TRAP_SET:-0} == 1 ]]; then trap - EXIT INT TERM HUP; LAB_TRAP_SET=0; fi
  local p
  for p in ${LAB_RARP_PID:-} ${LAB_PORTDEL_PID:-}; do # our own background jobs
    kill "$p" 2>/dev/null && wait "$p" 2>/dev/null
  done
  LAB_RARP_PID= LAB_PORTDEL_PID=
  for p in ${LAB_BG_PIDS[@]+"${LAB_BG_PIDS[@]}"}; do # pollers
    kill "$p" 2>/dev/null; wait "$p" 2>/dev/null
  done
  LAB_BG_PIDS=()
  lab_stop_daemons 2>/dev/null
  lab_neighmon_stop 2>/dev/null
  lab_monitor_stop 2>/dev/null
  local pids=()
  for n in 1 2; do
    pids+=($(_lab_pid_from "$LAB_DIR/leaf$n/run/bgpd.pid" "$LAB_DIR/leaf$n/")
      $(_lab_pid_from "$LAB_DIR/leaf$n/run/zebra.pid" "$LAB_DIR/leaf$n/"))
  done
  _lab_kill_pids "${pids[@]}" # FRR daemons each take 1-2 s to shut down
  for p in "${pids[@]}"; do    # FRR's per-process temp dirs, left if killed
    rm -rf -- "/var/tmp/frr/zebra.$p" "/var/tmp/frr/bgpd.$p"
  done

  if [[ -r $LAB_DIR/namespaces ]]; then
    while read -r ns; do
      [[ $ns == "$LAB_ID"-* ]] && ip netns del "$ns" 2>/dev/null
    done <"$LAB_DIR/namespaces"
  fi
  if [[ $LAB_KEEP == 1 ]]; then
    lab_log "kept $LAB_DIR"
  else
    rm -rf -- "$LAB_DIR"
  fi
  lab_log "lab $LAB_ID down"
  unset LAB_ID
}

# ---------------------------------------------------------------- CLI
if [[ ${BASH_SOURCE[0]} == "$0" ]]; then
  case ${1:-} in
    shell)
      lab_up || exit 1
      lab_dump
      echo "namespaces: $LAB_NS_L1 $LAB_NS_L2 $LAB_NS_VM $LAB_NS_CL"
      echo "vtysh: vtysh --vty_socket $LAB_DIR/leaf1/run   (leaf2: .../leaf2/run)"
      echo "subshell with lab functions loaded; exit to tear down"
      LAB_NO_TRAP=1 bash --rcfile <(declare -p | grep -E '^declare -[-a-zA-Z]* (LAB_|RARP_)'; declare -f) -i
      ;;
    *) echo "usage: $0 shell   (or source it and call lab_up / lab_migrate / lab_down)" >&2; exit 2 ;;
  esac
fi
