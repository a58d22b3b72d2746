//go:build linux

// Command fabric is the fabric-scale benchmark's helper (scripts/bench/fabric.sh,
// scripts/bench/loss.sh). It plays many VMs from one process per hypervisor
// namespace and reads the old leaf's kernel events afterwards.
//
//	fabric respond  -vms F [-rx F] [-timeout D]
//	    answer ARP requests and Neighbor Solicitations for the addresses each
//	    VM owns, on its own interface, only when asked; count the client's
//	    UDP stream per VM address (-rx: received sequence numbers at exit)
//	fabric announce -vms F -mode speak|rarp|garp [-create-ports LEAFNS:BRIDGE] [-out F]
//	    speak: every VM sends one ARP request / NS to its gateway from each
//	    address; rarp: QEMU's five RARP rounds (0, 50, 200, 450, 800 ms) per
//	    VM; garp: the same rounds as gratuitous ARPs and unsolicited NAs
//	    (a guest that announces itself). -create-ports creates each VM's
//	    veth (leaf side in LEAFNS, enslaved to BRIDGE) just before its first
//	    round. -out: "mac first-send-unix-ns" per VM.
//	fabric stream   -targets IP,... -pps N -duration D -out F
//	    UDP with sequence numbers to each target (the routed client)
//	fabric recv     -addr IP -rx F [-timeout D]
//	    a VM with a kernel stack: receive the stream on a UDP socket (so the
//	    kernel sends no port unreachable, which would make the VM speak)
//	fabric analyze  ...   per-VM times from the old leaf's monitors; see analyze.go
//	fabric loss     ...   per-VM loss from stream and respond files; see analyze.go
//
// VM file: one VM per line, "ifname mac ipv4 ipv4 ipv6" (more addresses may follow).
// Every process stops by itself after -timeout.
package main

import (
	"bufio"
	"encoding/binary"
	"errors"
	"flag"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/signal"
	"slices"
	"sort"
	"strings"
	"syscall"
	"time"

	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"
	"github.com/rarp-replay/rarp-replay/internal/packet"
	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"
)

// streamPort is the UDP port of the client's stream.
const streamPort = 9999

func main() {
	if len(os.Args) < 2 {
		fmt.Fprintln(os.Stderr, "usage: fabric respond|announce|stream|analyze|loss|stages ...")
		os.Exit(2)
	}
	var err error
	switch os.Args[1] {
	case "respond":
		err = respond(os.Args[2:])
	case "announce":
		err = announce(os.Args[2:])
	case "stream":
		err = stream(os.Args[2:])
	case "recv":
		err = recv(os.Args[2:])
	case "analyze":
		err = analyze(os.Args[2:])
	case "loss":
		err = loss(os.Args[2:])
	case "stages":
		err = stages(os.Args[2:])
	default:
		err = fmt.Errorf("unknown command %q", os.Args[1])
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "fabric:", err)
		os.Exit(1)
	}
}

type vm struct {
	ifname string
	mac    net.HardwareAddr
	addrs  []netip.Addr
}

func readVMs(path string) ([]vm, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var vms []vm
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fs := strings.Fields(sc.Text())
		if len(fs) == 0 || strings.HasPrefix(fs[0], "#") {
			continue
		}
		if len(fs) < 3 {
			return nil, fmt.Errorf("%s: %q: want ifname mac addr...", path, sc.Text())
		}
		mac, err := net.ParseMAC(fs[1])
		if err != nil {
			return nil, fmt.Errorf("%s: %w", path, err)
		}
		v := vm{ifname: fs[0], mac: mac}
		for _, s := range fs[2:] {
			a, err := netip.ParseAddr(s)
			if err != nil {
				return nil, fmt.Errorf("%s: %w", path, err)
			}
			v.addrs = append(v.addrs, a)
		}
		vms = append(vms, v)
	}
	return vms, sc.Err()
}

func htons(v uint16) uint16 { return v<<8 | v>>8 }

// rawSocket opens an AF_PACKET socket for every frame on every interface of
// the namespace (interfaces created later included).
func rawSocket() (int, error) {
	fd, err := unix.Socket(unix.AF_PACKET, unix.SOCK_RAW, int(htons(unix.ETH_P_ALL)))
	if err != nil {
		return -1, fmt.Errorf("packet socket: %w", err)
	}
	_ = unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_RCVBUFFORCE, 8<<20)
	tv := unix.NsecToTimeval((200 * time.Millisecond).Nanoseconds())
	if err := unix.SetsockoptTimeval(fd, unix.SOL_SOCKET, unix.SO_RCVTIMEO, &tv); err != nil {
		unix.Close(fd)
		return -1, err
	}
	return fd, nil
}

// dropFloodedRARPs makes the kernel drop the RARPs that arrive on the
// socket's ports, keeping those the VMs send (the responder learns each
// VM's port from them). One responder stands for every VM of a
// hypervisor: each RARP of a migration reaches it once per VM port, as
// the bridge floods it, and reading those 200 copies per RARP in one
// thread queued a VM's probe behind thousands of them (the answer left
// 100 ms after the probe at p90). A guest ignores a RARP in its own
// kernel, beside the other guests.
func dropFloodedRARPs(fd int) error {
	code := []unix.SockFilter{
		{Code: unix.BPF_LD | unix.BPF_H | unix.BPF_ABS, K: 12},                                  // EtherType
		{Code: unix.BPF_JMP | unix.BPF_JEQ | unix.BPF_K, Jt: 1, Jf: 0, K: 0x8035},               // RARP?
		{Code: unix.BPF_RET | unix.BPF_K, K: 0xffff},                                            // no: keep
		{Code: unix.BPF_LD | unix.BPF_W | unix.BPF_ABS, K: skfAdOff + skfAdPktType},             // the packet's type
		{Code: unix.BPF_JMP | unix.BPF_JEQ | unix.BPF_K, Jt: 0, Jf: 1, K: unix.PACKET_OUTGOING}, // sent here?
		{Code: unix.BPF_RET | unix.BPF_K, K: 0xffff},                                            // yes: keep
		{Code: unix.BPF_RET | unix.BPF_K, K: 0},                                                 // arrived: drop
	}
	prog := unix.SockFprog{Len: uint16(len(code)), Filter: &code[0]}
	if err := unix.SetsockoptSockFprog(fd, unix.SOL_SOCKET, unix.SO_ATTACH_FILTER, &prog); err != nil {
		return fmt.Errorf("socket filter: %w", err)
	}
	return nil
}

// Classic BPF's ancillary load of skb->pkt_type (linux/filter.h).
const (
	skfAdOff     = 0xfffff000 // SKF_AD_OFF, -0x1000
	skfAdPktType = 4          // SKF_AD_PKTTYPE
)

// ifIndex resolves interface names, caching them; names that do not exist
// yet are looked up again next time. A lookup is one RTM_GETLINK by name
// (net.InterfaceByName would dump every link of the namespace, hundreds
// while ports are created, and can wait long for RTNL meanwhile).
type ifIndex map[string]int

func (c ifIndex) get(name string) (int, error) {
	if i, ok := c[name]; ok {
		return i, nil
	}
	l, err := netlink.LinkByName(name)
	if err != nil {
		return 0, err
	}
	c[name] = l.Attrs().Index
	return l.Attrs().Index, nil
}

// ---------------------------------------------------------------- respond

type owner struct {
	ifname string
	mac    net.HardwareAddr
}

func respond(args []string) error {
	fs := flag.NewFlagSet("respond", flag.ContinueOnError)
	vmsPath := fs.String("vms", "", "VM file")
	rxPath := fs.String("rx", "", "write the UDP sequence numbers received per address here at exit")
	timeout := fs.Duration("timeout", 10*time.Minute, "stop after this long")
	if err := fs.Parse(args); err != nil {
		return err
	}
	vms, err := readVMs(*vmsPath)
	if err != nil {
		return err
	}
	owners := map[netip.Addr]owner{}
	for _, v := range vms {
		for _, a := range v.addrs {
			owners[a] = owner{v.ifname, v.mac}
		}
	}
	fd, err := rawSocket()
	if err != nil {
		return err
	}
	defer unix.Close(fd)
	if err := dropFloodedRARPs(fd); err != nil {
		return err
	}
	// A VM answers on its own port only: the one its own frames (the
	// announcer's RARPs, its first words) left through, seen here as
	// outgoing; else its index read by name, cached once found.
	indexes := ifIndex{}
	byMAC := map[string]string{}
	for _, v := range vms {
		byMAC[string(v.mac)] = v.ifname
	}
	on := func(o owner, idx int) bool {
		i, err := indexes.get(o.ifname)
		return err == nil && i == idx
	}
	rx := map[netip.Addr][]uint32{}
	stop := make(chan os.Signal, 1)
	signal.Notify(stop, syscall.SIGTERM, syscall.SIGINT)
	deadline := time.Now().Add(*timeout)
	buf := make([]byte, 4096)
	var answered int
	// Frames read, by EtherType and packet type: what one thread handles
	// for all VMs.
	type kind struct {
		etherType uint16
		pktType   uint8
	}
	read := map[kind]int{}
	fmt.Println("responding")
	for time.Now().Before(deadline) {
		select {
		case <-stop:
			deadline = time.Now()
			continue
		default:
		}
		n, from, err := unix.Recvfrom(fd, buf, 0)
		if err != nil {
			if errors.Is(err, unix.EAGAIN) || errors.Is(err, unix.EINTR) {
				continue
			}
			return err
		}
		ll, ok := from.(*unix.SockaddrLinklayer)
		if !ok || n < 14 {
			continue
		}
		read[kind{binary.BigEndian.Uint16(buf[12:14]), ll.Pkttype}]++
		if ll.Pkttype == unix.PACKET_OUTGOING {
			if name, ok := byMAC[string(buf[6:12])]; ok {
				indexes[name] = ll.Ifindex
			}
			continue
		}
		f := buf[:n]
		dst := net.HardwareAddr(f[0:6])
		switch binary.BigEndian.Uint16(f[12:14]) {
		case 0x0806: // ARP
			if n < 42 || binary.BigEndian.Uint16(f[20:22]) != 1 {
				continue
			}
			sip, _ := netip.AddrFromSlice(f[28:32])
			tip, _ := netip.AddrFromSlice(f[38:42])
			o, ok := owners[tip]
			if !ok || sip == tip || !on(o, ll.Ifindex) || !(isBroadcast(dst) || slices.Equal(dst, o.mac)) {
				continue
			}
			reply, err := packet.BuildReply(packet.Reply{MAC: o.mac, IP: tip, DstMAC: net.HardwareAddr(slices.Clone(f[22:28])), DstIP: sip})
			if err == nil && unix.Sendto(fd, reply, 0, &unix.SockaddrLinklayer{Ifindex: ll.Ifindex, Halen: 6}) == nil {
				answered++
			}
		case 0x86dd: // IPv6: Neighbor Solicitations only
			if n < 14+40+24 || f[14+6] != 58 || f[14+40] != 135 {
				continue
			}
			src, _ := netip.AddrFromSlice(f[14+8 : 14+24])
			tgt, _ := netip.AddrFromSlice(f[14+40+8 : 14+40+24])
			o, ok := owners[tgt]
			if !ok || src.IsUnspecified() || !on(o, ll.Ifindex) ||
				!(slices.Equal(dst, o.mac) || solicitedNode(dst, tgt)) {
				continue
			}
			reply, err := packet.BuildReply(packet.Reply{MAC: o.mac, IP: tgt, DstMAC: net.HardwareAddr(slices.Clone(f[6:12])), DstIP: src})
			if err == nil && unix.Sendto(fd, reply, 0, &unix.SockaddrLinklayer{Ifindex: ll.Ifindex, Halen: 6}) == nil {
				answered++
			}
		case 0x0800: // the client's UDP stream
			if n < 14+20+8+4 || f[14+9] != 17 {
				continue
			}
			ihl := int(f[14]&0x0f) * 4
			ip, _ := netip.AddrFromSlice(f[14+16 : 14+20])
			o, ok := owners[ip]
			u := 14 + ihl
			if !ok || !slices.Equal(dst, o.mac) || n < u+12 || binary.BigEndian.Uint16(f[u+2:u+4]) != streamPort {
				continue
			}
			rx[ip] = append(rx[ip], binary.BigEndian.Uint32(f[u+8:u+12]))
		}
	}
	fmt.Printf("answered %d\n", answered)
	fmt.Print("frames read (EtherType/packet type: count)")
	for k, n := range read {
		fmt.Printf(" %04x/%d:%d", k.etherType, k.pktType, n)
	}
	fmt.Println()
	if *rxPath == "" {
		return nil
	}
	return writeRx(*rxPath, rx)
}

func isBroadcast(m net.HardwareAddr) bool { return slices.Equal(m, packet.Broadcast) }

// solicitedNode reports whether m is the Ethernet address of a's
// solicited-node multicast group (33:33:ff:xx:xx:xx).
func solicitedNode(m net.HardwareAddr, a netip.Addr) bool {
	b := a.As16()
	return m[0] == 0x33 && m[1] == 0x33 && m[2] == 0xff && m[3] == b[13] && m[4] == b[14] && m[5] == b[15]
}

// writeRx writes "addr seq,seq-seq,..." per address.
func writeRx(path string, rx map[netip.Addr][]uint32) error {
	var b strings.Builder
	for a, seqs := range rx {
		slices.Sort(seqs)
		seqs = slices.Compact(seqs)
		fmt.Fprintf(&b, "%s ", a)
		for i := 0; i < len(seqs); {
			j := i
			for j+1 < len(seqs) && seqs[j+1] == seqs[j]+1 {
				j++
			}
			if i > 0 {
				b.WriteByte(',')
			}
			fmt.Fprintf(&b, "%d-%d", seqs[i], seqs[j])
			i = j + 1
		}
		b.WriteByte('\n')
	}
	return os.WriteFile(path, []byte(b.String()), 0o644)
}

// ---------------------------------------------------------------- announce

func announce(args []string) error {
	fs := flag.NewFlagSet("announce", flag.ContinueOnError)
	vmsPath := fs.String("vms", "", "VM file")
	mode := fs.String("mode", "rarp", "speak, rarp or garp")
	create := fs.String("create-ports", "", "LEAFNS:BRIDGE: create each VM's veth just before its first round")
	out := fs.String("out", "", "write \"mac first-send-unix-ns\" per VM here")
	gw4 := fs.String("gw4", "", "speak: IPv4 gateway per /24... comma list of gateways, matched by prefix")
	gw6 := fs.String("gw6", "", "speak: IPv6 gateway")
	timeout := fs.Duration("timeout", time.Minute, "give up after this long")
	if err := fs.Parse(args); err != nil {
		return err
	}
	vms, err := readVMs(*vmsPath)
	if err != nil {
		return err
	}
	fd, err := rawSocket()
	if err != nil {
		return err
	}
	defer unix.Close(fd)
	idx := ifIndex{}
	// ENOBUFS: the veth's peer dropped the frame (its backlog full while
	// the host is busy). A guest's frame would be lost the same way: try
	// again for a few milliseconds, then count it lost and go on.
	var lost int
	send := func(v vm, frame []byte) error {
		i, err := idx.get(v.ifname)
		if err != nil {
			return err
		}
		for try := 0; ; try++ {
			err := unix.Sendto(fd, frame, 0, &unix.SockaddrLinklayer{Ifindex: i, Halen: 6})
			switch {
			case err == nil:
				return nil
			case errors.Is(err, unix.ENOBUFS) && try < 50:
				time.Sleep(100 * time.Microsecond)
			case errors.Is(err, unix.ENOBUFS):
				lost++
				return nil
			default:
				return fmt.Errorf("send on %s: %w", v.ifname, err)
			}
		}
	}
	defer func() {
		if lost > 0 {
			fmt.Printf("lost %d frames (ENOBUFS)\n", lost)
		}
	}()
	if *mode == "speak" {
		var gws4 []netip.Prefix
		for _, s := range strings.Split(*gw4, ",") {
			p, err := netip.ParsePrefix(s)
			if err != nil {
				return fmt.Errorf("-gw4 %q: want gateway/len,...: %w", s, err)
			}
			gws4 = append(gws4, p)
		}
		g6, err := netip.ParseAddr(*gw6)
		if err != nil {
			return fmt.Errorf("-gw6: %w", err)
		}
		for _, v := range vms {
			for _, a := range v.addrs {
				var fr []byte
				if a.Is4() {
					for _, p := range gws4 {
						if p.Contains(a) {
							fr, err = arpFrame(v.mac, packet.Broadcast, 1, a, p.Addr())
						}
					}
				} else {
					fr, err = nsFrame(v.mac, a, g6)
				}
				if err != nil || fr == nil {
					return fmt.Errorf("speak %s: no frame (%v)", a, err)
				}
				if err := send(v, fr); err != nil {
					return err
				}
			}
		}
		return nil
	}
	frames := make([][][]byte, len(vms))
	for i, v := range vms {
		switch *mode {
		case "rarp":
			f, err := packet.BuildRARP(v.mac, nil)
			if err != nil {
				return err
			}
			frames[i] = [][]byte{f}
		case "garp":
			for _, a := range v.addrs {
				var f []byte
				if a.Is4() {
					f, err = arpFrame(v.mac, packet.Broadcast, 1, a, a)
				} else {
					f, err = naFrame(v.mac, a)
				}
				if err != nil {
					return err
				}
				frames[i] = append(frames[i], f)
			}
		default:
			return fmt.Errorf("-mode %q: want speak, rarp or garp", *mode)
		}
	}
	var ports *portMaker
	if *create != "" {
		if ports, err = newPortMaker(*create); err != nil {
			return err
		}
		defer ports.close()
	}
	rounds := []time.Duration{0, 50 * time.Millisecond, 200 * time.Millisecond, 450 * time.Millisecond, 800 * time.Millisecond}
	type ev struct {
		at time.Time
		vm int
	}
	var pending []ev
	first := make([]time.Time, len(vms))
	deadline := time.Now().Add(*timeout)
	fire := func(e ev) error {
		for _, f := range frames[e.vm] {
			if err := send(vms[e.vm], f); err != nil {
				return err
			}
		}
		return nil
	}
	flush := func(until time.Time) error {
		sort.Slice(pending, func(a, b int) bool { return pending[a].at.Before(pending[b].at) })
		for len(pending) > 0 && !pending[0].at.After(until) {
			time.Sleep(time.Until(pending[0].at))
			if err := fire(pending[0]); err != nil {
				return err
			}
			pending = pending[1:]
		}
		return nil
	}
	var created time.Duration
	for i, v := range vms {
		if time.Now().After(deadline) {
			return errors.New("timeout")
		}
		if err := flush(time.Now()); err != nil {
			return err
		}
		if ports != nil {
			t := time.Now()
			if err := ports.make(v); err != nil {
				return err
			}
			created += time.Since(t)
		}
		first[i] = time.Now()
		if err := fire(ev{first[i], i}); err != nil {
			return err
		}
		for _, r := range rounds[1:] {
			pending = append(pending, ev{first[i].Add(r), i})
		}
	}
	if err := flush(deadline); err != nil {
		return err
	}
	if ports != nil {
		fmt.Printf("created %d ports, %.2f ms each\n", len(vms), float64(created.Microseconds())/1e3/float64(len(vms)))
	}
	fmt.Printf("announced %d VMs (%s) from %d to %d\n", len(vms), *mode, first[0].UnixNano(), first[len(first)-1].UnixNano())
	if *out == "" {
		return nil
	}
	var b strings.Builder
	for i, v := range vms {
		fmt.Fprintf(&b, "%s %d\n", v.mac, first[i].UnixNano())
	}
	return os.WriteFile(*out, []byte(b.String()), 0o644)
}

// portMaker creates a VM's veth pair: the leaf side in another namespace,
// enslaved to a bridge and up; the VM side here, with the VM's MAC, up.
type portMaker struct {
	leaf   *netlink.Handle
	leafNS netns.NsHandle
	self   netns.NsHandle
	master int
}

func newPortMaker(spec string) (*portMaker, error) {
	nsName, br, ok := strings.Cut(spec, ":")
	if !ok {
		return nil, fmt.Errorf("-create-ports %q: want LEAFNS:BRIDGE", spec)
	}
	lns, err := netns.GetFromName(nsName)
	if err != nil {
		return nil, fmt.Errorf("namespace %s: %w", nsName, err)
	}
	self, err := netns.Get()
	if err != nil {
		return nil, err
	}
	h, err := netlink.NewHandleAt(lns)
	if err != nil {
		return nil, err
	}
	l, err := h.LinkByName(br)
	if err != nil {
		return nil, fmt.Errorf("%s in %s: %w", br, nsName, err)
	}
	return &portMaker{leaf: h, leafNS: lns, self: self, master: l.Attrs().Index}, nil
}

func (p *portMaker) close() {
	p.leaf.Close()
	p.leafNS.Close()
	p.self.Close()
}

// make creates the pair for v: leaf side "t<name without v>", VM side v.ifname.
func (p *portMaker) make(v vm) error {
	leafName := "t" + strings.TrimPrefix(v.ifname, "v")
	veth := &netlink.Veth{
		LinkAttrs:        netlink.LinkAttrs{Name: leafName, MasterIndex: p.master, Flags: net.FlagUp},
		PeerName:         v.ifname,
		PeerHardwareAddr: v.mac,
		PeerNamespace:    netlink.NsFd(int(p.self)),
	}
	if err := p.leaf.LinkAdd(veth); err != nil {
		return fmt.Errorf("create %s/%s: %w", leafName, v.ifname, err)
	}
	l, err := netlink.LinkByName(v.ifname)
	if err != nil {
		return err
	}
	if err := netlink.LinkSetUp(l); err != nil {
		return err
	}
	// Up in the namespace; the leaf side came up at creation. Wait for the
	// carrier so the first round is not dropped by a veth without a peer.
	for range 200 {
		l, err = netlink.LinkByIndex(l.Attrs().Index)
		if err == nil && l.Attrs().OperState == netlink.OperUp {
			return nil
		}
		time.Sleep(100 * time.Microsecond)
	}
	return fmt.Errorf("%s: no carrier", v.ifname)
}

// ---------------------------------------------------------------- frames

func serialize(ls ...gopacket.SerializableLayer) ([]byte, error) {
	buf := gopacket.NewSerializeBuffer()
	if err := gopacket.SerializeLayers(buf, gopacket.SerializeOptions{FixLengths: true, ComputeChecksums: true}, ls...); err != nil {
		return nil, err
	}
	return slices.Clone(buf.Bytes()), nil
}

// arpFrame: an ARP request (op 1) from mac/sip asking for tip, to dst.
func arpFrame(mac, dst net.HardwareAddr, op uint16, sip, tip netip.Addr) ([]byte, error) {
	s, t := sip.As4(), tip.As4()
	return serialize(&layers.Ethernet{SrcMAC: mac, DstMAC: dst, EthernetType: layers.EthernetTypeARP},
		&layers.ARP{AddrType: layers.LinkTypeEthernet, Protocol: layers.EthernetTypeIPv4, HwAddressSize: 6,
			ProtAddressSize: 4, Operation: op, SourceHwAddress: mac, SourceProtAddress: s[:],
			DstHwAddress: make([]byte, 6), DstProtAddress: t[:]})
}

// nsFrame: a multicast Neighbor Solicitation from mac/src for tgt, with the
// source link-layer address option.
func nsFrame(mac net.HardwareAddr, src, tgt netip.Addr) ([]byte, error) {
	t := tgt.As16()
	group := netip.AddrFrom16([16]byte{0xff, 0x02, 11: 1, 12: 0xff, 13: t[13], 14: t[14], 15: t[15]})
	ip6 := &layers.IPv6{Version: 6, NextHeader: layers.IPProtocolICMPv6, HopLimit: 255, SrcIP: src.AsSlice(), DstIP: group.AsSlice()}
	icmp := &layers.ICMPv6{TypeCode: layers.CreateICMPv6TypeCode(layers.ICMPv6TypeNeighborSolicitation, 0)}
	if err := icmp.SetNetworkLayerForChecksum(ip6); err != nil {
		return nil, err
	}
	dst := net.HardwareAddr{0x33, 0x33, 0xff, t[13], t[14], t[15]}
	return serialize(&layers.Ethernet{SrcMAC: mac, DstMAC: dst, EthernetType: layers.EthernetTypeIPv6}, ip6, icmp,
		&layers.ICMPv6NeighborSolicitation{TargetAddress: tgt.AsSlice(),
			Options: layers.ICMPv6Options{{Type: layers.ICMPv6OptSourceAddress, Data: mac}}})
}

// naFrame: an unsolicited Neighbor Advertisement (override) for a to all nodes.
func naFrame(mac net.HardwareAddr, a netip.Addr) ([]byte, error) {
	all := netip.MustParseAddr("ff02::1")
	ip6 := &layers.IPv6{Version: 6, NextHeader: layers.IPProtocolICMPv6, HopLimit: 255, SrcIP: a.AsSlice(), DstIP: all.AsSlice()}
	icmp := &layers.ICMPv6{TypeCode: layers.CreateICMPv6TypeCode(layers.ICMPv6TypeNeighborAdvertisement, 0)}
	if err := icmp.SetNetworkLayerForChecksum(ip6); err != nil {
		return nil, err
	}
	return serialize(&layers.Ethernet{SrcMAC: mac, DstMAC: net.HardwareAddr{0x33, 0x33, 0, 0, 0, 1}, EthernetType: layers.EthernetTypeIPv6},
		ip6, icmp, &layers.ICMPv6NeighborAdvertisement{Flags: 0x20, TargetAddress: a.AsSlice(),
			Options: layers.ICMPv6Options{{Type: layers.ICMPv6OptTargetAddress, Data: mac}}})
}

// ---------------------------------------------------------------- stream

func stream(args []string) error {
	fs := flag.NewFlagSet("stream", flag.ContinueOnError)
	targets := fs.String("targets", "", "comma-separated IPv4 addresses")
	pps := fs.Int("pps", 200, "packets per second per target")
	duration := fs.Duration("duration", 10*time.Second, "how long")
	out := fs.String("out", "", "write \"addr sent start-unix-ns interval-ns\" per target here")
	if err := fs.Parse(args); err != nil {
		return err
	}
	var addrs []netip.Addr
	for _, s := range strings.Split(*targets, ",") {
		a, err := netip.ParseAddr(s)
		if err != nil {
			return err
		}
		addrs = append(addrs, a)
	}
	conn, err := net.ListenUDP("udp4", nil)
	if err != nil {
		return err
	}
	defer conn.Close()
	stop := make(chan os.Signal, 1)
	signal.Notify(stop, syscall.SIGTERM, syscall.SIGINT)
	interval := time.Second / time.Duration(*pps)
	start := time.Now()
	n := int(*duration / interval)
	payload := make([]byte, 16)
	var seq int
loop:
	for seq = 0; seq < n; seq++ {
		select {
		case <-stop:
			break loop
		default:
		}
		time.Sleep(time.Until(start.Add(time.Duration(seq) * interval)))
		binary.BigEndian.PutUint32(payload, uint32(seq))
		binary.BigEndian.PutUint64(payload[8:], uint64(time.Now().UnixNano()))
		for _, a := range addrs {
			_, _ = conn.WriteToUDPAddrPort(payload, netip.AddrPortFrom(a, streamPort))
		}
	}
	var b strings.Builder
	for _, a := range addrs {
		fmt.Fprintf(&b, "%s %d %d %d\n", a, seq, start.UnixNano(), interval.Nanoseconds())
	}
	return os.WriteFile(*out, []byte(b.String()), 0o644)
}

func recv(args []string) error {
	fs := flag.NewFlagSet("recv", flag.ContinueOnError)
	addr := fs.String("addr", "", "the address the stream is sent to (the key in -rx)")
	rxPath := fs.String("rx", "", "write the sequence numbers received here at exit")
	timeout := fs.Duration("timeout", 10*time.Minute, "stop after this long")
	if err := fs.Parse(args); err != nil {
		return err
	}
	a, err := netip.ParseAddr(*addr)
	if err != nil {
		return fmt.Errorf("-addr: %w", err)
	}
	conn, err := net.ListenUDP("udp4", &net.UDPAddr{Port: streamPort})
	if err != nil {
		return err
	}
	defer conn.Close()
	stop := make(chan os.Signal, 1)
	signal.Notify(stop, syscall.SIGTERM, syscall.SIGINT)
	deadline := time.Now().Add(*timeout)
	fmt.Println("receiving")
	var seqs []uint32
	buf := make([]byte, 64)
	for time.Now().Before(deadline) {
		select {
		case <-stop:
			deadline = time.Now()
			continue
		default:
		}
		_ = conn.SetReadDeadline(time.Now().Add(100 * time.Millisecond))
		n, err := conn.Read(buf)
		if err != nil {
			continue
		}
		if n >= 4 {
			seqs = append(seqs, binary.BigEndian.Uint32(buf))
		}
	}
	return writeRx(*rxPath, map[netip.Addr][]uint32{a: seqs})
}
