package packet

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"slices"

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
// read (more than two, or an ID outside 1-4094). The frame is a new slice of
// exactly its length: the one allocation Build makes.
func Build(p Probe) ([]byte, error) {
	return AppendProbe(nil, p)
}

// Frame sizes the probe builder writes.
const (
	ethHeaderLen = 14
	vlanTagLen   = 4
	arpLen       = 28 // Ethernet/IPv4 ARP: 8 + 2*6 + 2*4
	ipv6HdrLen   = 40
	nsLen        = 24 // ICMPv6 header, reserved, target
	llaOptLen    = 8  // a link-layer address option holding a MAC
	minFrameLen  = 60 // Ethernet minimum without the FCS; shorter frames are zero padded
	// MaxProbeLen is the longest frame Build writes: an NS with its source
	// link-layer address option under two VLAN tags.
	MaxProbeLen = ethHeaderLen + maxVLANDepth*vlanTagLen + ipv6HdrLen + nsLen + llaOptLen
)

// AppendProbe is Build appending the frame to b, which it grows only when
// the frame does not fit in cap(b). The frame is written byte by byte, with
// the ICMPv6 checksum computed here (ICMPv6Checksum), not through gopacket's
// serialization: this is the daemon's probe path, and the bytes are those
// gopacket writes for the same layers (the tests compare the two).
func AppendProbe(b []byte, p Probe) ([]byte, error) {
	if !UnicastMAC(p.SrcMAC) || !UnicastMAC(p.DstMAC) {
		return b, fmt.Errorf("%w: src %s dst %s", ErrInvalid, p.SrcMAC, p.DstMAC)
	}
	switch {
	case p.Target.Is4() && p.SrcIP.Is4():
		if err := checkTags(p.VLANs); err != nil {
			return b, err
		}
		return appendARPRequest(b, p), nil
	case p.Target.Is6() && !p.Target.Is4In6() && p.SrcIP.Is6():
		if err := checkTags(p.VLANs); err != nil {
			return b, err
		}
		return appendNS(b, p), nil
	}
	return b, fmt.Errorf("%w: target %s source %s", ErrInvalid, p.Target, p.SrcIP)
}

// checkTags refuses a VLAN stack Decode would not read: more than
// maxVLANDepth tags, or an ID outside 1-4094.
func checkTags(vlans []uint16) error {
	if len(vlans) > maxVLANDepth {
		return fmt.Errorf("%w: %d vlan tags, at most %d", ErrInvalid, len(vlans), maxVLANDepth)
	}
	for _, vid := range vlans {
		if vid == 0 || vid > 4094 {
			return fmt.Errorf("%w: vlan %d", ErrInvalid, vid)
		}
	}
	return nil
}

// grow returns b extended by n bytes, and the n bytes, zeroed.
func grow(b []byte, n int) ([]byte, []byte) {
	b = slices.Grow(b, n)
	out := b[len(b) : len(b)+n]
	clear(out)
	return b[:len(b)+n], out
}

// putEthernet writes the Ethernet header from src to dst with the VLAN tags
// vlans (outer tags of a QinQ stack with the 802.1ad TPID, the innermost
// with 802.1Q, priority 0) and EtherType et; it returns the rest of h.
func putEthernet(h []byte, src, dst net.HardwareAddr, vlans []uint16, et layers.EthernetType) []byte {
	copy(h[0:6], dst)
	copy(h[6:12], src)
	h = h[12:]
	for i, vid := range vlans {
		tpid := layers.EthernetTypeDot1Q
		if i < len(vlans)-1 {
			tpid = layers.EthernetTypeQinQ
		}
		binary.BigEndian.PutUint16(h[0:2], uint16(tpid))
		binary.BigEndian.PutUint16(h[2:4], vid)
		h = h[4:]
	}
	binary.BigEndian.PutUint16(h[0:2], uint16(et))
	return h[2:]
}

func appendARPRequest(b []byte, p Probe) []byte {
	n := max(ethHeaderLen+len(p.VLANs)*vlanTagLen+arpLen, minFrameLen)
	b, frame := grow(b, n)
	a := putEthernet(frame, p.SrcMAC, p.DstMAC, p.VLANs, layers.EthernetTypeARP)
	binary.BigEndian.PutUint16(a[0:2], uint16(layers.LinkTypeEthernet))
	binary.BigEndian.PutUint16(a[2:4], uint16(layers.EthernetTypeIPv4))
	a[4], a[5] = 6, 4
	binary.BigEndian.PutUint16(a[6:8], OpARPRequest)
	copy(a[8:14], p.SrcMAC)
	src, tgt := p.SrcIP.As4(), p.Target.As4()
	copy(a[14:18], src[:])
	// a[18:24], the target hardware address, stays zero: what the request
	// asks for.
	copy(a[24:28], tgt[:])
	return b
}

func appendNS(b []byte, p Probe) []byte {
	msgLen := nsLen
	if !p.SrcIP.IsUnspecified() {
		// RFC 4861 4.3: the option must not be sent from the unspecified address.
		msgLen += llaOptLen
	}
	b, frame := grow(b, ethHeaderLen+len(p.VLANs)*vlanTagLen+ipv6HdrLen+msgLen)
	ip6 := putEthernet(frame, p.SrcMAC, p.DstMAC, p.VLANs, layers.EthernetTypeIPv6)
	ip6[0] = 6 << 4 // version 6, traffic class and flow label 0
	binary.BigEndian.PutUint16(ip6[4:6], uint16(msgLen))
	ip6[6] = uint8(layers.IPProtocolICMPv6)
	ip6[7] = 255 // RFC 4861 7.1.1: receivers discard NS with any other hop limit
	src, dst := p.SrcIP.As16(), p.Target.As16()
	copy(ip6[8:24], src[:])
	copy(ip6[24:40], dst[:])
	msg := ip6[ipv6HdrLen:]
	msg[0] = uint8(layers.ICMPv6TypeNeighborSolicitation)
	// msg[1], the code, msg[2:4], the checksum while it is summed, and
	// msg[4:8], reserved, stay zero.
	copy(msg[8:24], dst[:])
	if msgLen > nsLen {
		msg[24] = uint8(layers.ICMPv6OptSourceAddress)
		msg[25] = 1 // in units of 8 octets
		copy(msg[26:32], p.SrcMAC)
	}
	binary.BigEndian.PutUint16(msg[2:4], ICMPv6Checksum(p.SrcIP, p.Target, msg))
	return b
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
	if err := checkTags(vlans); err != nil {
		return nil, err
	}
	eth := &layers.Ethernet{SrcMAC: src, DstMAC: dst, EthernetType: et}
	all := []gopacket.SerializableLayer{eth}
	for i, vid := range vlans {
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
