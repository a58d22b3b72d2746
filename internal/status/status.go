// Package status answers `rarp-replay status`: a Recorder keeps the last
// migrations the engine reported, and Serve writes one JSON Doc to each
// client of the daemon's Unix socket. Reading status never blocks the
// packet path: the Recorder's mutex is held only to store or copy a
// report, and the engine's lock is never taken.
package status

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"net"
	"net/netip"
	"os"
	"slices"
	"sync"
	"time"

	"github.com/rarp-replay/rarp-replay/internal/engine"
)

// DefaultSocket is where the daemon answers unless told otherwise; systemd
// creates its directory (RuntimeDirectory=rarp-replay).
const DefaultSocket = "/run/rarp-replay/status.sock"

// DefaultMigrations is how many migrations a Recorder keeps.
const DefaultMigrations = 100

// Doc is the daemon's answer: one JSON document.
type Doc struct {
	Version       string    `json:"version"`
	Commit        string    `json:"commit"`
	Started       time.Time `json:"started"`
	UptimeSeconds float64   `json:"uptime_seconds"`
	// Ports are the ports served (those with a capture handle), by name.
	Ports []Port `json:"ports"`
	// Bindings is the size of the neighbor mirror, remembered bindings
	// included: BindingsKernel are in the kernel's table now,
	// BindingsRemembered only in the daemon's memory (the kernel deleted
	// them within --retention, or the state file brought them back).
	Bindings           int `json:"bindings"`
	BindingsKernel     int `json:"bindings_kernel"`
	BindingsRemembered int `json:"bindings_remembered"`
	// ProbesInFlight are probes waiting for an answer, MigrationsInFlight
	// the migrations whose probe cycle has not ended.
	ProbesInFlight     int `json:"probes_in_flight"`
	MigrationsInFlight int `json:"migrations_in_flight"`
	// Counters are the non-zero counters, as the "stopped" log line names
	// them (engine.Snapshot.Flat).
	Counters map[string]uint64 `json:"counters"`
	// Migrations are the last ones handled, oldest first.
	Migrations []Migration `json:"migrations"`
}

// Port is one port served, and why: the bridge it is a member of and
// the SVI each VLAN's RARPs are served by, or a stand-alone interface.
type Port struct {
	Name    string `json:"name"`
	IfIndex int    `json:"ifindex"`
	Kind    string `json:"kind,omitempty"` // veth, bond, tap, ... ("" for a plain device)
	// Why says in words why it is served, e.g. "member of bridge br0" or
	// "stand-alone L3 interface".
	Why    string `json:"why"`
	Bridge string `json:"bridge,omitempty"`
	STP    string `json:"stp_state,omitempty"`
	// SVI serves untagged RARPs (on a VLAN-aware bridge: the PVID's SVI);
	// "" when untagged frames have none.
	SVI string `json:"svi,omitempty"`
	// VLANs are a VLAN-aware bridge port's VLANs, each with its SVI.
	VLANs []PortVLAN `json:"vlans,omitempty"`
}

// PortVLAN is one VLAN of a port and the SVI serving it ("" for none:
// RARPs in it are dropped as no-svi).
type PortVLAN struct {
	VID      uint16 `json:"vid"`
	PVID     bool   `json:"pvid,omitempty"`
	Untagged bool   `json:"untagged,omitempty"`
	SVI      string `json:"svi"`
}

// Migration is one engine.Report.
type Migration struct {
	MAC        string       `json:"mac"`
	Port       string       `json:"port"`
	SVI        string       `json:"svi"`
	Start      time.Time    `json:"start"`
	Verified   []netip.Addr `json:"verified"`
	Failed     []netip.Addr `json:"failed"`
	Programmed []netip.Addr `json:"programmed"`
	// LatencyMS runs from the RARP to the last binding programmed; zero
	// when none was.
	LatencyMS float64   `json:"latency_ms"`
	Addresses []Address `json:"addresses"`
}

// Address is what became of one address bound to the VM's MAC.
type Address struct {
	IP      netip.Addr `json:"ip"`
	Verdict Verdict    `json:"verdict"`
	// Reason says why a Skipped address was not probed.
	Reason string `json:"reason,omitempty"`
	// AnsweredMS is the time from the RARP to the VM's answer, for a
	// verified (or programmed) address.
	AnsweredMS float64 `json:"answered_ms,omitempty"`
	// Stages splits a programmed address's time from the RARP to its
	// programming (engine.Stages).
	Stages *StagesMS `json:"stages_ms,omitempty"`
}

// StagesMS is engine.Stages in milliseconds: the daemon's decision (and
// the waits of probes the VM did not answer), the VM's answer, the
// daemon's queue, the programming.
type StagesMS struct {
	Probe   float64 `json:"probe"`
	Answer  float64 `json:"answer"`
	Handle  float64 `json:"handle"`
	Program float64 `json:"program"`
}

func stagesMS(st engine.Stages, ok bool) *StagesMS {
	if !ok {
		return nil
	}
	ms := func(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }
	return &StagesMS{Probe: ms(st.Probe), Answer: ms(st.Answer), Handle: ms(st.Handle), Program: ms(st.Program)}
}

// Verdict is what became of one probed address.
type Verdict string

// Verdicts.
const (
	// Programmed: the VM answered and the binding was programmed.
	Programmed Verdict = "programmed"
	// Verified: the VM answered, but nothing was programmed (--dry-run, or
	// the kernel refused: see the daemon's log).
	Verified Verdict = "verified"
	// Unanswered: no answer after every retry.
	Unanswered Verdict = "unanswered"
	// Skipped: bound to the MAC but not probed (Reason says why).
	Skipped Verdict = "skipped"
)

// FromReport converts a report, with a verdict per address (sorted).
func FromReport(r engine.Report) Migration {
	m := Migration{
		MAC: r.MAC.String(), Port: r.Port, SVI: r.SVI, Start: r.Start,
		Verified: nonNil(r.Verified), Failed: nonNil(r.Failed), Programmed: nonNil(r.Programmed),
		LatencyMS: float64(r.Latency.Microseconds()) / 1000,
	}
	for _, ip := range r.Verified {
		v := Verified
		if slices.Contains(r.Programmed, ip) {
			v = Programmed
		}
		st, ok := r.Stages[ip]
		m.Addresses = append(m.Addresses, Address{IP: ip, Verdict: v, AnsweredMS: float64(r.Answered[ip].Microseconds()) / 1000,
			Stages: stagesMS(st, ok)})
	}
	for _, ip := range r.Failed {
		m.Addresses = append(m.Addresses, Address{IP: ip, Verdict: Unanswered})
	}
	for _, s := range r.Skipped {
		m.Addresses = append(m.Addresses, Address{IP: s.IP, Verdict: Skipped, Reason: s.Reason})
	}
	slices.SortFunc(m.Addresses, func(a, b Address) int { return a.IP.Compare(b.IP) })
	if m.Addresses == nil {
		m.Addresses = []Address{}
	}
	return m
}

func nonNil(a []netip.Addr) []netip.Addr {
	if a == nil {
		return []netip.Addr{}
	}
	return slices.Clone(a)
}

// Recorder keeps the last migrations reported, in a ring. Safe for
// concurrent use; the zero value is not usable (NewRecorder).
type Recorder struct {
	mu   sync.Mutex
	ring []engine.Report
	next int // where the next report goes
	full bool
}

// NewRecorder returns a Recorder keeping the last n reports (at least 1).
func NewRecorder(n int) *Recorder {
	return &Recorder{ring: make([]engine.Report, max(n, 1))}
}

// Record keeps r, forgetting the oldest report when the ring is full. It
// is meant for the engine's report callback: it copies r's slices and
// converts nothing.
func (rec *Recorder) Record(r engine.Report) {
	r.MAC = slices.Clone(r.MAC)
	r.Verified, r.Failed, r.Programmed = slices.Clone(r.Verified), slices.Clone(r.Failed), slices.Clone(r.Programmed)
	r.Skipped, r.Answered, r.Stages = slices.Clone(r.Skipped), maps.Clone(r.Answered), maps.Clone(r.Stages)
	rec.mu.Lock()
	rec.ring[rec.next] = r
	rec.next = (rec.next + 1) % len(rec.ring)
	rec.full = rec.full || rec.next == 0
	rec.mu.Unlock()
}

// Snapshot returns the reports kept, oldest first, converted.
func (rec *Recorder) Snapshot() []Migration {
	rec.mu.Lock()
	var reports []engine.Report
	if rec.full {
		reports = append(slices.Clone(rec.ring[rec.next:]), rec.ring[:rec.next]...)
	} else {
		reports = slices.Clone(rec.ring[:rec.next])
	}
	rec.mu.Unlock()
	out := make([]Migration, len(reports)) // recorded slices are never written again
	for i, r := range reports {
		out[i] = FromReport(r)
	}
	return out
}

// Filter returns d with only the migrations of mac.
func (d Doc) Filter(mac net.HardwareAddr) Doc {
	want := mac.String()
	d.Migrations = slices.DeleteFunc(slices.Clone(d.Migrations), func(m Migration) bool { return m.MAC != want })
	return d
}

// Listen opens the status socket at path with mode 0660 (its owner and
// group only). A socket file left by a daemon that is gone is removed
// first; ErrInUse comes back when a daemon still answers on it, and an
// error naming path when anything else (a regular file, say) is there.
// Closing the listener removes the file.
func Listen(path string) (*net.UnixListener, error) {
	if fi, err := os.Lstat(path); err == nil {
		if fi.Mode().Type() != os.ModeSocket {
			return nil, fmt.Errorf("status socket %s: exists and is not a socket", path)
		}
		if c, err := net.DialTimeout("unix", path, time.Second); err == nil {
			c.Close()
			return nil, fmt.Errorf("status socket %s: %w", path, ErrInUse)
		}
		if err := os.Remove(path); err != nil {
			return nil, fmt.Errorf("status socket %s: removing the stale socket: %w", path, err)
		}
	}
	ln, err := net.ListenUnix("unix", &net.UnixAddr{Name: path, Net: "unix"})
	if err != nil {
		return nil, fmt.Errorf("status socket: %w", err)
	}
	// The umask may have made it narrower, never wider: connecting needs
	// write permission, which the default umask denies group and others.
	if err := os.Chmod(path, 0o660); err != nil {
		ln.Close()
		return nil, fmt.Errorf("status socket %s: %w", path, err)
	}
	return ln, nil
}

// ErrInUse is Listen's error when another daemon answers on the socket.
var ErrInUse = errors.New("another rarp-replay daemon answers on it")

// WriteTimeout bounds writing the answer to one client.
const WriteTimeout = time.Second

// Serve answers each connection to ln with one JSON document, doc(), and
// closes it; a client sends nothing. Connections are answered one at a
// time, so doc is never called concurrently. It returns nil when ctx ends
// (closing ln), or ln's error if ln fails otherwise.
func Serve(ctx context.Context, ln net.Listener, doc func() Doc) error {
	stop := context.AfterFunc(ctx, func() { ln.Close() })
	defer stop()
	for {
		c, err := ln.Accept()
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			if errors.Is(err, net.ErrClosed) {
				return fmt.Errorf("status socket: %w", err)
			}
			// Out of file descriptors, say: back off as net/http does.
			select {
			case <-ctx.Done():
				return nil
			case <-time.After(100 * time.Millisecond):
			}
			continue
		}
		answer(c, doc())
	}
}

func answer(c net.Conn, d Doc) {
	defer c.Close()
	var b bytes.Buffer
	if err := json.NewEncoder(&b).Encode(d); err != nil {
		return // a Doc always encodes
	}
	c.SetWriteDeadline(time.Now().Add(WriteTimeout))
	c.Write(b.Bytes()) // a client that went away is its own problem
}
