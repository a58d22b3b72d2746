package replay

import (
	"bytes"
	"errors"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
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
		if err != nil && !errors.Is(err, ErrTruncated) { // a capture cut short was replayed all the same
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

// FuzzLoadDumps feeds arbitrary bytes to the loaders of the switch's
// dumps (--links, --bridge-vlans, --neigh): an error or a result, never a
// panic, and an error speaks of the dump, never of Go's types.
func FuzzLoadDumps(f *testing.F) {
	for _, layout := range []string{"cumulus", "sonic"} {
		for _, name := range []string{"links.json", "bridge-vlan.json", "neigh.json"} {
			f.Add(mustRead(f, filepath.Join("..", "pcaps", "layouts", layout, name)))
		}
	}
	f.Add([]byte(`[{"ifindex":"1"}]`))
	f.Add([]byte(`[{"ifname":"swp1","vlans":[{"vlan":1e99}]}]`))
	f.Fuzz(func(t *testing.T, data []byte) {
		var errs []error
		if _, err := LoadLinks(bytes.NewReader(data)); err != nil {
			errs = append(errs, err)
		}
		if _, err := LoadBridgeVLANs(bytes.NewReader(data)); err != nil {
			errs = append(errs, err)
		}
		if _, err := LoadNeighbors(bytes.NewReader(data)); err != nil {
			errs = append(errs, err)
		}
		for _, err := range errs {
			for _, goism := range []string{"Go struct", "Go value", "unmarshal", "strconv.", "json: ", "reflect", "link.", "[]"} {
				if strings.Contains(err.Error(), goism) && !bytes.Contains(data, []byte(goism)) { // not quoting the input
					t.Fatalf("error %q speaks Go (%q)", err, goism)
				}
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
