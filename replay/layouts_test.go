package replay

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/rarp-replay/rarp-replay/internal/compat"
	"github.com/rarp-replay/rarp-replay/internal/engine"
	"github.com/rarp-replay/rarp-replay/internal/link"
)

// TestLayouts replays tagged migrations on the Cumulus-style and SONiC-style
// VLAN-aware leaves in pcaps/layouts against their link fixtures, and
// compares decisions, probes (port, tag, source address and MAC) and the
// bindings programmed (and on which device) with the golden files.
func TestLayouts(t *testing.T) {
	dirs, _ := filepath.Glob("../pcaps/layouts/*")
	if len(dirs) < 2 {
		t.Fatalf("found %d layouts", len(dirs))
	}
	for _, dir := range dirs {
		t.Run(filepath.Base(dir), func(t *testing.T) {
			compat.Note(t, filepath.Base(dir), compat.Fixture)
			open := func(name string) *os.File {
				f, err := os.Open(filepath.Join(dir, name))
				if err != nil {
					t.Fatal(err)
				}
				t.Cleanup(func() { f.Close() })
				return f
			}
			links, err := link.FromIPRoute2(open("links.json"), open("bridge-vlan.json"))
			if err != nil {
				t.Fatal(err)
			}
			neighbors, err := LoadNeighbors(open("neigh.json"))
			if err != nil {
				t.Fatal(err)
			}
			got := goldenReplay(t, open("migrations.pcapng"), neighbors, Options{Links: links, Config: engine.DefaultConfig})
			compareGolden(t, filepath.Join(dir, "migrations.golden"), got)
		})
	}
}
