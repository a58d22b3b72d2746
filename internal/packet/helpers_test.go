package packet

import (
	"net"
	"net/netip"

	"github.com/google/go-cmp/cmp"
)

// buildTestNA builds the solicited Neighbor Advertisement a VM sends back
// for an NS from sviMAC, with the target link-layer address option.
func buildTestNA(mac net.HardwareAddr, target netip.Addr, hopLimit uint8) ([]byte, error) {
	return BuildReply(Reply{MAC: mac, IP: target, DstMAC: sviMAC, DstIP: netip.MustParseAddr("2001:db8:10::1"), HopLimit: hopLimit})
}

var cmpAddr = cmp.Comparer(func(a, b netip.Addr) bool { return a == b })
