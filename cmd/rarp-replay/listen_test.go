package main

import (
	"bufio"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"os"
	"os/exec"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/gopacket/gopacket/layers"
	"github.com/gopacket/gopacket/pcapgo"
	"github.com/rarp-replay/rarp-replay/capture/pcapio"
	"github.com/rarp-replay/rarp-replay/internal/compat"
	"github.com/rarp-replay/rarp-replay/internal/nstest"
	"github.com/rarp-replay/rarp-replay/internal/packet"
	"github.com/rarp-replay/rarp-replay/replay"
)

const (
	sviMAC = "02:00:5e:10:00:01"
	vm1MAC = "02:00:5e:10:00:0a"
	vm2MAC = "02:00:5e:10:00:14"
	vm3MAC = "02:00:5e:10:00:1e"
)

// TestListen is the scenario, end to end, in namespaces it creates:
// a switch with a bridge SVI holding a VM's bindings as NOARP extern_learn
// (as FRR installs remote EVPN bindings), plus one binding to the VM's MAC
// for an address the VM does not own; `listen -i any`; a RARP from the VM.
func TestListen(t *testing.T) {
	compat.Note(t, "bridge-per-vni", compat.Live)
	compat.Note(t, "l3-port", compat.Live)
	nstest.RequireRoot(t)
	t.Run("as root", func(t *testing.T) { testListen(t, nil) })
	// Least privilege: an unprivileged user holding only the two ambient
	// capabilities the systemd unit grants.
	t.Run("as nobody with CAP_NET_RAW and CAP_NET_ADMIN", func(t *testing.T) {
		if _, err := exec.LookPath("setpriv"); err != nil {
			t.Fatal("setpriv (util-linux) is missing")
		}
		testListen(t, []string{"setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups",
			"--inh-caps=-all,+net_raw,+net_admin", "--ambient-caps=+net_raw,+net_admin", "--bounding-set=-all,+net_raw,+net_admin"})
	})
}

func testListen(t *testing.T, as []string) {
	bin := nstest.Binary(t)
	sw := nstest.Namespace(t, "sw")
	vm1 := nstest.Namespace(t, "vm1")
	vm2 := nstest.Namespace(t, "vm2")
	vm3 := nstest.Namespace(t, "vm3")
	park := nstest.Namespace(t, "park") // where vm2's port waits before it appears on the switch

	nstest.Sh(t, `
sw=`+sw+` vm1=`+vm1+` vm2=`+vm2+` vm3=`+vm3+` park=`+park+`
ip -n $sw link add br0 address `+sviMAC+` type bridge
ip netns exec $sw sysctl -qw net.ipv6.conf.br0.accept_dad=0
ip -n $sw link set br0 up
ip -n $sw addr add 192.0.2.1/24 dev br0
ip -n $sw addr add 2001:db8:10::1/64 dev br0 nodad
# A VXLAN port on the bridge: never an access port.
ip -n $sw link add vx0 type vxlan id 10 local 198.18.0.1 dstport 4789 nolearning
ip -n $sw link set vx0 master br0 up
vm() { # vm NS MAC ADDR...
  ns=$1 mac=$2; shift 2
  ip netns exec $ns sysctl -qw net.ipv6.conf.all.accept_dad=0 net.ipv6.conf.default.accept_dad=0
  ip -n $ns link set eth0 address $mac
  for a in "$@"; do
    case $a in *:*) ip -n $ns addr add $a dev eth0 nodad ;; *) ip -n $ns addr add $a dev eth0 ;; esac
  done
  ip -n $ns link set eth0 up
}
ip -n $sw link add vm1 type veth peer name eth0 netns $vm1
ip -n $sw link set vm1 master br0 up
vm $vm1 `+vm1MAC+` 192.0.2.10/24 192.0.2.11/24 2001:db8:10::10/64
ip -n $park link add vm2 type veth peer name eth0 netns $vm2
vm $vm2 `+vm2MAC+` 192.0.2.20/24
for a in 192.0.2.10 192.0.2.11 192.0.2.99 2001:db8:10::10; do
  ip -n $sw neigh replace $a lladdr `+vm1MAC+` dev br0 nud noarp extern_learn
done
ip -n $sw neigh replace 192.0.2.20 lladdr `+vm2MAC+` dev br0 nud noarp extern_learn
# A stand-alone L3 port: its own SVI.
ip -n $sw link add l3p address 02:00:5e:10:00:02 type veth peer name eth0 netns $vm3
ip netns exec $sw sysctl -qw net.ipv6.conf.l3p.accept_dad=0
ip -n $sw link set l3p up
ip -n $sw addr add 198.51.100.1/24 dev l3p
vm $vm3 `+vm3MAC+` 198.51.100.10/24
ip -n $sw neigh replace 198.51.100.10 lladdr `+vm3MAC+` dev l3p nud noarp extern_learn
`)

	monitor := nstest.Start(t, "ip", "-n", sw, "monitor", "neigh")
	vmCapture := t.TempDir() + "/vm1.pcap"
	dump := nstest.Start(t, "ip", "netns", "exec", vm1, "tcpdump", "--immediate-mode", "-i", "eth0", "-Q", "in", "-U", "-n", "-w", vmCapture, "arp or icmp6")
	dump.WaitFor(t, "listening on", 10*time.Second)

	dumpDir, err := os.MkdirTemp("", "rarp-replay-dump-") // not under t.TempDir(), whose parent only root may enter
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dumpDir) })
	os.Chmod(dumpDir, 0o777) // writable for the unprivileged run
	dumpPath := dumpDir + "/neigh.json"
	args := append(append([]string{"netns", "exec", sw}, as...), bin, "listen", "-i", "any", "--dump-neigh", dumpPath,
		"--metrics-addr", "127.0.0.1:9465",
		"--log-format", "json", "--log-level", "debug", "--probe-timeout", "100ms", "--probe-retries", "2")
	listen := nstest.Start(t, "ip", args...)
	listen.WaitFor(t, `"msg":"listening"`, 10*time.Second)

	// Malformed frames and a RARP for a MAC the switch does not know.
	rarp := func(mac string) []byte {
		m, _ := net.ParseMAC(mac)
		b, _ := packet.BuildRARP(m, nil)
		return b
	}
	edit := func(b []byte, i int, v byte) []byte { b = slices.Clone(b); b[i] = v; return b }
	good := rarp(vm1MAC)
	sendFrames(t, vm1, false,
		good[:30],                 // truncated
		edit(good, 21, 4),         // opcode 4 (RARP reply)
		edit(good, 18, 8),         // hlen 8
		edit(good, 37, 0x77),      // target MAC differs from sender
		rarp("02:00:5e:10:00:77"), // unknown MAC
	)

	// The migration: QEMU's five RARPs.
	nstest.Run(t, "ip", "netns", "exec", vm1, bin, "send-rarp", "--mac", vm1MAC, "-i", "eth0")
	waitLocal(t, sw, vm1MAC, "192.0.2.10", "192.0.2.11", "2001:db8:10::10")

	// A second VM whose port appears on the switch after start, with its
	// RARP 10 ms after the port came up. Its remote binding is gone by then,
	// as when zebra processes the old leaf's withdrawal first: the daemon's
	// mirror still remembers it.
	nstest.Run(t, "ip", "-n", sw, "neigh", "del", "192.0.2.20", "dev", "br0")
	// Bridge port events on the VXLAN device (AF_BRIDGE link messages, as
	// FRR, STP and ifupdown2 reloads send all day) must not make it a port.
	nstest.Sh(t, `bridge -n `+sw+` link set dev vx0 learning off
bridge -n `+sw+` link set dev vx0 neigh_suppress on
bridge -n `+sw+` link set dev vx0 state 3`)
	helper := sendFrames(t, vm2, true, rarp(vm2MAC))
	nstest.Run(t, "ip", "-n", park, "link", "set", "vm2", "netns", sw)
	nstest.Run(t, "ip", "-n", sw, "link", "set", "vm2", "master", "br0", "up")
	time.Sleep(10 * time.Millisecond)
	helper.release(t)
	waitLocal(t, sw, vm2MAC, "192.0.2.20")
	// Link events are applied in order: once vm2's port is added, the
	// VXLAN device's events before it have been applied too.
	listen.WaitFor(t, `"msg":"port added","ifname":"vm2"`, 5*time.Second)
	for _, l := range listen.Lines() {
		if strings.Contains(l, `"ifname":"vx0"`) {
			t.Errorf("the VXLAN device was served after bridge port events: %s", l)
		}
	}

	// A VM behind a stand-alone L3 port: the port is its own SVI.
	nstest.Run(t, "ip", "netns", "exec", vm3, bin, "send-rarp", "--mac", vm3MAC, "-i", "eth0", "--count", "1")
	waitLocalOn(t, sw, "l3p", vm3MAC, "198.51.100.10")

	// A port that vanishes is closed, and the daemon keeps listening.
	nstest.Run(t, "ip", "-n", sw, "link", "del", "vm2")
	listen.WaitFor(t, `"msg":"port removed","ifname":"vm2"`, 5*time.Second)

	// Let 192.0.2.99's probes run out (100 + 200 + 400 ms), then stop.
	listen.WaitFor(t, `"192.0.2.99"`, 5*time.Second)
	migrations := waitMigrations(t, listen, 3)
	health := httpGet(t, sw, "http://127.0.0.1:9465/healthz")
	scrape := httpGet(t, sw, "http://127.0.0.1:9465/metrics")
	listen.Stop(t, syscall.SIGTERM, 5*time.Second)
	dump.Stop(t, syscall.SIGINT, 5*time.Second)
	monitor.Stop(t, syscall.SIGTERM, 5*time.Second)

	t.Run("one log line per migration", func(t *testing.T) {
		m := migrations[vm1MAC]
		if m == nil {
			t.Fatalf("no migration line for %s", vm1MAC)
		}
		if got, want := strings.Join(m.Verified, ","), "192.0.2.10,192.0.2.11,2001:db8:10::10"; got != want {
			t.Errorf("verified = %s, want %s", got, want)
		}
		if got := strings.Join(m.Failed, ","); got != "192.0.2.99" {
			t.Errorf("failed = %s, want 192.0.2.99", got)
		}
		if m.Port != "vm1" || m.SVI != "br0" || m.LatencyMS <= 0 {
			t.Errorf("port %q svi %q latency %v ms, want vm1 br0 > 0", m.Port, m.SVI, m.LatencyMS)
		}
		if migrations[vm2MAC] == nil {
			t.Errorf("no migration line for the second VM")
		}
		if m := migrations[vm3MAC]; m == nil || m.Port != "l3p" || m.SVI != "l3p" {
			t.Errorf("stand-alone port migration = %+v, want port and SVI l3p", m)
		}
	})

	t.Run("VM received a probe for each address", func(t *testing.T) {
		got := probesIn(t, vmCapture)
		for _, ip := range []string{"192.0.2.10", "192.0.2.11", "192.0.2.99", "2001:db8:10::10"} {
			if !got[ip] {
				t.Errorf("VM saw no probe for %s (saw %v)", ip, got)
			}
		}
	})

	t.Run("not-owned binding never programmed", func(t *testing.T) {
		for _, l := range monitor.Lines() {
			if strings.HasPrefix(l, "192.0.2.99 ") && !strings.Contains(l, "extern_learn") {
				t.Errorf("neighbor event for the unverified binding: %q", l)
			}
		}
		out := nstest.Run(t, "ip", "-n", sw, "neigh", "show", "192.0.2.99")
		if !strings.Contains(out, "extern_learn") {
			t.Errorf("192.0.2.99 is now %q, want it left extern_learn", out)
		}
		// The monitor did see the verified ones change: it was working.
		if !slices.ContainsFunc(monitor.Lines(), func(l string) bool {
			return strings.HasPrefix(l, "192.0.2.10 ") && strings.Contains(l, "REACHABLE")
		}) {
			t.Errorf("ip monitor saw no event for 192.0.2.10; events:\n%s", strings.Join(monitor.Lines(), "\n"))
		}
	})

	t.Run("mirror dumped in the snapshot format replay reads", func(t *testing.T) {
		f, err := os.Open(dumpPath)
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		ns, err := replay.LoadNeighbors(f)
		if err != nil {
			t.Fatal(err)
		}
		got := map[string]string{}
		for _, n := range ns {
			got[n.Dst] = fmt.Sprintf("%s %s extern_learn=%v", n.Dev, n.LLAddr, n.ExternLearn)
		}
		want := map[string]string{
			"192.0.2.10":    "br0 " + vm1MAC + " extern_learn=false",
			"192.0.2.99":    "br0 " + vm1MAC + " extern_learn=true",
			"198.51.100.10": "l3p " + vm3MAC + " extern_learn=false",
		}
		for ip, w := range want {
			if got[ip] != w {
				t.Errorf("%s: %q, want %q", ip, got[ip], w)
			}
		}
	})

	t.Run("metrics", func(t *testing.T) {
		if health != "ok\n" {
			t.Errorf("/healthz = %q, want ok", health)
		}
		for _, want := range []string{
			`rarp_replay_rarps_total{port="vm1"} 6`, // QEMU's five and the unknown MAC
			// vm2's RARP may be counted twice: by the any-device handle and by
			// the port's own handle opening meanwhile (one cycle either way).
			`rarp_replay_rarps_total{port="vm2"} `,
			// The unknown MAC's RARP, checked in the log below: vm2's RARP may
			// be one too, when the any-device handle sees it before vm2 is
			// enslaved (a stand-alone port without bindings for it).
			`rarp_replay_drops_total{reason="unknown-mac"} `,
			`rarp_replay_drops_total{reason="truncated"} 1`,
			`rarp_replay_bindings_programmed_total 5`,
			`rarp_replay_rarp_to_programmed_seconds_count 3`,
			`rarp_replay_captured_ports 2`, // vm1 and l3p; vm2 is gone
			`rarp_replay_pcap_kernel_drops_total{port="vm1"} 0`,
			`rarp_replay_mirrored_bindings `,
		} {
			if !strings.Contains(scrape, want) {
				t.Errorf("/metrics has no %q", want)
			}
		}
		if !slices.ContainsFunc(listen.Lines(), func(l string) bool {
			return strings.Contains(l, `"msg":"drop","reason":"unknown-mac"`) && strings.Contains(l, `"mac":"02:00:5e:10:00:77"`)
		}) {
			t.Error("no unknown-mac drop logged for 02:00:5e:10:00:77")
		}
		if t.Failed() {
			t.Logf("/metrics:\n%s", scrape)
		}
	})

	t.Run("drops counted by reason", func(t *testing.T) {
		counters := stoppedCounters(t, listen)
		for _, reason := range []string{"truncated", "opcode", "bad-header", "mac-mismatch", "unknown-mac"} {
			if counters["drop/"+reason] == 0 {
				t.Errorf("drop/%s not counted; counters %v", reason, counters)
			}
		}
		if got := counters["cycle"]; got != 3 {
			t.Errorf("%d probe cycles, want 2 (one per migration, not one per RARP)", got)
		}
	})
}

// TestListenNamedInterfaces checks -i with a list: a name that does not
// exist, or that is not an access port, is a clear start-up error.
func TestListenNamedInterfaces(t *testing.T) {
	nstest.RequireRoot(t)
	bin := nstest.Binary(t)
	sw := nstest.Namespace(t, "sw")
	nstest.Sh(t, `ip -n `+sw+` link add br0 type bridge; ip -n `+sw+` link add p1 type veth peer name p2`)
	for _, tt := range []struct{ ifaces, want string }{
		{"p1,nosuch0", `interface "nosuch0" does not exist`},
		{"br0", `interface "br0" cannot be served`},
	} {
		out, err := nstest.Output("ip", "netns", "exec", sw, bin, "listen", "-i", tt.ifaces)
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("listen -i %s: err %v, output %q; want an error saying %s", tt.ifaces, err, out, tt.want)
		}
	}
}

// oneVM builds the smallest leaf: a switch namespace with bridge SVI br0
// (192.0.2.1/24) holding 192.0.2.10 as a remote binding, and a VM namespace
// owning it behind port vm1. It returns both namespaces.
func oneVM(t *testing.T) (sw, vm string) {
	t.Helper()
	sw = nstest.Namespace(t, "sw")
	vm = nstest.Namespace(t, "vm")
	nstest.Sh(t, `
ip -n `+sw+` link add br0 address `+sviMAC+` type bridge
ip -n `+sw+` link set br0 up
ip -n `+sw+` addr add 192.0.2.1/24 dev br0
ip -n `+sw+` link add vm1 type veth peer name eth0 netns `+vm+`
ip -n `+sw+` link set vm1 master br0 up
ip -n `+vm+` link set eth0 address `+vm1MAC+`
ip -n `+vm+` addr add 192.0.2.10/24 dev eth0
ip -n `+vm+` link set eth0 up
ip -n `+sw+` neigh replace 192.0.2.10 lladdr `+vm1MAC+` dev br0 nud noarp extern_learn
`)
	return sw, vm
}

// TestListenReassert, against the kernel: zebra deleting a binding the
// daemon just programmed (it applied the old leaf's withdrawal late) gets
// the binding programmed again; once zebra has installed the address as a
// remote (extern_learn) binding again, to the same MAC (the VM moved on to
// another leaf, which advertised it), that leaf's withdrawal deleting it
// does not: this leaf must not claim the VM back. A second address's
// deletion, made after, is the marker that the daemon has seen the first.
func TestListenReassert(t *testing.T) {
	nstest.RequireRoot(t)
	bin := nstest.Binary(t)
	sw, vm := oneVM(t)
	nstest.Sh(t, `
ip -n `+vm+` addr add 192.0.2.11/24 dev eth0
ip -n `+sw+` neigh replace 192.0.2.11 lladdr `+vm1MAC+` dev br0 nud noarp extern_learn
`)
	p := nstest.Start(t, "ip", "netns", "exec", sw, bin, "listen", "--log-format", "json")
	p.WaitFor(t, `"msg":"listening"`, 10*time.Second)
	nstest.Run(t, "ip", "netns", "exec", vm, bin, "send-rarp", "--mac", vm1MAC, "-i", "eth0", "--count", "1")
	waitLocal(t, sw, vm1MAC, "192.0.2.10", "192.0.2.11")
	again := func(ip string) string { return `it was programmed","ip":"` + ip + `"` }

	nstest.Run(t, "ip", "-n", sw, "neigh", "del", "192.0.2.10", "dev", "br0")
	p.WaitFor(t, again("192.0.2.10"), 5*time.Second)
	waitLocal(t, sw, vm1MAC, "192.0.2.10")
	count := func(ip string) int { return strings.Count(strings.Join(p.Lines(), "\n"), again(ip)) }
	if n := count("192.0.2.10"); n != 1 {
		t.Errorf("one deletion: 192.0.2.10 programmed again %d times, want once (the kernel reports it FAILED, then deleted)", n)
	}

	nstest.Sh(t, `
ip -n `+sw+` neigh replace 192.0.2.10 lladdr `+vm1MAC+` dev br0 nud noarp extern_learn
ip -n `+sw+` neigh del 192.0.2.10 dev br0
ip -n `+sw+` neigh del 192.0.2.11 dev br0
`)
	p.WaitFor(t, again("192.0.2.11"), 5*time.Second)
	waitLocal(t, sw, vm1MAC, "192.0.2.11")
	if n := count("192.0.2.10"); n != 1 {
		t.Errorf("192.0.2.10 programmed again %d times in all, want once (not after zebra made it remote again)", n)
	}
	if out := nstest.Run(t, "ip", "-n", sw, "neigh", "show", "192.0.2.10", "dev", "br0"); strings.TrimSpace(out) != "" {
		t.Errorf("192.0.2.10 is bound again after the remote leaf withdrew it: %q", out)
	}
	p.Stop(t, syscall.SIGTERM, 5*time.Second)
}

// TestListenStateAcrossRestart: EVPN withdraws a binding while the daemon
// is down for an upgrade; the restarted daemon still knows it from its
// state file and restores it. A corrupt state file is moved aside (kept for
// the operator, named by the UTC time) and a fresh one written.
func TestListenStateAcrossRestart(t *testing.T) {
	nstest.RequireRoot(t)
	bin := nstest.Binary(t)
	sw, vm := oneVM(t)
	state := t.TempDir() + "/state.json"
	start := func() *nstest.Proc {
		p := nstest.Start(t, "ip", "netns", "exec", sw, bin, "listen", "--state-file", state, "--log-format", "json")
		p.WaitFor(t, `"msg":"listening"`, 10*time.Second)
		return p
	}
	first := start()
	first.WaitFor(t, `"msg":"no state file yet"`, time.Second)
	first.Stop(t, syscall.SIGTERM, 5*time.Second)
	nstest.Run(t, "ip", "-n", sw, "neigh", "del", "192.0.2.10", "dev", "br0")

	second := start()
	second.WaitFor(t, `"msg":"loaded state"`, time.Second)
	nstest.Run(t, "ip", "netns", "exec", vm, bin, "send-rarp", "--mac", vm1MAC, "-i", "eth0", "--count", "1")
	waitLocal(t, sw, vm1MAC, "192.0.2.10")
	second.Stop(t, syscall.SIGTERM, 5*time.Second)

	if err := os.WriteFile(state, []byte("{not json"), 0o600); err != nil {
		t.Fatal(err)
	}
	third := start()
	line := third.WaitFor(t, `"msg":"state file refused, moved aside"`, time.Second)
	third.Stop(t, syscall.SIGTERM, 5*time.Second)
	var moved struct {
		Level   string `json:"level"`
		MovedTo string `json:"moved_to"`
	}
	json.Unmarshal([]byte(line), &moved)
	if moved.Level != "WARN" || !regexp.MustCompile(`/state\.json\.corrupt-\d{8}T\d{6}Z$`).MatchString(moved.MovedTo) {
		t.Errorf("log %s, want a WARN naming state.json.corrupt-<UTC time>", line)
	}
	if b, err := os.ReadFile(moved.MovedTo); string(b) != "{not json" {
		t.Errorf("the file moved aside holds %q, %v", b, err)
	}
	b, err := os.ReadFile(state)
	if err != nil || !strings.HasPrefix(string(b), `{"format":"rarp-replay-state","version":2,`) {
		t.Errorf("the state file was not rewritten at exit: %q, %v", b, err)
	}
}

// TestListenDryRun: --dry-run decides and logs, but sends and programs
// nothing, and needs only CAP_NET_RAW.
func TestListenDryRun(t *testing.T) {
	nstest.RequireRoot(t)
	bin := nstest.Binary(t)
	sw, vm := oneVM(t)
	vmCapture := t.TempDir() + "/vm.pcap"
	dump := nstest.Start(t, "ip", "netns", "exec", vm, "tcpdump", "--immediate-mode", "-i", "eth0", "-Q", "in", "-U", "-n", "-w", vmCapture, "arp")
	dump.WaitFor(t, "listening on", 10*time.Second)
	listen := nstest.Start(t, "ip", "netns", "exec", sw, "setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups",
		"--inh-caps=-all,+net_raw", "--ambient-caps=+net_raw", "--bounding-set=-all,+net_raw",
		bin, "listen", "--dry-run", "--log-format", "json", "--probe-timeout", "50ms", "--probe-retries", "1")
	listen.WaitFor(t, `"msg":"listening"`, 10*time.Second)
	nstest.Run(t, "ip", "netns", "exec", vm, bin, "send-rarp", "--mac", vm1MAC, "-i", "eth0", "--count", "1")
	line := listen.WaitFor(t, `"msg":"migration handled"`, 5*time.Second)
	listen.Stop(t, syscall.SIGTERM, 5*time.Second)
	dump.Stop(t, syscall.SIGINT, 5*time.Second)
	if !strings.Contains(line, `"failed":["192.0.2.10"]`) {
		t.Errorf("migration line %s, want 192.0.2.10 failed (no probe was sent, so no reply)", line)
	}
	if got := probesIn(t, vmCapture); len(got) != 0 {
		t.Errorf("the VM received probes for %v in a dry run", got)
	}
	if c := stoppedCounters(t, listen); c["probe-dry-run"] != 2 || c["probe-sent"] != 0 {
		t.Errorf("counters %v, want probe-dry-run 2 (first try and one retry) and no probe-sent", c)
	}
	if out := nstest.Run(t, "ip", "-n", sw, "neigh", "show", "192.0.2.10"); !strings.Contains(out, "extern_learn") {
		t.Errorf("a dry run changed the binding: %q", out)
	}
}

// TestListenAnycastMacvlan: a Cumulus-style anycast gateway, a macvlan on
// the SVI with the gateway address and MAC, live on a traditional bridge.
// Probes come from the anycast address and MAC; a binding the kernel holds
// on the macvlan is programmed there, one on the SVI on the SVI.
func TestListenAnycastMacvlan(t *testing.T) {
	compat.Note(t, "anycast-macvlan", compat.Live)
	nstest.RequireRoot(t)
	bin := nstest.Binary(t)
	sw := nstest.Namespace(t, "sw")
	vm := nstest.Namespace(t, "vm")
	const anycastMAC = "00:00:5e:00:01:01"
	nstest.Sh(t, `
ip -n `+sw+` link add br0 address `+sviMAC+` type bridge
ip netns exec `+sw+` sysctl -qw net.ipv6.conf.br0.accept_dad=0
ip -n `+sw+` link set br0 up
ip -n `+sw+` addr add 192.0.2.2/24 dev br0
ip -n `+sw+` addr add 2001:db8:10::2/64 dev br0 nodad
ip -n `+sw+` link add br0-v0 link br0 address `+anycastMAC+` type macvlan mode private
ip netns exec `+sw+` sysctl -qw net.ipv6.conf.br0-v0.accept_dad=0
ip -n `+sw+` link set br0-v0 up
ip -n `+sw+` addr add 192.0.2.1/24 dev br0-v0
ip -n `+sw+` addr add 2001:db8:10::1/64 dev br0-v0 nodad
bridge -n `+sw+` fdb add `+anycastMAC+` dev br0 self local
ip -n `+sw+` link add vm1 type veth peer name eth0 netns `+vm+`
ip -n `+sw+` link set vm1 master br0 up
ip netns exec `+vm+` sysctl -qw net.ipv6.conf.all.accept_dad=0 net.ipv6.conf.default.accept_dad=0
ip -n `+vm+` link set eth0 address `+vm1MAC+`
ip -n `+vm+` addr add 192.0.2.10/24 dev eth0
ip -n `+vm+` addr add 192.0.2.12/24 dev eth0
ip -n `+vm+` addr add 2001:db8:10::10/64 dev eth0 nodad
ip -n `+vm+` link set eth0 up
ip -n `+sw+` neigh replace 192.0.2.10 lladdr `+vm1MAC+` dev br0 nud noarp extern_learn
ip -n `+sw+` neigh replace 2001:db8:10::10 lladdr `+vm1MAC+` dev br0 nud noarp extern_learn
ip -n `+sw+` neigh replace 192.0.2.12 lladdr `+vm1MAC+` dev br0-v0 nud noarp
`)
	vmCapture := t.TempDir() + "/vm.pcap"
	dump := nstest.Start(t, "ip", "netns", "exec", vm, "tcpdump", "--immediate-mode", "-i", "eth0", "-Q", "in", "-U", "-n", "-w", vmCapture, "arp or icmp6")
	dump.WaitFor(t, "listening on", 10*time.Second)
	listen := nstest.Start(t, "ip", "netns", "exec", sw, bin, "listen", "--log-format", "json")
	listen.WaitFor(t, `"msg":"listening"`, 10*time.Second)
	nstest.Run(t, "ip", "netns", "exec", vm, bin, "send-rarp", "--mac", vm1MAC, "-i", "eth0", "--count", "1")
	waitLocalOn(t, sw, "br0", vm1MAC, "192.0.2.10", "2001:db8:10::10")
	waitLocalOn(t, sw, "br0-v0", vm1MAC, "192.0.2.12")
	listen.Stop(t, syscall.SIGTERM, 5*time.Second)
	dump.Stop(t, syscall.SIGINT, 5*time.Second)
	got := probeSources(t, vmCapture)
	if os.Getenv("RR_DEBUG") != "" {
		out, _ := exec.Command("tcpdump", "-nner", vmCapture).CombinedOutput()
		t.Logf("capture:\n%s\ntcpdump said:\n%s", out, strings.Join(dump.Lines(), "\n"))
	}
	want := map[string][]string{
		"192.0.2.10":      {"192.0.2.1 " + anycastMAC},
		"192.0.2.12":      {"192.0.2.1 " + anycastMAC},
		"2001:db8:10::10": {"2001:db8:10::1 " + anycastMAC},
	}
	for ip, w := range want {
		if diff := cmp.Diff(w, got[ip]); diff != "" {
			t.Errorf("probes for %s (-want +got):\n%s", ip, diff)
		}
	}
}

// TestListenForgedAnswers: while a VM migrates, a host on another port of
// the same bridge answers every probe the way a forger would: ARP replies
// and NAs claiming the VM's MAC owns addresses the leaf binds to that MAC
// but the VM does not own (.99, ::99), perfectly formed answers to the
// daemon's probes, once with the forger's own Ethernet source and once with
// the VM's. Nothing forged may be programmed, the VM's own addresses still
// are, and the forgeries are counted as drops by reason.
func TestListenForgedAnswers(t *testing.T) {
	nstest.RequireRoot(t)
	for _, variant := range []struct{ name, ethSrc string }{
		{"forger's own Ethernet source", "02:00:5e:66:66:66"},
		{"VM's MAC as Ethernet source", vm1MAC},
	} {
		t.Run(variant.name, func(t *testing.T) { testForgedAnswers(t, variant.ethSrc) })
	}
}

func testForgedAnswers(t *testing.T, ethSrc string) {
	bin := nstest.Binary(t)
	sw := nstest.Namespace(t, "sw")
	vm := nstest.Namespace(t, "vm")
	atk := nstest.Namespace(t, "forger")
	nstest.Sh(t, `
ip -n `+sw+` link add br0 address `+sviMAC+` type bridge
ip netns exec `+sw+` sysctl -qw net.ipv6.conf.br0.accept_dad=0
ip -n `+sw+` link set br0 up
ip -n `+sw+` addr add 192.0.2.1/24 dev br0
ip -n `+sw+` addr add 2001:db8:10::1/64 dev br0 nodad
for p in vm1:`+vm+` atk:`+atk+`; do
  ip -n `+sw+` link add ${p%%:*} type veth peer name eth0 netns ${p#*:}
  ip -n `+sw+` link set ${p%%:*} master br0 up
  ip netns exec ${p#*:} sysctl -qw net.ipv6.conf.all.accept_dad=0 net.ipv6.conf.default.accept_dad=0
done
ip -n `+vm+` link set eth0 address `+vm1MAC+`
ip -n `+vm+` addr add 192.0.2.10/24 dev eth0
ip -n `+vm+` addr add 2001:db8:10::10/64 dev eth0 nodad
ip -n `+vm+` link set eth0 up
ip -n `+atk+` link set eth0 address 02:00:5e:66:66:66 up
for a in 192.0.2.10 192.0.2.99 2001:db8:10::10 2001:db8:10::99; do
  ip -n `+sw+` neigh replace $a lladdr `+vm1MAC+` dev br0 nud noarp extern_learn
done
`)
	monitor := nstest.Start(t, "ip", "-n", sw, "monitor", "neigh")
	listen := nstest.Start(t, "ip", "netns", "exec", sw, bin, "listen", "--log-format", "json",
		"--metrics-addr", "127.0.0.1:9465", "--probe-timeout", "100ms", "--probe-retries", "2")
	listen.WaitFor(t, `"msg":"listening"`, 10*time.Second)

	// Perfect answers to the daemon's probes (to its source address and
	// MAC; the NA solicited, with the VM's MAC as target link-layer
	// address), from the wrong port.
	vmHW, _ := net.ParseMAC(vm1MAC)
	src, _ := net.ParseMAC(ethSrc)
	svi, _ := net.ParseMAC(sviMAC)
	var frames [][]byte
	for _, r := range []packet.Reply{
		{MAC: vmHW, IP: netip.MustParseAddr("192.0.2.99"), DstMAC: svi, DstIP: netip.MustParseAddr("192.0.2.1")},
		{MAC: vmHW, IP: netip.MustParseAddr("2001:db8:10::99"), DstMAC: svi, DstIP: netip.MustParseAddr("2001:db8:10::1")},
	} {
		b, err := packet.BuildReply(r)
		if err != nil {
			t.Fatal(err)
		}
		copy(b[6:12], src)
		frames = append(frames, b)
	}
	// Every 2 ms for 1.5 s: across the whole probe cycle (100 + 200 + 400 ms).
	forger := sendFramesRepeated(t, atk, 750, 2*time.Millisecond, frames...)
	forger.release(t, false)
	nstest.Run(t, "ip", "netns", "exec", vm, bin, "send-rarp", "--mac", vm1MAC, "-i", "eth0", "--count", "1")
	waitLocal(t, sw, vm1MAC, "192.0.2.10", "2001:db8:10::10")
	m := waitMigrations(t, listen, 1)[vm1MAC]
	forger.wait(t)
	scrape := httpGet(t, sw, "http://127.0.0.1:9465/metrics")
	listen.Stop(t, syscall.SIGTERM, 5*time.Second)
	monitor.Stop(t, syscall.SIGTERM, 5*time.Second)

	if m == nil {
		t.Fatal("no migration line")
	}
	if got := strings.Join(m.Programmed, ","); got != "192.0.2.10,2001:db8:10::10" {
		t.Errorf("programmed %s, want the VM's own 192.0.2.10,2001:db8:10::10", got)
	}
	if got := strings.Join(m.Failed, ","); got != "192.0.2.99,2001:db8:10::99" {
		t.Errorf("failed %s, want the forged 192.0.2.99,2001:db8:10::99", got)
	}
	for _, l := range monitor.Lines() {
		if (strings.HasPrefix(l, "192.0.2.99 ") || strings.HasPrefix(l, "2001:db8:10::99 ")) && !strings.Contains(l, "extern_learn") {
			t.Errorf("a forged binding changed: %q", l)
		}
	}
	for _, a := range []string{"192.0.2.99", "2001:db8:10::99"} {
		if out := nstest.Run(t, "ip", "-n", sw, "neigh", "show", a); !strings.Contains(out, "extern_learn") {
			t.Errorf("%s is now %q, want it left extern_learn", a, out)
		}
	}
	// The forgeries reached the daemon while it probed, and were counted.
	if !regexpMatch(`rarp_replay_drops_total\{reason="reply-wrong-port"\} [1-9]`, scrape) {
		t.Errorf("no reply-wrong-port drops counted: the forged answers never reached the daemon; metrics:\n%s", grepLines(scrape, "drops_total"))
	}
}

// helperProc is a frame sender running inside a namespace.
type helperProc struct {
	cmd   *exec.Cmd
	stdin *os.File
}

// go_ tells the sender to send; with wait (or a later wait call), waits
// until it is done.
func (h *helperProc) release(t *testing.T, wait ...bool) {
	t.Helper()
	if _, err := h.stdin.Write([]byte("go\n")); err != nil {
		t.Fatal(err)
	}
	h.stdin.Close()
	if len(wait) == 0 || wait[0] {
		h.wait(t)
	}
}

func (h *helperProc) wait(t *testing.T) {
	t.Helper()
	if err := h.cmd.Wait(); err != nil {
		t.Fatalf("frame sender: %v", err)
	}
}

// sendFrames sends raw frames out of eth0 in namespace ns, by running this
// test binary there as TestHelperSendFrames. With wait, it returns once the
// sender is ready, and the frames go when go_ is called.
func sendFrames(t *testing.T, ns string, wait bool, frames ...[]byte) *helperProc {
	t.Helper()
	return startSender(t, ns, wait, nil, frames...)
}

// sendFramesRepeated is sendFrames with wait: once told to go, the sender
// sends all frames times times, gap apart.
func sendFramesRepeated(t *testing.T, ns string, times int, gap time.Duration, frames ...[]byte) *helperProc {
	t.Helper()
	return startSender(t, ns, true, []string{fmt.Sprintf("RR_HELPER_REPEAT=%d", times), fmt.Sprintf("RR_HELPER_GAP=%s", gap)}, frames...)
}

func startSender(t *testing.T, ns string, wait bool, env []string, frames ...[]byte) *helperProc {
	t.Helper()
	hexes := make([]string, len(frames))
	for i, f := range frames {
		hexes[i] = hex.EncodeToString(f)
	}
	cmd := exec.Command("ip", "netns", "exec", ns, os.Args[0], "-test.run=^TestHelperSendFrames$")
	cmd.Env = append(append(os.Environ(), env...), "RR_HELPER_IFACE=eth0", "RR_HELPER_FRAMES="+strings.Join(hexes, ","))
	cmd.Stderr = os.Stderr
	if !wait {
		if out, err := cmd.Output(); err != nil {
			t.Fatalf("frame sender: %v\n%s", err, out)
		}
		return nil
	}
	cmd.Env = append(cmd.Env, "RR_HELPER_WAIT=1")
	r, w, _ := os.Pipe()
	cmd.Stdin = r
	out, _ := cmd.StdoutPipe()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	r.Close()
	t.Cleanup(func() { cmd.Process.Kill() })
	line, _ := bufio.NewReader(out).ReadString('\n')
	if !strings.HasPrefix(line, "ready") {
		t.Fatalf("frame sender did not get ready: %q", line)
	}
	return &helperProc{cmd: cmd, stdin: w}
}

// httpGet fetches url from inside namespace ns, by running this test
// binary there as TestHelperHTTPGet.
func httpGet(t *testing.T, ns, url string) string {
	t.Helper()
	cmd := exec.Command("ip", "netns", "exec", ns, os.Args[0], "-test.run=^TestHelperHTTPGet$")
	cmd.Env = append(os.Environ(), "RR_HELPER_URL="+url)
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("GET %s in %s: %v", url, ns, err)
	}
	body, _, ok := strings.Cut(string(out), "\n--helper-end--")
	if !ok {
		t.Fatalf("GET %s: no body in %q", url, out)
	}
	return body
}

// TestHelperHTTPGet is not a test: httpGet runs it in a namespace.
func TestHelperHTTPGet(t *testing.T) {
	url := os.Getenv("RR_HELPER_URL")
	if url == "" {
		t.Skip("helper process for TestListen")
	}
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: %s: %s", url, resp.Status, b)
	}
	os.Stdout.Write(b)
	os.Stdout.WriteString("\n--helper-end--\n")
}

// TestHelperSendFrames is not a test: sendFrames runs it in a namespace.
func TestHelperSendFrames(t *testing.T) {
	iface := os.Getenv("RR_HELPER_IFACE")
	if iface == "" {
		t.Skip("helper process for TestListen")
	}
	h, err := pcapio.OpenSender(iface)
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	var frames [][]byte
	for _, s := range strings.Split(os.Getenv("RR_HELPER_FRAMES"), ",") {
		b, err := hex.DecodeString(s)
		if err != nil {
			t.Fatal(err)
		}
		frames = append(frames, b)
	}
	if os.Getenv("RR_HELPER_WAIT") != "" {
		os.Stdout.WriteString("ready\n")
		bufio.NewReader(os.Stdin).ReadString('\n')
	}
	repeat, gap := 1, time.Duration(0)
	if v := os.Getenv("RR_HELPER_REPEAT"); v != "" {
		repeat, _ = strconv.Atoi(v)
		gap, _ = time.ParseDuration(os.Getenv("RR_HELPER_GAP"))
	}
	for i := range repeat {
		if i > 0 {
			time.Sleep(gap) // pacing a traffic source, not waiting for a result
		}
		for _, f := range frames {
			if err := h.WritePacketData(f); err != nil {
				t.Fatal(err)
			}
		}
	}
}

type neighJSON struct {
	Dst         string           `json:"dst"`
	LLAddr      string           `json:"lladdr"`
	State       []string         `json:"state"`
	ExternLearn *json.RawMessage `json:"extern_learn"`
}

// waitLocal waits until every ip is a local (not extern_learn), reachable
// neighbor with lladdr mac on br0 in ns.
func waitLocal(t *testing.T, ns, mac string, ips ...string) {
	t.Helper()
	waitLocalOn(t, ns, "br0", mac, ips...)
}

// waitLocalOn is waitLocal on the interface dev.
func waitLocalOn(t *testing.T, ns, dev, mac string, ips ...string) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	var last string
	for time.Now().Before(deadline) {
		out := nstest.Run(t, "ip", "-n", ns, "-j", "neigh", "show", "dev", dev)
		var ns []neighJSON
		if err := json.Unmarshal([]byte(out), &ns); err != nil {
			t.Fatalf("ip -j neigh: %v: %s", err, out)
		}
		missing := 0
		for _, ip := range ips {
			i := slices.IndexFunc(ns, func(n neighJSON) bool {
				return n.Dst == ip && n.LLAddr == mac && n.ExternLearn == nil &&
					!slices.Contains(n.State, "NOARP") && !slices.Contains(n.State, "FAILED")
			})
			if i < 0 {
				missing++
			}
		}
		if missing == 0 {
			return
		}
		last = out
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("%v not local neighbors of %s within 5s; table: %s", ips, mac, last)
}

type migration struct {
	MAC        string   `json:"mac"`
	Port       string   `json:"port"`
	SVI        string   `json:"svi"`
	Verified   []string `json:"verified"`
	Failed     []string `json:"failed"`
	Programmed []string `json:"programmed"`
	LatencyMS  float64  `json:"rarp_to_programmed_ms"`
}

func regexpMatch(re, s string) bool { return regexp.MustCompile(re).MatchString(s) }

// grepLines returns the lines of s that contain substr.
func grepLines(s, substr string) string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if strings.Contains(l, substr) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}

func waitMigrations(t *testing.T, p *nstest.Proc, n int) map[string]*migration {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		out := map[string]*migration{}
		for _, l := range p.Lines() {
			if strings.Contains(l, `"msg":"migration handled"`) {
				var m migration
				if err := json.Unmarshal([]byte(l), &m); err != nil {
					t.Fatalf("log line %q: %v", l, err)
				}
				out[m.MAC] = &m
			}
		}
		if len(out) >= n || time.Now().After(deadline) {
			return out
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func stoppedCounters(t *testing.T, p *nstest.Proc) map[string]uint64 {
	t.Helper()
	for _, l := range p.Lines() {
		if strings.Contains(l, `"msg":"stopped"`) {
			var v struct {
				Counters map[string]uint64 `json:"counters"`
			}
			if err := json.Unmarshal([]byte(l), &v); err != nil {
				t.Fatalf("log line %q: %v", l, err)
			}
			return v.Counters
		}
	}
	t.Fatalf("no stopped line in the daemon's log:\n%s", strings.Join(p.Lines(), "\n"))
	return nil
}

// probesIn returns the addresses probed by the ARP requests and Neighbor
// Solicitations from sviMAC in a capture.
func probesIn(t *testing.T, path string) map[string]bool {
	t.Helper()
	got := map[string]bool{}
	for target, from := range probeSources(t, path) {
		for _, f := range from {
			if strings.HasSuffix(f, " "+sviMAC) {
				got[target] = true
			}
		}
	}
	return got
}

// openCapture opens the pcap file at path for reading until the test ends.
func openCapture(t *testing.T, path string) *pcapgo.Reader {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	r, err := pcapgo.NewReader(f)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// probeSources returns, for every address probed by an ARP request or a
// Neighbor Solicitation (hop limit 255) in a capture, the "source-IP
// source-MAC" pairs it was probed from.
func probeSources(t *testing.T, path string) map[string][]string {
	t.Helper()
	got := map[string][]string{}
	for _, fr := range readFrames(t, path) {
		if target, src, ok := probeIn(fr); ok {
			got[target.String()] = append(got[target.String()], src.String()+" "+fr.src.String())
		}
	}
	return got
}

// captureFrame is one Ethernet frame of a capture, its 802.1Q tag (0:
// none) removed.
type captureFrame struct {
	src, dst  net.HardwareAddr
	vlan      uint16
	etherType layers.EthernetType
	payload   []byte
}

func readFrames(t *testing.T, path string) []captureFrame {
	t.Helper()
	r := openCapture(t, path)
	var out []captureFrame
	for {
		data, _, err := r.ReadPacketData()
		if err != nil {
			return out
		}
		if len(data) < 14 {
			continue
		}
		fr := captureFrame{dst: data[0:6], src: data[6:12], etherType: layers.EthernetType(binary.BigEndian.Uint16(data[12:14])), payload: data[14:]}
		if fr.etherType == layers.EthernetTypeDot1Q && len(fr.payload) >= 4 {
			fr.vlan = binary.BigEndian.Uint16(fr.payload[0:2]) & 0xfff
			fr.etherType = layers.EthernetType(binary.BigEndian.Uint16(fr.payload[2:4]))
			fr.payload = fr.payload[4:]
		}
		out = append(out, fr)
	}
}

// probeIn returns the target and source address of fr when it is a probe:
// an ARP request, or a Neighbor Solicitation with hop limit 255.
func probeIn(fr captureFrame) (target, src netip.Addr, ok bool) {
	switch fr.etherType {
	case layers.EthernetTypeARP:
		var a layers.ARP
		if a.DecodeFromBytes(fr.payload, nil) == nil && a.Operation == 1 {
			target, _ = netip.AddrFromSlice(a.DstProtAddress)
			src, _ = netip.AddrFromSlice(a.SourceProtAddress)
			return target, src, true
		}
	case layers.EthernetTypeIPv6:
		var ip6 layers.IPv6
		var icmp layers.ICMPv6
		var ns layers.ICMPv6NeighborSolicitation
		if ip6.DecodeFromBytes(fr.payload, nil) == nil && ip6.HopLimit == 255 &&
			icmp.DecodeFromBytes(ip6.Payload, nil) == nil &&
			icmp.TypeCode.Type() == layers.ICMPv6TypeNeighborSolicitation &&
			ns.DecodeFromBytes(icmp.Payload, nil) == nil {
			target, _ = netip.AddrFromSlice(ns.TargetAddress)
			src, _ = netip.AddrFromSlice(ip6.SrcIP)
			return target, src, true
		}
	}
	return netip.Addr{}, netip.Addr{}, false
}
