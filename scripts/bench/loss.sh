#!/usr/bin/env bash
# Packet loss a routed client feels (part of make bench-fabric): on the
# two-leaf FRR EVPN lab, the client (198.51.100.10, br20 behind leaf1) streams
# UDP with sequence numbers to the first K of N migrating VMs (200 packets/s
# each, LOSS_DURATION 12 s, starting 1 s before the migration). The VMs' 
# responders (scripts/bench/fabric) count what arrives, before the move on
# leaf1's side, after it on leaf2's. Three runs, each on a fresh lab:
#   with rarp-replay   QEMU's RARPs, "rarp-replay listen -i any" on both leaves
#   without            QEMU's RARPs only
#   self-announcing    no daemon; the guests announce themselves instead of
#                      QEMU: a gratuitous ARP per IPv4 and an unsolicited NA
#                      per IPv6 address, in the same five rounds (what
#                      virtio-net's guest announce does): the ideal
# For the self-announcing run only, both leaves' br10 have arp_accept=1 and
# accept_untracked_na=1 (else the kernel ignores the announcements).
# Leaf1's leftover local neighbor entries for the VMs' MACs are deleted
# LOSS_AGE_S (3) s after the first RARP, as the kernel's ageing would remove
# them tens of seconds later; until then leaf1 still forwards to the VMs
# through them. Per VM: packets lost, and from when on everything was lost.
#
#   sudo scripts/bench/loss.sh [BIN=bin/rarp-replay] [K=20] [N=K]
#
# Environment: LOSS_MODEL (b), LOSS_ORDER (rarp-first), LOSS_PPS (200),
# LOSS_DURATION (12s), LOSS_AGE_S (3), LOSS_ARP_ACCEPT (garp | all); the FABRIC_* knobs of fabric.sh.
# Target: with the daemon, loss within one packet interval (one packet per
# VM) of the self-announcing VMs.
set -u
loss_here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
if [[ ${FABRIC_NO_INIT:-0} != 1 ]]; then
  # shellcheck source=fabric.sh
  . "$loss_here/fabric.sh"
fi

# loss_main: the three runs; prints the Markdown section. Non-zero on a
# broken run.
loss_main() {
  local k=${LOSS_K:-20} n=${LOSS_N:-${FABRIC_N:-20}} model=${LOSS_MODEL:-b} order=${LOSS_ORDER:-rarp-first}
  local saved_n=${FABRIC_N:-} m label broken=0 pps=${LOSS_PPS:-200}
  ((k > n)) && k=$n
  FABRIC_N=$n
  local saved_aa=${FABRIC_ARP_ACCEPT:-0}
  declare -A rowsby sum
  for m in with without garp; do
    # The kernel learns from gratuitous ARPs / unsolicited NAs only with
    # arp_accept / accept_untracked_na: on for the self-announcing run
    # (LOSS_ARP_ACCEPT=all: for every run).
    FABRIC_ARP_ACCEPT=0
    [[ $m == garp || ${LOSS_ARP_ACCEPT:-garp} == all ]] && FABRIC_ARP_ACCEPT=1
    case $m in
      with) fabric_run "$model" "$order" with rarp "$k" ;;
      without) fabric_run "$model" "$order" without rarp "$k" ;;
      garp) fabric_run "$model" "$order" without garp "$k" ;;
    esac || { broken=1; sum[$m]="BROKEN RUN"; continue; }
    rowsby[$m]=$R_LOSSROWS
    sum[$m]="**$L_P50 / $L_MAX**|$L_LOST of $L_SENT|$L_PAUSE_P50|$( ((L_TAILS > 0)) && echo "$L_TAILS of $L_TARGETS VMs: all after $L_TAIL_MIN_MS ms" || echo "none")|$A_RESTORED / $A_BINDINGS"
    fabric_log "  loss $m: $L_LOST of $L_SENT lost, per VM p50 $L_P50 max $L_MAX, tails $L_TAILS (from $L_TAIL_MIN_MS ms); restored $A_RESTORED"
  done
  FABRIC_N=$saved_n FABRIC_ARP_ACCEPT=$saved_aa
  echo
  echo "### Packets lost by a routed client"
  echo
  echo "\`scripts/bench/loss.sh\`: the client (another subnet, routed by leaf1) streams UDP to $k of the $n migrating VMs, $pps packets/s each ($((1000 / pps)) ms apart), from 1 s before the migration (model ($model), $order). Leaf1's leftover local neighbor entries for the VMs are deleted ${LOSS_AGE_S:-3} s after the first RARP, as the kernel's ageing does some tens of seconds later; until then leaf1 still forwards through them. Self-announcing: no daemon, the guests send a gratuitous ARP / unsolicited NA per address in QEMU's five rounds instead of RARPs (the ideal). For that run only, both leaves' br10 have \`arp_accept=1\` and \`accept_untracked_na=1\`, so that the kernel learns from those announcements at all: with the defaults (the other two runs) it ignores them, and self-announcing VMs fare as badly as silent ones. (With \`arp_accept=1\` the silent VMs that receive traffic also come back without the daemon, tens of ms after leaf1's entry goes: leaf2 then learns from their answer to leaf1's broadcast ARP; \`LOSS_ARP_ACCEPT=all\` shows it.) Lost: packets sent from the VM's first RARP on that never arrived; packets sent during the pause before it (the migration's downtime, the same for all) are counted apart."
  echo
  echo "| VMs announced by | lost per VM p50 / max | lost in total | lost in the pause, per VM p50 | stream lost for good | MAC+IP restored (all $n VMs) |"
  echo "| --- | --- | --- | --- | --- | --- |"
  for m in with without garp; do
    case $m in with) label="QEMU's RARPs, rarp-replay" ;; without) label="QEMU's RARPs, no rarp-replay" ;; garp) label="the guest itself (ideal)" ;; esac
    fabric_row "$label|${sum[$m]}"
  done
  echo
  echo "Target: with the daemon, loss within one packet interval (one packet per VM) of the self-announcing VMs."
  echo
  echo "Per VM: packets lost from the first RARP on (\"all lost after\": everything from then on, ms after the first RARP)."
  echo
  echo "| VM address | rarp-replay | without | self-announcing |"
  echo "| --- | --- | --- | --- |"
  local a w o g
  while read -r a; do
    [[ -n $a ]] || continue
    w=$(awk -v a="$a" -F'\t' '$1 == a { s = $3; if ($NF ~ /^all lost/) s = s ", " $NF; sub(/^lost /, "", s); print s }' <<<"${rowsby[with]:-}")
    o=$(awk -v a="$a" -F'\t' '$1 == a { s = $3; if ($NF ~ /^all lost/) s = s ", " $NF; sub(/^lost /, "", s); print s }' <<<"${rowsby[without]:-}")
    g=$(awk -v a="$a" -F'\t' '$1 == a { s = $3; if ($NF ~ /^all lost/) s = s ", " $NF; sub(/^lost /, "", s); print s }' <<<"${rowsby[garp]:-}")
    fabric_row "$a|${w:--}|${o:--}|${g:--}"
  done < <(fabric_vms "$k" a | awk '{ print $3 }')
  return $broken
}

if [[ ${BASH_SOURCE[0]} == "$0" ]]; then
  LOSS_K=${2:-20}
  fabric_init "${1:-bin/rarp-replay}"
  FABRIC_N=${3:-$LOSS_K}
  loss_main
  exit $?
fi
