package main

import (
	"os"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/rarp-replay/rarp-replay/internal/nstest"
)

// TestListenSignals: SIGHUP, SIGUSR1 and SIGUSR2 do not end the daemon
// (the Go runtime's default for SIGHUP would): each is logged and it goes on
// handling migrations. SIGTERM and SIGINT stop it with exit status 0, after
// it saved its state (or dumped its mirror).
func TestListenSignals(t *testing.T) {
	nstest.RequireRoot(t)
	bin := nstest.Binary(t)
	sw, vm := oneVM(t)
	state := t.TempDir() + "/state.json"

	listen := nstest.Start(t, "ip", "netns", "exec", sw, bin, "listen", "--log-format", "json",
		"--state-file", state, "--state-interval", "1h")
	line := listen.WaitFor(t, `"msg":"listening"`, 10*time.Second)
	if !regexpMatch(`"version":"[^"]+"`, line) {
		t.Errorf("the listening line names no version: %s", line)
	}
	for _, s := range []struct {
		sig  syscall.Signal
		want string
	}{
		{syscall.SIGHUP, `"level":"INFO","msg":"SIGHUP: nothing to reload`},
		{syscall.SIGUSR1, `"level":"INFO","msg":"SIGUSR1 ignored: it dumps the neighbor mirror when --dump-neigh is set`},
		{syscall.SIGUSR2, `"level":"INFO","msg":"SIGUSR2 ignored`},
	} {
		if err := listen.Cmd.Process.Signal(s.sig); err != nil {
			t.Fatal(err)
		}
		listen.WaitFor(t, s.want, 5*time.Second) // fails at once if the signal ended the daemon
	}

	// Still serving.
	nstest.Run(t, "ip", "netns", "exec", vm, bin, "send-rarp", "--mac", vm1MAC, "-i", "eth0", "--count", "1")
	listen.WaitFor(t, `"msg":"migration handled"`, 5*time.Second)
	waitLocal(t, sw, vm1MAC, "192.0.2.10")

	if _, err := os.Stat(state); err == nil {
		t.Fatalf("%s exists before the daemon stopped (--state-interval 1h): the exit save is not tested", state)
	}
	listen.Stop(t, syscall.SIGTERM, 5*time.Second)
	if code := listen.Cmd.ProcessState.ExitCode(); code != 0 {
		t.Errorf("exit status after SIGTERM %d (%s), want 0", code, listen.Cmd.ProcessState)
	}
	stoppedCounters(t, listen) // fails without a "stopped" line
	if b, err := os.ReadFile(state); err != nil || !strings.Contains(string(b), vm1MAC) {
		t.Errorf("state not saved at exit: %q, %v", b, err)
	}

	// With --dump-neigh, SIGUSR1 dumps the mirror; SIGINT stops with 0.
	dump := t.TempDir() + "/neigh.json"
	listen = nstest.Start(t, "ip", "netns", "exec", sw, bin, "listen", "--log-format", "json", "--dump-neigh", dump)
	listen.WaitFor(t, `"msg":"listening"`, 10*time.Second)
	listen.Cmd.Process.Signal(syscall.SIGUSR1)
	listen.WaitFor(t, `"msg":"dumped neighbor mirror"`, 5*time.Second)
	if b, err := os.ReadFile(dump); err != nil || !strings.Contains(string(b), "192.0.2.10") {
		t.Errorf("SIGUSR1 dump: %q, %v", b, err)
	}
	listen.Stop(t, syscall.SIGINT, 5*time.Second)
	if code := listen.Cmd.ProcessState.ExitCode(); code != 0 {
		t.Errorf("exit status after SIGINT %d (%s), want 0", code, listen.Cmd.ProcessState)
	}
	stoppedCounters(t, listen)
}
