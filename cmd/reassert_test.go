package cmd

import (
	"errors"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/rarp-replay/rarp-replay/neigh"
)

type programCall struct {
	Ifindex int
	IP      string
	MAC     string
}

type fakeProgrammer struct{ calls []programCall }

func (f *fakeProgrammer) Program(ifindex int, ip netip.Addr, mac net.HardwareAddr) error {
	f.calls = append(f.calls, programCall{ifindex, ip.String(), mac.String()})
	return nil
}

func TestReasserter(t *testing.T) {
	vm, other := net.HardwareAddr{2, 0, 0, 0, 0, 1}, net.HardwareAddr{2, 0, 0, 0, 0, 2}
	ip := netip.MustParseAddr("192.0.2.10")
	first := programCall{10, "192.0.2.10", vm.String()}
	tests := []struct {
		name   string
		kernel []map[netip.Addr]kernelNeigh // what each check reads
		after  time.Duration                // of the programming, per check
		want   []programCall
	}{
		{"still there", []map[netip.Addr]kernelNeigh{{ip: {mac: vm}}}, time.Second, []programCall{first}},
		{"deleted: programmed again, then kept", []map[netip.Addr]kernelNeigh{{}, {ip: {mac: vm}}, {ip: {mac: vm}}}, time.Second,
			[]programCall{first, first}},
		{"failed: programmed again", []map[netip.Addr]kernelNeigh{{ip: {mac: vm, lost: true}}}, time.Second, []programCall{first, first}},
		{"bound to another MAC: left alone for good", []map[netip.Addr]kernelNeigh{{ip: {mac: other}}, {}}, time.Second, []programCall{first}},
		{"remote again, same MAC (moved on): left alone for good", []map[netip.Addr]kernelNeigh{{ip: {mac: vm, remote: true}}, {}}, time.Second, []programCall{first}},
		{"lost after the window: left alone", []map[netip.Addr]kernelNeigh{{}}, 4 * time.Second, []programCall{first}},
		{"lost again and again: at most maxReassert times", []map[netip.Addr]kernelNeigh{{}, {}, {}, {}, {}}, time.Second,
			[]programCall{first, first, first, first}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			prog := &fakeProgrammer{}
			read := 0
			r := newReasserter(prog, func(ifindex int) (map[netip.Addr]kernelNeigh, error) {
				if ifindex != 10 {
					return nil, errors.New("wrong SVI")
				}
				k := tc.kernel[min(read, len(tc.kernel)-1)]
				read++
				return k, nil
			}, slog.New(slog.NewTextHandler(io.Discard, nil)))
			start := time.Now()
			if err := r.Program(10, ip, vm); err != nil {
				t.Fatal(err)
			}
			for range tc.kernel {
				r.check(start.Add(tc.after))
			}
			if diff := cmp.Diff(tc.want, prog.calls); diff != "" {
				t.Errorf("programmed (-want +got):\n%s", diff)
			}
		})
	}
}

// A reader error programs nothing and keeps watching.
func TestReasserterReadError(t *testing.T) {
	prog := &fakeProgrammer{}
	fail := true
	r := newReasserter(prog, func(int) (map[netip.Addr]kernelNeigh, error) {
		if fail {
			return nil, errors.New("netlink busy")
		}
		return map[netip.Addr]kernelNeigh{}, nil
	}, slog.New(slog.NewTextHandler(io.Discard, nil)))
	ip := netip.MustParseAddr("2001:db8::10")
	mac := net.HardwareAddr{2, 0, 0, 0, 0, 1}
	if err := r.Program(3, ip, mac); err != nil {
		t.Fatal(err)
	}
	r.check(time.Now())
	if len(prog.calls) != 1 {
		t.Fatalf("programmed %d times after a read error, want 1", len(prog.calls))
	}
	fail = false
	r.check(time.Now())
	if len(prog.calls) != 2 {
		t.Fatalf("programmed %d times once the kernel read showed it lost, want 2", len(prog.calls))
	}
}

// The neighbor watcher's events: a watched binding deleted or FAILED is
// queued and programmed again; other events, other addresses and a binding
// the kernel now holds for another MAC are not.
func TestReasserterChanged(t *testing.T) {
	vm, other := net.HardwareAddr{2, 0, 0, 0, 0, 1}, net.HardwareAddr{2, 0, 0, 0, 0, 2}
	ip, ip2 := netip.MustParseAddr("192.0.2.10"), netip.MustParseAddr("192.0.2.11")
	// The kernel's event for the daemon's own programming.
	local := neigh.Entry{IfIndex: 10, IP: ip, MAC: vm, State: neigh.NUDReachable}
	tests := []struct {
		name    string
		events  []neigh.Entry
		deleted []bool
		queued  int
	}{
		{"deleted", []neigh.Entry{{IfIndex: 10, IP: ip}}, []bool{true}, 1},
		{"failed", []neigh.Entry{{IfIndex: 10, IP: ip, State: neigh.NUDFailed}}, []bool{false}, 1},
		{"reachable with its MAC", []neigh.Entry{{IfIndex: 10, IP: ip, MAC: vm, State: neigh.NUDReachable}}, []bool{false}, 0},
		{"another address", []neigh.Entry{{IfIndex: 10, IP: ip2}}, []bool{true}, 0},
		{"another SVI", []neigh.Entry{{IfIndex: 11, IP: ip}}, []bool{true}, 0},
		{"bound to another MAC, then deleted", []neigh.Entry{local,
			{IfIndex: 10, IP: ip, MAC: other, State: neigh.NUDNoARP, Flags: neigh.NTFExtLearned}, {IfIndex: 10, IP: ip}}, []bool{false, false, true}, 0},
		// Events from before the programming reached the kernel (the remote
		// entry it replaces, refreshed by zebra) say nothing of a move: a
		// deletion after them is still programmed again.
		{"remote before the programming showed, then deleted", []neigh.Entry{
			{IfIndex: 10, IP: ip, MAC: vm, State: neigh.NUDNoARP, Flags: neigh.NTFExtLearned}, local, {IfIndex: 10, IP: ip}}, []bool{false, false, true}, 1},
		// The VM moved on: its new leaf's route made zebra bind the address
		// as remote, to the same MAC; that leaf's withdrawal deletes it.
		{"remote again with its MAC, then deleted", []neigh.Entry{local,
			{IfIndex: 10, IP: ip, MAC: vm, State: neigh.NUDNoARP, Flags: neigh.NTFExtLearned}, {IfIndex: 10, IP: ip}}, []bool{false, false, true}, 0},
		{"deleted, with the deleted entry's extern_learn flag", []neigh.Entry{
			{IfIndex: 10, IP: ip, MAC: vm, State: neigh.NUDNoARP, Flags: neigh.NTFExtLearned}}, []bool{true}, 1},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			prog := &fakeProgrammer{}
			r := newReasserter(prog, nil, slog.New(slog.NewTextHandler(io.Discard, nil)))
			if err := r.Program(10, ip, vm); err != nil {
				t.Fatal(err)
			}
			for i, e := range tc.events {
				r.Changed(e, tc.deleted[i])
			}
			if got := len(r.lost); got != tc.queued {
				t.Fatalf("queued %d bindings, want %d", got, tc.queued)
			}
			for len(r.lost) > 0 {
				r.again(<-r.lost, time.Now())
			}
			if got, want := len(prog.calls), 1+tc.queued; got != want {
				t.Errorf("programmed %d times, want %d: %v", got, want, prog.calls)
			}
		})
	}
}

// Before programming a binding again, the reasserter reads the kernel's
// entry: one already back (the second report of one loss) is left as it
// is, and the attempt is not counted; one zebra made remote again, or
// bound to another MAC, is forgotten; a missing one, or a failed read, is
// programmed.
func TestReasserterAgainReads(t *testing.T) {
	vm, other := net.HardwareAddr{2, 0, 0, 0, 0, 1}, net.HardwareAddr{2, 0, 0, 0, 0, 2}
	ip := netip.MustParseAddr("192.0.2.10")
	tests := []struct {
		name       string
		entry      kernelNeigh
		there      bool
		err        error
		programmed bool
		watched    bool
	}{
		{"absent", kernelNeigh{}, false, nil, true, true},
		{"failed", kernelNeigh{mac: vm, lost: true}, true, nil, true, true},
		{"back already", kernelNeigh{mac: vm}, true, nil, false, true},
		{"remote again", kernelNeigh{mac: vm, remote: true}, true, nil, false, false},
		{"another MAC", kernelNeigh{mac: other}, true, nil, false, false},
		{"read failed", kernelNeigh{}, false, errors.New("netlink: no buffer space"), true, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			prog := &fakeProgrammer{}
			r := newReasserter(prog, nil, slog.New(slog.NewTextHandler(io.Discard, nil)))
			r.get = func(ifindex int, a netip.Addr) (kernelNeigh, bool, error) {
				if ifindex != 10 || a != ip {
					t.Errorf("read ifindex %d %s, want 10 %s", ifindex, a, ip)
				}
				return tc.entry, tc.there, tc.err
			}
			if err := r.Program(10, ip, vm); err != nil {
				t.Fatal(err)
			}
			r.Changed(neigh.Entry{IfIndex: 10, IP: ip}, true)
			r.again(<-r.lost, time.Now())
			if got := len(prog.calls) == 2; got != tc.programmed {
				t.Errorf("programmed again: %v, want %v (%v)", got, tc.programmed, prog.calls)
			}
			r.mu.Lock()
			g, watched := r.watch[guardKey{10, ip}]
			r.mu.Unlock()
			if watched != tc.watched {
				t.Errorf("still watched: %v, want %v", watched, tc.watched)
			}
			if want := map[bool]int{true: 1, false: 0}[tc.programmed]; watched && g.again != want {
				t.Errorf("attempts counted %d, want %d", g.again, want)
			}
		})
	}
}
