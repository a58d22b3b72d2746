package packet

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"
	"github.com/gopacket/gopacket/pcapgo"
)

// FuzzDecode feeds arbitrary bytes to Decode for every link type it reads.
// It must never panic, and every frame it accepts must carry a unicast MAC
// (and, for replies, a valid address).
func FuzzDecode(f *testing.F) {
	f.Add(qemuRARP(vmMAC), uint8(0))
	f.Add(qemuRARP(vmMAC)[:30], uint8(0))
	na, _ := buildTestNA(vmMAC, netip.MustParseAddr("2001:db8:10::10"), 255)
	f.Add(na, uint8(0))
	tagged, _ := BuildRARP(vmMAC, []uint16{100, 10})
	f.Add(tagged, uint8(0))
	f.Add(append([]byte{0x80, 0x35, 0, 0, 0, 0, 0, 7, 0, 1, 0, 6, 2, 0, 0x5e, 0x10, 0, 0x0a, 0, 0}, qemuRARP(vmMAC)[14:]...), uint8(1))
	types := []layers.LinkType{layers.LinkTypeEthernet, layers.LinkTypeLinuxSLL2, layers.LinkTypeLinuxSLL}
	// Every frame of the capture corpus, with its link type.
	caps, _ := filepath.Glob("../../pcaps/corpus/*.pcap")
	for _, c := range caps {
		fh, err := os.Open(c)
		if err != nil {
			f.Fatal(err)
		}
		r, err := pcapgo.NewReader(fh)
		if err != nil {
			f.Fatalf("%s: %v", c, err)
		}
		which := uint8(slices.Index(types, r.LinkType()))
		for {
			data, _, err := r.ReadPacketData()
			if err != nil {
				break
			}
			f.Add(data, which)
		}
		fh.Close()
	}
	f.Fuzz(func(t *testing.T, data []byte, which uint8) {
		lt := types[int(which)%len(types)]
		fr, err := Decode(data, lt)
		// Decode answers as the gopacket decoder does, whether its hand
		// decoder took the frame or passed it on: the same verdict, the
		// same fields, the same drop reason and detail.
		ref, refErr := decodeLayers(data, lt)
		if fmt.Sprint(err) != fmt.Sprint(refErr) {
			t.Fatalf("Decode error %v, gopacket decoder %v", err, refErr)
		}
		if d := cmp.Diff(ref, fr, cmpAddr); d != "" {
			t.Fatalf("Decode (-gopacket +Decode):\n%s", d)
		}
		if fast, ok := decodeFast(data, lt); ok {
			if refErr != nil {
				t.Fatalf("hand decoder accepted %+v, gopacket decoder drops it: %v", fast, refErr)
			}
			if d := cmp.Diff(ref, fast, cmpAddr); d != "" {
				t.Fatalf("hand decoder (-gopacket +hand):\n%s", d)
			}
		}
		if err != nil {
			if Reason(err) == "error" {
				t.Fatalf("Decode returned an error without a drop reason: %v", err)
			}
			return
		}
		if !UnicastMAC(fr.MAC) {
			t.Fatalf("accepted frame with MAC %s", fr.MAC)
		}
		if fr.Kind != KindRARP && !fr.IP.IsValid() {
			t.Fatalf("accepted %v without an address", fr.Kind)
		}
	})
}

// FuzzRoundTrip builds every frame this package writes from fuzzed MACs,
// addresses and VLAN tags: an ARP request or a Neighbor Solicitation
// (Build), a RARP (BuildRARP), an ARP reply or a Neighbor Advertisement
// (BuildReply). A builder must refuse exactly the arguments its doc
// comment rules out, with ErrInvalid. What it builds is decoded in full
// by gopacket, independently of this package, and every field must come
// back: MACs, tags and their TPIDs, addresses, ARP opcode and sizes, the
// NS target, its source link-layer option (present iff the source is not
// ::), hop limit, and an ICMPv6 checksum that ICMPv6Checksum, gopacket's
// verification and a gopacket re-serialization all accept. A RARP and a
// reply must also come back through Decode, the daemon's own decoder.
//
// kind selects the builder (mod 3); tags are big-endian 16-bit VLAN IDs.
func FuzzRoundTrip(f *testing.F) {
	ip := func(s string) []byte { return netip.MustParseAddr(s).AsSlice() }
	be := func(vids ...uint16) []byte {
		var b []byte
		for _, v := range vids {
			b = binary.BigEndian.AppendUint16(b, v)
		}
		return b
	}
	f.Add(uint8(0), []byte(sviMAC), []byte(vmMAC), ip("192.0.2.1"), ip("192.0.2.10"), be(10), uint8(0))
	f.Add(uint8(0), []byte(sviMAC), []byte(vmMAC), ip("0.0.0.0"), ip("192.0.2.10"), be(), uint8(0))
	f.Add(uint8(0), []byte(sviMAC), []byte(vmMAC), ip("2001:db8:10::1"), ip("2001:db8:10::10"), be(), uint8(0))
	f.Add(uint8(0), []byte(sviMAC), []byte(vmMAC), ip("::"), ip("2001:db8:10::10"), be(100, 10), uint8(0))
	f.Add(uint8(0), []byte(sviMAC), []byte(vmMAC), ip("fe80::1"), ip("fe80::10"), be(4094), uint8(0))
	f.Add(uint8(1), []byte(vmMAC), []byte(nil), []byte(nil), []byte(nil), be(), uint8(0))
	f.Add(uint8(1), []byte(vmMAC), []byte(nil), []byte(nil), []byte(nil), be(100, 20), uint8(0))
	f.Add(uint8(2), []byte(vmMAC), []byte(sviMAC), ip("192.0.2.10"), ip("192.0.2.1"), be(10), uint8(0))
	f.Add(uint8(2), []byte(vmMAC), []byte(sviMAC), ip("2001:db8:10::10"), ip("fe80::1"), be(10), uint8(0))
	f.Add(uint8(2), []byte(vmMAC), []byte(sviMAC), ip("2001:db8:10::10"), ip("2001:db8:10::1"), be(), uint8(64))
	f.Add(uint8(2), []byte(vmMAC), []byte(Broadcast), ip("192.0.2.10"), ip("192.0.2.10"), be(), uint8(0))
	f.Fuzz(func(t *testing.T, kind uint8, src, dst, srcIP, dstIP, tagBytes []byte, hop uint8) {
		var vlans []uint16
		for b := tagBytes; len(b) >= 2; b = b[2:] {
			vlans = append(vlans, binary.BigEndian.Uint16(b))
		}
		sip, _ := netip.AddrFromSlice(srcIP)
		dip, _ := netip.AddrFromSlice(dstIP)
		switch kind % 3 {
		case 0:
			p := Probe{SrcMAC: src, DstMAC: dst, SrcIP: sip, Target: dip, VLANs: vlans}
			valid := unicast(src) && unicast(dst) && validTags(vlans) &&
				((dip.Is4() && sip.Is4()) || (dip.Is6() && !dip.Is4In6() && sip.Is6()))
			frame, err := Build(p)
			// Byte for byte what gopacket serializes, or the same error.
			ref, refErr := gopacketProbe(p)
			if fmt.Sprint(err) != fmt.Sprint(refErr) || !bytes.Equal(frame, ref) {
				t.Fatalf("Build(%+v) = %x, %v; gopacket %x, %v", p, frame, err, ref, refErr)
			}
			if !checkBuilt(t, "Build", valid, err) {
				return
			}
			pk := decodeFully(t, frame)
			if dip.Is4() {
				checkEthernet(t, pk, frame, src, dst, vlans, layers.EthernetTypeARP)
				checkARP(t, pk.Layer(layers.LayerTypeARP), OpARPRequest, src, sip, make(net.HardwareAddr, 6), dip)
				return
			}
			checkEthernet(t, pk, frame, src, dst, vlans, layers.EthernetTypeIPv6)
			checkIPv6(t, pk, sip, dip, 255, layers.ICMPv6TypeNeighborSolicitation)
			ns, ok := pk.Layer(layers.LayerTypeICMPv6NeighborSolicitation).(*layers.ICMPv6NeighborSolicitation)
			if !ok {
				t.Fatalf("no NS layer: %v", pk)
			}
			if got, _ := netip.AddrFromSlice(ns.TargetAddress); got != dip {
				t.Errorf("NS target %s, want %s", got, dip)
			}
			// RFC 4861 4.3: the source link-layer address option, and
			// only it, unless the source is unspecified.
			var want layers.ICMPv6Options
			if !sip.IsUnspecified() {
				want = layers.ICMPv6Options{{Type: layers.ICMPv6OptSourceAddress, Data: src}}
			}
			if d := cmp.Diff(want, ns.Options, cmp.Comparer(func(a, b []byte) bool { return bytes.Equal(a, b) })); d != "" {
				t.Errorf("NS options from %s (-want +got):\n%s", sip, d)
			}
		case 1:
			frame, err := BuildRARP(src, vlans)
			if !checkBuilt(t, "BuildRARP", unicast(src) && validTags(vlans), err) {
				return
			}
			pk := gopacket.NewPacket(frame, layers.LayerTypeEthernet, gopacket.DecodeOptions{})
			checkEthernet(t, pk, frame, src, Broadcast, vlans, EtherTypeRARP)
			// gopacket does not decode EtherType 0x8035: its payload, with
			// layers.ARP (RARP shares the wire format).
			ls := pk.Layers()
			last := ls[len(ls)-1]
			if _, failed := last.(*gopacket.DecodeFailure); failed {
				last = ls[len(ls)-2]
			}
			arp := gopacket.NewPacket(last.LayerPayload(), layers.LayerTypeARP, gopacket.DecodeOptions{})
			if el := arp.ErrorLayer(); el != nil {
				t.Fatalf("RARP payload: %v", el.Error())
			}
			zero := netip.IPv4Unspecified()
			checkARP(t, arp.Layer(layers.LayerTypeARP), OpRARPRequest, src, zero, src, zero)
			got, err := Decode(frame, layers.LinkTypeEthernet)
			if err != nil {
				t.Fatalf("Decode(BuildRARP(%s, %v)): %v", src, vlans, err)
			}
			checkFast(t, frame, got)
			want := Frame{Kind: KindRARP, SrcMAC: src, DstMAC: Broadcast, VLANs: vlans, MAC: src}
			if d := cmp.Diff(want, got, cmpAddr); d != "" {
				t.Errorf("Decode(BuildRARP) (-want +got):\n%s", d)
			}
		case 2:
			r := Reply{MAC: src, IP: sip, DstMAC: dst, DstIP: dip, VLANs: vlans, HopLimit: hop}
			valid := unicast(src) && len(dst) == 6 && validTags(vlans) &&
				((sip.Is4() && dip.Is4()) || (sip.Is6() && dip.Is6()))
			frame, err := BuildReply(r)
			if !checkBuilt(t, "BuildReply", valid, err) {
				return
			}
			pk := decodeFully(t, frame)
			want := Frame{SrcMAC: src, DstMAC: dst, VLANs: vlans, MAC: src, IP: sip, TargetIP: dip}
			var wantErr error
			if sip.Is4() {
				checkEthernet(t, pk, frame, src, dst, vlans, layers.EthernetTypeARP)
				checkARP(t, pk.Layer(layers.LayerTypeARP), OpARPReply, src, sip, dst, dip)
				want.Kind, want.TargetMAC = KindARPReply, dst
			} else {
				wantHop := hop
				if hop == 0 {
					wantHop = 255
				}
				checkEthernet(t, pk, frame, src, dst, vlans, layers.EthernetTypeIPv6)
				checkIPv6(t, pk, sip, dip, wantHop, layers.ICMPv6TypeNeighborAdvertisement)
				na, ok := pk.Layer(layers.LayerTypeICMPv6NeighborAdvertisement).(*layers.ICMPv6NeighborAdvertisement)
				if !ok {
					t.Fatalf("no NA layer: %v", pk)
				}
				if got, _ := netip.AddrFromSlice(na.TargetAddress); got != sip || !na.Solicited() || !na.Override() || na.Router() {
					t.Errorf("NA target %s flags %#x, want %s solicited override", got, na.Flags, sip)
				}
				wantOpts := layers.ICMPv6Options{{Type: layers.ICMPv6OptTargetAddress, Data: src}}
				if d := cmp.Diff(wantOpts, na.Options, cmp.Comparer(func(a, b []byte) bool { return bytes.Equal(a, b) })); d != "" {
					t.Errorf("NA options (-want +got):\n%s", d)
				}
				want.Kind, want.Solicited = KindNA, true
				// RFC 4861 7.1.2: what a receiver must discard, Decode
				// drops, whoever built it.
				if wantHop != 255 || sip.IsMulticast() || sip.IsUnspecified() || dip.IsMulticast() {
					wantErr = ErrBadHeader
				}
			}
			got, err := Decode(frame, layers.LinkTypeEthernet)
			if wantErr != nil {
				if !errors.Is(err, wantErr) {
					t.Fatalf("Decode(BuildReply(%+v)) = %+v, %v; want %v", r, got, err, wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("Decode(BuildReply(%+v)): %v", r, err)
			}
			checkFast(t, frame, got)
			if d := cmp.Diff(want, got, cmpAddr); d != "" {
				t.Errorf("Decode(BuildReply) (-want +got):\n%s", d)
			}
		}
	})
}

// checkFast fails unless Decode's hand decoder, not the gopacket one,
// took the Ethernet frame that Decode decoded as want: the daemon's own
// frames must not fall back to the slow path.
func checkFast(t *testing.T, frame []byte, want Frame) {
	t.Helper()
	got, ok := decodeFast(frame, layers.LinkTypeEthernet)
	if !ok {
		t.Fatalf("hand decoder passed on %x, which Decode accepts", frame)
	}
	if d := cmp.Diff(want, got, cmpAddr); d != "" {
		t.Fatalf("hand decoder (-Decode +hand):\n%s", d)
	}
}

// unicast is UnicastMAC written again: the fuzz target's own statement of
// which MACs the builders accept.
func unicast(mac []byte) bool {
	return len(mac) == 6 && mac[0]&1 == 0 && !bytes.Equal(mac, make([]byte, 6))
}

// validTags reports whether vlans is a stack Decode reads: at most two
// tags (QinQ), each a VLAN ID 1-4094.
func validTags(vlans []uint16) bool {
	if len(vlans) > 2 {
		return false
	}
	for _, v := range vlans {
		if v == 0 || v > 4094 {
			return false
		}
	}
	return true
}

// checkBuilt fails unless a builder succeeded exactly for valid arguments
// and refused the others with ErrInvalid. It reports whether a frame was
// built.
func checkBuilt(t *testing.T, name string, valid bool, err error) bool {
	t.Helper()
	switch {
	case err != nil && !errors.Is(err, ErrInvalid):
		t.Fatalf("%s: error %v does not wrap ErrInvalid", name, err)
	case err != nil && valid:
		t.Fatalf("%s refused valid arguments: %v", name, err)
	case err == nil && !valid:
		t.Fatalf("%s accepted invalid arguments", name)
	}
	return err == nil
}

// decodeFully decodes frame with gopacket, eagerly, and fails on any
// layer it cannot decode.
func decodeFully(t *testing.T, frame []byte) gopacket.Packet {
	t.Helper()
	pk := gopacket.NewPacket(frame, layers.LayerTypeEthernet, gopacket.DecodeOptions{})
	if el := pk.ErrorLayer(); el != nil {
		t.Fatalf("gopacket cannot decode the frame: %v\n%v", el.Error(), pk)
	}
	return pk
}

// checkEthernet checks the Ethernet header and the VLAN tags: outer tags
// of a stack 802.1ad (0x88a8), the innermost 802.1Q (0x8100), no priority,
// then the EtherType et; and that the frame is padded to 60 bytes.
func checkEthernet(t *testing.T, pk gopacket.Packet, frame []byte, src, dst net.HardwareAddr, vlans []uint16, et layers.EthernetType) {
	t.Helper()
	if len(frame) < 60 {
		t.Errorf("frame of %d bytes, want at least 60", len(frame))
	}
	eth, ok := pk.Layer(layers.LayerTypeEthernet).(*layers.Ethernet)
	if !ok {
		t.Fatalf("no Ethernet layer: %v", pk)
	}
	if !bytes.Equal(eth.SrcMAC, src) || !bytes.Equal(eth.DstMAC, dst) {
		t.Errorf("Ethernet %s > %s, want %s > %s", eth.SrcMAC, eth.DstMAC, src, dst)
	}
	type tag struct {
		TPID layers.EthernetType
		VID  uint16
		PCP  uint8
		DEI  bool
	}
	var want, got []tag
	for i, v := range vlans {
		tpid := layers.EthernetTypeDot1Q
		if i < len(vlans)-1 {
			tpid = layers.EthernetTypeQinQ
		}
		want = append(want, tag{TPID: tpid, VID: v})
	}
	next := eth.EthernetType
	for _, l := range pk.Layers() {
		if q, ok := l.(*layers.Dot1Q); ok {
			got = append(got, tag{TPID: next, VID: q.VLANIdentifier, PCP: q.Priority, DEI: q.DropEligible})
			next = q.Type
		}
	}
	if d := cmp.Diff(want, got); d != "" {
		t.Errorf("VLAN tags (-want +got):\n%s", d)
	}
	if next != et {
		t.Errorf("EtherType %v, want %v", next, et)
	}
}

// checkARP checks an Ethernet/IPv4 ARP (or RARP) layer.
func checkARP(t *testing.T, l gopacket.Layer, op uint16, sha net.HardwareAddr, spa netip.Addr, tha net.HardwareAddr, tpa netip.Addr) {
	t.Helper()
	a, ok := l.(*layers.ARP)
	if !ok {
		t.Fatalf("no ARP layer")
	}
	type arp struct {
		HType          layers.LinkType
		PType          layers.EthernetType
		HLen, PLen, Op int
		SHA, THA       string
		SPA, TPA       string
	}
	ip := func(b []byte) string { a, _ := netip.AddrFromSlice(b); return a.String() }
	want := arp{layers.LinkTypeEthernet, layers.EthernetTypeIPv4, 6, 4, int(op), sha.String(), tha.String(), spa.String(), tpa.String()}
	got := arp{a.AddrType, a.Protocol, int(a.HwAddressSize), int(a.ProtAddressSize), int(a.Operation),
		net.HardwareAddr(a.SourceHwAddress).String(), net.HardwareAddr(a.DstHwAddress).String(), ip(a.SourceProtAddress), ip(a.DstProtAddress)}
	if d := cmp.Diff(want, got); d != "" {
		t.Errorf("ARP (-want +got):\n%s", d)
	}
}

// checkIPv6 checks the IPv6 header of an NS or NA and its ICMPv6
// checksum three ways: ICMPv6Checksum over the message, gopacket's own
// verification, and the checksum gopacket computes when it serializes the
// same message again.
func checkIPv6(t *testing.T, pk gopacket.Packet, src, dst netip.Addr, hop uint8, typ uint8) {
	t.Helper()
	ip6, ok := pk.Layer(layers.LayerTypeIPv6).(*layers.IPv6)
	if !ok {
		t.Fatalf("no IPv6 layer: %v", pk)
	}
	gotSrc, _ := netip.AddrFromSlice(ip6.SrcIP)
	gotDst, _ := netip.AddrFromSlice(ip6.DstIP)
	if ip6.Version != 6 || ip6.TrafficClass != 0 || ip6.FlowLabel != 0 || ip6.NextHeader != layers.IPProtocolICMPv6 ||
		ip6.HopLimit != hop || gotSrc != src || gotDst != dst || int(ip6.Length) != len(ip6.Payload) {
		t.Errorf("IPv6 header %+v; want version 6, next header 58, hop limit %d, %s > %s, length %d",
			ip6, hop, src, dst, len(ip6.Payload))
	}
	icmp, ok := pk.Layer(layers.LayerTypeICMPv6).(*layers.ICMPv6)
	if !ok {
		t.Fatalf("no ICMPv6 layer: %v", pk)
	}
	if icmp.TypeCode != layers.CreateICMPv6TypeCode(typ, 0) {
		t.Errorf("ICMPv6 %v, want type %d code 0", icmp.TypeCode, typ)
	}
	if c := ICMPv6Checksum(src, dst, ip6.Payload); c != 0 {
		t.Errorf("ICMPv6Checksum over the message = %#04x, want 0", c)
	}
	if err := icmp.SetNetworkLayerForChecksum(ip6); err != nil {
		t.Fatal(err)
	}
	if err, res := icmp.VerifyChecksum(); err != nil || !res.Valid {
		t.Errorf("gopacket VerifyChecksum: %v, %+v", err, res)
	}
	again := &layers.ICMPv6{TypeCode: icmp.TypeCode}
	if err := again.SetNetworkLayerForChecksum(ip6); err != nil {
		t.Fatal(err)
	}
	buf := gopacket.NewSerializeBuffer()
	if err := gopacket.SerializeLayers(buf, gopacket.SerializeOptions{ComputeChecksums: true}, again, gopacket.Payload(icmp.Payload)); err != nil {
		t.Fatal(err)
	}
	if again.Checksum != icmp.Checksum {
		t.Errorf("ICMPv6 checksum %#04x, gopacket computes %#04x", icmp.Checksum, again.Checksum)
	}
}
