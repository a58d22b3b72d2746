// Package nstest helps tests that build their own networks in Linux network
// namespaces: it skips them with a clear reason when not root (and fails
// them instead when RARP_REPLAY_REQUIRE_ROOT is set, as CI does), names
// namespaces uniquely per run, and removes everything it created when the
// test ends, also on failure.
package nstest

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/vishvananda/netns"
)

// RequireRoot skips t unless it runs as root with iproute2 available; when
// RARP_REPLAY_REQUIRE_ROOT is set it fails t instead of skipping.
func RequireRoot(t testing.TB) {
	t.Helper()
	must := os.Getenv("RARP_REPLAY_REQUIRE_ROOT") != ""
	if os.Geteuid() != 0 {
		if must {
			t.Fatal("RARP_REPLAY_REQUIRE_ROOT is set but the test does not run as root")
		}
		t.Skip("needs root: creates network namespaces, veth pairs and bridges (run the tests with sudo)")
	}
	if _, err := exec.LookPath("ip"); err != nil {
		t.Fatal("iproute2's ip is missing: apt-get install iproute2")
	}
}

// Namespace creates a network namespace named prefix-<random> and deletes
// it when the test ends.
func Namespace(t testing.TB, prefix string) string {
	t.Helper()
	b := make([]byte, 3)
	rand.Read(b)
	name := fmt.Sprintf("rr-%s-%s", prefix, hex.EncodeToString(b))
	Run(t, "ip", "netns", "add", name)
	t.Cleanup(func() { exec.Command("ip", "netns", "del", name).Run() })
	Run(t, "ip", "-n", name, "link", "set", "lo", "up")
	return name
}

// Run runs a command and fails the test if it fails. It returns stdout.
func Run(t testing.TB, name string, args ...string) string {
	t.Helper()
	out, err := Output(name, args...)
	if err != nil {
		t.Fatalf("%s %s: %v", name, strings.Join(args, " "), err)
	}
	return out
}

// Output runs a command and returns its stdout; the error includes stderr.
// A command still running after a minute is killed.
func Output(name string, args ...string) (string, error) {
	var stdout, stderr bytes.Buffer
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return stdout.String(), fmt.Errorf("%w: %s", err, strings.TrimSpace(stderr.String()))
	}
	return stdout.String(), nil
}

// Sh runs a shell script with bash -e and fails the test if it fails.
func Sh(t testing.TB, script string) string {
	t.Helper()
	return Run(t, "bash", "-ec", script)
}

// Proc is a background process the test started.
type Proc struct {
	Cmd    *exec.Cmd
	mu     sync.Mutex
	lines  []string
	notify chan struct{}
	done   chan struct{}
}

// Start starts a command in the background, collecting its stdout and
// stderr lines, and kills it (by its PID) when the test ends.
func Start(t testing.TB, name string, args ...string) *Proc {
	t.Helper()
	p := &Proc{Cmd: exec.Command(name, args...), notify: make(chan struct{}, 1), done: make(chan struct{})}
	pr, pw := io.Pipe()
	p.Cmd.Stdout, p.Cmd.Stderr = pw, pw
	if err := p.Cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", name, err)
	}
	go func() {
		p.Cmd.Wait()
		pw.Close()
	}()
	go func() {
		defer close(p.done)
		sc := bufio.NewScanner(pr)
		sc.Buffer(make([]byte, 1<<20), 1<<20)
		for sc.Scan() {
			p.mu.Lock()
			p.lines = append(p.lines, sc.Text())
			p.mu.Unlock()
			select {
			case p.notify <- struct{}{}:
			default:
			}
		}
	}()
	t.Cleanup(func() {
		if p.Cmd.ProcessState == nil {
			p.Cmd.Process.Kill()
		}
		<-p.done
	})
	return p
}

// Lines returns the output lines so far.
func (p *Proc) Lines() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]string(nil), p.lines...)
}

// WaitFor waits until a line contains substr and returns it.
func (p *Proc) WaitFor(t testing.TB, substr string, timeout time.Duration) string {
	t.Helper()
	deadline := time.After(timeout)
	for {
		for _, l := range p.Lines() {
			if strings.Contains(l, substr) {
				return l
			}
		}
		select {
		case <-p.notify:
		case <-p.done:
			for _, l := range p.Lines() {
				if strings.Contains(l, substr) {
					return l
				}
			}
			t.Fatalf("%s exited without printing %q; output:\n%s", p.Cmd.Path, substr, strings.Join(p.Lines(), "\n"))
		case <-deadline:
			t.Fatalf("no %q from %s within %s; output:\n%s", substr, p.Cmd.Path, timeout, strings.Join(p.Lines(), "\n"))
		}
	}
}

// Stop sends sig and waits for the process to exit.
func (p *Proc) Stop(t testing.TB, sig syscall.Signal, timeout time.Duration) {
	t.Helper()
	p.Cmd.Process.Signal(sig)
	select {
	case <-p.done:
	case <-time.After(timeout):
		p.Cmd.Process.Kill()
		t.Fatalf("%s did not exit within %s of %v", p.Cmd.Path, timeout, sig)
	}
}

// Main runs the tests of a package that uses Binary, then removes the
// binary. Call it from TestMain: os.Exit(nstest.Main(m)).
func Main(m *testing.M) int {
	code := m.Run()
	if buildPath != "" {
		os.RemoveAll(filepath.Dir(buildPath))
	}
	return code
}

var (
	buildOnce sync.Once
	buildPath string
	buildErr  error
)

// Binary builds ./cmd/rarp-replay once per test binary and returns its path.
// When RARP_REPLAY_BIN is set it returns that path instead, building
// nothing (inside user-mode Linux, where `go build` is slow: make test-uml
// builds the binary on the host and passes it in).
func Binary(t testing.TB) string {
	t.Helper()
	if p := os.Getenv("RARP_REPLAY_BIN"); p != "" {
		if _, err := os.Stat(p); err != nil {
			t.Fatalf("RARP_REPLAY_BIN: %v", err)
		}
		return p
	}
	buildOnce.Do(func() {
		_, file, _, _ := runtime.Caller(0)
		root := filepath.Join(filepath.Dir(file), "..", "..")
		dir, err := os.MkdirTemp("", "rarp-replay-bin-")
		if err != nil {
			buildErr = err
			return
		}
		os.Chmod(dir, 0o755) // tests also run it as an unprivileged user
		buildPath = filepath.Join(dir, "rarp-replay")
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
		defer cancel()
		cmd := exec.CommandContext(ctx, "go", "build", "-o", buildPath, "./cmd/rarp-replay")
		cmd.Dir = root
		if out, err := cmd.CombinedOutput(); err != nil {
			buildErr = fmt.Errorf("go build: %v\n%s", err, out)
		}
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return buildPath
}

// InNamespace runs f on an OS thread that is in the namespace ns while f
// runs: the sockets f opens (netlink, packet) belong to ns and stay there.
func InNamespace(t testing.TB, ns string, f func()) {
	t.Helper()
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	orig, err := netns.Get()
	if err != nil {
		t.Fatal(err)
	}
	defer orig.Close()
	h, err := netns.GetFromName(ns)
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	if err := netns.Set(h); err != nil {
		t.Fatal(err)
	}
	defer func() {
		if err := netns.Set(orig); err != nil {
			panic("cannot return to the test's network namespace: " + err.Error())
		}
	}()
	f()
}
