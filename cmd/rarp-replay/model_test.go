package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/netip"
	"os/exec"

	"slices"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"
	"github.com/rarp-replay/rarp-replay/capture"
	"github.com/rarp-replay/rarp-replay/internal/compat"
	"github.com/rarp-replay/rarp-replay/internal/engine"
	"github.com/rarp-replay/rarp-replay/internal/link"
	"github.com/rarp-replay/rarp-replay/internal/nstest"
	"github.com/rarp-replay/rarp-replay/neigh"
	"github.com/vishvananda/netns"
)

var (
	modelSeed     = flag.Uint64("model.seed", 0, "TestKernelModel: seed of the operation sequence (0: a random one, printed)")
	modelSteps    = flag.Int("model.steps", 300, "TestKernelModel: operations to apply")
	modelDuration = flag.Duration("model.duration", 0, "TestKernelModel: apply operations for this long instead of -model.steps (make soak)")
)

// TestKernelModel applies a random sequence of the operations a leaf sees
// (links of every kind the kernel has created, enslaved, released, renamed,
// moved to another namespace and deleted; bridge port flags, STP states and
// VLANs; addresses; neighbors and FDB entries, extern_learn and local) to a
// namespace while the daemon's watchers follow its netlink events. After
// each operation the daemon's link table, its set of captured ports and its
// neighbor mirror must equal what a fresh dump by iproute2 gives, and no
// tunnel, bridge or macvlan may ever be a captured port. A failure prints
// the seed and the operations that led to it; -model.seed replays it.
func TestKernelModel(t *testing.T) {
	compat.Note(t, "kernel-model", compat.Live)
	nstest.RequireRoot(t)
	seed := *modelSeed
	if seed == 0 {
		seed = rand.Uint64()
	}
	t.Logf("seed %d (replay: go test ./cmd/rarp-replay -run TestKernelModel -model.seed %d)", seed, seed)
	m := newModel(t, seed)
	m.start(0)
	deadline := time.Now().Add(*modelDuration)
	for step := 1; ; step++ {
		if *modelDuration > 0 && time.Now().After(deadline) || *modelDuration == 0 && step > *modelSteps {
			t.Logf("%d operations, %d failed as the kernel refused them; features: %v; resyncs: %d",
				step-1, m.refused, m.features, m.resyncs.Load())
			return
		}
		op := m.randomOp()
		m.apply(op)
		m.converge(step)
	}
}

// TestNetlinkOverflow: a burst of 50,000 neighbor changes overflows a
// small netlink receive buffer (ENOBUFS); the mirror must dump again,
// count the resync, and end equal to the kernel's table.
func TestNetlinkOverflow(t *testing.T) {
	nstest.RequireRoot(t)
	m := newModel(t, 1)
	nstest.Run(t, "ip", "-n", m.ns, "link", "add", "br0", "type", "bridge")
	nstest.Run(t, "ip", "-n", m.ns, "link", "set", "br0", "up")
	m.start(4096)
	// 500 addresses (below the kernel's neighbor table limits), each
	// rebound 100 times, alternating MACs and flags: 50,000 changes.
	var batch strings.Builder
	const addrs, rounds = 500, 100
	for round := range rounds {
		for i := range addrs {
			ip := fmt.Sprintf("198.18.%d.%d", i/250, 1+i%250)
			flags := ""
			if (round+i)%2 == 0 {
				flags = " extern_learn"
			}
			fmt.Fprintf(&batch, "neigh replace %s lladdr 02:00:5e:%02x:%02x:%02x dev br0 nud noarp%s\n", ip, round, i>>8, i&0xff, flags)
		}
	}
	cmd := exec.Command("ip", "-n", m.ns, "-batch", "-")
	cmd.Stdin = strings.NewReader(batch.String())
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("ip -batch: %v\n%s", err, out)
	}
	m.history = append(m.history, fmt.Sprintf("ip -batch: %d neighbor changes", addrs*rounds))
	m.converge(1)
	if m.resyncs.Load() == 0 {
		t.Fatal("no resync counted: the burst did not overflow the 4 KiB receive buffer, so the test proves nothing")
	}
	t.Logf("%d resyncs; mirror holds %d bindings", m.resyncs.Load(), len(m.mirror.Records()))
}

// kernelModel is the test's state: the namespace it drives, the daemon's
// tables following it, and what it did so far.
type kernelModel struct {
	t        *testing.T
	rng      *rand.Rand
	seed     uint64
	ns, away string // the switch's namespace, and where links are moved to
	features map[string]bool
	history  []string
	refused  int
	serial   int

	links   *link.Table
	refresh chan struct{} // makes the link watcher dump again
	mirror  *neigh.Mirror
	mgr     *capture.Manager
	resyncs atomic.Int64
}

func newModel(t *testing.T, seed uint64) *kernelModel {
	m := &kernelModel{
		t: t, seed: seed, rng: rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15)),
		ns: nstest.Namespace(t, "model"), away: nstest.Namespace(t, "away"),
		features: map[string]bool{},
	}
	// Quiet IPv6: no duplicate address detection, so that addresses are
	// final when added (the kernel's events and dumps agree either way).
	nstest.Run(t, "ip", "netns", "exec", m.ns, "sysctl", "-qw", "net.ipv6.conf.all.accept_dad=0", "net.ipv6.conf.default.accept_dad=0")
	// Which link kinds and bridge features this kernel has.
	probe := map[string][]string{
		"bond":           {"link", "add", "probe0", "type", "bond"},
		"vlan":           {"link", "add", "probe0", "link", "lo", "type", "vlan", "id", "5"},
		"vrf":            {"link", "add", "probe0", "type", "vrf", "table", "10"},
		"dummy":          {"link", "add", "probe0", "type", "dummy"},
		"macvlan":        {"link", "add", "probe0", "link", "lo", "type", "macvlan"},
		"vlan_filtering": {"link", "add", "probe0", "type", "bridge", "vlan_filtering", "1"},
	}
	for f, args := range probe {
		if _, err := nstest.Output("ip", append([]string{"-n", m.ns}, args...)...); err == nil {
			m.features[f] = true
			nstest.Output("ip", "-n", m.ns, "link", "del", "probe0")
		}
	}
	if !m.features["vlan"] {
		// The vlan device needs an Ethernet lower device, not lo: try again.
		nstest.Output("ip", "-n", m.ns, "link", "add", "probev", "type", "veth", "peer", "name", "probew")
		if _, err := nstest.Output("ip", "-n", m.ns, "link", "add", "probe0", "link", "probev", "type", "vlan", "id", "5"); err == nil {
			m.features["vlan"] = true
		}
		nstest.Output("ip", "-n", m.ns, "link", "del", "probev")
	}
	if !m.features["macvlan"] {
		nstest.Output("ip", "-n", m.ns, "link", "add", "probev", "type", "veth", "peer", "name", "probew")
		if _, err := nstest.Output("ip", "-n", m.ns, "link", "add", "probe0", "link", "probev", "type", "macvlan"); err == nil {
			m.features["macvlan"] = true
		}
		nstest.Output("ip", "-n", m.ns, "link", "del", "probev")
	}
	t.Logf("kernel features: %v", m.features)
	return m
}

// start runs the daemon's watchers and port manager on the namespace, with
// netlink receive buffers of rcvbuf bytes (0: the daemon's defaults).
func (m *kernelModel) start(rcvbuf int) {
	t := m.t
	h, err := netns.GetFromName(m.ns)
	if err != nil {
		t.Fatalf("open namespace %s: %v", m.ns, err)
	}
	t.Cleanup(func() { h.Close() })
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	t.Cleanup(func() { cancel(); wg.Wait() })
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	m.links = link.NewTable()
	m.refresh = make(chan struct{})
	m.mirror = neigh.NewMirror(time.Hour)
	resynced := func(string) { m.resyncs.Add(1) }
	linksIn, neighIn := make(chan struct{}), make(chan struct{})
	wg.Go(func() {
		link.Watch(ctx, m.links, log, func() { close(linksIn) }, link.WatchOptions{Namespace: &h, ReceiveBuffer: rcvbuf, Resynced: resynced, Refresh: m.refresh})
	})
	wg.Go(func() {
		neigh.Watch(ctx, m.mirror, log, func() { close(neighIn) }, neigh.WatchOptions{Namespace: &h, ReceiveBuffer: rcvbuf, Resynced: func() { resynced("neigh") }})
	})
	for _, c := range []chan struct{}{linksIn, neighIn} {
		select {
		case <-c:
		case <-time.After(10 * time.Second):
			t.Fatal("the watchers did not finish their first dump within 10 s")
		}
	}
	m.mgr = capture.NewManager(idleOpener{}, m.links, func(link.Link) bool { return true }, func(engine.Packet) {}, log, engine.NewCounters())
	started := make(chan struct{})
	wg.Go(func() { m.mgr.Run(ctx, func() { close(started) }) })
	<-started
}

// op is one operation: an ip or bridge command run in the namespace.
type op struct {
	cmd  string   // "ip" or "bridge"
	args []string // after -n NS
	ns   string   // another namespace to run it in, when not empty
}

func (o op) String() string { return o.cmd + " " + strings.Join(o.args, " ") }

func (m *kernelModel) apply(o op) {
	ns := m.ns
	if o.ns != "" {
		ns = o.ns
	}
	_, err := nstest.Output(o.cmd, append([]string{"-n", ns}, o.args...)...)
	line := o.String()
	if err != nil {
		m.refused++
		line += "   # refused: " + firstLine(err.Error())
		// A refused operation may have changed a link on its error path
		// without a notification (a bond whose first enslave failed takes
		// a random MAC silently): what the daemon's periodic refresh is
		// for. Refresh now, so the comparison holds the notified state to
		// account, not the kernel's silences.
		m.refresh <- struct{}{}
	}
	m.history = append(m.history, line)
}

func firstLine(s string) string {
	s, _, _ = strings.Cut(s, "\n")
	return s
}

// converge waits until the daemon's tables equal a fresh dump of the
// kernel, and fails the test with the seed and the history when they do
// not within a few seconds.
func (m *kernelModel) converge(step int) {
	t := m.t
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	tick := time.NewTicker(5 * time.Millisecond)
	defer tick.Stop()
	for {
		k := m.dump()
		diff := m.compare(k)
		if diff == "" {
			return
		}
		if time.Now().After(deadline) {
			from := max(0, len(m.history)-25)
			t.Fatalf("step %d: the daemon's tables differ from the kernel's 5 s after the operation (seed %d; replay with -model.seed %d -model.steps %d)\n(-kernel +daemon):\n%s\nlast operations:\n  %s",
				step, m.seed, m.seed, step, diff, strings.Join(m.history[from:], "\n  "))
		}
		<-tick.C
	}
}

// kernelState is a fresh dump of the namespace by iproute2, a source
// independent of the netlink code under test.
type kernelState struct {
	links []link.Link
	neigh []neighRow
}

type neighRow struct {
	IfIndex int
	IP      netip.Addr
	MAC     string
	Remote  bool
}

func (m *kernelModel) dump() kernelState {
	t := m.t
	var k kernelState
	out := nstest.Run(t, "ip", "-n", m.ns, "-d", "-j", "addr", "show")
	links, err := link.LoadIPLinks(strings.NewReader(out))
	if err != nil {
		t.Fatalf("ip -d -j addr show: %v", err)
	}
	if m.features["vlan_filtering"] {
		vs, err := link.LoadBridgeVLANs(strings.NewReader(nstest.Run(t, "bridge", "-n", m.ns, "-j", "vlan", "show")))
		if err != nil {
			t.Fatal(err)
		}
		for i := range links {
			links[i].VLANs = vs[links[i].Name]
		}
	}
	k.links = links
	var rows []struct {
		Dst    string          `json:"dst"`
		Dev    string          `json:"dev"`
		LLAddr string          `json:"lladdr"`
		Extern json.RawMessage `json:"extern_learn"`
		State  []string        `json:"state"`
	}
	if err := json.Unmarshal([]byte(nstest.Run(t, "ip", "-n", m.ns, "-j", "neigh", "show", "nud", "all")), &rows); err != nil {
		t.Fatalf("ip -j neigh show: %v", err)
	}
	byName := map[string]int{}
	for _, l := range links {
		byName[l.Name] = l.Index
	}
	for _, r := range rows {
		ip, err := netip.ParseAddr(r.Dst)
		mac, merr := net.ParseMAC(r.LLAddr)
		// What binds an address: a unicast address to a unicast, non-zero
		// MAC, in a state other than FAILED or INCOMPLETE.
		if err != nil || merr != nil || len(mac) != 6 || mac[0]&1 != 0 || bytes.Equal(mac, make([]byte, 6)) ||
			ip.IsMulticast() || ip.IsUnspecified() || slices.Contains(r.State, "FAILED") || slices.Contains(r.State, "INCOMPLETE") {
			continue
		}
		k.neigh = append(k.neigh, neighRow{IfIndex: byName[r.Dev], IP: ip, MAC: mac.String(), Remote: r.Extern != nil})
	}
	return k
}

// modelLink is what the comparison looks at of a link.
type modelLink struct {
	Index, Master, Parent int
	Name, Kind, MAC       string
	Up, Running, Loopback bool
	VLANID                uint16
	VLANFiltering         bool
	Addrs                 []string
	VLANs                 []link.PortVLAN
	PortInfo              link.PortInfo
}

func view(ls []link.Link) []modelLink {
	byIndex := map[int]link.Link{}
	for _, l := range ls {
		byIndex[l.Index] = l
	}
	out := make([]modelLink, 0, len(ls))
	for _, l := range ls {
		mac := l.MAC.String()
		if bytes.Equal(l.MAC, make([]byte, 6)) {
			mac = "" // lo: iproute2 prints zeros, netlink leaves it out
		}
		v := modelLink{Index: l.Index, Master: l.MasterIndex, Name: l.Name, Kind: l.Kind, MAC: mac,
			Up: l.Up, Running: l.Running, Loopback: l.Loopback, VLANID: l.VLANID, VLANFiltering: l.VLANFiltering}
		if l.Kind == "vlan" || l.Kind == "macvlan" {
			v.Parent = l.ParentIndex // a veth's peer index is the other namespace's business
		}
		for _, a := range l.Addrs {
			v.Addrs = append(v.Addrs, a.String())
		}
		sort.Strings(v.Addrs)
		if master, ok := byIndex[l.MasterIndex]; ok && master.Kind == "bridge" {
			v.PortInfo = l.PortInfo
			if master.VLANFiltering {
				v.VLANs = slices.Clone(l.VLANs)
				slices.SortFunc(v.VLANs, func(a, b link.PortVLAN) int { return int(a.VID) - int(b.VID) })
			}
		}
		out = append(out, v)
	}
	slices.SortFunc(out, func(a, b modelLink) int { return a.Index - b.Index })
	return out
}

// compare returns the differences between the kernel's state and the
// daemon's tables, "" when there are none.
func (m *kernelModel) compare(k kernelState) string {
	var b strings.Builder
	if d := cmp.Diff(view(k.links), view(m.links.All())); d != "" {
		fmt.Fprintf(&b, "link table:\n%s", d)
	}
	// Ports: the kernel's links under the one eligibility rule, up, against
	// the handles the manager holds.
	oracle := link.NewTable()
	oracle.Replace(k.links)
	want := map[int]string{}
	kinds := map[int]string{}
	for _, l := range k.links {
		kinds[l.Index] = l.Kind
		if l.Up && oracle.AccessPort(l.Index) == nil {
			want[l.Index] = l.Name
		}
	}
	got := m.mgr.Ports()
	for idx, name := range got {
		if k := kinds[idx]; link.Tunnels[k] || k == "bridge" || k == "macvlan" {
			fmt.Fprintf(&b, "captured port %s (ifindex %d) is a %s\n", name, idx, k)
		}
	}
	if d := cmp.Diff(want, got); d != "" {
		fmt.Fprintf(&b, "captured ports:\n%s", d)
	}
	var mine []neighRow
	for _, r := range m.mirror.Records() {
		if r.Present {
			mine = append(mine, neighRow{IfIndex: r.IfIndex, IP: r.IP, MAC: r.MAC.String(), Remote: r.Remote})
		}
	}
	less := func(a, b neighRow) int {
		if a.IfIndex != b.IfIndex {
			return a.IfIndex - b.IfIndex
		}
		return a.IP.Compare(b.IP)
	}
	slices.SortFunc(mine, less)
	theirs := slices.Clone(k.neigh)
	slices.SortFunc(theirs, less)
	if d := cmp.Diff(theirs, mine, cmp.Comparer(func(a, b netip.Addr) bool { return a == b })); d != "" {
		fmt.Fprintf(&b, "neighbor mirror (present bindings):\n%s", d)
	}
	if kernel, _ := m.mirror.Counts(); kernel != len(mine) {
		fmt.Fprintf(&b, "mirror counts %d bindings in the kernel; it holds %d present\n", kernel, len(mine))
	}
	return b.String()
}

// randomOp picks the next operation, mostly on links that exist now.
func (m *kernelModel) randomOp() op {
	r := m.rng
	ls := m.links.All()
	var named, bridges, masters, ports, ether []link.Link
	for _, l := range ls {
		if l.Loopback {
			continue
		}
		named = append(named, l)
		switch l.Kind {
		case "bridge":
			bridges = append(bridges, l)
			masters = append(masters, l)
		case "bond", "vrf":
			masters = append(masters, l)
		}
		if l.MasterIndex != 0 {
			if mst, ok := m.links.Get(l.MasterIndex); ok && mst.Kind == "bridge" {
				ports = append(ports, l)
			}
		}
		if len(l.MAC) == 6 && l.Kind != "bridge" && l.Kind != "vrf" && l.Kind != "bond" {
			ether = append(ether, l)
		}
	}
	pick := func(set []link.Link) (link.Link, bool) {
		if len(set) == 0 {
			return link.Link{}, false
		}
		return set[r.IntN(len(set))], true
	}
	ipOp := func(args ...string) op { return op{cmd: "ip", args: args} }
	brOp := func(args ...string) op { return op{cmd: "bridge", args: args} }
	m.serial++
	n := fmt.Sprint(m.serial)
	onOff := func() string { return []string{"on", "off"}[r.IntN(2)] }
	v4 := func() string { return fmt.Sprintf("192.0.2.%d", 1+r.IntN(30)) }
	v6 := func() string { return fmt.Sprintf("2001:db8::%x", 1+r.IntN(30)) }
	mac := func() string { return fmt.Sprintf("02:00:5e:00:00:%02x", 1+r.IntN(30)) }
	for {
		switch r.IntN(24) {
		case 0, 1:
			if len(named) > 40 {
				continue
			}
			return ipOp("link", "add", "v"+n, "type", "veth", "peer", "name", "p"+n)
		case 2:
			if len(bridges) > 4 {
				continue
			}
			args := []string{"link", "add", "br" + n, "type", "bridge"}
			if m.features["vlan_filtering"] && r.IntN(2) == 0 {
				args = append(args, "vlan_filtering", "1")
			}
			return ipOp(args...)
		case 3:
			vni := fmt.Sprint(100 + m.serial)
			return ipOp("link", "add", "vx"+n, "type", "vxlan", "id", vni, "local", "198.18.0.1", "dstport", "4789", "nolearning")
		case 4:
			kinds := []string{}
			for _, k := range []string{"bond", "vrf", "dummy"} {
				if m.features[k] {
					kinds = append(kinds, k)
				}
			}
			if len(kinds) == 0 {
				continue
			}
			k := kinds[r.IntN(len(kinds))]
			if k == "vrf" {
				return ipOp("link", "add", k+n, "type", k, "table", fmt.Sprint(1000+m.serial))
			}
			return ipOp("link", "add", k+n, "type", k)
		case 5:
			l, ok := pick(ether)
			if !ok {
				continue
			}
			if m.features["vlan"] && r.IntN(2) == 0 {
				return ipOp("link", "add", "vl"+n, "link", l.Name, "type", "vlan", "id", fmt.Sprint(10+r.IntN(5)))
			}
			if m.features["macvlan"] {
				return ipOp("link", "add", "mv"+n, "link", l.Name, "type", "macvlan", "mode", "bridge")
			}
		case 6:
			if l, ok := pick(named); ok && len(named) > 6 {
				return ipOp("link", "del", l.Name)
			}
		case 7, 8, 9:
			l, ok1 := pick(named)
			mst, ok2 := pick(masters)
			if ok1 && ok2 && l.Index != mst.Index {
				return ipOp("link", "set", l.Name, "master", mst.Name)
			}
		case 10:
			if l, ok := pick(named); ok && l.MasterIndex != 0 {
				return ipOp("link", "set", l.Name, "nomaster")
			}
		case 11, 12:
			p, ok := pick(ports)
			if !ok {
				continue
			}
			switch r.IntN(4) {
			case 0:
				return brOp("link", "set", "dev", p.Name, "learning", onOff())
			case 1:
				return brOp("link", "set", "dev", p.Name, "flood", onOff())
			case 2:
				return brOp("link", "set", "dev", p.Name, "neigh_suppress", onOff())
			default:
				return brOp("link", "set", "dev", p.Name, "state", fmt.Sprint(r.IntN(5)))
			}
		case 13:
			if !m.features["vlan_filtering"] {
				continue
			}
			p, ok := pick(ports)
			if !ok {
				continue
			}
			vid := fmt.Sprint(10 + r.IntN(5))
			switch r.IntN(3) {
			case 0:
				return brOp("vlan", "del", "dev", p.Name, "vid", vid)
			case 1:
				return brOp("vlan", "add", "dev", p.Name, "vid", vid, "pvid", "untagged")
			default:
				return brOp("vlan", "add", "dev", p.Name, "vid", vid)
			}
		case 14, 15:
			l, ok := pick(named)
			if !ok {
				continue
			}
			var a string
			switch r.IntN(3) {
			case 0:
				a = v4() + "/24"
			case 1:
				a = v6() + "/64"
			default:
				a = fmt.Sprintf("fe80::%x/64", 1+r.IntN(30))
			}
			if r.IntN(3) == 0 {
				return ipOp("addr", "del", a, "dev", l.Name)
			}
			return ipOp("addr", "add", a, "dev", l.Name)
		case 16:
			if l, ok := pick(named); ok {
				return ipOp("link", "set", l.Name, []string{"up", "down"}[r.IntN(2)])
			}
		case 17:
			if l, ok := pick(named); ok {
				switch r.IntN(3) {
				case 0:
					return ipOp("link", "set", l.Name, "mtu", fmt.Sprint(1280+r.IntN(300)))
				case 1:
					return ipOp("link", "set", l.Name, "name", "rn"+n)
				default:
					return ipOp("link", "set", l.Name, "address", mac())
				}
			}
		case 18:
			if r.IntN(2) == 0 {
				if l, ok := pick(named); ok {
					return ipOp("link", "set", l.Name, "netns", m.away)
				}
				continue
			}
			// Bring back a link moved away earlier, if any is there.
			out, _ := nstest.Output("ip", "-n", m.away, "-j", "link", "show")
			var away []struct {
				Name string `json:"ifname"`
			}
			json.Unmarshal([]byte(out), &away)
			for _, a := range away {
				if a.Name != "lo" {
					return op{cmd: "ip", args: []string{"link", "set", a.Name, "netns", m.ns}, ns: m.away}
				}
			}
		case 19, 20, 21:
			l, ok := pick(ether)
			if !ok {
				continue
			}
			if b, ok := pick(bridges); ok && r.IntN(2) == 0 {
				l = b
			}
			ip := v4()
			if r.IntN(2) == 0 {
				ip = v6()
			}
			if r.IntN(4) == 0 {
				return ipOp("neigh", "del", ip, "dev", l.Name)
			}
			args := []string{"neigh", "replace", ip, "lladdr", mac(), "dev", l.Name, "nud",
				[]string{"reachable", "stale", "permanent", "noarp"}[r.IntN(4)]}
			if r.IntN(2) == 0 {
				args = append(args, "extern_learn")
			}
			return ipOp(args...)
		case 22, 23:
			p, ok := pick(ports)
			if !ok {
				continue
			}
			if r.IntN(3) == 0 {
				return brOp("fdb", "del", mac(), "dev", p.Name, "master")
			}
			args := []string{"fdb", "replace", mac(), "dev", p.Name, "master"}
			if r.IntN(2) == 0 {
				args = append(args, "extern_learn")
			}
			return brOp(args...)
		}
	}
}

// idleOpener opens capture handles that never capture anything: the model
// test looks at which ports the manager holds, not at frames.
type idleOpener struct{}

func (idleOpener) Open(link.Link) (capture.Handle, error) {
	return &idleHandle{closed: make(chan struct{})}, nil
}

func (idleOpener) OpenAny() (capture.Handle, error) {
	return nil, errors.New("no any-device handle in the model test")
}

type idleHandle struct {
	once   sync.Once
	closed chan struct{}
}

var errIdleClosed = errors.New("handle closed")

func (h *idleHandle) ReadPacketData() ([]byte, gopacket.CaptureInfo, error) {
	select {
	case <-h.closed:
		return nil, gopacket.CaptureInfo{}, errIdleClosed
	case <-time.After(50 * time.Millisecond):
		return nil, gopacket.CaptureInfo{}, capture.ErrTimeout
	}
}
func (h *idleHandle) WritePacketData([]byte) error { return nil }
func (h *idleHandle) LinkType() layers.LinkType    { return layers.LinkTypeEthernet }
func (h *idleHandle) Close()                       { h.once.Do(func() { close(h.closed) }) }
