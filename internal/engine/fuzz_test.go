package engine

import (
	"net/netip"
	"testing"
	"time"

	"github.com/gopacket/gopacket/layers"
	"github.com/rarp-replay/rarp-replay/capture"
	"github.com/rarp-replay/rarp-replay/internal/packet"
)

// FuzzReplyMatching starts a probe cycle, then feeds arbitrary frames as if
// they arrived on the VM's port. Whatever they are, the engine must never
// program a binding unless a frame that decodes as a reply for exactly that
// address and the VM's MAC arrived while it was probed.
func FuzzReplyMatching(f *testing.F) {
	for _, ip := range []netip.Addr{ip10, ip6, ip99} {
		b, _ := packet.BuildReply(packet.Reply{MAC: vmMAC, IP: ip, DstMAC: sviMAC, DstIP: netip.MustParseAddr("192.0.2.1")})
		if ip.Is6() {
			b, _ = packet.BuildReply(packet.Reply{MAC: vmMAC, IP: ip, DstMAC: sviMAC, DstIP: netip.MustParseAddr("2001:db8:10::1")})
		}
		f.Add(b, uint16(1))
	}
	r, _ := packet.BuildRARP(vmMAC, nil)
	f.Add(r, uint16(300))
	f.Fuzz(func(t *testing.T, data []byte, after uint16) {
		fx := newFixture(t, Config{ProbeTimeout: 100 * time.Millisecond, Retries: 1, Window: time.Second})
		fx.e.Handle(t0, rarp(t, vmMAC, idxPort, t0))
		at := t0.Add(time.Duration(after) * time.Millisecond)
		d := fx.e.Handle(at, capture.Packet{Data: data, LinkType: layers.LinkTypeEthernet, IfIndex: idxPort, Time: at})
		fx.e.Advance(t0.Add(time.Hour))
		fr, err := packet.Decode(data, layers.LinkTypeEthernet)
		for _, p := range fx.prog.got {
			if err != nil || fr.Kind == packet.KindRARP || fr.IP != p.ip || fr.MAC.String() != vmMAC.String() {
				t.Fatalf("programmed %v after frame %x (decoded %+v, %v)", p, data, fr, err)
			}
			if p.ip == ip99 && d.Verdict != VerdictVerified {
				t.Fatalf("programmed the not-owned binding on verdict %s", d.Verdict)
			}
			if after >= 300 { // the probe and its one retry timed out at 100 + 200 ms
				t.Fatalf("programmed %v from a reply after the binding was given up", p)
			}
		}
	})
}
