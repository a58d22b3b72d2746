#!/bin/bash
# Guest init of scripts/uml/run.sh: runs as PID 1 inside user-mode Linux.
#
# The root file system is the host's, read-only (hostfs). This script mounts
# proc, sysfs, tmpfs on /run, /tmp and /dev/shm, mounts run.sh's exchange
# directory (UML_XDIR, a host directory) read-write, loads the kernel modules
# the tests need, brings lo up, prints UML-START <token>, runs the command
# run.sh wrote to $UML_XDIR/cmd.sh with its stdout and stderr going to the
# console (the host's run.sh streams them), then prints
#   UML-RESULT <token> rc=<status>
# and powers the guest off. Lines starting with "uml-init:" are warnings
# run.sh passes on to its stderr. PID 1 must not exit (the kernel panics), so
# nothing here uses set -e and every path ends in poweroff.
MODTREE=/run/uml/modtree

export PATH=/usr/local/go/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
umask 022

say() { printf 'uml-init: %s\n' "$*"; }

poweroff_now() {
	sync
	[ -n "${rwmounts:-}" ] && for d in $rwmounts; do umount "$d" 2>/dev/null; done
	echo o >/proc/sysrq-trigger 2>/dev/null
	sleep 5
	poweroff -f 2>/dev/null || halt -f 2>/dev/null
	while :; do sleep 3600; done
}

# The result line; $token is known only to run.sh and this script.
finish() {
	rc=$1
	[ -d "$X" ] && echo "$rc" >"$X/rc.guest" 2>/dev/null
	printf 'UML-RESULT %s rc=%d\n' "$token" "$rc"
	poweroff_now
}

xdir=${UML_XDIR:-}
if [ -z "$xdir" ] || [ ! -r "$xdir/config" ]; then
	# Not started by run.sh: nothing to run.
	say "no UML_XDIR/config; powering off"
	mount -t proc proc /proc
	poweroff_now
fi
# Read the configuration while the host's view of UML_XDIR is visible
# (it may lie under /tmp, which gets a tmpfs below).
# shellcheck source=/dev/null
. "$xdir/config"	# token, modules, dmesg
unset UML_XDIR mem uml_dir

mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t tmpfs -o mode=0755 tmpfs /run
mount -t tmpfs -o mode=1777 tmpfs /tmp
mkdir -p /dev/shm /dev/pts
mount -t tmpfs -o mode=1777 tmpfs /dev/shm
mount -t devpts -o newinstance,ptmxmode=0666 devpts /dev/pts
[ -e /dev/ptmx ] || ln -s pts/ptmx /dev/ptmx
[ -e /dev/fd ] || ln -s /proc/self/fd /dev/fd
[ -e /dev/stdin ] || ln -s /proc/self/fd/0 /dev/stdin
[ -e /dev/stdout ] || ln -s /proc/self/fd/1 /dev/stdout
[ -e /dev/stderr ] || ln -s /proc/self/fd/2 /dev/stderr
mkdir -p /run/netns /run/lock /run/uml/x
# The console: no output post-processing (\n stays \n).
stty -opost </dev/console 2>/dev/null

# The exchange directory, read-write: the result file goes there.
X=$xdir
if mount -t hostfs -o "$xdir" none /run/uml/x; then
	X=/run/uml/x
	rwmounts="/run/uml/x"
else
	say "cannot mount $xdir read-write (hostfs); the result comes only on the console"
fi

# Host directories the command needs: the caller's directory and the
# command's when they are under /tmp or /run (hidden by the tmpfs above),
# and --rw directories (read-write).
while read -r mode dir; do
	[ -n "$dir" ] || continue
	mkdir -p "$dir" 2>/dev/null
	if mount -t hostfs -o "$mode,$dir" none "$dir"; then
		[ "$mode" = rw ] && rwmounts="$dir $rwmounts"
	else
		say "cannot mount host directory $dir ($mode)"
	fi
done <"$X/mounts"

# Kernel modules: from the UML package's tree (there is no /lib/modules).
# The kernel loads more on demand through /run/uml/modprobe. It runs that
# helper with an environment of its own: the helper sets GLIBC_TUNABLES
# again for modprobe (FXSAVE mode, see run.sh; without it modprobe fails
# with "could not insert ...: Invalid argument").
mkdir -p "$MODTREE/lib"
ln -s /usr/lib/uml/modules "$MODTREE/lib/modules"
{
	echo '#!/bin/sh'
	[ -n "${GLIBC_TUNABLES:-}" ] && printf "export GLIBC_TUNABLES='%s'\n" "$GLIBC_TUNABLES"
	echo "exec modprobe -d $MODTREE \"\$@\""
} >/run/uml/modprobe
chmod 755 /run/uml/modprobe
echo /run/uml/modprobe >/proc/sys/kernel/modprobe
failed=""
for m in $modules; do
	modprobe -d "$MODTREE" "$m" 2>/dev/null || failed="$failed $m"
done
echo "UML-MODULES $token failed=${failed# }"

ip link set lo up

export HOME=/tmp TMPDIR=/tmp TERM=dumb LANG=C.UTF-8
export GOCACHE=/tmp/.cache/go-build GOPATH=/tmp/go GOTOOLCHAIN=local
# In FXSAVE mode (see run.sh) the kernel command line set GODEBUG and
# GLIBC_TUNABLES (AVX off) for every process, this one included. The
# caller's settings (--env) come after them: the later setting wins.
base_godebug=${GODEBUG:-} base_tunables=${GLIBC_TUNABLES:-}
# shellcheck source=/dev/null
. "$X/env"
if [ -n "$base_godebug" ] && [ "${GODEBUG:-}" != "$base_godebug" ]; then
	export GODEBUG="$base_godebug${GODEBUG:+,$GODEBUG}"
fi
if [ -n "$base_tunables" ] && [ "${GLIBC_TUNABLES:-}" != "$base_tunables" ]; then
	export GLIBC_TUNABLES="$base_tunables${GLIBC_TUNABLES:+:$GLIBC_TUNABLES}"
fi

# Only errors and worse from the kernel on the console while the command runs.
echo 4 >/proc/sys/kernel/printk

echo "UML-START $token"
# The command's stdout and stderr go through a pipe (as in CI, not a tty)
# to the console. A process the command leaves behind could keep the pipe
# open: the reader is stopped 2 s after the command exits.
mkfifo /run/uml/out
cat /run/uml/out >/dev/console &
catpid=$!
# (The braces keep bash's "Killed" job message off the console: the
# status says it.)
{ bash "$X/cmd.sh" >/run/uml/out 2>&1 </dev/null; } 2>/dev/null
rc=$?
for _ in 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17 18 19 20; do
	kill -0 "$catpid" 2>/dev/null || break
	sleep 0.1
done
kill "$catpid" 2>/dev/null
wait "$catpid" 2>/dev/null
if [ "${dmesg:-0}" = 1 ]; then
	echo "---- guest kernel log ----"
	dmesg
fi
finish "$rc"
