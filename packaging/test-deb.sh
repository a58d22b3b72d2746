#!/usr/bin/env bash
# Tests the .deb `make deb` built: lintian (no error, no warning), what it
# installs where, the systemd unit (systemd-analyze verify), then the
# maintainer scripts through install, upgrade to a newer build, remove and
# purge, with and without systemd, and that purge leaves nothing.
#
# systemd need not run here: each phase runs dpkg in a private mount
# namespace with its own /run (holding /run/systemd/system when the phase
# plays a systemd machine) and a fake systemctl first on PATH that logs its
# calls, and the test asserts the calls: a fresh install only reloads
# systemd (the package starts and enables nothing), an upgrade reloads and
# restarts the daemon if it was running, removal stops it and reloads,
# purge deletes the state under /var/lib. Without /run/systemd/system no
# script calls systemctl at all.
#
# Run as root from the repository root on a machine without rarp-replay
# installed (it builds the upgrade package with packaging/build-deb.sh, so
# Go must be at hand): packaging/test-deb.sh [build/rarp-replay_*.deb]
set -euo pipefail
cd "$(dirname "$0")/.."
fail() { echo "FAIL: $*" >&2; exit 1; }
pkg=rarp-replay
unit=/lib/systemd/system/rarp-replay.service
wants=/etc/systemd/system/multi-user.target.wants/rarp-replay.service
state=/var/lib/private/rarp-replay

# calls asserts the fake systemctl's log since the last reset, one call a
# line, then resets it.
calls() {
  local what=$1; shift
  local want got
  want=$(printf '%s\n' "$@")
  got=$(cat "$RR_SYSTEMCTL_LOG")
  [ "$got" = "$want" ] || fail "$what: systemctl calls were
${got:-(none)}
want
${want:-(none)}"
  : > "$RR_SYSTEMCTL_LOG"
}

# phase runs inside `unshare --mount`: $1 is systemd (a machine booted
# with systemd) or none (a container or chroot).
phase() {
  local mode=$1 deb=$2 newdeb=$3
  mount --make-rprivate /
  mount -t tmpfs rr-run /run
  [ "$mode" = systemd ] && mkdir -p /run/systemd/system
  # A policy-rc.d that forbids service actions (as in container images)
  # would make deb-systemd-invoke skip them; this plays a real host.
  if [ -e /usr/sbin/policy-rc.d ]; then
    printf '#!/bin/sh\nexit 0\n' > "$RR_WORK/policy-rc.d"; chmod 755 "$RR_WORK/policy-rc.d"
    mount --bind "$RR_WORK/policy-rc.d" /usr/sbin/policy-rc.d
  fi
  export PATH="$RR_WORK/bin:$PATH"
  : > "$RR_SYSTEMCTL_LOG"; rm -f "$RR_WORK/active"

  echo "== [$mode] install $deb"
  dpkg -i "$deb" >/dev/null
  local reload=(); [ "$mode" = systemd ] && reload=("--system daemon-reload")
  calls "install" "${reload[@]}"
  check_installed
  "$pkg" version | head -n 1 | grep -qxF "rarp-replay $(binver "$deb")" || fail "installed binary is not $(binver "$deb")"

  # The operator enables and starts it, it saves state, and edits the
  # options.
  ln -s "$unit" "$wants"
  mkdir -p "$state"; echo '{}' > "$state/state.json"; ln -s private/rarp-replay /var/lib/rarp-replay
  echo '# site edit' >> /etc/default/rarp-replay
  [ "$mode" = systemd ] && systemctl start rarp-replay.service && : > "$RR_SYSTEMCTL_LOG"

  echo "== [$mode] upgrade to $newdeb"
  dpkg -i "$newdeb" >/dev/null
  if [ "$mode" = systemd ]; then
    calls "upgrade of a running daemon" "--system daemon-reload" "try-restart rarp-replay.service"
  else
    calls "upgrade"
  fi
  "$pkg" version | head -n 1 | grep -qxF "rarp-replay $(binver "$newdeb")" || fail "upgrade left $("$pkg" version | head -n 1)"
  [ "$(dpkg-query -W -f '${Version}' "$pkg")" = "$(dpkg-deb -f "$newdeb" Version)" ] || fail "dpkg does not know the new version"
  grep -qxF '# site edit' /etc/default/rarp-replay || fail "upgrade overwrote the edited /etc/default/rarp-replay"
  [ -f "$state/state.json" ] || fail "upgrade lost the state"
  check_installed

  echo "== [$mode] remove"
  dpkg -r "$pkg" >/dev/null
  if [ "$mode" = systemd ]; then
    calls "remove" "stop rarp-replay.service" "--system daemon-reload"
  else
    calls "remove"
  fi
  [ -e /usr/bin/rarp-replay ] && fail "binary left after remove"
  [ -e "$unit" ] && fail "unit left after remove"
  [ -e /etc/default/rarp-replay ] || fail "remove dropped the conffile (only purge may)"
  [ -f "$state/state.json" ] || fail "remove deleted the state (only purge may)"

  echo "== [$mode] purge"
  dpkg -P "$pkg" >/dev/null
  if [ "$mode" = systemd ]; then calls "purge" "--system daemon-reload"; else calls "purge"; fi
  check_gone "$deb" "$newdeb"
}

binver() { dpkg-deb --fsys-tarfile "$1" | tar -xO ./usr/bin/rarp-replay > "$RR_WORK/bin.tmp"; chmod +x "$RR_WORK/bin.tmp"; "$RR_WORK/bin.tmp" version | head -n 1 | cut -d' ' -f2; }

check_installed() {
  local f
  for f in "${files[@]}"; do [ -s "$f" ] || fail "$f not installed"; done
  /usr/bin/rarp-replay --help | grep -q 'listen' || fail "installed binary does not run"
  zcat /usr/share/man/man1/rarp-replay-listen.1.gz | grep -q -- '--probe-timeout' || fail "listen's man page lacks its flags"
  grep -q '^AmbientCapabilities=CAP_NET_RAW CAP_NET_ADMIN$' "$unit" || fail "unit lacks the capabilities"
}

# check_gone: nothing the packages shipped, nor the daemon's state, nor the
# enablement link is left, and dpkg has forgotten the package.
check_gone() {
  local deb f
  for deb in "$@"; do
    while read -r f; do
      [ -e "$f" ] && ! [ -d "$f" ] && fail "$f left after purge"
    done < <(dpkg-deb --fsys-tarfile "$deb" | tar -t | sed 's|^\./|/|')
  done
  for f in /etc/default/rarp-replay /var/lib/rarp-replay "$state" "$wants" /usr/share/doc/rarp-replay /usr/share/lintian/overrides/rarp-replay; do
    { [ -e "$f" ] || [ -L "$f" ]; } && fail "$f left after purge"
  done
  dpkg -s "$pkg" >/dev/null 2>&1 && fail "package still known to dpkg"
  return 0
}

files=(/usr/bin/rarp-replay "$unit" /etc/default/rarp-replay
  /usr/share/doc/rarp-replay/copyright /usr/share/doc/rarp-replay/changelog.Debian.gz
  /usr/share/bash-completion/completions/rarp-replay
  /usr/share/zsh/vendor-completions/_rarp-replay /usr/share/fish/vendor_completions.d/rarp-replay.fish
  /usr/share/lintian/overrides/rarp-replay
  /usr/share/doc/rarp-replay/examples/rarp-replay-alerts.yml /usr/share/doc/rarp-replay/examples/rarp-replay-dashboard.json
  /usr/share/doc/rarp-replay/METRICS.md /usr/share/doc/rarp-replay/TROUBLESHOOTING.md /usr/share/doc/rarp-replay/CONFIG.md)
for c in "" -listen -replay -send-rarp -status -version; do files+=("/usr/share/man/man1/rarp-replay$c.1.gz"); done

if [ "${1:-}" = --phase ]; then
  shift; phase "$@"; exit 0
fi

[ "$(id -u)" = 0 ] || fail "run as root"
deb=${1:-$(ls -t build/rarp-replay_*.deb | head -n 1)}
if dpkg -s "$pkg" >/dev/null 2>&1; then
  echo "SKIP: rarp-replay is already installed here; not touching it" >&2
  exit 0
fi
for f in /var/lib/rarp-replay "$state" "$wants"; do
  { [ -e "$f" ] || [ -L "$f" ]; } && fail "$f exists without the package; not touching it"
done
command -v lintian >/dev/null || fail "lintian is not installed (apt-get install lintian)"
RR_WORK=$(mktemp -d /tmp/rr-debtest.XXXXXX)
export RR_WORK RR_SYSTEMCTL_LOG=$RR_WORK/systemctl.log
cleanup() {
  dpkg -P "$pkg" >/dev/null 2>&1 || true
  rm -rf "$state" "$RR_WORK"; rm -f /var/lib/rarp-replay "$wants"
}
trap cleanup EXIT

echo "== lintian $deb"
out=$(lintian "$deb" 2>&1) || true
if grep -E '^[EW]: ' <<<"$out"; then fail "lintian reports errors or warnings"; fi
deps=$(dpkg-deb -f "$deb" Depends)
[[ $deps =~ libc6\ \(\>=\ [0-9] ]] && [[ $deps =~ libpcap0\.8\ \(\>=\ [0-9] ]] || fail "Depends: $deps (want libc6 and libpcap0.8 with versions)"

echo "== build a newer package to upgrade to"
GO=${GO:-$(command -v go || echo /usr/local/go/bin/go)}
v=$(binver "$deb")
newdeb=$(VERSION="$v+upgrade" DEB_ARCH=$(dpkg-deb -f "$deb" Architecture) GO=$GO OUT=$RR_WORK \
  packaging/build-deb.sh 2>"$RR_WORK/build.log" | tail -n 1) || { cat "$RR_WORK/build.log" >&2; fail "building the upgrade package failed"; }
[ -f "$newdeb" ] || fail "building the upgrade package made no package"
dpkg --compare-versions "$(dpkg-deb -f "$newdeb" Version)" gt "$(dpkg-deb -f "$deb" Version)" ||
  fail "upgrade package $(dpkg-deb -f "$newdeb" Version) is not newer than $(dpkg-deb -f "$deb" Version)"

mkdir -p "$RR_WORK/bin"
cat > "$RR_WORK/bin/systemctl" <<'FAKE'
#!/bin/sh
# Logs its arguments; remembers whether the daemon runs, for is-active.
echo "$*" >> "$RR_SYSTEMCTL_LOG"
case "$*" in
*is-active*) [ -e "$RR_WORK/active" ]; exit ;;
"start rarp-replay.service") touch "$RR_WORK/active" ;;
"stop rarp-replay.service") rm -f "$RR_WORK/active" ;;
esac
exit 0
FAKE
chmod 755 "$RR_WORK/bin/systemctl"

unshare --mount "$0" --phase none "$deb" "$newdeb"
unshare --mount "$0" --phase systemd "$deb" "$newdeb"

echo "== systemd-analyze verify (installed)"
dpkg -i "$deb" >/dev/null
# verify runs man for Documentation=; only where man pages are installed.
man=yes
{ command -v man >/dev/null && [ -e /usr/share/man/man1/rarp-replay-listen.1.gz ]; } || man=no
out=$(systemd-analyze verify --man=$man "$unit" 2>&1) || fail "systemd-analyze verify: $out"
# verify also prints notes about other units on the machine; none may name ours.
if grep -i 'rarp-replay' <<<"$out"; then fail "systemd-analyze verify complained about the unit"; fi
dpkg -P "$pkg" >/dev/null
check_gone "$deb"
echo "PASS: lintian clean; installs, upgrades, removes and purges cleanly, with and without systemd"
