package engine

import (
	"encoding/binary"
	"net"
	"net/netip"
	"testing"
	"time"

	"github.com/gopacket/gopacket/layers"
	"github.com/rarp-replay/rarp-replay/internal/packet"
)

// FuzzReplyMatching starts a probe cycle, then feeds arbitrary frames as if
// they arrived on the VM's port or on another port. Whatever they are, the
// engine must never verify or program a binding unless every rule holds,
// checked here independently of the codec: the frame came in on the VM's
// port, from the VM's Ethernet source, and is an ARP reply from the VM's
// MAC for a probed address to the probe's source address and MAC, or a
// solicited NA with hop limit 255, a valid checksum, code 0 and
// well-formed options, for a probed address, to the probe's source
// address; and it arrived before the binding was given up.
func FuzzReplyMatching(f *testing.F) {
	for _, ip := range []netip.Addr{ip10, ip6, ip99} {
		src := netip.MustParseAddr("192.0.2.1")
		if ip.Is6() {
			src = netip.MustParseAddr("2001:db8:10::1")
		}
		b, _ := packet.BuildReply(packet.Reply{MAC: vmMAC, IP: ip, DstMAC: sviMAC, DstIP: src})
		f.Add(b, uint16(1), false)
		f.Add(b, uint16(1), true)
	}
	r, _ := packet.BuildRARP(vmMAC, nil)
	f.Add(r, uint16(300), false)
	f.Fuzz(func(t *testing.T, data []byte, after uint16, otherPort bool) {
		fx := newFixture(t, Config{ProbeTimeout: 100 * time.Millisecond, Retries: 1, Window: time.Second})
		fx.e.Process(t0, rarp(t, vmMAC, idxPort, t0))
		port := idxPort
		if otherPort {
			port = idxOther
		}
		at := t0.Add(time.Duration(after) * time.Millisecond)
		d := fx.e.Process(at, Packet{Data: data, LinkType: layers.LinkTypeEthernet, IfIndex: port, Time: at})
		fx.e.Advance(t0.Add(time.Hour))
		if d.Verdict != VerdictVerified && len(fx.prog.got) == 0 {
			return
		}
		ip, why := believable(data)
		switch {
		case why != "":
			t.Fatalf("verdict %s, programmed %v, from a frame that is no answer (%s): %x", d.Verdict, fx.prog.got, why, data)
		case otherPort:
			t.Fatalf("verified %s from another port", ip)
		case ip == ip99 && d.Verdict != VerdictVerified:
			t.Fatalf("programmed the not-owned binding on verdict %s", d.Verdict)
		case after >= 300: // the probe and its one retry timed out at 100 + 200 ms
			t.Fatalf("programmed %v from a reply after the binding was given up", fx.prog.got)
		}
		for _, p := range fx.prog.got {
			if p.ip != ip || p.mac != vmMAC.String() {
				t.Fatalf("programmed %v after a reply for %s", p, ip)
			}
		}
	})
}

// believable checks an untagged Ethernet frame against the verification
// rules without the codec, and returns the address it answers for, or why
// it answers nothing.
func believable(b []byte) (netip.Addr, string) {
	svi4, svi6 := netip.MustParseAddr("192.0.2.1"), netip.MustParseAddr("2001:db8:10::1")
	if len(b) < 14 || string(b[6:12]) != string(vmMAC) {
		return netip.Addr{}, "not from the VM's Ethernet source"
	}
	if dst := net.HardwareAddr(b[0:6]); string(dst) != string(sviMAC) && string(dst) != string(packet.Broadcast) {
		return netip.Addr{}, "not to the prober's MAC"
	}
	et, p := binary.BigEndian.Uint16(b[12:]), b[14:]
	switch et {
	case 0x0806:
		if len(p) < 28 || binary.BigEndian.Uint16(p[0:]) != 1 || binary.BigEndian.Uint16(p[2:]) != 0x0800 || p[4] != 6 || p[5] != 4 || binary.BigEndian.Uint16(p[6:]) != 2 {
			return netip.Addr{}, "not an Ethernet/IPv4 ARP reply"
		}
		ip := netip.AddrFrom4([4]byte(p[14:18]))
		switch {
		case string(p[8:14]) != string(vmMAC):
			return ip, "ARP sender is not the VM"
		case netip.AddrFrom4([4]byte(p[24:28])) != svi4 || string(p[18:24]) != string(sviMAC):
			return ip, "ARP target is not the probe's source"
		}
		return ip, ""
	case 0x86dd:
		if len(p) < 40 || p[0]>>4 != 6 || p[6] != 58 || p[7] != 255 {
			return netip.Addr{}, "not ICMPv6 with hop limit 255"
		}
		n := int(binary.BigEndian.Uint16(p[4:]))
		if 40+n > len(p) {
			return netip.Addr{}, "IPv6 payload past the frame"
		}
		m := p[40 : 40+n]
		if len(m) < 24 || m[0] != 136 || m[1] != 0 || m[4]&0x40 == 0 {
			return netip.Addr{}, "not a solicited NA of code 0"
		}
		if netip.AddrFrom16([16]byte(p[24:40])) != svi6 {
			return netip.Addr{}, "NA not to the probe's source"
		}
		var sum uint32
		for _, part := range [][]byte{p[8:40], {0, 0, byte(n >> 8), byte(n), 0, 0, 0, 58}, m} {
			for i := 0; i < len(part); i += 2 {
				v := uint32(part[i]) << 8
				if i+1 < len(part) {
					v |= uint32(part[i+1])
				}
				sum += v
			}
		}
		for sum>>16 != 0 {
			sum = sum&0xffff + sum>>16
		}
		if sum != 0xffff {
			return netip.Addr{}, "bad ICMPv6 checksum"
		}
		for o := m[24:]; len(o) > 0; {
			if len(o) < 2 || o[1] == 0 || int(o[1])*8 > len(o) {
				return netip.Addr{}, "malformed NA option"
			}
			if o[0] == 2 && (o[1] != 1 || string(o[2:8]) != string(vmMAC)) {
				return netip.Addr{}, "target link-layer address is not the VM's"
			}
			o = o[int(o[1])*8:]
		}
		return netip.AddrFrom16([16]byte(m[8:24])), ""
	}
	return netip.Addr{}, "neither ARP nor IPv6"
}
