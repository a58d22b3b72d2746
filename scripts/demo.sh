#!/usr/bin/env bash
# rarp-replay demo: a silent VM live-migrates between two FRR EVPN-VXLAN
# leaves (network namespaces, built and removed by scripts/lab/lab.sh), once
# without and once with "rarp-replay listen -i any" on both leaves, and what
# leaf1's EVPN table says about it before and after.
#
#   sudo scripts/demo.sh          (or: sudo make demo)
#
# RARP_REPLAY=/path/to/rarp-replay picks the binary; unset, it is built with
# go build into a temporary directory. Needs root, iproute2, frr, jq and
# iputils-ping (Debian packages). Nothing outside the namespaces it creates is
# touched; they are removed on every exit.
set -u

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=lab/lab.sh
. "$here/lab/lab.sh"
[[ ${DEMO_VERBOSE:-0} == 1 ]] || LAB_QUIET=1
FOREIGN=192.0.2.99

lab_script_init
[[ -x $RARP_REPLAY ]] || { echo "RARP_REPLAY=$RARP_REPLAY is not executable" >&2; exit 1; }
# The client's UDP stream to the VM (scripts/bench/fabric: stream, recv, loss).
demo_tmp=$(mktemp -d "${TMPDIR:-/tmp}/rr-demo.XXXX") || exit 1
trap '_lab_script_cleanup; rm -rf -- "$demo_tmp"' EXIT
(cd "$LAB_REPO_ROOT" && "$(lab_go)" build -o "$demo_tmp/fabric" ./scripts/bench/fabric) ||
  { echo "building scripts/bench/fabric failed" >&2; exit 1; }
STREAM_PPS=200

# Leaf1's routes for the VM (lab_macip_routes rows on stdin) as table rows.
routes() {
  awk -v v1="$LAB_VTEP1" -v v2="$LAB_VTEP2" '
    { who = ($3 == v1) ? "leaf1" : ($3 == v2) ? "leaf2" : "?"
      printf "    %-17s  %-15s  %-12s  %-6s  (%s)\n", $1, ($2 == "-" ? "- (MAC only)" : $2), $3, $4, who
      if ($2 != "-") n++ }
    END { if (!n) print "    no MAC+IP route: routed traffic to the VM has nowhere to go" }'
}

# demo_rx NS FILE: a receiver for the client's stream in the VM namespace NS
# (a bound UDP socket: the VM's kernel stays silent).
demo_rx() {
  ip netns exec "$1" "$demo_tmp/fabric" recv -addr "$LAB_VM_IP4" -rx "$2" -timeout 2m >"$2.log" 2>&1 &
  LAB_BG_PIDS+=($!)
  lab_wait 5 grep -qs receiving "$2.log"
}
demo_rx2() { demo_rx "$LAB_NS_VM2" "$LAB_DIR/rx2"; }
# demo_stop PID: SIGTERM, then wait for it to write its file.
demo_stop() {
  local i
  kill -TERM "$1" 2>/dev/null || return 0
  for ((i = 0; i < 60; i++)); do kill -0 "$1" 2>/dev/null || break; sleep 0.05; done
  wait "$1" 2>/dev/null
  return 0
}

# demo_run without|with: one fresh lab, one migration (rarp-first, QEMU's five
# RARPs), while the client streams UDP to the VM. Sets BEFORE, AFTER, T_ARR,
# T_MO, T_MI, T_FOREIGN, N_POLLS, PING, HANDLED and LOSS (L_* of "fabric
# loss").
demo_run() {
  local mode=$1 t_rarp arrive now P_POLLS P_SPAN_MS P_MAC_ONLY P_ALL_MACIP P_ALL_MACIP_STABLE
  local P_BUG_STABLE P_FOREIGN P_FOREIGN_POLLS P_LAST_END a r4=ok r6=ok
  lab_up || return 1
  lab_bind_foreign "$FOREIGN" || { echo "could not bind $FOREIGN on leaf1" >&2; return 1; }
  BEFORE=$(lab_macip_routes 1)
  if [[ $mode == with ]]; then
    lab_start_daemons --log-format json && lab_daemons_wait_listening || return 1
  fi
  lab_monitor_start
  lab_poll_start 1
  lab_wait 5 compgen -G "$LAB_DIR/poll.leaf1/*.json" >/dev/null
  demo_rx "$LAB_NS_VM" "$LAB_DIR/rx1" || return 1
  ip netns exec "$LAB_NS_CL" "$demo_tmp/fabric" stream -targets "$LAB_VM_IP4" -pps "$STREAM_PPS" \
    -duration 60s -out "$LAB_DIR/sent" >"$LAB_DIR/stream.log" 2>&1 &
  local stream_pid=$!
  LAB_BG_PIDS+=($stream_pid)
  sleep 0.3
  LAB_MIGRATE_HOOK=demo_rx2 lab_migrate rarp-first >"$LAB_DIR/send-rarp.out" 2>&1 || return 1
  t_rarp=$LAB_T_RARP_MS
  while :; do # with: until the daemon's "migration handled" line; at least 2.5 s
    now=$(lab_now_ms)
    if ((now - t_rarp >= 2500)); then
      [[ $mode == without || -n $(lab_daemon_handled 2) ]] && break
      ((now - t_rarp > 12000)) && break
    fi
    sleep 0.05
  done
  lab_migrate_wait
  AFTER=$(lab_macip_routes 1)
  lab_poll_stop 1
  lab_monitor_stop
  arrive=$(lab_monitor_first 2 "${LAB_VM_MAC,,} dev vm0 " "$t_rarp")
  ((arrive < 0)) && arrive=$t_rarp
  T_ARR=$((arrive - t_rarp))
  eval "$(lab_poll_summary 1 "$arrive" "$FOREIGN")"
  T_MO=$P_MAC_ONLY T_MI=$P_ALL_MACIP T_FOREIGN=$P_FOREIGN N_POLLS=$P_POLLS
  # Leaf1's old entries age out; the stream runs 1 s more; then the client
  # pings the VM.
  lab_flush_vm_neighs 1 >/dev/null
  sleep 1
  demo_stop "$stream_pid"
  local p
  for p in "${LAB_BG_PIDS[@]}"; do [[ $p == "$stream_pid" ]] || demo_stop "$p"; done
  LOSS=$("$demo_tmp/fabric" loss -sent "$LAB_DIR/sent" -rx "$LAB_DIR/rx1,$LAB_DIR/rx2" -ref "$((t_rarp * 1000000))") ||
    { echo "loss analysis failed" >&2; return 1; }
  for a in "$LAB_VM_IP4" "$LAB_VM_IP4B"; do lab_ping_vm "$a" 2 1 || r4=fails; done
  lab_ping_vm "$LAB_VM_IP6" 2 1 || r6=fails
  PING="IPv4 $r4, IPv6 $r6"
  HANDLED=$(lab_daemon_handled 2 | tail -n1)
  lab_down
}

ms() { if (($1 < 0)); then echo never; else echo "$1"; fi; }

echo "rarp-replay demo: a silent VM live-migrates from leaf1 to leaf2 (FRR 'advertise-all-vni')"
echo "  VM $LAB_VM_MAC: $LAB_VM_IP4 $LAB_VM_IP4B $LAB_VM_IP6; leaf1 VTEP $LAB_VTEP1, leaf2 VTEP $LAB_VTEP2"
echo "  $FOREIGN is also bound to the VM's MAC on leaf1, but the VM does not own it."
echo "  A client behind leaf1 ($LAB_CL_IP4) reaches the VM routed, through leaf1's EVPN table."
echo "  Migration: the VM moves to leaf2, which sends QEMU's five RARPs; leaf1's port goes 0.5 s later."
echo "  (two fresh labs, about 30 s)"
demo_run without || { echo "demo failed (lab without rarp-replay)" >&2; exit 1; }
b_before=$BEFORE b_after=$AFTER b_arr=$T_ARR b_mo=$T_MO b_mi=$T_MI b_ping=$PING b_loss=$LOSS
demo_run with || { echo "demo failed (lab with rarp-replay)" >&2; exit 1; }

echo
echo "leaf1# show bgp l2vpn evpn route type macip   (best paths for $LAB_VM_MAC)"
printf '    %-17s  %-15s  %-12s  %s\n' MAC IP "next hop" origin
echo "  before the migration (VM on leaf1):"
routes <<<"$b_before"
echo "  after the migration, without rarp-replay:"
routes <<<"$b_after"
echo "  after the migration, with rarp-replay listen on both leaves:"
routes <<<"$AFTER"

echo
daemon_ms=- pro=- fai=-
if [[ -n $HANDLED ]]; then
  daemon_ms=$(jq -r '.rarp_to_programmed_ms // "-"' <<<"$HANDLED")
  pro=$(jq -r '(.programmed // []) | join(" ")' <<<"$HANDLED")
  fai=$(jq -r '(.failed // []) | join(" ")' <<<"$HANDLED")
fi
row() { printf '  %-52s %9s %9s\n' "$@"; }
row "timeline, ms after the first RARP reached leaf2" without with
row "first RARP on the wire (leaf2's bridge learns the MAC)" 0 0
row "MAC-only route via leaf2 on leaf1" "$(ms "$b_mo")" "$(ms "$T_MO")"
row "MAC+IP routes via leaf2 on leaf1 (all 3 addresses)" "$(ms "$b_mi")" "$(ms "$T_MI")"
row "rarp-replay: RARP -> bindings programmed (its log)" - "$daemon_ms"
echo "  (leaf1's table polled with vtysh every ~40 ms; send-rarp start to arrival: $b_arr / $T_ARR ms)"
echo
# One line: what the client's stream lost (L_* from "fabric loss").
loss_line() {
  local L_TARGETS L_SENT L_LOST L_P50 L_MAX L_PAUSE_P50 L_TAILS L_TAIL_MIN_MS L_INTERVAL_MS w
  eval "$b_loss"
  if ((L_TAILS > 0)); then
    w="all after $(awk -v m="$L_TAIL_MIN_MS" 'BEGIN { printf "%.1f s", m / 1000 }') (once leaf1's old neighbor entry went, deleted here as ageing would)"
  else w="lost $L_LOST of $L_SENT"; fi
  eval "$LOSS"
  echo "  client lost $L_LOST of $L_SENT packets (UDP, $STREAM_PPS/s to $LAB_VM_IP4 across the migration); without rarp-replay: $w"
}
loss_line
echo "  client -> VM, once leaf1's old neighbor entries aged out:"
echo "    without rarp-replay: $b_ping"
echo "    with rarp-replay:    $PING"
if ((T_FOREIGN < 0)); then adv="never advertised via leaf2 ($N_POLLS polls of leaf1)"
else adv="BUT leaf1 saw it via leaf2 $T_FOREIGN ms after the RARP"; fi
echo "  rarp-replay on leaf2 probed every address bound to the VM's MAC:"
echo "    answered, programmed: ${pro:--}"
echo "    no answer:            ${fai:--} -> not programmed, $adv"
