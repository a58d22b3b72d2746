package replay

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/gopacket/gopacket/layers"
	"github.com/rarp-replay/rarp-replay/internal/compat"
	"github.com/rarp-replay/rarp-replay/internal/engine"
)

var update = flag.Bool("update", false, "rewrite the golden files of the pcaps/corpus replay test")

const corpusDir = "../pcaps/corpus"

// corpusOptions describe the leaf the corpus was captured on (see
// scripts/gen-pcaps).
func corpusOptions() Options {
	return Options{
		SVIMAC:   sviMACCorpus,
		SVIAddrs: []netip.Prefix{netip.MustParsePrefix("192.0.2.1/24"), netip.MustParsePrefix("2001:db8:10::1/64"), netip.MustParsePrefix("fe80::1/64")},
		Config:   engine.DefaultConfig,
	}
}

var sviMACCorpus = []byte{2, 0, 0x5e, 0x10, 0, 1}

// TestCorpus replays every capture in pcaps/corpus against the corpus
// snapshot (neigh.arp, the /proc/net/arp form, for proc-*) and compares
// decisions, migrations and the probes that would have been sent with the
// golden file beside the capture.
func TestCorpus(t *testing.T) {
	compat.Note(t, "bridge-per-vni", compat.Fixture)
	compat.Note(t, "tagged-rarp", compat.Fixture)
	caps, _ := filepath.Glob(filepath.Join(corpusDir, "*.pcap*"))
	if len(caps) < 10 {
		t.Fatalf("found %d captures in %s; regenerate with go run ./scripts/gen-pcaps", len(caps), corpusDir)
	}
	for _, path := range caps {
		name := strings.TrimSuffix(strings.TrimSuffix(filepath.Base(path), ".pcapng"), ".pcap")
		t.Run(name, func(t *testing.T) {
			snap := "neigh.json"
			if strings.HasPrefix(name, "proc-") {
				snap = "neigh.arp"
			}
			compareGolden(t, filepath.Join(corpusDir, name+".golden"), replayCorpus(t, path, filepath.Join(corpusDir, snap)))
		})
	}
}

func replayCorpus(t *testing.T, capPath, snapPath string) []byte {
	t.Helper()
	sf, err := os.Open(snapPath)
	if err != nil {
		t.Fatal(err)
	}
	defer sf.Close()
	neighbors, err := LoadNeighbors(sf)
	if err != nil {
		t.Fatal(err)
	}
	cf, err := os.Open(capPath)
	if err != nil {
		t.Fatal(err)
	}
	defer cf.Close()
	return goldenReplay(t, cf, neighbors, corpusOptions())
}

// goldenReplay replays a capture for a golden file: the text replay prints
// as it streams, then each probe as decoded independently of the engine's
// codec.
func goldenReplay(t *testing.T, r io.Reader, neighbors []Neighbor, o Options) []byte {
	t.Helper()
	var out, probes bytes.Buffer
	_, err := Stream(context.Background(), r, neighbors, o, slog.New(slog.NewTextHandler(io.Discard, nil)),
		Sinks(NewTextWriter(&out), &probeLog{w: &probes}))
	if err != nil {
		t.Fatal(err)
	}
	out.Write(probes.Bytes())
	return out.Bytes()
}

// probeLog is a Sink that describes each probe, with its time since the
// first frame.
type probeLog struct {
	w     io.Writer
	clock clock
}

func (p *probeLog) Frame(l Line) error { p.clock.since(l.Time); return nil }

func (p *probeLog) Probe(pr Probe) error {
	_, err := fmt.Fprintf(p.w, "probe +%.1fms port=%s %s\n", ms(p.clock.since(pr.Time)), pr.Port, describe(pr.Frame))
	return err
}

func (p *probeLog) Migration(engine.Report) error { return nil }

func (p *probeLog) Program(Programmed) error { return nil }

// compareGolden compares got with the golden file, or rewrites it with -update.
func compareGolden(t *testing.T, golden string, got []byte) {
	t.Helper()
	if *update {
		if err := os.WriteFile(golden, got, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(golden)
	if err != nil {
		t.Fatalf("%v (create it with go test ./replay -update)", err)
	}
	if diff := cmp.Diff(string(want), string(got)); diff != "" {
		t.Errorf("replay differs from %s (-want +got):\n%s", golden, diff)
	}
}

// describe summarises a probe frame independently of the engine's codec.
func describe(frame []byte) string {
	var eth layers.Ethernet
	if err := eth.DecodeFromBytes(frame, nil); err != nil {
		return "undecodable: " + err.Error()
	}
	s := fmt.Sprintf("%s>%s", eth.SrcMAC, eth.DstMAC)
	payload, et := eth.Payload, eth.EthernetType
	for et == layers.EthernetTypeDot1Q || et == layers.EthernetTypeQinQ {
		var tag layers.Dot1Q
		if tag.DecodeFromBytes(payload, nil) != nil {
			return s + " bad tag"
		}
		s += fmt.Sprintf(" vlan %d", tag.VLANIdentifier)
		payload, et = tag.Payload, tag.Type
	}
	switch et {
	case layers.EthernetTypeARP:
		var a layers.ARP
		if a.DecodeFromBytes(payload, nil) != nil {
			return s + " bad arp"
		}
		src, _ := netip.AddrFromSlice(a.SourceProtAddress)
		dst, _ := netip.AddrFromSlice(a.DstProtAddress)
		return fmt.Sprintf("%s arp who-has %s tell %s", s, dst, src)
	case layers.EthernetTypeIPv6:
		var ip layers.IPv6
		var ns layers.ICMPv6NeighborSolicitation
		if ip.DecodeFromBytes(payload, nil) != nil || len(ip.Payload) < 4 || ns.DecodeFromBytes(ip.Payload[4:], nil) != nil {
			return s + " bad ns"
		}
		return fmt.Sprintf("%s ns who-has %s from %s hlim %d options %d", s, ns.TargetAddress, ip.SrcIP, ip.HopLimit, len(ns.Options))
	}
	return fmt.Sprintf("%s ethertype %v", s, et)
}

// records returns the offsets at which the capture's records end, the
// offset its file header ends (the pcapng section header and first
// interface description, which the reader needs before any frame), and
// which records are frames, read from the file format by hand, not by the
// reader under test.
func records(t *testing.T, b []byte) (header int, ends []int, frames []bool) {
	t.Helper()
	if bytes.Equal(b[:4], []byte{0x0a, 0x0d, 0x0d, 0x0a}) {
		order := binary.ByteOrder(binary.LittleEndian)
		if binary.BigEndian.Uint32(b[8:12]) == 0x1a2b3c4d {
			order = binary.BigEndian
		}
		for off := 0; off < len(b); {
			typ, n := order.Uint32(b[off:]), int(order.Uint32(b[off+4:]))
			off += n
			if typ == 1 && header == 0 { // the first interface description
				header = off
				continue
			}
			if header != 0 {
				ends = append(ends, off)
				frames = append(frames, typ == 2 || typ == 3 || typ == 6) // packet, simple packet, enhanced packet
			}
		}
		return header, ends, frames
	}
	order := binary.ByteOrder(binary.LittleEndian)
	if b[0] == 0xa1 {
		order = binary.BigEndian
	}
	for off := 24; off < len(b); {
		off += 16 + int(order.Uint32(b[off+8:]))
		ends = append(ends, off)
		frames = append(frames, true)
	}
	return 24, ends, frames
}

// TestCut replays every capture of the corpus cut at every byte (the
// large flood at every record boundary and next to it). A capture cut
// inside a record replays exactly as the capture of its complete records
// does, decisions, migrations and probes alike, and then returns a
// *TruncatedError counting those frames and saying where the cut is; one
// cut at a record boundary is a complete capture; one cut inside the file
// header is a TruncatedError with no frames, and one shorter than a magic
// number is not a capture.
func TestCut(t *testing.T) {
	caps, _ := filepath.Glob(filepath.Join(corpusDir, "*.pcap*"))
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	neighbors := loadCorpusNeighbors(t)
	for _, path := range caps {
		t.Run(filepath.Base(path), func(t *testing.T) {
			data, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			header, ends, isFrame := records(t, data)
			if ends[len(ends)-1] != len(data) {
				t.Fatalf("records end at %d, file at %d", ends[len(ends)-1], len(data))
			}
			replay := func(n int) (string, error) {
				var out bytes.Buffer
				_, err := Stream(context.Background(), bytes.NewReader(data[:n]), neighbors, corpusOptions(), log,
					Sinks(NewTextWriter(&out), &probeLog{w: &out}))
				return out.String(), err
			}
			whole := map[int]string{} // replay of the capture cut at a record boundary
			for _, end := range append([]int{header}, ends...) {
				out, err := replay(end)
				if err != nil {
					t.Fatalf("cut at record boundary %d: %v", end, err)
				}
				whole[end] = out
			}
			cuts := []int{}
			for n := range len(data) {
				cuts = append(cuts, n)
			}
			if len(data) > 4096 {
				cuts = []int{0, 3, 4, 5, header - 1}
				for _, end := range ends[:len(ends)-1] {
					cuts = append(cuts, end-1, end+1, end+15, end+16, end+17)
				}
			}
			for _, n := range cuts {
				out, err := replay(n)
				switch {
				case n < 4:
					if !errors.Is(err, ErrNotCapture) {
						t.Errorf("%d bytes: error %v, want ErrNotCapture", n, err)
					}
					continue
				case n < header:
					if diff := cmp.Diff(&TruncatedError{Part: "file header"}, err); diff != "" {
						t.Errorf("%d bytes: error (-want +got)\n%s", n, diff)
					}
					continue
				}
				if _, ok := whole[n]; ok {
					continue // a boundary, replayed above
				}
				prev, frames := header, 0
				for i, end := range ends {
					if end > n {
						break
					}
					prev = end
					if isFrame[i] {
						frames++
					}
				}
				part := "block"
				if !bytes.Equal(data[:4], []byte{0x0a, 0x0d, 0x0d, 0x0a}) {
					part = "record header"
					if n-prev >= 16 {
						part = "record data"
					}
				}
				want := &TruncatedError{Frames: frames, Part: part}
				if diff := cmp.Diff(want, err); diff != "" {
					t.Errorf("%d bytes: error (-want +got)\n%s", n, diff)
				}
				if !errors.Is(err, ErrTruncated) {
					t.Errorf("%d bytes: errors.Is(%v, ErrTruncated) is false", n, err)
				}
				if diff := cmp.Diff(whole[prev], out); diff != "" {
					t.Errorf("%d bytes: replay differs from the capture of its %d complete records (-want +got)\n%s", n, frames, diff)
				}
			}
		})
	}
}

func loadCorpusNeighbors(t *testing.T) []Neighbor {
	t.Helper()
	f, err := os.Open(filepath.Join(corpusDir, "neigh.json"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	neighbors, err := LoadNeighbors(f)
	if err != nil {
		t.Fatal(err)
	}
	return neighbors
}

// TestCutFixtures replays the captures cut short in pcaps/cut (written by
// scripts/gen-pcaps from the corpus): each is a prefix of its corpus
// capture, and replays to a TruncatedError saying where it ends.
func TestCutFixtures(t *testing.T) {
	neighbors := loadCorpusNeighbors(t)
	for _, tt := range []struct {
		file, from string
		want       *TruncatedError
	}{
		{"qemu-announce-cut-data.pcap", "qemu-announce.pcap", &TruncatedError{Frames: 7, Part: "record data"}},
		{"qemu-announce-cut-header.pcap", "qemu-announce.pcap", &TruncatedError{Frames: 7, Part: "record header"}},
		{"multi-interface-cut.pcapng", "multi-interface.pcapng", &TruncatedError{Frames: 5, Part: "block"}},
	} {
		t.Run(tt.file, func(t *testing.T) {
			cut, err := os.ReadFile(filepath.Join("..", "pcaps", "cut", tt.file))
			if err != nil {
				t.Fatal(err)
			}
			whole, err := os.ReadFile(filepath.Join(corpusDir, tt.from))
			if err != nil {
				t.Fatal(err)
			}
			if len(cut) >= len(whole) || !bytes.Equal(cut, whole[:len(cut)]) {
				t.Fatalf("%s is not %s cut short; regenerate with go run ./scripts/gen-pcaps", tt.file, tt.from)
			}
			var out bytes.Buffer
			_, err = Stream(context.Background(), bytes.NewReader(cut), neighbors, corpusOptions(), slog.New(slog.NewTextHandler(io.Discard, nil)), NewTextWriter(&out))
			if diff := cmp.Diff(tt.want, err); diff != "" {
				t.Errorf("error (-want +got)\n%s", diff)
			}
			if n := strings.Count(out.String(), "\n#"); n+1 != tt.want.Frames {
				t.Errorf("%d frames replayed, want %d:\n%s", n+1, tt.want.Frames, out.String())
			}
			if !strings.Contains(out.String(), "\nmigration ") {
				t.Errorf("no migration reported:\n%s", out.String())
			}
		})
	}
}
