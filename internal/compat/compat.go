// Package compat records which switch layouts a test run exercised, on which
// kernel and how (live in namespaces, live with FRR, or from fixtures), so
// that README's compatibility table is generated from the last run
// (scripts/gen-compat) rather than written by hand.
//
// A test calls Note; when RARP_REPLAY_COMPAT_DIR names a directory, the
// test's outcome is appended to results.jsonl there when it ends. Without it
// Note does nothing, so a plain `go test` leaves no files behind. Shell tests
// (scripts/lab) append the same JSON lines themselves.
package compat

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// How a layout was exercised.
const (
	Live    = "live"    // built in namespaces on a real kernel, frames sent and captured
	Fixture = "fixture" // replayed from captures and iproute2 dumps, no kernel involved
)

// Test beds.
const (
	Host = "host" // the machine's own kernel
	UML  = "uml"  // user-mode Linux (make test-uml)
)

// Results are: Pass, Fail, Skip.
const (
	Pass = "pass"
	Fail = "fail"
	Skip = "skip"
)

// Record is one line of results.jsonl.
type Record struct {
	Layout string    `json:"layout"` // a row of the table: scripts/gen-compat's catalog
	How    string    `json:"how"`    // Live or Fixture
	Bed    string    `json:"bed"`    // Host or UML; "" for fixtures
	Kernel string    `json:"kernel"` // uname -r; "" for fixtures
	FRR    string    `json:"frr"`    // FRR's version when FRR took part, else ""
	Test   string    `json:"test"`   // the test that produced it
	Result string    `json:"result"` // Pass, Fail or Skip
	Time   time.Time `json:"time"`
}

// EnvDir is the environment variable naming the results directory.
const EnvDir = "RARP_REPLAY_COMPAT_DIR"

// Note records, when t ends, that t exercised layout the way how says, with
// its outcome. For Live it also records the test bed (UML when
// RARP_REPLAY_UML=1) and the running kernel.
func Note(t testing.TB, layout, how string) {
	t.Helper()
	dir := os.Getenv(EnvDir)
	if dir == "" {
		return
	}
	r := Record{Layout: layout, How: how, Test: t.Name()}
	if how == Live {
		r.Bed, r.Kernel = Bed(), KernelRelease()
	}
	t.Cleanup(func() {
		r.Result, r.Time = Pass, time.Now().UTC()
		switch {
		case t.Skipped():
			r.Result = Skip
		case t.Failed():
			r.Result = Fail
		}
		if err := Append(dir, r); err != nil {
			t.Errorf("compat: %v", err)
		}
	})
}

// Bed returns the test bed this process runs on.
func Bed() string {
	if os.Getenv("RARP_REPLAY_UML") == "1" {
		return UML
	}
	return Host
}

// KernelRelease returns uname -r.
func KernelRelease() string {
	var u unix.Utsname
	if err := unix.Uname(&u); err != nil {
		return "unknown"
	}
	return unix.ByteSliceToString(u.Release[:])
}

// Append adds r to dir/results.jsonl as one line, written with a single
// O_APPEND write so that concurrent tests and processes do not interleave.
func Append(dir string, r Record) error {
	b, err := json.Marshal(r)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	f, err := os.OpenFile(filepath.Join(dir, "results.jsonl"), os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o644)
	if err != nil {
		return err
	}
	if _, err := f.Write(append(b, '\n')); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// Read returns the records in dir/results.jsonl, in file order.
func Read(dir string) ([]Record, error) {
	b, err := os.ReadFile(filepath.Join(dir, "results.jsonl"))
	if err != nil {
		return nil, err
	}
	var out []Record
	for i, line := range bytes.Split(b, []byte("\n")) {
		if len(bytes.TrimSpace(line)) == 0 {
			continue
		}
		var r Record
		if err := json.Unmarshal(line, &r); err != nil {
			return nil, fmt.Errorf("results.jsonl line %d: %w", i+1, err)
		}
		out = append(out, r)
	}
	return out, nil
}
