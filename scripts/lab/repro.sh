#!/usr/bin/env bash
# Reproduce the silent-VM migration bug in the two-leaf FRR EVPN lab.
#
#   sudo scripts/lab/repro.sh [-n RUNS] [--expect bug|fixed] [ORDER...]
#
# ORDER: rarp-first and/or port-first (default: both). Every run builds a
# fresh lab, migrates the VM from leaf1 to leaf2 and polls leaf1's EVPN table
# for LAB_SETTLE seconds (default 8).
#   --expect bug   (default) rarp-replay is NOT running; passes if leaf1 ends
#                  with the VM's MAC-only route via leaf2's VTEP and no
#                  MAC+IP route for any of the VM's addresses.
#   --expect fixed runs "rarp-replay listen -i any" in both leaves first;
#                  passes if leaf1 ends with MAC+IP routes via leaf2's VTEP
#                  for all of the VM's addresses.
# Exit status: 0 if every run matched the expectation, 1 otherwise.
# RARP_REPLAY=/path/to/rarp-replay selects the binary (default: go build of
# ./cmd/rarp-replay into the run dir). LAB_KEEP=1 keeps logs, LAB_DEBUG=1
# turns on FRR debug logs. Timings: ms; "sender" = when send-rarp was
# started, "RARP" = when leaf2's bridge learned the MAC from the first RARP.
set -u

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=lab.sh
. "$here/lab.sh"

runs=1 expect=bug orders=()
while (($#)); do
  case $1 in
    -n) runs=$2; shift 2 ;;
    --expect) expect=$2; shift 2 ;;
    rarp-first | port-first) orders+=("$1"); shift ;;
    -h | --help) sed -n '2,19p' "$0"; exit 0 ;;
    *) echo "unknown argument: $1" >&2; exit 2 ;;
  esac
done
((${#orders[@]})) || orders=(rarp-first port-first)
case $expect in bug | fixed) ;; *) echo "--expect bug|fixed" >&2; exit 2 ;; esac

lab_script_init

rel() { # event-ms base-ms
  if (($1 < 0 || $2 < 0)); then echo never; else echo $(($1 - $2)); fi
}
since() { # LAB_T_* value (ms after sender start) -> ms after the first RARP
  if (($1 < 0)); then echo never; else echo $(($1 - off)); fi
}

pass=0 fail=0 summary=() timings=()
for ((i = 1; i <= runs; i++)); do
  for order in "${orders[@]}"; do
    echo "=== run $i/$runs, order $order, expect $expect"
    ok=1
    if ! lab_up; then
      echo "FAIL: lab_up"; ok=0
    else
      if [[ $expect == fixed ]] && ! lab_start_daemons; then ok=0; fi
      lab_monitor_start
      if ((ok)) && lab_migrate "$order" && lab_observe; then
        learn=$(lab_monitor_first 2 "${LAB_VM_MAC,,} dev vm0 " "$LAB_T_RARP_MS")
        remote1=$(lab_monitor_first 1 "${LAB_VM_MAC,,} dev vx10 dst $LAB_VTEP2 " "$LAB_T_RARP_MS")
        early=$(lab_monitor_first 2 "${LAB_VM_MAC,,} dev vm0 " 0)
        lab_monitor_stop
        if ((early >= 0 && early < LAB_T_RARP_MS)); then
          echo "  INVALID: leaf2 learned the VM's MAC $((LAB_T_RARP_MS - early)) ms before send-rarp started (VM not silent)"
          ok=0
        fi
        t0=$learn; ((t0 < 0)) && t0=$LAB_T_RARP_MS # reference: first RARP on leaf2
        off=$((t0 - LAB_T_RARP_MS))
        poll=$((LAB_POLLS > 0 ? LAB_SETTLE * 1000 / LAB_POLLS : 0))
        echo "  timings (ms after the first RARP reached leaf2's bridge; send-rarp startup: $off ms):"
        echo "    old port removed:                    $(rel "$LAB_T_PORTDEL_MS" "$t0")"
        echo "    leaf1 fdb entry -> leaf2 VTEP:       $(rel "$remote1" "$t0")"
        echo "    leaf1 MAC-only route via leaf2 seen: $(since "$LAB_T_MAConly")  (vtysh poll every ~$poll ms)"
        echo "    leaf1 no MAC+IP route left:          $(since "$LAB_T_NOMACIP")"
        echo "    leaf1 all MAC+IP routes via leaf2:   $(since "$LAB_T_FIXED")"
        timings+=("$order $(since "$LAB_T_MAConly") $(rel "$remote1" "$t0")")
        echo "  leaf1 final routes for $LAB_VM_MAC (mac ip nexthop origin seq rd):"
        sed 's/^/    /' <<<"$LAB_FINAL"
        if [[ $expect == bug ]]; then
          if ((LAB_T_BUG >= 0)); then echo "  BUG REPRODUCED: leaf1 has only a MAC-only route via $LAB_VTEP2"
          else echo "  bug did NOT reproduce"; ok=0; fi
        else
          if ((LAB_T_FIXED >= 0)); then echo "  FIXED: leaf1 has MAC+IP routes via $LAB_VTEP2 for all addresses"
          else echo "  NOT fixed"; ok=0; fi
        fi
        if lab_client_reach; then r=reachable; else r=unreachable; fi
        echo "  client -> VM (routed via leaf1) after migration: $r"
      else
        echo "FAIL: migration"; ok=0
      fi
      ((ok)) || lab_dump
    fi
    lab_down
    if ((ok)); then ((pass++)); summary+=("run $i $order: ok"); else ((fail++)); summary+=("run $i $order: FAIL"); fi
  done
done
echo "=== summary (expect $expect): $pass passed, $fail failed"
printf '  %s\n' "${summary[@]}"
if ((${#timings[@]})); then
  echo "  ms after first RARP (order, MAC-only route seen on leaf1, leaf1 fdb -> leaf2):"
  printf '    %s\n' "${timings[@]}"
fi
((fail == 0))
