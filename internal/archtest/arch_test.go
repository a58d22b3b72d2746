// Package archtest holds the tests of rarp-replay's package structure: the
// import rule docs/ARCHITECTURE.md states, and that everything but live
// capture builds and runs off Linux and without cgo.
package archtest

import (
	"bytes"
	"go/parser"
	"go/token"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"testing"
)

const mod = "github.com/rarp-replay/rarp-replay/"

func root(t *testing.T) string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Join(filepath.Dir(file), "..", "..")
}

func goCmd(t *testing.T, env []string, args ...string) string {
	t.Helper()
	cmd := exec.Command("go", args...)
	cmd.Dir = root(t)
	cmd.Env = append(os.Environ(), env...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("go %s: %v\n%s", strings.Join(args, " "), err, stderr.String())
	}
	return string(out)
}

// TestImportRule: cmd -> adapters (capture, neigh, replay, internal/metrics)
// -> engine -> foundations (internal/packet, internal/link, internal/nlwatch).
// The engine defines the types it consumes and imports no adapter; the
// foundations import neither; the daemon's command files do not import
// replay.
func TestImportRule(t *testing.T) {
	adapters := []string{"capture", "capture/pcapio", "neigh", "replay", "internal/metrics", "cmd"}
	forbidden := map[string][]string{
		"internal/engine":  adapters,
		"internal/packet":  append([]string{"internal/engine"}, adapters...),
		"internal/link":    append([]string{"internal/engine"}, adapters...),
		"internal/nlwatch": append([]string{"internal/engine", "internal/link"}, adapters...),
		"internal/version": append([]string{"internal/engine", "internal/packet", "internal/link", "internal/nlwatch"}, adapters...),
		"capture":          {"neigh", "replay", "internal/metrics", "cmd"},
		"neigh":            {"capture", "replay", "internal/metrics", "cmd"},
		"replay":           {"capture", "capture/pcapio", "internal/metrics", "cmd"},
		"internal/status":  {"capture", "capture/pcapio", "neigh", "replay", "internal/metrics", "cmd"},
	}
	for pkg, bad := range forbidden {
		deps := map[string]bool{}
		for _, d := range strings.Fields(goCmd(t, nil, "list", "-deps", "./"+pkg)) {
			deps[d] = true
		}
		for _, b := range bad {
			if deps[mod+b] {
				t.Errorf("%s depends on %s", pkg, b)
			}
		}
	}
	// The daemon's path in cmd: every file but the replay command's.
	files, _ := filepath.Glob(filepath.Join(root(t), "cmd", "*.go"))
	for _, f := range files {
		base := filepath.Base(f)
		if strings.HasSuffix(base, "_test.go") || strings.HasPrefix(base, "replay") {
			continue
		}
		af, err := parser.ParseFile(token.NewFileSet(), f, nil, parser.ImportsOnly)
		if err != nil {
			t.Fatal(err)
		}
		for _, imp := range af.Imports {
			if p, _ := strconv.Unquote(imp.Path.Value); p == mod+"replay" {
				t.Errorf("cmd/%s imports replay: the daemon's path must not", base)
			}
		}
	}
}

// TestBuildsElsewhere: everything builds for macOS, and without cgo the
// binary still replays a capture (live capture then says it needs Linux
// and libpcap).
func TestBuildsElsewhere(t *testing.T) {
	if testing.Short() {
		t.Skip("cross-builds the module: skipped with -short")
	}
	goCmd(t, []string{"GOOS=darwin", "GOARCH=arm64", "CGO_ENABLED=0"}, "build", "./...")
	bin := filepath.Join(t.TempDir(), "rarp-replay")
	goCmd(t, []string{"CGO_ENABLED=0"}, "build", "-o", bin, "./cmd/rarp-replay")
	corpus := filepath.Join(root(t), "pcaps", "corpus")
	out, err := exec.Command(bin, "replay", "--neigh", filepath.Join(corpus, "neigh.json"), filepath.Join(corpus, "arp-plain.pcap")).CombinedOutput()
	if err != nil {
		t.Fatalf("replay without cgo: %v\n%s", err, out)
	}
	golden, err := os.ReadFile(filepath.Join(corpus, "arp-plain.golden"))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(out, golden) {
		t.Errorf("replay without cgo differs from the golden:\n%s\nwant:\n%s", out, golden)
	}
	out, err = exec.Command(bin, "send-rarp", "--mac", "02:00:5e:10:00:0a", "-i", "eth0").CombinedOutput()
	if err == nil || !strings.Contains(string(out), "libpcap") {
		t.Errorf("send-rarp without cgo: %v, %s; want an error naming libpcap", err, out)
	}
}
