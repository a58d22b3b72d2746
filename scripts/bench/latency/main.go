//go:build linux

// Command latency is the RARP-to-first-probe benchmark's tool
// (scripts/bench/latency.sh):
//
//	latency send IFACE COUNT INTERVAL BASE   send COUNT RARPs for MACs BASE+i
//	latency floor IFACE                       the floor: answer each RARP with a fixed ARP request, no lookup
//	latency pcapfloor IFACE                   the same through the daemon's own capture code (capture/pcapio)
//	latency pollfloor IFACE                   the same through Go's poller on a plain packet socket (no libpcap)
//	latency analyze FILE.pcap [RAW]           per-MAC latency from RARP out to first probe in, p50/p99;
//	                                          each latency in ns appended to RAW
//	latency summary DIR SPACINGS BINDINGS     the Markdown table of latency.sh from DIR/SPACING.SIDE.ROUND
//	latency mass IFACE COUNT BASE             QEMU's five rounds (0, 50, 200, 450, 800 ms) for COUNT MACs
//	latency respond IFACE                     answer every ARP request as the VM it is addressed to
//	latency get URL                           print a URL's body (/metrics inside a namespace)
//	latency replies IFACE RATE SECONDS DSTMAC unsolicited answers to DSTMAC, RATE per second (half ARP
//	                                          replies, half NAs, from 64 VMs), for SECONDS
package main

import (
	"encoding/binary"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/gopacket/gopacket/layers"
	"github.com/gopacket/gopacket/pcapgo"
	"github.com/rarp-replay/rarp-replay/capture"
	"github.com/rarp-replay/rarp-replay/capture/pcapio"
	"github.com/rarp-replay/rarp-replay/internal/packet"
	"golang.org/x/sys/unix"
)

func main() {
	if err := run(os.Args[1:]); err != nil {
		fmt.Fprintln(os.Stderr, "latency:", err)
		os.Exit(1)
	}
}

func macAt(base uint64, i int) net.HardwareAddr {
	b := make([]byte, 8)
	binary.BigEndian.PutUint64(b, base+uint64(i))
	return net.HardwareAddr(b[2:])
}

func run(args []string) error {
	if len(args) < 2 {
		return fmt.Errorf("usage: send|floor|analyze ...")
	}
	switch args[0] {
	case "send":
		count, _ := strconv.Atoi(args[2])
		interval, _ := time.ParseDuration(args[3])
		base, err := strconv.ParseUint(args[4], 16, 64)
		if err != nil {
			return err
		}
		h, err := pcapio.OpenSender(args[1])
		if err != nil {
			return err
		}
		defer h.Close()
		for i := range count {
			f, err := packet.BuildRARP(macAt(base, i), nil)
			if err != nil {
				return err
			}
			if err := h.WritePacketData(f); err != nil {
				return err
			}
			time.Sleep(interval)
		}
		return nil
	case "floor":
		return floor(args[1])
	case "pollfloor":
		return pollFloor(args[1])
	case "pcapfloor":
		return pcapFloor(args[1])
	case "mass":
		count, _ := strconv.Atoi(args[2])
		base, err := strconv.ParseUint(args[3], 16, 64)
		if err != nil {
			return err
		}
		return mass(args[1], count, base)
	case "respond":
		return respond(args[1])
	case "replies":
		if len(args) < 5 {
			return fmt.Errorf("usage: replies IFACE RATE SECONDS DSTMAC")
		}
		rate, _ := strconv.Atoi(args[2])
		secs, _ := strconv.Atoi(args[3])
		dst, err := net.ParseMAC(args[4])
		if err != nil {
			return err
		}
		return replies(args[1], rate, time.Duration(secs)*time.Second, dst)
	case "get": // a URL inside a namespace, for /metrics
		resp, err := http.Get(args[1])
		if err != nil {
			return err
		}
		defer resp.Body.Close()
		_, err = io.Copy(os.Stdout, resp.Body)
		return err
	case "analyze":
		raw := ""
		if len(args) > 2 {
			raw = args[2]
		}
		return analyze(args[1], raw)
	case "summary":
		if len(args) < 4 {
			return fmt.Errorf("usage: summary DIR SPACINGS BINDINGS")
		}
		return summary(args[1], strings.Fields(args[2]), args[3])
	}
	return fmt.Errorf("unknown command %q", args[0])
}

// floor answers every RARP on ifname, as fast as a raw socket allows, with
// a fixed ARP request to the announced MAC. Like floor.c it takes every
// EtherType with a kernel filter for RARP: on a bridge port, a socket bound
// to RARP alone would never see one (the bridge takes it first).
func floor(ifname string) error {
	ifi, fd, err := rarpSocket(ifname)
	if err != nil {
		return err
	}
	defer unix.Close(fd)
	probe, err := floorProbe(ifi.HardwareAddr)
	if err != nil {
		return err
	}
	to := &unix.SockaddrLinklayer{Ifindex: ifi.Index, Halen: 6}
	buf := make([]byte, 2048)
	fmt.Println("ready")
	for {
		n, from, err := unix.Recvfrom(fd, buf, 0)
		if err != nil {
			return err
		}
		if !answerable(n, from) {
			continue
		}
		copy(probe[0:6], buf[22:28]) // to the announced MAC
		if err := unix.Sendto(fd, probe, 0, to); err != nil {
			return err
		}
	}
}

// pcapFloor answers every RARP on ifname as floor does, but through the
// daemon's own capture code: a capture/pcapio port handle (libpcap,
// inbound only, the port filter, read through Go's poller and one cgo
// call per frame) and the probe written through that handle. What it adds
// to the Go floor is the capture path; what the daemon adds to it is its
// decision (decode, port, mirror, probe, cycle, rate limits).
func pcapFloor(ifname string) error {
	ifi, err := net.InterfaceByName(ifname)
	if err != nil {
		return err
	}
	h, err := pcapio.Open(ifname, capture.PortFilter, pcapio.DefaultOptions)
	if err != nil {
		return err
	}
	defer h.Close()
	probe, err := floorProbe(ifi.HardwareAddr)
	if err != nil {
		return err
	}
	fmt.Println("ready")
	for {
		data, _, err := h.ReadPacketData()
		if err != nil {
			return err
		}
		if len(data) < 42 || binary.BigEndian.Uint16(data[12:14]) != uint16(packet.EtherTypeRARP) {
			continue
		}
		copy(probe[0:6], data[22:28]) // to the announced MAC
		if err := h.WritePacketData(probe); err != nil {
			return err
		}
	}
}

// pollFloor answers every RARP on ifname as floor does, through Go's
// network poller as the daemon's capture handles are read: the packet
// socket (floor's, with its RARP filter) non-blocking and registered with
// the poller, each frame taken with one recvfrom, the probe written with
// one sendto. Against pcapFloor it is the daemon's capture path without
// libpcap (its ring and the cgo call to pcap_next_ex): what a departure
// from libpcap for the ports' reads could gain.
func pollFloor(ifname string) error {
	ifi, fd, err := rarpSocket(ifname)
	if err != nil {
		return err
	}
	if err := unix.SetNonblock(fd, true); err != nil {
		unix.Close(fd)
		return err
	}
	f := os.NewFile(uintptr(fd), ifname)
	defer f.Close()
	rc, err := f.SyscallConn()
	if err != nil {
		return err
	}
	probe, err := floorProbe(ifi.HardwareAddr)
	if err != nil {
		return err
	}
	to := &unix.SockaddrLinklayer{Ifindex: ifi.Index, Halen: 6}
	buf := make([]byte, 2048)
	var n int
	var from unix.Sockaddr
	var rerr, werr error
	recv := func(fd uintptr) bool {
		n, from, rerr = unix.Recvfrom(int(fd), buf, unix.MSG_DONTWAIT)
		return rerr != unix.EAGAIN
	}
	send := func(fd uintptr) bool {
		werr = unix.Sendto(int(fd), probe, 0, to)
		return werr != unix.EAGAIN
	}
	fmt.Println("ready")
	for {
		if err := rc.Read(recv); err != nil {
			return err
		}
		if rerr != nil {
			return rerr
		}
		if !answerable(n, from) {
			continue
		}
		copy(probe[0:6], buf[22:28]) // to the announced MAC
		if err := rc.Write(send); err != nil {
			return err
		}
		if werr != nil {
			return werr
		}
	}
}

// answerable reports whether the socket floors answer a frame of n bytes
// read from from: one that came in (not one of their own probes going
// out) and is long enough to hold a RARP.
func answerable(n int, from unix.Sockaddr) bool {
	if ll, ok := from.(*unix.SockaddrLinklayer); ok && ll.Pkttype == unix.PACKET_OUTGOING {
		return false
	}
	return n >= 42
}

// floorProbe is the floors' prebuilt answer to every RARP: an ARP request
// from src; its destination MAC is set to each announced MAC in turn.
func floorProbe(src net.HardwareAddr) ([]byte, error) {
	return packet.Build(packet.Probe{SrcMAC: src, DstMAC: net.HardwareAddr{2, 0, 0, 0, 0, 1},
		SrcIP: netipMust("192.0.2.1"), Target: netipMust("192.0.2.250")})
}

func htons(v uint16) uint16 { return v<<8 | v>>8 }

// rarpSocket opens a packet socket on ifname for every EtherType, with a
// kernel filter that passes RARPs only: the floors' socket.
func rarpSocket(ifname string) (*net.Interface, int, error) {
	ifi, fd, err := rawSocket(ifname, unix.ETH_P_ALL)
	if err != nil {
		return nil, -1, err
	}
	code := []unix.SockFilter{
		{Code: unix.BPF_LD | unix.BPF_H | unix.BPF_ABS, K: 12},
		{Code: unix.BPF_JMP | unix.BPF_JEQ | unix.BPF_K, Jt: 0, Jf: 1, K: uint32(packet.EtherTypeRARP)},
		{Code: unix.BPF_RET | unix.BPF_K, K: 0xffff},
		{Code: unix.BPF_RET | unix.BPF_K, K: 0},
	}
	if err := unix.SetsockoptSockFprog(fd, unix.SOL_SOCKET, unix.SO_ATTACH_FILTER, &unix.SockFprog{Len: uint16(len(code)), Filter: &code[0]}); err != nil {
		unix.Close(fd)
		return nil, -1, fmt.Errorf("filter: %w", err)
	}
	return ifi, fd, nil
}

// rawSocket opens an AF_PACKET socket for EtherType proto bound to ifname.
func rawSocket(ifname string, proto uint16) (*net.Interface, int, error) {
	ifi, err := net.InterfaceByName(ifname)
	if err != nil {
		return nil, -1, err
	}
	fd, err := unix.Socket(unix.AF_PACKET, unix.SOCK_RAW, int(htons(proto)))
	if err != nil {
		return nil, -1, err
	}
	if err := unix.Bind(fd, &unix.SockaddrLinklayer{Protocol: htons(proto), Ifindex: ifi.Index}); err != nil {
		unix.Close(fd)
		return nil, -1, err
	}
	return ifi, fd, nil
}

// analyze reads a capture taken on the VM side: RARPs going out, probes
// (ARP requests, NS) coming in; per announced MAC, the time from its RARP to
// its first probe.
func analyze(path, raw string) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	r, err := pcapgo.NewReader(f)
	if err != nil {
		return err
	}
	sent := map[string]time.Time{}
	var lat []time.Duration
	answered := map[string]bool{}
	for {
		data, ci, err := r.ReadPacketData()
		if err != nil {
			break
		}
		var eth layers.Ethernet
		if eth.DecodeFromBytes(data, nopFeedback{}) != nil {
			continue
		}
		switch eth.EthernetType {
		case packet.EtherTypeRARP:
			sent[eth.SrcMAC.String()] = ci.Timestamp
		case layers.EthernetTypeARP, layers.EthernetTypeIPv6:
			m := eth.DstMAC.String()
			if t0, ok := sent[m]; ok && !answered[m] {
				answered[m] = true
				lat = append(lat, ci.Timestamp.Sub(t0))
			}
		}
	}
	if len(sent) == 0 {
		return fmt.Errorf("no RARP in %s", path)
	}
	slices.Sort(lat)
	if raw != "" {
		var b strings.Builder
		fmt.Fprintf(&b, "sent %d\n", len(sent))
		for _, l := range lat {
			fmt.Fprintf(&b, "%d\n", l.Nanoseconds())
		}
		if err := os.WriteFile(raw, []byte(b.String()), 0o644); err != nil {
			return err
		}
	}
	fmt.Printf("rarps=%d answered=%d p50_us=%.1f p99_us=%.1f max_us=%.1f\n", len(sent), len(lat), us(quantile(lat, 0.5)), us(quantile(lat, 0.99)), us(quantile(lat, 1)))
	return nil
}

// quantile returns the p-quantile of sorted (nearest rank), 0 when empty.
func quantile(sorted []time.Duration, p float64) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	return sorted[min(len(sorted)-1, int(p*float64(len(sorted))))]
}

func us(d time.Duration) float64 { return float64(d.Nanoseconds()) / 1e3 }

// block is one responder's block of RARPs at one spacing in one round.
type block struct {
	sent int
	lat  []time.Duration // sorted
}

func readBlock(path string) (block, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return block{}, err
	}
	var b block
	for i, line := range strings.Fields(strings.TrimPrefix(string(data), "sent")) {
		v, err := strconv.ParseInt(line, 10, 64)
		if err != nil {
			return block{}, fmt.Errorf("%s: %w", path, err)
		}
		if i == 0 {
			b.sent = int(v)
			continue
		}
		b.lat = append(b.lat, time.Duration(v))
	}
	slices.Sort(b.lat)
	return b, nil
}

// summary prints latency.sh's table: per spacing and responder, the RARPs
// answered, p50 over all rounds pooled and per round, p99 pooled, and the
// ratio to the C floor's pooled p50 (and the range of the per-round ratios).
func summary(dir string, spacings []string, bindings string) error {
	sides := []struct{ key, name string }{{"d", "rarp-replay"}, {"c", "C floor"}, {"g", "Go floor"}, {"p", "libpcap floor"}, {"s", "socket floor"}}
	fmt.Printf("RARP → first probe on the wire, %s bindings mirrored; p50 and p99 pool every round, \"per round\" lists each round's p50, ratios are to the C floor's p50 (pooled, and the range over the rounds).\n\n", bindings)
	fmt.Println("| RARPs every | responder | answered | p50 µs | p99 µs | p50 per round µs | p50 / C floor | per round |")
	fmt.Println("| --- | --- | --- | --- | --- | --- | --- | --- |")
	for _, sp := range spacings {
		type agg struct {
			sent, answered int
			all            []time.Duration
			rounds         map[int]time.Duration
		}
		res := map[string]*agg{}
		for _, s := range sides {
			a := &agg{rounds: map[int]time.Duration{}}
			res[s.key] = a
			files, _ := filepath.Glob(filepath.Join(dir, sp+"."+s.key+".*"))
			for _, f := range files {
				round, err := strconv.Atoi(f[strings.LastIndexByte(f, '.')+1:])
				if err != nil {
					continue
				}
				b, err := readBlock(f)
				if err != nil {
					return err
				}
				a.sent += b.sent
				a.answered += len(b.lat)
				a.all = append(a.all, b.lat...)
				if len(b.lat) > 0 {
					a.rounds[round] = quantile(b.lat, 0.5)
				}
			}
			slices.Sort(a.all)
		}
		c := res["c"]
		for _, s := range sides {
			a := res[s.key]
			var rounds []int
			for r := range a.rounds {
				rounds = append(rounds, r)
			}
			slices.Sort(rounds)
			var per []string
			var lo, hi float64
			n := 0
			for _, r := range rounds {
				per = append(per, fmt.Sprintf("%.0f", us(a.rounds[r])))
				if cr, ok := c.rounds[r]; ok && cr > 0 {
					x := float64(a.rounds[r]) / float64(cr)
					if n == 0 || x < lo {
						lo = x
					}
					if n == 0 || x > hi {
						hi = x
					}
					n++
				}
			}
			ratio, span := "–", "–"
			if p := quantile(c.all, 0.5); p > 0 && len(a.all) > 0 {
				ratio = fmt.Sprintf("%.2f×", float64(quantile(a.all, 0.5))/float64(p))
			}
			if n > 0 {
				span = fmt.Sprintf("%.2f – %.2f×", lo, hi)
			}
			fmt.Printf("| %s | %s | %d / %d | %.0f | %.0f | %s | %s | %s |\n", sp, s.name, a.answered, a.sent,
				us(quantile(a.all, 0.5)), us(quantile(a.all, 0.99)), strings.Join(per, " / "), ratio, span)
		}
	}
	return nil
}

type nopFeedback struct{}

func (nopFeedback) SetTruncated() {}

func netipMust(s string) netip.Addr { return netip.MustParseAddr(s) }

// mass sends QEMU's announcement for count VMs at once: five rounds, each
// round a RARP per VM back to back.
func mass(ifname string, count int, base uint64) error {
	h, err := pcapio.OpenSender(ifname)
	if err != nil {
		return err
	}
	defer h.Close()
	frames := make([][]byte, count)
	for i := range frames {
		if frames[i], err = packet.BuildRARP(macAt(base, i), nil); err != nil {
			return err
		}
	}
	start := time.Now()
	fmt.Printf("start_unix_ns=%d\n", start.UnixNano())
	for _, at := range []time.Duration{0, 50, 200, 450, 800} {
		time.Sleep(time.Until(start.Add(at * time.Millisecond)))
		for _, f := range frames {
			if err := h.WritePacketData(f); err != nil {
				return err
			}
		}
	}
	fmt.Printf("sent=%d in %s\n", 5*count, time.Since(start).Round(time.Millisecond))
	return nil
}

// respond answers every ARP request that arrives on ifname as the VM it is
// addressed to (its destination MAC) would: many VMs behind one veth.
func respond(ifname string) error {
	ifi, fd, err := rawSocket(ifname, uint16(layers.EthernetTypeARP))
	if err != nil {
		return err
	}
	defer unix.Close(fd)
	to := &unix.SockaddrLinklayer{Ifindex: ifi.Index, Halen: 6}
	buf := make([]byte, 2048)
	for {
		n, from, err := unix.Recvfrom(fd, buf, 0)
		if err != nil {
			return err
		}
		if ll, ok := from.(*unix.SockaddrLinklayer); (ok && ll.Pkttype == unix.PACKET_OUTGOING) || n < 42 || buf[21] != packet.OpARPRequest {
			continue
		}
		vm := net.HardwareAddr(buf[0:6])
		ip, _ := netip.AddrFromSlice(buf[38:42])
		src, _ := netip.AddrFromSlice(buf[28:32])
		reply, err := packet.BuildReply(packet.Reply{MAC: vm, IP: ip, DstMAC: net.HardwareAddr(buf[6:12]), DstIP: src})
		if err != nil {
			continue
		}
		unix.Sendto(fd, reply, 0, to)
	}
}

// replies sends rate unsolicited answers per second to dst for d, in
// batches every millisecond: ARP replies and NAs, alternately, from 64 VMs
// (192.0.2.64-127, 2001:db8::64-127) to the leaf (192.0.2.1, 2001:db8::1),
// as a busy leaf's VMs answer its neighbor refreshes and each other. It
// prints how many it sent.
func replies(ifname string, rate int, d time.Duration, dst net.HardwareAddr) error {
	h, err := pcapio.OpenSender(ifname)
	if err != nil {
		return err
	}
	defer h.Close()
	var frames [][]byte
	for i := range 64 {
		vm := macAt(0x020000c0ff00, i)
		for _, r := range []packet.Reply{
			{MAC: vm, IP: netip.AddrFrom4([4]byte{192, 0, 2, byte(64 + i)}), DstMAC: dst, DstIP: netipMust("192.0.2.1")},
			{MAC: vm, IP: netipMust(fmt.Sprintf("2001:db8::%d", 64+i)), DstMAC: dst, DstIP: netipMust("2001:db8::1")},
		} {
			f, err := packet.BuildReply(r)
			if err != nil {
				return err
			}
			frames = append(frames, f)
		}
	}
	start, sent := time.Now(), 0
	for tick := time.NewTicker(time.Millisecond); time.Since(start) < d; <-tick.C {
		due := int(time.Since(start).Seconds() * float64(rate))
		for ; sent < due; sent++ {
			if err := h.WritePacketData(frames[sent%len(frames)]); err != nil {
				return err
			}
		}
	}
	fmt.Printf("sent=%d in %s\n", sent, time.Since(start).Round(time.Millisecond))
	return nil
}
