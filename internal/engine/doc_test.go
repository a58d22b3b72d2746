package engine_test

import (
	"go/ast"
	"go/parser"
	"go/token"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/rarp-replay/rarp-replay/internal/engine"
	"github.com/rarp-replay/rarp-replay/internal/metrics"
)

const troubleshooting = "../../docs/TROUBLESHOOTING.md"

// documented returns the names docs/TROUBLESHOOTING.md gives a section or
// a table row of their own: every `code` span in a heading or in the first
// cell of a table row.
func documented(t *testing.T) (names map[string]bool, text string) {
	t.Helper()
	b, err := os.ReadFile(troubleshooting)
	if err != nil {
		t.Fatal(err)
	}
	code := regexp.MustCompile("`([^`]+)`")
	names = map[string]bool{}
	for _, line := range strings.Split(string(b), "\n") {
		var where string
		switch {
		case strings.HasPrefix(line, "#"):
			where = line
		case strings.HasPrefix(line, "|"):
			cells := strings.Split(line, "|")
			if len(cells) > 2 {
				where = cells[1]
			}
		}
		for _, m := range code.FindAllStringSubmatch(where, -1) {
			names[m[1]] = true
		}
	}
	return names, string(b)
}

// consts returns the values of the string constants of type typ declared
// in the non-test Go files of dir.
func consts(t *testing.T, dir, typ string) []string {
	t.Helper()
	files, _ := filepath.Glob(filepath.Join(dir, "*.go"))
	var out []string
	for _, path := range files {
		if strings.HasSuffix(path, "_test.go") {
			continue
		}
		f, err := parser.ParseFile(token.NewFileSet(), path, nil, 0)
		if err != nil {
			t.Fatal(err)
		}
		ast.Inspect(f, func(n ast.Node) bool {
			vs, ok := n.(*ast.ValueSpec)
			if !ok {
				return true
			}
			if id, ok := vs.Type.(*ast.Ident); !ok || id.Name != typ {
				return true
			}
			for _, v := range vs.Values {
				if lit, ok := v.(*ast.BasicLit); ok && lit.Kind == token.STRING {
					s, _ := strconv.Unquote(lit.Value)
					out = append(out, s)
				}
			}
			return true
		})
	}
	if len(out) == 0 {
		t.Fatalf("no constants of type %s in %s", typ, dir)
	}
	return out
}

// reportReasons returns the per-address reasons the daemon's WARN line
// for a migration that programmed nothing gives (logReport in
// cmd/listen.go: ip.String()+": reason").
func reportReasons(t *testing.T) []string {
	t.Helper()
	path := filepath.Join("..", "..", "cmd", "listen.go")
	f, err := parser.ParseFile(token.NewFileSet(), path, nil, 0)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, d := range f.Decls {
		fn, ok := d.(*ast.FuncDecl)
		if !ok || fn.Name.Name != "logReport" {
			continue
		}
		ast.Inspect(fn, func(n ast.Node) bool {
			if be, ok := n.(*ast.BinaryExpr); ok && be.Op == token.ADD {
				if lit, ok := be.Y.(*ast.BasicLit); ok && lit.Kind == token.STRING {
					s, _ := strconv.Unquote(lit.Value)
					if r, ok := strings.CutPrefix(s, ": "); ok {
						out = append(out, r)
					}
				}
			}
			return true
		})
	}
	if len(out) == 0 {
		t.Fatalf("found no per-address reasons (ip.String()+\": ...\") in logReport in %s; update this test to where the daemon's WARN reasons are now", path)
	}
	return out
}

// TestTroubleshootingDoc fails when docs/TROUBLESHOOTING.md lacks a section
// or table row for any value an operator meets in metrics, logs and
// `rarp-replay status`: every drop reason (rarp_replay_drops_total{reason}),
// every verdict of a frame (debug logs, replay), every per-address verdict
// of `status`, every counted event with its metric, and every reason the
// WARN line of a migration that programmed nothing gives.
func TestTroubleshootingDoc(t *testing.T) {
	names, text := documented(t)
	need := func(what string, values ...string) {
		t.Helper()
		for _, v := range values {
			if !names[v] {
				t.Errorf("%s lacks a section heading or table row (first cell) for the %s `%s`", troubleshooting, what, v)
			}
		}
	}
	need("drop reason", metrics.DropReasons...)

	var verdicts []string
	for _, v := range engine.Verdicts() {
		verdicts = append(verdicts, string(v))
	}
	if declared := consts(t, ".", "Verdict"); !slices.Equal(sorted(declared), sorted(verdicts)) {
		t.Errorf("engine.Verdicts() = %v, but the engine declares the verdicts %v", verdicts, declared)
	}
	need("frame verdict", verdicts...)

	need("status verdict", consts(t, filepath.Join("..", "status"), "Verdict")...)

	for _, e := range engine.Events() {
		need("event", e.String())
		name, _ := metrics.EventMetric(e)
		if !strings.Contains(text, "rarp_replay_"+name) {
			t.Errorf("%s does not name the metric rarp_replay_%s (event %s)", troubleshooting, name, e)
		}
	}

	for _, r := range []string{engine.SkipBusy, engine.SkipNoSource, engine.SkipBuild} {
		need("reason an address was not probed", r)
	}
	for _, r := range reportReasons(t) {
		if !strings.Contains(text, r) {
			t.Errorf("%s does not explain the migration WARN reason %q", troubleshooting, r)
		}
	}
}

func sorted(s []string) []string {
	s = slices.Clone(s)
	slices.Sort(s)
	return s
}
