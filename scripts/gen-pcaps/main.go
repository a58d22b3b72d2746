// Command gen-pcaps writes rarp-replay's regression corpus: capture files
// in the shapes real switches see (hypervisor announcements, tagged frames,
// malformed frames, floods, cooked and multi-interface captures) and the
// neighbor snapshots they replay against. The output is byte-for-byte
// reproducible: fixed timestamps, a seeded generator, fixed pcapng options.
//
//	go run ./scripts/gen-pcaps [-out pcaps/corpus] [-cut pcaps/cut]
//
// pcaps/cut holds corpus captures cut short (the file ends inside a
// record), for replay's truncation warning.
//
// `go test ./replay` replays every capture and compares the decisions with
// the golden file beside it (`go test ./replay -update` rewrites them).
package main

import (
	"bytes"
	"encoding/binary"
	"flag"
	"fmt"
	"math/rand/v2"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"time"

	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"
	"github.com/gopacket/gopacket/pcapgo"
	"github.com/rarp-replay/rarp-replay/internal/packet"
)

var (
	t0     = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	sviMAC = mac("02:00:5e:10:00:01")
	vmA    = mac("02:00:5e:10:00:0a") // owns 192.0.2.10, .11, 2001:db8:10::10; .99 is bound to it but not its own
	vmB    = mac("02:00:5e:10:00:14") // owns 192.0.2.20, a binding the kernel already deleted
	sviV4  = netip.MustParseAddr("192.0.2.1")
	sviV6  = netip.MustParseAddr("2001:db8:10::1")
)

// The snapshot every capture replays against, as `ip -j neigh show` prints
// it on an EVPN leaf (plus a binding only rarp-replay still remembers).
const neighJSON = `[
 {"dst":"192.0.2.10","dev":"br10","lladdr":"02:00:5e:10:00:0a","extern_learn":null,"state":["NOARP"]},
 {"dst":"192.0.2.11","dev":"br10","lladdr":"02:00:5e:10:00:0a","extern_learn":null,"state":["NOARP"]},
 {"dst":"192.0.2.99","dev":"br10","lladdr":"02:00:5e:10:00:0a","extern_learn":null,"state":["NOARP"]},
 {"dst":"2001:db8:10::10","dev":"br10","lladdr":"02:00:5e:10:00:0a","extern_learn":null,"state":["NOARP"]},
 {"dst":"192.0.2.20","dev":"br10","lladdr":"02:00:5e:10:00:14","state":["REACHABLE"],"remembered":true},
 {"dst":"192.0.2.30","dev":"br10","state":["FAILED"]}
]
`

// The same leaf seen through /proc/net/arp: NOARP (remote EVPN) entries and
// IPv6 are missing, which is why the daemon reads netlink.
const procARP = `IP address       HW type     Flags       HW address            Mask     Device
192.0.2.20       0x1         0x2         02:00:5e:10:00:14     *        br10
192.0.2.30       0x1         0x0         00:00:00:00:00:00     *        br10
`

func mac(s string) net.HardwareAddr {
	m, err := net.ParseMAC(s)
	if err != nil {
		panic(err)
	}
	return m
}

type frame struct {
	at    time.Duration
	data  []byte
	iface int // pcapng interface
}

func ms(n float64) time.Duration { return time.Duration(n * float64(time.Millisecond)) }

func must(b []byte, err error) []byte {
	if err != nil {
		panic(err)
	}
	return b
}

func rarp(m net.HardwareAddr, vlans ...uint16) []byte { return must(packet.BuildRARP(m, vlans)) }

func reply(m net.HardwareAddr, ip string, vlans ...uint16) []byte {
	a := netip.MustParseAddr(ip)
	dst := sviV4
	if a.Is6() {
		dst = sviV6
	}
	return must(packet.BuildReply(packet.Reply{MAC: m, IP: a, DstMAC: sviMAC, DstIP: dst, VLANs: vlans}))
}

// qemu is QEMU's announcement: five RARPs at 0, 50, 200, 450, 800 ms.
func qemu(m net.HardwareAddr, vlans ...uint16) []frame {
	var fs []frame
	for _, t := range []float64{0, 50, 200, 450, 800} {
		fs = append(fs, frame{at: ms(t), data: rarp(m, vlans...)})
	}
	return fs
}

// answersA is the VM answering the probes for the addresses it owns.
func answersA(at time.Duration, vlans ...uint16) []frame {
	return []frame{
		{at: at, data: reply(vmA, "192.0.2.10", vlans...)},
		{at: at + ms(0.1), data: reply(vmA, "192.0.2.11", vlans...)},
		{at: at + ms(0.2), data: reply(vmA, "2001:db8:10::10", vlans...)},
	}
}

func edit(b []byte, i int, v byte) []byte {
	c := bytes.Clone(b)
	c[i] = v
	return c
}

func sort(fs []frame) []frame {
	for i := 1; i < len(fs); i++ {
		for j := i; j > 0 && fs[j].at < fs[j-1].at; j-- {
			fs[j], fs[j-1] = fs[j-1], fs[j]
		}
	}
	return fs
}

// cooked turns an Ethernet frame into a Linux cooked capture record: SLL
// (v1) when ifindex < 0, SLL2 otherwise.
func cooked(eth []byte, ifindex int32, pkttype uint16) []byte {
	src, et, payload := eth[6:12], eth[12:14], eth[14:]
	var h []byte
	if ifindex < 0 {
		h = binary.BigEndian.AppendUint16(nil, pkttype)
		h = binary.BigEndian.AppendUint16(h, 1) // ARPHRD_ETHER
		h = binary.BigEndian.AppendUint16(h, 6)
		h = append(h, src...)
		h = append(h, 0, 0)
		h = append(h, et...)
	} else {
		h = append(h, et...)
		h = append(h, 0, 0)
		h = binary.BigEndian.AppendUint32(h, uint32(ifindex))
		h = binary.BigEndian.AppendUint16(h, 1)
		h = append(h, byte(pkttype), 6)
		h = append(h, src...)
		h = append(h, 0, 0)
	}
	return append(h, payload...)
}

type capture struct {
	name   string
	lt     layers.LinkType
	frames []frame
	ifaces []string // pcapng interfaces; nil for pcap
}

func corpus() []capture {
	var cs []capture
	add := func(name string, lt layers.LinkType, fs ...[]frame) {
		var all []frame
		for _, f := range fs {
			all = append(all, f...)
		}
		cs = append(cs, capture{name: name, lt: lt, frames: sort(all)})
	}
	eth := layers.LinkTypeEthernet

	// A QEMU live migration: five RARPs, the VM's answers to the probes.
	add("qemu-announce", eth, qemu(vmA), answersA(ms(0.4)))
	// DPDK vhost-user sends the same RARP padded to 64 bytes.
	dpdk := append(rarp(vmB), 0, 0, 0, 0)
	add("dpdk-vhost-user", eth, []frame{{at: 0, data: dpdk}, {at: ms(0.3), data: reply(vmB, "192.0.2.20")}, {at: ms(100), data: dpdk}})
	// A trunk port: 802.1Q-tagged announcement and answers; QinQ.
	add("vlan-tagged", eth, qemu(vmA, 10), answersA(ms(0.4), 10))
	add("qinq", eth, []frame{{at: 0, data: rarp(vmA, 100, 10)}}, answersA(ms(0.4), 100, 10))
	// RARP replies (opcode 4): not announcements.
	add("rarp-reply", eth, []frame{{at: 0, data: edit(rarp(vmA), 21, 4)}, {at: ms(1), data: edit(rarp(vmB), 21, 4)}})
	// Plain ARP: a request, an unsolicited reply, gratuitous request and reply.
	req := must(packet.Build(packet.Probe{SrcMAC: vmA, DstMAC: sviMAC, SrcIP: netip.MustParseAddr("192.0.2.10"), Target: sviV4}))
	garpReq := edit(edit(bytes.Clone(req), 41, 10), 0, 0xff)
	copy(garpReq[0:6], packet.Broadcast)
	garpReply := edit(garpReq, 21, 2)
	add("arp-plain", eth, []frame{{at: 0, data: req}, {at: ms(1), data: reply(vmA, "192.0.2.10")}, {at: ms(2), data: garpReq}, {at: ms(3), data: garpReply}})
	// IPv6: an NS from the VM, an unsolicited NA, an NA with hop limit 64.
	ns := must(packet.Build(packet.Probe{SrcMAC: vmA, DstMAC: sviMAC, SrcIP: netip.MustParseAddr("2001:db8:10::10"), Target: sviV6}))
	na64 := must(packet.BuildReply(packet.Reply{MAC: vmA, IP: netip.MustParseAddr("2001:db8:10::10"), DstMAC: sviMAC, DstIP: sviV6, HopLimit: 64}))
	add("ipv6-ns-na", eth, []frame{{at: 0, data: ns}, {at: ms(1), data: reply(vmA, "2001:db8:10::10")}, {at: ms(2), data: na64}})
	// Truncated frames.
	r := rarp(vmA)
	add("truncated", eth, []frame{{at: 0, data: r[:10]}, {at: ms(1), data: r[:14]}, {at: ms(2), data: r[:20]}, {at: ms(3), data: r[:41]}})
	// Wrong htype, hlen, plen, ptype.
	add("bad-header", eth, []frame{{at: 0, data: edit(r, 15, 6)}, {at: ms(1), data: edit(r, 18, 8)}, {at: ms(2), data: edit(r, 19, 6)}, {at: ms(3), data: edit(edit(r, 16, 0x86), 17, 0xdd)}})
	// Sender MAC different from the Ethernet source, and from the target.
	other := bytes.Clone(r)
	copy(other[6:12], vmB)
	add("mac-mismatch", eth, []frame{{at: 0, data: other}, {at: ms(1), data: edit(r, 37, 0x77)}})
	// A flood of random MACs from one port, then a real migration.
	rng := rand.New(rand.NewPCG(1, 2))
	var flood []frame
	for i := range 200 {
		m := make(net.HardwareAddr, 6)
		for j := range m {
			m[j] = byte(rng.Uint32())
		}
		m[0] = m[0]&0xfc | 0x02 // locally administered unicast
		flood = append(flood, frame{at: ms(float64(i) * 0.05), data: rarp(m)})
	}
	add("random-mac-flood", eth, flood, []frame{{at: ms(20), data: rarp(vmA)}}, answersA(ms(20.4)))
	// tcpdump -i any: Linux cooked v1 and v2. The v2 capture also holds the
	// bridge's copy of the RARP (another ifindex) and the probes going out.
	var sll, sll2 []frame
	for _, f := range append(qemu(vmA)[:2], answersA(ms(0.4))...) {
		sll = append(sll, frame{at: f.at, data: cooked(f.data, -1, 0)})
		sll2 = append(sll2, frame{at: f.at, data: cooked(f.data, 7, 0)})
	}
	probe := must(packet.Build(packet.Probe{SrcMAC: sviMAC, DstMAC: vmA, SrcIP: sviV4, Target: netip.MustParseAddr("192.0.2.10")}))
	sll = append(sll, frame{at: ms(0.2), data: cooked(probe, -1, 4)})
	sll2 = append(sll2, frame{at: ms(0.01), data: cooked(r, 3, 1)}, frame{at: ms(0.2), data: cooked(probe, 7, 4)})
	add("sll", layers.LinkTypeLinuxSLL, sll)
	add("sll2", layers.LinkTypeLinuxSLL2, sll2)
	// pcapng from two ports: VM A on swp1, VM B on swp2.
	ng := capture{name: "multi-interface", lt: eth, ifaces: []string{"swp1", "swp2"}}
	for _, f := range append(qemu(vmA)[:1], answersA(ms(0.4))...) {
		ng.frames = append(ng.frames, frame{at: f.at, data: f.data, iface: 0})
	}
	ng.frames = append(ng.frames, frame{at: ms(5), data: rarp(vmB), iface: 1}, frame{at: ms(5.3), data: reply(vmB, "192.0.2.20"), iface: 1})
	ng.frames = sort(ng.frames)
	cs = append(cs, ng)
	// The announcement replayed against /proc/net/arp instead of netlink.
	q := cs[0]
	q.name = "proc-qemu-announce"
	cs = append(cs, q)
	return cs
}

// layoutCaptures are migrations on VLAN-aware leaves, replayed against the
// link fixtures in pcaps/layouts/NAME (links.json, bridge-vlan.json,
// neigh.json). Replies go to the gateway the probe came from.
func layoutCaptures() map[string]capture {
	anycast := mac("00:00:5e:00:01:01")
	vmC := mac("02:00:5e:10:00:1e")
	to := func(gw net.HardwareAddr, m net.HardwareAddr, ip, from string, vlans ...uint16) []byte {
		return must(packet.BuildReply(packet.Reply{MAC: m, IP: netip.MustParseAddr(ip), DstMAC: gw, DstIP: netip.MustParseAddr(from), VLANs: vlans}))
	}
	f := func(at float64, iface int, data []byte) frame { return frame{at: ms(at), iface: iface, data: data} }
	cumulus := capture{name: "migrations", lt: layers.LinkTypeEthernet, ifaces: []string{"swp1", "swp2", "bond1", "vni10"}, frames: sort([]frame{
		// VM A arrives on trunk swp2 in VLAN 10: probed from the anycast
		// gateway vlan10-v0, tagged 10; 192.0.2.12 is held on vlan10-v0.
		f(0, 1, rarp(vmA, 10)),
		f(0.4, 1, to(anycast, vmA, "192.0.2.10", "192.0.2.1", 10)),
		f(0.5, 1, to(anycast, vmA, "192.0.2.12", "192.0.2.1", 10)),
		f(0.6, 1, to(anycast, vmA, "2001:db8:10::10", "2001:db8:10::1", 10)),
		// VM B on swp2 in VLAN 20: no anycast device there.
		f(5, 1, rarp(vmB, 20)),
		f(5.3, 1, to(mac("02:00:00:00:01:01"), vmB, "198.51.100.20", "198.51.100.1", 20)),
		// VM C on access port swp1 (PVID 10): untagged both ways.
		f(10, 0, rarp(vmC)),
		f(10.3, 0, to(anycast, vmC, "192.0.2.30", "192.0.2.1")),
		// Frames that must not trigger probes.
		f(15, 1, rarp(vmA)),     // untagged on a trunk without PVID
		f(16, 1, rarp(vmA, 30)), // a VLAN swp2 is not a member of
		f(17, 2, rarp(vmB, 15)), // a VLAN without an SVI
		f(18, 3, rarp(vmA)),     // the old leaf's view: over VXLAN
	})}
	sonic := capture{name: "migrations", lt: layers.LinkTypeEthernet, ifaces: []string{"Ethernet0", "Ethernet4", "PortChannel01"}, frames: sort([]frame{
		f(0, 1, rarp(vmA, 1000)),
		f(0.4, 1, to(anycast, vmA, "192.0.2.10", "192.0.2.1", 1000)),
		f(0.5, 1, to(anycast, vmA, "2001:db8:10::10", "2001:db8:10::1", 1000)),
		f(5, 1, rarp(vmB, 2000)),
		f(5.3, 1, to(anycast, vmB, "198.51.100.20", "198.51.100.1", 2000)),
		f(10, 0, rarp(mac("02:00:5e:10:00:77"))), // unknown MAC on access port Ethernet0
		f(12, 2, rarp(vmB)),                      // B's RARP also on PortChannel01 (PVID 2000)
	})}
	return map[string]capture{"cumulus": cumulus, "sonic": sonic}
}

func write(dir string, c capture) error {
	b, ext, err := encode(c)
	if err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(dir, c.name+ext), b, 0o644)
}

// encode returns the capture file of c, and its extension: pcap, or pcapng
// when c names interfaces.
func encode(c capture) ([]byte, string, error) {
	var buf bytes.Buffer
	if c.ifaces == nil {
		w := pcapgo.NewWriterNanos(&buf)
		if err := w.WriteFileHeader(65535, c.lt); err != nil {
			return nil, "", err
		}
		for _, f := range c.frames {
			ci := gopacket.CaptureInfo{Timestamp: t0.Add(f.at), CaptureLength: len(f.data), Length: len(f.data)}
			if err := w.WritePacket(ci, f.data); err != nil {
				return nil, "", err
			}
		}
		return buf.Bytes(), ".pcap", nil
	}
	opts := pcapgo.NgWriterOptions{SectionInfo: pcapgo.NgSectionInfo{Application: "rarp-replay gen-pcaps"}}
	w, err := pcapgo.NewNgWriterInterface(&buf, pcapgo.NgInterface{Name: c.ifaces[0], LinkType: c.lt, TimestampResolution: 9}, opts)
	if err != nil {
		return nil, "", err
	}
	for _, name := range c.ifaces[1:] {
		if _, err := w.AddInterface(pcapgo.NgInterface{Name: name, LinkType: c.lt, TimestampResolution: 9}); err != nil {
			return nil, "", err
		}
	}
	for _, f := range c.frames {
		ci := gopacket.CaptureInfo{Timestamp: t0.Add(f.at), CaptureLength: len(f.data), Length: len(f.data), InterfaceIndex: f.iface}
		if err := w.WritePacket(ci, f.data); err != nil {
			return nil, "", err
		}
	}
	if err := w.Flush(); err != nil {
		return nil, "", err
	}
	return buf.Bytes(), ".pcapng", nil
}

// writeCuts writes captures cut short, as a tcpdump killed (or still
// writing) leaves them, for `replay`'s truncation handling: corpus
// captures ending inside their last frame's record data, inside its
// record header, and inside a pcapng block.
func writeCuts(dir string, corpus []capture) error {
	byName := map[string]capture{}
	for _, c := range corpus {
		byName[c.name] = c
	}
	for _, cut := range []struct {
		from, name string
		keep       func(b []byte, last int) int // how many bytes to keep of b, whose last frame is last bytes long
	}{
		{"qemu-announce", "qemu-announce-cut-data", func(b []byte, last int) int { return len(b) - last/2 }},
		{"qemu-announce", "qemu-announce-cut-header", func(b []byte, last int) int { return len(b) - last - 16 + 7 }},
		{"multi-interface", "multi-interface-cut", func(b []byte, last int) int { return len(b) - 10 }},
	} {
		c, ok := byName[cut.from]
		if !ok {
			return fmt.Errorf("no capture %s to cut", cut.from)
		}
		b, ext, err := encode(c)
		if err != nil {
			return err
		}
		n := cut.keep(b, len(c.frames[len(c.frames)-1].data))
		if err := os.WriteFile(filepath.Join(dir, cut.name+ext), b[:n], 0o644); err != nil {
			return err
		}
	}
	return nil
}

func main() {
	out := flag.String("out", "pcaps/corpus", "directory to write the corpus to")
	layouts := flag.String("layouts", "pcaps/layouts", "directory of the switch layout fixtures to write captures into")
	cuts := flag.String("cut", "pcaps/cut", "directory to write the captures cut short to")
	flag.Parse()
	for name, c := range layoutCaptures() {
		if err := write(filepath.Join(*layouts, name), c); err != nil {
			fmt.Fprintf(os.Stderr, "gen-pcaps: %s: %v\n", name, err)
			os.Exit(1)
		}
	}
	if err := os.MkdirAll(*out, 0o755); err != nil {
		fmt.Fprintln(os.Stderr, "gen-pcaps:", err)
		os.Exit(1)
	}
	files := map[string]string{"neigh.json": neighJSON, "neigh.arp": procARP}
	for name, body := range files {
		if err := os.WriteFile(filepath.Join(*out, name), []byte(body), 0o644); err != nil {
			fmt.Fprintln(os.Stderr, "gen-pcaps:", err)
			os.Exit(1)
		}
	}
	for _, c := range corpus() {
		if err := write(*out, c); err != nil {
			fmt.Fprintf(os.Stderr, "gen-pcaps: %s: %v\n", c.name, err)
			os.Exit(1)
		}
	}
	if err := os.MkdirAll(*cuts, 0o755); err != nil {
		fmt.Fprintln(os.Stderr, "gen-pcaps:", err)
		os.Exit(1)
	}
	if err := writeCuts(*cuts, corpus()); err != nil {
		fmt.Fprintln(os.Stderr, "gen-pcaps: cut:", err)
		os.Exit(1)
	}
}
