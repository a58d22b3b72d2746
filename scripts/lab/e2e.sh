#!/usr/bin/env bash
# End-to-end test of rarp-replay in the two-leaf FRR EVPN lab (lab.sh).
#
#   sudo scripts/lab/e2e.sh [-n RUNS] [without|with]... [rarp-first|port-first]... [frr-restart|no-frr-restart]
#
# Default: both modes x both orders, each on a fresh lab, once, then "with
# rarp-first" again with leaf2's FRR restarted before and after the
# migration (3b), and with leaf2's FRR down during it (3c) (frr-restart
# alone runs only these two, no-frr-restart leaves them out). Per scenario:
#   1. lab up; leaf1 also holds 192.0.2.99 bound to the VM's MAC (local,
#      reachable), which the VM does not own: leaf1 advertises MAC+IP for it
#      and leaf2 installs it as a remote noarp extern_learn binding.
#   2. "with": "rarp-replay listen -i any --log-format json --log-level debug
#      --metrics-addr 127.0.0.1:9465" on both leaves, told nothing about the
#      VM. Then (E2E_EVENTS=1), on both leaves, bridge port attributes are
#      set while "bridge -d monitor link" records the kernel's AF_BRIDGE
#      RTM_NEWLINK messages: on each VXLAN device learning off (as lab.sh
#      made it; FRR needs nolearning), on, off again, neigh_suppress on (as
#      made), STP state learning, then forwarding; on each other bridge
#      port (leaf1's vm0 and cl0) STP state learning, then forwarding, and
#      learning on (as made). The kernel notifies every "bridge link set",
#      even one that changes nothing. Then E2E_EVENTS_SETTLE_MS (500) for
#      the daemons to apply them. tcpdump records inbound RARPs on leaf1's
#      vx10.
#   3. leaf1's "show bgp l2vpn evpn route type macip" is polled back to back
#      from before the RARP to the end; "ip monitor neigh" runs on both
#      leaves.
#   4. The VM migrates to leaf2 (ORDER) announced by ONE RARP
#      (send-rarp --count 1).
#   3b. frr-restart (a fifth scenario, "with" and rarp-first): with the
#      daemons listening, leaf2's zebra and bgpd are restarted as "systemctl
#      restart frr" does (SIGTERM: zebra removes the remote EVPN bindings it
#      installed; then started again), and the migration waits until the
#      session is up and the VM's addresses are remote bindings on leaf2
#      again: the daemon has followed the whole netlink stream of a routing
#      suite going away and coming back (every neighbor and FDB entry zebra
#      deletes and installs, the bridge port flags it sets) and must restore
#      the VM as in the plain "with" scenario, every check below included.
#      After them, leaf2's FRR restarts once more: the bindings the daemon
#      programmed are local kernel entries, which zebra reads back when it
#      starts; leaf1 must get MAC+IP routes via leaf2 for every VM address
#      again within 20 s of the session, the client reach the VM, leaf2
#      still bind the VM's addresses (not 192.0.2.99) locally, and both
#      daemons still run. (With leaf2's local entries deleted before that
#      restart, as a daemon whose bindings did not last would leave it,
#      these checks fail.)
#   3c. frr-down (a sixth scenario, "with" and rarp-first, its own checks):
#      leaf2's FRR is stopped (zebra removes the VM's remote bindings, which
#      is checked) while both daemons listen, the VM migrates, and FRR starts
#      again only once leaf2's daemon handled the migration. The daemon can
#      only have probed the bindings it remembers (--retention): it must
#      program the VM's three addresses and fail 192.0.2.99; once FRR is
#      back, leaf1 must have MAC+IP routes via leaf2 for all three within
#      E2E_FRR_BACK_MS (10000) of the session, never for 192.0.2.99, and the
#      client reach the VM; both daemons still run. (With --retention 0 the
#      daemon finds nothing to probe and these checks fail.)
#   5. Leaf1's neighbor entries for the VM's MAC on br10 are deleted (as ageing
#      would remove leftover local ones; zebra restores its remote ones) and
#      the client pings the VM's three addresses.
# Checks:
#   without: the bug reproduces (leaf1 ends, stable for >= 1 s, with the MAC-only
#            route via leaf2's VTEP and no MAC+IP route); otherwise FAIL, as the
#            test would prove nothing.
#   with:    leaf1 has MAC+IP routes via leaf2's VTEP for every VM address
#            within 1000 ms of the RARP sender's start (end of the first poll
#            showing them) and still at the end; the client reaches the VM over
#            IPv4 and IPv6; leaf2's daemon verified and programmed the VM's
#            addresses, failed 192.0.2.99 and did not program it; leaf1's daemon
#            programmed nothing; both daemons still run. Bridge port events
#            (step 2): the monitor printed at least one AF_BRIDGE message
#            for every VXLAN device on each leaf, and every bridge port
#            ends as lab.sh made it. Tunnels are never ports: neither
#            daemon logged "port added" for a VXLAN device, nor a debug
#            "probing" or "migration handled" line on one (leaf2 must log
#            "probing" on vm0, so the debug line exists); the RARP reached
#            leaf1 over vx10 (tcpdump) and leaf1's daemon probed nothing;
#            /metrics of both has no series for a VXLAN port, leaf1's shows
#            no RARP decoded, no probe sent, nothing programmed, leaf2's a
#            RARP on vm0.
#   both:    192.0.2.99 never appears via leaf2's VTEP in any leaf1 poll, and
#            leaf2 never binds it to the VM's MAC other than as extern_learn
#            NOARP (ip monitor neigh + final ip neigh). Leaf1 (the old leaf)
#            never binds the VM's addresses to its MAC other than as
#            extern_learn (REACHABLE, PERMANENT or NOARP without it; the
#            kernel ageing a leftover entry aside) once the old port is gone
#            (ip monitor neigh), nor at the end (ip neigh).
# What the bridge port events catch: rarp-replay up to c488dbb applied an
# AF_BRIDGE link message as the whole link. Such a message has no
# IFLA_LINKINFO, so the VXLAN device lost its kind and became an access
# port ("port added" vx10/vx20 on both leaves); leaf1 then took the tunnel
# copy of the RARP for an announcement, probed the VM's addresses through
# vx10 into the fabric and logged a "migration handled" on vx10. Checked:
# with a c488dbb binary the four "tunnels are never ports" checks fail
# (leaf1: 16 probes sent through vx10). Leaf1 programmed nothing even then,
# only because the answers go to the anycast gateway MAC, which is leaf2's
# too; the neighbor checks guard that outcome rather than the mechanism.
# Without these events the c488dbb daemon still served the VXLAN devices
# later in some runs (after the RARP), so only the events make the probe
# checks fail reliably.
# Exit 0 only if every scenario passed. Needs root, iproute2, frr, jq,
# iputils-ping, tcpdump, curl. RARP_REPLAY=/path/to/rarp-replay (default: go
# build). Environment: E2E_DEADLINE_MS (1000), E2E_FRR_BACK_MS (10000),
# E2E_DAEMON_ARGS (extra daemon arguments), E2E_BUG_SETTLE_MS (3000),
# E2E_EVENTS (1; 0 skips the bridge port events), E2E_METRICS_ADDR,
# E2E_VERBOSE=1 (lab progress on stderr), LAB_KEEP=1 (keep run dirs).
set -u

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=lab.sh
. "$here/lab.sh"

: "${E2E_DEADLINE_MS:=1000}"     # RARP -> all MAC+IP routes on leaf1
: "${E2E_BUG_SETTLE_MS:=3000}"   # without daemon: poll this long after the RARP
: "${E2E_BUG_STABLE_MS:=1000}"   # ... and the bug must hold at least this long
: "${E2E_HANDLED_TIMEOUT_MS:=12000}" # with daemon: wait for leaf2's "migration handled"
: "${E2E_MIN_OBSERVE_MS:=1500}"  # with daemon: poll at least this long after the RARP
: "${E2E_TAIL_MS:=500}"          # keep polling this long after "migration handled"
: "${E2E_FOREIGN_IP:=192.0.2.99}"
: "${E2E_RARP_ARGS:=--count 1}"
: "${E2E_EVENTS:=1}"              # with daemon: bridge port events before the RARP
: "${E2E_EVENTS_SETTLE_MS:=500}"  # ... then wait this long before migrating
: "${E2E_METRICS_ADDR:=127.0.0.1:9465}" # daemons' --metrics-addr (in each leaf)
: "${E2E_FRR_BACK_MS:=10000}"     # frr-down: FRR's session back -> all MAC+IP routes on leaf1
: "${E2E_DAEMON_ARGS:=}"          # extra arguments for both daemons (e.g. --retention 0)
[[ ${E2E_VERBOSE:-0} == 1 ]] || LAB_QUIET=1

runs=1 modes=() orders=() restart=default
while (($#)); do
  case $1 in
    -n) runs=$2; shift 2 ;;
    without | with) modes+=("$1"); shift ;;
    rarp-first | port-first) orders+=("$1"); shift ;;
    frr-restart) restart=only; shift ;;
    no-frr-restart) restart=no; shift ;;
    -h | --help) awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "$0"; exit 0 ;;
    *) echo "unknown argument: $1" >&2; exit 2 ;;
  esac
done
((${#modes[@]})) || modes=(without with)
((${#orders[@]})) || orders=(rarp-first port-first)

lab_script_init
for c in curl tcpdump; do
  command -v "$c" >/dev/null 2>&1 || { echo "e2e: $c missing (Debian: apt-get install $c)" >&2; exit 1; }
done

ms() { if (($1 < 0)); then echo never; else echo "$1"; fi; }
diffms() { if (($1 < 0)); then echo never; else echo $(($1 - $2)); fi; } # t base

# Scenario state
sc_fail=0 sc_checks=()
check() { # OK(0|1) TEXT
  if (($1 == 0)); then sc_checks+=("  ok    $2"); else sc_checks+=("  FAIL  $2"); sc_fail=1; fi
}
note() { sc_checks+=("  info  $1"); }

# ---------------------------------------------------------------- bridge port events
# The kernel sends an AF_BRIDGE RTM_NEWLINK for a bridge port on every
# "bridge link set" (even one that changes nothing, checked on 6.18: a
# re-set "learning off" or "state 3" is still notified) and on STP state
# changes. Such a message carries the port's bridge attributes
# (IFLA_PROTINFO) and nothing of its kind; a daemon that took it for the
# whole link lost the VXLAN device's kind and served the tunnel as an
# access port (rarp-replay before 82c37ce).

# e2e_vxlan_devs LEAF / e2e_access_ports LEAF: the leaf's VXLAN devices; its
# other bridge ports.
e2e_vxlan_devs() { ip -n "$(lab_ns "$1")" -j link show type vxlan | jq -r '.[].ifname'; }
e2e_access_ports() {
  ip -n "$(lab_ns "$1")" -j -d link show | jq -r '.[] | select(.linkinfo.info_slave_kind == "bridge")
    | select(.linkinfo.info_kind != "vxlan") | .ifname'
}
# e2e_brports LEAF: what the bridges say about their ports, one JSON line.
e2e_brports() {
  bridge -n "$(lab_ns "$1")" -d -j link show | jq -c 'map({ifname, master, state, learning, flood,
    mcast_flood, bcast_flood, neigh_suppress, isolated, locked}) | sort_by(.ifname)'
}
# e2e_linkmon_count LEAF DEV: AF_BRIDGE link messages for DEV that
# "bridge -d monitor link" printed: only those carry IFLA_PROTINFO, printed
# as "state <stp-state>" on the header line (AF_UNSPEC ones have no state).
e2e_linkmon_count() {
  grep -cE "^[0-9]+: $2(@[^:]*)?: <[^>]*> .* state (disabled|listening|learning|forwarding|blocking) " \
    "$LAB_DIR/leaf$1/link.mon" 2>/dev/null
}

# e2e_bridge_events: with both daemons listening, on both leaves, set
# bridge port attributes of every VXLAN device (learning off, as lab.sh
# made it: FRR needs nolearning; learning on; learning off again;
# neigh_suppress on, as made; STP state learning, then forwarding) and of
# every other bridge port (STP state learning, then forwarding; learning on,
# as made). Every port ends as it was, which is checked. "bridge -d monitor
# link" records the messages the kernel sent (kept running until lab_down).
# Waits until each leaf's monitor printed them, then E2E_EVENTS_SETTLE_MS
# for the daemons to apply them. Sets ev_text (per leaf and device: the
# messages seen), ev_ok (0: every device got at least one), ev_restored (0:
# every port as before) and ev_diff.
e2e_bridge_events() {
  local n ns d c vx=() acc=() want end
  ev_text="" ev_ok=0 ev_restored=0 ev_diff="" ev_vx=()
  for n in 1 2; do
    ip netns exec "$(lab_ns "$n")" bridge -d monitor link >"$LAB_DIR/leaf$n/link.mon" 2>&1 &
    LAB_BG_PIDS+=($!)
  done
  sleep 0.2
  for n in 1 2; do
    ns=$(lab_ns "$n")
    mapfile -t vx < <(e2e_vxlan_devs "$n")
    mapfile -t acc < <(e2e_access_ports "$n")
    ev_vx+=("${vx[@]}")
    e2e_brports "$n" >"$LAB_DIR/leaf$n/brports.before"
    for d in "${vx[@]}"; do
      bridge -n "$ns" link set dev "$d" learning off &&
        bridge -n "$ns" link set dev "$d" learning on &&
        bridge -n "$ns" link set dev "$d" learning off &&
        bridge -n "$ns" link set dev "$d" neigh_suppress on &&
        bridge -n "$ns" link set dev "$d" state 2 &&
        bridge -n "$ns" link set dev "$d" state 3 || ev_ok=1
    done
    for d in "${acc[@]}"; do
      bridge -n "$ns" link set dev "$d" state 2 &&
        bridge -n "$ns" link set dev "$d" state 3 &&
        bridge -n "$ns" link set dev "$d" learning on || ev_ok=1
    done
    printf '%s\n' "${vx[@]}" "${acc[@]}" >"$LAB_DIR/leaf$n/brports.changed"
    e2e_brports "$n" >"$LAB_DIR/leaf$n/brports.after"
    if ! cmp -s "$LAB_DIR/leaf$n/brports.before" "$LAB_DIR/leaf$n/brports.after"; then
      ev_restored=1
      ev_diff+="leaf$n before $(<"$LAB_DIR/leaf$n/brports.before") after $(<"$LAB_DIR/leaf$n/brports.after"); "
    fi
  done
  # One message per "bridge link set": 6 per VXLAN device, 3 per other port.
  end=$(($(lab_now_ms) + 3000))
  for n in 1 2; do
    while read -r d; do
      want=3; [[ " ${ev_vx[*]} " == *" $d "* ]] && want=6
      while (($(e2e_linkmon_count "$n" "$d") < want && $(lab_now_ms) < end)); do sleep 0.05; done
    done <"$LAB_DIR/leaf$n/brports.changed"
  done
  sleep "$(awk -v m="$E2E_EVENTS_SETTLE_MS" 'BEGIN{printf "%.3f", m/1000}')"
  for n in 1 2; do
    ev_text+="leaf$n:"
    while read -r d; do
      c=$(e2e_linkmon_count "$n" "$d")
      ev_text+=" $d $c"
      [[ " ${ev_vx[*]} " == *" $d "* ]] && ((c < 1)) && ev_ok=1
    done <"$LAB_DIR/leaf$n/brports.changed"
    ev_text+="; "
  done
  ev_text=${ev_text%; }
  [[ -n ${ev_vx[*]} ]] || ev_ok=1
}

# e2e_tunnel_rarps_start: tcpdump on leaf1's VXLAN device of the VM's VNI,
# inbound RARPs only (no promiscuous mode), into $LAB_DIR/leaf1/vx.rarp,
# until lab_down: proof that the RARP reached the old leaf over the tunnel,
# so that the daemon had a tunnel copy to ignore.
e2e_tunnel_rarps_start() {
  local f=$LAB_DIR/leaf1/vx.rarp
  ip netns exec "$LAB_NS_L1" tcpdump -p -nn -e -l -Q in -i "vx$LAB_VNI_VM" rarp >"$f" 2>"$f.err" &
  LAB_BG_PIDS+=($!)
  lab_wait 5 grep -q 'listening on' "$f.err"
}

# e2e_leaf1_local_lines SINCE_MS: leaf1's "ip -ts monitor neigh" lines from
# SINCE_MS (wall clock) on that bind one of the VM's addresses to the VM's
# MAC as anything but a remote EVPN binding (extern_learn), leaving out the
# kernel ageing a leftover entry (STALE, DELAY, PROBE, FAILED, INCOMPLETE):
# what programming the VM on the old leaf (REACHABLE, PERMANENT, NOARP)
# shows as.
e2e_leaf1_local_lines() {
  local since # as ip -ts prints it: [YYYY-mm-ddTHH:MM:SS.usec], local time
  since=$(date -d "@$(($1 / 1000))" +%Y-%m-%dT%H:%M:%S).$(printf %06d $(($1 % 1000 * 1000)))
  awk -v since="$since" -v a="$LAB_VM_IP4" -v b="$LAB_VM_IP4B" -v c="$LAB_VM_IP6" -v mac="${LAB_VM_MAC,,}" '
      match($0, /^\[[^]]*\] /) { ts = substr($0, 2, RLENGTH - 3); $0 = substr($0, RLENGTH + 1) }
      ts < since || /^Deleted / || / extern_learn / { next }
      ($1 == a || $1 == b || $1 == c) && tolower($0) ~ ("lladdr " mac " ") &&
        !/ (STALE|DELAY|PROBE|FAILED|INCOMPLETE)( |$)/ { print }' "$LAB_DIR/leaf1/neigh.mon" 2>/dev/null
}
# e2e_local_now LEAF [all]: the leaf's current neighbors that bind the VM's
# MAC without extern_learn (any state), "address state" per line: for one of
# the VM's three addresses, or with "all" for any address.
e2e_local_now() {
  ip -n "$(lab_ns "$1")" -j neigh show dev "br$LAB_VNI_VM" 2>/dev/null |
    jq -r --arg mac "${LAB_VM_MAC,,}" --arg all "${2:-}" --arg a "$LAB_VM_IP4" --arg b "$LAB_VM_IP4B" --arg c "$LAB_VM_IP6" '
      .[] | select((.lladdr // "" | ascii_downcase) == $mac and ($all == "all" or .dst == $a or .dst == $b or .dst == $c))
      | select(has("extern_learn") or ((.flags // []) | index("extern_learn")) | not)
      | "\(.dst) \((.state // []) | join(","))"'
}

# e2e_log_json LEAF: the daemon's JSON log lines (other lines skipped).
e2e_log_json() { lab_daemon_log "$1" | jq -R -c 'fromjson? // empty' 2>/dev/null; }
# e2e_metrics LEAF: the daemon's /metrics.
e2e_metrics() {
  ip netns exec "$(lab_ns "$1")" curl -fsS --max-time 3 "http://$E2E_METRICS_ADDR/metrics" 2>/dev/null
}

# e2e_macip_all_via_leaf2: leaf1 has MAC+IP routes via leaf2 for all three.
e2e_macip_all_via_leaf2() {
  local a
  for a in "$LAB_VM_IP4" "$LAB_VM_IP4B" "$LAB_VM_IP6"; do lab_has_macip_via 1 "$a" "$LAB_VTEP2" || return 1; done
}

# e2e_report: the scenario's checks, and after a failure what the lab,
# the neighbor monitors, the daemons and send-rarp showed.
e2e_report() {
  local r
  printf '%s\n' "${sc_checks[@]}"
  ((sc_fail)) || return 0
  echo "  --- state at failure"
  lab_dump | sed 's/^/  /'
  for r in 1 2; do
    [[ -r $LAB_DIR/leaf$r/neigh.mon ]] || continue
    echo "  --- leaf$r ip monitor neigh"
    sed 's/^/  /' "$LAB_DIR/leaf$r/neigh.mon" | tail -n 40
  done
  for r in 1 2; do
    [[ -r $LAB_DIR/leaf$r/rarp-replay.log ]] || continue
    echo "  --- leaf$r rarp-replay log"
    grep -v '"msg":"drop"' "$LAB_DIR/leaf$r/rarp-replay.log" | sed 's/^/  /' | tail -n 40
  done
  echo "  --- send-rarp"; sed 's/^/  /' "$LAB_DIR/send-rarp.out" 2>/dev/null
}

# e2e_check_handled WHAT: leaf2's last "migration handled" line must list
# the VM's three addresses as verified and programmed, and E2E_FOREIGN_IP
# as failed and not programmed. WHAT starts the first check's text. Sets the
# caller's daemon_ms (leaf2's rarp_to_programmed_ms).
e2e_check_handled() {
  local h2 ver fai pro a c
  h2=$(lab_daemon_handled 2 | tail -n1)
  if [[ -z $h2 ]]; then
    check 1 "leaf2's daemon logged \"migration handled\""
    return
  fi
  ver=$(jq -r '(.verified // []) | join(" ")' <<<"$h2" 2>/dev/null)
  fai=$(jq -r '(.failed // []) | join(" ")' <<<"$h2" 2>/dev/null)
  pro=$(jq -r '(.programmed // []) | join(" ")' <<<"$h2" 2>/dev/null)
  daemon_ms=$(jq -r '.rarp_to_programmed_ms // "-"' <<<"$h2" 2>/dev/null)
  c=0
  for a in "$LAB_VM_IP4" "$LAB_VM_IP4B" "$LAB_VM_IP6"; do
    [[ " $pro " == *" $a "* && " $ver " == *" $a "* ]] || c=1
  done
  check $c "$1 (verified: ${ver:-none}; programmed: ${pro:-none}; rarp_to_programmed_ms=$daemon_ms)"
  c=1; [[ " $fai " == *" $E2E_FOREIGN_IP "* && " $pro " != *" $E2E_FOREIGN_IP "* ]] && c=0
  check $c "leaf2's daemon probed $E2E_FOREIGN_IP, got no answer and did not program it (failed: ${fai:-none})"
}

# e2e_reach TRIES WAIT-s: the client pings the VM's three addresses; sets
# the caller's reach4 and reach6 (1: every address of the family answered)
# and reach_text ("IPv4 ok, IPv6 FAILED").
e2e_reach() {
  local a
  reach4=1 reach6=1
  for a in "$LAB_VM_IP4" "$LAB_VM_IP4B"; do lab_ping_vm "$a" "$1" "$2" || reach4=0; done
  lab_ping_vm "$LAB_VM_IP6" "$1" "$2" || reach6=0
  reach_text="IPv4 $( ((reach4)) && echo ok || echo FAILED), IPv6 $( ((reach6)) && echo ok || echo FAILED)"
}

# run_frr_down: scenario 3c. Prints its report, appends a row to rows[],
# returns non-zero if a check failed.
run_frr_down() {
  local t_rarp t_back daemon_ms=- c left reach4 reach6 reach_text
  sc_fail=0 sc_checks=()
  if ! lab_up; then
    check 1 "lab up"
    lab_down; rows+=("with+down rarp-first - - - - - - FAIL"); return 1
  fi
  lab_bind_foreign "$E2E_FOREIGN_IP" || check 1 "$E2E_FOREIGN_IP bound to the VM's MAC on leaf1, remote on leaf2"
  # shellcheck disable=SC2086
  lab_start_daemons --log-format json --log-level debug $E2E_DAEMON_ARGS && lab_daemons_wait_listening ||
    check 1 "rarp-replay listen -i any running on both leaves"
  lab_frr_stop 2
  left=$(ip -n "$LAB_NS_L2" neigh show dev "br$LAB_VNI_VM" | grep -ci "lladdr $LAB_VM_MAC ")
  c=1; ((left == 0)) && c=0
  check $c "leaf2's FRR stopped while the daemons listened: zebra removed the VM's remote bindings ($left left on br$LAB_VNI_VM)"

  LAB_RARP_ARGS=$E2E_RARP_ARGS
  lab_migrate rarp-first >"$LAB_DIR/send-rarp.out" 2>&1 || check 1 "migration (rarp-first)"
  t_rarp=${LAB_T_RARP_MS:-0}
  lab_wait $((E2E_HANDLED_TIMEOUT_MS / 1000)) lab_daemon_handled 2 >/dev/null
  lab_migrate_wait || check 1 "send-rarp / old port removal finished cleanly"
  e2e_check_handled "with FRR down, leaf2's daemon verified and programmed the VM's addresses from the bindings it remembers"

  if lab_frr_up 2; then
    t_back=$(lab_now_ms)
    c=1; lab_wait $((E2E_FRR_BACK_MS / 1000)) e2e_macip_all_via_leaf2 && c=0
    check $c "FRR back on leaf2 ($((t_back - t_rarp)) ms after the RARP): leaf1 has MAC+IP routes via $LAB_VTEP2 for every VM address $(($(lab_now_ms) - t_back)) ms later (at most $E2E_FRR_BACK_MS)"
  else
    check 1 "FRR started again on leaf2, session up"
  fi
  c=0; lab_has_macip_via 1 "$E2E_FOREIGN_IP" "$LAB_VTEP2" && c=1
  check $c "$E2E_FOREIGN_IP not advertised via $LAB_VTEP2 (leaf1's routes at the end)"
  lab_flush_vm_neighs 1 >/dev/null
  e2e_reach 3 2
  c=1; ((reach4 && reach6)) && c=0
  check $c "client -> VM after deleting leaf1's neighbors for the VM's MAC: $reach_text"
  c=0; lab_daemons_alive || c=1
  check $c "both daemons still running"

  e2e_report
  rows+=("with+down rarp-first - - - - - $daemon_ms $( ((sc_fail)) && echo FAIL || echo pass)")
  lab_down
  return $sc_fail
}

# run_scenario MODE ORDER: prints the scenario's report, appends a row to
# rows[], returns non-zero if a check failed.
run_scenario() {
  local mode=$1 order=$2 restart=${3:-} t_rarp arrive off now deadline handled="" l1h
  local label=$mode # the summary's mode column
  [[ -n $restart ]] && label=$mode+frr
  local leftover reach4 reach6 reach_text r daemon_ms=- flush_t c
  sc_fail=0 sc_checks=()
  if ! lab_up; then
    check 1 "lab up"
    lab_down; rows+=("$label $order - - - - - - FAIL"); return 1
  fi
  lab_neighmon_start 1
  lab_neighmon_start 2
  if lab_bind_foreign "$E2E_FOREIGN_IP"; then
    check 0 "$E2E_FOREIGN_IP bound to the VM's MAC on leaf1: advertised, remote (noarp extern_learn) on leaf2"
  else
    check 1 "$E2E_FOREIGN_IP bound to the VM's MAC on leaf1: advertised, remote on leaf2"
  fi
  if [[ $mode == with ]]; then
    # shellcheck disable=SC2086 # E2E_DAEMON_ARGS: words
    if lab_start_daemons --log-format json --log-level debug --metrics-addr "$E2E_METRICS_ADDR" $E2E_DAEMON_ARGS &&
      lab_daemons_wait_listening; then
      check 0 "rarp-replay listen -i any running on both leaves before the migration"
    else
      check 1 "rarp-replay listen -i any running on both leaves"
    fi
    if [[ $E2E_EVENTS == 1 ]]; then
      e2e_bridge_events
      check $ev_ok "AF_BRIDGE link messages for every VXLAN device on both leaves while the daemons listened (\"bridge -d monitor link\" count per port: $ev_text)"
      check $ev_restored "bridge ports on both leaves as lab.sh made them after the changes${ev_diff:+: $ev_diff}"
    fi
    if [[ $restart == frr-restart ]]; then
      local took gone2 back2
      if took=$(lab_frr_restart 2); then
        gone2=$(lab_neighmon_lines 2 "$LAB_VM_IP4" | grep -c 'Deleted ')
        back2=$(lab_neighmon_lines 2 "$LAB_VM_IP4" | grep -c 'extern_learn')
        check 0 "leaf2's zebra and bgpd restarted while the daemons listened: session up, VNIs known, the VM's addresses remote bindings again after $took ms ($LAB_VM_IP4 on leaf2: $gone2 deletion(s), $back2 remote install(s) in ip monitor neigh)"
      else
        check 1 "leaf2's zebra and bgpd restarted and back"
      fi
      lab_daemons_alive || check 1 "both daemons still run after leaf2's FRR restart"
    fi
    e2e_tunnel_rarps_start || check 1 "tcpdump on leaf1's vx$LAB_VNI_VM started"
  fi
  lab_monitor_start
  lab_poll_start 1
  lab_wait 5 compgen -G "$LAB_DIR/poll.leaf1/*.json" >/dev/null # one poll before the RARP

  LAB_RARP_ARGS=$E2E_RARP_ARGS
  if ! lab_migrate "$order" >"$LAB_DIR/send-rarp.out" 2>&1; then
    check 1 "migration ($order)"
  fi
  t_rarp=${LAB_T_RARP_MS:-0}

  # Observe.
  if [[ $mode == with ]]; then
    deadline=$((t_rarp + E2E_HANDLED_TIMEOUT_MS))
    while :; do
      now=$(lab_now_ms)
      handled=$(lab_daemon_handled 2)
      [[ -n $handled ]] && ((now - t_rarp >= E2E_MIN_OBSERVE_MS)) && break
      ((now > deadline)) && break
      sleep 0.05
    done
    sleep "$(awk -v m="$E2E_TAIL_MS" 'BEGIN{printf "%.3f", m/1000}')"
  else
    while (($(lab_now_ms) - t_rarp < E2E_BUG_SETTLE_MS)); do sleep 0.05; done
  fi
  lab_migrate_wait || check 1 "send-rarp / old port removal finished cleanly"
  _lab_ms flush_t

  # Leaf1's leftover entries age out; the client pings the VM.
  leftover=$(lab_flush_vm_neighs 1 | sort | paste -sd' ')
  local tries=3 w=2
  [[ $mode == without ]] && tries=1 w=1
  e2e_reach $tries $w
  lab_poll_stop 1
  lab_monitor_stop
  lab_neighmon_stop

  # Times: reference = send-rarp start (stricter); arrival = leaf2's bridge
  # learned the MAC from the RARP (bridge monitor fdb).
  arrive=$(lab_monitor_first 2 "${LAB_VM_MAC,,} dev vm0 " "$t_rarp")
  local early
  early=$(lab_monitor_first 2 "${LAB_VM_MAC,,} dev vm0 " 0)
  if ((early >= 0 && early < t_rarp)); then
    check 1 "VM silent until the RARP (leaf2 learned its MAC $((t_rarp - early)) ms before send-rarp started)"
  fi
  off=-1; ((arrive >= 0)) && off=$((arrive - t_rarp))
  local P_POLLS P_SPAN_MS P_MAC_ONLY P_ALL_MACIP P_ALL_MACIP_STABLE P_BUG_STABLE P_FOREIGN P_FOREIGN_POLLS P_LAST_END
  eval "$(lab_poll_summary 1 "$t_rarp" "$E2E_FOREIGN_IP" "$flush_t")"
  local mig=("$P_MAC_ONLY" "$P_ALL_MACIP" "$P_ALL_MACIP_STABLE" "$P_BUG_STABLE" "$P_LAST_END" "$P_POLLS" "$P_SPAN_MS")
  eval "$(lab_poll_summary 1 "$t_rarp" "$E2E_FOREIGN_IP")" # whole window, for the foreign IP
  local nfailed=0
  [[ -r $LAB_DIR/poll.leaf1/failed ]] && nfailed=$(wc -l <"$LAB_DIR/poll.leaf1/failed")

  echo "  RARP: send-rarp $E2E_RARP_ARGS; reached leaf2's bridge $(ms "$off") ms after the sender started"
  echo "  leaf1 polled $P_POLLS times over $P_SPAN_MS ms (every ~$((P_POLLS > 1 ? P_SPAN_MS / (P_POLLS - 1) : 0)) ms, $nfailed failed polls); times below in ms after the sender started (after arrival at leaf2)"
  echo "    MAC-only route via leaf2 on leaf1:        $(ms "${mig[0]}") ($(diffms "${mig[0]}" "$off"))"
  echo "    MAC+IP routes via leaf2 for all VM IPs:   $(ms "${mig[1]}") ($(diffms "${mig[1]}" "$off"))"
  echo "  leaf1 routes for ${LAB_VM_MAC} before the leftover removal (mac ip nexthop origin seq rd):"
  lab_poll_table 1 | awk -F'\t' -v u="$flush_t" '$3 == "#poll" { if ($1 + 0 < u + 0) { delete rows; n = 0; keep = 1 } else keep = 0; next }
    keep { rows[++n] = $3 "\t" $4 "\t" $5 "\t" $6 "\t" $7 "\t" $8 } END { for (i = 1; i <= n; i++) print "    " rows[i] }'

  if [[ $mode == without ]]; then
    if ((mig[3] >= 0 && mig[4] - mig[3] >= E2E_BUG_STABLE_MS)); then
      check 0 "bug reproduced: leaf1 ends with the MAC-only route via $LAB_VTEP2 and no MAC+IP route (since $(ms "${mig[3]}") ms, held $((mig[4] - mig[3])) ms)"
    else
      check 1 "bug reproduced: leaf1 ends with the MAC-only route via $LAB_VTEP2 and no MAC+IP route for >= $E2E_BUG_STABLE_MS ms (bug state since: $(ms "${mig[3]}"), last poll at ${mig[4]})"
    fi
    note "leaf1's neighbors for the VM's MAC deleted: ${leftover:-none}; client -> VM afterwards: IPv4 $( ((reach4)) && echo reachable || echo unreachable), IPv6 $( ((reach6)) && echo reachable || echo unreachable)"
    rows+=("$label $order $(ms "$off") $(ms "${mig[0]}") $(diffms "${mig[0]}" "$off") $(ms "${mig[1]}") $(diffms "${mig[1]}" "$off") -")
  else
    c=1; ((mig[1] >= 0 && mig[1] <= E2E_DEADLINE_MS)) && c=0
    check $c "MAC+IP routes via $LAB_VTEP2 for $LAB_VM_IP4 $LAB_VM_IP4B $LAB_VM_IP6 on leaf1 within $E2E_DEADLINE_MS ms of the RARP: $(ms "${mig[1]}") ms"
    c=1; ((mig[2] >= 0)) && c=0
    check $c "... still there at the end (stable since $(ms "${mig[2]}") ms)"
    c=1; ((reach4 && reach6)) && c=0
    check $c "client -> VM after deleting leaf1's neighbors for the VM's MAC (${leftover:-none}): $reach_text"
    e2e_check_handled "leaf2's daemon verified and programmed the VM's addresses"
    l1h=$(lab_daemon_handled 1 | jq -r '(.programmed // []) | .[]' 2>/dev/null | tr '\n' ' ')
    c=1; [[ -z $l1h ]] && c=0
    check $c "leaf1's daemon programmed nothing (the RARP reached it only over VXLAN)${l1h:+: programmed $l1h}"

    # Tunnels are never ports, whatever AF_BRIDGE messages came (the bug
    # fixed in 82c37ce: "port added" for vx10, then the tunnel copy of the
    # RARP probed the VM through vx10 into the fabric from the old leaf).
    local vxs vxj n m bad="" pos2 l1p trx met1 met2 mbad="" mpos l1m
    vxs=$({ e2e_vxlan_devs 1; e2e_vxlan_devs 2; } | sort -u)
    vxj=$(jq -R . <<<"$vxs" | jq -sc .)
    for n in 1 2; do
      m=$(e2e_log_json "$n" | jq -r --argjson vx "$vxj" \
        'select(.msg == "port added" and (.ifname as $i | any($vx[]; . == $i))) | .ifname' | sort -u | paste -sd,)
      [[ -n $m ]] && bad+=" leaf$n: $m;"
    done
    c=1; [[ -z $bad ]] && c=0
    check $c "no \"port added\" for a VXLAN device ($(paste -sd' ' <<<"$vxs")) in either daemon's log${bad:+:${bad%;}}"
    bad=""
    for n in 1 2; do
      m=$(e2e_log_json "$n" | jq -r --argjson vx "$vxj" \
        'select((.msg == "probing" or .msg == "migration handled") and (.port as $p | any($vx[]; . == $p)))
         | "\(.msg) on \(.port)"' | sort | uniq -c | awk '{$1 = $1 "x"; print}' | paste -sd,)
      [[ -n $m ]] && bad+=" leaf$n: $m;"
    done
    pos2=$(e2e_log_json 2 | jq -r 'select(.msg == "probing" and .port == "vm0") | .port' | wc -l)
    c=1; [[ -z $bad ]] && ((pos2 >= 1)) && c=0
    check $c "no probe through a VXLAN device: no debug \"probing\" or \"migration handled\" line for one in either log (leaf2 logged $pos2 \"probing\" on vm0)${bad:+:${bad%;}}"
    trx=$(grep -c 'Reverse Request' "$LAB_DIR/leaf1/vx.rarp" 2>/dev/null)
    l1p=$(e2e_log_json 1 | jq -r 'select(.msg == "probing" or .msg == "migration handled") | "\(.msg) on \(.port)"' | paste -sd,)
    c=1; ((${trx:-0} >= 1)) && [[ -z $l1p ]] && c=0
    check $c "the RARP reached leaf1 over vx$LAB_VNI_VM (tcpdump: ${trx:-0} inbound) and leaf1's daemon probed nothing${l1p:+: $l1p}"
    met1=$(e2e_metrics 1) met2=$(e2e_metrics 2)
    for n in 1 2; do
      [[ $n == 1 ]] && m=$met1 || m=$met2
      m=$(grep -E "^rarp_replay_[a-z_]+\{port=\"($(paste -sd'|' <<<"$vxs"))\"\}" <<<"$m" | paste -sd,)
      [[ -n $m ]] && mbad+=" leaf$n: $m;"
    done
    mpos=$(awk '/^rarp_replay_rarps_total\{port="vm0"\}/ {print $2}' <<<"$met2")
    l1m=$(grep -E '^rarp_replay_(rarps_total|probes_sent_total|bindings_programmed_total)[{ ]' <<<"$met1" | awk '$NF != 0' | paste -sd,)
    c=1; [[ -n $met1 && -n $met2 && -z $mbad$l1m ]] && awk -v v="${mpos:-0}" 'BEGIN {exit !(v >= 1)}' && c=0
    check $c "metrics: no series for a VXLAN port on either leaf, leaf1 decoded no RARP and sent no probe, leaf2 rarps_total{port=\"vm0\"} ${mpos:-missing}${mbad:+;${mbad%;}}${l1m:+; leaf1: $l1m}$([[ -n $met1 && -n $met2 ]] || echo "; /metrics unreachable")"

    c=1; lab_daemons_alive && c=0
    check $c "both daemons still running"
    rows+=("$label $order $(ms "$off") $(ms "${mig[0]}") $(diffms "${mig[0]}" "$off") $(ms "${mig[1]}") $(diffms "${mig[1]}" "$off") $daemon_ms")
  fi

  # The old leaf never binds the migrated VM's addresses locally once the
  # VM's old port is gone (before that, in rarp-first, leaf1's kernel may
  # still refresh its entries from the source VM, which this lab leaves
  # attached; the daemon's own programming there is covered by its log and
  # metrics above).
  local bad1 fin1 gone=$LAB_T_PORTDEL_MS
  ((gone > 0)) || gone=$t_rarp
  bad1=$(e2e_leaf1_local_lines "$gone" | paste -sd';')
  fin1=$(e2e_local_now 1 | paste -sd';')
  c=1; [[ -z $bad1$fin1 ]] && c=0
  check $c "leaf1 never bound the VM's addresses to its MAC other than as extern_learn once the old port was gone (at $(diffms "$gone" "$t_rarp") ms; ip monitor neigh) nor at the end (ip neigh)${bad1:+; monitor: $bad1}${fin1:+; final: $fin1}"

  # The address the VM does not own, in both modes.
  c=1; ((P_FOREIGN < 0)) && c=0
  check $c "$E2E_FOREIGN_IP never advertised via $LAB_VTEP2 in leaf1's $P_POLLS polls ($P_FOREIGN_POLLS polls showed it, first at $(ms "$P_FOREIGN") ms)"
  local bad2 fin2 saw2
  bad2=$(lab_neighmon_local 2 "$E2E_FOREIGN_IP")
  saw2=$(lab_neighmon_lines 2 "$E2E_FOREIGN_IP" | grep -c 'extern_learn')
  fin2=$(ip -n "$LAB_NS_L2" neigh show "$E2E_FOREIGN_IP" dev "br$LAB_VNI_VM" 2>/dev/null |
    grep -i "lladdr $LAB_VM_MAC " | grep -v 'extern_learn.*NOARP')
  c=1; [[ -z $bad2$fin2 && $saw2 -ge 1 ]] && c=0
  check $c "leaf2 never bound $E2E_FOREIGN_IP to the VM's MAC except as extern_learn NOARP (ip monitor neigh saw the remote install: $saw2 line(s))${bad2:+; monitor: $bad2}${fin2:+; final: $fin2}"

  # frr-restart: leaf2's FRR restarts once more, after the migration. The
  # bindings the daemon programmed are the kernel's local entries, which
  # zebra reads back when it starts: leaf1 must get MAC+IP routes via leaf2
  # for every VM address again, and the client reach the VM, with the
  # daemon still running and the addresses still local on leaf2.
  if [[ $restart == frr-restart && $mode == with ]]; then
    local took2 t_back back=1 loc2
    if took2=$(lab_frr_restart 2 up); then
      t_back=$(lab_now_ms)
      lab_wait 20 e2e_macip_all_via_leaf2 && back=0
      check $back "leaf2's FRR restarted after the migration (back in $took2 ms): leaf1 has MAC+IP routes via $LAB_VTEP2 for every VM address again ($(($(lab_now_ms) - t_back)) ms after the session was up)"
    else
      check 1 "leaf2's FRR restarted after the migration and back"
    fi
    e2e_reach 3 2
    c=1; ((reach4 && reach6)) && c=0
    check $c "client -> VM after that restart: $reach_text"
    loc2=$(e2e_local_now 2 all | awk '{ print $1 }' | sort | paste -sd' ')
    c=1; [[ " $loc2 " == *" $LAB_VM_IP4 "* && " $loc2 " == *" $LAB_VM_IP4B "* && " $loc2 " == *" $LAB_VM_IP6 "* && " $loc2 " != *" $E2E_FOREIGN_IP "* ]] && c=0
    check $c "leaf2 still binds the VM's addresses locally, and not $E2E_FOREIGN_IP (local entries for its MAC: ${loc2:-none})"
    c=0; lab_daemons_alive || c=1
    check $c "both daemons still running after the second restart"
  fi

  e2e_report
  rows[-1]+=" $( ((sc_fail)) && echo FAIL || echo pass)"
  lab_down
  return $sc_fail
}

# The scenarios: MODE ORDER [frr-restart].
scenarios=()
if [[ $restart != only ]]; then
  for mode in "${modes[@]}"; do
    for order in "${orders[@]}"; do scenarios+=("$mode $order"); done
  done
fi
[[ $restart != no && " ${modes[*]} " == *" with "* && " ${orders[*]} " == *" rarp-first "* ]] &&
  scenarios+=("with rarp-first frr-restart" "with rarp-first frr-down")
rows=() pass=0 fail=0 t_start=$(lab_now_ms) k=0
total=$((runs * ${#scenarios[@]}))
for ((i = 1; i <= runs; i++)); do
  for sc in "${scenarios[@]}"; do
    read -r mode order cond <<<"$sc"
    ((k++))
    if [[ $cond == frr-down ]]; then
      echo "=== [$k/$total] $mode rarp-replay, $order, FRR down on leaf2 during the migration"
      if run_frr_down; then ((pass++)); else ((fail++)); fi
      continue
    fi
    echo "=== [$k/$total] $mode rarp-replay, $order${cond:+, FRR restarted on leaf2 before and after}"
    if run_scenario "$mode" "$order" "$cond"; then ((pass++)); else ((fail++)); fi
  done
done

echo "=== summary: $pass passed, $fail failed, $(( ($(lab_now_ms) - t_start) / 1000 )) s"
{
  echo "mode order RARP@leaf2 MAC-only MAC-only@arrival MAC+IP MAC+IP@arrival daemon_ms result"
  printf '%s\n' "${rows[@]}"
} | awk '{ printf "  %-8s %-11s %10s %9s %17s %7s %15s %10s %s\n", $1, $2, $3, $4, $5, $6, $7, $8, $9 }'
echo "  (ms after send-rarp started; @arrival: after the RARP reached leaf2's bridge; daemon_ms: leaf2's rarp_to_programmed_ms)"
. "$here/compat.sh"
compat_record bridge-per-vni "$( ((fail == 0)) && echo pass || echo fail)" "scripts/lab/e2e.sh"
((fail == 0))
