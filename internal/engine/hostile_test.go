package engine

import (
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/netip"
	"slices"
	"testing"
	"time"

	"github.com/gopacket/gopacket/layers"
	"github.com/rarp-replay/rarp-replay/internal/link"
	"github.com/rarp-replay/rarp-replay/internal/packet"
)

// TestHostileNeighbourRandom drives the engine with random sequences of
// what a bridge with four VMs and a hostile neighbour on a port of its own
// delivers: the VMs' RARPs, their honest answers while their probes wait
// (or after the engine gave them up), forged answers (from the
// neighbour's port, with another Ethernet source, for the neighbour's own
// MAC, addressed to someone else than the prober, for an address nobody
// asked about) and time passing, each frame as a port's handle or as the
// any-device handle hands it over. A reference model keeps what must hold:
// a binding is programmed when, and only when, its VM answered a probe of
// the current migration in time, and nothing the neighbour sends is ever
// believed. (The neighbour does not send from the VMs' own ports with
// their MACs: that is plain MAC spoofing, which README, "What the daemon
// trusts", says no daemon can tell from the VM.) A failure prints the seed
// and the steps that led to it.
func TestHostileNeighbourRandom(t *testing.T) {
	seed := uint64(time.Now().UnixNano())
	t.Logf("seed %d", seed)
	r := rand.New(rand.NewPCG(seed, 16))

	const idxNeighbour = 7
	neighbourMAC := net.HardwareAddr{2, 0, 0x5e, 0x10, 0, 0x66}
	links := link.NewTable()
	links.Replace([]link.Link{
		{Index: idxBridge, Name: "br10", Kind: "bridge", MAC: sviMAC, Up: true, Addrs: []netip.Prefix{
			netip.MustParsePrefix("192.0.2.1/24"), netip.MustParsePrefix("2001:db8:10::1/64"), netip.MustParsePrefix("fe80::1/64")}},
		{Index: idxPort, Name: "vm1", Kind: "veth", MAC: net.HardwareAddr{2, 0, 0, 0, 0, 3}, MasterIndex: idxBridge, Up: true},
		{Index: idxOther, Name: "vm2", Kind: "veth", MAC: net.HardwareAddr{2, 0, 0, 0, 0, 6}, MasterIndex: idxBridge, Up: true},
		{Index: idxNeighbour, Name: "vm3", Kind: "veth", MAC: net.HardwareAddr{2, 0, 0, 0, 0, 7}, MasterIndex: idxBridge, Up: true},
	})
	type vm struct {
		mac   net.HardwareAddr
		port  int
		ips   []netip.Addr
		start time.Time           // the current migration's first probes; zero: none yet
		open  map[netip.Addr]bool // its bindings not answered in this migration
	}
	mirror := &fakeResolver{}
	var vms []*vm
	for i := range 4 {
		v := &vm{mac: net.HardwareAddr{2, 0, 0x5e, 0x10, 2, byte(i)}, port: []int{idxPort, idxOther}[i%2]}
		for j := range 1 + r.IntN(4) {
			ip := netip.AddrFrom4([4]byte{192, 0, 2, byte(100 + 10*i + j)})
			switch r.IntN(3) {
			case 1:
				ip = netip.AddrFrom16([16]byte{0x20, 0x01, 0x0d, 0xb8, 0, 0x10, 14: byte(i), 15: byte(j + 1)})
			case 2:
				ip = netip.AddrFrom16([16]byte{0xfe, 0x80, 14: byte(i), 15: byte(j + 1)})
			}
			v.ips = append(v.ips, ip)
			mirror.bind(idxBridge, v.mac, Binding{IP: ip, Present: true, Remote: true})
		}
		vms = append(vms, v)
	}
	decoy := netip.MustParseAddr("192.0.2.250") // bound to no one
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
	probeFor := func(v *vm, ip netip.Addr) []byte {
		for i := len(send.frames) - 1; i >= 0; i-- {
			f := send.frames[i]
			if target, _ := probeTarget(t, f.frame); target == ip && net.HardwareAddr(f.frame[:6]).String() == v.mac.String() {
				return f.frame
			}
		}
		return nil
	}
	answer := func(v *vm, ip netip.Addr, probe []byte, at time.Time) []byte {
		_, source := probeTarget(t, probe)
		b, err := packet.BuildReply(packet.Reply{MAC: v.mac, IP: ip, DstMAC: sviMAC, DstIP: source})
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
		expired := !v.start.IsZero() && now.Sub(v.start) >= giveUp
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
		switch op := r.IntN(10); {
		case op == 0: // the VM's RARP
			before := len(send.frames)
			rp, err := packet.BuildRARP(v.mac, nil)
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
				if s.ifindex != v.port || net.HardwareAddr(s.frame[:6]).String() != v.mac.String() {
					fail("probe on %d to %x, want on %d to %s", s.ifindex, s.frame[:6], v.port, v.mac)
				}
				target, _ := probeTarget(t, s.frame)
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
		case op <= 3 && probe != nil && (!waiting || now.Sub(v.start) < giveUp-5*time.Millisecond || now.Sub(v.start) >= giveUp+5*time.Millisecond):
			// The VM answers its probe: believed while it waits, not once
			// given up (5 ms either side of that instant are left out).
			d := in("answer", v.port, answer(v, ip, probe, now))
			believe := waiting && !expired
			if got := d.Verdict == VerdictVerified; got != believe {
				fail("answer: verdict %s (%s), want verified %v (waiting %v, %v after the first probe)", d.Verdict, d.Reason, believe, waiting, now.Sub(v.start))
			}
			if believe {
				delete(v.open, ip)
				want = append(want, programmed{idxBridge, ip, v.mac.String()})
			}
		case op == 4 && probe != nil: // the same answer, from the neighbour's port
			forged("other port", idxNeighbour, answer(v, ip, probe, now))
		case op == 5 && probe != nil: // from the VM's port, another Ethernet source
			b := answer(v, ip, probe, now)
			copy(b[6:12], neighbourMAC)
			forged("Ethernet source", v.port, b)
		case op == 6 && probe != nil: // the neighbour claims the address for itself
			_, source := probeTarget(t, probe)
			b, err := packet.BuildReply(packet.Reply{MAC: neighbourMAC, IP: ip, DstMAC: sviMAC, DstIP: source})
			if err != nil {
				t.Fatal(err)
			}
			forged("neighbour's MAC", idxNeighbour, b)
		case op == 7 && probe != nil:
			// The VM answers the neighbour's own request: addressed to the
			// neighbour, not to the prober.
			b, err := packet.BuildReply(packet.Reply{MAC: v.mac, IP: ip, DstMAC: neighbourMAC, DstIP: neighbourIP(ip)})
			if err != nil {
				t.Fatal(err)
			}
			forged("addressed to the neighbour", v.port, b)
		case op == 8 && probe != nil && r.IntN(2) == 0:
			// From the VM's port and Ethernet source, but the ARP sender or
			// the NA's target link-layer address is the neighbour's MAC: the
			// address claimed for another MAC.
			_, source := probeTarget(t, probe)
			b, err := packet.BuildReply(packet.Reply{MAC: neighbourMAC, IP: ip, DstMAC: sviMAC, DstIP: source})
			if err != nil {
				t.Fatal(err)
			}
			copy(b[6:12], v.mac)
			forged("another MAC claimed", v.port, b)
		case op == 8: // the VM's MAC, for an address nobody asked about
			b, err := packet.BuildReply(packet.Reply{MAC: v.mac, IP: decoy, DstMAC: sviMAC, DstIP: netip.MustParseAddr("192.0.2.1")})
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
	out := ""
	for i, s := range steps {
		if i > 0 {
			out += "\n  "
		}
		out += s
	}
	return out
}
