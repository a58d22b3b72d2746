package cmd

import (
	"bytes"
	"encoding/json"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/rarp-replay/rarp-replay/internal/engine"
	"github.com/rarp-replay/rarp-replay/internal/link"
	"github.com/rarp-replay/rarp-replay/neigh"
)

type stateEnv struct {
	dir, path string
	links     *link.Table
	stats     *engine.Counters
	logs      bytes.Buffer
	log       *slog.Logger
}

func newStateEnv(t *testing.T) *stateEnv {
	e := &stateEnv{dir: t.TempDir(), links: link.NewTable(), stats: engine.NewCounters()}
	e.path = filepath.Join(e.dir, "state")
	e.links.Set(link.Link{Index: 5, Name: "br10", Kind: "bridge"})
	e.log = slog.New(slog.NewJSONHandler(&e.logs, nil))
	return e
}

// lastLog returns the last log line's fields.
func (e *stateEnv) lastLog(t *testing.T) map[string]any {
	t.Helper()
	lines := strings.Split(strings.TrimSpace(e.logs.String()), "\n")
	var m map[string]any
	if err := json.Unmarshal([]byte(lines[len(lines)-1]), &m); err != nil {
		t.Fatalf("log %q: %v", e.logs.String(), err)
	}
	return m
}

func mirrorWithBinding() *neigh.Mirror {
	m := neigh.NewMirror(15 * time.Minute)
	m.Update(neigh.Entry{IfIndex: 5, IP: netip.MustParseAddr("192.0.2.10"), MAC: net.HardwareAddr{2, 0, 0x5e, 0x10, 0, 0x0a}, State: neigh.NUDNoARP, Flags: neigh.NTFExtLearned})
	return m
}

var asideName = regexp.MustCompile(`^state\.corrupt-(\d{8}T\d{6}Z)(-\d+)?$`)

// asides returns the names of the files moved aside.
func (e *stateEnv) asides(t *testing.T) []string {
	t.Helper()
	ents, err := os.ReadDir(e.dir)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, d := range ents {
		if strings.HasPrefix(d.Name(), "state.corrupt-") {
			out = append(out, d.Name())
		}
	}
	return out
}

// TestStateFileMovedAside: a corrupt state file is moved aside, named by
// the UTC time, logged at WARN with its new name and counted; the next save
// writes a fresh file that loads; a missing file is a first start.
func TestStateFileMovedAside(t *testing.T) {
	e := newStateEnv(t)
	loadState(e.path, neigh.NewMirror(time.Minute), e.links, e.stats, e.log)
	if l := e.lastLog(t); l["msg"] != "no state file yet" || e.stats.Get(engine.StateLoadError) != 0 {
		t.Errorf("missing file: log %v, load errors %d", l, e.stats.Get(engine.StateLoadError))
	}

	if err := os.WriteFile(e.path, []byte("{not json"), 0o600); err != nil {
		t.Fatal(err)
	}
	before := time.Now().UTC().Truncate(time.Second)
	m := mirrorWithBinding()
	loadState(e.path, m, e.links, e.stats, e.log)
	after := time.Now().UTC()
	if _, err := os.Stat(e.path); !os.IsNotExist(err) {
		t.Errorf("the corrupt file is still at %s (%v)", e.path, err)
	}
	names := e.asides(t)
	if len(names) != 1 {
		t.Fatalf("files moved aside: %v, want 1", names)
	}
	sub := asideName.FindStringSubmatch(names[0])
	if sub == nil {
		t.Fatalf("moved aside as %q, want state.corrupt-YYYYMMDDTHHMMSSZ", names[0])
	}
	if at, err := time.Parse("20060102T150405Z", sub[1]); err != nil || at.Before(before) || at.After(after) {
		t.Errorf("moved aside as %q: time %v (%v), want between %v and %v", names[0], at, err, before, after)
	}
	if b, _ := os.ReadFile(filepath.Join(e.dir, names[0])); string(b) != "{not json" {
		t.Errorf("the file moved aside holds %q", b)
	}
	l := e.lastLog(t)
	if l["level"] != "WARN" || l["moved_to"] != filepath.Join(e.dir, names[0]) || !strings.Contains(l["err"].(string), "not a rarp-replay state file") {
		t.Errorf("log %v, want a WARN with moved_to and the error", l)
	}
	if n := e.stats.Get(engine.StateLoadError); n != 1 {
		t.Errorf("state-load-error = %d, want 1", n)
	}
	if m.Len() != 1 {
		t.Errorf("the corrupt file changed the mirror")
	}

	saveState(e.path, m, e.links, e.stats, e.log)
	r := neigh.NewMirror(15 * time.Minute)
	loadState(e.path, r, e.links, e.stats, e.log)
	if l := e.lastLog(t); l["msg"] != "loaded state" || r.Len() != 1 {
		t.Errorf("after a save: log %v, %d bindings, want the fresh file loaded", l, r.Len())
	}

	// Another corrupt file, within the same second or not: both are kept.
	if err := os.WriteFile(e.path, []byte("garbage 2"), 0o600); err != nil {
		t.Fatal(err)
	}
	loadState(e.path, neigh.NewMirror(time.Minute), e.links, e.stats, e.log)
	if names := e.asides(t); len(names) != 2 {
		t.Errorf("files moved aside: %v, want 2", names)
	}
}

// TestStateFileOverCap: a file over the size cap is refused unread, with
// the cap in the error, and moved aside.
func TestStateFileOverCap(t *testing.T) {
	e := newStateEnv(t)
	f, err := os.Create(e.path)
	if err != nil {
		t.Fatal(err)
	}
	if err := f.Truncate(neigh.DefaultLoadLimits.MaxBytes + 1); err != nil { // sparse
		t.Fatal(err)
	}
	f.Close()
	loadState(e.path, neigh.NewMirror(time.Minute), e.links, e.stats, e.log)
	l := e.lastLog(t)
	if err, _ := l["err"].(string); !strings.Contains(err, "over the size cap of 256 MiB") || l["level"] != "WARN" {
		t.Errorf("log %v, want a WARN naming the 256 MiB cap", l)
	}
	if names := e.asides(t); len(names) != 1 {
		t.Errorf("files moved aside: %v, want 1", names)
	}
}

// TestStateSaveErrorCounted: a failed save is logged and counted, and
// leaves no temporary file.
func TestStateSaveErrorCounted(t *testing.T) {
	e := newStateEnv(t)
	m := mirrorWithBinding()
	saveState(filepath.Join(e.dir, "missing", "state"), m, e.links, e.stats, e.log)
	if n := e.stats.Get(engine.StateSaveError); n != 1 {
		t.Errorf("state-save-error = %d, want 1", n)
	}
	if l := e.lastLog(t); l["level"] != "ERROR" {
		t.Errorf("log %v, want an ERROR", l)
	}
	saveState(e.path, m, e.links, e.stats, e.log)
	ents, _ := os.ReadDir(e.dir)
	if len(ents) != 1 || ents[0].Name() != "state" || e.stats.Get(engine.StateSaveError) != 1 {
		t.Errorf("after a good save: %v, %d errors; want only the state file", ents, e.stats.Get(engine.StateSaveError))
	}
}
