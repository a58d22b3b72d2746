package main

import (
	"encoding/json"
	"errors"
	"math"
	"net"
	"os"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/rarp-replay/rarp-replay/internal/nstest"
	"github.com/rarp-replay/rarp-replay/internal/status"
)

// TestStatus: `rarp-replay status` asks the running daemon over its Unix
// socket (mode 0660) for the ports it serves, its counters and its recent
// migrations with a verdict per address; --mac shows one VM's; the socket
// is gone once the daemon stopped.
func TestStatus(t *testing.T) {
	nstest.RequireRoot(t)
	bin := nstest.Binary(t)
	sw, vm := oneVM(t)
	// The VM does not own 192.0.2.99; vm2MAC is not behind the port at all.
	nstest.Sh(t, `ip -n `+sw+` neigh replace 192.0.2.99 lladdr `+vm1MAC+` dev br0 nud noarp extern_learn
ip -n `+sw+` neigh replace 192.0.2.20 lladdr `+vm2MAC+` dev br0 nud noarp extern_learn`)
	sock := t.TempDir() + "/s.sock"
	// A socket left by a daemon that was killed: removed at start.
	stale, err := net.ListenUnix("unix", &net.UnixAddr{Name: sock, Net: "unix"})
	if err != nil {
		t.Fatal(err)
	}
	stale.SetUnlinkOnClose(false)
	stale.Close()

	listen := nstest.Start(t, "ip", "netns", "exec", sw, bin, "listen", "--log-format", "json",
		"--status-socket", sock, "--probe-timeout", "100ms", "--probe-retries", "1")
	listen.WaitFor(t, `"msg":"listening"`, 10*time.Second)
	fi, err := os.Lstat(sock)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Type() != os.ModeSocket || fi.Mode().Perm() != 0o660 {
		t.Errorf("status socket mode %v, want a socket with 0660", fi.Mode())
	}
	ask := func(args ...string) string {
		t.Helper()
		return nstest.Run(t, bin, append([]string{"status", "--socket", sock}, args...)...)
	}
	askJSON := func(args ...string) status.Doc {
		t.Helper()
		out := ask(append([]string{"--json"}, args...)...)
		var d status.Doc
		if err := json.Unmarshal([]byte(out), &d); err != nil {
			t.Fatalf("status --json %v: %v\n%s", args, err, out)
		}
		return d
	}
	if d := askJSON(); len(d.Migrations) != 0 {
		t.Errorf("before any RARP: migrations %+v", d.Migrations)
	}

	nstest.Run(t, "ip", "netns", "exec", vm, bin, "send-rarp", "--mac", vm1MAC, "-i", "eth0", "--count", "1")
	listen.WaitFor(t, `"msg":"migration handled","mac":"`+vm1MAC+`"`, 5*time.Second)
	nstest.Run(t, "ip", "netns", "exec", vm, bin, "send-rarp", "--mac", vm2MAC, "-i", "eth0", "--count", "1")
	listen.WaitFor(t, `"msg":"migration handled","mac":"`+vm2MAC+`"`, 5*time.Second)

	d := askJSON()
	ifindex, err := strconv.Atoi(strings.TrimSpace(nstest.Run(t, "ip", "netns", "exec", sw, "cat", "/sys/class/net/vm1/ifindex")))
	if err != nil {
		t.Fatal(err)
	}
	wantPort := status.Port{Name: "vm1", IfIndex: ifindex, Kind: "veth", Why: "member of bridge br0 (the bridge is the SVI)",
		Bridge: "br0", STP: "forwarding", SVI: "br0"}
	if diff := cmp.Diff([]status.Port{wantPort}, d.Ports); diff != "" {
		t.Errorf("ports (-want +got):\n%s", diff)
	}
	if d.Version == "" || d.UptimeSeconds <= 0 || d.Bindings != 3 || d.BindingsKernel != 3 || d.BindingsRemembered != 0 {
		t.Errorf("version %q, uptime %v s, bindings %d (%d kernel, %d remembered); want a version, > 0, 3 (3, 0)",
			d.Version, d.UptimeSeconds, d.Bindings, d.BindingsKernel, d.BindingsRemembered)
	}
	if d.ProbesInFlight != 0 || d.MigrationsInFlight != 0 {
		t.Errorf("in flight after both migrations were handled: %d probes, %d migrations; want none", d.ProbesInFlight, d.MigrationsInFlight)
	}
	// EVPN withdraws a binding: the kernel forgets it, the daemon remembers.
	nstest.Run(t, "ip", "-n", sw, "neigh", "del", "192.0.2.20", "dev", "br0")
	deadline := time.Now().Add(5 * time.Second)
	for d := askJSON(); d.BindingsKernel != 2 || d.BindingsRemembered != 1; d = askJSON() {
		if time.Now().After(deadline) {
			t.Fatalf("after deleting 192.0.2.20: %d bindings in the kernel, %d remembered; want 2, 1", d.BindingsKernel, d.BindingsRemembered)
		}
		time.Sleep(20 * time.Millisecond)
	}
	for name, want := range map[string]uint64{"cycle": 2, "programmed": 1, "verified": 1, "failed": 2, "rarp[vm1]": 2} {
		if got := d.Counters[name]; got != want {
			t.Errorf("counter %s = %d, want %d (counters %v)", name, got, want, d.Counters)
		}
	}
	type verdicts map[string]status.Verdict
	got := map[string]verdicts{}
	for _, m := range d.Migrations {
		v := verdicts{}
		for _, a := range m.Addresses {
			v[a.IP.String()] = a.Verdict
			if (a.Verdict == status.Programmed) != (a.AnsweredMS > 0) {
				t.Errorf("%s of %s: %s, answered after %v ms; want a time for exactly the answered ones", a.IP, m.MAC, a.Verdict, a.AnsweredMS)
			}
			// A programmed address's stages: up to the answer they add up
			// to its answer time, and with the programming, to no more
			// than the migration's (its last binding's) time.
			if st := a.Stages; (a.Verdict == status.Programmed) != (st != nil) {
				t.Errorf("%s of %s: %s, stages %+v; want stages for exactly the programmed ones", a.IP, m.MAC, a.Verdict, st)
			} else if st != nil {
				const slack = 0.0035 // each part rounded down to the µs
				if toAnswer := st.Probe + st.Answer + st.Handle; math.Abs(toAnswer-a.AnsweredMS) > slack || st.Program < 0 ||
					toAnswer+st.Program > m.LatencyMS+slack {
					t.Errorf("%s of %s: stages %+v, answered after %v ms, migration %v ms; want the stages to add up", a.IP, m.MAC, st, a.AnsweredMS, m.LatencyMS)
				}
			}
		}
		got[m.MAC] = v
		if m.Port != "vm1" || m.SVI != "br0" || m.Start.IsZero() {
			t.Errorf("migration %+v: want port vm1, SVI br0, a start time", m)
		}
		if (m.MAC == vm1MAC) != (m.LatencyMS > 0) {
			t.Errorf("migration of %s: latency_ms %v, want > 0 only where something was programmed", m.MAC, m.LatencyMS)
		}
	}
	want := map[string]verdicts{
		vm1MAC: {"192.0.2.10": status.Programmed, "192.0.2.99": status.Unanswered},
		vm2MAC: {"192.0.2.20": status.Unanswered},
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("migrations' verdicts (-want +got):\n%s", diff)
	}
	if len(d.Migrations) != 2 || d.Migrations[0].MAC != vm1MAC {
		t.Errorf("migrations %+v: want vm1's, then vm2's", d.Migrations)
	}

	// --mac: only that VM's.
	for _, mac := range []string{vm1MAC, vm2MAC} {
		f := askJSON("--mac", mac)
		if len(f.Migrations) != 1 || f.Migrations[0].MAC != mac {
			t.Errorf("--mac %s: migrations %+v", mac, f.Migrations)
		}
	}
	if f := askJSON("--mac", "02:00:5e:10:00:77"); len(f.Migrations) != 0 {
		t.Errorf("--mac of a VM never seen: %+v", f.Migrations)
	}

	// For humans.
	text := ask()
	t.Logf("rarp-replay status:\n%s", text)
	for _, s := range []string{"vm1 (" + strconv.Itoa(ifindex) + ")", "veth, member of bridge br0 (the bridge is the SVI), STP forwarding: SVI br0",
		"3: 2 in the kernel, 1 remembered", "0 probes, 0 migrations", vm1MAC, "192.0.2.10 programmed (answered after ", "192.0.2.99 unanswered", vm2MAC} {
		if !strings.Contains(text, s) {
			t.Errorf("text output lacks %q:\n%s", s, text)
		}
	}
	if text := ask("--mac", vm2MAC); strings.Contains(text, vm1MAC) || !strings.Contains(text, vm2MAC) {
		t.Errorf("text output --mac %s:\n%s", vm2MAC, text)
	}

	listen.Stop(t, syscall.SIGTERM, 5*time.Second)
	if code := listen.Cmd.ProcessState.ExitCode(); code != 0 {
		t.Errorf("exit status after SIGTERM %d, want 0", code)
	}
	if _, err := os.Lstat(sock); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("status socket after the daemon stopped: %v", err)
	}
	// A --status-socket given but impossible is an error at start (the
	// default one, whose directory systemd creates, only a warning).
	if out, err := nstest.Output("ip", "netns", "exec", sw, bin, "listen", "--status-socket", "/nonexistent/s.sock"); err == nil || !strings.Contains(err.Error(), "--status-socket") {
		t.Errorf("listen --status-socket in a missing directory: %v, %s; want an error naming --status-socket", err, out)
	}
	if out, err := nstest.Output(bin, "status", "--socket", sock); err == nil || !strings.Contains(err.Error(), "is the daemon running") {
		t.Errorf("status without a daemon: %v, %s; want an error asking whether the daemon runs", err, out)
	}
}
