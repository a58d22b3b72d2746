# Helpers the benchmark scripts source (bash).

# bench_cpu PID: the user and system CPU time of PID so far, in clock ticks
# (bench_tck of them per second).
bench_cpu() { awk '{ print $14 + $15 }' "/proc/$1/stat"; }
bench_tck=$(getconf CLK_TCK)

# bench_wait_listening PID LOG NAME: wait until the daemon PID has logged
# (JSON, to LOG) that it listens. If it exits first, or is not ready within
# 60 s, print its log and "NAME: ..." and exit 1: a broken run.
bench_wait_listening() {
  local end=$((SECONDS + 60))
  until grep -q '"msg":"listening"' "$2"; do
    if ! kill -0 "$1" 2>/dev/null || ((SECONDS > end)); then
      cat "$2" >&2
      echo "$3: the daemon exited or was not ready within 60 s" >&2
      exit 1
    fi
    sleep 0.005
  done
}
