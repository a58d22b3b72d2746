#!/usr/bin/env bash
# Installs the .deb `make deb` built, checks what it put where, verifies the
# systemd unit, then removes and purges it and checks nothing is left.
# The package starts nothing on install. Run as root on a machine without
# rarp-replay installed: sudo packaging/test-deb.sh [build/rarp-replay_*.deb]
set -euo pipefail
deb=${1:-$(ls build/rarp-replay_*.deb | tail -n 1)}
fail() { echo "FAIL: $*" >&2; exit 1; }
[ "$(id -u)" = 0 ] || fail "run as root"
if dpkg -s rarp-replay >/dev/null 2>&1; then
  echo "SKIP: rarp-replay is already installed here; not touching it" >&2
  exit 0
fi
cleanup() { dpkg -P rarp-replay >/dev/null 2>&1 || true; }
trap cleanup EXIT

files=(/usr/bin/rarp-replay /lib/systemd/system/rarp-replay.service /etc/default/rarp-replay
  /usr/share/doc/rarp-replay/reference.txt /usr/share/bash-completion/completions/rarp-replay
  /usr/share/zsh/vendor-completions/_rarp-replay /usr/share/fish/vendor_completions.d/rarp-replay.fish)

echo "== dpkg -i $deb"
dpkg -i "$deb"
for f in "${files[@]}"; do [ -e "$f" ] || fail "$f not installed"; done
/usr/bin/rarp-replay --help | grep -q 'listen' || fail "installed binary does not run"
grep -q 'rarp-replay listen' /usr/share/doc/rarp-replay/reference.txt || fail "reference lacks listen"
pgrep -x rarp-replay >/dev/null && fail "installing started the daemon"

echo "== systemd-analyze verify"
out=$(systemd-analyze verify /lib/systemd/system/rarp-replay.service 2>&1) || fail "systemd-analyze verify: $out"
# verify also prints notes about other units on the machine; none may name ours.
if grep -i 'rarp-replay' <<<"$out"; then fail "systemd-analyze verify complained about the unit"; fi
grep -q '^AmbientCapabilities=CAP_NET_RAW CAP_NET_ADMIN$' /lib/systemd/system/rarp-replay.service || fail "unit lacks the capabilities"

echo "== dpkg -r"
dpkg -r rarp-replay
[ -e /usr/bin/rarp-replay ] && fail "binary left after remove"
[ -e /lib/systemd/system/rarp-replay.service ] && fail "unit left after remove"
[ -e /etc/default/rarp-replay ] || fail "remove dropped the conffile (only purge may)"
echo "== dpkg -P"
dpkg -P rarp-replay
for f in "${files[@]}"; do [ -e "$f" ] && fail "$f left after purge"; done
dpkg -s rarp-replay >/dev/null 2>&1 && fail "package still known to dpkg"
echo "PASS: installs, verifies, removes and purges cleanly"
