package packet

import (
	"net"
	"net/netip"

	"github.com/google/go-cmp/cmp"

	"github.com/gopacket/gopacket/layers"
)

// buildTestNA builds the solicited Neighbor Advertisement a VM sends back
// for an NS from sviMAC, with the target link-layer address option.
func buildTestNA(mac net.HardwareAddr, target netip.Addr, hopLimit uint8) ([]byte, error) {
	ip6 := &layers.IPv6{Version: 6, NextHeader: layers.IPProtocolICMPv6, HopLimit: hopLimit,
		SrcIP: target.AsSlice(), DstIP: netip.MustParseAddr("2001:db8:10::1").AsSlice()}
	icmp := &layers.ICMPv6{TypeCode: layers.CreateICMPv6TypeCode(layers.ICMPv6TypeNeighborAdvertisement, 0)}
	if err := icmp.SetNetworkLayerForChecksum(ip6); err != nil {
		return nil, err
	}
	na := &layers.ICMPv6NeighborAdvertisement{Flags: 0x60, TargetAddress: target.AsSlice(),
		Options: layers.ICMPv6Options{{Type: layers.ICMPv6OptTargetAddress, Data: mac}}}
	return serialize(mac, sviMAC, nil, layers.EthernetTypeIPv6, ip6, icmp, na)
}

var cmpAddr = cmp.Comparer(func(a, b netip.Addr) bool { return a == b })
