package metrics

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/rarp-replay/rarp-replay/internal/engine"
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
// name, from zero.
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
	reg := prometheus.NewRegistry()
	reg.MustRegister(New(Sources{Counters: engine.NewCounters().Snapshot}))
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]bool{}
	for _, mf := range mfs {
		got[mf.GetName()] = true
	}
	for name := range seen {
		if !got["rarp_replay_"+name] {
			t.Errorf("rarp_replay_%s not exported at zero", name)
		}
	}
	if !got["rarp_replay_netlink_resyncs_total"] {
		t.Error("rarp_replay_netlink_resyncs_total not exported at zero")
	}
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
