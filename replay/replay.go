// Package replay runs a capture file through the daemon's decision path
// offline, against a snapshot of a switch's neighbor table: no sockets, no
// root, nothing sent or programmed. Replies in the capture (ARP replies,
// Neighbor Advertisements) verify probes as live ones would, so a capture of
// a whole exchange replays to the verdicts the daemon reached.
package replay

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"
	"github.com/gopacket/gopacket/pcapgo"
	"github.com/rarp-replay/rarp-replay/internal/engine"
	"github.com/rarp-replay/rarp-replay/internal/link"
	"github.com/rarp-replay/rarp-replay/internal/packet"
	"github.com/rarp-replay/rarp-replay/neigh"
)

// ErrNotCapture is returned for input that is neither pcap nor pcapng.
var ErrNotCapture = errors.New("not a pcap or pcapng capture")

// ErrTruncated matches (errors.Is) the *TruncatedError Stream and Run
// return for a capture cut short.
var ErrTruncated = errors.New("capture cut short")

// TruncatedError is a capture cut short: its file ends inside a record (a
// tcpdump killed or still writing, a copy interrupted). Every complete frame
// before the cut has been replayed, and every probe cycle run to its end, as
// for a complete capture.
type TruncatedError struct {
	// Frames is the number of complete frames replayed.
	Frames int
	// Part is what the file ends inside: "file header", "record header",
	// "record data" (pcap) or "block" (pcapng).
	Part string
}

func (e *TruncatedError) Error() string {
	if e.Part == "file header" {
		return "capture cut short: the file ends inside its file header; no frames"
	}
	switch e.Frames {
	case 0:
		return fmt.Sprintf("capture cut short: the file ends inside the %s of frame 1; no frame before it", e.Part)
	case 1:
		return fmt.Sprintf("capture cut short: the file ends inside the %s of frame 2; the complete frame before it was replayed", e.Part)
	}
	return fmt.Sprintf("capture cut short: the file ends inside the %s of frame %d; the %d complete frames before it were replayed",
		e.Part, e.Frames+1, e.Frames)
}

// Is makes errors.Is(err, ErrTruncated) true.
func (e *TruncatedError) Is(target error) bool { return target == ErrTruncated }

// ErrNoPort is returned, before any frame is replayed, for a plain pcap of
// Ethernet frames replayed against a link model (Options.Links) without
// Options.Port: nothing in such a file says which port it was captured on.
var ErrNoPort = errors.New("the capture does not say which port it was captured on")

// UnmatchedPortsError is returned, after the replay, when a link model
// (Options.Links) was given and none of the capture's ports is in it:
// every frame was dropped as unknown-port.
type UnmatchedPortsError struct {
	Ports []string // the capture's ports, as far as they were named
}

func (e *UnmatchedPortsError) Error() string {
	return fmt.Sprintf("none of the capture's ports (%s) is in the link model", strings.Join(e.Ports, ", "))
}

// Options describe the switch the capture was taken on.
type Options struct {
	// SVI is the device, as named in the snapshot, that serves the captured
	// ports. Empty: the snapshot's only device.
	SVI string
	// SVIMAC is the SVI's MAC, the source of the probes.
	SVIMAC net.HardwareAddr
	// SVIAddrs are the SVI's addresses, the sources of the probes.
	SVIAddrs []netip.Prefix
	Config   engine.Config
	// Links, when set, is the switch's link model (from `ip -d -j addr
	// show` and `bridge -j vlan show`); the options above are then unused.
	// Capture ports are found by name: the pcapng interface name, or Port
	// for a plain capture; a Linux cooked v2 capture names them by index.
	Links *link.Table
	Port  string
}

// Line is the decision for one frame of the capture.
type Line struct {
	N        int // 1-based frame number
	Time     time.Time
	Decision engine.Decision
}

// Probe is a frame the daemon would have sent, and when.
type Probe struct {
	Time  time.Time
	Port  string
	Frame []byte
}

// Programmed is a binding the daemon would have programmed.
type Programmed struct {
	Dev string
	IP  netip.Addr
	MAC net.HardwareAddr
}

// Result is everything a replay decided, held in memory: Run's answer, for
// tests and small captures. Stream hands the same to a Sink as it happens.
type Result struct {
	Lines      []Line
	Reports    []engine.Report
	Probes     []Probe
	Programmed []Programmed
	Stats      map[string]uint64
}

// Sink receives what a replay decides, in the order it happens: for each
// frame, the migrations that ended and the probes retried before it (timers
// fire as the capture's time passes), then the frame's decision, then what
// that decision did (probes sent, bindings programmed, a migration ended);
// after the last frame, what the open cycles did until they ended. An
// error from a Sink stops the replay and is returned.
type Sink interface {
	Frame(Line) error
	Migration(engine.Report) error
	Probe(Probe) error
	Program(Programmed) error
}

// Sinks returns a Sink that hands every event to each of sinks in turn.
func Sinks(sinks ...Sink) Sink { return multiSink(sinks) }

type multiSink []Sink

func (m multiSink) each(f func(Sink) error) error {
	for _, s := range m {
		if err := f(s); err != nil {
			return err
		}
	}
	return nil
}

func (m multiSink) Frame(l Line) error {
	return m.each(func(s Sink) error { return s.Frame(l) })
}

func (m multiSink) Migration(r engine.Report) error {
	return m.each(func(s Sink) error { return s.Migration(r) })
}

func (m multiSink) Probe(p Probe) error {
	return m.each(func(s Sink) error { return s.Probe(p) })
}

func (m multiSink) Program(p Programmed) error {
	return m.each(func(s Sink) error { return s.Program(p) })
}

// collector is the Sink behind Run.
type collector Result

func (c *collector) Frame(l Line) error { c.Lines = append(c.Lines, l); return nil }

func (c *collector) Migration(r engine.Report) error { c.Reports = append(c.Reports, r); return nil }

func (c *collector) Probe(p Probe) error { c.Probes = append(c.Probes, p); return nil }

func (c *collector) Program(p Programmed) error {
	c.Programmed = append(c.Programmed, p)
	return nil
}

// portBase offsets the interface indexes replay gives capture ports, so they
// never collide with the SVIs it numbers from 1.
const portBase = 1_000_000

// event is something the engine did while deciding a frame, held until the
// frame's decision has been handed on.
type event struct {
	probe  *Probe
	prog   *Programmed
	report *engine.Report
}

// recorder stands in for the capture manager and the kernel: it hands what
// would have been sent and programmed to the sink, and programs nothing. A
// sink's error is kept for Stream to return (the engine would count it as
// a failed send).
type recorder struct {
	sink  Sink
	now   time.Time
	links *link.Table
	hold  bool    // within Handle: queue events until the frame's line
	held  []event // bounded by what one frame can do
	err   error
}

func (s *recorder) name(ifindex int) string {
	if l, ok := s.links.Get(ifindex); ok {
		return l.Name
	}
	return fmt.Sprintf("ifindex%d", ifindex)
}

func (s *recorder) emit(ev event) {
	if s.err != nil {
		return
	}
	if s.hold {
		s.held = append(s.held, ev)
		return
	}
	switch {
	case ev.probe != nil:
		s.err = s.sink.Probe(*ev.probe)
	case ev.prog != nil:
		s.err = s.sink.Program(*ev.prog)
	case ev.report != nil:
		s.err = s.sink.Migration(*ev.report)
	}
}

// release hands on the events held while deciding a frame.
func (s *recorder) release() error {
	s.hold = false
	for i, ev := range s.held {
		s.emit(ev)
		s.held[i] = event{}
	}
	s.held = s.held[:0]
	return s.err
}

func (s *recorder) Send(ifindex int, frame []byte) error {
	s.emit(event{probe: &Probe{Time: s.now, Port: s.name(ifindex), Frame: frame}})
	return nil
}

func (s *recorder) Program(ifindex int, ip netip.Addr, mac net.HardwareAddr) error {
	s.emit(event{prog: &Programmed{Dev: s.name(ifindex), IP: ip, MAC: mac}})
	return nil
}

func (s *recorder) report(r engine.Report) { s.emit(event{report: &r}) }

// Run replays the capture in r against the neighbor snapshot and returns
// everything it decided. It holds every frame's decision: use Stream for
// captures of any size.
func Run(r io.Reader, neighbors []Neighbor, o Options, log *slog.Logger) (Result, error) {
	var res Result
	stats, err := Stream(context.Background(), r, neighbors, o, log, (*collector)(&res))
	res.Stats = stats
	return res, err
}

// Stream replays the capture in r against the neighbor snapshot, handing
// each decision and what it did to sink as it happens (see Sink), and
// holding nothing per frame: memory does not grow with the capture. It
// stops with ctx's error when ctx is done (checked before each frame; a
// read that blocks is the caller's to abandon). It returns the engine's
// counters. For a capture cut short it replays every complete frame, runs
// the open probe cycles to their end, and then returns a *TruncatedError
// (ErrTruncated); for input that is not a capture, ErrNotCapture.
func Stream(ctx context.Context, r io.Reader, neighbors []Neighbor, o Options, log *slog.Logger, sink Sink) (map[string]uint64, error) {
	src, err := open(r)
	if err != nil {
		return nil, err
	}
	if o.Links != nil && o.Port == "" && src.ng == nil && src.lt != layers.LinkTypeLinuxSLL2 {
		return nil, ErrNoPort
	}
	links, svi, err := o.Links, 0, error(nil)
	if links == nil {
		if links, svi, err = switchModel(neighbors, o); err != nil {
			return nil, err
		}
	}
	mirror := neigh.NewMirror(time.Duration(1<<63 - 1))
	for _, n := range neighbors {
		if e, ok := n.entry(links); ok {
			if n.Remembered {
				mirror.Update(e)
				mirror.Delete(e)
			} else {
				mirror.Update(e)
			}
		}
	}
	rec := &recorder{sink: sink, links: links}
	eng := engine.New(o.Config, links, mirror, rec, rec, log, rec.report)
	// advance fires due timers one at a time, so each retry is recorded at
	// the time the daemon would have sent it.
	advance := func(to time.Time) error {
		for next, ok := eng.Next(); ok && !next.After(to) && rec.err == nil; next, ok = eng.Next() {
			rec.now = next
			eng.Advance(next)
		}
		return rec.err
	}
	var last time.Time
	var cut error
	matched, unmatched := false, []string(nil) // with o.Links: the capture's ports found in it, and some not
	for n := 1; ; n++ {
		if err := ctx.Err(); err != nil {
			return eng.Stats().Snapshot().Flat(), err
		}
		data, ci, err := src.ReadPacketData()
		if err != nil {
			if cut = src.truncated(n-1, ci, err); cut != nil {
				break
			}
			if errors.Is(err, io.EOF) {
				break
			}
			return eng.Stats().Snapshot().Flat(), fmt.Errorf("frame %d: %w", n, err)
		}
		lt, name, ifindex := src.port(ci, data)
		if o.Links != nil {
			idx := ifindex - portBase
			ifindex = realPort(links, lt, name, idx, o.Port)
			if _, ok := links.Get(ifindex); ok {
				matched = true
			} else if !matched && len(unmatched) < 8 {
				if lt == layers.LinkTypeLinuxSLL2 {
					name = fmt.Sprintf("ifindex %d", idx)
				} else if name == "capture" {
					name = o.Port
				}
				if !slices.Contains(unmatched, name) {
					unmatched = append(unmatched, name)
				}
			}
		} else if _, ok := links.Get(ifindex); !ok {
			links.Set(link.Link{Index: ifindex, Name: name, Kind: "veth", MAC: net.HardwareAddr{2, 0, 0, 0, 0, 0xfe}, MasterIndex: svi, Up: true})
		}
		if err := advance(ci.Timestamp); err != nil {
			return eng.Stats().Snapshot().Flat(), err
		}
		rec.now, last = ci.Timestamp, ci.Timestamp
		rec.hold = true
		d := eng.Process(ci.Timestamp, engine.Packet{Data: data, LinkType: lt, IfIndex: ifindex, Time: ci.Timestamp})
		if err := sink.Frame(Line{N: n, Time: ci.Timestamp, Decision: d}); err != nil {
			return eng.Stats().Snapshot().Flat(), err
		}
		if err := rec.release(); err != nil {
			return eng.Stats().Snapshot().Flat(), err
		}
	}
	// Let every open cycle run to its end, as the daemon would have.
	if err = advance(last.Add(24 * time.Hour)); err == nil {
		err = cut
		if o.Links != nil && !matched && len(unmatched) > 0 {
			err = &UnmatchedPortsError{Ports: unmatched}
		}
	}
	return eng.Stats().Snapshot().Flat(), err
}

// realPort finds a frame's port in a real link model: by the interface
// index a cooked v2 header recorded, else by the pcapng interface name, else
// the port named for a plain capture. 0 when none matches (the engine then
// drops the frame as unknown-port).
func realPort(links *link.Table, lt layers.LinkType, name string, idx int, port string) int {
	if lt == layers.LinkTypeLinuxSLL2 {
		return idx
	}
	if name == "capture" {
		name = port
	}
	if l, ok := links.ByName(name); ok {
		return l.Index
	}
	return 0
}

// switchModel builds the link table of the replayed switch: one bridge per
// device the snapshot names, the SVI among them carrying o's MAC and
// addresses. Capture ports are added as frames name them.
func switchModel(neighbors []Neighbor, o Options) (*link.Table, int, error) {
	devs := map[string]int{}
	var names []string
	for _, n := range neighbors {
		if _, ok := devs[n.Dev]; !ok && n.Dev != "" {
			devs[n.Dev] = 0
			names = append(names, n.Dev)
		}
	}
	sort.Strings(names)
	svi := o.SVI
	switch {
	case svi == "" && len(names) == 1:
		svi = names[0]
	case svi == "" && len(names) > 1:
		return nil, 0, fmt.Errorf("the snapshot names %d devices %v: say which is the capture's SVI", len(names), names)
	case svi == "":
		svi = "svi"
	}
	if _, ok := devs[svi]; !ok {
		names = append(names, svi)
	}
	links := link.NewTable()
	sviIndex := 0
	for i, name := range names {
		l := link.Link{Index: i + 1, Name: name, Kind: "bridge", MAC: net.HardwareAddr{2, 0, 0, 0, 0, byte(i + 1)}, Up: true}
		if name == svi {
			l.MAC, l.Addrs, sviIndex = o.SVIMAC, o.SVIAddrs, i+1
		}
		links.Set(l)
	}
	return links, sviIndex, nil
}

type source struct {
	gopacket.PacketDataSource
	lt layers.LinkType
	ng *pcapgo.NgReader
}

// port names the port a frame came in on: the pcapng interface it was
// captured on, the interface index of a Linux cooked v2 header, or the one
// port of a plain capture.
func (s source) port(ci gopacket.CaptureInfo, data []byte) (layers.LinkType, string, int) {
	lt, name, idx := s.lt, "capture", 0
	if s.ng != nil {
		idx = ci.InterfaceIndex
		if ifc, err := s.ng.Interface(ci.InterfaceIndex); err == nil {
			lt = ifc.LinkType
			if ifc.Name != "" {
				name = ifc.Name
			} else {
				name = fmt.Sprintf("if%d", ci.InterfaceIndex)
			}
		}
	}
	if lt == layers.LinkTypeLinuxSLL2 && len(data) >= 8 {
		idx, _ = packet.SLL2IfIndex(data)
		name = fmt.Sprintf("%s-ifindex%d", name, idx)
	}
	return lt, name, portBase + idx
}

// truncated returns a *TruncatedError when err, from reading the record
// after frame complete, means the file ends inside that record; nil for
// the clean end of the file (io.EOF before a record's first byte) and for
// any other error. A pcap record's data cut before its first byte also
// reads as io.EOF, but after a record header: ci carries its length.
func (s source) truncated(complete int, ci gopacket.CaptureInfo, err error) error {
	eof := errors.Is(err, io.EOF)
	if !eof && !errors.Is(err, io.ErrUnexpectedEOF) {
		return nil
	}
	switch {
	case s.ng != nil && eof:
		return nil
	case s.ng != nil:
		return &TruncatedError{Frames: complete, Part: "block"}
	case ci.CaptureLength > 0 || ci.Length > 0 || !ci.Timestamp.IsZero():
		return &TruncatedError{Frames: complete, Part: "record data"}
	case eof:
		return nil
	}
	return &TruncatedError{Frames: complete, Part: "record header"}
}

// pcap and pcapng magic numbers, as the first four bytes of a file.
var magics = [][]byte{
	{0xa1, 0xb2, 0xc3, 0xd4}, {0xd4, 0xc3, 0xb2, 0xa1}, // microseconds
	{0xa1, 0xb2, 0x3c, 0x4d}, {0x4d, 0x3c, 0xb2, 0xa1}, // nanoseconds
	{0x0a, 0x0d, 0x0d, 0x0a}, // pcapng section header block
}

func open(r io.Reader) (source, error) {
	br := bufio.NewReader(r)
	magic, err := br.Peek(4)
	switch {
	case errors.Is(err, io.EOF):
		return source{}, fmt.Errorf("%w: %d bytes long", ErrNotCapture, len(magic))
	case err != nil:
		return source{}, err
	}
	gzipped := bytes.HasPrefix(magic, []byte{0x1f, 0x8b}) // pcapgo reads gzipped pcap
	if !gzipped && !slices.ContainsFunc(magics, func(m []byte) bool { return bytes.Equal(magic, m) }) {
		return source{}, fmt.Errorf("%w: it starts with % x", ErrNotCapture, magic)
	}
	// A file that starts as a capture and ends inside its file header is
	// a capture cut short, not something else.
	fail := func(err error) (source, error) {
		if errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, io.EOF) {
			return source{}, &TruncatedError{Part: "file header"}
		}
		return source{}, fmt.Errorf("%w: %v", ErrNotCapture, err)
	}
	if bytes.Equal(magic, []byte{0x0a, 0x0d, 0x0d, 0x0a}) {
		ng, err := pcapgo.NewNgReader(br, pcapgo.DefaultNgReaderOptions)
		if err != nil {
			return fail(err)
		}
		return source{PacketDataSource: ng, lt: ng.LinkType(), ng: ng}, nil
	}
	pr, err := pcapgo.NewReader(br)
	if err != nil {
		return fail(err)
	}
	return source{PacketDataSource: pr, lt: pr.LinkType()}, nil
}
