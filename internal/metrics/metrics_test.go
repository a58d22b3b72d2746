package metrics

import (
	"bufio"
	"context"
	"errors"
	"flag"
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"io"
	"io/fs"
	"log/slog"
	"math"
	"net"
	"net/http"
	"net/netip"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"github.com/rarp-replay/rarp-replay/internal/engine"
	"github.com/rarp-replay/rarp-replay/internal/markers"
	"github.com/rarp-replay/rarp-replay/internal/version"
)

// safety bounds every wait on the server: reaching it is a failure, never
// the expected outcome.
const safety = 10 * time.Second

// testServer is serve on 127.0.0.1:0, with its limitListener at hand.
type testServer struct {
	addr   string
	ll     *limitListener
	events chan struct{} // a token after every accept, refusal and close

	mu   sync.Mutex
	peak int64 // most connections ever open at once
}

func startServer(t *testing.T, o Options, src Sources) *testServer {
	t.Helper()
	raw, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	o = o.withDefaults()
	log := slog.New(slog.DiscardHandler)
	s := &testServer{addr: raw.Addr().String(), events: make(chan struct{}, 1)}
	s.ll = newLimitListener(raw, o.MaxConns, log)
	s.ll.changed = func() {
		s.mu.Lock()
		s.peak = max(s.peak, s.ll.active.Load())
		s.mu.Unlock()
		select {
		case s.events <- struct{}{}:
		default:
		}
	}
	var healthy atomic.Bool
	healthy.Store(true)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- serve(ctx, s.ll, New(src), &healthy, log, o) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("serve: %v", err)
		}
	})
	return s
}

// waitFor waits until cond holds, checking it after every accept, refusal
// and close.
func (s *testServer) waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.After(safety)
	for !cond() {
		select {
		case <-s.events:
		case <-deadline:
			t.Fatalf("not %s: %d connections open, %d refused", what, s.ll.active.Load(), s.ll.refused.Load())
		}
	}
}

// waitActive waits until exactly n connections are open.
func (s *testServer) waitActive(t *testing.T, n int64) {
	t.Helper()
	s.waitFor(t, fmt.Sprintf("%d open", n), func() bool { return s.ll.active.Load() == n })
}

func (s *testServer) peakOpen() int64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.peak
}

func (s *testServer) dial(t *testing.T) net.Conn {
	t.Helper()
	c, err := net.Dial("tcp", s.addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// get sends a GET with the extra header lines on c and reads the response.
func get(t *testing.T, c net.Conn, path string, header ...string) (*http.Response, string) {
	t.Helper()
	req := "GET " + path + " HTTP/1.1\r\nHost: metrics\r\n"
	for _, h := range header {
		req += h + "\r\n"
	}
	if _, err := io.WriteString(c, req+"\r\n"); err != nil {
		t.Fatalf("send %s: %v", path, err)
	}
	c.SetReadDeadline(time.Now().Add(safety))
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		t.Fatalf("GET %s: %v", path, err)
	}
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("GET %s: body: %v", path, err)
	}
	return resp, string(b)
}

// waitClosed reads c until the server closes it, and fails if the server
// had still not closed it after the safety bound. It returns what was read.
func waitClosed(t *testing.T, c net.Conn) string {
	t.Helper()
	c.SetReadDeadline(time.Now().Add(safety))
	b, err := io.ReadAll(c)
	if err != nil && !errors.Is(err, syscall.ECONNRESET) {
		t.Fatalf("connection not closed by the server: %v (read %q)", err, b)
	}
	return string(b)
}

// TestConnectionCap: with MaxConns open, further connections are closed at
// once without an answer, and counted; the open ones are served; a slot
// freed is taken again.
func TestConnectionCap(t *testing.T) {
	const limit, extra = 4, 6
	s := startServer(t, Options{MaxConns: limit, ReadTimeout: time.Minute, IdleTimeout: time.Minute}, Sources{})
	var held []net.Conn
	for range limit {
		held = append(held, s.dial(t))
	}
	s.waitActive(t, limit)
	for i := range extra {
		if got := waitClosed(t, s.dial(t)); got != "" {
			t.Errorf("connection %d beyond the cap got %q, want it closed unanswered", i, got)
		}
	}
	if got := s.ll.refused.Load(); got != extra {
		t.Errorf("%d connections refused, want %d", got, extra)
	}
	if got, peak := s.ll.active.Load(), s.peakOpen(); got != limit || peak != limit {
		t.Errorf("%d connections open (at most %d at once), want %d", got, peak, limit)
	}
	// The connections held are the ones served.
	for i, c := range held {
		if resp, body := get(t, c, "/healthz"); resp.StatusCode != http.StatusOK || body != "ok\n" {
			t.Errorf("held connection %d: %s %q, want 200 ok", i, resp.Status, body)
		}
	}
	// A slot freed is taken by the next connection, and the scrape reports
	// the refusals.
	held[0].Close()
	s.waitActive(t, limit-1)
	resp, body := get(t, s.dial(t), "/metrics")
	for _, want := range []string{
		fmt.Sprintf("rarp_replay_metrics_connections %d\n", limit),
		fmt.Sprintf("rarp_replay_metrics_connections_refused_total %d\n", extra),
	} {
		if resp.StatusCode != http.StatusOK || !strings.Contains(body, want) {
			t.Errorf("/metrics: %s, no %q in:\n%s", resp.Status, want, body)
		}
	}
}

// TestIdleTimeout: a keep-alive connection is closed IdleTimeout after its
// last answer.
func TestIdleTimeout(t *testing.T) {
	// A long ReadTimeout: net/http would use it for idle connections
	// without IdleTimeout.
	s := startServer(t, Options{IdleTimeout: 100 * time.Millisecond, ReadTimeout: time.Minute}, Sources{})
	c := s.dial(t)
	if resp, _ := get(t, c, "/healthz"); resp.StatusCode != http.StatusOK || resp.Close {
		t.Fatalf("GET /healthz: %s (close %v), want 200 keeping the connection", resp.Status, resp.Close)
	}
	if got := waitClosed(t, c); got != "" {
		t.Errorf("idle connection got %q before it was closed", got)
	}
	s.waitActive(t, 0)
}

// TestSlowClients: a client that never completes its request headers,
// sending them byte by byte or not at all, is disconnected after
// ReadTimeout.
func TestSlowClients(t *testing.T) {
	for _, tt := range []struct {
		name    string
		trickle bool
	}{
		{"slowloris", true},
		{"silent", false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			s := startServer(t, Options{ReadTimeout: 200 * time.Millisecond, IdleTimeout: time.Minute}, Sources{})
			c := s.dial(t)
			if _, err := io.WriteString(c, "GET /metrics HTTP/1.1\r\nHost: metrics\r\nX-Slow: "); err != nil {
				t.Fatal(err)
			}
			stop := make(chan struct{})
			sent := make(chan int, 1)
			go func() {
				n := 0
				defer func() { sent <- n }()
				for tt.trickle {
					select {
					case <-stop:
						return
					case <-time.After(10 * time.Millisecond): // a slowloris' pace, not a wait for a result
					}
					if _, err := c.Write([]byte("a")); err != nil {
						return
					}
					n++
				}
			}()
			got := waitClosed(t, c)
			close(stop)
			n := <-sent
			if got != "" {
				t.Errorf("got %q, want the connection closed unanswered", got)
			}
			if tt.trickle && n == 0 {
				t.Errorf("the slowloris sent no byte before it was cut off")
			}
			s.waitActive(t, 0)
		})
	}
}

// TestSlowReader: a client that does not read its response is disconnected
// after WriteTimeout.
func TestSlowReader(t *testing.T) {
	// About 20 MB of metrics: more than the kernel buffers between a
	// client that does not read and the server.
	stats := engine.NewCounters()
	pad := strings.Repeat("x", 1000)
	for i := range 20000 {
		stats.Drop(fmt.Sprintf("%s-%d", pad, i))
	}
	s := startServer(t, Options{WriteTimeout: 200 * time.Millisecond, ReadTimeout: time.Minute, IdleTimeout: time.Minute},
		Sources{Counters: stats.Snapshot})
	c := s.dial(t)
	if _, err := io.WriteString(c, "GET /metrics HTTP/1.1\r\nHost: metrics\r\n\r\n"); err != nil {
		t.Fatal(err)
	}
	// Accepted, then closed: the server gave up writing.
	s.waitFor(t, "accepted and closed", func() bool { return s.peakOpen() == 1 && s.ll.active.Load() == 0 })
	if got := waitClosed(t, c); len(got) >= 20000*len(pad) {
		t.Errorf("read %d bytes: the whole response, want it cut off", len(got))
	}
}

// TestHeaderLimit: request headers beyond MaxHeaderBytes are answered 431;
// ordinary ones are served.
func TestHeaderLimit(t *testing.T) {
	s := startServer(t, Options{}, Sources{})
	if resp, _ := get(t, s.dial(t), "/healthz", "X-Fill: "+strings.Repeat("a", 2<<10)); resp.StatusCode != http.StatusOK {
		t.Errorf("2 KiB of headers: %s, want 200", resp.Status)
	}
	if resp, _ := get(t, s.dial(t), "/healthz", "X-Fill: "+strings.Repeat("a", 20<<10)); resp.StatusCode != http.StatusRequestHeaderFieldsTooLarge {
		t.Errorf("20 KiB of headers: %s, want 431", resp.Status)
	}
}

// TestOptionsDefaults: zero fields take the defaults, set ones are kept.
func TestOptionsDefaults(t *testing.T) {
	got := Options{MaxConns: 3, IdleTimeout: time.Millisecond}.withDefaults()
	want := DefaultOptions
	want.MaxConns, want.IdleTimeout = 3, time.Millisecond
	if got != want {
		t.Errorf("withDefaults = %+v, want %+v", got, want)
	}
}

// TestEveryEventHasAMetric: each engine event is exported under its own
// name, and every series alerting may rely on exists from the start, at
// zero: one per event, per netlink subscription, per known drop reason, per
// captured port; the last migration's time; the process_* and go_*
// metrics.
func TestEveryEventHasAMetric(t *testing.T) {
	seen := map[string]engine.Event{}
	for _, e := range engine.Events() {
		name, help := EventMetric(e)
		if name == "" || help == "" || !strings.HasSuffix(name, "_total") {
			t.Errorf("event %s: metric %q, help %q", e, name, help)
		}
		if other, dup := seen[name]; dup {
			t.Errorf("events %s and %s share metric %s", other, e, name)
		}
		seen[name] = e
	}
	got := map[string]float64{} // series (name{labels}) -> value
	for _, mf := range gather(t, startSources()) {
		for _, m := range mf.GetMetric() {
			var labels []string
			for _, l := range m.GetLabel() {
				labels = append(labels, fmt.Sprintf("%s=%q", l.GetName(), l.GetValue()))
			}
			series := mf.GetName()
			if len(labels) > 0 {
				series += "{" + strings.Join(labels, ",") + "}"
			}
			switch {
			case m.Counter != nil:
				got[series] = m.GetCounter().GetValue()
			case m.Gauge != nil:
				got[series] = m.GetGauge().GetValue()
			default:
				got[series] = 0
			}
		}
	}
	want := []string{
		`rarp_replay_rarps_total{port="vm1"}`, `rarp_replay_pcap_received_total{port="vm1"}`,
		`rarp_replay_pcap_kernel_drops_total{port="vm1"}`, `rarp_replay_last_migration_timestamp_seconds`,
		`rarp_replay_metrics_connections_refused_total`,
	}
	for name := range seen {
		want = append(want, "rarp_replay_"+name)
	}
	for _, sub := range engine.Subscriptions {
		want = append(want, fmt.Sprintf("rarp_replay_netlink_resyncs_total{subscription=%q}", sub))
	}
	for _, reason := range DropReasons {
		want = append(want, fmt.Sprintf("rarp_replay_drops_total{reason=%q}", reason))
	}
	for _, series := range want {
		if v, ok := got[series]; !ok || v != 0 {
			t.Errorf("%s: %v (exported: %v), want it exported at 0 from the start", series, v, ok)
		}
	}
	for _, name := range []string{"process_start_time_seconds", "process_open_fds", "process_resident_memory_bytes", "go_goroutines", "go_memstats_heap_inuse_bytes"} {
		if _, ok := got[name]; !ok {
			t.Errorf("%s not exported", name)
		}
	}
}

// startSources are a daemon's sources just after it started: counters at
// zero, one port captured.
func startSources() Sources {
	return Sources{
		Counters: engine.NewCounters().Snapshot,
		Bindings: func() int { return 0 },
		Ports:    func() int { return 1 },
		Kernel:   func() map[string][2]int { return map[string][2]int{"vm1": {}} },
	}
}

// gather returns what /metrics serves for src.
func gather(t *testing.T, src Sources) []*dto.MetricFamily {
	t.Helper()
	mfs, err := registry(New(src), newLimitListener(nil, 1, nil)).Gather()
	if err != nil {
		t.Fatal(err)
	}
	return mfs
}

// TestMigrated: a migration handled sets the last migration's time, and
// adds to the latency histogram when something was programmed.
func TestMigrated(t *testing.T) {
	c := New(Sources{})
	at := time.Unix(1_800_000_000, 500_000_000)
	c.Migrated(engine.Report{Failed: []netip.Addr{netip.MustParseAddr("192.0.2.10")}}, at)
	if got := gaugeValue(t, c.LastMigration); got != 1_800_000_000.5 {
		t.Errorf("last migration %v after a migration at %v, want 1800000000.5", got, at)
	}
	if n := histogramCount(t, c.Latency); n != 0 {
		t.Errorf("latency observed %d times for a migration that programmed nothing, want 0", n)
	}
	c.Migrated(engine.Report{Programmed: []netip.Addr{netip.MustParseAddr("192.0.2.10")}, Latency: 3 * time.Millisecond}, at.Add(time.Second))
	if got := gaugeValue(t, c.LastMigration); got != 1_800_000_001.5 {
		t.Errorf("last migration %v, want 1800000001.5", got)
	}
	if n := histogramCount(t, c.Latency); n != 1 {
		t.Errorf("latency observed %d times, want 1", n)
	}
	// Each programmed binding's stages, one observation per stage.
	ms := func(x float64) time.Duration { return time.Duration(x * float64(time.Millisecond)) }
	c.Migrated(engine.Report{
		Programmed: []netip.Addr{netip.MustParseAddr("192.0.2.10"), netip.MustParseAddr("2001:db8::10")},
		Stages: map[netip.Addr]engine.Stages{
			netip.MustParseAddr("192.0.2.10"):   {Probe: ms(0.1), Answer: ms(1), Handle: ms(0.2), Program: ms(3)},
			netip.MustParseAddr("2001:db8::10"): {Probe: ms(0.3), Answer: ms(2), Handle: ms(0.4), Program: ms(5)},
		},
		Latency: 9 * time.Millisecond,
	}, at.Add(2*time.Second))
	wantSum := map[string]float64{"probe": 0.0004, "answer": 0.003, "handle": 0.0006, "program": 0.008}
	for _, stage := range engine.StageNames {
		h, err := c.Stages.GetMetricWithLabelValues(stage)
		if err != nil {
			t.Fatal(err)
		}
		var m dto.Metric
		if err := h.(prometheus.Histogram).Write(&m); err != nil {
			t.Fatal(err)
		}
		if n, sum := m.GetHistogram().GetSampleCount(), m.GetHistogram().GetSampleSum(); n != 2 || math.Abs(sum-wantSum[stage]) > 1e-9 {
			t.Errorf("stage %s: %d observations summing to %v s, want 2 summing to %v s", stage, n, sum, wantSum[stage])
		}
	}
}

func gaugeValue(t *testing.T, g prometheus.Gauge) float64 {
	t.Helper()
	var m dto.Metric
	if err := g.Write(&m); err != nil {
		t.Fatal(err)
	}
	return m.GetGauge().GetValue()
}

func histogramCount(t *testing.T, h prometheus.Histogram) uint64 {
	t.Helper()
	var m dto.Metric
	if err := h.Write(&m); err != nil {
		t.Fatal(err)
	}
	return m.GetHistogram().GetSampleCount()
}

// TestDropReasonsListed: DropReasons names every drop reason the daemon's
// code counts, and no other: string literals given as a DropError's or
// IneligibleError's Reason, assigned to a Reason field, passed to
// Counters.Drop, and the engine's Drop* constants.
func TestDropReasonsListed(t *testing.T) {
	root := filepath.Join("..", "..")
	found := map[string]string{} // reason -> where
	fset := token.NewFileSet()
	err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() && (d.Name() == "testdata" || strings.HasPrefix(d.Name(), ".") && path != root) {
			return filepath.SkipDir
		}
		if d.IsDir() || !strings.HasSuffix(path, ".go") || strings.HasSuffix(path, "_test.go") {
			return nil
		}
		f, err := parser.ParseFile(fset, path, nil, 0)
		if err != nil {
			return err
		}
		lit := func(e ast.Expr) (string, bool) {
			b, ok := e.(*ast.BasicLit)
			if !ok || b.Kind != token.STRING {
				return "", false
			}
			v, err := strconv.Unquote(b.Value)
			return v, err == nil
		}
		add := func(e ast.Expr) {
			if v, ok := lit(e); ok {
				found[v] = fset.Position(e.Pos()).String()
			}
		}
		ast.Inspect(f, func(n ast.Node) bool {
			switch n := n.(type) {
			case *ast.KeyValueExpr: // DropError{Reason: "..."}, IneligibleError{Reason: "..."}
				if k, ok := n.Key.(*ast.Ident); ok && k.Name == "Reason" {
					add(n.Value)
				}
			case *ast.AssignStmt: // d.Verdict, d.Reason = VerdictDrop, "..."
				for i, l := range n.Lhs {
					if sel, ok := l.(*ast.SelectorExpr); ok && sel.Sel.Name == "Reason" && i < len(n.Rhs) {
						add(n.Rhs[i])
					}
				}
			case *ast.CallExpr: // stats.Drop("...")
				if sel, ok := n.Fun.(*ast.SelectorExpr); ok && sel.Sel.Name == "Drop" && len(n.Args) == 1 {
					add(n.Args[0])
				}
			case *ast.ValueSpec: // const DropUnsolicited = "..."
				for i, name := range n.Names {
					if strings.HasPrefix(name.Name, "Drop") && i < len(n.Values) && f.Name.Name == "engine" {
						add(n.Values[i])
					}
				}
			}
			return true
		})
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(found) < 10 {
		t.Fatalf("found only %d drop reasons in the source: %v; the scan is broken", len(found), found)
	}
	listed := map[string]bool{}
	for _, r := range DropReasons {
		if listed[r] {
			t.Errorf("DropReasons lists %q twice", r)
		}
		listed[r] = true
		if _, ok := found[r]; !ok {
			t.Errorf("DropReasons lists %q, which no code counts", r)
		}
	}
	for r, where := range found {
		if !listed[r] {
			t.Errorf("drop reason %q (%s) is not in DropReasons: it would not be exported from zero", r, where)
		}
	}
}

// update rewrites docs/METRICS.md from the registry:
// go test ./internal/metrics -run TestMetricsDoc -update
var update = flag.Bool("update", false, "rewrite docs/METRICS.md")

// TestMetricsDoc: docs/METRICS.md lists every metric /metrics serves, with
// its type, labels and help, as the registry has them.
func TestMetricsDoc(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("the process_* metrics documented are Linux's")
	}
	got := metricsDoc(gather(t, startSources()))
	path := filepath.Join("..", "..", "docs", "METRICS.md")
	if *update {
		if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(string(want), got); diff != "" {
		t.Errorf("docs/METRICS.md is not what the registry serves (-file +registry); run go test ./internal/metrics -run TestMetricsDoc -update:\n%s", diff)
	}

	// README lists the daemon's own metrics, the first section's table.
	_, table, _ := strings.Cut(got, "| Metric | Type | Labels | Help |")
	table, _, _ = strings.Cut(table, "\n\n")
	table = "| Metric | Type | Labels | Help |" + table + "\n"
	readmePath := filepath.Join("..", "..", "README.md")
	readme, err := os.ReadFile(readmePath)
	if err != nil {
		t.Fatal(err)
	}
	const begin, end = "<!-- metrics:begin (generated by go test ./internal/metrics -run TestMetricsDoc -update; do not edit) -->\n", "<!-- metrics:end -->"
	if *update {
		if readme, err = markers.Replace(readme, begin, end, []byte(table)); err != nil {
			t.Fatalf("README.md: %v", err)
		}
		if err := os.WriteFile(readmePath, readme, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	inREADME, err := markers.Between(readme, begin, end)
	if err != nil {
		t.Fatalf("README.md: %v", err)
	}
	if diff := cmp.Diff(table, string(inREADME)); diff != "" {
		t.Errorf("README.md's metrics table is not what the registry serves (-registry +README); run go test ./internal/metrics -run TestMetricsDoc -update:\n%s", diff)
	}
}

// docLabelValues are the labels whose values are fixed sets, listed in the
// doc.
var docLabelValues = map[string]bool{"reason": true, "subscription": true}

// metricsDoc renders the families as docs/METRICS.md.
func metricsDoc(mfs []*dto.MetricFamily) string {
	var b strings.Builder
	b.WriteString(`# Metrics

<!-- Generated from the registry by: go test ./internal/metrics -run TestMetricsDoc -update
     Edit the help texts in internal/metrics (or the engine's events), not this file. -->

` + "`rarp-replay listen --metrics-addr 127.0.0.1:9465`" + ` serves these in the Prometheus text format on
` + "`/metrics`" + ` (and ` + "`/healthz`" + `: 200 once the daemon listens, 503 before). Every counter exists
from the start at zero: one series per event, per netlink subscription, per drop reason listed
below and per captured port, so that ` + "`increase()`" + ` sees the first event.

Alerting rules using them: ` + "`packaging/prometheus/rarp-replay-alerts.yml`" + `; a Grafana dashboard:
` + "`packaging/grafana/rarp-replay-dashboard.json`" + ` (installed under
` + "`/usr/share/doc/rarp-replay/examples/`" + `). Both expect the scrape job to be named ` + "`rarp-replay`" + `.

`)
	sections := []struct{ title, prefix, intro string }{
		{"rarp-replay", "rarp_replay_", "The daemon's own."},
		{"Process", "process_", "The Prometheus client's process collector (Linux)."},
		{"Go runtime", "go_", "The Prometheus client's Go collector; the set follows the Go version the binary was built with."},
	}
	for _, sec := range sections {
		fmt.Fprintf(&b, "## %s\n\n%s\n\n| Metric | Type | Labels | Help |\n| --- | --- | --- | --- |\n", sec.title, sec.intro)
		for _, mf := range mfs {
			if !strings.HasPrefix(mf.GetName(), sec.prefix) {
				continue
			}
			values := map[string][]string{}
			var names []string
			for _, m := range mf.GetMetric() {
				for _, l := range m.GetLabel() {
					if _, ok := values[l.GetName()]; !ok {
						names = append(names, l.GetName())
						values[l.GetName()] = nil
					}
					if docLabelValues[l.GetName()] && !slices.Contains(values[l.GetName()], l.GetValue()) {
						values[l.GetName()] = append(values[l.GetName()], l.GetValue())
					}
				}
			}
			if mf.GetType() == dto.MetricType_HISTOGRAM {
				names = append(names, "le")
			}
			if mf.GetType() == dto.MetricType_SUMMARY {
				names = append(names, "quantile")
			}
			var labels []string
			for _, n := range names {
				l := "`" + n + "`"
				if vs := values[n]; len(vs) > 0 {
					slices.Sort(vs)
					l += ": " + strings.Join(vs, ", ")
				}
				labels = append(labels, l)
			}
			help := strings.ReplaceAll(mf.GetHelp(), "|", "\\|")
			fmt.Fprintf(&b, "| `%s` | %s | %s | %s |\n", mf.GetName(), strings.ToLower(mf.GetType().String()), strings.Join(labels, "; "), help)
		}
		b.WriteString("\n")
	}
	return strings.TrimSuffix(b.String(), "\n")
}

// TestBuildInfo: rarp_replay_build_info says which build is running.
func TestBuildInfo(t *testing.T) {
	s := startServer(t, Options{}, Sources{})
	resp, body := get(t, s.dial(t), "/metrics")
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("/metrics: %s", resp.Status)
	}
	v := version.Get()
	want := fmt.Sprintf("rarp_replay_build_info{commit=%q,goversion=%q,version=%q} 1\n", v.Commit, v.GoVersion, v.Version)
	if !strings.Contains(body, want) {
		t.Errorf("/metrics has no %q:\n%s", want, body)
	}
}
