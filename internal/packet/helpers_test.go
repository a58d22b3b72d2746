package packet

import (
	"encoding/binary"
	"net"
	"net/netip"
	"testing"

	"github.com/google/go-cmp/cmp"
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
