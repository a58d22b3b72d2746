package main

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"maps"
	"math"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/rarp-replay/rarp-replay/internal/engine"
	"github.com/rarp-replay/rarp-replay/internal/metrics"
	"github.com/rarp-replay/rarp-replay/internal/nstest"
)

// TestListenMetricsFlood (issue 12, item 2): a client holding 1,000
// keep-alive connections to the metrics port of a daemon limited to 256
// file descriptors. The daemon holds at most the connection cap of them,
// refuses the rest, and keeps working: it opens a capture handle for a port
// created during the flood, saves its state, programs a migration, and
// /metrics answers once the flood's connections are gone.
func TestListenMetricsFlood(t *testing.T) {
	nstest.RequireRoot(t)
	if _, err := exec.LookPath("prlimit"); err != nil {
		t.Fatal("prlimit (util-linux) is missing")
	}
	const conns, fdLimit = 1000, 256
	bin := nstest.Binary(t)
	sw, vm := oneVM(t)
	state := t.TempDir() + "/state.json"
	listen := nstest.Start(t, "ip", "netns", "exec", sw, "prlimit", fmt.Sprintf("--nofile=%d:%d", fdLimit, fdLimit),
		bin, "listen", "--metrics-addr", "127.0.0.1:9465", "--state-file", state, "--state-interval", "200ms",
		"--log-format", "json", "--log-level", "debug")
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("daemon:\n%s", strings.Join(listen.Lines(), "\n"))
		}
	})
	listen.WaitFor(t, `"msg":"listening"`, 10*time.Second)
	listen.WaitFor(t, `"msg":"saved state"`, 10*time.Second)
	// ip netns exec and prlimit exec the daemon: it has their PID.
	pid := listen.Cmd.Process.Pid
	if exe, err := os.Readlink(fmt.Sprintf("/proc/%d/exe", pid)); err != nil || filepath.Base(exe) != "rarp-replay" {
		t.Fatalf("process %d is %q (%v), not the daemon", pid, exe, err)
	}
	fdsBefore := len(daemonFDs(t, pid))

	flood := startMetricsFlood(t, sw, "127.0.0.1:9465", conns)
	t.Logf("flood: %d connections answered and held open, %d refused, %d unanswered", flood.served, flood.refused, flood.unanswered)
	held, fds := metricsConns(t, pid), len(daemonFDs(t, pid))
	t.Logf("daemon during the flood: %d metrics connections, %d file descriptors (%d before)", held, fds, fdsBefore)
	stateBefore, err := os.Stat(state)
	if err != nil {
		t.Fatal(err)
	}
	saves := countLines(listen, `"msg":"saved state"`)

	// During the flood: a new port, state saves, a migration.
	other := nstest.Namespace(t, "vm2")
	nstest.Sh(t, `
ip -n `+sw+` link add vm2 type veth peer name eth0 netns `+other+`
ip -n `+other+` link set eth0 up
ip -n `+sw+` link set vm2 master br0 up`)
	listen.WaitFor(t, `"msg":"port added","ifname":"vm2"`, 10*time.Second)
	waitLines(t, listen, `"msg":"saved state"`, saves+2, 10*time.Second)
	nstest.Run(t, "ip", "netns", "exec", vm, bin, "send-rarp", "--mac", vm1MAC, "-i", "eth0") // QEMU's five
	waitLocal(t, sw, vm1MAC, "192.0.2.10")
	stateAfter, err := os.Stat(state)
	if err != nil {
		t.Fatal(err)
	}

	flood.stop(t)
	scrape := getWhenAnswered(t, sw, "http://127.0.0.1:9465/metrics", 10*time.Second)
	listen.Stop(t, syscall.SIGTERM, 5*time.Second)

	limit := metrics.DefaultOptions.MaxConns
	if held > limit || fds > fdsBefore+limit+4 {
		// +4: a refused connection's instant, a state save's file, slack.
		t.Errorf("during the flood the daemon held %d metrics connections and %d descriptors (%d before), want at most %d connections",
			held, fds, fdsBefore, limit)
	}
	if flood.unanswered != 0 || flood.served == 0 || flood.served > limit || flood.served+flood.refused != conns {
		t.Errorf("flood of %d: %d answered, %d refused, %d unanswered; want at most %d answered (at least one), the rest refused at once",
			conns, flood.served, flood.refused, flood.unanswered, limit)
	}
	if !stateAfter.ModTime().After(stateBefore.ModTime()) {
		t.Errorf("state file not rewritten during the flood: mtime %v, then %v", stateBefore.ModTime(), stateAfter.ModTime())
	}
	m := regexp.MustCompile(`(?m)^rarp_replay_metrics_connections_refused_total (\d+)$`).FindStringSubmatch(scrape)
	if m == nil {
		t.Errorf("/metrics has no refused connections counter:\n%s", grepLines(scrape, "metrics_connections"))
	} else if n, _ := strconv.Atoi(m[1]); n < flood.refused {
		t.Errorf("rarp_replay_metrics_connections_refused_total %d, want at least the %d the flood saw refused", n, flood.refused)
	}
	if !strings.Contains(scrape, `rarp_replay_captured_ports 2`) { // vm1 and vm2
		t.Errorf("/metrics: %s, want 2 captured ports", grepLines(scrape, "captured_ports"))
	}
	for _, l := range listen.Lines() {
		if strings.Contains(l, "too many open files") || strings.Contains(l, `"msg":"save state"`) || strings.Contains(l, `"msg":"open capture"`) {
			t.Errorf("daemon: %s", l)
		}
	}
}

// TestListenExplains (issue 15 items 6 and 7): a daemon at debug level,
// with text logs and metrics, and a VM whose MAC the leaf binds to two
// addresses, only one of which the VM holds. Before the migration /metrics
// has every counter at zero (each event, drop reason, netlink subscription,
// the port's RARPs), no migration time, and the process_* and go_*
// metrics. The migration's debug lines tell each probe sent, each retry,
// the give-up, and the programming with the entry before (NOARP
// extern_learn) and after (REACHABLE, the flag cleared); /metrics then has
// the migration's time and counts. No log line prints a Go map or struct.
func TestListenExplains(t *testing.T) {
	nstest.RequireRoot(t)
	bin := nstest.Binary(t)
	sw, vm := oneVM(t)
	// Bound to the VM's MAC, but the VM does not hold it: never answered.
	nstest.Run(t, "ip", "-n", sw, "neigh", "replace", "192.0.2.11", "lladdr", vm1MAC, "dev", "br0", "nud", "noarp", "extern_learn")
	listen := nstest.Start(t, "ip", "netns", "exec", sw, bin, "listen", "--metrics-addr", "127.0.0.1:9465", "--status-socket", "",
		"--log-level", "debug", "--log-format", "text", "--probe-timeout", "20ms", "--probe-timeout-max", "40ms", "--probe-retries", "2")
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("daemon:\n%s", strings.Join(listen.Lines(), "\n"))
		}
	})
	listen.WaitFor(t, "msg=listening", 10*time.Second)

	before := scrape(t, sw)
	for series, v := range before {
		if strings.HasPrefix(series, "rarp_replay_") && strings.Contains(series, "_total") && v != 0 {
			t.Errorf("before any migration: %s %v, want 0", series, v)
		}
	}
	want := []string{
		`rarp_replay_rarps_total{port="vm1"}`, `rarp_replay_netlink_resyncs_total{subscription="neigh"}`,
		`rarp_replay_state_save_errors_total`, `rarp_replay_program_errors_total`, `rarp_replay_migrations_total`,
		`rarp_replay_last_migration_timestamp_seconds`,
		"process_start_time_seconds", "process_open_fds", "process_resident_memory_bytes", "go_goroutines", "go_info",
	}
	for _, reason := range metrics.DropReasons {
		want = append(want, fmt.Sprintf("rarp_replay_drops_total{reason=%q}", reason))
	}
	for _, series := range want {
		if !slices.ContainsFunc(slices.Collect(maps.Keys(before)), func(s string) bool {
			return s == series || strings.HasPrefix(s, series+"{")
		}) {
			t.Errorf("before any migration /metrics has no %s", series)
		}
	}
	if v := before["rarp_replay_last_migration_timestamp_seconds"]; v != 0 {
		t.Errorf("last migration %v before any, want 0", v)
	}

	sent := time.Now()
	nstest.Run(t, "ip", "netns", "exec", vm, bin, "send-rarp", "--mac", vm1MAC, "-i", "eth0", "--count", "1")
	listen.WaitFor(t, `msg="migration handled"`, 10*time.Second)
	after := scrape(t, sw)
	listen.Stop(t, syscall.SIGTERM, 5*time.Second)

	if at := after["rarp_replay_last_migration_timestamp_seconds"]; at < float64(sent.Unix()) || at > float64(time.Now().Unix()+1) {
		t.Errorf("last migration at %v, want between the RARP (%d) and now", at, sent.Unix())
	}
	for series, n := range map[string]float64{
		"rarp_replay_migrations_total": 1, "rarp_replay_bindings_programmed_total": 1, "rarp_replay_bindings_failed_total": 1,
		"rarp_replay_probe_retries_total": 2, `rarp_replay_rarps_total{port="vm1"}`: 1,
	} {
		if after[series] != n {
			t.Errorf("after the migration: %s %v, want %v", series, after[series], n)
		}
	}
	// The one binding programmed, split into its stages, which add up to
	// its time from the RARP (the migration's, as it is the last one).
	var stages float64
	for _, stage := range engine.StageNames {
		count := fmt.Sprintf("rarp_replay_binding_stage_seconds_count{stage=%q}", stage)
		if _, ok := before[count]; !ok || before[count] != 0 {
			t.Errorf("before any migration: %s %v (present: %v), want 0", count, before[count], ok)
		}
		if after[count] != 1 {
			t.Errorf("after the migration: %s %v, want 1 (the one binding programmed)", count, after[count])
		}
		stages += after[fmt.Sprintf("rarp_replay_binding_stage_seconds_sum{stage=%q}", stage)]
	}
	if total := after["rarp_replay_rarp_to_programmed_seconds_sum"]; total <= 0 || math.Abs(stages-total) > 1e-6 {
		t.Errorf("stages add up to %v s, want the RARP → programmed time %v s", stages, total)
	}

	// The story of each address, at debug level, in order.
	type step struct {
		msg   string
		attrs map[string]string
	}
	lines := listen.Lines()
	next := map[string]int{} // by address: where its next step is looked for
	for _, s := range []step{
		{"probing", map[string]string{"mac": vm1MAC, "port": "vm1", "svi": "br0", "ips": "[192.0.2.10 192.0.2.11]"}},
		{"probe sent", map[string]string{"ip": "192.0.2.10", "mac": vm1MAC, "port": "vm1", "svi": "br0", "attempt": "1", "wait_ms": "20"}},
		{"answer", map[string]string{"ip": "192.0.2.10", "mac": vm1MAC, "port": "vm1", "attempt": "1"}},
		{"verified: programming", map[string]string{"ip": "192.0.2.10", "mac": vm1MAC}},
		{"programmed neighbor", map[string]string{"ip": "192.0.2.10", "mac": vm1MAC,
			"old_state": "NOARP", "old_flags": "extern_learn", "old_mac": vm1MAC,
			"new_state": "REACHABLE", "new_flags": "none", "new_mac": vm1MAC}},
		{"probe sent", map[string]string{"ip": "192.0.2.11", "attempt": "1", "wait_ms": "20"}},
		{"probe unanswered: retrying", map[string]string{"ip": "192.0.2.11", "attempt": "1"}},
		{"probe sent", map[string]string{"ip": "192.0.2.11", "attempt": "2", "wait_ms": "40"}},
		{"probe unanswered: retrying", map[string]string{"ip": "192.0.2.11", "attempt": "2"}},
		{"probe sent", map[string]string{"ip": "192.0.2.11", "attempt": "3", "wait_ms": "40"}},
		{"probe unanswered: given up after every retry", map[string]string{"ip": "192.0.2.11", "attempt": "3"}},
	} {
		ip := s.attrs["ip"]
		i := slices.IndexFunc(lines[next[ip]:], func(l string) bool {
			a := logAttrs(l)
			if a["level"] != "DEBUG" || a["msg"] != s.msg {
				return false
			}
			for k, v := range s.attrs {
				if a[k] != v {
					return false
				}
			}
			return true
		})
		if i < 0 {
			t.Errorf("no debug line %q with %v after line %d", s.msg, s.attrs, next[ip])
			continue
		}
		next[ip] += i + 1
		if ip == "" { // probing: every address's story follows it
			next["192.0.2.10"], next["192.0.2.11"] = next[ip], next[ip]
		}
	}
	for _, l := range listen.Lines() {
		if strings.Contains(l, "map[") || strings.Contains(l, "&{") || strings.Contains(l, "{") {
			t.Errorf("log line with Go map or struct syntax: %s", l)
		}
	}
	if l := listen.WaitFor(t, "msg=stopped", time.Second); !strings.Contains(l, "counters.probe-retry=2") {
		t.Errorf("stopped line %s, want counters.probe-retry=2", l)
	}
}

// scrape returns the series /metrics serves on 127.0.0.1:9465 in namespace
// ns, by name{labels}, with their values.
func scrape(t *testing.T, ns string) map[string]float64 {
	t.Helper()
	out := map[string]float64{}
	for _, l := range strings.Split(httpGet(t, ns, "http://127.0.0.1:9465/metrics"), "\n") {
		if l == "" || strings.HasPrefix(l, "#") {
			continue
		}
		i := strings.LastIndexByte(l, ' ')
		v, err := strconv.ParseFloat(l[i+1:], 64)
		if i < 0 || err != nil {
			t.Fatalf("/metrics line %q: %v", l, err)
		}
		out[l[:i]] = v
	}
	return out
}

// logAttrs parses a line of slog's text format into its keys and values
// (quoted values unquoted).
func logAttrs(line string) map[string]string {
	out := map[string]string{}
	for line != "" {
		k, rest, ok := strings.Cut(line, "=")
		if !ok {
			break
		}
		var v string
		if strings.HasPrefix(rest, `"`) {
			q, err := strconv.QuotedPrefix(rest)
			if err != nil {
				break
			}
			v, _ = strconv.Unquote(q)
			rest = rest[len(q):]
		} else {
			v, rest, _ = strings.Cut(rest, " ")
			rest = " " + rest
		}
		out[k] = v
		line = strings.TrimLeft(rest, " ")
	}
	return out
}

// daemonFDs returns the targets of the file descriptors of process pid.
func daemonFDs(t *testing.T, pid int) []string {
	t.Helper()
	dir := fmt.Sprintf("/proc/%d/fd", pid)
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, e := range ents {
		if target, err := os.Readlink(dir + "/" + e.Name()); err == nil {
			out = append(out, target)
		}
	}
	return out
}

// metricsConns counts the connections to local port 9465 that process pid
// holds a descriptor for (the kernel's accept queue holds others, which
// cost the daemon nothing).
func metricsConns(t *testing.T, pid int) int {
	t.Helper()
	mine := map[string]bool{}
	for _, target := range daemonFDs(t, pid) {
		if inode, ok := strings.CutPrefix(target, "socket:["); ok {
			mine[strings.TrimSuffix(inode, "]")] = true
		}
	}
	n := 0
	for _, table := range []string{"tcp", "tcp6"} { // the daemon's network namespace's sockets
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/net/%s", pid, table))
		if err != nil {
			t.Fatal(err)
		}
		for _, l := range strings.Split(string(b), "\n")[1:] {
			f := strings.Fields(l)
			// sl local_address rem_address st ... inode (field 9); 0A is LISTEN.
			if len(f) > 9 && strings.HasSuffix(f[1], ":24F9") && f[3] != "0A" && mine[f[9]] {
				n++
			}
		}
	}
	return n
}

func countLines(p *nstest.Proc, substr string) int {
	n := 0
	for _, l := range p.Lines() {
		if strings.Contains(l, substr) {
			n++
		}
	}
	return n
}

// waitLines waits until n lines of p's output contain substr.
func waitLines(t *testing.T, p *nstest.Proc, substr string, n int, timeout time.Duration) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for countLines(p, substr) < n {
		if time.Now().After(deadline) {
			t.Fatalf("%d lines with %q within %s, want %d; output:\n%s", countLines(p, substr), substr, timeout, n, strings.Join(p.Lines(), "\n"))
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// getWhenAnswered GETs url from inside namespace ns until it is answered:
// the daemon notices the flood's connections closed a moment after they
// are, and refuses new ones until then.
func getWhenAnswered(t *testing.T, ns, url string, timeout time.Duration) string {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		cmd := exec.Command("ip", "netns", "exec", ns, os.Args[0], "-test.run=^TestHelperHTTPGet$")
		cmd.Env = append(os.Environ(), "RR_HELPER_URL="+url)
		out, err := cmd.Output()
		if body, _, ok := strings.Cut(string(out), "\n--helper-end--"); err == nil && ok {
			return body
		}
		if time.Now().After(deadline) {
			t.Fatalf("GET %s in %s: not answered within %s: %v %q", url, ns, timeout, err, out)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// metricsFlood is TestHelperMetricsFlood running in a namespace, holding
// its connections open until stop.
type metricsFlood struct {
	cmd                         *exec.Cmd
	stdin                       io.WriteCloser
	served, refused, unanswered int
}

func startMetricsFlood(t *testing.T, ns, addr string, n int) *metricsFlood {
	t.Helper()
	cmd := exec.Command("ip", "netns", "exec", ns, os.Args[0], "-test.run=^TestHelperMetricsFlood$")
	cmd.Env = append(os.Environ(), "RR_HELPER_FLOOD_ADDR="+addr, "RR_HELPER_FLOOD_CONNS="+strconv.Itoa(n))
	cmd.Stderr = os.Stderr
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if cmd.ProcessState == nil {
			cmd.Process.Kill()
			cmd.Wait()
		}
	})
	f := &metricsFlood{cmd: cmd, stdin: stdin}
	line, _ := bufio.NewReader(out).ReadString('\n')
	if _, err := fmt.Sscanf(line, "ready served=%d refused=%d unanswered=%d", &f.served, &f.refused, &f.unanswered); err != nil {
		t.Fatalf("metrics flood did not get ready: %q: %v", line, err)
	}
	return f
}

// stop closes the flood's connections and waits for it to exit.
func (f *metricsFlood) stop(t *testing.T) {
	t.Helper()
	f.stdin.Close()
	if err := f.cmd.Wait(); err != nil {
		t.Fatalf("metrics flood: %v", err)
	}
}

// TestHelperMetricsFlood is not a test: startMetricsFlood runs it in a
// namespace. It opens RR_HELPER_FLOOD_CONNS connections to
// RR_HELPER_FLOOD_ADDR at once, sends a keep-alive GET /healthz on each,
// reports how many were answered, refused (closed or reset without an
// answer) and left unanswered, then holds them all open until its stdin
// closes.
func TestHelperMetricsFlood(t *testing.T) {
	addr := os.Getenv("RR_HELPER_FLOOD_ADDR")
	if addr == "" {
		t.Skip("helper process for TestListenMetricsFlood")
	}
	n, err := strconv.Atoi(os.Getenv("RR_HELPER_FLOOD_CONNS"))
	if err != nil {
		t.Fatal(err)
	}
	var (
		mu                          sync.Mutex
		held                        []net.Conn
		served, refused, unanswered int
		wg                          sync.WaitGroup
	)
	for range n {
		wg.Go(func() {
			c, err := net.DialTimeout("tcp", addr, 10*time.Second)
			if err != nil {
				t.Errorf("dial: %v", err)
				return
			}
			mu.Lock()
			held = append(held, c)
			mu.Unlock()
			c.SetDeadline(time.Now().Add(10 * time.Second)) // the daemon answers or refuses at once
			_, err = io.WriteString(c, "GET /healthz HTTP/1.1\r\nHost: metrics\r\n\r\n")
			var resp *http.Response
			if err == nil {
				resp, err = http.ReadResponse(bufio.NewReader(c), nil)
			}
			if err == nil {
				io.ReadAll(resp.Body)
			}
			c.SetDeadline(time.Time{})
			var ne net.Error
			mu.Lock()
			defer mu.Unlock()
			switch {
			case err == nil && resp.StatusCode == http.StatusOK:
				served++
			case errors.As(err, &ne) && ne.Timeout():
				unanswered++
			case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF), errors.Is(err, syscall.ECONNRESET), errors.Is(err, syscall.EPIPE):
				refused++
			default:
				t.Errorf("GET /healthz: %v %v", resp, err)
			}
		})
	}
	wg.Wait()
	if t.Failed() {
		return
	}
	fmt.Printf("ready served=%d refused=%d unanswered=%d\n", served, refused, unanswered)
	io.Copy(io.Discard, os.Stdin) // until stopped
	for _, c := range held {
		c.Close()
	}
}
