package replay

import (
	"bytes"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"testing"
)

func seedCaptures(f *testing.F) {
	caps, _ := filepath.Glob(filepath.Join(corpusDir, "*.pcap*"))
	caps = append(caps, "../pcaps/migration.pcap")
	for _, c := range caps {
		if b, err := os.ReadFile(c); err == nil {
			f.Add(b)
		}
	}
}

// FuzzReplayCapture feeds arbitrary bytes to the capture reader and the
// whole decision path behind it: it must return an error or a result, never
// panic or hang, and every migration it reports must have been started by
// a decision in the result.
func FuzzReplayCapture(f *testing.F) {
	seedCaptures(f)
	neighbors, err := LoadNeighbors(bytes.NewReader(mustRead(f, filepath.Join(corpusDir, "neigh.json"))))
	if err != nil {
		f.Fatal(err)
	}
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	f.Fuzz(func(t *testing.T, data []byte) {
		res, err := Run(bytes.NewReader(data), neighbors, corpusOptions(), log)
		if err != nil {
			return
		}
		probes := 0
		for _, l := range res.Lines {
			probes += len(l.Decision.Probes)
		}
		for _, r := range res.Reports {
			if len(r.Verified)+len(r.Failed) == 0 {
				t.Fatalf("migration with no outcome: %v", r)
			}
			if len(r.Programmed) > len(r.Verified) {
				t.Fatalf("programmed %v but verified only %v", r.Programmed, r.Verified)
			}
		}
		if len(res.Probes) < probes {
			t.Fatalf("%d probes decided, %d sent", probes, len(res.Probes))
		}
	})
}

// FuzzLoadNeighbors feeds arbitrary snapshots (both formats) to the loader:
// an error or entries, never a panic.
func FuzzLoadNeighbors(f *testing.F) {
	f.Add(mustRead(f, filepath.Join(corpusDir, "neigh.json")))
	f.Add(mustRead(f, filepath.Join(corpusDir, "neigh.arp")))
	f.Add(mustRead(f, "../pcaps/migration.neigh.json"))
	f.Add([]byte("IP address HW type\n1 2 3 4 5\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		ns, err := LoadNeighbors(bytes.NewReader(data))
		if err != nil {
			return
		}
		links, _, err := switchModel(ns, Options{SVI: "br10"})
		if err != nil {
			return
		}
		for _, n := range ns {
			if e, ok := n.entry(links); ok && (!e.IP.IsValid() || len(e.MAC) == 0) {
				t.Fatalf("entry %+v from %+v", e, n)
			}
		}
	})
}

func mustRead(f *testing.F, path string) []byte {
	b, err := os.ReadFile(path)
	if err != nil {
		f.Fatal(err)
	}
	return b
}
