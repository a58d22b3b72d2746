// Package replay runs a capture file through the daemon's decision path
// offline, against a snapshot of a switch's neighbor table: no sockets, no
// root, nothing sent or programmed. Replies in the capture (ARP replies,
// Neighbor Advertisements) verify probes as live ones would.
package replay

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"time"

	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"
	"github.com/gopacket/gopacket/pcapgo"
	"github.com/rarp-replay/rarp-replay/capture"
	"github.com/rarp-replay/rarp-replay/internal/engine"
	"github.com/rarp-replay/rarp-replay/internal/link"
	"github.com/rarp-replay/rarp-replay/neigh"
)

// ErrNotCapture is returned for input that is neither pcap nor pcapng.
var ErrNotCapture = errors.New("not a pcap or pcapng capture")

// Neighbor is one entry of `ip -j neigh show`.
type Neighbor struct {
	Dst         string
	Dev         string
	LLAddr      string
	State       []string
	ExternLearn bool
}

// LoadNeighbors reads the JSON that `ip -j neigh show` prints.
func LoadNeighbors(r io.Reader) ([]Neighbor, error) {
	var raw []map[string]json.RawMessage
	if err := json.NewDecoder(r).Decode(&raw); err != nil {
		return nil, fmt.Errorf("neighbor snapshot: %w", err)
	}
	out := make([]Neighbor, 0, len(raw))
	for i, m := range raw {
		var n Neighbor
		for k, dst := range map[string]any{"dst": &n.Dst, "dev": &n.Dev, "lladdr": &n.LLAddr, "state": &n.State} {
			if v, ok := m[k]; ok {
				if err := json.Unmarshal(v, dst); err != nil {
					return nil, fmt.Errorf("neighbor snapshot entry %d: %s: %w", i, k, err)
				}
			}
		}
		_, n.ExternLearn = m["extern_learn"]
		out = append(out, n)
	}
	return out, nil
}

// Options describe the switch the capture was taken on.
type Options struct {
	// SVI is the device, as named in the snapshot, that serves the port the
	// capture was taken on. Empty: the snapshot's only device.
	SVI string
	// SVIMAC is the SVI's MAC, the source of the probes.
	SVIMAC net.HardwareAddr
	// SVIAddrs are the SVI's addresses, the sources of the probes.
	SVIAddrs []netip.Prefix
	Config   engine.Config
}

// Line is the decision for one frame of the capture.
type Line struct {
	N        int // 1-based frame number
	Time     time.Time
	Decision engine.Decision
}

// Result is everything a replay decided.
type Result struct {
	Lines   []Line
	Reports []engine.Report
	Probes  [][]byte // the frames the daemon would have sent
}

const (
	portIndex = 1_000_000
	portName  = "capture"
)

type recorder struct{ r *Result }

func (s recorder) Send(_ int, frame []byte) error {
	s.r.Probes = append(s.r.Probes, frame)
	return nil
}

func (recorder) Program(int, netip.Addr, net.HardwareAddr) error { return nil }

// Run replays the capture in r against the neighbor snapshot.
func Run(r io.Reader, neighbors []Neighbor, o Options, log *slog.Logger) (Result, error) {
	var res Result
	src, err := open(r)
	if err != nil {
		return res, err
	}
	links := link.NewTable()
	mirror := neigh.NewMirror(time.Duration(1<<63 - 1))
	devs := map[string]int{}
	for _, n := range neighbors {
		if _, ok := devs[n.Dev]; !ok {
			devs[n.Dev] = len(devs) + 1
		}
	}
	svi := o.SVI
	if svi == "" {
		if len(devs) > 1 {
			return res, fmt.Errorf("the snapshot has %d devices: name the capture's SVI", len(devs))
		}
		for d := range devs {
			svi = d
		}
	}
	sviIndex, ok := devs[svi]
	if !ok {
		sviIndex = len(devs) + 1
		devs[svi] = sviIndex
	}
	for name, idx := range devs {
		l := link.Link{Index: idx, Name: name, Kind: "bridge", MAC: net.HardwareAddr{2, 0, 0, 0, 0, byte(idx)}}
		if idx == sviIndex {
			l.MAC, l.Addrs = o.SVIMAC, o.SVIAddrs
		}
		links.Set(l)
	}
	links.Set(link.Link{Index: portIndex, Name: portName, Kind: "veth", MAC: net.HardwareAddr{2, 0, 0, 0, 0, 0xfe}, MasterIndex: sviIndex})
	for _, n := range neighbors {
		ip, err := netip.ParseAddr(n.Dst)
		if err != nil {
			continue
		}
		mac, err := net.ParseMAC(n.LLAddr)
		if err != nil {
			continue
		}
		e := neigh.Entry{IfIndex: devs[n.Dev], IP: ip, MAC: mac, State: neigh.NUDReachable}
		if n.ExternLearn {
			e.Flags |= neigh.NTFExtLearned
		}
		mirror.Update(e)
	}
	rec := recorder{&res}
	eng := engine.New(o.Config, links, mirror, rec, rec, log, func(rep engine.Report) { res.Reports = append(res.Reports, rep) })
	var last time.Time
	for n := 1; ; n++ {
		data, ci, err := src.ReadPacketData()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return res, fmt.Errorf("frame %d: %w", n, err)
		}
		last = ci.Timestamp
		d := eng.Handle(ci.Timestamp, capture.Packet{Data: data, LinkType: src.lt, IfIndex: portIndex, Time: ci.Timestamp})
		res.Lines = append(res.Lines, Line{N: n, Time: ci.Timestamp, Decision: d})
	}
	// Let every open cycle run to its end, as the daemon would have.
	eng.Advance(last.Add(24 * time.Hour))
	return res, nil
}

type source struct {
	gopacket.PacketDataSource
	lt layers.LinkType
}

func open(r io.Reader) (source, error) {
	br := bufio.NewReader(r)
	magic, err := br.Peek(4)
	if err != nil {
		return source{}, fmt.Errorf("%w: %v", ErrNotCapture, err)
	}
	if bytes.Equal(magic, []byte{0x0a, 0x0d, 0x0d, 0x0a}) {
		ng, err := pcapgo.NewNgReader(br, pcapgo.DefaultNgReaderOptions)
		if err != nil {
			return source{}, fmt.Errorf("%w: %v", ErrNotCapture, err)
		}
		return source{ng, ng.LinkType()}, nil
	}
	pr, err := pcapgo.NewReader(br)
	if err != nil {
		return source{}, fmt.Errorf("%w: %v", ErrNotCapture, err)
	}
	return source{pr, pr.LinkType()}, nil
}
