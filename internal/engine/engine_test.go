package engine

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"runtime"
	"slices"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/gopacket/gopacket/layers"
	"github.com/rarp-replay/rarp-replay/internal/link"
	"github.com/rarp-replay/rarp-replay/internal/packet"
)

const (
	idxBridge = 2
	idxPort   = 3
	idxVXLAN  = 4
	idxL3     = 5
	idxOther  = 6 // another VM's port on the same bridge
)

var (
	vmMAC    = net.HardwareAddr{2, 0, 0x5e, 0x10, 0, 0x0a}
	vm2MAC   = net.HardwareAddr{2, 0, 0x5e, 0x10, 0, 0x0b}
	sviMAC   = net.HardwareAddr{2, 0, 0x5e, 0x10, 0, 0x01}
	ip10     = netip.MustParseAddr("192.0.2.10")
	ip11     = netip.MustParseAddr("192.0.2.11")
	ip99     = netip.MustParseAddr("192.0.2.99") // bound to the VM's MAC, not owned by the VM
	ip6      = netip.MustParseAddr("2001:db8:10::10")
	t0       = time.Unix(1_700_000_000, 0)
	cmpAddrs = cmp.Comparer(func(a, b netip.Addr) bool { return a == b })
)

type sent struct {
	ifindex int
	frame   []byte
}

type fakeSender struct{ frames []sent }

func (s *fakeSender) Send(ifindex int, frame []byte) error {
	s.frames = append(s.frames, sent{ifindex, frame})
	return nil
}

type programmed struct {
	ifindex int
	ip      netip.Addr
	mac     string
}

type fakeProgrammer struct {
	got   []programmed
	delay time.Duration // how long each Program takes, as a kernel busy with RTNL would
}

func (p *fakeProgrammer) Program(ifindex int, ip netip.Addr, mac net.HardwareAddr) error {
	p.got = append(p.got, programmed{ifindex, ip, mac.String()})
	time.Sleep(p.delay)
	return nil
}

// fakeResolver serves bindings the test set, in the order set, as the
// neighbor mirror would.
type fakeResolver struct {
	by map[string][]Binding
}

func (r *fakeResolver) bind(ifindex int, mac net.HardwareAddr, b Binding) {
	if r.by == nil {
		r.by = map[string][]Binding{}
	}
	k := fmt.Sprint(ifindex, mac)
	set := slices.DeleteFunc(r.by[k], func(o Binding) bool { return o.IP == b.IP })
	r.by[k] = append(set, b)
}

func (r *fakeResolver) Lookup(ifindex int, mac net.HardwareAddr) []Binding {
	out := slices.Clone(r.by[fmt.Sprint(ifindex, mac)])
	slices.SortFunc(out, func(a, b Binding) int { return a.IP.Compare(b.IP) })
	return out
}

type fixture struct {
	e       *Engine
	send    *fakeSender
	prog    *fakeProgrammer
	mirror  *fakeResolver
	reports []Report
}

func newFixture(t *testing.T, cfg Config) *fixture {
	t.Helper()
	links := link.NewTable()
	links.Replace([]link.Link{
		{Index: idxBridge, Name: "br10", Kind: "bridge", MAC: sviMAC, Up: true, Addrs: []netip.Prefix{
			netip.MustParsePrefix("192.0.2.1/24"), netip.MustParsePrefix("2001:db8:10::1/64"), netip.MustParsePrefix("fe80::1/64")}},
		{Index: idxPort, Name: "vm1", Kind: "veth", MAC: net.HardwareAddr{2, 0, 0, 0, 0, 3}, MasterIndex: idxBridge, Up: true},
		{Index: idxVXLAN, Name: "vx10", Kind: "vxlan", MAC: net.HardwareAddr{2, 0, 0, 0, 0, 4}, MasterIndex: idxBridge, Up: true},
		{Index: idxOther, Name: "vm2", Kind: "veth", MAC: net.HardwareAddr{2, 0, 0, 0, 0, 6}, MasterIndex: idxBridge, Up: true},
	})
	m := &fakeResolver{}
	for _, ip := range []netip.Addr{ip10, ip11, ip99, ip6} {
		m.bind(idxBridge, vmMAC, Binding{IP: ip, Present: true, Remote: true})
	}
	m.bind(idxBridge, vm2MAC, Binding{IP: netip.MustParseAddr("192.0.2.20"), Present: true, Remote: true})
	f := &fixture{send: &fakeSender{}, prog: &fakeProgrammer{}, mirror: m}
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	f.e = New(cfg, links, m, f.send, f.prog, log, func(r Report) { f.reports = append(f.reports, r) })
	return f
}

func rarp(t *testing.T, mac net.HardwareAddr, ifindex int, at time.Time) Packet {
	t.Helper()
	b, err := packet.BuildRARP(mac, nil)
	if err != nil {
		t.Fatal(err)
	}
	return Packet{Data: b, LinkType: layers.LinkTypeEthernet, IfIndex: ifindex, Time: at}
}

// replyTo answers a probe frame the way the VM's kernel does.
func replyTo(t *testing.T, probe []byte, mac net.HardwareAddr, at time.Time) Packet {
	t.Helper()
	target, source := probeTarget(t, probe)
	b, err := packet.BuildReply(packet.Reply{MAC: mac, IP: target, DstMAC: sviMAC, DstIP: source})
	if err != nil {
		t.Fatal(err)
	}
	return Packet{Data: b, LinkType: layers.LinkTypeEthernet, IfIndex: idxPort, Time: at}
}

// probeTarget decodes a probe the engine sent: its target and source address.
func probeTarget(t *testing.T, frame []byte) (target, source netip.Addr) {
	t.Helper()
	target, source, _ = probeOf(t, frame)
	return target, source
}

func targets(t *testing.T, fs []sent) []string {
	var out []string
	for _, f := range fs {
		target, source := probeTarget(t, f.frame)
		out = append(out, target.String()+" from "+source.String())
	}
	return out
}

func TestMigrationVerifiedAndProgrammed(t *testing.T) {
	f := newFixture(t, DefaultConfig)
	d := f.e.Process(t0, rarp(t, vmMAC, idxPort, t0))
	if d.Verdict != VerdictProbe {
		t.Fatalf("verdict = %s (%s), want probe", d.Verdict, d.Reason)
	}
	wantProbes := []string{"192.0.2.10 from 192.0.2.1", "192.0.2.11 from 192.0.2.1", "192.0.2.99 from 192.0.2.1", "2001:db8:10::10 from 2001:db8:10::1"}
	if diff := cmp.Diff(wantProbes, targets(t, f.send.frames)); diff != "" {
		t.Fatalf("probes (-want +got):\n%s", diff)
	}
	for _, s := range f.send.frames {
		if s.ifindex != idxPort {
			t.Errorf("probe sent on ifindex %d, want the RARP's port %d", s.ifindex, idxPort)
		}
	}
	inFlight := func(when string, probes, migrations int) {
		t.Helper()
		if p, m := f.e.InFlight(); p != probes || m != migrations {
			t.Errorf("%s: InFlight() = %d probes, %d migrations; want %d, %d", when, p, m, probes, migrations)
		}
	}
	inFlight("after the RARP", 4, 1)
	// The VM owns all but 192.0.2.99 and answers within a millisecond.
	for i, s := range f.send.frames {
		if target, _ := probeTarget(t, s.frame); target == ip99 {
			continue
		}
		if d := f.e.Process(t0.Add(time.Millisecond), replyTo(t, s.frame, vmMAC, t0)); d.Verdict != VerdictVerified {
			t.Errorf("reply %d: verdict %s (%s), want verified", i, d.Verdict, d.Reason)
		}
	}
	inFlight("after the answers", 1, 1)
	// The other RARPs of the QEMU announcement change nothing.
	for _, ms := range []int{50, 200, 450, 800} {
		at := t0.Add(time.Duration(ms) * time.Millisecond)
		if d := f.e.Process(at, rarp(t, vmMAC, idxPort, at)); d.Verdict != VerdictDuplicate {
			t.Errorf("RARP at %d ms: verdict %s, want duplicate", ms, d.Verdict)
		}
		f.e.Advance(at)
	}
	f.e.Advance(t0.Add(10 * time.Second))
	inFlight("after the cycle", 0, 0)

	want := []programmed{{idxBridge, ip10, vmMAC.String()}, {idxBridge, ip11, vmMAC.String()}, {idxBridge, ip6, vmMAC.String()}}
	if diff := cmp.Diff(want, f.prog.got, cmp.AllowUnexported(programmed{}), cmpAddrs); diff != "" {
		t.Errorf("programmed (-want +got):\n%s", diff)
	}
	// 4 probes, then 192.0.2.99 alone is retried Retries times.
	if got, want := len(f.send.frames), 4+DefaultConfig.Retries; got != want {
		t.Errorf("sent %d probes, want %d", got, want)
	}
	if len(f.reports) != 1 {
		t.Fatalf("got %d reports, want 1", len(f.reports))
	}
	r := f.reports[0]
	if diff := cmp.Diff([]netip.Addr{ip99}, r.Failed, cmpAddrs); diff != "" {
		t.Errorf("failed (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff([]netip.Addr{ip10, ip11, ip6}, r.Verified, cmpAddrs); diff != "" {
		t.Errorf("verified (-want +got):\n%s", diff)
	}
	if r.Latency != time.Millisecond || r.Port != "vm1" || r.SVI != "br10" {
		t.Errorf("report = %v, want latency 1ms port vm1 svi br10", r)
	}
	wantAnswered := map[netip.Addr]time.Duration{ip10: time.Millisecond, ip11: time.Millisecond, ip6: time.Millisecond}
	if diff := cmp.Diff(wantAnswered, r.Answered, cmpAddrs); diff != "" {
		t.Errorf("answered (-want +got):\n%s", diff)
	}
	if got := f.e.Stats().Get(Failed); got != 1 {
		t.Errorf("failed counter = %d, want 1", got)
	}
}

// TestCycleSizes: a VM with any number of addresses, on both sides of
// inlineProbes (a cycle's own storage for its probes), gets one probe per
// address, again on retry, and each answered one programmed: the probes
// of a cycle are not overwritten by one another, nor by another cycle's.
func TestCycleSizes(t *testing.T) {
	for _, n := range []int{1, inlineProbes - 1, inlineProbes, inlineProbes + 1, 3 * inlineProbes} {
		t.Run(fmt.Sprint(n, " addresses"), func(t *testing.T) {
			f := newFixture(t, Config{ProbeTimeout: 10 * time.Millisecond, Retries: 1, Window: time.Second})
			mac := net.HardwareAddr{2, 0, 0x5e, 0x10, 1, byte(n)}
			var want, wantProgrammed []string
			for i := range n {
				ip := netip.AddrFrom4([4]byte{192, 0, 2, byte(100 + i)})
				if i%2 == 1 {
					ip = netip.AddrFrom16([16]byte{0x20, 0x01, 0x0d, 0xb8, 0, 0x10, 15: byte(100 + i)})
				}
				f.mirror.bind(idxBridge, mac, Binding{IP: ip, Present: true, Remote: true})
				from := "192.0.2.1"
				if ip.Is6() {
					from = "2001:db8:10::1"
				}
				want = append(want, ip.String()+" from "+from)
			}
			slices.Sort(want)
			// Another VM's cycle starts in between, as on a busy port.
			if d := f.e.Process(t0, rarp(t, mac, idxPort, t0)); d.Verdict != VerdictProbe || len(d.Probes) != n {
				t.Fatalf("RARP: verdict %s (%s), %d probes; want probe, %d", d.Verdict, d.Reason, len(d.Probes), n)
			}
			if d := f.e.Process(t0, rarp(t, vmMAC, idxPort, t0)); d.Verdict != VerdictProbe {
				t.Fatalf("other VM's RARP: verdict %s (%s), want probe", d.Verdict, d.Reason)
			}
			first := f.send.frames[:n]
			got := targets(t, first)
			slices.Sort(got)
			if diff := cmp.Diff(want, got); diff != "" {
				t.Fatalf("first probes (-want +got):\n%s", diff)
			}
			// Every other address answers the first probe; the rest answer
			// the retry, which must be the same probe again.
			for i, s := range first {
				if i%2 == 0 {
					if d := f.e.Process(t0.Add(time.Millisecond), replyTo(t, s.frame, mac, t0.Add(time.Millisecond))); d.Verdict != VerdictVerified {
						t.Fatalf("answer to probe %d: verdict %s (%s), want verified", i, d.Verdict, d.Reason)
					}
					target, _ := probeTarget(t, s.frame)
					wantProgrammed = append(wantProgrammed, target.String())
				}
			}
			before := len(f.send.frames)
			f.e.Advance(t0.Add(10 * time.Millisecond))
			var retries []sent
			for _, s := range f.send.frames[before:] {
				if dst := net.HardwareAddr(s.frame[:6]); dst.String() == mac.String() {
					retries = append(retries, s)
				}
			}
			if len(retries) != n/2 {
				t.Fatalf("%d retries, want %d (the unanswered)", len(retries), n/2)
			}
			for i, s := range retries {
				if !slices.ContainsFunc(first, func(o sent) bool { return string(o.frame) == string(s.frame) }) {
					t.Errorf("retry %d is no first probe again: % x", i, s.frame)
				}
				if d := f.e.Process(t0.Add(11*time.Millisecond), replyTo(t, s.frame, mac, t0.Add(11*time.Millisecond))); d.Verdict != VerdictVerified {
					t.Fatalf("answer to retry %d: verdict %s (%s), want verified", i, d.Verdict, d.Reason)
				}
				target, _ := probeTarget(t, s.frame)
				wantProgrammed = append(wantProgrammed, target.String())
			}
			f.e.Advance(t0.Add(10 * time.Second))
			var gotProgrammed []string
			for _, p := range f.prog.got {
				if p.mac == mac.String() {
					gotProgrammed = append(gotProgrammed, p.ip.String())
				}
			}
			slices.Sort(wantProgrammed)
			slices.Sort(gotProgrammed)
			if diff := cmp.Diff(wantProgrammed, gotProgrammed); diff != "" || len(gotProgrammed) != n {
				t.Errorf("programmed %d of %d (-want +got):\n%s", len(gotProgrammed), n, diff)
			}
		})
	}
}

// TestStages: a programmed binding's report splits its time from the RARP
// into the daemon's decision (and the waits of probes the VM did not
// answer), the VM's answer, the daemon's queue and the programming.
func TestStages(t *testing.T) {
	f := newFixture(t, Config{ProbeTimeout: 10 * time.Millisecond, Retries: 2, Window: time.Second})
	f.prog.delay = 2 * time.Millisecond
	ms := func(x float64) time.Duration { return time.Duration(x * float64(time.Millisecond)) }
	at := func(x float64) time.Time { return t0.Add(ms(x)) }
	answer := func(frames []sent, ip netip.Addr, captured, handled float64) {
		t.Helper()
		for _, s := range frames {
			if target, _ := probeTarget(t, s.frame); target == ip {
				if d := f.e.Process(at(handled), replyTo(t, s.frame, vmMAC, at(captured))); d.Verdict != VerdictVerified {
					t.Fatalf("answer for %s: verdict %s (%s), want verified", ip, d.Verdict, d.Reason)
				}
				return
			}
		}
		t.Fatalf("no probe for %s", ip)
	}
	// The RARP, captured at 0, is handled at 0.2 ms: the first probes.
	f.e.Process(at(0.2), rarp(t, vmMAC, idxPort, t0))
	first := slices.Clone(f.send.frames)
	// 192.0.2.10 answers its first probe 1 ms after it; the daemon gets to
	// the answer 0.3 ms after its capture.
	answer(first, ip10, 1.2, 1.5)
	// The others are probed again at 10.2 ms (the timeout). The VM's
	// answer to 2001:db8:10::10's first probe was captured just before
	// that and handled after: no time is the VM's.
	f.e.Advance(at(10.2))
	retries := slices.Clone(f.send.frames[len(first):])
	answer(first, ip6, 10.1, 10.6)
	// 192.0.2.11 answers the retry 0.5 ms after it.
	answer(retries, ip11, 10.7, 10.8)
	f.e.Advance(at(10_000))
	if len(f.reports) != 1 {
		t.Fatalf("got %d reports, want 1", len(f.reports))
	}
	r := f.reports[0]
	want := map[netip.Addr]Stages{
		ip10: {Probe: ms(0.2), Answer: ms(1), Handle: ms(0.3)},
		ip6:  {Probe: ms(10.2), Answer: 0, Handle: ms(0.5)},
		ip11: {Probe: ms(10.2), Answer: ms(0.5), Handle: ms(0.1)},
	}
	if len(r.Stages) != len(want) {
		t.Errorf("stages for %d addresses, want %d (the programmed ones): %v", len(r.Stages), len(want), r.Stages)
	}
	for ip, w := range want {
		got, ok := r.Stages[ip]
		if !ok {
			t.Errorf("%s: no stages", ip)
			continue
		}
		if got.Program < f.prog.delay {
			t.Errorf("%s: programming took %v, less than the programmer's %v", ip, got.Program, f.prog.delay)
		}
		got.Program = 0
		if got != w {
			t.Errorf("%s: stages %+v, want %+v", ip, got, w)
		}
	}
}

// TestSkippedBusy: an address another MAC's migration is probing is not
// probed again for a second MAC at the same time; the second migration
// reports it skipped, with the reason.
func TestSkippedBusy(t *testing.T) {
	f := newFixture(t, Config{ProbeTimeout: 10 * time.Millisecond, Retries: 1, Window: time.Second})
	f.mirror.bind(idxBridge, vm2MAC, Binding{IP: ip10, Present: true, Remote: true})
	f.e.Process(t0, rarp(t, vmMAC, idxPort, t0))
	d := f.e.Process(t0, rarp(t, vm2MAC, idxOther, t0))
	if d.Verdict != VerdictProbe || len(d.Probes) != 1 || d.Probes[0] != netip.MustParseAddr("192.0.2.20") {
		t.Fatalf("second MAC: verdict %s, probes %v; want a probe of 192.0.2.20 alone", d.Verdict, d.Probes)
	}
	f.e.Advance(t0.Add(time.Hour))
	var got []Skipped
	for _, r := range f.reports {
		if r.MAC.String() == vm2MAC.String() {
			got = r.Skipped
		} else if len(r.Skipped) != 0 {
			t.Errorf("first MAC's report skipped %v, want nothing", r.Skipped)
		}
	}
	if diff := cmp.Diff([]Skipped{{ip10, SkipBusy}}, got, cmpAddrs); diff != "" {
		t.Errorf("second MAC's skipped addresses (-want +got):\n%s", diff)
	}
}

func TestNeverProgramsUnverified(t *testing.T) {
	f := newFixture(t, Config{ProbeTimeout: 10 * time.Millisecond, Retries: 2, Window: time.Second})
	f.e.Process(t0, rarp(t, vmMAC, idxPort, t0))
	// Replies that must not verify anything: the wrong MAC for a probed
	// address, and an address nobody probed.
	probe99 := probeFor(t, f.send.frames, ip99)
	for _, p := range []Packet{replyTo(t, probe99, vm2MAC, t0), replyTo(t, mustProbe(t, "192.0.2.77"), vmMAC, t0)} {
		if d := f.e.Process(t0, p); d.Verdict != VerdictDrop || d.Reason != "unsolicited-reply" {
			t.Errorf("verdict %s (%s), want drop unsolicited-reply", d.Verdict, d.Reason)
		}
	}
	f.e.Advance(t0.Add(time.Hour))
	if len(f.prog.got) != 0 {
		t.Errorf("programmed %v without a reply", f.prog.got)
	}
	if got := f.e.Stats().Get(Failed); got != 4 {
		t.Errorf("failed = %d, want 4", got)
	}
	// A reply after the binding was given up is unsolicited too.
	if d := f.e.Process(t0.Add(time.Hour), replyTo(t, probe99, vmMAC, t0)); d.Verdict != VerdictDrop {
		t.Errorf("late reply verdict %s, want drop", d.Verdict)
	}
}

// TestDuplicateAnswer: an answer seen again after it was believed (both
// capture handles caught it, or the VM answered twice) is counted as a
// duplicate, not as an unsolicited reply, while its migration is in its
// window; a copy from elsewhere (another port, another Ethernet source, a
// probe not asked) stays an unsolicited drop, and so does any copy once
// the window is over. Nothing is programmed twice.
func TestDuplicateAnswer(t *testing.T) {
	f := newFixture(t, Config{ProbeTimeout: 10 * time.Millisecond, Retries: 2, Window: time.Second})
	f.e.Process(t0, rarp(t, vmMAC, idxPort, t0))
	probe10 := probeFor(t, f.send.frames, ip10)
	answer := replyTo(t, probe10, vmMAC, t0)
	if d := f.e.Process(t0, answer); d.Verdict != VerdictVerified {
		t.Fatalf("answer: verdict %s (%s), want verified", d.Verdict, d.Reason)
	}
	if d := f.e.Process(t0, answer); d.Verdict != VerdictDuplicate {
		t.Errorf("the same answer again: verdict %s (%s), want duplicate", d.Verdict, d.Reason)
	}
	otherPort := answer
	otherPort.IfIndex = idxOther
	forged := replyTo(t, probe10, vmMAC, t0)
	forged.Data = slices.Clone(forged.Data)
	copy(forged.Data[6:12], vm2MAC) // Ethernet source: another host
	unasked, err := packet.BuildReply(packet.Reply{MAC: vmMAC, IP: ip10, DstMAC: sviMAC, DstIP: netip.MustParseAddr("192.0.2.250")})
	if err != nil {
		t.Fatal(err)
	}
	for name, p := range map[string]Packet{
		"on another port":           otherPort,
		"from another source":       forged,
		"to an address never asked": {Data: unasked, LinkType: layers.LinkTypeEthernet, IfIndex: idxPort, Time: t0},
	} {
		if d := f.e.Process(t0, p); d.Verdict != VerdictDrop || d.Reason != DropUnsolicited {
			t.Errorf("a copy %s: verdict %s (%s), want drop %s", name, d.Verdict, d.Reason, DropUnsolicited)
		}
	}
	f.e.Advance(t0.Add(time.Hour)) // the cycle ends and its window with it
	if d := f.e.Process(t0.Add(time.Hour), answer); d.Verdict != VerdictDrop || d.Reason != DropUnsolicited {
		t.Errorf("the answer after the window: verdict %s (%s), want drop %s", d.Verdict, d.Reason, DropUnsolicited)
	}
	if got := f.e.Stats().Get(ReplyDuplicate); got != 1 {
		t.Errorf("reply-duplicate = %d, want 1", got)
	}
	if got := f.e.Stats().Snapshot().Drops[DropUnsolicited]; got != 4 {
		t.Errorf("unsolicited-reply drops = %d, want 4 (the three copies from elsewhere, the answer after the window)", got)
	}
	if got := f.e.Stats().Get(RARPDuplicate); got != 0 {
		t.Errorf("rarp-duplicate = %d, want 0", got)
	}
	if n := countProgrammed(f.prog.got, ip10); n != 1 {
		t.Errorf("192.0.2.10 programmed %d times, want once", n)
	}
}

// probeFor returns the last probe sent for ip.
func probeFor(t *testing.T, frames []sent, ip netip.Addr) []byte {
	t.Helper()
	var probe []byte
	for _, s := range frames {
		if target, _ := probeTarget(t, s.frame); target == ip {
			probe = s.frame
		}
	}
	if probe == nil {
		t.Fatalf("no probe for %s", ip)
	}
	return probe
}

func countProgrammed(got []programmed, ip netip.Addr) int {
	n := 0
	for _, p := range got {
		if p.ip == ip {
			n++
		}
	}
	return n
}

func mustProbe(t *testing.T, target string) []byte {
	b, err := packet.Build(packet.Probe{SrcMAC: sviMAC, DstMAC: vmMAC, SrcIP: netip.MustParseAddr("192.0.2.1"), Target: netip.MustParseAddr(target)})
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestRetryBackoff(t *testing.T) {
	f := newFixture(t, Config{ProbeTimeout: 100 * time.Millisecond, Retries: 3, Window: time.Second})
	f.mirror.bind(idxBridge, vmMAC, Binding{IP: ip10, Remote: true}) // remembered (deleted) bindings are probed too
	f.e.Process(t0, rarp(t, vmMAC, idxPort, t0))
	var times []time.Duration
	for ms := 0; ms <= 3000; ms++ {
		n := len(f.send.frames)
		f.e.Advance(t0.Add(time.Duration(ms) * time.Millisecond))
		if len(f.send.frames) > n {
			times = append(times, time.Duration(ms)*time.Millisecond)
		}
	}
	// Retries of the 4 unanswered probes at 100, 100+200, 100+200+400 ms.
	want := []time.Duration{100 * time.Millisecond, 300 * time.Millisecond, 700 * time.Millisecond}
	if diff := cmp.Diff(want, times); diff != "" {
		t.Errorf("retry times (-want +got):\n%s", diff)
	}
	if got := len(f.send.frames); got != 16 {
		t.Errorf("sent %d frames, want 16 (4 addresses x 4 attempts)", got)
	}
}

// TestLateAnswer: with the default schedule a VM that answers seconds
// after the RARP (a resumed guest, a saturated host) is still restored.
func TestLateAnswer(t *testing.T) {
	f := newFixture(t, DefaultConfig)
	f.e.Process(t0, rarp(t, vmMAC, idxPort, t0))
	var times []time.Duration
	for ms := 0; ms <= 10000; ms += 10 {
		n := len(f.send.frames)
		f.e.Advance(t0.Add(time.Duration(ms) * time.Millisecond))
		if len(f.send.frames) > n {
			times = append(times, time.Duration(ms)*time.Millisecond)
		}
		if ms == 5000 { // the VM wakes up and answers the latest probe for .10
			var last []byte
			for _, s := range f.send.frames {
				if target, _ := probeTarget(t, s.frame); target == ip10 {
					last = s.frame
				}
			}
			at := t0.Add(5 * time.Second)
			if d := f.e.Process(at, replyTo(t, last, vmMAC, at)); d.Verdict != VerdictVerified {
				t.Fatalf("answer 5 s after the RARP: %s (%s)", d.Verdict, d.Reason)
			}
		}
	}
	ms := func(v ...int) []time.Duration {
		var out []time.Duration
		for _, x := range v {
			out = append(out, time.Duration(x)*time.Millisecond)
		}
		return out
	}
	// Retries at 0.2, 0.6, 1.4, then every second (the cap) up to 6 retries.
	if diff := cmp.Diff(ms(200, 600, 1400, 2400, 3400, 4400), times); diff != "" {
		t.Errorf("retry times (-want +got):\n%s", diff)
	}
	if len(f.prog.got) != 1 || f.prog.got[0].ip != ip10 {
		t.Errorf("programmed %v, want 192.0.2.10 answered 5 s late", f.prog.got)
	}
}

func TestDrops(t *testing.T) {
	f := newFixture(t, DefaultConfig)
	truncated := rarp(t, vmMAC, idxPort, t0)
	truncated.Data = truncated.Data[:20]
	opcode4 := rarp(t, vmMAC, idxPort, t0)
	opcode4.Data = append([]byte(nil), opcode4.Data...)
	opcode4.Data[21] = packet.OpRARPReply
	tests := []struct {
		name   string
		p      Packet
		reason string
	}{
		{"unknown mac", rarp(t, net.HardwareAddr{2, 0, 0, 0, 0, 0x77}, idxPort, t0), "unknown-mac"},
		{"over the vxlan port", rarp(t, vmMAC, idxVXLAN, t0), "not-access-port"},
		{"on the bridge", rarp(t, vmMAC, idxBridge, t0), "not-access-port"},
		{"unknown interface", rarp(t, vmMAC, 42, t0), "unknown-port"},
		{"truncated", truncated, "truncated"},
		{"opcode 4", opcode4, "opcode"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := f.e.Process(t0, tt.p)
			if d.Verdict != VerdictDrop || d.Reason != tt.reason {
				t.Errorf("verdict %s (%s), want drop %s", d.Verdict, d.Reason, tt.reason)
			}
			if got := f.e.Stats().Dropped(tt.reason); got == 0 {
				t.Errorf("drop/%s not counted", tt.reason)
			}
		})
	}
	if len(f.send.frames) != 0 {
		t.Errorf("dropped frames sent %d probes", len(f.send.frames))
	}
	// After all that, a real migration is still served.
	if d := f.e.Process(t0, rarp(t, vm2MAC, idxPort, t0)); d.Verdict != VerdictProbe {
		t.Errorf("second VM: verdict %s (%s), want probe", d.Verdict, d.Reason)
	}
}

func TestNewCycleAfterWindow(t *testing.T) {
	cfg := Config{ProbeTimeout: 10 * time.Millisecond, Retries: 0, Window: time.Second}
	f := newFixture(t, cfg)
	f.e.Process(t0, rarp(t, vmMAC, idxPort, t0))
	f.e.Advance(t0.Add(20 * time.Millisecond)) // all fail, the cycle ends at +10ms
	if d := f.e.Process(t0.Add(500*time.Millisecond), rarp(t, vmMAC, idxPort, t0)); d.Verdict != VerdictDuplicate {
		t.Errorf("inside the window: %s, want duplicate", d.Verdict)
	}
	at := t0.Add(1100 * time.Millisecond)
	if d := f.e.Process(at, rarp(t, vmMAC, idxPort, at)); d.Verdict != VerdictProbe {
		t.Errorf("after the window: %s, want probe", d.Verdict)
	}
	if len(f.reports) != 1 {
		t.Errorf("reports = %d, want 1 (second cycle still open)", len(f.reports))
	}
}

func TestDryRun(t *testing.T) {
	cfg := DefaultConfig
	cfg.DryRun = true
	f := newFixture(t, cfg)
	if d := f.e.Process(t0, rarp(t, vmMAC, idxPort, t0)); d.Verdict != VerdictProbe {
		t.Fatalf("verdict %s, want probe", d.Verdict)
	}
	f.e.Advance(t0.Add(time.Hour))
	if len(f.send.frames) != 0 || len(f.prog.got) != 0 {
		t.Errorf("dry run sent %d frames and programmed %d bindings", len(f.send.frames), len(f.prog.got))
	}
}

func TestSourceAddressSelection(t *testing.T) {
	svi := link.Link{Addrs: []netip.Prefix{netip.MustParsePrefix("fe80::1/64"), netip.MustParsePrefix("192.0.2.1/24"), netip.MustParsePrefix("2001:db8:10::1/64")}}
	noV6Global := link.Link{Addrs: []netip.Prefix{netip.MustParsePrefix("fe80::1/64")}}
	tests := []struct {
		svi    link.Link
		target string
		want   string
	}{
		{svi, "192.0.2.10", "192.0.2.1"},
		{svi, "198.51.100.10", "0.0.0.0"},
		{svi, "2001:db8:10::10", "2001:db8:10::1"},
		{svi, "2001:db8:99::10", "fe80::1"},
		{svi, "fe80::10", "fe80::1"},
		{noV6Global, "2001:db8:10::10", "fe80::1"},
		{link.Link{}, "2001:db8:10::10", "::"},
	}
	for _, tt := range tests {
		if got, _ := link.Source(link.Port{SVI: tt.svi}, netip.MustParseAddr(tt.target)); got.String() != tt.want {
			t.Errorf("Source(%v, %s) = %s, want %s", tt.svi.Addrs, tt.target, got, tt.want)
		}
	}
}

func TestProbeRateLimits(t *testing.T) {
	cfg := Config{ProbeTimeout: 100 * time.Millisecond, Retries: 1, Window: time.Second,
		ProbeRate: 1000, ProbeBurst: 3, PortProbeRate: 1000, PortProbeBurst: 100}
	f := newFixture(t, cfg)
	// Four addresses, a global burst of three: the fourth probe waits for
	// its retry, when the bucket has refilled.
	f.e.Process(t0, rarp(t, vmMAC, idxPort, t0))
	if got := len(f.send.frames); got != 3 {
		t.Fatalf("sent %d probes at once, want the burst of 3", got)
	}
	if got := f.e.Stats().Get(ProbeRateLimited); got != 1 {
		t.Errorf("probe-rate-limited = %d, want 1", got)
	}
	// At +100 ms four retries are due and the bucket holds its burst again.
	f.e.Advance(t0.Add(100 * time.Millisecond))
	if got := len(f.send.frames); got != 6 {
		t.Errorf("after the first timeout sent %d probes, want 6 (3 + a burst of 3 retries)", got)
	}
	if got := f.e.Stats().Get(ProbeRateLimited); got != 2 {
		t.Errorf("probe-rate-limited = %d, want 2", got)
	}

	// A per-port budget of 2: a second port keeps its own.
	cfg.ProbeBurst, cfg.PortProbeBurst = 100, 2
	f = newFixture(t, cfg)
	f.e.Process(t0, rarp(t, vmMAC, idxPort, t0))
	if got := len(f.send.frames); got != 2 {
		t.Errorf("per-port burst 2: sent %d", got)
	}
}

func TestCycleLimit(t *testing.T) {
	cfg := DefaultConfig
	cfg.MaxCycles = 1
	f := newFixture(t, cfg)
	f.e.Process(t0, rarp(t, vmMAC, idxPort, t0))
	if d := f.e.Process(t0, rarp(t, vm2MAC, idxPort, t0)); d.Verdict != VerdictDrop || d.Reason != "cycle-limit" {
		t.Errorf("second cycle: %s %s, want drop cycle-limit", d.Verdict, d.Reason)
	}
	f.e.Advance(t0.Add(time.Hour)) // the first cycle ends and leaves its window
	if d := f.e.Process(t0.Add(time.Hour), rarp(t, vm2MAC, idxPort, t0)); d.Verdict != VerdictProbe {
		t.Errorf("after the first cycle expired: %s %s, want probe", d.Verdict, d.Reason)
	}
}

// TestForgedReplies: while the VM's addresses are probed, answers that
// break one verification rule each are counted drops that program nothing
// and leave the probe pending, so the VM's own answer still verifies it.
func TestForgedReplies(t *testing.T) {
	attacker := net.HardwareAddr{2, 0, 0x5e, 0x66, 0x66, 0x66}
	// Offsets in an untagged frame.
	const arpSHA, arpTHA, arpTPA = 14 + 8, 14 + 18, 14 + 24
	const ip6Dst, icmp = 14 + 24, 14 + 40
	fixNA := func(b []byte) []byte {
		src, _ := netip.AddrFromSlice(b[14+8 : 14+24])
		dst, _ := netip.AddrFromSlice(b[ip6Dst : ip6Dst+16])
		b[icmp+2], b[icmp+3] = 0, 0
		sum := packet.ICMPv6Checksum(src, dst, b[icmp:])
		b[icmp+2], b[icmp+3] = byte(sum>>8), byte(sum)
		return b
	}
	tests := []struct {
		name   string
		ip     netip.Addr
		port   int
		forge  func(b []byte) []byte
		reason string
	}{
		{"ARP reply on another port", ip10, idxOther, nil, DropWrongPort},
		{"NA on another port", ip6, idxOther, nil, DropWrongPort},
		{"ARP reply from the attacker's Ethernet source", ip10, idxPort, func(b []byte) []byte { copy(b[6:12], attacker); return b }, DropEthSource},
		{"NA from the attacker's Ethernet source", ip6, idxPort, func(b []byte) []byte { copy(b[6:12], attacker); return b }, DropEthSource},
		{"ARP reply claiming another sender MAC", ip10, idxPort, func(b []byte) []byte { copy(b[arpSHA:], attacker); return b }, DropUnsolicited},
		{"NA with the attacker's target link-layer address", ip6, idxPort, func(b []byte) []byte { copy(b[len(b)-6:], attacker); return fixNA(b) }, DropUnsolicited},
		{"ARP reply to another address", ip10, idxPort, func(b []byte) []byte { b[arpTPA+3] = 77; return b }, DropNotAnswer},
		{"ARP reply to another MAC", ip10, idxPort, func(b []byte) []byte { copy(b[arpTHA:], attacker); return b }, DropNotAnswer},
		{"ARP reply to another Ethernet destination", ip10, idxPort, func(b []byte) []byte { copy(b[0:6], attacker); return b }, DropNotAnswer},
		{"unsolicited NA", ip6, idxPort, func(b []byte) []byte { b[icmp+4] &^= 0x40; return fixNA(b) }, DropNotAnswer},
		{"NA to another address", ip6, idxPort, func(b []byte) []byte { b[ip6Dst+15] = 0x77; return fixNA(b) }, DropNotAnswer},
		{"NA with a bad checksum", ip6, idxPort, func(b []byte) []byte { b[icmp+2] ^= 0xff; return b }, "bad-checksum"},
		{"NA with an option running past the packet", ip6, idxPort, func(b []byte) []byte { b[len(b)-7] = 3; return fixNA(b) }, "bad-option"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFixture(t, DefaultConfig)
			f.e.Process(t0, rarp(t, vmMAC, idxPort, t0))
			var probe []byte
			for _, s := range f.send.frames {
				if target, _ := probeTarget(t, s.frame); target == tt.ip {
					probe = s.frame
				}
			}
			genuine := replyTo(t, probe, vmMAC, t0)
			forged := genuine
			forged.Data = slices.Clone(genuine.Data)
			if tt.forge != nil {
				forged.Data = tt.forge(forged.Data)
			}
			forged.IfIndex = tt.port
			at := t0.Add(time.Millisecond)
			if d := f.e.Process(at, forged); d.Verdict != VerdictDrop || d.Reason != tt.reason {
				t.Fatalf("forged reply: verdict %s (%s, %v), want drop %s", d.Verdict, d.Reason, d.Err, tt.reason)
			}
			if len(f.prog.got) != 0 {
				t.Fatalf("programmed %v from a forged reply", f.prog.got)
			}
			if got := f.e.Stats().Dropped(tt.reason); got != 1 {
				t.Errorf("drop/%s = %d, want 1", tt.reason, got)
			}
			if d := f.e.Process(at, genuine); d.Verdict != VerdictVerified {
				t.Fatalf("the VM's own reply after the forged one: verdict %s (%s)", d.Verdict, d.Reason)
			}
			if len(f.prog.got) != 1 || f.prog.got[0].ip != tt.ip {
				t.Errorf("programmed %v, want %s", f.prog.got, tt.ip)
			}
		})
	}
}

// TestRun: Run fires the retries and give-ups of a cycle on the wall clock,
// so the report of a migration nobody answers arrives by itself, and Run
// returns once its context ends.
func TestRun(t *testing.T) {
	reports := make(chan Report, 1)
	f := newFixture(t, Config{ProbeTimeout: 5 * time.Millisecond, Retries: 1, Window: time.Second})
	f.e.report = func(r Report) { reports <- r }
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error)
	go func() { done <- f.e.Run(ctx) }()
	now := time.Now()
	f.e.Process(now, rarp(t, vmMAC, idxPort, now))
	select {
	case r := <-reports:
		if diff := cmp.Diff([]netip.Addr{ip10, ip11, ip99, ip6}, r.Failed, cmpAddrs); diff != "" {
			t.Errorf("failed (-want +got):\n%s", diff)
		}
		if got := len(f.send.frames); got != 8 {
			t.Errorf("sent %d probes, want 8 (4 addresses, each retried once)", got)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Run fired no timer: no report 10 s after a cycle whose probes time out in 5 + 10 ms")
	}
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("Run = %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Run did not return after its context ended")
	}
}

// benchResolver serves each MAC's bindings in a new slice per lookup, as
// the neighbor mirror does, without the test fake's string keys.
type benchResolver map[[6]byte][]Binding

func (r benchResolver) Lookup(ifindex int, mac net.HardwareAddr) []Binding {
	if ifindex != idxBridge || len(mac) != 6 {
		return nil
	}
	return slices.Clone(r[[6]byte(mac)])
}

type discardSender struct{ n int }

func (s *discardSender) Send(int, []byte) error { s.n++; return nil }

// BenchmarkProcessRARP measures Process for a RARP that starts a probe
// cycle, from the captured frame to its probes handed to the Sender: the
// daemon's path from a RARP to its first probe. 1024 VMs behind one
// bridge port, each with two IPv4 addresses and one IPv6; the info-level
// JSON logger of `listen`, no rate limit. Between batches of 1024 RARPs,
// outside the timing, the clock moves on so that every cycle ends and the
// next batch starts new ones.
func BenchmarkProcessRARP(b *testing.B) { benchProcessRARP(b, nil) }

// BenchmarkProcessRARPCold is BenchmarkProcessRARP after the daemon idled:
// before each RARP, outside the timing, another working set goes through
// the caches (a 16 MiB sweep, four times L2 here) or the TLBs (one byte
// of every page of 256 MiB), as other work does in the milliseconds
// between two migrations. A hot loop hides what each allocation, map and
// page touched costs then; the live RARP → probe path pays it (in
// latency.sh, the daemon minus the libpcap floor is 5 - 10 times the hot
// figure).
func BenchmarkProcessRARPCold(b *testing.B) {
	for _, c := range []struct {
		name         string
		size, stride int
	}{{"caches", 16 << 20, 64}, {"tlb", 256 << 20, 4096}} {
		other := make([]byte, c.size)
		b.Run(c.name, func(b *testing.B) {
			benchProcessRARP(b, func() {
				for i := 0; i < len(other); i += c.stride {
					other[i]++
				}
			})
		})
	}
}

// benchProcessRARP runs a RARP through Process per iteration, calling
// between (outside the timing) when it is not nil.
func benchProcessRARP(b *testing.B, between func()) {
	links := link.NewTable()
	links.Replace([]link.Link{
		{Index: idxBridge, Name: "br10", Kind: "bridge", MAC: sviMAC, Up: true, Addrs: []netip.Prefix{
			netip.MustParsePrefix("198.18.0.1/15"), netip.MustParsePrefix("2001:db8:10::1/64"), netip.MustParsePrefix("fe80::1/64")}},
		{Index: idxPort, Name: "vm1", Kind: "veth", MAC: net.HardwareAddr{2, 0, 0, 0, 0, 3}, MasterIndex: idxBridge, Up: true},
	})
	const vms = 1024
	res := benchResolver{}
	pkts := make([]Packet, vms)
	for i := range vms {
		mac := net.HardwareAddr{2, 0xaa, 0, 0, byte(i >> 8), byte(i)}
		res[[6]byte(mac)] = []Binding{
			{IP: netip.AddrFrom4([4]byte{198, 18, byte(i >> 8), byte(i)}), Present: true, Remote: true},
			{IP: netip.AddrFrom4([4]byte{198, 19, byte(i >> 8), byte(i)}), Present: true, Remote: true},
			{IP: netip.AddrFrom16([16]byte{0x20, 0x01, 0x0d, 0xb8, 0, 0x10, 14: byte(i >> 8), 15: byte(i)}), Present: true, Remote: true},
		}
		data, err := packet.BuildRARP(mac, nil)
		if err != nil {
			b.Fatal(err)
		}
		pkts[i] = Packet{Data: data, LinkType: layers.LinkTypeEthernet, IfIndex: idxPort, Time: t0}
	}
	send := &discardSender{}
	cfg := Config{ProbeTimeout: 50 * time.Millisecond, Retries: 0, Window: 100 * time.Millisecond}
	e := New(cfg, links, res, send, &fakeProgrammer{}, slog.New(slog.NewJSONHandler(io.Discard, nil)), nil)
	now := t0
	if between == nil {
		b.ReportAllocs() // not in between: each StopTimer would read them, stopping the world
	}
	i := 0
	for b.Loop() {
		if i > 0 && i%vms == 0 {
			b.StopTimer()
			now = now.Add(time.Second)
			e.Advance(now)
			b.StartTimer()
		}
		if between != nil {
			b.StopTimer()
			between()
			b.StartTimer()
		}
		if d := e.Process(now, pkts[i%vms]); d.Verdict != VerdictProbe || len(d.Probes) != 3 {
			b.Fatalf("RARP %d: %s %s, %d probes; want probe, 3", i, d.Verdict, d.Reason, len(d.Probes))
		}
		i++
	}
	if send.n != 3*i {
		b.Fatalf("sent %d probes for %d RARPs, want 3 each", send.n, i)
	}
}

// TestTimerHeap: timers come out earliest first, however they went in,
// with pushes and pops interleaved.
func TestTimerHeap(t *testing.T) {
	var h timerHeap
	var want, got []time.Duration
	for i := range 2000 {
		d := time.Duration((i*7919)%613) * time.Millisecond
		h.push(timer{at: t0.Add(d), seq: i})
		want = append(want, d)
		if i%3 == 2 {
			got = append(got, h.pop().at.Sub(t0))
		}
	}
	for len(h) > 0 {
		got = append(got, h.pop().at.Sub(t0))
	}
	if len(got) != len(want) {
		t.Fatalf("popped %d timers, pushed %d", len(got), len(want))
	}
	// Every pop returned the earliest timer present: replay the sequence
	// against a sorted model.
	var model []time.Duration
	j := 0
	for i, d := range want {
		model = append(model, d)
		if i%3 == 2 {
			slices.Sort(model)
			if got[j] != model[0] {
				t.Fatalf("pop %d = %v, earliest present %v", j, got[j], model[0])
			}
			model = model[1:]
			j++
		}
	}
	slices.Sort(model)
	if diff := cmp.Diff(model, got[j:]); diff != "" {
		t.Errorf("draining pops (-want +got):\n%s", diff)
	}
}

// gatedProgrammer is a BatchProgrammer that holds each batch until the test
// lets it through, and refuses one address.
type gatedProgrammer struct {
	entered chan []Replace // each batch, as it starts
	release chan struct{}  // one receive per batch
	refuse  netip.Addr
}

func (g *gatedProgrammer) Program(int, netip.Addr, net.HardwareAddr) error {
	panic("Run's programming goroutine must use ProgramBatch")
}

func (g *gatedProgrammer) ProgramBatch(rs []Replace) []error {
	g.entered <- slices.Clone(rs)
	<-g.release
	errs := make([]error, len(rs))
	for i, r := range rs {
		if r.IP == g.refuse {
			errs[i] = errors.New("refused by the test")
		}
	}
	return errs
}

// TestRunProgramsAside: while Run runs, a verified binding is programmed
// on Run's goroutine, in batches, and the capture goroutine that verified
// it goes on at once, even while the kernel (here a programmer the test
// holds) has not answered; the migration is reported only once its last
// binding's outcome is in, with the refused one counted and left out; a
// binding being programmed when Run stops is reported before Run returns.
func TestRunProgramsAside(t *testing.T) {
	g := &gatedProgrammer{entered: make(chan []Replace, 8), release: make(chan struct{}), refuse: ip99}
	reports := make(chan Report, 4)
	f := newFixture(t, Config{ProbeTimeout: time.Minute, Window: time.Second})
	f.e.prog = g
	f.e.report = func(r Report) { reports <- r }
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error)
	go func() { done <- f.e.Run(ctx) }()
	within := func(what string, fn func()) { // fails instead of hanging
		t.Helper()
		ok := make(chan struct{})
		go func() { fn(); close(ok) }()
		select {
		case <-ok:
		case <-time.After(10 * time.Second):
			t.Fatalf("%s did not return", what)
		}
	}
	// Run's goroutine is there once programming is taken aside.
	for !runProgramming(f.e) {
		runtime.Gosched()
	}
	now := time.Now()
	f.e.Process(now, rarp(t, vmMAC, idxPort, now))
	within("Process of the answers while the programmer is held", func() {
		for i, s := range slices.Clone(f.send.frames) {
			if d := f.e.Process(now, replyTo(t, s.frame, vmMAC, now)); d.Verdict != VerdictVerified {
				t.Errorf("reply %d: verdict %s (%s), want verified", i, d.Verdict, d.Reason)
			}
		}
	})
	first := <-g.entered
	select {
	case r := <-reports:
		t.Fatalf("migration reported before its bindings were programmed: %v", r)
	default:
	}
	if _, migrations := f.e.InFlight(); migrations != 1 {
		t.Errorf("InFlight: %d migrations while programming, want 1", migrations)
	}
	got := len(first)
	g.release <- struct{}{}
	for got < 4 {
		rs := <-g.entered
		got += len(rs)
		g.release <- struct{}{}
	}
	r := <-reports
	if diff := cmp.Diff([]netip.Addr{ip10, ip11, ip6}, r.Programmed, cmpAddrs); diff != "" {
		t.Errorf("programmed (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff([]netip.Addr{ip10, ip11, ip99, ip6}, r.Verified, cmpAddrs); diff != "" {
		t.Errorf("verified (-want +got):\n%s", diff)
	}
	if p, e := f.e.Stats().Get(Programmed), f.e.Stats().Get(ProgramError); p != 3 || e != 1 {
		t.Errorf("counters: programmed %d, program errors %d; want 3, 1", p, e)
	}
	if r.Latency <= 0 {
		t.Errorf("latency %v, want the time to the last binding programmed", r.Latency)
	}
	// The programming part runs from the verification to the kernel's
	// answer, which the test held: more than nothing, less than the whole.
	for _, ip := range r.Programmed {
		if st, ok := r.Stages[ip]; !ok || st.Program <= 0 || st.Program > time.Since(now) {
			t.Errorf("%s: stages %+v (%v), want a programming time within the %v since the answers", ip, st, ok, time.Since(now))
		}
	}
	if st, ok := r.Stages[ip99]; ok {
		t.Errorf("stages %+v for %s, which the kernel refused", st, ip99)
	}

	// Stopping while a binding is programmed: Run waits for it.
	before := len(f.send.frames)
	f.e.Process(now, rarp(t, vm2MAC, idxOther, now))
	probe := f.send.frames[before].frame
	target, source := probeTarget(t, probe)
	b, err := packet.BuildReply(packet.Reply{MAC: vm2MAC, IP: target, DstMAC: sviMAC, DstIP: source})
	if err != nil {
		t.Fatal(err)
	}
	f.e.Process(now, Packet{Data: b, LinkType: layers.LinkTypeEthernet, IfIndex: idxOther, Time: now})
	<-g.entered
	cancel()
	select {
	case err := <-done:
		t.Fatalf("Run returned (%v) with a binding still being programmed", err)
	default:
	}
	g.release <- struct{}{}
	if err := <-done; err != nil {
		t.Errorf("Run = %v", err)
	}
	select {
	case r := <-reports:
		if diff := cmp.Diff([]netip.Addr{target}, r.Programmed, cmpAddrs); diff != "" {
			t.Errorf("after stop: programmed (-want +got):\n%s", diff)
		}
	default:
		t.Error("the migration whose binding was queued at stop was never reported")
	}
}

// runProgramming reports whether Run's programming goroutine takes
// verified bindings.
func runProgramming(e *Engine) bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.progq != nil
}

// cooked turns an Ethernet frame into what the any-device handle records
// for it: a Linux cooked (SLL2) header naming the interface it entered and
// its Ethernet source (no destination), then the payload.
func cooked(eth []byte, ifindex int) []byte {
	b := append([]byte(nil), eth[12:14]...) // protocol
	b = append(b, 0, 0)                     // reserved
	b = binary.BigEndian.AppendUint32(b, uint32(ifindex))
	b = append(b, 0, 1, 3, 6)   // ARPHRD_ETHER, PACKET_OTHERHOST, address length
	b = append(b, eth[6:12]...) // the Ethernet source
	b = append(b, 0, 0)         // padding to 8
	return append(b, eth[14:]...)
}

// TestNewPortViaAny: the any-device handle catches a new port's RARP and
// the VM's answers before the port's own handle is open. The link table
// may still hold the port as the kernel first announced it, stand-alone
// (not yet in its bridge): the engine reads it again before acting, and
// only for frames the any device caught. Answers without an Ethernet
// destination are verified on all the rest: the port they entered and
// their sender.
func TestNewPortViaAny(t *testing.T) {
	const idxNew = 9
	standalone := link.Link{Index: idxNew, Name: "tap9", Kind: "tun", MAC: net.HardwareAddr{2, 0, 0, 0, 0, 9}, Up: true}
	member := standalone
	member.MasterIndex = idxBridge
	// On a VLAN-aware bridge, the table may hold a new member without the
	// VLANs the kernel announces in a notification of their own.
	const idxVLANBridge, idxVLAN30 = 20, 21
	noVLANs := standalone
	noVLANs.MasterIndex = idxVLANBridge
	inVLAN30 := noVLANs
	inVLAN30.VLANs = []link.PortVLAN{{VID: 30, PVID: true, Untagged: true}}
	tests := []struct {
		name        string
		cooked      bool      // the frames come from the any-device handle
		kernel      link.Link // what reading the port again returns
		wantVerdict Verdict
		wantReason  string
		wantReads   int
	}{
		{name: "any device, enslaved meanwhile", cooked: true, kernel: member, wantVerdict: VerdictProbe, wantReads: 1},
		{name: "any device, stand-alone in the kernel too", cooked: true, kernel: standalone, wantVerdict: VerdictDrop, wantReason: "unknown-mac", wantReads: 1},
		{name: "the port's own handle", kernel: member, wantVerdict: VerdictDrop, wantReason: "unknown-mac"},
		{name: "any device, VLANs not in the table yet", cooked: true, kernel: inVLAN30, wantVerdict: VerdictProbe, wantReads: 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFixture(t, DefaultConfig)
			links := f.e.ports.(*link.Table)
			links.Set(standalone)
			wantSVI, other := "br10", idxOther
			if tt.kernel.MasterIndex == idxVLANBridge {
				other = 22 // another VM's port in VLAN 30
				links.Set(link.Link{Index: other, Name: "tap22", Kind: "tun", MAC: net.HardwareAddr{2, 0, 0, 0, 0, 22}, MasterIndex: idxVLANBridge, Up: true,
					VLANs: []link.PortVLAN{{VID: 30, PVID: true, Untagged: true}}})
				links.Set(link.Link{Index: idxVLANBridge, Name: "br1", Kind: "bridge", MAC: sviMAC, Up: true, VLANFiltering: true})
				links.Set(link.Link{Index: idxVLAN30, Name: "vlan30", Kind: "vlan", MAC: sviMAC, ParentIndex: idxVLANBridge, VLANID: 30, Up: true,
					Addrs: []netip.Prefix{netip.MustParsePrefix("192.0.2.1/24"), netip.MustParsePrefix("2001:db8:10::1/64")}})
				links.Set(noVLANs)
				for _, ip := range []netip.Addr{ip10, ip11, ip99, ip6} {
					f.mirror.bind(idxVLAN30, vmMAC, Binding{IP: ip, Present: true, Remote: true})
				}
				wantSVI = "vlan30"
			}
			reads := 0
			links.Refresh = func(index int) (link.Link, error) {
				reads++
				if index != idxNew {
					return link.Link{}, errors.New("no such link")
				}
				return tt.kernel, nil
			}
			p := rarp(t, vmMAC, idxNew, t0)
			if tt.cooked {
				p.Data, p.LinkType = cooked(p.Data, idxNew), layers.LinkTypeLinuxSLL2
			}
			d := f.e.Process(t0, p)
			if d.Verdict != tt.wantVerdict || d.Reason != tt.wantReason {
				t.Fatalf("RARP: verdict %s (%s), want %s (%s)", d.Verdict, d.Reason, tt.wantVerdict, tt.wantReason)
			}
			if reads != tt.wantReads {
				t.Errorf("the port was read again %d times, want %d", reads, tt.wantReads)
			}
			if d.Verdict != VerdictProbe {
				return
			}
			if d.Port != "tap9" || d.SVI != wantSVI {
				t.Errorf("RARP on port %s, SVI %s; want tap9, %s", d.Port, d.SVI, wantSVI)
			}
			// Answers through the any device: forged ones first (entered
			// another port; another Ethernet source), then the VM's.
			probe := f.send.frames[0].frame
			answer := replyTo(t, probe, vmMAC, t0).Data
			forged := replyTo(t, probe, vm2MAC, t0).Data
			copy(forged[22:28], vmMAC) // the ARP sender claims the VM's MAC
			for _, c := range []struct {
				what    string
				frame   []byte
				ifindex int
				want    string
			}{
				{"entered another port", cooked(answer, other), other, DropWrongPort},
				{"another Ethernet source", cooked(forged, idxNew), idxNew, DropEthSource},
			} {
				d := f.e.Process(t0.Add(time.Millisecond), Packet{Data: c.frame, LinkType: layers.LinkTypeLinuxSLL2, IfIndex: c.ifindex, Time: t0})
				if d.Verdict != VerdictDrop || d.Reason != c.want {
					t.Errorf("answer that %s: verdict %s (%s), want drop (%s)", c.what, d.Verdict, d.Reason, c.want)
				}
			}
			d = f.e.Process(t0.Add(time.Millisecond), Packet{Data: cooked(answer, idxNew), LinkType: layers.LinkTypeLinuxSLL2, IfIndex: idxNew, Time: t0})
			if d.Verdict != VerdictVerified {
				t.Errorf("the VM's answer: verdict %s (%s), want verified", d.Verdict, d.Reason)
			}
		})
	}
}
