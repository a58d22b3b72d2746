package packet

import (
	"bytes"
	"encoding/hex"
	"errors"
	"math/rand/v2"
	"net"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/gopacket/gopacket/layers"
)

var (
	vmMAC  = net.HardwareAddr{0x02, 0x00, 0x5e, 0x10, 0x00, 0x0a}
	sviMAC = net.HardwareAddr{0x02, 0x00, 0x5e, 0x10, 0x00, 0x01}
)

// qemuRARP is a RARP as QEMU's announce timer sends it (qemu_announce_self):
// 60 bytes, broadcast, EtherType 0x8035, opcode 3, both hardware addresses the
// VM's MAC, both protocol addresses zero, zero padding.
func qemuRARP(mac net.HardwareAddr) []byte {
	b := make([]byte, 60)
	copy(b[0:6], Broadcast)
	copy(b[6:12], mac)
	b[12], b[13] = 0x80, 0x35
	copy(b[14:22], []byte{0, 1, 8, 0, 6, 4, 0, 3})
	copy(b[22:28], mac)
	copy(b[32:38], mac)
	return b
}

func mustHex(t testing.TB, s string) []byte {
	t.Helper()
	b, err := hex.DecodeString(strings.Join(strings.Fields(s), ""))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestDecode(t *testing.T) {
	rarp := qemuRARP(vmMAC)
	tagged := append(append(append([]byte{}, rarp[:12]...), 0x81, 0x00, 0x00, 0x0a), rarp[12:]...)
	qinq := append(append(append([]byte{}, rarp[:12]...), 0x88, 0xa8, 0x00, 0x64, 0x81, 0x00, 0x00, 0x0a), rarp[12:]...)
	threeTags := append(append(append([]byte{}, rarp[:12]...), 0x88, 0xa8, 0, 1, 0x81, 0, 0, 2, 0x81, 0, 0, 3), rarp[12:]...)
	reply := func(op byte) []byte {
		b := qemuRARP(vmMAC)
		b[12], b[13] = 0x08, 0x06
		b[21] = op
		copy(b[28:32], []byte{192, 0, 2, 10})
		return b
	}
	with := func(b []byte, i int, v byte) []byte {
		c := append([]byte(nil), b...)
		c[i] = v
		return c
	}
	na, err := buildTestNA(vmMAC, netip.MustParseAddr("2001:db8:10::10"), 255)
	if err != nil {
		t.Fatal(err)
	}
	naHop64, _ := buildTestNA(vmMAC, netip.MustParseAddr("2001:db8:10::10"), 64)
	ns, _ := Build(Probe{SrcMAC: sviMAC, DstMAC: vmMAC, SrcIP: netip.MustParseAddr("2001:db8:10::1"), Target: netip.MustParseAddr("2001:db8:10::10")})
	otherSrc := append([]byte(nil), rarp...)
	copy(otherSrc[6:12], sviMAC)

	tests := []struct {
		name   string
		data   []byte
		lt     layers.LinkType
		want   Frame
		reason string
	}{
		{name: "qemu rarp", data: rarp, want: Frame{Kind: KindRARP, SrcMAC: vmMAC, DstMAC: Broadcast, MAC: vmMAC}},
		{name: "dpdk 64 bytes", data: append(append([]byte{}, rarp...), 0, 0, 0, 0), want: Frame{Kind: KindRARP, SrcMAC: vmMAC, DstMAC: Broadcast, MAC: vmMAC}},
		{name: "802.1Q", data: tagged, want: Frame{Kind: KindRARP, SrcMAC: vmMAC, DstMAC: Broadcast, MAC: vmMAC, VLANs: []uint16{10}}},
		{name: "QinQ", data: qinq, want: Frame{Kind: KindRARP, SrcMAC: vmMAC, DstMAC: Broadcast, MAC: vmMAC, VLANs: []uint16{100, 10}}},
		{name: "three tags", data: threeTags, reason: "vlan-depth"},
		{name: "rarp reply opcode 4", data: with(rarp, 21, 4), reason: "opcode"},
		{name: "htype 6", data: with(rarp, 15, 6), reason: "bad-header"},
		{name: "hlen 8", data: with(rarp, 18, 8), reason: "bad-header"},
		{name: "plen 6", data: with(rarp, 19, 6), reason: "bad-header"},
		{name: "plen 16 overruns frame", data: with(rarp, 19, 16), reason: "truncated"},
		{name: "truncated rarp", data: rarp[:30], reason: "truncated"},
		{name: "truncated ethernet", data: rarp[:10], reason: "truncated"},
		{name: "empty", data: nil, reason: "truncated"},
		{name: "sender differs from target", data: with(rarp, 37, 0xff), reason: "mac-mismatch"},
		{name: "ethernet source differs", data: otherSrc, reason: "mac-mismatch"},
		{name: "multicast mac", data: qemuRARP(net.HardwareAddr{1, 0, 0x5e, 0, 0, 1}), reason: "bad-mac"},
		{name: "zero mac", data: qemuRARP(make(net.HardwareAddr, 6)), reason: "bad-mac"},
		{name: "arp reply", data: reply(2), want: Frame{Kind: KindARPReply, SrcMAC: vmMAC, DstMAC: Broadcast, MAC: vmMAC, IP: netip.MustParseAddr("192.0.2.10"),
			TargetIP: netip.MustParseAddr("0.0.0.0"), TargetMAC: vmMAC}},
		{name: "arp request", data: reply(1), reason: "opcode"},
		{name: "ipv4", data: with(rarp, 13, 0x00), reason: "ethertype"},
		{name: "na", data: na, want: Frame{Kind: KindNA, SrcMAC: vmMAC, DstMAC: sviMAC, MAC: vmMAC, IP: netip.MustParseAddr("2001:db8:10::10"),
			TargetIP: netip.MustParseAddr("2001:db8:10::1"), Solicited: true}},
		{name: "na hop limit 64", data: naHop64, reason: "bad-header"},
		// RFC 4861 7.1.2, one rule at a time (naEdit recomputes the checksum).
		{name: "na bad checksum", data: with(na, len(na)-1, na[len(na)-1]^1), reason: "bad-checksum"},
		{name: "na code 1", data: naEdit(t, na, func(m []byte) []byte { m[1] = 1; return m }), reason: "bad-header"},
		{name: "na of 20 bytes", data: naEdit(t, na, func(m []byte) []byte { return m[:20] }), reason: "truncated"},
		{name: "na option of length 0", data: naEdit(t, na, func(m []byte) []byte { m[25] = 0; return m }), reason: "bad-option"},
		{name: "na option past the message", data: naEdit(t, na, func(m []byte) []byte { m[25] = 2; return m }), reason: "bad-option"},
		{name: "na target link-layer option of 16 bytes", data: naEdit(t, na, func(m []byte) []byte { m[25] = 2; return append(m, make([]byte, 8)...) }), reason: "bad-option"},
		{name: "na multicast target", data: naEdit(t, na, func(m []byte) []byte { m[8] = 0xff; return m }), reason: "bad-header"},
		{name: "solicited na to all-nodes", data: naTo(t, na, "ff02::1"), reason: "bad-header"},
		{name: "na not solicited", data: naEdit(t, na, func(m []byte) []byte { m[4] &^= 0x40; return m }),
			want: Frame{Kind: KindNA, SrcMAC: vmMAC, DstMAC: sviMAC, MAC: vmMAC, IP: netip.MustParseAddr("2001:db8:10::10"), TargetIP: netip.MustParseAddr("2001:db8:10::1")}},
		{name: "na without target link-layer option: the Ethernet source", data: naEdit(t, with(na, 6, 0x06), func(m []byte) []byte { return m[:24] }),
			want: Frame{Kind: KindNA, SrcMAC: net.HardwareAddr{6, 0, 0x5e, 0x10, 0, 0x0a}, DstMAC: sviMAC, MAC: net.HardwareAddr{6, 0, 0x5e, 0x10, 0, 0x0a}, IP: netip.MustParseAddr("2001:db8:10::10"), TargetIP: netip.MustParseAddr("2001:db8:10::1"), Solicited: true}},
		{name: "ns is not na", data: ns, reason: "not-na"},
		{name: "unknown link type", data: rarp, lt: layers.LinkTypeRaw, reason: "link-type"},
		{name: "sll2 rarp", lt: layers.LinkTypeLinuxSLL2, data: append(mustHex(t, "8035 0000 00000007 0001 00 06 02005e10000a 0000"), rarp[14:]...),
			want: Frame{Kind: KindRARP, SrcMAC: vmMAC, MAC: vmMAC, IfIndex: 7}},
		{name: "sll2 outgoing", lt: layers.LinkTypeLinuxSLL2, data: append(mustHex(t, "8035 0000 00000007 0001 04 06 02005e10000a 0000"), rarp[14:]...), reason: "outbound"},
		{name: "sll outgoing", lt: layers.LinkTypeLinuxSLL, data: append(mustHex(t, "0004 0001 0006 02005e10000a 0000 8035"), rarp[14:]...), reason: "outbound"},
		{name: "sll rarp", lt: layers.LinkTypeLinuxSLL, data: append(mustHex(t, "0000 0001 0006 02005e10000a 0000 8035"), rarp[14:]...),
			want: Frame{Kind: KindRARP, SrcMAC: vmMAC, MAC: vmMAC}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			lt := tt.lt
			if lt == 0 {
				lt = layers.LinkTypeEthernet
			}
			got, err := Decode(tt.data, lt)
			if tt.reason != "" {
				if err == nil || Reason(err) != tt.reason {
					t.Fatalf("Decode() error = %v, want reason %q", err, tt.reason)
				}
				return
			}
			if err != nil {
				t.Fatalf("Decode() error = %v", err)
			}
			if diff := cmp.Diff(tt.want, got, cmpAddr); diff != "" {
				t.Errorf("Decode() (-want +got):\n%s", diff)
			}
		})
	}
}

func TestDropErrorIs(t *testing.T) {
	_, err := Decode(nil, layers.LinkTypeEthernet)
	if !errors.Is(err, ErrTruncated) {
		t.Fatalf("errors.Is(%v, ErrTruncated) = false", err)
	}
	if errors.Is(err, ErrOpcode) {
		t.Fatalf("errors.Is(%v, ErrOpcode) = true", err)
	}
}

func TestBuildRARPMatchesQEMU(t *testing.T) {
	got, err := BuildRARP(vmMAC, nil)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(qemuRARP(vmMAC), got); diff != "" {
		t.Errorf("BuildRARP() (-want +got):\n%s", diff)
	}
	if _, err := BuildRARP(Broadcast, nil); !errors.Is(err, ErrInvalid) {
		t.Errorf("BuildRARP(broadcast) error = %v, want ErrInvalid", err)
	}
}

func TestBuildARPRequest(t *testing.T) {
	got, err := Build(Probe{SrcMAC: sviMAC, DstMAC: vmMAC, SrcIP: netip.MustParseAddr("192.0.2.1"), Target: netip.MustParseAddr("192.0.2.10"), VLANs: []uint16{10}})
	if err != nil {
		t.Fatal(err)
	}
	want := mustHex(t, `02005e10000a 02005e100001 8100 000a 0806
		0001 0800 06 04 0001 02005e100001 c0000201 000000000000 c000020a`)
	want = append(want, make([]byte, 60-len(want))...) // padded to the 60-byte minimum
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("Build(arp) (-want +got):\n%s", diff)
	}
}

func TestBuildNS(t *testing.T) {
	src := netip.MustParseAddr("2001:db8:10::1")
	target := netip.MustParseAddr("2001:db8:10::10")
	got, err := Build(Probe{SrcMAC: sviMAC, DstMAC: vmMAC, SrcIP: src, Target: target})
	if err != nil {
		t.Fatal(err)
	}
	// The checksum 0x8e16 was computed separately, by summing the RFC 8200
	// 8.1 pseudo-header (source, destination, length 32, next header 58) and
	// the ICMPv6 message.
	want := mustHex(t, `02005e10000a 02005e100001 86dd
		60000000 0020 3a ff 20010db8001000000000000000000001 20010db8001000000000000000000010
		87 00 8e16 00000000 20010db8001000000000000000000010 01 01 02005e100001`)
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("Build(ns) (-want +got):\n%s", diff)
	}
	unspec, err := Build(Probe{SrcMAC: sviMAC, DstMAC: vmMAC, SrcIP: netip.IPv6Unspecified(), Target: target})
	if err != nil {
		t.Fatal(err)
	}
	if len(unspec) != 14+40+24 {
		t.Errorf("NS from :: is %d bytes, want %d (no source link-layer option)", len(unspec), 14+40+24)
	}
}

func TestBuildInvalid(t *testing.T) {
	v4, v6 := netip.MustParseAddr("192.0.2.1"), netip.MustParseAddr("2001:db8::1")
	for name, p := range map[string]Probe{
		"mixed families": {SrcMAC: sviMAC, DstMAC: vmMAC, SrcIP: v6, Target: v4},
		"no target":      {SrcMAC: sviMAC, DstMAC: vmMAC, SrcIP: v4},
		"broadcast dst":  {SrcMAC: sviMAC, DstMAC: Broadcast, SrcIP: v4, Target: v4},
		"vlan 4095":      {SrcMAC: sviMAC, DstMAC: vmMAC, SrcIP: v4, Target: v4, VLANs: []uint16{4095}},
		"three tags":     {SrcMAC: sviMAC, DstMAC: vmMAC, SrcIP: v4, Target: v4, VLANs: []uint16{100, 20, 10}}, // Decode reads two
	} {
		if _, err := Build(p); !errors.Is(err, ErrInvalid) {
			t.Errorf("%s: Build() error = %v, want ErrInvalid", name, err)
		}
	}
}

// TestRoundTrip checks that what the builders write, the decoder reads.
func TestRoundTrip(t *testing.T) {
	b, err := BuildRARP(vmMAC, []uint16{100, 20})
	if err != nil {
		t.Fatal(err)
	}
	f, err := Decode(b, layers.LinkTypeEthernet)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(Frame{Kind: KindRARP, SrcMAC: vmMAC, DstMAC: Broadcast, MAC: vmMAC, VLANs: []uint16{100, 20}}, f, cmpAddr); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}
}

func TestBuildReplyRoundTrip(t *testing.T) {
	for _, tt := range []struct{ ip, dst string }{{"192.0.2.10", "192.0.2.1"}, {"2001:db8:10::10", "fe80::1"}} {
		b, err := BuildReply(Reply{MAC: vmMAC, IP: netip.MustParseAddr(tt.ip), DstMAC: sviMAC, DstIP: netip.MustParseAddr(tt.dst), VLANs: []uint16{10}})
		if err != nil {
			t.Fatal(err)
		}
		f, err := Decode(b, layers.LinkTypeEthernet)
		if err != nil {
			t.Fatalf("%s: %v", tt.ip, err)
		}
		if f.MAC.String() != vmMAC.String() || f.IP.String() != tt.ip || f.VLANs[0] != 10 {
			t.Errorf("%s: decoded %+v", tt.ip, f)
		}
	}
	if _, err := BuildReply(Reply{MAC: vmMAC, IP: netip.MustParseAddr("192.0.2.10"), DstMAC: sviMAC, DstIP: netip.MustParseAddr("fe80::1")}); !errors.Is(err, ErrInvalid) {
		t.Errorf("mixed families: %v, want ErrInvalid", err)
	}
}

// randomProbe returns probe arguments drawn so that most are valid and the
// rest break one rule or another: MACs multicast, zero or short; addresses
// of either family, unspecified, link-local, multicast, IPv4-mapped; zero
// to three VLAN tags, sometimes outside 1-4094.
func randomProbe(r *rand.Rand) Probe {
	mac := func() net.HardwareAddr {
		m := make(net.HardwareAddr, 6)
		for i := range m {
			m[i] = byte(r.UintN(256))
		}
		switch r.IntN(20) {
		case 0:
			m[0] |= 1 // multicast
		case 1:
			clear(m)
		case 2:
			m = m[:r.IntN(6)]
		default:
			m[0] &^= 1
		}
		return m
	}
	addr := func(v6 bool) netip.Addr {
		var b [16]byte
		for i := range b {
			b[i] = byte(r.UintN(256))
		}
		switch r.IntN(12) {
		case 0:
			if v6 {
				return netip.IPv6Unspecified()
			}
			return netip.IPv4Unspecified()
		case 1:
			b[0], b[1] = 0xfe, 0x80
		case 2:
			b[0] = 0xff
		case 3:
			return netip.AddrFrom4([4]byte(b[:4])) // IPv4 whichever family was asked
		case 4:
			if v6 {
				return netip.AddrFrom16([16]byte{10: 0xff, 11: 0xff, 12: b[12], 13: b[13], 14: b[14], 15: b[15]})
			}
		}
		if v6 {
			return netip.AddrFrom16(b)
		}
		return netip.AddrFrom4([4]byte(b[:4]))
	}
	v6 := r.IntN(2) == 0
	p := Probe{SrcMAC: mac(), DstMAC: mac(), SrcIP: addr(v6), Target: addr(v6)}
	if r.IntN(10) == 0 {
		p.SrcIP = addr(!v6) // mixed families
	}
	for range r.IntN(4) {
		vid := uint16(1 + r.IntN(4094))
		if r.IntN(20) == 0 {
			vid = []uint16{0, 4095, 0xffff}[r.IntN(3)]
		}
		p.VLANs = append(p.VLANs, vid)
	}
	return p
}

// TestBuildMatchesGopacket checks the hand-written probe builder against
// gopacketProbe, the gopacket serialization it replaced, on random
// arguments valid and not: the same bytes, or the same error.
func TestBuildMatchesGopacket(t *testing.T) {
	seed := uint64(time.Now().UnixNano())
	t.Logf("seed %d", seed)
	r := rand.New(rand.NewPCG(seed, 0))
	built := 0
	for i := 0; i < 20000; i++ {
		p := randomProbe(r)
		want, wantErr := gopacketProbe(p)
		got, err := Build(p)
		if (err == nil) != (wantErr == nil) || (err != nil && (err.Error() != wantErr.Error() || !errors.Is(err, ErrInvalid))) {
			t.Fatalf("Build(%+v) error %v, gopacket %v", p, err, wantErr)
		}
		if !bytes.Equal(want, got) {
			t.Fatalf("Build(%+v)\n got %x\nwant %x", p, got, want)
		}
		if err != nil {
			continue
		}
		built++
		// Appended after other bytes, with room or without, the frame is
		// the same and what precedes it untouched.
		prefix := []byte{0xde, 0xad}
		for _, b := range [][]byte{append([]byte(nil), prefix...), append(make([]byte, 0, 256), prefix...)} {
			out, err := AppendProbe(b, p)
			if err != nil || !bytes.Equal(out[:2], prefix) || !bytes.Equal(out[2:], want) {
				t.Fatalf("AppendProbe(%x, %+v) = %x, %v; want the prefix, then %x", b, p, out, err, want)
			}
		}
		if len(got) > MaxProbeLen {
			t.Fatalf("Build(%+v): %d bytes, MaxProbeLen %d", p, len(got), MaxProbeLen)
		}
	}
	if built < 5000 {
		t.Fatalf("only %d of 20000 random probes were valid: the generator is off", built)
	}
}

// TestBuildAllocs pins the probe builder's one allocation: the frame.
func TestBuildAllocs(t *testing.T) {
	if raceEnabled {
		t.Skip("allocation counts differ under the race detector")
	}
	for _, p := range []Probe{
		{SrcMAC: sviMAC, DstMAC: vmMAC, SrcIP: netip.MustParseAddr("192.0.2.1"), Target: netip.MustParseAddr("192.0.2.10"), VLANs: []uint16{100, 10}},
		{SrcMAC: sviMAC, DstMAC: vmMAC, SrcIP: netip.MustParseAddr("2001:db8:10::1"), Target: netip.MustParseAddr("2001:db8:10::10"), VLANs: []uint16{10}},
	} {
		if n := testing.AllocsPerRun(100, func() { _, _ = Build(p) }); n != 1 {
			t.Errorf("Build(%s): %v allocations, want 1", p.Target, n)
		}
		buf := make([]byte, 0, MaxProbeLen)
		if n := testing.AllocsPerRun(100, func() { _, _ = AppendProbe(buf, p) }); n != 0 {
			t.Errorf("AppendProbe(%s) into room: %v allocations, want 0", p.Target, n)
		}
	}
}

func BenchmarkBuild(b *testing.B) {
	for _, tt := range []struct {
		name string
		p    Probe
	}{
		{"arp", Probe{SrcMAC: sviMAC, DstMAC: vmMAC, SrcIP: netip.MustParseAddr("192.0.2.1"), Target: netip.MustParseAddr("192.0.2.10")}},
		{"ns-qinq", Probe{SrcMAC: sviMAC, DstMAC: vmMAC, SrcIP: netip.MustParseAddr("2001:db8:10::1"), Target: netip.MustParseAddr("2001:db8:10::10"), VLANs: []uint16{100, 10}}},
	} {
		b.Run(tt.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if _, err := Build(tt.p); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

func BenchmarkDecode(b *testing.B) {
	rarp := qemuRARP(vmMAC)
	qinq, _ := BuildRARP(vmMAC, []uint16{100, 10})
	arp, _ := BuildReply(Reply{MAC: vmMAC, IP: netip.MustParseAddr("192.0.2.10"), DstMAC: sviMAC, DstIP: netip.MustParseAddr("192.0.2.1")})
	na, _ := buildTestNA(vmMAC, netip.MustParseAddr("2001:db8:10::10"), 255)
	for _, tt := range []struct {
		name string
		data []byte
	}{{"rarp", rarp}, {"rarp-qinq", qinq}, {"arp-reply", arp}, {"na", na}} {
		b.Run(tt.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if _, err := Decode(tt.data, layers.LinkTypeEthernet); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// TestDecodeAllocs pins the hand decoder's one allocation for the frames
// the daemon acts on: the bytes the Frame owns (MACs and tags).
func TestDecodeAllocs(t *testing.T) {
	if raceEnabled {
		t.Skip("allocation counts differ under the race detector")
	}
	qinq, _ := BuildRARP(vmMAC, []uint16{100, 10})
	arp, _ := BuildReply(Reply{MAC: vmMAC, IP: netip.MustParseAddr("192.0.2.10"), DstMAC: sviMAC, DstIP: netip.MustParseAddr("192.0.2.1"), VLANs: []uint16{10}})
	na, _ := buildTestNA(vmMAC, netip.MustParseAddr("2001:db8:10::10"), 255)
	for name, data := range map[string][]byte{"rarp": qemuRARP(vmMAC), "rarp-qinq": qinq, "arp-reply": arp, "na": na} {
		if n := testing.AllocsPerRun(100, func() { _, _ = Decode(data, layers.LinkTypeEthernet) }); n != 1 {
			t.Errorf("Decode(%s): %v allocations, want 1", name, n)
		}
	}
}
