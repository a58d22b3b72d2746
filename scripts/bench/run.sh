#!/usr/bin/env bash
# Every benchmark of docs/PERFORMANCE.md, in one command, as root:
#   sudo scripts/bench/run.sh [bin/rarp-replay] [docs/PERFORMANCE.md]
# Each benchmark's table replaces the previous one in the document, between
# its marker comments (<!-- bench:NAME:begin --> ... <!-- bench:NAME:end -->;
# a missing pair is appended at the end), together with the machine it ran
# on. Sections with other names (bench:fabric, written by make bench-fabric)
# are left alone. A benchmark never fails on a time: the exit status is
# non-zero only when a run broke (a script failed, no probe seen at all, ...);
# the others still run and their tables are still written.
set -uo pipefail
cd "$(dirname "$0")/../.."
bin=${1:-bin/rarp-replay} doc=${2:-docs/PERFORMANCE.md}
export PATH=$PATH:/usr/local/go/bin
go build -o "$bin" ./cmd/rarp-replay || exit 1
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
broken=()

# section NAME FILE: put FILE's contents between NAME's markers in $doc.
section() {
  local begin="<!-- bench:$1:begin -->" end="<!-- bench:$1:end -->"
  local nb ne
  nb=$(grep -cxF "$begin" "$doc") ne=$(grep -cxF "$end" "$doc")
  if [ "$nb" -eq 0 ] && [ "$ne" -eq 0 ]; then
    printf '\n%s\n%s\n' "$begin" "$end" >>"$doc"
  elif [ "$nb" -ne 1 ] || [ "$ne" -ne 1 ]; then
    echo "run.sh: $doc: bench:$1 needs exactly one begin and one end marker; section not written" >&2
    broken+=("$1-markers")
    return
  fi
  awk -v b="$begin" -v e="$end" -v f="$2" '
    $0 == b { print; while ((getline line < f) > 0) print line; skip = 1; next }
    $0 == e { skip = 0 }
    !skip' "$doc" >"$out/doc" && cat "$out/doc" >"$doc"
}

# bench NAME TITLE CMD...: run one benchmark, its output on the terminal,
# its table (written by the script to $BENCH_TABLE, else its output in a
# block) into the document.
bench() {
  local name=$1 title=$2; shift 2
  echo "== $title"
  local table=$out/$name.table
  rm -f "$table"
  BENCH_TABLE=$table "$@" 2>&1 | tee "$out/$name.log"
  local rc=${PIPESTATUS[0]}
  {
    echo "**$title** (\`${SHOWN:-$*}\`, $(date -u +%Y-%m-%d))"
    echo
    if [ "$rc" -ne 0 ]; then
      echo "Broken run (exit status $rc); its output:"
      echo
      echo '```'; tail -20 "$out/$name.log"; echo '```'
    elif [ -s "$table" ]; then
      cat "$table"
    else
      echo '```'; cat "$out/$name.log"; echo '```'
    fi
  } >"$out/$name.md"
  section "$name" "$out/$name.md"
  [ "$rc" -eq 0 ] || broken+=("$name")
}

{
  echo "Last \`make bench\`: $(date -u '+%Y-%m-%d %H:%M UTC'), on $(awk -F': ' '/^model name/ { print $2; exit }' /proc/cpuinfo)," \
    "$(nproc) CPUs, $(awk '/^MemTotal/ { printf "%.0f GiB", $2 / 1048576 }' /proc/meminfo), Linux $(uname -r)," \
    "$(go version | awk '{ print $3 }'), $("$bin" version | sed -n 's/^libpcap: *//p'), rarp-replay $("$bin" version | head -1 | awk '{ print $2 }')" \
    "($(git rev-parse --short HEAD 2>/dev/null || echo unknown)$(git diff --quiet HEAD -- 2>/dev/null || echo ', with uncommitted changes'))."
  echo "Load average when it started: $(cut -d' ' -f1-3 /proc/loadavg) (timings on a shared machine are noisy; ratios from one interleaved run are what to compare)."
} >"$out/machine.md"
section machine "$out/machine.md"

resolver() {
  go test -run '^$' -bench BenchmarkResolver -benchtime 300x ./neigh | tee "$out/resolver.txt" | grep Benchmark || return 1
  {
    echo "| benchmark | per lookup |"
    echo "| --- | --- |"
    awk '/^Benchmark/ { v = $3; u = $4; if (u == "ns/op") { if (v >= 1e6) s = sprintf("%.2f ms", v / 1e6); else if (v >= 1e3) s = sprintf("%.2f µs", v / 1e3); else s = v " ns" } print "| " $1 " | " s " |" }' "$out/resolver.txt"
  } >"$BENCH_TABLE"
}
bench latency "RARP → first probe on the wire, 100k bindings, against the C, Go, libpcap and socket floors" scripts/bench/latency.sh "$bin" 100000 200 5
SHOWN="go test -run '^\$' -bench BenchmarkResolver -benchtime 300x ./neigh" bench resolver "Resolver cost per lookup: netlink mirror vs /proc/net/arp per RARP" resolver
bench mirror "Mirror at scale: 100k bindings, then 10k changes/s" scripts/bench/mirror-scale.sh "$bin" 100000 10000 3
bench mass "Mass migration: 2,000 VMs × 5 RARP rounds within 1 s on one port" scripts/bench/mass.sh "$bin" 2000 3
bench shutdown "Shutdown: SIGTERM → exit with 200 veth pairs (400 ports)" scripts/shutdown-time.sh "$bin" 200 3
bench replies "Unsolicited answers on a busy leaf: 10,000 ARP replies and NAs per second on one port, no migration" scripts/bench/replies.sh "$bin" 10000 10 3
bench tapmem "Memory with 50 tap ports (one VM each): the tap ring against every port's ring" scripts/bench/tap-memory.sh "$bin" 50
echo "tables written to $doc"
if [ ${#broken[@]} -gt 0 ]; then
  echo "broken runs: ${broken[*]}" >&2
  exit 1
fi
