package main

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
)

// TestConfigUpToDate fails when docs/CONFIG.md is not what the flags
// generate: a flag, default or help text changed without regenerating it.
func TestConfigUpToDate(t *testing.T) {
	got, err := os.ReadFile("../../docs/CONFIG.md")
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(strings.Split(string(configReference(root())), "\n"), strings.Split(string(got), "\n")); diff != "" {
		t.Errorf("docs/CONFIG.md is stale; regenerate it with\n\tgo run ./scripts/gen-docs -config docs/CONFIG.md\n(-generated +committed):\n%s", diff)
	}
}

// TestReadmeUpToDate: README's listen flags table is the generated one.
func TestReadmeUpToDate(t *testing.T) {
	old, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	got, err := readmeWith(old)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(strings.Split(string(got), "\n"), strings.Split(string(old), "\n")); diff != "" {
		t.Errorf("README.md's listen flags are stale; regenerate them with\n\tgo run ./scripts/gen-docs -readme README.md\n(-generated +committed):\n%s", diff)
	}
	if !strings.Contains(string(old), "`--routed-ports`") {
		t.Error("README.md's listen flags lack --routed-ports: the table is empty or not the listen command's")
	}
}

// TestConfigCoversFlags checks the reference names every flag of the
// commands an operator configures, with its default.
func TestConfigCoversFlags(t *testing.T) {
	r := root()
	ref := string(configReference(r))
	var cmds []string
	for _, c := range referenced(r) {
		cmds = append(cmds, c.Name())
	}
	for _, want := range []string{"listen", "replay", "send-rarp", "status"} {
		if !slices.Contains(cmds, want) {
			t.Errorf("the reference has no section for %s (has %v)", want, cmds)
		}
	}
	check := func(section string, fs *pflag.FlagSet) {
		fs.VisitAll(func(f *pflag.Flag) {
			if !strings.Contains(section, "`--"+f.Name) {
				t.Errorf("--%s missing from the reference", f.Name)
			}
			if f.DefValue != "" && f.DefValue != "[]" && !strings.Contains(section, "`"+f.DefValue+"`") {
				t.Errorf("--%s: default %q missing from the reference", f.Name, f.DefValue)
			}
		})
	}
	check(ref, r.PersistentFlags())
	for _, c := range referenced(r) {
		head := "\n## rarp-replay " + c.Name() + "\n"
		i := strings.Index(ref, head)
		if i < 0 {
			t.Fatalf("no section %q", head)
		}
		section := ref[i+len(head):]
		if j := strings.Index(section, "\n## "); j >= 0 {
			section = section[:j]
		}
		check(section, c.LocalNonPersistentFlags())
	}
}

// TestManPages writes the pages and checks there is one per command, each
// a man page naming every flag of its command.
func TestManPages(t *testing.T) {
	dir := t.TempDir()
	date := time.Date(2026, 1, 2, 0, 0, 0, 0, time.UTC)
	r := root()
	if err := manPages(r, dir, "1.2.3", &date); err != nil {
		t.Fatal(err)
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, e := range entries {
		got = append(got, e.Name())
	}
	want := manFiles(r)
	slices.Sort(want)
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("pages (-want +got):\n%s", diff)
	}
	for _, name := range []string{"rarp-replay.1", "rarp-replay-listen.1", "rarp-replay-replay.1", "rarp-replay-send-rarp.1", "rarp-replay-status.1", "rarp-replay-version.1"} {
		if !slices.Contains(got, name) {
			t.Errorf("no page %s", name)
		}
	}
	var walk func(c *cobra.Command)
	walk = func(c *cobra.Command) {
		if c != r && !c.IsAvailableCommand() {
			return
		}
		name := strings.ReplaceAll(c.CommandPath(), " ", "-") + ".1"
		b, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil {
			t.Error(err)
			return
		}
		page := string(b)
		th := `.TH "` + strings.ToUpper(strings.TrimSuffix(name, ".1")) + `" "1" "Jan 2026" "rarp-replay 1.2.3" "rarp-replay manual"`
		if !strings.Contains(page, "\n"+th+"\n") {
			t.Errorf("%s: no title line %s in\n%s", name, th, page)
		}
		c.NonInheritedFlags().VisitAll(func(f *pflag.Flag) {
			if !strings.Contains(page, `\fB--`+f.Name+`\fP`) {
				t.Errorf("%s lacks --%s", name, f.Name)
			}
		})
		for _, s := range c.Commands() {
			walk(s)
		}
	}
	walk(r)
}
