package replay

import (
	"bytes"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"os"
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
