package engine

import (
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"
	"github.com/rarp-replay/rarp-replay/internal/link"
	"github.com/rarp-replay/rarp-replay/internal/packet"
)

// The hostile neighbour of TestHostileNeighbourRandom: its port and MAC.
const idxNeighbour = 7

var neighbourMAC = net.HardwareAddr{2, 0, 0x5e, 0x10, 0, 0x66}

// hostileVM is one VM of TestHostileNeighbourRandom, and what the test's
// model knows of its migration.
type hostileVM struct {
	mac   net.HardwareAddr
	port  int
	vlan  uint16 // the tag its frames carry on its port; 0: untagged
	other uint16 // a VLAN it is not in, for frames tagged wrongly; 0: none
	svi   int    // where its bindings are
	net4  [3]byte
	net6  byte // 2001:db8:<net6>::/64
	ips   []netip.Addr
	start time.Time           // the current migration's first probes; zero: none yet
	open  map[netip.Addr]bool // its bindings not answered in this migration
}

// tags is what v's frames carry.
func (v *hostileVM) tags() []uint16 {
	if v.vlan == 0 {
		return nil
	}
	return []uint16{v.vlan}
}

// TestHostileNeighbourRandom drives the engine with random sequences of
// what a bridge with four VMs and a hostile neighbour on a port of its own
// delivers: the VMs' RARPs, their honest answers while their probes wait
// (or after the engine gave them up), forged answers (from the
// neighbour's port, with another Ethernet source, for the neighbour's own
// MAC, claiming the address for another MAC, addressed to someone else
// than the prober, for an address nobody asked about, and on a VLAN-aware
// bridge tagged with a VLAN the VM is not in) and time passing, each frame
// as a port's handle or as the any-device handle hands it over. A
// reference model keeps what must hold: a binding is programmed when, and
// only when, its VM answered a probe of the current migration in time,
// and nothing forged is ever believed. (The neighbour does not send from
// the VMs' own ports, in their VLANs, with their MACs: that is plain MAC
// spoofing, which README, "What the daemon trusts", says no daemon can
// tell from the VM.) A failure prints the seed and the steps that led to
// it.
func TestHostileNeighbourRandom(t *testing.T) {
	const (
		idxVLANBr = 20
		idxSVI10  = 21
		idxSVI20  = 22
	)
	svi := func(index int, name string, vid uint16, net4 string, net6 byte) link.Link {
		return link.Link{Index: index, Name: name, Kind: "vlan", MAC: sviMAC, ParentIndex: idxVLANBr, VLANID: vid, Up: true,
			Addrs: []netip.Prefix{netip.MustParsePrefix(net4 + ".1/24"),
				netip.PrefixFrom(netip.AddrFrom16([16]byte{0x20, 0x01, 0x0d, 0xb8, 0, net6, 15: 1}), 64),
				netip.MustParsePrefix("fe80::1/64")}}
	}
	port := func(index int, name string, master int, vlans ...link.PortVLAN) link.Link {
		return link.Link{Index: index, Name: name, Kind: "veth", MAC: net.HardwareAddr{2, 0, 0, 0, 0, byte(index)}, MasterIndex: master, Up: true, VLANs: vlans}
	}
	tagged := func(vid uint16) link.PortVLAN { return link.PortVLAN{VID: vid} }
	layouts := []struct {
		name  string
		links []link.Link
		vms   []hostileVM
	}{
		{
			name: "bridge",
			links: []link.Link{
				{Index: idxBridge, Name: "br10", Kind: "bridge", MAC: sviMAC, Up: true, Addrs: []netip.Prefix{
					netip.MustParsePrefix("192.0.2.1/24"), netip.MustParsePrefix("2001:db8:10::1/64"), netip.MustParsePrefix("fe80::1/64")}},
				port(idxPort, "vm1", idxBridge), port(idxOther, "vm2", idxBridge), port(idxNeighbour, "vm3", idxBridge),
			},
			vms: []hostileVM{
				{port: idxPort, svi: idxBridge, net4: [3]byte{192, 0, 2}, net6: 0x10},
				{port: idxOther, svi: idxBridge, net4: [3]byte{192, 0, 2}, net6: 0x10},
				{port: idxPort, svi: idxBridge, net4: [3]byte{192, 0, 2}, net6: 0x10},
				{port: idxOther, svi: idxBridge, net4: [3]byte{192, 0, 2}, net6: 0x10},
			},
		},
		{
			// A hypervisor's trunk in VLANs 10 and 20, a tap in VLAN 10
			// untagged, the neighbour on a trunk in both.
			name: "VLAN-aware bridge",
			links: []link.Link{
				{Index: idxVLANBr, Name: "br1", Kind: "bridge", MAC: sviMAC, Up: true, VLANFiltering: true},
				svi(idxSVI10, "vlan10", 10, "192.0.2", 0x10), svi(idxSVI20, "vlan20", 20, "198.51.100", 0x20),
				port(idxPort, "swp1", idxVLANBr, tagged(10), tagged(20)),
				port(idxOther, "tap6", idxVLANBr, link.PortVLAN{VID: 10, PVID: true, Untagged: true}),
				port(idxNeighbour, "swp3", idxVLANBr, tagged(10), tagged(20)),
			},
			vms: []hostileVM{
				{port: idxPort, vlan: 10, other: 20, svi: idxSVI10, net4: [3]byte{192, 0, 2}, net6: 0x10},
				{port: idxPort, vlan: 20, other: 10, svi: idxSVI20, net4: [3]byte{198, 51, 100}, net6: 0x20},
				{port: idxOther, other: 20, svi: idxSVI10, net4: [3]byte{192, 0, 2}, net6: 0x10},
				{port: idxPort, vlan: 20, other: 10, svi: idxSVI20, net4: [3]byte{198, 51, 100}, net6: 0x20},
			},
		},
	}
	for _, l := range layouts {
		t.Run(l.name, func(t *testing.T) {
			seed := uint64(time.Now().UnixNano())
			t.Logf("seed %d", seed)
			links := link.NewTable()
			links.Replace(l.links)
			runHostile(t, seed, links, l.vms)
		})
	}
}

// runHostile is TestHostileNeighbourRandom on one layout.
func runHostile(t *testing.T, seed uint64, links *link.Table, templates []hostileVM) {
	r := rand.New(rand.NewPCG(seed, 16))
	mirror := &fakeResolver{}
	var vms []*hostileVM
	for i, tmpl := range templates {
		v := tmpl
		v.mac = net.HardwareAddr{2, 0, 0x5e, 0x10, 2, byte(i)}
		for j := range 1 + r.IntN(4) {
			ip := netip.AddrFrom4([4]byte{v.net4[0], v.net4[1], v.net4[2], byte(100 + 10*i + j)})
			switch r.IntN(3) {
			case 1:
				ip = netip.AddrFrom16([16]byte{0x20, 0x01, 0x0d, 0xb8, 0, v.net6, 14: byte(i), 15: byte(j + 1)})
			case 2:
				ip = netip.AddrFrom16([16]byte{0xfe, 0x80, 14: byte(i), 15: byte(j + 1)})
			}
			v.ips = append(v.ips, ip)
			mirror.bind(v.svi, v.mac, Binding{IP: ip, Present: true, Remote: true})
		}
		vms = append(vms, &v)
	}
	cfg := Config{ProbeTimeout: 10 * time.Millisecond, Retries: 2, Window: 100 * time.Millisecond}
	giveUp := cfg.wait(1) + cfg.wait(2) + cfg.wait(3) // from the first probe
	send := &fakeSender{}
	prog := &fakeProgrammer{}
	e := New(cfg, links, mirror, send, prog, slog.New(slog.NewTextHandler(io.Discard, nil)), nil)

	var steps []string
	fail := func(format string, args ...any) {
		t.Helper()
		t.Fatalf("seed %d, step %d: %s\nsteps:\n  %s", seed, len(steps), fmt.Sprintf(format, args...), joinLast(steps, 40))
	}
	// probeFor finds the last probe the engine sent for v's ip: the answer
	// is built from it, as the VM's kernel would.
	probeFor := func(v *hostileVM, ip netip.Addr) []byte {
		for i := len(send.frames) - 1; i >= 0; i-- {
			f := send.frames[i]
			if target, _, _ := probeOf(t, f.frame); target == ip && net.HardwareAddr(f.frame[:6]).String() == v.mac.String() {
				return f.frame
			}
		}
		return nil
	}
	// reply builds an answer from mac for ip to the probe's source, tagged
	// with vlans.
	reply := func(mac net.HardwareAddr, ip netip.Addr, probe []byte, vlans []uint16) []byte {
		_, source, _ := probeOf(t, probe)
		b, err := packet.BuildReply(packet.Reply{MAC: mac, IP: ip, DstMAC: sviMAC, DstIP: source, VLANs: vlans})
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	var want []programmed
	now := t0
	for len(steps) < 1500 {
		v := vms[r.IntN(len(vms))]
		ip := v.ips[r.IntN(len(v.ips))]
		probe := probeFor(v, ip)
		waiting := !v.start.IsZero() && v.open[ip]
		in := func(kind string, ifindex int, data []byte) Decision {
			// A third of the frames come as the any-device handle hands
			// them over (a port whose own handle is not open yet): SLL2,
			// the Ethernet source in the cooked header, no destination.
			p := Packet{Data: data, LinkType: layers.LinkTypeEthernet, IfIndex: ifindex, Time: now}
			if r.IntN(3) == 0 {
				p.Data, p.LinkType = cooked(data, ifindex), layers.LinkTypeLinuxSLL2
				kind += " (any device)"
			}
			steps = append(steps, fmt.Sprintf("%v %s %s %s on %d", now.Sub(t0), kind, v.mac, ip, ifindex))
			return e.Process(now, p)
		}
		forged := func(kind string, ifindex int, data []byte) {
			if d := in("forged: "+kind, ifindex, data); d.Verdict == VerdictVerified {
				fail("forged answer (%s) believed", kind)
			}
		}
		switch op := r.IntN(11); {
		case op == 0: // the VM's RARP
			before := len(send.frames)
			rp, err := packet.BuildRARP(v.mac, v.tags())
			if err != nil {
				t.Fatal(err)
			}
			d := in("rarp", v.port, rp)
			if d.Verdict != VerdictProbe {
				break
			}
			if !v.start.IsZero() && len(v.open) > 0 && now.Sub(v.start) < giveUp {
				fail("a new migration for %s while the last one still waits for %v", v.mac, v.open)
			}
			var got []string
			for _, s := range send.frames[before:] {
				target, _, vlans := probeOf(t, s.frame)
				if s.ifindex != v.port || net.HardwareAddr(s.frame[:6]).String() != v.mac.String() || !slices.Equal(vlans, v.tags()) {
					fail("probe on %d to %x tagged %v, want on %d to %s tagged %v", s.ifindex, s.frame[:6], vlans, v.port, v.mac, v.tags())
				}
				got = append(got, target.String())
			}
			var all []string
			for _, a := range v.ips {
				all = append(all, a.String())
			}
			slices.Sort(got)
			slices.Sort(all)
			if !slices.Equal(got, all) {
				fail("probes for %v, want %v", got, all)
			}
			v.start, v.open = now, map[netip.Addr]bool{}
			for _, a := range v.ips {
				v.open[a] = true
			}
		case op <= 3 && probe != nil && (!waiting || now.Sub(v.start) < giveUp-5*time.Millisecond):
			// The VM answers its probe: believed while it waits, not once
			// given up or answered (5 ms before giving up are left out).
			d := in("answer", v.port, reply(v.mac, ip, probe, v.tags()))
			if got := d.Verdict == VerdictVerified; got != waiting {
				fail("answer: verdict %s (%s), want verified %v (%v after the first probe)", d.Verdict, d.Reason, waiting, now.Sub(v.start))
			}
			if waiting {
				delete(v.open, ip)
				want = append(want, programmed{v.svi, ip, v.mac.String()})
			}
		case op == 4 && probe != nil: // the same answer, from the neighbour's port
			forged("other port", idxNeighbour, reply(v.mac, ip, probe, v.tags()))
		case op == 5 && probe != nil: // from the VM's port, another Ethernet source
			b := reply(v.mac, ip, probe, v.tags())
			copy(b[6:12], neighbourMAC)
			forged("Ethernet source", v.port, b)
		case op == 6 && probe != nil: // the neighbour claims the address for itself
			forged("neighbour's MAC", idxNeighbour, reply(neighbourMAC, ip, probe, v.tags()))
		case op == 7 && probe != nil:
			// The VM answers the neighbour's own request: addressed to the
			// neighbour, not to the prober.
			b, err := packet.BuildReply(packet.Reply{MAC: v.mac, IP: ip, DstMAC: neighbourMAC, DstIP: neighbourIP(ip), VLANs: v.tags()})
			if err != nil {
				t.Fatal(err)
			}
			forged("addressed to the neighbour", v.port, b)
		case op == 8 && probe != nil:
			// From the VM's port and Ethernet source, but the ARP sender or
			// the NA's target link-layer address is the neighbour's MAC: the
			// address claimed for another MAC.
			b := reply(neighbourMAC, ip, probe, v.tags())
			copy(b[6:12], v.mac)
			forged("another MAC claimed", v.port, b)
		case op == 9 && probe != nil && v.other != 0:
			// The VM's answer, tagged with a VLAN it is not in: another
			// tenant's frame on the same trunk.
			forged("other VLAN", v.port, reply(v.mac, ip, probe, []uint16{v.other}))
		case op == 9: // the VM's MAC, for an address nobody asked about
			decoy := netip.AddrFrom4([4]byte{v.net4[0], v.net4[1], v.net4[2], 250})
			b, err := packet.BuildReply(packet.Reply{MAC: v.mac, IP: decoy, DstMAC: sviMAC,
				DstIP: netip.AddrFrom4([4]byte{v.net4[0], v.net4[1], v.net4[2], 1}), VLANs: v.tags()})
			if err != nil {
				t.Fatal(err)
			}
			forged("decoy", v.port, b)
		default: // time passes
			now = now.Add(time.Duration(r.IntN(12_000)) * time.Microsecond)
			e.Advance(now)
			steps = append(steps, fmt.Sprintf("%v advance", now.Sub(t0)))
		}
		for _, v := range vms {
			if !v.start.IsZero() && now.Sub(v.start) >= giveUp {
				clear(v.open) // given up
			}
		}
		if !slices.Equal(prog.got, want) {
			fail("programmed %v, want %v", prog.got, want)
		}
	}
	e.Advance(now.Add(time.Hour))
	if p, m := e.InFlight(); p != 0 || m != 0 {
		fail("in flight after an hour: %d probes, %d migrations", p, m)
	}
	if !slices.Equal(prog.got, want) {
		fail("programmed %v, want %v", prog.got, want)
	}
	t.Logf("%d steps, %d bindings programmed, %d probes sent", len(steps), len(want), len(send.frames))
}

// probeOf decodes a probe the engine sent, tagged or not: its target, its
// source address and its VLAN tags, outermost first.
func probeOf(t *testing.T, frame []byte) (target, source netip.Addr, vlans []uint16) {
	t.Helper()
	p := gopacket.NewPacket(frame, layers.LinkTypeEthernet, gopacket.Default)
	for _, l := range p.Layers() {
		if d, ok := l.(*layers.Dot1Q); ok {
			vlans = append(vlans, d.VLANIdentifier)
		}
	}
	if a, ok := p.Layer(layers.LayerTypeARP).(*layers.ARP); ok {
		target, _ = netip.AddrFromSlice(a.DstProtAddress)
		source, _ = netip.AddrFromSlice(a.SourceProtAddress)
		return target, source, vlans
	}
	if ip, ok := p.Layer(layers.LayerTypeIPv6).(*layers.IPv6); ok {
		target, _ = netip.AddrFromSlice(ip.DstIP)
		source, _ = netip.AddrFromSlice(ip.SrcIP)
		return target, source, vlans
	}
	t.Fatalf("not a probe: % x", frame)
	return
}

// neighbourIP is the neighbour's address in ip's family and scope.
func neighbourIP(ip netip.Addr) netip.Addr {
	switch {
	case ip.Is4():
		return netip.MustParseAddr("192.0.2.66")
	case ip.IsLinkLocalUnicast():
		return netip.MustParseAddr("fe80::66")
	}
	return netip.MustParseAddr("2001:db8:10::66")
}

// joinLast joins the last n of steps, one per line.
func joinLast(steps []string, n int) string {
	if len(steps) > n {
		steps = steps[len(steps)-n:]
	}
	return strings.Join(steps, "\n  ")
}
