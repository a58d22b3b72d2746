package packet

import (
	"errors"
	"fmt"
	"net"
	"net/netip"

	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"
)

// Broadcast is the Ethernet broadcast address.
var Broadcast = net.HardwareAddr{0xff, 0xff, 0xff, 0xff, 0xff, 0xff}

// ErrInvalid is returned by the builders for arguments they cannot encode.
var ErrInvalid = errors.New("invalid probe arguments")

// Probe describes one verification probe: a unicast ARP request (IPv4
// Target) or a unicast Neighbor Solicitation (IPv6 Target) sent from SrcMAC
// and SrcIP to the VM's MAC.
type Probe struct {
	SrcMAC net.HardwareAddr
	SrcIP  netip.Addr // IPv4: an SVI address or 0.0.0.0; IPv6: an SVI address, link-local, or ::
	DstMAC net.HardwareAddr
	Target netip.Addr
	VLANs  []uint16 // tags to push, outermost first; at most two (QinQ)
}

// Build encodes p as an Ethernet frame: a unicast ARP request for an IPv4
// target, a unicast Neighbor Solicitation for an IPv6 one. It returns
// ErrInvalid for a MAC that is not unicast, a source and target of different
// families (an IPv4-mapped target included), and VLAN tags Decode would not
// read (more than two, or an ID outside 1-4094).
func Build(p Probe) ([]byte, error) {
	if !UnicastMAC(p.SrcMAC) || !UnicastMAC(p.DstMAC) {
		return nil, fmt.Errorf("%w: src %s dst %s", ErrInvalid, p.SrcMAC, p.DstMAC)
	}
	switch {
	case p.Target.Is4() && p.SrcIP.Is4():
		return buildARPRequest(p)
	case p.Target.Is6() && !p.Target.Is4In6() && p.SrcIP.Is6():
		return buildNS(p)
	}
	return nil, fmt.Errorf("%w: target %s source %s", ErrInvalid, p.Target, p.SrcIP)
}

func buildARPRequest(p Probe) ([]byte, error) {
	src, tgt := p.SrcIP.As4(), p.Target.As4()
	return serialize(p.SrcMAC, p.DstMAC, p.VLANs, layers.EthernetTypeARP, &layers.ARP{
		AddrType:          layers.LinkTypeEthernet,
		Protocol:          layers.EthernetTypeIPv4,
		HwAddressSize:     6,
		ProtAddressSize:   4,
		Operation:         OpARPRequest,
		SourceHwAddress:   p.SrcMAC,
		SourceProtAddress: src[:],
		DstHwAddress:      make([]byte, 6), // unknown: what the request asks for
		DstProtAddress:    tgt[:],
	})
}

func buildNS(p Probe) ([]byte, error) {
	ip6 := &layers.IPv6{
		Version:    6,
		NextHeader: layers.IPProtocolICMPv6,
		HopLimit:   255, // RFC 4861 7.1.1: receivers discard NS with any other hop limit
		SrcIP:      p.SrcIP.AsSlice(),
		DstIP:      p.Target.AsSlice(),
	}
	icmp := &layers.ICMPv6{TypeCode: layers.CreateICMPv6TypeCode(layers.ICMPv6TypeNeighborSolicitation, 0)}
	if err := icmp.SetNetworkLayerForChecksum(ip6); err != nil {
		return nil, err
	}
	ns := &layers.ICMPv6NeighborSolicitation{TargetAddress: p.Target.AsSlice()}
	if !p.SrcIP.IsUnspecified() {
		// RFC 4861 4.3: the option must not be sent from the unspecified address.
		ns.Options = layers.ICMPv6Options{{Type: layers.ICMPv6OptSourceAddress, Data: p.SrcMAC}}
	}
	return serialize(p.SrcMAC, p.DstMAC, p.VLANs, layers.EthernetTypeIPv6, ip6, icmp, ns)
}

// BuildRARP encodes a hypervisor-style RARP announcement for mac: broadcast,
// EtherType 0x8035, opcode 3, sender and target hardware address mac, both
// protocol addresses 0.0.0.0, padded to 60 bytes, with the VLAN tags vlans
// (outermost first, at most two). It returns ErrInvalid for a MAC that is
// not unicast and for tags Decode would not read.
func BuildRARP(mac net.HardwareAddr, vlans []uint16) ([]byte, error) {
	if !UnicastMAC(mac) {
		return nil, fmt.Errorf("%w: mac %s", ErrInvalid, mac)
	}
	return serialize(mac, Broadcast, vlans, EtherTypeRARP, &layers.ARP{
		AddrType:          layers.LinkTypeEthernet,
		Protocol:          layers.EthernetTypeIPv4,
		HwAddressSize:     6,
		ProtAddressSize:   4,
		Operation:         OpRARPRequest,
		SourceHwAddress:   mac,
		SourceProtAddress: make([]byte, 4),
		DstHwAddress:      mac,
		DstProtAddress:    make([]byte, 4),
	})
}

// serialize encodes the layers ls in an Ethernet frame from src to dst with
// the VLAN tags vlans and EtherType et. A stack deeper than Decode reads
// (maxVLANDepth) is refused: what the builders write, the decoder reads.
func serialize(src, dst net.HardwareAddr, vlans []uint16, et layers.EthernetType, ls ...gopacket.SerializableLayer) ([]byte, error) {
	if len(vlans) > maxVLANDepth {
		return nil, fmt.Errorf("%w: %d vlan tags, at most %d", ErrInvalid, len(vlans), maxVLANDepth)
	}
	eth := &layers.Ethernet{SrcMAC: src, DstMAC: dst, EthernetType: et}
	all := []gopacket.SerializableLayer{eth}
	for i, vid := range vlans {
		if vid == 0 || vid > 4094 {
			return nil, fmt.Errorf("%w: vlan %d", ErrInvalid, vid)
		}
		// Outer tags of a QinQ stack use the 802.1ad TPID.
		tpid := layers.EthernetTypeDot1Q
		if i < len(vlans)-1 {
			tpid = layers.EthernetTypeQinQ
		}
		if i == 0 {
			eth.EthernetType = tpid
		}
		inner := et
		if i < len(vlans)-1 {
			inner = layers.EthernetTypeDot1Q
		}
		all = append(all, &layers.Dot1Q{VLANIdentifier: vid, Type: inner})
	}
	all = append(all, ls...)
	buf := gopacket.NewSerializeBuffer()
	opts := gopacket.SerializeOptions{FixLengths: true, ComputeChecksums: true}
	if err := gopacket.SerializeLayers(buf, opts, all...); err != nil {
		return nil, fmt.Errorf("serialize: %w", err)
	}
	return append([]byte(nil), buf.Bytes()...), nil
}

// Reply describes the answer a VM gives to a probe: an ARP reply (IPv4 IP)
// or a solicited Neighbor Advertisement (IPv6 IP) from MAC to DstMAC.
// Tests and capture generators use it; the daemon only decodes replies.
type Reply struct {
	MAC    net.HardwareAddr // the VM's MAC, which IP is bound to
	IP     netip.Addr
	DstMAC net.HardwareAddr // the prober's MAC
	DstIP  netip.Addr       // the prober's address
	VLANs  []uint16         // outermost first; at most two (QinQ)
	// HopLimit of an NA; 0 means 255, the only value receivers accept.
	HopLimit uint8
}

// BuildReply encodes r as an Ethernet frame. It returns ErrInvalid for a
// MAC that is not unicast, a destination MAC that is not 6 bytes, addresses
// of different families, and VLAN tags Decode would not read.
func BuildReply(r Reply) ([]byte, error) {
	if !UnicastMAC(r.MAC) || len(r.DstMAC) != 6 {
		return nil, fmt.Errorf("%w: mac %s dst %s", ErrInvalid, r.MAC, r.DstMAC)
	}
	switch {
	case r.IP.Is4() && r.DstIP.Is4():
		src, dst := r.IP.As4(), r.DstIP.As4()
		return serialize(r.MAC, r.DstMAC, r.VLANs, layers.EthernetTypeARP, &layers.ARP{
			AddrType: layers.LinkTypeEthernet, Protocol: layers.EthernetTypeIPv4,
			HwAddressSize: 6, ProtAddressSize: 4, Operation: OpARPReply,
			SourceHwAddress: r.MAC, SourceProtAddress: src[:],
			DstHwAddress: r.DstMAC, DstProtAddress: dst[:],
		})
	case r.IP.Is6() && r.DstIP.Is6():
		hop := r.HopLimit
		if hop == 0 {
			hop = 255
		}
		ip6 := &layers.IPv6{Version: 6, NextHeader: layers.IPProtocolICMPv6, HopLimit: hop,
			SrcIP: r.IP.AsSlice(), DstIP: r.DstIP.AsSlice()}
		icmp := &layers.ICMPv6{TypeCode: layers.CreateICMPv6TypeCode(layers.ICMPv6TypeNeighborAdvertisement, 0)}
		if err := icmp.SetNetworkLayerForChecksum(ip6); err != nil {
			return nil, err
		}
		na := &layers.ICMPv6NeighborAdvertisement{
			Flags:         0x60, // solicited, override
			TargetAddress: r.IP.AsSlice(),
			Options:       layers.ICMPv6Options{{Type: layers.ICMPv6OptTargetAddress, Data: r.MAC}},
		}
		return serialize(r.MAC, r.DstMAC, r.VLANs, layers.EthernetTypeIPv6, ip6, icmp, na)
	}
	return nil, fmt.Errorf("%w: ip %s dst %s", ErrInvalid, r.IP, r.DstIP)
}
