package main

import (
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/rarp-replay/rarp-replay/internal/nstest"
)

// TestListenExclude: with -i any --exclude 'vm2*', a port matching the
// pattern is never served, also when it appears after start, while the
// others are: a RARP on it changes nothing.
func TestListenExclude(t *testing.T) {
	nstest.RequireRoot(t)
	bin := nstest.Binary(t)
	sw := nstest.Namespace(t, "sw")
	vm1 := nstest.Namespace(t, "vm1")
	vm2 := nstest.Namespace(t, "vm2")
	nstest.Sh(t, `
ip -n `+sw+` link add br0 address `+sviMAC+` type bridge
ip -n `+sw+` link set br0 up
ip -n `+sw+` addr add 192.0.2.1/24 dev br0
ip -n `+sw+` neigh replace 192.0.2.10 lladdr `+vm1MAC+` dev br0 nud noarp extern_learn
ip -n `+sw+` neigh replace 192.0.2.20 lladdr `+vm2MAC+` dev br0 nud noarp extern_learn
`)
	listen := nstest.Start(t, "ip", "netns", "exec", sw, bin, "listen", "-i", "any", "--exclude", "vm2*",
		"--log-format", "json", "--probe-timeout", "100ms", "--probe-retries", "1")
	listen.WaitFor(t, `"msg":"listening"`, 10*time.Second)

	// Both ports appear after start, the excluded one first: once the
	// other is added, the excluded one's link events have been applied.
	nstest.Sh(t, `
port() { # port NAME NS MAC ADDR
  ip -n `+sw+` link add $1 type veth peer name eth0 netns $2
  ip -n `+sw+` link set $1 master br0 up
  ip -n $2 link set eth0 address $3
  ip -n $2 addr add $4 dev eth0
  ip -n $2 link set eth0 up
}
port vm2 `+vm2+` `+vm2MAC+` 192.0.2.20/24
port vm1 `+vm1+` `+vm1MAC+` 192.0.2.10/24
`)
	listen.WaitFor(t, `"msg":"port added","ifname":"vm1"`, 5*time.Second)

	checkNotServed(t, listen, sw, unserved{what: "the excluded port", ns: vm2, port: "vm2", addr: "192.0.2.20"}, vm1)
}

// unserved is a port the daemon must not serve, vm2MAC's host behind it
// and the address bound to vm2MAC there.
type unserved struct{ what, ns, port, addr string }

// checkNotServed sends a RARP for vm2MAC from behind the unserved port,
// then migrates vm1MAC (in namespace vm1, behind a served port) and stops
// the daemon: vm1MAC's binding is programmed, while the unserved port was
// never served, its binding is left extern_learn and no RARP was decoded on
// it. The unserved RARP goes first, so the daemon has seen it (if it was
// going to) by the time the other migration is handled.
func checkNotServed(t *testing.T, listen *nstest.Proc, sw string, u unserved, vm1 string) {
	t.Helper()
	bin := nstest.Binary(t)
	nstest.Run(t, "ip", "netns", "exec", u.ns, bin, "send-rarp", "--mac", vm2MAC, "-i", "eth0", "--count", "2", "--interval", "10ms")
	nstest.Run(t, "ip", "netns", "exec", vm1, bin, "send-rarp", "--mac", vm1MAC, "-i", "eth0", "--count", "1")
	waitLocal(t, sw, vm1MAC, "192.0.2.10")
	listen.WaitFor(t, `"msg":"migration handled","mac":"`+vm1MAC+`"`, 5*time.Second)
	listen.Stop(t, syscall.SIGTERM, 5*time.Second)

	for _, l := range listen.Lines() {
		if strings.Contains(l, `"ifname":"`+u.port+`"`) || strings.Contains(l, vm2MAC) {
			t.Errorf("%s was served: %s", u.what, l)
		}
	}
	if out := nstest.Run(t, "ip", "-n", sw, "neigh", "show", u.addr); !strings.Contains(out, "extern_learn") {
		t.Errorf("%s behind %s is now %q, want it left extern_learn", u.addr, u.what, out)
	}
	if c := stoppedCounters(t, listen); c["rarp["+u.port+"]"] != 0 || c["rarp[vm1]"] == 0 {
		t.Errorf("RARPs decoded on %s %d, on vm1 %d; want none on %s and some on the served port", u.port, c["rarp["+u.port+"]"], c["rarp[vm1]"], u.what)
	}
}

// TestListenRoutedPortsOff: with --routed-ports=false only bridge members
// are served: a routed interface (an uplink, the management port) never
// gets a handle, also when it appears after start, and a RARP arriving on
// it is not even decoded, while a bridge port is served as usual.
func TestListenRoutedPortsOff(t *testing.T) {
	nstest.RequireRoot(t)
	bin := nstest.Binary(t)
	sw := nstest.Namespace(t, "sw")
	vm1 := nstest.Namespace(t, "vm1")
	peer := nstest.Namespace(t, "up")
	nstest.Sh(t, `
ip -n `+sw+` link add br0 address `+sviMAC+` type bridge
ip -n `+sw+` link set br0 up
ip -n `+sw+` addr add 192.0.2.1/24 dev br0
ip -n `+sw+` neigh replace 192.0.2.10 lladdr `+vm1MAC+` dev br0 nud noarp extern_learn
`)
	listen := nstest.Start(t, "ip", "netns", "exec", sw, bin, "listen", "-i", "any", "--routed-ports=false",
		"--log-format", "json", "--probe-timeout", "100ms", "--probe-retries", "1")
	listen.WaitFor(t, `"msg":"listening"`, 10*time.Second)

	// The routed uplink first, with a binding of its own for vm2's MAC:
	// once the bridge port is added, the uplink's link events have been
	// applied.
	nstest.Sh(t, `
ip -n `+sw+` link add up1 type veth peer name eth0 netns `+peer+`
ip -n `+sw+` addr add 198.51.100.1/24 dev up1
ip -n `+sw+` link set up1 up
ip -n `+sw+` neigh replace 198.51.100.20 lladdr `+vm2MAC+` dev up1 nud noarp extern_learn
ip -n `+peer+` link set eth0 address `+vm2MAC+` up
ip -n `+sw+` link add vm1 type veth peer name eth0 netns `+vm1+`
ip -n `+sw+` link set vm1 master br0 up
ip -n `+vm1+` link set eth0 address `+vm1MAC+`
ip -n `+vm1+` addr add 192.0.2.10/24 dev eth0
ip -n `+vm1+` link set eth0 up
`)
	listen.WaitFor(t, `"msg":"port added","ifname":"vm1"`, 5*time.Second)
	checkNotServed(t, listen, sw, unserved{what: "the routed uplink", ns: peer, port: "up1", addr: "198.51.100.20"}, vm1)
}
