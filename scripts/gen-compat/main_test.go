package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/rarp-replay/rarp-replay/internal/compat"
)

func TestRender(t *testing.T) {
	t0 := time.Date(2026, 11, 26, 10, 0, 0, 0, time.UTC)
	recs := []compat.Record{
		{Layout: "cumulus", How: compat.Live, Bed: compat.Host, Kernel: "6.18.1", Test: "TestLayouts", Result: compat.Skip, Time: t0},
		{Layout: "cumulus", How: compat.Live, Bed: compat.UML, Kernel: "6.1.0", Test: "TestLayouts/Cumulus", Result: compat.Fail, Time: t0},
		// the same test's later record replaces the earlier one
		{Layout: "cumulus", How: compat.Live, Bed: compat.UML, Kernel: "6.1.0", Test: "TestLayouts/Cumulus", Result: compat.Pass, Time: t0.Add(time.Minute)},
		{Layout: "cumulus", How: compat.Live, Bed: compat.UML, Kernel: "6.1.0", FRR: "8.4.4", Test: "e2e-vlan.sh", Result: compat.Fail, Time: t0},
		{Layout: "cumulus", How: compat.Fixture, Test: "TestLayouts/cumulus", Result: compat.Pass, Time: t0},
		{Layout: "bridge-per-vni", How: compat.Live, Bed: compat.Host, Kernel: "6.18.1", Test: "TestListen", Result: compat.Pass, Time: t0},
	}
	got, err := render(recs)
	if err != nil {
		t.Fatal(err)
	}
	row := func(prefix string) string {
		for _, l := range strings.Split(got, "\n") {
			if strings.HasPrefix(l, "| "+prefix) {
				return l
			}
		}
		t.Fatalf("no row %q in\n%s", prefix, got)
		return ""
	}
	for _, want := range []struct{ row, cells string }{
		{"Cumulus", "| skipped | — | live ✓ `TestLayouts/Cumulus` | live ✗ `e2e-vlan.sh` | fixture ✓ `TestLayouts/cumulus` |"},
		{"one ordinary bridge", "| live ✓ `TestListen` | — | — | — | — |"},
		{"SONiC", "| — | — | — | — | — |"},
	} {
		if r := row(want.row); !strings.HasSuffix(r, want.cells) {
			t.Errorf("row %s:\n got %s\nwant ...%s", want.row, r, want.cells)
		}
	}
	for _, h := range []string{"this machine's kernel 6.18.1 |", "user-mode Linux 6.1.0 + FRR 8.4.4 |", "test run of 2026-11-26"} {
		if !strings.Contains(got, h) {
			t.Errorf("table lacks %q:\n%s", h, got)
		}
	}
}

func TestRenderUnknownLayout(t *testing.T) {
	_, err := render([]compat.Record{{Layout: "qinq-on-mars", How: compat.Fixture, Test: "TestX", Result: compat.Pass}})
	if err == nil || !strings.Contains(err.Error(), "qinq-on-mars") {
		t.Fatalf("err = %v, want one naming the unknown layout", err)
	}
}

func TestRunReplacesBetweenMarkers(t *testing.T) {
	dir := t.TempDir()
	if err := compat.Append(dir, compat.Record{Layout: "sonic", How: compat.Fixture, Test: "TestLayouts/sonic", Result: compat.Pass, Time: time.Now()}); err != nil {
		t.Fatal(err)
	}
	readme := filepath.Join(dir, "README.md")
	if err := os.WriteFile(readme, []byte("before\n"+begin+"\nstale table\n"+end+"\nafter\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := run(dir, readme, nil); err != nil {
		t.Fatal(err)
	}
	b, _ := os.ReadFile(readme)
	s := string(b)
	if strings.Contains(s, "stale table") || !strings.HasPrefix(s, "before\n"+begin+"\n") || !strings.HasSuffix(s, end+"\nafter\n") ||
		!strings.Contains(s, "fixture ✓ `TestLayouts/sonic`") {
		t.Errorf("README after run:\n%s", s)
	}
	if err := os.WriteFile(readme, []byte("no markers\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := run(dir, readme, nil); err == nil {
		t.Error("a README without markers was accepted")
	}
}
