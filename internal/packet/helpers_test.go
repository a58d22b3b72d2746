package packet

import (
	"encoding/binary"
	"fmt"
	"net"
	"net/netip"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/gopacket/gopacket/layers"
)

// buildTestNA builds the solicited Neighbor Advertisement a VM sends back
// for an NS from sviMAC, with the target link-layer address option.
func buildTestNA(mac net.HardwareAddr, target netip.Addr, hopLimit uint8) ([]byte, error) {
	return BuildReply(Reply{MAC: mac, IP: target, DstMAC: sviMAC, DstIP: netip.MustParseAddr("2001:db8:10::1"), HopLimit: hopLimit})
}

var cmpAddr = cmp.Comparer(func(a, b netip.Addr) bool { return a == b })

// naEdit returns the Ethernet frame na (untagged, an NA) with its ICMPv6
// message changed by edit, the IPv6 payload length and the checksum fixed.
func naEdit(t testing.TB, na []byte, edit func(msg []byte) []byte) []byte {
	t.Helper()
	const ip6At, msgAt = 14, 14 + 40
	msg := edit(append([]byte(nil), na[msgAt:]...))
	out := append(append([]byte(nil), na[:msgAt]...), msg...)
	binary.BigEndian.PutUint16(out[ip6At+4:], uint16(len(msg)))
	return fixNAChecksum(out)
}

// naTo returns na sent to the IPv6 destination dst, checksum fixed.
func naTo(t testing.TB, na []byte, dst string) []byte {
	t.Helper()
	out := append([]byte(nil), na...)
	d := netip.MustParseAddr(dst).As16()
	copy(out[14+24:], d[:])
	return fixNAChecksum(out)
}

func fixNAChecksum(frame []byte) []byte {
	ip6 := frame[14:]
	src, _ := netip.AddrFromSlice(ip6[8:24])
	dst, _ := netip.AddrFromSlice(ip6[24:40])
	msg := ip6[40:]
	msg[2], msg[3] = 0, 0
	binary.BigEndian.PutUint16(msg[2:], ICMPv6Checksum(src, dst, msg))
	return frame
}

// gopacketProbe is Build as it was before the probe path wrote frames by
// hand: the layers serialized by gopacket. It is the reference the hand
// builder must match byte for byte (TestBuildMatchesGopacket, FuzzRoundTrip).
func gopacketProbe(p Probe) ([]byte, error) {
	if !UnicastMAC(p.SrcMAC) || !UnicastMAC(p.DstMAC) {
		return nil, fmt.Errorf("%w: src %s dst %s", ErrInvalid, p.SrcMAC, p.DstMAC)
	}
	switch {
	case p.Target.Is4() && p.SrcIP.Is4():
		src, tgt := p.SrcIP.As4(), p.Target.As4()
		return serialize(p.SrcMAC, p.DstMAC, p.VLANs, layers.EthernetTypeARP, &layers.ARP{
			AddrType:          layers.LinkTypeEthernet,
			Protocol:          layers.EthernetTypeIPv4,
			HwAddressSize:     6,
			ProtAddressSize:   4,
			Operation:         OpARPRequest,
			SourceHwAddress:   p.SrcMAC,
			SourceProtAddress: src[:],
			DstHwAddress:      make([]byte, 6),
			DstProtAddress:    tgt[:],
		})
	case p.Target.Is6() && !p.Target.Is4In6() && p.SrcIP.Is6():
		ip6 := &layers.IPv6{
			Version:    6,
			NextHeader: layers.IPProtocolICMPv6,
			HopLimit:   255,
			SrcIP:      p.SrcIP.AsSlice(),
			DstIP:      p.Target.AsSlice(),
		}
		icmp := &layers.ICMPv6{TypeCode: layers.CreateICMPv6TypeCode(layers.ICMPv6TypeNeighborSolicitation, 0)}
		if err := icmp.SetNetworkLayerForChecksum(ip6); err != nil {
			return nil, err
		}
		ns := &layers.ICMPv6NeighborSolicitation{TargetAddress: p.Target.AsSlice()}
		if !p.SrcIP.IsUnspecified() {
			ns.Options = layers.ICMPv6Options{{Type: layers.ICMPv6OptSourceAddress, Data: p.SrcMAC}}
		}
		return serialize(p.SrcMAC, p.DstMAC, p.VLANs, layers.EthernetTypeIPv6, ip6, icmp, ns)
	}
	return nil, fmt.Errorf("%w: target %s source %s", ErrInvalid, p.Target, p.SrcIP)
}
