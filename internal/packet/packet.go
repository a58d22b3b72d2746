// Package packet is rarp-replay's pure codec: it decodes the frames the daemon
// captures (RARP announcements, ARP replies, Neighbor Advertisements) and
// builds the frames it sends (RARP, unicast ARP requests, unicast Neighbor
// Solicitations). It opens no sockets; every function works on byte slices.
package packet

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"net/netip"

	"github.com/gopacket/gopacket/layers"
)

// EtherTypeRARP is the EtherType of Reverse ARP (RFC 903). gopacket does not
// register it, so the decoder checks it by hand and reads the payload with
// layers.ARP: RARP shares ARP's wire format.
const EtherTypeRARP layers.EthernetType = 0x8035

// ARP and RARP operation codes (RFC 826, RFC 903).
const (
	OpARPRequest  = 1
	OpARPReply    = 2
	OpRARPRequest = 3
	OpRARPReply   = 4
)

// Kind says what a decoded frame is.
type Kind uint8

// Frame kinds the daemon acts on.
const (
	KindRARP     Kind = iota + 1 // RARP request reverse (opcode 3): a hypervisor's announcement
	KindARPReply                 // ARP reply: verifies an IPv4 probe
	KindNA                       // Neighbor Advertisement: verifies an IPv6 probe
)

func (k Kind) String() string {
	switch k {
	case KindRARP:
		return "rarp"
	case KindARPReply:
		return "arp-reply"
	case KindNA:
		return "na"
	}
	return fmt.Sprintf("kind(%d)", uint8(k))
}

// Frame is a decoded frame.
type Frame struct {
	Kind   Kind
	SrcMAC net.HardwareAddr // Ethernet source (for cooked captures, the SLL source address)
	DstMAC net.HardwareAddr // Ethernet destination; nil for cooked captures
	VLANs  []uint16         // 802.1Q/802.1ad tags, outermost first
	// IfIndex is the interface index a cooked (SLL2) capture recorded, 0 otherwise.
	IfIndex int
	// MAC is the announced MAC (RARP) or the MAC a reply binds IP to.
	MAC net.HardwareAddr
	// IP is the address a reply binds to MAC; invalid for RARP.
	IP netip.Addr
	// TargetIP is whom a reply answers: an ARP reply's target protocol
	// address, an NA's IPv6 destination. Invalid for RARP.
	TargetIP netip.Addr
	// TargetMAC is an ARP reply's target hardware address; nil otherwise.
	TargetMAC net.HardwareAddr
	// Solicited is an NA's Solicited flag (RFC 4861 4.4): it answers a
	// Neighbor Solicitation.
	Solicited bool
}

// DropError is the error Decode returns for a frame the daemon does not act
// on. Reason is a short, stable, metric-friendly word.
type DropError struct {
	Reason string
	Detail string
}

func (e *DropError) Error() string {
	if e.Detail == "" {
		return e.Reason
	}
	return e.Reason + ": " + e.Detail
}

// Is makes errors.Is match on the reason alone, so the exported sentinels
// below compare equal to a DropError with any detail.
func (e *DropError) Is(target error) bool {
	t, ok := target.(*DropError)
	return ok && t.Reason == e.Reason
}

// Drop reasons Decode returns. Compare with errors.Is.
var (
	ErrTruncated    = &DropError{Reason: "truncated"}
	ErrLinkType     = &DropError{Reason: "link-type"}
	ErrEtherType    = &DropError{Reason: "ethertype"}
	ErrBadHeader    = &DropError{Reason: "bad-header"}
	ErrOpcode       = &DropError{Reason: "opcode"}
	ErrMACMismatch  = &DropError{Reason: "mac-mismatch"}
	ErrBadMAC       = &DropError{Reason: "bad-mac"}
	ErrNotNA        = &DropError{Reason: "not-na"}
	ErrTooManyVLANs = &DropError{Reason: "vlan-depth"}
	ErrOutbound     = &DropError{Reason: "outbound"}
	ErrChecksum     = &DropError{Reason: "bad-checksum"}
	ErrBadOption    = &DropError{Reason: "bad-option"}
)

// maxVLANDepth is the number of 802.1Q/802.1ad tags Decode accepts (QinQ).
const maxVLANDepth = 2

func drop(sentinel *DropError, format string, args ...any) error {
	return &DropError{Reason: sentinel.Reason, Detail: fmt.Sprintf(format, args...)}
}

// Reason returns the drop reason of err: the Reason of a *DropError in its
// chain, or "error" for any other error.
func Reason(err error) string {
	var d *DropError
	if errors.As(err, &d) {
		return d.Reason
	}
	return "error"
}

// Decode decodes one captured frame of link type lt (Ethernet, or Linux
// cooked SLL/SLL2 as captured on the "any" device; a cooked frame the host
// sent is dropped as "outbound", as the daemon captures inbound only). It returns a Frame for a
// RARP request reverse, an ARP reply or a Neighbor Advertisement, and a
// *DropError for everything else, truncated or malformed frames included.
//
// The frames the daemon acts on are read by hand, without gopacket, with
// one allocation (decodeFast); every other frame, drops included, goes
// through the gopacket layers (decodeLayers), which decide its verdict and
// drop reason. The fuzz tests hold the two to the same answer.
func Decode(data []byte, lt layers.LinkType) (Frame, error) {
	if f, ok := decodeFast(data, lt); ok {
		return f, nil
	}
	return decodeLayers(data, lt)
}

// decodeLayers is Decode through gopacket's layers: the reference decoder.
func decodeLayers(data []byte, lt layers.LinkType) (Frame, error) {
	var f Frame
	var et layers.EthernetType
	var payload []byte
	switch lt {
	case layers.LinkTypeEthernet:
		var eth layers.Ethernet
		if err := eth.DecodeFromBytes(data, nopFeedback{}); err != nil {
			return f, drop(ErrTruncated, "ethernet: %v", err)
		}
		f.SrcMAC, f.DstMAC = eth.SrcMAC, eth.DstMAC
		et, payload = eth.EthernetType, eth.Payload
	case layers.LinkTypeLinuxSLL2:
		var sll layers.LinuxSLL2
		if err := sll.DecodeFromBytes(data, nopFeedback{}); err != nil {
			return f, drop(ErrTruncated, "sll2: %v", err)
		}
		if sll.PacketType == layers.LinuxSLL2PacketTypeOutgoing {
			return f, drop(ErrOutbound, "sll2 packet type outgoing")
		}
		if sll.AddrLength == 6 {
			f.SrcMAC = sll.Addr
		}
		f.IfIndex = int(sll.InterfaceIndex)
		et, payload = sll.ProtocolType, sll.Payload
	case layers.LinkTypeLinuxSLL:
		var sll layers.LinuxSLL
		if err := sll.DecodeFromBytes(data, nopFeedback{}); err != nil {
			return f, drop(ErrTruncated, "sll: %v", err)
		}
		if sll.PacketType == layers.LinuxSLLPacketTypeOutgoing {
			return f, drop(ErrOutbound, "sll packet type outgoing")
		}
		if sll.AddrLen == 6 {
			f.SrcMAC = sll.Addr
		}
		et, payload = sll.EthernetType, sll.Payload
	default:
		return f, drop(ErrLinkType, "%v", lt)
	}
	for et == layers.EthernetTypeDot1Q || et == layers.EthernetTypeQinQ {
		if len(f.VLANs) == maxVLANDepth {
			return f, drop(ErrTooManyVLANs, "more than %d tags", maxVLANDepth)
		}
		var tag layers.Dot1Q
		if err := tag.DecodeFromBytes(payload, nopFeedback{}); err != nil {
			return f, drop(ErrTruncated, "802.1Q: %v", err)
		}
		f.VLANs = append(f.VLANs, tag.VLANIdentifier)
		et, payload = tag.Type, tag.Payload
	}
	switch et {
	case EtherTypeRARP:
		return decodeRARP(f, payload)
	case layers.EthernetTypeARP:
		return decodeARPReply(f, payload)
	case layers.EthernetTypeIPv6:
		return decodeNA(f, payload)
	}
	return f, drop(ErrEtherType, "0x%04x", uint16(et))
}

// decodeARPHeader decodes an ARP-format payload and checks that it is
// Ethernet over IPv4: htype 1, ptype 0x0800, hlen 6, plen 4.
func decodeARPHeader(payload []byte) (layers.ARP, error) {
	var a layers.ARP
	if err := a.DecodeFromBytes(payload, nopFeedback{}); err != nil {
		return a, drop(ErrTruncated, "arp: %v", err)
	}
	if a.AddrType != layers.LinkTypeEthernet || a.Protocol != layers.EthernetTypeIPv4 ||
		a.HwAddressSize != 6 || a.ProtAddressSize != 4 {
		return a, drop(ErrBadHeader, "htype %d ptype 0x%04x hlen %d plen %d",
			uint16(a.AddrType), uint16(a.Protocol), a.HwAddressSize, a.ProtAddressSize)
	}
	return a, nil
}

func decodeRARP(f Frame, payload []byte) (Frame, error) {
	a, err := decodeARPHeader(payload)
	if err != nil {
		return f, err
	}
	if a.Operation != OpRARPRequest {
		return f, drop(ErrOpcode, "rarp opcode %d", a.Operation)
	}
	sha, tha := net.HardwareAddr(a.SourceHwAddress), net.HardwareAddr(a.DstHwAddress)
	if !equalMAC(sha, tha) {
		return f, drop(ErrMACMismatch, "sender %s target %s", sha, tha)
	}
	if f.SrcMAC != nil && !equalMAC(f.SrcMAC, sha) {
		return f, drop(ErrMACMismatch, "ethernet source %s sender %s", f.SrcMAC, sha)
	}
	if !UnicastMAC(sha) {
		return f, drop(ErrBadMAC, "%s", sha)
	}
	f.Kind = KindRARP
	f.MAC = cloneMAC(sha)
	return f, nil
}

func decodeARPReply(f Frame, payload []byte) (Frame, error) {
	a, err := decodeARPHeader(payload)
	if err != nil {
		return f, err
	}
	if a.Operation != OpARPReply {
		return f, drop(ErrOpcode, "arp opcode %d", a.Operation)
	}
	sha := net.HardwareAddr(a.SourceHwAddress)
	if !UnicastMAC(sha) {
		return f, drop(ErrBadMAC, "%s", sha)
	}
	ip, _ := netip.AddrFromSlice(a.SourceProtAddress)
	tip, _ := netip.AddrFromSlice(a.DstProtAddress)
	f.Kind = KindARPReply
	f.MAC = cloneMAC(sha)
	f.IP = ip
	f.TargetIP = tip
	f.TargetMAC = cloneMAC(a.DstHwAddress)
	return f, nil
}

// decodeNA decodes a Neighbor Advertisement and applies the validity checks
// of RFC 4861 7.1.2: hop limit 255, a valid ICMPv6 checksum, code 0, at
// least 24 octets, a target that is not multicast, the Solicited flag clear
// when sent to a multicast address, and options of non-zero length within
// the message. The target link-layer address option, when present, gives
// the MAC; otherwise the Ethernet source does.
func decodeNA(f Frame, payload []byte) (Frame, error) {
	var ip6 layers.IPv6
	if err := ip6.DecodeFromBytes(payload, nopFeedback{}); err != nil {
		return f, drop(ErrTruncated, "ipv6: %v", err)
	}
	if ip6.Version != 6 {
		return f, drop(ErrBadHeader, "ip version %d in an IPv6 frame", ip6.Version)
	}
	if int(ip6.Length) > len(payload)-40 || ip6.Length == 0 {
		return f, drop(ErrTruncated, "ipv6 payload length %d, %d bytes follow the header", ip6.Length, len(payload)-40)
	}
	if ip6.NextHeader != layers.IPProtocolICMPv6 {
		return f, drop(ErrNotNA, "next header %d", uint8(ip6.NextHeader))
	}
	src, _ := netip.AddrFromSlice(ip6.SrcIP)
	dst, _ := netip.AddrFromSlice(ip6.DstIP)
	f, err := decodeNAMessage(f, src, dst, ip6.HopLimit, payload[40:40+int(ip6.Length)])
	if err != nil {
		return f, err
	}
	f.MAC = cloneMAC(f.MAC)
	return f, nil
}

// decodeNAMessage applies decodeNA's checks to the ICMPv6 message msg of
// an IPv6 packet from src to dst with hop limit hop. f.MAC of the Frame it
// returns is not a copy: it shares the bytes of msg or of f.SrcMAC.
func decodeNAMessage(f Frame, src, dst netip.Addr, hop uint8, msg []byte) (Frame, error) {
	if len(msg) < 4 {
		return f, drop(ErrTruncated, "icmpv6: %d bytes", len(msg))
	}
	if msg[0] != uint8(layers.ICMPv6TypeNeighborAdvertisement) {
		return f, drop(ErrNotNA, "icmpv6 type %d", msg[0])
	}
	if hop != 255 {
		// RFC 4861 7.1.2: a node must discard an NA whose hop limit is not 255.
		return f, drop(ErrBadHeader, "na hop limit %d", hop)
	}
	if msg[1] != 0 {
		return f, drop(ErrBadHeader, "na code %d", msg[1])
	}
	if len(msg) < 24 {
		return f, drop(ErrTruncated, "na: %d bytes, want at least 24", len(msg))
	}
	if ICMPv6Checksum(src, dst, msg) != 0 {
		return f, drop(ErrChecksum, "na from %s", src)
	}
	target := netip.AddrFrom16([16]byte(msg[8:24]))
	if target.IsMulticast() || target.IsUnspecified() {
		return f, drop(ErrBadHeader, "na target %s", target)
	}
	solicited := msg[4]&0x40 != 0
	if dst.IsMulticast() && solicited {
		return f, drop(ErrBadHeader, "solicited na to multicast %s", dst)
	}
	mac := f.SrcMAC
	for opts := msg[24:]; len(opts) > 0; {
		if len(opts) < 2 || opts[1] == 0 || int(opts[1])*8 > len(opts) {
			return f, drop(ErrBadOption, "na option at offset %d", len(msg)-len(opts))
		}
		n := int(opts[1]) * 8
		if opts[0] == uint8(layers.ICMPv6OptTargetAddress) {
			if n != 8 {
				return f, drop(ErrBadOption, "target link-layer address option of %d bytes", n)
			}
			mac = net.HardwareAddr(opts[2:8])
		}
		opts = opts[n:]
	}
	if !UnicastMAC(mac) {
		return f, drop(ErrBadMAC, "%s", mac)
	}
	f.Kind = KindNA
	f.MAC = mac
	f.IP = target
	f.TargetIP = dst
	f.Solicited = solicited
	return f, nil
}

// frameStore holds the bytes a Frame from decodeFast owns, in one
// allocation: the MACs it copies out of the captured data, and the tags.
type frameStore struct {
	mac, targetMAC [6]byte
	vlans          [maxVLANDepth]uint16
}

// decodeFast decodes, by hand, the frames the daemon acts on: a RARP
// request reverse, an ARP reply or a Neighbor Advertisement, over
// Ethernet or a cooked capture, under at most maxVLANDepth tags. It
// accepts exactly what decodeLayers accepts, with the same Frame, and
// makes one allocation for the bytes the Frame owns. For anything it does
// not accept (ok false) Decode asks decodeLayers, which gives the drop
// reason; decodeFast never decides a drop itself.
func decodeFast(data []byte, lt layers.LinkType) (f Frame, ok bool) {
	be := binary.BigEndian
	var et layers.EthernetType
	var payload []byte
	switch lt {
	case layers.LinkTypeEthernet:
		if len(data) < 14 {
			return f, false
		}
		f.DstMAC, f.SrcMAC = net.HardwareAddr(data[0:6]), net.HardwareAddr(data[6:12])
		et, payload = layers.EthernetType(be.Uint16(data[12:14])), data[14:]
	case layers.LinkTypeLinuxSLL2:
		if len(data) < 20 || layers.LinuxSLL2PacketType(data[10]) == layers.LinuxSLL2PacketTypeOutgoing || data[11] > 8 {
			return f, false
		}
		if data[11] == 6 {
			f.SrcMAC = net.HardwareAddr(data[12:18])
		}
		f.IfIndex = int(be.Uint32(data[4:8]))
		et, payload = layers.EthernetType(be.Uint16(data[0:2])), data[20:]
	case layers.LinkTypeLinuxSLL:
		if len(data) < 16 || layers.LinuxSLLPacketType(be.Uint16(data[0:2])) == layers.LinuxSLLPacketTypeOutgoing {
			return f, false
		}
		switch be.Uint16(data[4:6]) {
		case 6:
			f.SrcMAC = net.HardwareAddr(data[6:12])
		case 0, 1, 2, 3, 4, 5, 7, 8:
		default:
			return f, false
		}
		et, payload = layers.EthernetType(be.Uint16(data[14:16])), data[16:]
	default:
		return f, false
	}
	var tags [maxVLANDepth]uint16
	n := 0
	for et == layers.EthernetTypeDot1Q || et == layers.EthernetTypeQinQ {
		if n == maxVLANDepth || len(payload) < 4 {
			return f, false
		}
		tags[n] = be.Uint16(payload[0:2]) & 0x0fff
		n++
		et, payload = layers.EthernetType(be.Uint16(payload[2:4])), payload[4:]
	}
	var mac, targetMAC []byte
	switch et {
	case EtherTypeRARP, layers.EthernetTypeARP:
		if len(payload) < 28 || be.Uint16(payload[0:2]) != uint16(layers.LinkTypeEthernet) ||
			be.Uint16(payload[2:4]) != uint16(layers.EthernetTypeIPv4) || payload[4] != 6 || payload[5] != 4 {
			return f, false
		}
		op := be.Uint16(payload[6:8])
		sha, spa, tha, tpa := payload[8:14], payload[14:18], payload[18:24], payload[24:28]
		if !UnicastMAC(sha) {
			return f, false
		}
		if et == EtherTypeRARP {
			if op != OpRARPRequest || string(sha) != string(tha) || (f.SrcMAC != nil && string(f.SrcMAC) != string(sha)) {
				return f, false
			}
			f.Kind, mac = KindRARP, sha
			break
		}
		if op != OpARPReply {
			return f, false
		}
		f.Kind, mac, targetMAC = KindARPReply, sha, tha
		f.IP, f.TargetIP = netip.AddrFrom4([4]byte(spa)), netip.AddrFrom4([4]byte(tpa))
	case layers.EthernetTypeIPv6:
		// Only a plain ICMPv6 packet: an extension header, a jumbogram or
		// a length past the data go to decodeLayers.
		if len(payload) < 40 || payload[0]>>4 != 6 || layers.IPProtocol(payload[6]) != layers.IPProtocolICMPv6 {
			return f, false
		}
		length := int(be.Uint16(payload[4:6]))
		if length < 24 || length > len(payload)-40 || payload[40] != uint8(layers.ICMPv6TypeNeighborAdvertisement) {
			return f, false
		}
		src, dst := netip.AddrFrom16([16]byte(payload[8:24])), netip.AddrFrom16([16]byte(payload[24:40]))
		var err error
		if f, err = decodeNAMessage(f, src, dst, payload[7], payload[40:40+length]); err != nil {
			return f, false
		}
		mac = f.MAC
	default:
		return f, false
	}
	st := new(frameStore)
	copy(st.mac[:], mac)
	f.MAC = st.mac[:]
	if targetMAC != nil {
		copy(st.targetMAC[:], targetMAC)
		f.TargetMAC = st.targetMAC[:]
	}
	if n > 0 {
		st.vlans = tags
		f.VLANs = st.vlans[:n:n]
	}
	return f, true
}

// ICMPv6Checksum returns the ones' complement sum of the IPv6 pseudo-header
// (RFC 8200 8.1) and msg, folded: 0 when msg carries a valid checksum, and
// the value to store when msg's checksum field is zero.
func ICMPv6Checksum(src, dst netip.Addr, msg []byte) uint16 {
	var sum uint32
	add := func(b []byte) {
		for len(b) >= 2 {
			sum += uint32(b[0])<<8 | uint32(b[1])
			b = b[2:]
		}
		if len(b) == 1 {
			sum += uint32(b[0]) << 8
		}
	}
	s, d := src.As16(), dst.As16()
	add(s[:])
	add(d[:])
	n := uint32(len(msg))
	sum += n>>16 + n&0xffff + uint32(layers.IPProtocolICMPv6)
	add(msg)
	for sum > 0xffff {
		sum = sum>>16 + sum&0xffff
	}
	return ^uint16(sum)
}

// SLL2IfIndex returns the interface index a Linux cooked (SLL2) header
// records, the header being the start of data; false when data is too
// short to hold one.
func SLL2IfIndex(data []byte) (int, bool) {
	if len(data) < 20 {
		return 0, false
	}
	return int(int32(binary.BigEndian.Uint32(data[4:8]))), true
}

// SLL2IsRARP reports whether the Linux cooked (SLL2) header at the start of
// data names a RARP frame (its protocol type).
func SLL2IsRARP(data []byte) bool {
	return len(data) >= 20 && binary.BigEndian.Uint16(data[0:2]) == uint16(EtherTypeRARP)
}

// UnicastMAC reports whether mac is a 6-byte unicast, non-zero MAC address.
func UnicastMAC(mac net.HardwareAddr) bool {
	if len(mac) != 6 || mac[0]&1 != 0 {
		return false
	}
	for _, b := range mac {
		if b != 0 {
			return true
		}
	}
	return false
}

func equalMAC(a, b net.HardwareAddr) bool { return string(a) == string(b) }

func cloneMAC(m net.HardwareAddr) net.HardwareAddr { return append(net.HardwareAddr(nil), m...) }

// nopFeedback satisfies gopacket.DecodeFeedback for DecodeFromBytes calls.
type nopFeedback struct{}

func (nopFeedback) SetTruncated() {}
