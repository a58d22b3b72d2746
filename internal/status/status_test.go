package status

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/rarp-replay/rarp-replay/internal/engine"
)

var (
	mac1  = net.HardwareAddr{2, 0, 0x5e, 0x10, 0, 0x0a}
	mac2  = net.HardwareAddr{2, 0, 0x5e, 0x10, 0, 0x14}
	t0    = time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC)
	ip    = netip.MustParseAddr
	addrs = func(s ...string) []netip.Addr {
		out := []netip.Addr{}
		for _, a := range s {
			out = append(out, ip(a))
		}
		return out
	}
)

func TestFromReport(t *testing.T) {
	for _, tc := range []struct {
		name string
		r    engine.Report
		want []Address
	}{
		{"programmed and unanswered", engine.Report{
			MAC: mac1, Verified: addrs("192.0.2.11", "192.0.2.10"), Failed: addrs("192.0.2.99"),
			Programmed: addrs("192.0.2.10", "192.0.2.11"), Latency: 1500 * time.Microsecond,
		}, []Address{{IP: ip("192.0.2.10"), Verdict: Programmed}, {IP: ip("192.0.2.11"), Verdict: Programmed}, {IP: ip("192.0.2.99"), Verdict: Unanswered}}},
		{"dry run: verified, nothing programmed", engine.Report{
			MAC: mac1, Verified: addrs("2001:db8::10", "192.0.2.10"),
		}, []Address{{IP: ip("192.0.2.10"), Verdict: Verified}, {IP: ip("2001:db8::10"), Verdict: Verified}}},
		{"the kernel refused one", engine.Report{
			MAC: mac1, Verified: addrs("192.0.2.10", "192.0.2.11"), Programmed: addrs("192.0.2.11"),
		}, []Address{{IP: ip("192.0.2.10"), Verdict: Verified}, {IP: ip("192.0.2.11"), Verdict: Programmed}}},
		{"nothing answered", engine.Report{MAC: mac1, Failed: addrs("192.0.2.10")},
			[]Address{{IP: ip("192.0.2.10"), Verdict: Unanswered}}},
		{"nothing bound", engine.Report{MAC: mac1}, []Address{}},
		{"answer times and a skipped address", engine.Report{
			MAC: mac1, Verified: addrs("192.0.2.10"), Programmed: addrs("192.0.2.10"),
			Answered: map[netip.Addr]time.Duration{ip("192.0.2.10"): 2500 * time.Microsecond},
			Skipped:  []engine.Skipped{{IP: ip("192.0.2.5"), Reason: engine.SkipBusy}},
		}, []Address{{IP: ip("192.0.2.5"), Verdict: Skipped, Reason: engine.SkipBusy}, {IP: ip("192.0.2.10"), Verdict: Programmed, AnsweredMS: 2.5}}},
		{"stages of the programmed addresses", engine.Report{
			MAC: mac1, Verified: addrs("192.0.2.10", "192.0.2.11"), Programmed: addrs("192.0.2.10"),
			Answered: map[netip.Addr]time.Duration{ip("192.0.2.10"): 2500 * time.Microsecond, ip("192.0.2.11"): time.Millisecond},
			Stages: map[netip.Addr]engine.Stages{ip("192.0.2.10"): {
				Probe: 200 * time.Microsecond, Answer: 2 * time.Millisecond, Handle: 300 * time.Microsecond, Program: 1500 * time.Microsecond}},
		}, []Address{
			{IP: ip("192.0.2.10"), Verdict: Programmed, AnsweredMS: 2.5, Stages: &StagesMS{Probe: 0.2, Answer: 2, Handle: 0.3, Program: 1.5}},
			{IP: ip("192.0.2.11"), Verdict: Verified, AnsweredMS: 1},
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m := FromReport(tc.r)
			if diff := cmp.Diff(tc.want, m.Addresses, cmp.Comparer(func(a, b netip.Addr) bool { return a == b })); diff != "" {
				t.Errorf("addresses (-want +got):\n%s", diff)
			}
			if m.MAC != mac1.String() || m.Verified == nil || m.Failed == nil || m.Programmed == nil {
				t.Errorf("migration %+v: want MAC %s and non-nil address lists (JSON [] not null)", m, mac1)
			}
		})
	}
	if got := FromReport(engine.Report{MAC: mac1, Latency: 1500 * time.Microsecond}).LatencyMS; got != 1.5 {
		t.Errorf("latency_ms = %v, want 1.5", got)
	}
}

func TestRecorderRing(t *testing.T) {
	rec := NewRecorder(2)
	if got := rec.Snapshot(); len(got) != 0 {
		t.Fatalf("empty recorder: %+v", got)
	}
	report := func(i int) engine.Report {
		return engine.Report{MAC: slices.Clone(mac1), Port: "vm1", SVI: "br0", Start: t0.Add(time.Duration(i) * time.Second),
			Verified: addrs("192.0.2.10"), Programmed: addrs("192.0.2.10")}
	}
	starts := func() []time.Time {
		var out []time.Time
		for _, m := range rec.Snapshot() {
			out = append(out, m.Start)
		}
		return out
	}
	rec.Record(report(1))
	if diff := cmp.Diff([]time.Time{t0.Add(time.Second)}, starts()); diff != "" {
		t.Errorf("one recorded (-want +got):\n%s", diff)
	}
	for i := 2; i <= 5; i++ {
		rec.Record(report(i))
		if diff := cmp.Diff([]time.Time{t0.Add(time.Duration(i-1) * time.Second), t0.Add(time.Duration(i) * time.Second)}, starts()); diff != "" {
			t.Errorf("after %d recorded, the last two oldest first (-want +got):\n%s", i, diff)
		}
	}

	// The engine's slices are copied: writing them later changes nothing.
	r := report(6)
	rec.Record(r)
	r.Verified[0], r.MAC[5] = ip("192.0.2.77"), 0x77
	last := rec.Snapshot()[1]
	if last.MAC != mac1.String() || last.Verified[0] != ip("192.0.2.10") {
		t.Errorf("recorded report changed with the engine's slices: %+v", last)
	}
}

// TestRecorderConcurrent: Record (the engine's callback) and Snapshot (a
// status request) at once; run with -race.
func TestRecorderConcurrent(t *testing.T) {
	rec := NewRecorder(DefaultMigrations)
	var wg sync.WaitGroup
	wg.Go(func() {
		for i := range 1000 {
			rec.Record(engine.Report{MAC: mac1, Start: t0.Add(time.Duration(i)), Verified: addrs("192.0.2.10")})
		}
	})
	for range 100 {
		if n := len(rec.Snapshot()); n > DefaultMigrations {
			t.Fatalf("snapshot of %d, more than the ring holds", n)
		}
	}
	wg.Wait()
	if n := len(rec.Snapshot()); n != DefaultMigrations {
		t.Errorf("after 1000 reports: %d kept, want %d", n, DefaultMigrations)
	}
}

func TestFilter(t *testing.T) {
	d := Doc{Version: "v", Bindings: 3, Migrations: []Migration{{MAC: mac1.String(), Port: "a"}, {MAC: mac2.String()}, {MAC: mac1.String(), Port: "b"}}}
	got := d.Filter(mac1)
	if len(got.Migrations) != 2 || got.Migrations[0].Port != "a" || got.Migrations[1].Port != "b" || got.Bindings != 3 {
		t.Errorf("Filter(%s) = %+v", mac1, got)
	}
	if len(d.Migrations) != 3 {
		t.Errorf("Filter changed its receiver: %+v", d.Migrations)
	}
	if got := d.Filter(net.HardwareAddr{2, 0, 0, 0, 0, 1}); len(got.Migrations) != 0 {
		t.Errorf("unknown MAC: %+v", got.Migrations)
	}
}

func socketPath(t *testing.T) string { return filepath.Join(t.TempDir(), "s.sock") }

func TestListen(t *testing.T) {
	t.Run("mode 0660, removed at close", func(t *testing.T) {
		path := socketPath(t)
		ln, err := Listen(path)
		if err != nil {
			t.Fatal(err)
		}
		fi, err := os.Lstat(path)
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode().Type() != os.ModeSocket || fi.Mode().Perm() != 0o660 {
			t.Errorf("socket mode %v, want a socket with 0660", fi.Mode())
		}
		ln.Close()
		if _, err := os.Lstat(path); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("socket file after close: %v", err)
		}
	})
	t.Run("stale socket removed", func(t *testing.T) {
		path := socketPath(t)
		old, err := net.ListenUnix("unix", &net.UnixAddr{Name: path, Net: "unix"})
		if err != nil {
			t.Fatal(err)
		}
		old.SetUnlinkOnClose(false) // as a killed daemon leaves it
		old.Close()
		ln, err := Listen(path)
		if err != nil {
			t.Fatalf("over a stale socket: %v", err)
		}
		ln.Close()
	})
	t.Run("a live daemon's socket is kept", func(t *testing.T) {
		path := socketPath(t)
		live, err := Listen(path)
		if err != nil {
			t.Fatal(err)
		}
		defer live.Close()
		if _, err := Listen(path); !errors.Is(err, ErrInUse) {
			t.Errorf("Listen over a live socket: %v, want ErrInUse", err)
		}
		if _, err := os.Lstat(path); err != nil {
			t.Errorf("the live socket was removed: %v", err)
		}
	})
	t.Run("a regular file is kept", func(t *testing.T) {
		path := socketPath(t)
		os.WriteFile(path, []byte("mine"), 0o600)
		if _, err := Listen(path); err == nil {
			t.Error("Listen over a regular file: no error")
		}
		if b, _ := os.ReadFile(path); string(b) != "mine" {
			t.Errorf("the regular file was touched: %q", b)
		}
	})
	t.Run("missing directory", func(t *testing.T) {
		if _, err := Listen(filepath.Join(t.TempDir(), "nope", "s.sock")); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("Listen in a missing directory: %v, want ErrNotExist", err)
		}
	})
}

func TestServe(t *testing.T) {
	path := socketPath(t)
	ln, err := Listen(path)
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	rec := NewRecorder(DefaultMigrations)
	rec.Record(engine.Report{MAC: mac1, Port: "vm1", SVI: "br0", Start: t0,
		Verified: addrs("192.0.2.10"), Failed: addrs("192.0.2.99"), Programmed: addrs("192.0.2.10"), Latency: 2 * time.Millisecond})
	doc := func() Doc {
		return Doc{Version: "1.2.3", Started: t0, Ports: []Port{{Name: "vm1", IfIndex: 4}}, Bindings: 2,
			Counters: map[string]uint64{"cycle": 1}, Migrations: rec.Snapshot()}
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- Serve(ctx, ln, doc) }()

	for i := range 2 { // one document per connection, then EOF
		c, err := net.Dial("unix", path)
		if err != nil {
			t.Fatal(err)
		}
		c.SetReadDeadline(time.Now().Add(5 * time.Second))
		b, err := io.ReadAll(c)
		c.Close()
		if err != nil {
			t.Fatalf("connection %d: %v", i, err)
		}
		var got Doc
		if err := json.Unmarshal(b, &got); err != nil {
			t.Fatalf("connection %d: %v: %s", i, err, b)
		}
		if diff := cmp.Diff(doc(), got, cmp.Comparer(func(a, b netip.Addr) bool { return a == b })); diff != "" {
			t.Errorf("connection %d (-want +got):\n%s", i, diff)
		}
	}

	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("Serve after cancel: %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Serve did not return after its context ended")
	}
	if _, err := os.Lstat(path); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("socket file after Serve returned: %v", err)
	}
}
