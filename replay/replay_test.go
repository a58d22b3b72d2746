package replay

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"
	"github.com/gopacket/gopacket/pcapgo"
	"github.com/rarp-replay/rarp-replay/internal/engine"
	"github.com/rarp-replay/rarp-replay/internal/packet"
)

const snapshot = `[
 {"dst":"192.0.2.10","dev":"br10","lladdr":"02:00:5e:10:00:0a","extern_learn":null,"state":["NOARP"]},
 {"dst":"192.0.2.99","dev":"br10","lladdr":"02:00:5e:10:00:0a","extern_learn":null,"state":["NOARP"]},
 {"dst":"2001:db8:10::10","dev":"br10","lladdr":"02:00:5e:10:00:0a","state":["REACHABLE"]},
 {"dst":"192.0.2.20","dev":"br10","lladdr":"02:00:5e:10:00:14","state":["STALE"]},
 {"dst":"192.0.2.30","dev":"br10","state":["FAILED"]}
]`

var (
	vm  = net.HardwareAddr{2, 0, 0x5e, 0x10, 0, 0x0a}
	svi = net.HardwareAddr{2, 0, 0x5e, 0x10, 0, 0x01}
)

func TestLoadNeighbors(t *testing.T) {
	got, err := LoadNeighbors(strings.NewReader(snapshot))
	if err != nil {
		t.Fatal(err)
	}
	want := []Neighbor{
		{Dst: "192.0.2.10", Dev: "br10", LLAddr: "02:00:5e:10:00:0a", State: []string{"NOARP"}, ExternLearn: true},
		{Dst: "192.0.2.99", Dev: "br10", LLAddr: "02:00:5e:10:00:0a", State: []string{"NOARP"}, ExternLearn: true},
		{Dst: "2001:db8:10::10", Dev: "br10", LLAddr: "02:00:5e:10:00:0a", State: []string{"REACHABLE"}},
		{Dst: "192.0.2.20", Dev: "br10", LLAddr: "02:00:5e:10:00:14", State: []string{"STALE"}},
		{Dst: "192.0.2.30", Dev: "br10", State: []string{"FAILED"}},
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}
	if _, err := LoadNeighbors(strings.NewReader(`{"not":"a list"}`)); err == nil {
		t.Error("LoadNeighbors accepted an object")
	}
}

// TestDumpErrors: a dump of the wrong kind, or a malformed one, is refused
// saying which kind it is, or what is wrong where, in the dump's terms:
// never Go's type names.
func TestDumpErrors(t *testing.T) {
	neighDump := `[{"dst":"192.0.2.10","dev":"br10","lladdr":"02:00:5e:10:00:0a","state":["REACHABLE"]}]`
	linkDump := `[{"ifindex":1,"ifname":"br10","flags":["UP"],"address":"02:00:5e:10:00:01","linkinfo":{"info_kind":"bridge"}}]`
	vlanDump := `[{"ifname":"swp1","vlans":[{"vlan":10,"flags":["PVID","Egress Untagged"]}]}]`
	fdbDump := `[{"mac":"02:00:5e:10:00:0a","ifname":"swp1","master":"br10","state":""}]`
	routeDump := `[{"dst":"192.0.2.0/24","dev":"br10","protocol":"kernel","scope":"link","prefsrc":"192.0.2.1","flags":[]}]`
	stateV1 := `[{"dev":"br10","mac":"02:00:5e:10:00:0a","ip":"192.0.2.10","seen":"2026-01-01T00:00:00Z"}]`
	neighbors := func(r io.Reader) error { _, err := LoadNeighbors(r); return err }
	links := func(r io.Reader) error { _, err := LoadLinks(r); return err }
	vlans := func(r io.Reader) error { _, err := LoadBridgeVLANs(r); return err }
	tests := []struct {
		name string
		load func(io.Reader) error
		in   string
		want string // "" for no error
	}{
		{"neighbors", neighbors, neighDump, ""},
		{"links", links, linkDump, ""},
		{"bridge vlans", vlans, vlanDump, ""},
		{"neighbors given links", neighbors, linkDump, "this is an interface dump (`ip -d -j addr show` or `ip -d -j link show`), not a neighbor table"},
		{"neighbors given bridge vlans", neighbors, vlanDump, "this is a bridge VLAN dump"},
		{"neighbors given fdb", neighbors, fdbDump, "this is a bridge FDB dump (`bridge -j fdb show`)"},
		{"neighbors given routes", neighbors, routeDump, "this is a route table (`ip -j route show`)"},
		{"neighbors given the state file", neighbors, stateV1, "this is a rarp-replay state file"},
		{"neighbors: no device", neighbors, `[{"dst":"192.0.2.10","lladdr":"02:00:5e:10:00:0a"}]`, "entry 1 (192.0.2.10) names no device"},
		{"neighbors: dst not an address", neighbors, `[{"dst":"192.0.2.300","dev":"br10"}]`, `entry 1: "dst" "192.0.2.300" is not an IP address`},
		{"neighbors: dst a number", neighbors, `[{"dst":5,"dev":"br10"}]`, `entry 1: "dst" is a number, want a string`},
		{"neighbors: state a string", neighbors, `[{"dst":"192.0.2.1","dev":"br10","state":"STALE"}]`, `entry 1: "state" is a string, want an array`},
		{"neighbors: unknown entry", neighbors, `[{"x":1}]`, "entry 1 is not from a neighbor table"},
		{"neighbors: not an object", neighbors, `[1]`, "an entry is a number, want an object"},
		{"neighbors: cut JSON", neighbors, `[{"dst":`, "not valid JSON at byte"},
		{"links given neighbors", links, neighDump, "this is a neighbor table (`ip -j neigh show`), not an interface dump"},
		{"links given bridge vlans", links, vlanDump, "this is a bridge VLAN dump (`bridge -j vlan show`), not an interface dump"},
		{"links given /proc/net/arp", links, "IP address       HW type     Flags       HW address            Mask     Device\n", "not JSON, want an interface dump"},
		{"links: empty file", links, "", "empty, want an interface dump"},
		{"links: no links", links, "[]", "no entries"},
		{"links: an object", links, `{"ifindex":1}`, "a JSON object; want an interface dump"},
		{"links: without -d", links, `[{"ifindex":2,"ifname":"swp1","master":"br10"},{"ifindex":1,"ifname":"br10"}]`, "dump with `ip -d -j addr show`, with -d"},
		{"links: ifindex a string", links, `[{"ifindex":1,"ifname":"lo"},{"ifindex":"2","ifname":"swp1"}]`, `entry 2 (swp1): "ifindex" is a string, want an integer`},
		{"links: vlan id too large", links, `[{"ifindex":1,"ifname":"v","linkinfo":{"info_kind":"vlan","info_data":{"id":1e99}}}]`, `entry 1 (v): "linkinfo.info_data.id" is 1e99, want an integer`},
		{"links: bad STP state", links, `[{"ifindex":1,"ifname":"swp1","linkinfo":{"info_slave_kind":"bridge","info_slave_data":{"state":"dancing"}}}]`, `swp1: bridge port state "dancing"`},
		{"bridge vlans given links", vlans, linkDump, "this is an interface dump"},
		{"bridge vlans given neighbors", vlans, neighDump, "this is a neighbor table"},
		{"bridge vlans: vlan a string", vlans, `[{"ifname":"swp1","vlans":[{"vlan":"10"}]}]`, `entry 1 (swp1): "vlans.vlan" is a string, want an integer`},
		{"bridge vlans: vlan out of range", vlans, `[{"ifname":"swp1","vlans":[{"vlan":4095}]}]`, "swp1: VLAN 4095-4095"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.load(strings.NewReader(tt.in))
			if tt.want == "" {
				if err != nil {
					t.Fatalf("error %v", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("error %v, want one containing %q", err, tt.want)
			}
			for _, goism := range []string{"Go struct", "Go value", "unmarshal", "strconv.", "json:", "[]link.", "ipLinkJSON"} {
				if strings.Contains(err.Error(), goism) {
					t.Errorf("error %q speaks Go (%q)", err, goism)
				}
			}
		})
	}
}

type frame struct {
	at   time.Duration
	data []byte
}

func writePcap(t *testing.T, frames []frame) *bytes.Buffer {
	t.Helper()
	var buf bytes.Buffer
	w := pcapgo.NewWriter(&buf)
	if err := w.WriteFileHeader(65535, layers.LinkTypeEthernet); err != nil {
		t.Fatal(err)
	}
	t0 := time.Unix(1_700_000_000, 0)
	for _, f := range frames {
		ci := gopacket.CaptureInfo{Timestamp: t0.Add(f.at), CaptureLength: len(f.data), Length: len(f.data)}
		if err := w.WritePacket(ci, f.data); err != nil {
			t.Fatal(err)
		}
	}
	return &buf
}

func arpReply(t *testing.T, ip string) []byte {
	t.Helper()
	b, err := packet.BuildReply(packet.Reply{MAC: vm, IP: netip.MustParseAddr(ip), DstMAC: svi, DstIP: netip.MustParseAddr("192.0.2.1")})
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestReplayMigration replays a QEMU announcement followed by the VM's reply
// for one of its addresses, and checks the decisions and the migration.
func TestReplayMigration(t *testing.T) {
	r, _ := packet.BuildRARP(vm, nil)
	capture := writePcap(t, []frame{
		{0, r},
		{2 * time.Millisecond, arpReply(t, "192.0.2.10")},
		{50 * time.Millisecond, r},
		{60 * time.Millisecond, r[:20]},
	})
	neighbors, err := LoadNeighbors(strings.NewReader(snapshot))
	if err != nil {
		t.Fatal(err)
	}
	res, err := Run(capture, neighbors, Options{SVIMAC: svi, SVIAddrs: []netip.Prefix{netip.MustParsePrefix("192.0.2.1/24")}, Config: engine.DefaultConfig},
		slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, l := range res.Lines {
		s := string(l.Decision.Verdict)
		if l.Decision.Reason != "" {
			s += " " + l.Decision.Reason
		}
		got = append(got, s)
	}
	if diff := cmp.Diff([]string{"probe", "verified", "duplicate", "drop truncated"}, got); diff != "" {
		t.Errorf("decisions (-want +got):\n%s", diff)
	}
	if len(res.Reports) != 1 {
		t.Fatalf("%d migrations, want 1", len(res.Reports))
	}
	rep := res.Reports[0]
	if got := rep.String(); !strings.Contains(got, "verified=[192.0.2.10] failed=[192.0.2.99 2001:db8:10::10]") {
		t.Errorf("migration = %s", got)
	}
	// 3 first probes, then 2 unanswered addresses x 3 retries.
	if got := len(res.Probes); got != 3+2*engine.DefaultConfig.Retries {
		t.Errorf("%d probes would have been sent, want %d", got, 3+2*engine.DefaultConfig.Retries)
	}
}

func TestReplayRejectsNonCapture(t *testing.T) {
	for name, in := range map[string]string{"empty": "", "text": "this is not a capture file"} {
		if _, err := Run(strings.NewReader(in), nil, Options{}, slog.New(slog.NewTextHandler(io.Discard, nil))); !errors.Is(err, ErrNotCapture) {
			t.Errorf("%s: error %v, want ErrNotCapture", name, err)
		}
	}
}

// TestReplayFixture replays a capture taken on a live access port while
// `listen` handled a migration, and checks that the replay reaches the
// verdicts the daemon reached live: three addresses verified by the VM's own
// replies, 192.0.2.99 (bound to the MAC, not owned by the VM) failed, and
// the four later RARPs folded into the one cycle.
func TestReplayFixture(t *testing.T) {
	f, err := os.Open("../pcaps/migration.pcap")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	nf, err := os.Open("../pcaps/migration.neigh.json")
	if err != nil {
		t.Fatal(err)
	}
	defer nf.Close()
	neighbors, err := LoadNeighbors(nf)
	if err != nil {
		t.Fatal(err)
	}
	res, err := Run(f, neighbors, Options{SVIMAC: svi, Config: engine.DefaultConfig,
		SVIAddrs: []netip.Prefix{netip.MustParsePrefix("192.0.2.1/24"), netip.MustParsePrefix("2001:db8:10::1/64")}},
		slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	verdicts := map[engine.Verdict]int{}
	for _, l := range res.Lines {
		verdicts[l.Decision.Verdict]++
	}
	if diff := cmp.Diff(map[engine.Verdict]int{engine.VerdictProbe: 1, engine.VerdictVerified: 3, engine.VerdictDuplicate: 4}, verdicts); diff != "" {
		t.Errorf("verdicts (-want +got):\n%s", diff)
	}
	if len(res.Reports) != 1 {
		t.Fatalf("%d migrations, want 1", len(res.Reports))
	}
	if got, want := res.Reports[0].String(), "verified=[192.0.2.10 192.0.2.11 2001:db8:10::10] failed=[192.0.2.99]"; !strings.Contains(got, want) {
		t.Errorf("migration %s, want %s", got, want)
	}
	if res.Reports[0].SVI != "br10" {
		t.Errorf("SVI %q, want br10 (the snapshot's only device)", res.Reports[0].SVI)
	}
}

// largeCapture writes a capture of n frames, 1 ms apart, to a temporary
// file: every 5 s a migration of vm (a RARP, the VM's reply for 192.0.2.10,
// the other addresses failing after their retries), and in between
// duplicate RARPs, truncated frames and unsolicited replies.
func largeCapture(t *testing.T, n int) string {
	t.Helper()
	rarp, _ := packet.BuildRARP(vm, nil)
	reply, other := arpReply(t, "192.0.2.10"), arpReply(t, "192.0.2.20")
	path := filepath.Join(t.TempDir(), "large.pcap")
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	bw := bufio.NewWriter(f)
	w := pcapgo.NewWriter(bw)
	if err := w.WriteFileHeader(65535, layers.LinkTypeEthernet); err != nil {
		t.Fatal(err)
	}
	t0 := time.Unix(1_700_000_000, 0)
	for k := 0; k < n; k++ {
		data := rarp
		switch {
		case k%5000 == 0:
		case k%5000 == 1:
			data = reply
		case k%3 == 0:
			data = rarp[:20]
		case k%3 == 2:
			data = other
		}
		ci := gopacket.CaptureInfo{Timestamp: t0.Add(time.Duration(k) * time.Millisecond), CaptureLength: len(data), Length: len(data)}
		if err := w.WritePacket(ci, data); err != nil {
			t.Fatal(err)
		}
	}
	if err := bw.Flush(); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	return path
}

// peakHeap runs f while sampling the heap in use every millisecond, and
// returns the highest sample above the heap in use before f, and the bytes
// f allocated.
func peakHeap(f func()) (peak, alloc uint64) {
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	base, total := ms.HeapInuse, ms.TotalAlloc
	stop, done := make(chan struct{}), make(chan uint64)
	go func() {
		var ms runtime.MemStats
		var max uint64
		tick := time.NewTicker(time.Millisecond)
		defer tick.Stop()
		for {
			runtime.ReadMemStats(&ms)
			max = maxU(max, ms.HeapInuse)
			select {
			case <-stop:
				done <- max
				return
			case <-tick.C:
			}
		}
	}()
	f()
	close(stop)
	max := <-done
	runtime.ReadMemStats(&ms)
	if max < base {
		return 0, ms.TotalAlloc - total
	}
	return max - base, ms.TotalAlloc - total
}

func maxU(a, b uint64) uint64 {
	if a > b {
		return a
	}
	return b
}

// TestReplayMemory replays 200,000 frames to every output at once (text,
// JSON lines, probes pcap) and checks that the heap stays bounded: a replay
// streams, it holds nothing per frame. Holding every frame's result, as
// replay did before it streamed, took about 150 MB of heap here (some 780
// bytes a frame).
func TestReplayMemory(t *testing.T) {
	if testing.Short() {
		t.Skip("replays 200,000 frames")
	}
	const frames = 200_000
	path := largeCapture(t, frames)
	neighbors, err := LoadNeighbors(strings.NewReader(snapshot))
	if err != nil {
		t.Fatal(err)
	}
	// The capture spaces its migrations for cycles that end 3 s after the
	// RARP (200 ms doubling, 3 retries).
	cfg := engine.DefaultConfig
	cfg.Retries, cfg.MaxProbeTimeout = 3, 0
	opts := Options{SVIMAC: svi, SVIAddrs: []netip.Prefix{netip.MustParsePrefix("192.0.2.1/24"), netip.MustParsePrefix("2001:db8:10::1/64")}, Config: cfg}
	text, jsonl, pcap := &countingWriter{}, &countingWriter{}, &countingWriter{}
	peak, alloc := peakHeap(func() {
		f, err := os.Open(path)
		if err != nil {
			t.Error(err)
			return
		}
		defer f.Close()
		pw, err := NewProbeWriter(pcap)
		if err != nil {
			t.Error(err)
			return
		}
		if _, err := Stream(context.Background(), f, neighbors, opts, slog.New(slog.NewTextHandler(io.Discard, nil)),
			Sinks(NewTextWriter(text), NewJSONWriter(jsonl), pw)); err != nil {
			t.Error(err)
		}
	})
	t.Logf("%d frames: peak heap in use %.1f MB above the start, %.0f bytes allocated per frame; %d text lines, %d JSON lines, %d bytes of probes",
		frames, float64(peak)/(1<<20), float64(alloc)/frames, text.lines, jsonl.lines, pcap.bytes)
	// A migration every 5,000 frames, each programming 192.0.2.10.
	if want := frames + 2*frames/5000; text.lines != want || jsonl.lines != want {
		t.Errorf("%d text lines, %d JSON lines, want %d", text.lines, jsonl.lines, want)
	}
	if peak > 16<<20 {
		t.Errorf("peak heap in use %.1f MB above the start, want under 16 MB: the replay holds what it decided", float64(peak)/(1<<20))
	}
}

type countingWriter struct{ lines, bytes int }

func (w *countingWriter) Write(p []byte) (int, error) {
	w.lines += bytes.Count(p, []byte{'\n'})
	w.bytes += len(p)
	return len(p), nil
}

// stopAfter is a Sink that calls stop at frame n and fails at frame fail.
type stopAfter struct {
	n, fail int
	stop    func()
	frames  int
}

func (s *stopAfter) Frame(l Line) error {
	s.frames++
	if l.N == s.n {
		s.stop()
	}
	if l.N == s.fail {
		return errSink
	}
	return nil
}

func (s *stopAfter) Migration(engine.Report) error { return nil }
func (s *stopAfter) Probe(Probe) error             { return nil }
func (s *stopAfter) Program(Programmed) error      { return nil }

var errSink = errors.New("sink failed")

// TestStreamStops checks that a replay stops before the next frame when
// its context is done, and at once when its sink fails, returning why.
func TestStreamStops(t *testing.T) {
	r, _ := packet.BuildRARP(vm, nil)
	var frames []frame
	for i := range 10 {
		frames = append(frames, frame{time.Duration(i) * time.Millisecond, r})
	}
	capture := writePcap(t, frames).Bytes()
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	s := &stopAfter{n: 3, stop: cancel}
	if _, err := Stream(ctx, bytes.NewReader(capture), nil, Options{}, log, s); !errors.Is(err, context.Canceled) || s.frames != 3 {
		t.Errorf("cancelled at frame 3: %d frames, error %v", s.frames, err)
	}
	s = &stopAfter{fail: 4, stop: func() {}}
	if _, err := Stream(context.Background(), bytes.NewReader(capture), nil, Options{}, log, s); !errors.Is(err, errSink) || s.frames != 4 {
		t.Errorf("sink failed at frame 4: %d frames, error %v", s.frames, err)
	}
}
