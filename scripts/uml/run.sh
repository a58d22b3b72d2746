#!/usr/bin/env bash
# Runs a command inside user-mode Linux (UML), for tests that need kernel
# features the host kernel lacks (802.1Q vlan devices, bridge VLAN
# filtering, VRF, bond, dummy, ...). The guest's root file system is the
# host's, read-only; the command runs as root in the caller's directory and
# its stdout and stderr come back on this script's stdout; the script exits
# with the command's exit status. See scripts/uml/README.md.
#
#   scripts/uml/run.sh [options] -- COMMAND [ARGS...]
#
# Options:
#   --mem SIZE        guest memory (default 1500M; UML_MEM)
#   --timeout SECS    kill the guest after SECS seconds, exit 124
#                     (default 600; UML_TIMEOUT)
#   -e, --env K[=V]   set K in the command's environment (K alone: the
#                     caller's value); repeatable
#   --rw DIR          mount the host directory DIR read-write at the same
#                     path in the guest (for output files); repeatable
#   --modules LIST    load these kernel modules too (space or comma separated)
#   --dmesg           print the guest kernel's log after the command
#   -v, --verbose     print the guest's boot log
#   -q, --quiet       no "uml:" status lines on stderr
#
# Exit status: the command's; 124 on timeout; 125 when the guest did not
# start or gave no result; 127 when user-mode-linux or kmod is missing;
# 2 on a usage error; 130/143 on SIGINT/SIGTERM (the guest is killed).
#
# Environment: UML_LINUX (the UML kernel, default linux.uml), UML_WORKDIR
# (where the per-run directory is made, default /var/tmp), UML_MEMDIR (where
# UML keeps its memory file, default /dev/shm if it has room), UML_FPU
# (auto, xstate or fxsave; see README.md).
set -uo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
prog=${0##*/}

usage() {
	sed -n '/^#   scripts\/uml\/run.sh/,/^# Exit status/p' "${BASH_SOURCE[0]}" | sed '$d; s/^# \{0,1\}//' >&2
	exit "${1:-2}"
}
note() { [ "$quiet" = 1 ] || printf 'uml: %s\n' "$*" >&2; }
die() { printf '%s: %s\n' "$prog" "$*" >&2; exit 125; }
bad() { printf '%s: %s\n' "$prog" "$*" >&2; exit 2; }

mem=${UML_MEM:-1500M}
timeout=${UML_TIMEOUT:-600}
quiet=0 verbose=0 dmesg=0
envs=() rws=() modules_extra=""
while [ $# -gt 0 ]; do
	case $1 in
	--mem) [ $# -ge 2 ] || usage; mem=$2; shift 2 ;;
	--mem=*) mem=${1#*=}; shift ;;
	--timeout) [ $# -ge 2 ] || usage; timeout=$2; shift 2 ;;
	--timeout=*) timeout=${1#*=}; shift ;;
	-e | --env) [ $# -ge 2 ] || usage; envs+=("$2"); shift 2 ;;
	--env=*) envs+=("${1#*=}"); shift ;;
	--rw) [ $# -ge 2 ] || usage; rws+=("$2"); shift 2 ;;
	--rw=*) rws+=("${1#*=}"); shift ;;
	--modules) [ $# -ge 2 ] || usage; modules_extra="$modules_extra ${2//,/ }"; shift 2 ;;
	--modules=*) v=${1#*=}; modules_extra="$modules_extra ${v//,/ }"; shift ;;
	--dmesg) dmesg=1; shift ;;
	-v | --verbose) verbose=1; shift ;;
	-q | --quiet) quiet=1; shift ;;
	-h | --help) usage 0 ;;
	--) shift; break ;;
	-*) printf '%s: unknown option %s\n' "$prog" "$1" >&2; usage ;;
	*) break ;;
	esac
done
[ $# -gt 0 ] || usage
[[ $timeout =~ ^[0-9]+$ ]] && [ "$timeout" -gt 0 ] || bad "--timeout: want seconds, got $timeout"
[[ $mem =~ ^([0-9]+)([KkMmGg]?)$ ]] || bad "--mem: want a size like 1500M or 2G, got $mem"
case ${BASH_REMATCH[2]} in
"") mem_kib=$((BASH_REMATCH[1] / 1024)) ;;
[Kk]) mem_kib=${BASH_REMATCH[1]} ;;
[Mm]) mem_kib=$((BASH_REMATCH[1] * 1024)) ;;
[Gg]) mem_kib=$((BASH_REMATCH[1] * 1024 * 1024)) ;;
esac

linux=$(command -v "${UML_LINUX:-linux.uml}" 2>/dev/null) || linux=""
if [ -z "$linux" ] || [ ! -x "$linux" ]; then
	echo "user-mode-linux is not installed: apt-get install user-mode-linux kmod"
	exit 127
fi
if [ ! -x /usr/sbin/modprobe ] && [ ! -x /sbin/modprobe ]; then
	echo "kmod is not installed: apt-get install user-mode-linux kmod"
	exit 127
fi
command -v perl >/dev/null || die "perl is missing (Debian: perl-base)"
[ -d /usr/lib/uml/modules ] || note "no /usr/lib/uml/modules: the guest loads no kernel modules"
case "$here" in *[[:space:]]*) die "the path $here contains white space: UML's command line cannot carry it" ;; esac

# The per-run directory: the command, its environment and the configuration
# go in, the result file comes out (the guest mounts it read-write).
workroot=${UML_WORKDIR:-/var/tmp}
work=$(mktemp -d "$workroot/uml-run.XXXXXXXX") || die "cannot create a directory in $workroot"
case "$work" in *[[:space:],]*) rm -rf "$work"; die "UML_WORKDIR must not contain white space or commas" ;; esac

pg=""  # the launcher's PID (it kills UML when told to)
fl=""  # the console filter's PID
cleanup() {
	if [ -n "$pg" ]; then kill -TERM "$pg" 2>/dev/null; wait "$pg" 2>/dev/null; fi
	if [ -n "$fl" ]; then kill "$fl" 2>/dev/null; wait "$fl" 2>/dev/null; fi
	rm -rf "$work"
}
on_signal() {
	trap - INT TERM HUP
	note "$1: killing the guest"
	cleanup
	trap - EXIT
	[ "$1" = INT ] && exit 130
	exit 143
}
trap cleanup EXIT
trap 'on_signal INT' INT
trap 'on_signal TERM' TERM
trap 'on_signal HUP' HUP

# The command, run by bash in the guest.
{
	printf 'cd -- %q || exit 126\n' "$PWD"
	printf 'exec'
	printf ' %q' "$@"
	printf '\n'
} >"$work/cmd.sh"

# Its environment.
for kv in "${envs[@]}"; do
	case $kv in
	*=*) k=${kv%%=*} v=${kv#*=} ;;
	*) k=$kv; [ -n "${!k+x}" ] || continue; v=${!k} ;;
	esac
	[[ $k =~ ^[A-Za-z_][A-Za-z0-9_]*$ ]] || bad "--env: bad variable name $k"
	printf 'export %s=%q\n' "$k" "$v"
done >"$work/env"

# Host directories the guest mounts: /tmp and /run get a tmpfs in the
# guest, so the caller's directory and the command's directory, if there,
# are mounted from the host read-only; --rw directories read-write.
hidden() { case $1 in /tmp | /tmp/* | /run | /run/* | /var/run/* | /dev/shm/*) return 0 ;; esac; return 1; }
{
	hidden "$PWD" && printf 'ro %s\n' "$PWD"
	case $1 in /*) d=$(dirname "$1"); hidden "$d" && [ "$d" != "$PWD" ] && printf 'ro %s\n' "$d" ;; esac
	for d in "${rws[@]}"; do
		[ -d "$d" ] || bad "--rw $d: not a directory"
		d=$(cd "$d" && pwd)
		case "$d" in *,*) bad "--rw $d: hostfs cannot mount a path with a comma" ;; esac
		printf 'rw %s\n' "$d"
	done
} >"$work/mounts"

token=$(od -An -N12 -tx1 /dev/urandom | tr -d ' \n')
# The netlink families vishvananda/netlink opens (xfrm_user, nfnetlink) too.
modules="ipv6 8021q bridge veth vrf macvlan vxlan bonding dummy sch_ingress cls_flower act_gact xfrm_user nfnetlink $modules_extra"
{
	printf 'token=%q\n' "$token"
	printf 'modules=%q\n' "$modules"
	printf 'dmesg=%q\n' "$dmesg"
} >"$work/config"

# UML's memory file: /dev/shm when it is a tmpfs with room for the guest's
# memory (Docker's default 64M is not), else the per-run directory.
memdir=${UML_MEMDIR:-}
if [ -z "$memdir" ]; then
	memdir=$work
	if [ "$(stat -f -c %T /dev/shm 2>/dev/null)" = tmpfs ]; then
		avail=$(df -Pk /dev/shm 2>/dev/null | awk 'NR == 2 { print $4 }')
		[ "${avail:-0}" -gt "$mem_kib" ] && memdir=/dev/shm
	fi
fi

# The launcher forks UML (with the seccomp filter in FXSAVE mode, see
# below) and waits for it. UML moves itself into a session of its own and
# forks helper processes; the launcher is a child subreaper, so all of them
# stay its descendants, and it kills them (by PID, SIGKILL) and reaps them
# when UML exits, when the timeout passes (it creates WORK/timed-out
# first), on SIGINT/SIGTERM/SIGHUP, or when this script dies (it removes
# WORK then). UML itself
# dies with the launcher (PR_SET_PDEATHSIG) should the launcher be killed.
launcher='
use strict; use warnings; use POSIX (); use Time::HiRes qw(time);
my ($timeout, $work, $fxsave, @cmd) = @ARGV;
syscall(157, 36, 1, 0, 0, 0) == 0 or die "prctl(PR_SET_CHILD_SUBREAPER): $!\n";
my $parent = getppid();
my $stop = "";
$SIG{$_} = sub { $stop ||= "signal" } for qw(INT TERM HUP);
my $pid = fork() // die "fork: $!\n";
if ($pid == 0) {
	syscall(157, 1, 9, 0, 0, 0);   # PR_SET_PDEATHSIG, SIGKILL
	if ($fxsave) {
		# ptrace(PTRACE_GETREGSET or PTRACE_SETREGSET, pid, NT_X86_XSTATE, ...)
		# fails with EIO: UML then uses PTRACE_GETFPREGS/SETFPREGS.
		my @f = ([0x20,0,0,4], [0x15,0,7,0xc000003e],   # arch == x86_64
			[0x20,0,0,0], [0x15,0,5,101],              # nr == ptrace
			[0x20,0,0,16], [0x15,1,0,0x4204], [0x15,0,2,0x4205],
			[0x20,0,0,32], [0x15,1,0,0x202],           # addr == NT_X86_XSTATE
			[0x06,0,0,0x7fff0000], [0x06,0,0,0x00050005]);
		my $prog = join "", map { pack "SCCL", @$_ } @f;
		my $fprog = pack "S x6 J", scalar(@f), unpack("J", pack("p", $prog));
		syscall(157, 38, 1, 0, 0, 0) == 0 or die "prctl(PR_SET_NO_NEW_PRIVS): $!\n";
		syscall(157, 22, 2, $fprog, 0, 0) == 0 or die "prctl(PR_SET_SECCOMP): $!\n";
	}
	exec { $cmd[0] } @cmd or die "exec $cmd[0]: $!\n";
}
# Every process descending from the launcher.
sub descendants {
	my %ppid;
	for my $d (glob "/proc/[0-9]*") {
		my ($n) = $d =~ m{(\d+)$};
		open(my $f, "<", "$d/stat") or next;
		my $s = <$f> // next;
		$s =~ s/^.*\) //;
		$ppid{$n} = (split " ", $s)[1];
	}
	my @out;
	for my $n (keys %ppid) {
		my $p = $n;
		for (1 .. 64) {
			$p = $ppid{$p} // 0;
			if ($p == $$) { push @out, $n; last }
			last if $p <= 1;
		}
	}
	return @out;
}
my ($status, $deadline) = (undef, time() + $timeout);
while (!$stop) {
	while ((my $p = waitpid(-1, POSIX::WNOHANG())) > 0) {
		$status = $? if $p == $pid;
	}
	last if defined $status;
	if (time() >= $deadline) {
		if (open(my $f, ">", "$work/timed-out")) { close($f) }
		$stop = "timeout";
	}
	$stop ||= "orphaned" if getppid() != $parent;
	select(undef, undef, undef, 0.2) unless $stop;
}
for (1 .. 100) {
	my @d = descendants();
	kill "KILL", @d if @d;
	while ((my $p = waitpid(-1, POSIX::WNOHANG())) > 0) {
		$status = $? if $p == $pid && !defined $status;
	}
	last if !@d && waitpid(-1, POSIX::WNOHANG()) < 0;
	select(undef, undef, undef, 0.05);
}
# This script is gone and will not clean up: remove its directory.
system("rm", "-rf", "--", $work) if $stop eq "orphaned";
exit 124 if $stop eq "timeout";
exit 143 if $stop;
exit($status & 127 ? 128 + ($status & 127) : $status >> 8);
'

# The console filter: what the guest prints before the start line (the
# boot log) goes to a file (init.sh's warnings to stderr too); after it, everything goes to stdout up to the
# result line, whose status it writes to a file. Exit status: 0 result
# seen, 1 started but no result, 2 never started, 3 UML could not set the
# guest's FPU registers (xstate; retry in FXSAVE mode).
filter='
use strict; use warnings; use Time::HiRes qw(time);
my ($token, $bootlog, $rcfile, $modfile, $quiet, $t0) = @ARGV;
binmode STDIN; binmode STDOUT; $| = 1;
open(my $log, ">>", $bootlog) or die "$bootlog: $!\n";
my ($state, $xstate, $tstart) = (0, 0, 0);
while (my $l = <STDIN>) {
	if ($state == 0) {
		print $log $l;
		print STDERR $l if $l =~ /^uml-init: /;
		$xstate = 1 if $l =~ /ptrace set fp regs failed/;
		if ($l =~ /UML-MODULES \Q$token\E failed=(.*?)\r?$/) {
			if (open(my $m, ">", $modfile)) { print $m "$1\n"; close($m) }
		}
		if ($l =~ /UML-START \Q$token\E\r?$/) {
			$state = 1; $tstart = time();
			printf STDERR "uml: guest up after %.1f s\n", $tstart - $t0 unless $quiet;
		}
	} elsif ($state == 1) {
		if ($l =~ /^(.*)UML-RESULT \Q$token\E rc=(\d+)\r?$/s) {
			print $1;
			if (open(my $r, ">", $rcfile)) { print $r "$2\n"; close($r) }
			$state = 2;
			printf STDERR "uml: command exited with status %d after %.1f s\n", $2, time() - $tstart unless $quiet;
		} else {
			print $l;
		}
	} else {
		print $log $l;
	}
}
exit($state == 2 ? 0 : $state == 1 ? 1 : $xstate ? 3 : 2);
'

# FXSAVE mode. UML 6.1 saves and restores a guest process's FPU state with
# PTRACE_SETREGSET(NT_X86_XSTATE) using a fixed-size buffer; hosts whose
# XSAVE area is larger (AVX-512, AMX) refuse it (EFAULT) and UML aborts
# ("ptrace set fp regs failed, errno = 14"). With the seccomp filter above
# UML falls back to the FXSAVE format (x87 and SSE registers only), and the
# guest's AVX/AVX-512 registers are lost at every page fault. So in this
# mode every guest process is told not to use AVX: glibc's string functions
# (GLIBC_TUNABLES) and Go's runtime and libraries (GODEBUG).
# cpu.all=off: every optional x86 feature, as internal/cpu and x/sys/cpu
# both know "all" (naming single AVX-512 features makes one of them warn).
fx_godebug=cpu.all=off
fx_tunables=glibc.cpu.hwcaps=-AVX,-AVX2,-FMA,-AVX512F,-AVX512CD,-AVX512BW,-AVX512DQ,-AVX512VL,-AVX_Fast_Unaligned_Load

t0=$(date +%s.%N)
deadline=$(($(date +%s) + timeout))

# boot FXSAVE: one guest run; returns the filter's status (see above).
boot() {
	local fxsave=$1 left args
	left=$((deadline - $(date +%s)))
	[ "$left" -gt 0 ] || left=1
	rm -f "$work/console" "$work/rc" "$work/rc.guest" "$work/boot.log" "$work/modules-failed"
	rm -rf "$work/uml"
	mkdir "$work/uml"
	mkfifo "$work/console" || die "mkfifo $work/console failed"
	args=(mem="$mem" root=/dev/root rootfstype=hostfs rootflags=/ ro
		init="$here/init.sh" uml_dir="$work/uml" con=null con0=null,fd:1
		UML_XDIR="$work")
	[ "$fxsave" = 1 ] && args+=(GODEBUG="$fx_godebug" GLIBC_TUNABLES="$fx_tunables")
	TMPDIR=$memdir perl -e "$launcher" "$left" "$work" "$fxsave" "$linux" "${args[@]}" \
		</dev/null >"$work/console" 2>>"$work/uml.stderr" &
	pg=$!
	perl -e "$filter" "$token" "$work/boot.log" "$work/rc" "$work/modules-failed" "$quiet" "$t0" \
		<"$work/console" &
	fl=$!
	wait "$pg"
	pg=""
	wait "$fl"
	local st=$?
	fl=""
	return "$st"
}

# UML 6.1's XSAVE buffer is 832 bytes (x87, SSE, AVX): a host that enabled
# AVX-512, protection keys or AMX has a larger one, so UML fails there
# (FXSAVE mode right away). Elsewhere try XSAVE first and fall back.
fpu=${UML_FPU:-auto}
if [ "$fpu" = auto ] && grep -qwE 'avx512f|ospke|amx_tile' /proc/cpuinfo 2>/dev/null; then
	fpu=fxsave
	[ "$verbose" = 1 ] && note "this CPU's XSAVE area is larger than UML 6.1's: FXSAVE mode (no AVX in the guest)"
fi
case $fpu in
auto | xstate) boot 0; st=$? ;;
fxsave) st=3 ;;
*) bad "UML_FPU: want auto, xstate or fxsave, got $fpu" ;;
esac
if [ "$st" = 3 ] && [ "$fpu" != xstate ] && [ ! -e "$work/timed-out" ]; then
	[ "$verbose" = 1 ] && [ "$fpu" = auto ] && note "UML cannot set this CPU's XSAVE state: FXSAVE mode (no AVX in the guest)"
	boot 1
	st=$?
fi
[ "$st" = 3 ] && note "UML could not set the guest's FPU registers (ptrace set fp regs failed); UML_FPU=fxsave works around it"

total=$(awk -v a="$t0" -v b="$(date +%s.%N)" 'BEGIN { printf "%.1f", b - a }')
if [ "$verbose" = 1 ]; then
	[ -s "$work/boot.log" ] && sed 's/^/uml-boot: /' "$work/boot.log" >&2
	[ -s "$work/uml.stderr" ] && sed 's/^/uml-stderr: /' "$work/uml.stderr" >&2
fi
if [ -s "$work/modules-failed" ] && [ -n "$(tr -d ' \n' <"$work/modules-failed")" ]; then
	note "kernel modules not loaded: $(cat "$work/modules-failed")"
fi
if [ -e "$work/timed-out" ]; then
	printf '%s: timeout after %s s: killed the guest\n' "$prog" "$timeout" >&2
	exit 124
fi
# The status from the console; else from the file the guest wrote.
rc=""
[ -s "$work/rc" ] && rc=$(tr -dc 0-9 <"$work/rc")
[ -z "$rc" ] && [ -s "$work/rc.guest" ] && rc=$(tr -dc 0-9 <"$work/rc.guest")
if [ -z "$rc" ]; then
	printf '%s: no result from the guest (filter status %s); its console and UML'"'"'s stderr:\n' "$prog" "$st" >&2
	if [ -s "$work/boot.log" ]; then
		grep -aE 'uml-init:|[Pp]anic|failed|[Ee]rror' "$work/boot.log" | tail -n 10 | sed 's/^/uml-boot: /' >&2
		echo "uml-boot: ..." >&2
		tail -n 20 "$work/boot.log" | sed 's/^/uml-boot: /' >&2
	fi
	[ -s "$work/uml.stderr" ] && tail -n 20 "$work/uml.stderr" | sed 's/^/uml-stderr: /' >&2
	exit 125
fi
note "total ${total} s"
exit "$rc"
