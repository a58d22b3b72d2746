#!/usr/bin/env bash
# End-to-end test of rarp-replay with FRR EVPN on Cumulus-style leaves: a
# VLAN-aware bridge, SVIs in a tenant VRF with an L3 VNI (symmetric IRB), an
# anycast gateway macvlan with the VRR MAC, a VM tagged on a trunk port and a
# client routed from another VLAN (lab-vlan.sh). Needs 802.1Q, bridge VLAN
# filtering, VRF, macvlan, VXLAN and tc flower: run it inside user-mode Linux
# when the host kernel lacks them:
#
#   nice -n -10 scripts/uml/run.sh --timeout 500 -e RARP_REPLAY=$PWD/bin/rarp-replay -- scripts/lab/e2e-vlan.sh
#
# (About 2 minutes on 2 cores. The guest is one host process: on a host
# loaded beyond its cores it stalls for tens of ms at a time, which the
# 10 ms check below sees; hence nice.)
#
# One lab (22 to 37 s to come up in UML) serves every scenario; between two
# scenarios lv_reset puts the VM back on leaf1, deletes every binding of its
# MAC that zebra does not own on both leaves and binds the decoys again,
# then waits for the fabric to agree (local on leaf1, remote on leaf2), so
# each scenario starts from the state of a fresh lab. Scenarios, in order
# (without first: no binding the daemon programmed can linger into them):
#   without rarp-first, without port-first, with rarp-first, with port-first
# "with": "rarp-replay listen -i any" on both leaves, told nothing about the
# VM. The VM migrates from leaf1's trunk port swp1 to leaf2's, announced by
# ONE RARP tagged with VLAN 10 (send-rarp --count 1 --vlan 10):
#   rarp-first: new port enslaved, RARP, old port deleted 0.5 s after leaf2
#               learned the MAC;
#   port-first: old port deleted, 0.5 s later new port enslaved, RARP.
#
# Timing: from the OLD leaf's (leaf1) kernel events, not FRR's view:
# T_MAC is the first event that puts the VM's MAC on the VXLAN device vni10
# (zebra installing the MAC-only route from leaf2); per VM address, the
# first event that binds it to the VM's MAC as extern_learn (zebra
# installing a MAC+IP route; only a remote binding is extern_learn). Both
# are read from "ip -ts monitor neigh", which prints the bridge's fdb events
# too: one reader, stamping each message when it reads it (wall clock), in
# the kernel's order. "bridge -timestamp monitor fdb" times the same MAC
# event (printed next to it; a second reader is up to ~10 ms off in this
# guest) and the RARP's arrival at leaf2. Both monitors run at nice -15, so
# that they read before zebra and bgpd get the CPU. FRR's view (vtysh) is
# checked at the end only: that the routes are via leaf2's VTEP.
#
# Checks, with the daemon:
#   - every VM address (192.0.2.10, .11, 2001:db8:10::10, ::11) gets its
#     MAC+IP binding on leaf1 within E2EV_DEADLINE_MS (10) of T_MAC, and
#     leaf1's BGP table ends with MAC+IP routes via leaf2's VTEP for each;
#   - the decoys (192.0.2.99, 2001:db8:10::99: bound to the VM's MAC on
#     leaf1, remote on leaf2, owned by nobody) are never programmed on leaf2
#     (no event binding them there other than extern_learn, nor at the end)
#     nor advertised by it (no extern_learn event for them on leaf1, no
#     route via leaf2's VTEP at the end); leaf2's daemon verified and
#     programmed the VM's addresses and reports the decoys failed;
#   - the routed client (VLAN 20) reaches the silent VM on every address,
#     routed symmetrically: leaf1's VRF routes each address through the L3
#     VNI's SVI vlan4001 (the host route zebra derives from the MAC+IP
#     route), and leaf2's vni4001 decapsulates the echo requests.
# Without the daemon (the bug must reproduce, else the test proves nothing):
#   - leaf1 gets the MAC on vni10 but no extern_learn binding for any VM
#     address within E2EV_SETTLE_MS (3000) of the RARP; it ends with the
#     MAC-only route via leaf2's VTEP and no MAC+IP route for the VM, and its
#     VRF has no host route for the VM (route lookup not via vlan4001);
#   - the decoys are never programmed nor advertised either.
# Both: the VM stayed silent until the RARP (leaf2 did not learn its MAC
# before the sender started).
#
# Client reachability without the daemon is reported, not asserted to fail:
# the VM's subnet is stretched over the L2 VNI, so leaf1 reaches the VM
# without any MAC+IP route, first through its leftover (cached) local
# neighbor entry and, once that is gone, by resolving the address again with
# ARP/ND flooded over vni10 (leaf2's VXLAN port is neigh_suppress, and the
# kernel does not suppress requests arriving on such a port). Waiting for
# the entry to age out would change nothing but the path of the next
# resolution; the test deletes leaf1's leftovers (as ageing would) and
# reports that the client still gets through, bridged (vlan10) rather than
# routed (vlan4001). What the bug removes is the symmetric IRB path (the
# host route through the L3 VNI, which a leaf without VLAN 10 depends on);
# that is what both modes assert.
#
# A single VXLAN device (external vnifilter) is not tested: FRR 8.4 (the
# version Debian 12 ships) cannot drive it. Its zebra reads one VNI per
# VXLAN device (zebra/if_netlink.c netlink_extract_vxlan_info requires
# IFLA_VXLAN_ID and never looks at IFLA_VXLAN_COLLECT_METADATA) and drops
# the per-VNI tunnel messages (zebra/kernel_netlink.c: RTM_NEWTUNNEL and
# RTM_DELTUNNEL "return 0"), at tag frr-8.4.4. Single VXLAN device support
# came with FRRouting/frr PR #12364 (merge 91b6db4868507dc8c2e7587360ef16ee7887666a,
# 2023-02-14; e.g. 8d30ff3b5ef8 "zebra: data structure changes for single
# vxlan device", 0adeb5fdf46f "zebra: vxlan interface refactoring changes"),
# first released in frr-9.0 (not in frr-8.5). Checked live in user-mode Linux
# too: with "ip link add vxlan0 type vxlan external vnifilter ...", "bridge
# vni add dev vxlan0 vni 10" and VLAN 10 tunnel-mapped to VNI 10, FRR 8.4.4's
# "show evpn vni" lists one L2 VNI 0 on vxlan0 ("Create L2-VNI hash for intf
# vxlan0(3) L2-VNI 0"), and bgpd advertises VNI 0 with route target 65000:0;
# VNI 10 is never seen.
#
# The deadline and user-mode Linux: the guest has one CPU, a kernel built
# with PREEMPT_NONE and HZ=100 ("linux.uml --showconfig"), so a woken
# process waits for the running one to enter the kernel or for the next
# 10 ms tick, at each step (RARP captured, probes sent, answers captured,
# bindings programmed), while zebra and bgpd of both leaves work on the same
# RARP; and the whole guest is one host process, stalled when the host is
# loaded beyond its cores. Typically the daemon programs every address
# 2 to 30 ms after the RARP reached leaf2's bridge, and leaf2's FRR
# advertises the MAC-only route 65 to 100 ms after it, so the MAC+IP routes
# travel in the same BGP update (delays of -2 to +4 ms measured); in a starved
# guest the daemon's steps can take 50 ms or more. The daemons therefore run
# at nice E2EV_DAEMON_NICE (-10) in the guest: a leaf has cores to spare for
# them, this guest has one CPU shared with four FRR daemons busy with the
# same RARP. What remains is FRR's batching: bgpd runs its route processing
# queue 50 ms after the first route queued (frr-8.4.4 bgpd/bgp_route.c,
# bgp_process_queue_init: "bgp->process_queue->spec.hold = 50"), on the
# advertising and on the receiving leaf. A binding that reaches leaf2's
# bgpd after the batch holding the MAC-only route has run travels one batch
# later, and lands on leaf1 about 50 ms after the MAC (measured: 47 to 51 ms,
# the address programmed 32 ms after the RARP's arrival while the MAC took
# 80 ms to reach leaf1). On a leaf with cores to spare the daemon programs
# within a few ms and wins that race nearly always; in this guest it loses
# it in about one attempt out of four or five (2 of 10 in the runs of
# 2026-11-26). So a "with" scenario in which only
# the deadline was missed, every other check passing, runs again after a
# reset, up to E2EV_TIMING_ATTEMPTS (4) times: every attempt is printed,
# and a daemon that misses the deadline by design fails all of them.
#
# Knobs (environment): RARP_REPLAY (binary; default: go build),
# E2EV_DEADLINE_MS (10), E2EV_TIMING_ATTEMPTS (4), E2EV_DAEMON_NICE (-10),
# E2EV_SETTLE_MS (3000),
# E2EV_HANDLED_TIMEOUT_MS (12000), E2EV_RARP_ARGS ("--count 1"),
# E2EV_VERBOSE=1 (lab progress on stderr), LAB_KEEP=1, and two that must
# make the test FAIL, to show its assertions can: E2EV_SKIP_DAEMON=1 (the
# "with" scenarios start no daemon) and E2EV_PROGRAM_DECOY=1 (leaf2 binds the
# first decoy to the VM's MAC itself, reachable, right after the RARP, as a
# daemon that trusted an unanswered probe would). Arguments pick a subset:
# without|with, rarp-first|port-first. Prints per scenario "ok/FAIL" lines,
# a "PASS|FAIL <scenario>" line, a timing table and "e2e-vlan: PASS|FAIL";
# exits non-zero on any failure. Needs root, iproute2, frr, jq, ping,
# python3, and a kernel as described above.
set -u

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=lab-vlan.sh
. "$here/lab-vlan.sh"

: "${E2EV_DEADLINE_MS:=10}"
: "${E2EV_SETTLE_MS:=3000}"
: "${E2EV_HANDLED_TIMEOUT_MS:=12000}"
: "${E2EV_MIN_OBSERVE_MS:=1500}"
: "${E2EV_TAIL_MS:=300}"
: "${E2EV_RARP_ARGS:=--count 1}"
: "${E2EV_SKIP_DAEMON:=0}"
: "${E2EV_PROGRAM_DECOY:=0}"
: "${E2EV_TIMING_ATTEMPTS:=4}"
: "${E2EV_DAEMON_NICE:=-10}"
[[ ${E2EV_VERBOSE:-0} == 1 ]] || LAB_QUIET=1

modes=() orders=()
while (($#)); do
  case $1 in
    without | with) modes+=("$1"); shift ;;
    rarp-first | port-first) orders+=("$1"); shift ;;
    -h | --help) awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "$0"; exit 0 ;;
    *) echo "unknown argument: $1" >&2; exit 2 ;;
  esac
done
((${#modes[@]})) || modes=(without with)
((${#orders[@]})) || orders=(rarp-first port-first)

t_script=$(lab_now_ms)
lab_script_init
command -v python3 >/dev/null || { echo "e2e-vlan: python3 missing" >&2; exit 1; }
# In user-mode Linux the host's root is read-only; FRR writes its per-process
# directories under /var/tmp/frr.
if ! { : >/var/tmp/.rr-e2ev.$$; } 2>/dev/null; then
  if grep -qw 'rootfstype=hostfs' /proc/cmdline 2>/dev/null; then
    mount -t tmpfs -o mode=1777 tmpfs /var/tmp || { echo "e2e-vlan: cannot mount /var/tmp" >&2; exit 1; }
  fi
else
  rm -f /var/tmp/.rr-e2ev.$$
fi
for m in 8021q vrf macvlan vxlan sch_ingress cls_flower act_gact; do
  [[ -d /sys/module/$m ]] || modprobe "$m" 2>/dev/null
done

# e2ev_sleep_until MS: sleep until the wall clock reaches MS (one sleep).
e2ev_sleep_until() {
  local now
  _lab_ms now
  (($1 > now)) && sleep "$(printf '%d.%03d' $((($1 - now) / 1000)) $((($1 - now) % 1000)))"
  return 0
}
ms() { if (($1 < 0)); then echo never; else echo "$1"; fi; }

sc_fail=0 sc_checks=()
check() { # OK(0|1) TEXT
  if (($1 == 0)); then sc_checks+=("  ok    $2"); else sc_checks+=("  FAIL  $2"); sc_fail=1; fi
}
note() { sc_checks+=("  info  $1"); }
# check_timing OK TEXT: a check of the deadline alone (see E2EV_TIMING_ATTEMPTS).
check_timing() {
  if (($1 == 0)); then sc_checks+=("  ok    $2"); else sc_checks+=("  FAIL  $2"); sc_timing_fail=1; fi
}

# e2ev_events LEAF REF_MS: the leaf's fdb and neighbor monitors read back,
# as shell assignments (for eval), times in ms after REF_MS (wall clock):
#   EV_MAC_VX       first event putting the VM's MAC on vni10 (-1: none),
#                   from "bridge monitor fdb"
#   EV_MAC_VX_LINE  its line
#   EV_MAC_VX_NM    the same from "ip monitor neigh", which prints the
#                   bridge's fdb events too: the same reader as EV_X's
#   EV_MAC_PORT     first event putting it on swp1 (the RARP's arrival)
#   EV_MAC_PORT_ANY the same, from the start of the monitor (may be < 0)
#   EV_X[addr]      first event binding addr to the VM's MAC as extern_learn
#   EV_LOCAL[addr]  events binding addr to the VM's MAC otherwise (not
#                   Deleted, not FAILED/INCOMPLETE), ";"-joined
e2ev_events() {
  local n=${1#leaf} ref=$2
  python3 - "$LAB_DIR/leaf$n/fdb.mon" "$LAB_DIR/leaf$n/neigh.mon" "$ref" "${LAB_VM_MAC,,}" \
    "$LV_VX_VM" "${LV_VM_IPS[@]}" "${LV_DECOYS[@]}" <<'EOF'
import re, shlex, sys, time, datetime
fdbf, neighf, ref, mac, vx = sys.argv[1:6]
addrs = sys.argv[6:]
ref = int(ref)
def ms(dt):
    return int(round((time.mktime(dt.timetuple()) + dt.microsecond / 1e6) * 1000))
out = {"EV_MAC_VX": -1, "EV_MAC_VX_LINE": "", "EV_MAC_VX_NM": -1, "EV_MAC_PORT": -1, "EV_MAC_PORT_ANY": "none"}
ts = None
try:
    lines = open(fdbf, errors="replace").read().splitlines()
except OSError:
    lines = []
for l in lines:
    m = re.match(r"Timestamp: (.*) (\d+) usec$", l)
    if m:
        ts = ms(datetime.datetime.strptime(m.group(1), "%a %b %d %H:%M:%S %Y").replace(microsecond=int(m.group(2))))
        continue
    if ts is None or l.startswith("Deleted") or not l.lower().startswith(mac + " "):
        continue
    if l.startswith(mac + " dev swp1 "):
        if out["EV_MAC_PORT_ANY"] == "none":
            out["EV_MAC_PORT_ANY"] = ts - ref
        if ts >= ref and out["EV_MAC_PORT"] < 0:
            out["EV_MAC_PORT"] = ts - ref
    if l.startswith(mac + " dev " + vx + " ") and ts >= ref and out["EV_MAC_VX"] < 0:
        out["EV_MAC_VX"] = ts - ref
        out["EV_MAC_VX_LINE"] = l.strip()
x = {a: -1 for a in addrs}
local = {a: [] for a in addrs}
try:
    lines = open(neighf, errors="replace").read().splitlines()
except OSError:
    lines = []
for l in lines:
    m = re.match(r"\[([0-9T:.-]+)\] (.*)$", l)
    if not m:
        continue
    t = ms(datetime.datetime.strptime(m.group(1), "%Y-%m-%dT%H:%M:%S.%f"))
    body = m.group(2)
    f = body.split()
    if t < ref or not f or f[0] == "Deleted":
        continue
    if re.match(r"(\S+ )?dev " + re.escape(vx) + " lladdr " + re.escape(mac) + " ", body.lower() + " "):
        if out["EV_MAC_VX_NM"] < 0:
            out["EV_MAC_VX_NM"] = t - ref
        continue
    if f[0] not in x:
        continue
    if ("lladdr " + mac + " ") not in (body.lower() + " "):
        continue
    if "extern_learn" in f:
        if x[f[0]] < 0:
            x[f[0]] = t - ref
    elif not ({"FAILED", "INCOMPLETE"} & set(f)):
        local[f[0]].append("%+d ms: %s" % (t - ref, body.strip()))
for k, v in out.items():
    print("%s=%s" % (k, shlex.quote(str(v))))
for a in addrs:
    print("EV_X[%s]=%d" % (shlex.quote(a), x[a]))
    print("EV_LOCAL[%s]=%s" % (shlex.quote(a), shlex.quote("; ".join(local[a]))))
EOF
}

# e2ev_daemon_timeline LEAF REF_MS: from the daemon's debug log, per VM
# address, when its first probe left and when it was verified and
# programmed, in ms after REF_MS: "addr probe@X programmed@Y; ...".
e2ev_daemon_timeline() {
  python3 - "$LAB_DIR/leaf${1#leaf}/rarp-replay.log" "$2" "${LAB_VM_MAC,,}" "${LV_VM_IPS[@]}" <<'PY'
import calendar, datetime, json, sys
path, ref, mac = sys.argv[1], int(sys.argv[2]), sys.argv[3]
addrs = sys.argv[4:]
sent, prog, decided = {}, {}, None
def ms(t):
    d = datetime.datetime.strptime(t[:26].rstrip("Z"), "%Y-%m-%dT%H:%M:%S.%f")
    return calendar.timegm(d.timetuple()) * 1000 + d.microsecond / 1000.0
try:
    lines = open(path, errors="replace").read().splitlines()
except OSError:
    lines = []
for l in lines:
    try:
        j = json.loads(l)
    except ValueError:
        continue
    if str(j.get("mac", "")).lower() != mac:
        continue
    if j.get("msg") == "probing" and decided is None:
        decided = ms(j["time"]) - ref
    ip = j.get("ip")
    if ip not in addrs:
        continue
    if j.get("msg") == "probe sent" and ip not in sent:
        sent[ip] = ms(j["time"]) - ref
    elif j.get("msg") == "verified: programming" and ip not in prog:
        prog[ip] = ms(j["time"]) - ref
def f(v):
    return "never" if v is None else "%.1f" % v
print("RARP decoded@%s; " % f(decided) + "; ".join("%s probe@%s programmed@%s" % (a, f(sent.get(a)), f(prog.get(a))) for a in addrs))
PY
}

# e2ev_handled: leaf2's last "migration handled" line for the VM's MAC.
e2ev_handled() {
  lab_daemon_log 2 | grep '"msg":"migration handled"' | grep -i "\"mac\":\"$LAB_VM_MAC\"" | tail -n1
}

e2ev_rx() { # LEAF DEV: received packets
  ip -n "$(lab_ns "$1")" -s -j link show "$2" 2>/dev/null | jq -r '.[0].stats64.rx.packets // 0'
}

# run_scenario MODE ORDER: prints its checks; appends timing rows to
# rows[]; returns non-zero if a check failed.
run_scenario() {
  local mode=$1 order=$2 t_ref t_rarp now deadline a c d r1 fin
  local -A EV_X=() EV_LOCAL=() L1_X=()
  local EV_MAC_VX EV_MAC_VX_LINE EV_MAC_VX_NM EV_MAC_PORT EV_MAC_PORT_ANY t_mac
  sc_fail=0 sc_timing_fail=0 sc_checks=()
  if [[ $mode == with ]]; then
    if [[ $E2EV_SKIP_DAEMON == 1 ]]; then
      note "E2EV_SKIP_DAEMON=1: no daemon started (this scenario must fail)"
    elif LAB_DAEMON_NICE=$E2EV_DAEMON_NICE lab_start_daemons --log-format json --log-level debug && lab_daemons_wait_listening 20; then
      check 0 "rarp-replay listen -i any running on both leaves before the migration (nice $E2EV_DAEMON_NICE)"
    else
      check 1 "rarp-replay listen -i any running on both leaves"
    fi
  fi
  lv_monitors_start

  LAB_RARP_ARGS=$E2EV_RARP_ARGS
  lv_migrate "$order" || check 1 "migration ($order)"
  t_ref=${LV_T_START_MS:-0} t_rarp=${LAB_T_RARP_MS:-0}
  if [[ $E2EV_PROGRAM_DECOY == 1 ]]; then
    note "E2EV_PROGRAM_DECOY=1: leaf2 binds ${LV_DECOYS[0]} to the VM's MAC itself (the decoy checks must fail)"
    ip -n "$LAB_NS_L2" neigh replace "${LV_DECOYS[0]}" lladdr "$LAB_VM_MAC" dev "$LV_SVI_VM" nud reachable
  fi

  # Nothing runs here while the fabric converges: on user-mode Linux's
  # single CPU every fork would compete with the daemon being timed.
  if [[ $mode == with ]]; then
    e2ev_sleep_until $((t_rarp + E2EV_MIN_OBSERVE_MS))
    deadline=$((t_rarp + E2EV_HANDLED_TIMEOUT_MS))
    while [[ -z $(e2ev_handled) ]]; do
      (($(lab_now_ms) > deadline)) && break
      sleep 0.2
    done
    e2ev_sleep_until $(($(lab_now_ms) + E2EV_TAIL_MS))
  else
    e2ev_sleep_until $((t_rarp + E2EV_SETTLE_MS))
  fi
  lv_migrate_wait || check 1 "send-rarp / old port removal finished cleanly"
  local t_end=$(($(lab_now_ms) - t_rarp))
  lab_monitor_stop
  lab_neighmon_stop

  # The RARP's arrival on leaf2 (and the VM's silence before it).
  eval "$(e2ev_events 2 "$t_rarp")"
  local arrive=$EV_MAC_PORT early=$EV_MAC_PORT_ANY
  local -A L2_LOCAL=()
  for a in "${LV_DECOYS[@]}"; do L2_LOCAL[$a]=${EV_LOCAL[$a]}; done
  c=0; [[ $early != none ]] && ((early < 0)) && c=1
  check $c "VM silent until the RARP: leaf2 first learned its MAC on swp1 at $early ms (RARP sent at 0)"
  # Leaf1, the old leaf.
  EV_X=() EV_LOCAL=()
  eval "$(e2ev_events 1 "$t_rarp")"
  for a in "${LV_VM_IPS[@]}" "${LV_DECOYS[@]}"; do L1_X[$a]=${EV_X[$a]}; done
  r1=$(lab_macip_routes 1)
  # The MAC's time as the neighbor events' reader saw it (no skew between
  # two readers); the fdb monitor's reading is printed next to it.
  t_mac=$EV_MAC_VX_NM
  ((t_mac >= 0)) || t_mac=$EV_MAC_VX
  echo "  RARP reached leaf2's bridge at $(ms "$arrive") ms; leaf1 got the MAC on $LV_VX_VM at $(ms "$t_mac") ms (ip monitor neigh; bridge monitor fdb: $(ms "$EV_MAC_VX") ms) after the sender started: ${EV_MAC_VX_LINE:-none}"
  c=1; ((t_mac >= 0)) && c=0
  check $c "leaf1 installed the VM's MAC on $LV_VX_VM (MAC-only route from leaf2)"
  c=1; awk -v nh="$LAB_VTEP2" '$2 == "-" && $3 == nh {f=1} END {exit !f}' <<<"$r1" && c=0
  check $c "leaf1's BGP table ends with the MAC-only route via $LAB_VTEP2"

  local line="" dly worst=-999999 missing=0 viavtep=0 routed=0 devs=""
  for a in "${LV_VM_IPS[@]}"; do
    if ((${L1_X[$a]} >= 0 && t_mac >= 0)); then
      dly=$((${L1_X[$a]} - t_mac)); ((dly > worst)) && worst=$dly
      line+=" $a $dly ms;"
      rows+=("$mode $order$tag $a $(ms "$arrive") $(ms "$t_mac") $(ms "${L1_X[$a]}") $dly")
    else
      missing=$((missing + 1))
      line+=" $a never;"
      rows+=("$mode $order$tag $a $(ms "$arrive") $(ms "$t_mac") never -")
    fi
    awk -v ip="$a" -v nh="$LAB_VTEP2" '$2 == ip && $3 == nh {f=1} END {exit !f}' <<<"$r1" &&
      viavtep=$((viavtep + 1))
    d=$(lv_route_dev 1 "$a")
    devs+=" $a:$d"
    [[ $d == "$LV_SVI_L3" ]] && routed=$((routed + 1))
  done
  line=${line%;}
  local nvm=${#LV_VM_IPS[@]}

  if [[ $mode == with ]]; then
    c=1; ((missing == 0)) && c=0
    check $c "every VM address got its MAC+IP binding on leaf1 ($((nvm - missing))/$nvm)"
    c=1; ((missing == 0 && worst <= E2EV_DEADLINE_MS)) && c=0
    check_timing $c "MAC+IP bindings on leaf1 within $E2EV_DEADLINE_MS ms of the MAC (kernel events, delay after the MAC per address):$line"
    c=1; ((viavtep == nvm)) && c=0
    check $c "leaf1's BGP table ends with MAC+IP routes via $LAB_VTEP2 for all $nvm VM addresses ($viavtep)"
    c=1; ((routed == nvm)) && c=0
    check $c "leaf1's VRF $LV_VRF routes every VM address through $LV_SVI_L3 (symmetric IRB host routes):$devs"
    # The routed client, over the L3 VNI.
    local rx0 rx1 bad=""
    rx0=$(e2ev_rx 2 "$LV_VX_L3")
    for a in "${LV_VM_IPS[@]}"; do lab_ping_vm "$a" 3 2 || bad+=" $a"; done
    rx1=$(e2ev_rx 2 "$LV_VX_L3")
    c=1; [[ -z $bad ]] && ((rx1 - rx0 >= nvm)) && c=0
    check $c "routed client ($LV_CL_IP4, VLAN $LV_CL_VLAN) reaches the VM on every address${bad:+ (unreachable:$bad)}, routed over the L3 VNI: leaf2's $LV_VX_L3 received $((rx1 - rx0)) packets meanwhile (>= $nvm)"
    # The daemon's own account.
    local h2 ver fai pro
    h2=$(e2ev_handled)
    if [[ -z $h2 ]]; then
      check 1 "leaf2's daemon logged \"migration handled\" for $LAB_VM_MAC"
    else
      ver=$(jq -r '(.verified // []) | join(" ")' <<<"$h2")
      fai=$(jq -r '(.failed // []) | join(" ")' <<<"$h2")
      pro=$(jq -r '(.programmed // []) | join(" ")' <<<"$h2")
      c=0
      for a in "${LV_VM_IPS[@]}"; do [[ " $pro " == *" $a "* && " $ver " == *" $a "* ]] || c=1; done
      for a in "${LV_DECOYS[@]}"; do [[ " $fai " == *" $a "* && " $pro " != *" $a "* ]] || c=1; done
      check $c "leaf2's daemon verified and programmed the VM's addresses, failed the decoys (port $(jq -r '.port // "?"' <<<"$h2"), svi $(jq -r '.svi // "?"' <<<"$h2"); verified: $ver; failed: ${fai:-none}; programmed: $pro; rarp_to_programmed_ms=$(jq -r '.rarp_to_programmed_ms // "-"' <<<"$h2"))"
    fi
    ((arrive >= 0)) && note "leaf2's daemon, ms after the RARP reached leaf2's bridge: $(e2ev_daemon_timeline 2 $((t_rarp + arrive)))"
    c=1; lab_daemons_alive && c=0
    check $c "both daemons still running"
  else
    local anyx="" anyr=""
    for a in "${LV_VM_IPS[@]}"; do ((${L1_X[$a]} >= 0)) && anyx+=" $a@${L1_X[$a]}ms"; done
    c=1; [[ -z $anyx ]] && ((t_mac >= 0)) && c=0
    check $c "bug reproduced (kernel): leaf1 bound none of the VM's addresses as extern_learn within $t_end ms of the RARP${anyx:+ (bound:$anyx)}"
    anyr=$(awk -v ips=" ${LV_VM_IPS[*]} " '$2 != "-" && index(ips, " " $2 " ") {print $2 "/" $3}' <<<"$r1" | paste -sd' ')
    c=1; [[ -z $anyr ]] && c=0
    check $c "bug reproduced (FRR): leaf1's BGP table has no MAC+IP route for the VM's addresses${anyr:+ ($anyr)}"
    c=1; ((routed == 0)) && c=0
    check $c "bug reproduced (routing): leaf1's VRF has no host route through $LV_SVI_L3 for the VM:$devs"
    # Reported only (see the header): leaf1's leftovers deleted, as
    # ageing would, the client still gets through the stretched subnet.
    local left="" reach="" n1 l
    while read -r a l; do
      [[ -n $a && $l != *extern_learn* ]] || continue
      ip -n "$LAB_NS_L1" neigh del "$a" dev "${l%% *}" 2>/dev/null && left+=" $a(${l%% *})"
    done < <(ip -n "$LAB_NS_L1" neigh show | grep -i "lladdr $LAB_VM_MAC " | sed 's/ dev / /')
    for a in "${LV_VM_IPS[@]}"; do
      if lab_ping_vm "$a" 1 1; then reach+=" $a:ok"; else reach+=" $a:no"; fi
    done
    n1=$(lv_route_dev 1 "${LV_VM_IPS[0]}")
    note "without the daemon, leaf1's leftovers deleted (${left# }); client -> VM:$reach (bridged: leaf1 routes ${LV_VM_IPS[0]} via $n1 and resolves it over the L2 VNI)"
  fi

  # The decoys, in both modes.
  local dx="" dl="" df="" dr=""
  for a in "${LV_DECOYS[@]}"; do
    ((${L1_X[$a]} >= 0)) && dx+=" $a@${L1_X[$a]}ms"
    [[ -n ${L2_LOCAL[$a]} ]] && dl+=" $a: ${L2_LOCAL[$a]};"
    fin=$(lv_neigh 2 "$a")
    [[ -n $fin && $fin != *extern_learn* ]] && df+=" $fin;"
    awk -v ip="$a" -v nh="$LAB_VTEP2" '$2 == ip && $3 == nh {f=1} END {exit !f}' <<<"$r1" && dr+=" $a"
  done
  c=1; [[ -z $dl$df ]] && c=0
  check $c "decoys ${LV_DECOYS[*]} never programmed on leaf2 (ip monitor neigh, final ip neigh)${dl:+; events:$dl}${df:+; final:$df}"
  c=1; [[ -z $dx$dr ]] && c=0
  check $c "decoys never advertised by leaf2 (no extern_learn binding on leaf1, no route via $LAB_VTEP2)${dx:+; bound:$dx}${dr:+; routes:$dr}"

  printf '%s\n' "${sc_checks[@]}"
  # The state only when a functional check failed (a missed deadline alone
  # has its timeline in the info line above).
  if ((sc_fail)); then
    echo "  --- state at failure"
    lv_dump | sed 's/^/  /'
    for r in 1 2; do
      echo "  --- leaf$r fdb monitor (VM MAC)"
      grep -i -B1 "$LAB_VM_MAC" "$LAB_DIR/leaf$r/fdb.mon" 2>/dev/null | tail -n 30 | sed 's/^/  /'
      echo "  --- leaf$r neighbor monitor (VM MAC)"
      grep -i "$LAB_VM_MAC" "$LAB_DIR/leaf$r/neigh.mon" 2>/dev/null | tail -n 30 | sed 's/^/  /'
      [[ -r $LAB_DIR/leaf$r/rarp-replay.log ]] || continue
      echo "  --- leaf$r rarp-replay log"
      grep -v '"msg":"drop"' "$LAB_DIR/leaf$r/rarp-replay.log" | grep -v '"attempt":[2-9]' | head -n 40 | sed 's/^/  /'
    done
    echo "  --- send-rarp"; sed 's/^/  /' "$LAB_DIR/send-rarp.out" 2>/dev/null
  fi
  [[ $mode == with ]] && lab_stop_daemons
  ((sc_fail)) && return 1
  ((sc_timing_fail)) && return 2
  return 0
}

rows=() results=() fail=0 k=0 first=1
total=$((${#modes[@]} * ${#orders[@]}))
echo "=== lab up (Cumulus-style VLAN-aware bridge, symmetric IRB, FRR $("$LAB_FRR_BIN/zebra" --version 2>/dev/null | awk 'NR == 1 {print $3}'), kernel $(uname -r))"
t_up=$(lab_now_ms)
if ! lv_up; then
  echo "FAIL lab up"
  echo "e2e-vlan: FAIL"
  exit 1
fi
echo "  lab up in $(($(lab_now_ms) - t_up)) ms"
for mode in "${modes[@]}"; do
  for order in "${orders[@]}"; do
    ((k++))
    for ((attempt = 1; attempt <= E2EV_TIMING_ATTEMPTS; attempt++)); do
      tag=""; ((attempt > 1)) && tag="#$attempt"
      echo "=== [$k/$total] $mode rarp-replay, $order${tag:+, attempt $attempt}"
      if ((!first)); then
        t0=$(lab_now_ms)
        if ! lv_reset; then
          echo "FAIL $mode $order (reset of the lab failed)"
          r=FAIL
          break
        fi
        echo "  lab reset in $(($(lab_now_ms) - t0)) ms"
      fi
      first=0
      t0=$(lab_now_ms)
      run_scenario "$mode" "$order"
      rc=$?
      case $rc in 0) r=PASS ;; *) r=FAIL ;; esac
      echo "$r $mode $order$tag ($(($(lab_now_ms) - t0)) ms)"
      # Only a missed deadline, every other check passed: again.
      ((rc == 2 && attempt < E2EV_TIMING_ATTEMPTS)) && { echo "  (only the deadline was missed: next attempt)"; continue; }
      break
    done
    [[ $r == PASS ]] || fail=1
    results+=("$r $mode $order${tag:+ (attempt ${tag#\#})}")
  done
done

echo "=== timings on leaf1 (the old leaf), ms after send-rarp started; delay = MAC+IP binding - MAC on $LV_VX_VM"
{
  echo "mode order address RARP@leaf2 MAC@leaf1 MAC+IP@leaf1 delay"
  printf '%s\n' "${rows[@]}"
} | awk '{ printf "  %-8s %-11s %-16s %10s %9s %12s %6s\n", $1, $2, $3, $4, $5, $6, $7 }'
printf '  %s\n' "${results[@]}"
echo "e2e-vlan: $( ((fail)) && echo FAIL || echo PASS) ($(( ($(lab_now_ms) - t_script) / 1000 )) s)"
# README's compatibility table: the Cumulus layout, with FRR.
. "$here/compat.sh"
compat_record cumulus "$( ((fail)) && echo fail || echo pass)" "scripts/lab/e2e-vlan.sh"
exit $fail
