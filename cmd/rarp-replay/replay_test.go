package main

import (
	"bytes"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/rarp-replay/rarp-replay/internal/nstest"
)

// TestReplaySignals: `replay` on a FIFO stops within 2 s of SIGINT or
// SIGTERM, with exit status 130 or 143, both while the FIFO has no writer
// (the open blocks in the kernel) and while a writer that has written part
// of a capture holds it open (a read blocks); in the second case what was
// decided so far has been printed and the probes written. No root needed.
func TestReplaySignals(t *testing.T) {
	bin := nstest.Binary(t)
	corpus := filepath.Join("..", "..", "pcaps", "corpus")
	capture, err := os.ReadFile(filepath.Join(corpus, "qemu-announce.pcap"))
	if err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		name   string
		writer bool
		sig    syscall.Signal
		status int
	}{
		{"no writer, SIGINT", false, syscall.SIGINT, 130},
		{"no writer, SIGTERM", false, syscall.SIGTERM, 143},
		{"writer holding the FIFO open, SIGINT", true, syscall.SIGINT, 130},
		{"writer holding the FIFO open, SIGTERM", true, syscall.SIGTERM, 143},
	} {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			fifo, probes := filepath.Join(dir, "capture.pcap"), filepath.Join(dir, "probes.pcap")
			if err := syscall.Mkfifo(fifo, 0o600); err != nil {
				t.Fatal(err)
			}
			p := nstest.Start(t, bin, "replay", "--log-level", "debug", "--neigh", filepath.Join(corpus, "neigh.json"),
				"--svi-mac", "02:00:5e:10:00:01", "--svi-addr", "192.0.2.1/24", "--svi-addr", "2001:db8:10::1/64",
				"--write", probes, fifo)
			if tt.writer {
				// Blocks until replay opens the FIFO for reading.
				w, err := os.OpenFile(fifo, os.O_WRONLY, 0)
				if err != nil {
					t.Fatal(err)
				}
				defer w.Close()
				if _, err := w.Write(capture); err != nil {
					t.Fatal(err)
				}
				// The capture's last frame, printed while the writer
				// still holds the FIFO open: replay is waiting in a read.
				p.WaitFor(t, "#8 +800.0ms duplicate", 10*time.Second)
			} else {
				// Logged after the signal handlers are installed, just
				// before the open that waits for a writer.
				p.WaitFor(t, `msg="opening capture"`, 10*time.Second)
			}
			p.Stop(t, tt.sig, 2*time.Second)
			if got := p.Cmd.ProcessState.ExitCode(); got != tt.status {
				t.Errorf("exit status %d, want %d; output:\n%s", got, tt.status, strings.Join(p.Lines(), "\n"))
			}
			out := strings.Join(p.Lines(), "\n")
			if !strings.Contains(out, "interrupted") {
				t.Errorf("no word of the interruption; output:\n%s", out)
			}
			if !tt.writer {
				if _, err := os.Stat(probes); !os.IsNotExist(err) {
					t.Errorf("probes file with nothing replayed: %v", err)
				}
				return
			}
			for _, want := range []string{"#1 +0.0ms probe rarp", "program ip neigh replace 192.0.2.10 ", "program ip neigh replace 2001:db8:10::10 "} {
				if !strings.Contains(out, want) {
					t.Errorf("no %q in the output:\n%s", want, out)
				}
			}
			// The four probes the RARP sent and the two retries due by the
			// last frame's time (+200 and +600 ms; see qemu-announce.golden),
			// in a complete pcap file.
			r := openCapture(t, probes)
			n := 0
			for ; ; n++ {
				if _, _, err := r.ReadPacketData(); err == io.EOF {
					break
				} else if err != nil {
					t.Fatalf("probe %d: %v", n+1, err)
				}
			}
			if n != 6 {
				t.Errorf("%d probes written, want 6", n)
			}
		})
	}
}

// TestReplayCut runs the binary on captures cut short (pcaps/cut): every
// complete frame is decided and printed on standard output, the open probe
// cycle runs to its end (its migration line and retries), the --write
// probes file is a complete capture, and then a single warning on standard
// error says where the file ends, with exit status 3. The same capture
// uncut prints the same up to the cut and exits 0. No root needed.
func TestReplayCut(t *testing.T) {
	bin := nstest.Binary(t)
	pcaps := filepath.Join("..", "..", "pcaps")
	for _, tt := range []struct {
		file, whole, warning string
		frames               int
	}{
		{"qemu-announce-cut-data.pcap", "qemu-announce.pcap", "the file ends inside the record data of frame 8; the 7 complete frames before it were replayed", 7},
		{"qemu-announce-cut-header.pcap", "qemu-announce.pcap", "the file ends inside the record header of frame 8; the 7 complete frames before it were replayed", 7},
		{"multi-interface-cut.pcapng", "multi-interface.pcapng", "the file ends inside the block of frame 6; the 5 complete frames before it were replayed", 5},
	} {
		t.Run(tt.file, func(t *testing.T) {
			run := func(capture string) (stdout, stderr string, status int, probes int) {
				t.Helper()
				written := filepath.Join(t.TempDir(), "probes.pcap")
				cmd := exec.Command(bin, "replay", "--neigh", filepath.Join(pcaps, "corpus", "neigh.json"),
					"--svi-mac", "02:00:5e:10:00:01", "--svi-addr", "192.0.2.1/24", "--svi-addr", "2001:db8:10::1/64",
					"--write", written, capture)
				var out, errs bytes.Buffer
				cmd.Stdout, cmd.Stderr = &out, &errs
				err := cmd.Run()
				var ee *exec.ExitError
				if err != nil && !errors.As(err, &ee) {
					t.Fatal(err)
				}
				r := openCapture(t, written)
				for ; ; probes++ {
					if _, _, err := r.ReadPacketData(); err == io.EOF {
						break
					} else if err != nil {
						t.Fatalf("%s: probe %d: %v", written, probes+1, err)
					}
				}
				return out.String(), errs.String(), cmd.ProcessState.ExitCode(), probes
			}
			stdout, stderr, status, probes := run(filepath.Join(pcaps, "cut", tt.file))
			if status != 3 {
				t.Errorf("exit status %d, want 3", status)
			}
			want := "rarp-replay: warning: " + filepath.Join(pcaps, "cut", tt.file) + ": capture cut short: " + tt.warning + "\n"
			if stderr != want {
				t.Errorf("stderr\n%q\nwant\n%q", stderr, want)
			}
			if n := strings.Count("\n"+stdout, "\n#"); n != tt.frames {
				t.Errorf("%d frames decided, want %d:\n%s", n, tt.frames, stdout)
			}
			if !strings.Contains(stdout, "\nmigration mac=02:00:5e:10:00:0a ") {
				t.Errorf("no migration line:\n%s", stdout)
			}
			if probes == 0 {
				t.Error("no probes written")
			}
			// The uncut capture: the same frames first, then more; exit 0,
			// nothing on stderr.
			wout, werr, wstatus, _ := run(filepath.Join(pcaps, "corpus", tt.whole))
			if wstatus != 0 || werr != "" {
				t.Errorf("uncut %s: exit status %d, stderr %q", tt.whole, wstatus, werr)
			}
			var cutFrames, wholeFrames []string
			for _, l := range strings.Split(stdout, "\n") {
				if strings.HasPrefix(l, "#") {
					cutFrames = append(cutFrames, l)
				}
			}
			for _, l := range strings.Split(wout, "\n") {
				if strings.HasPrefix(l, "#") && len(wholeFrames) < len(cutFrames) {
					wholeFrames = append(wholeFrames, l)
				}
			}
			if diff := cmp.Diff(wholeFrames, cutFrames); diff != "" {
				t.Errorf("frames differ from the uncut capture's (-uncut +cut):\n%s", diff)
			}
		})
	}
}
