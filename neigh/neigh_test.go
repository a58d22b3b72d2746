package neigh

import (
	"bytes"
	"errors"
	"net"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

var (
	vm    = net.HardwareAddr{2, 0, 0x5e, 0x10, 0, 0x0a}
	other = net.HardwareAddr{2, 0, 0x5e, 0x10, 0, 0x0b}
	v4    = netip.MustParseAddr("192.0.2.10")
	v4b   = netip.MustParseAddr("192.0.2.11")
	v6    = netip.MustParseAddr("2001:db8:10::10")
)

type clock struct{ t time.Time }

func (c *clock) now() time.Time          { return c.t }
func (c *clock) advance(d time.Duration) { c.t = c.t.Add(d) }

func newTestMirror(retention time.Duration) (*Mirror, *clock) {
	c := &clock{t: time.Unix(1_700_000_000, 0)}
	m := NewMirror(retention)
	m.now = c.now
	return m, c
}

func ips(bs []Binding) []string {
	var out []string
	for _, b := range bs {
		s := b.IP.String()
		if !b.Present {
			s += " (remembered)"
		}
		if b.Remote {
			s += " remote"
		}
		out = append(out, s)
	}
	return out
}

func remote(ifindex int, ip netip.Addr, mac net.HardwareAddr) Entry {
	return Entry{IfIndex: ifindex, IP: ip, MAC: mac, State: NUDNoARP, Flags: NTFExtLearned}
}

func TestMirrorLookup(t *testing.T) {
	m, _ := newTestMirror(time.Minute)
	m.Update(remote(5, v6, vm))
	m.Update(remote(5, v4b, vm))
	m.Update(Entry{IfIndex: 5, IP: v4, MAC: vm, State: NUDReachable})
	m.Update(remote(6, netip.MustParseAddr("198.51.100.10"), vm)) // another SVI
	m.Update(remote(5, netip.MustParseAddr("192.0.2.20"), other))
	m.Update(Entry{IfIndex: 5, IP: netip.MustParseAddr("ff02::1"), MAC: vm, State: NUDNoARP}) // multicast: ignored
	want := []string{"192.0.2.10", "192.0.2.11 remote", "2001:db8:10::10 remote"}
	if diff := cmp.Diff(want, ips(m.Lookup(5, vm))); diff != "" {
		t.Errorf("Lookup(5, vm) (-want +got):\n%s", diff)
	}
	if got := m.Lookup(7, vm); len(got) != 0 {
		t.Errorf("Lookup on an interface without bindings = %v", got)
	}
	if got := m.Lookup(5, net.HardwareAddr{1, 2, 3}); got != nil {
		t.Errorf("Lookup(bad mac) = %v", got)
	}
}

func TestMirrorRemembersDeleted(t *testing.T) {
	m, c := newTestMirror(15 * time.Minute)
	m.Update(remote(5, v4, vm))
	m.Delete(remote(5, v4, vm))
	c.advance(14 * time.Minute)
	if diff := cmp.Diff([]string{"192.0.2.10 (remembered) remote"}, ips(m.Lookup(5, vm))); diff != "" {
		t.Errorf("within retention (-want +got):\n%s", diff)
	}
	c.advance(2 * time.Minute)
	if got := m.Lookup(5, vm); len(got) != 0 {
		t.Errorf("after retention Lookup = %v, want none", ips(got))
	}
	if n := m.Prune(); n != 1 {
		t.Errorf("Prune() = %d, want 1", n)
	}
	if n := m.Len(); n != 0 {
		t.Errorf("Len() after prune = %d, want 0", n)
	}
}

func TestMirrorFailedIsDeleted(t *testing.T) {
	m, _ := newTestMirror(time.Minute)
	m.Update(Entry{IfIndex: 5, IP: v4, MAC: vm, State: NUDReachable})
	m.Update(Entry{IfIndex: 5, IP: v4, State: NUDFailed}) // FAILED entries come without lladdr
	if diff := cmp.Diff([]string{"192.0.2.10 (remembered)"}, ips(m.Lookup(5, vm))); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}
}

func TestMirrorAddressMovesToAnotherMAC(t *testing.T) {
	m, _ := newTestMirror(time.Minute)
	m.Update(remote(5, v4, vm))
	m.Delete(remote(5, v4, vm))
	m.Update(remote(5, v4, other))
	if got := m.Lookup(5, vm); len(got) != 0 {
		t.Errorf("old MAC still has %v after the address moved", ips(got))
	}
	if diff := cmp.Diff([]string{"192.0.2.10 remote"}, ips(m.Lookup(5, other))); diff != "" {
		t.Errorf("new MAC (-want +got):\n%s", diff)
	}
}

func TestMirrorSync(t *testing.T) {
	m, _ := newTestMirror(time.Minute)
	m.Update(remote(5, v4, vm))
	m.Update(remote(5, v6, vm))
	// A fresh dump after a netlink overflow no longer lists v4.
	m.Sync([]Entry{remote(5, v6, vm), remote(5, v4b, vm)})
	want := []string{"192.0.2.10 (remembered) remote", "192.0.2.11 remote", "2001:db8:10::10 remote"}
	if diff := cmp.Diff(want, ips(m.Lookup(5, vm))); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}
}

func TestStateRoundTrip(t *testing.T) {
	m, c := newTestMirror(15 * time.Minute)
	m.Update(remote(5, v4, vm))
	m.Update(remote(5, v6, vm))
	m.Delete(remote(5, v4, vm)) // EVPN withdrew it; only the mirror knows it
	c.advance(time.Minute)
	m.Update(remote(7, v4b, other))
	names := map[int]string{5: "br10", 7: "br20"}
	var buf bytes.Buffer
	if err := m.Save(&buf, func(i int) string { return names[i] }); err != nil {
		t.Fatal(err)
	}

	// A restart: interface indexes changed, br20 is gone.
	r, rc := newTestMirror(15 * time.Minute)
	rc.t = c.t.Add(2 * time.Minute)
	n, err := r.Load(bytes.NewReader(buf.Bytes()), func(name string) (int, bool) {
		if name == "br10" {
			return 50, true
		}
		return 0, false
	})
	if err != nil {
		t.Fatal(err)
	}
	if n != 2 {
		t.Errorf("Load() = %d, want 2", n)
	}
	want := []string{"192.0.2.10 (remembered) remote", "2001:db8:10::10 (remembered) remote"}
	if diff := cmp.Diff(want, ips(r.Lookup(50, vm))); diff != "" {
		t.Errorf("after restart (-want +got):\n%s", diff)
	}
	// The kernel still has v6: the dump marks it present again.
	r.Sync([]Entry{remote(50, v6, vm)})
	want = []string{"192.0.2.10 (remembered) remote", "2001:db8:10::10 remote"}
	if diff := cmp.Diff(want, ips(r.Lookup(50, vm))); diff != "" {
		t.Errorf("after the dump (-want +got):\n%s", diff)
	}
	// The retention window counts from the original deletion.
	rc.advance(13 * time.Minute)
	if diff := cmp.Diff([]string{"2001:db8:10::10 remote"}, ips(r.Lookup(50, vm))); diff != "" {
		t.Errorf("15 min after the deletion (-want +got):\n%s", diff)
	}
}

func TestStateRejectsForeignFiles(t *testing.T) {
	for name, in := range map[string]string{
		"empty":       "",
		"garbage":     "\x00\x01not json",
		"other json":  `{"hello":"world"}`,
		"new version": `{"format":"rarp-replay-state","version":99,"bindings":[]}`,
		"bad binding": `{"format":"rarp-replay-state","version":1,"bindings":[{"dev":"br10","mac":"zz","ip":"192.0.2.1"}]}`,
	} {
		m, _ := newTestMirror(time.Minute)
		m.Update(remote(5, v4, vm))
		_, err := m.Load(strings.NewReader(in), func(string) (int, bool) { return 5, true })
		if !errors.Is(err, ErrForeignState) {
			t.Errorf("%s: error %v, want ErrForeignState", name, err)
		}
		if m.Len() != 1 {
			t.Errorf("%s: a rejected file changed the mirror", name)
		}
	}
}

// FuzzStateLoad feeds arbitrary state files to Load: an error leaves the
// mirror unchanged, success adds only valid bindings.
func FuzzStateLoad(f *testing.F) {
	m, _ := newTestMirror(15 * time.Minute)
	m.Update(remote(5, v4, vm))
	m.Update(remote(5, v6, vm))
	var buf bytes.Buffer
	m.Save(&buf, func(int) string { return "br10" })
	f.Add(buf.Bytes())
	f.Add([]byte(`{"format":"rarp-replay-state","version":1,"bindings":[{"dev":"br10","mac":"02:00:00:00:00:01","ip":"::ffff:192.0.2.1"}]}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		r, _ := newTestMirror(15 * time.Minute)
		r.Update(remote(5, v4b, other))
		n, err := r.Load(bytes.NewReader(data), func(string) (int, bool) { return 5, true })
		if err != nil {
			if r.Len() != 1 {
				t.Fatalf("a rejected file changed the mirror to %d bindings", r.Len())
			}
			return
		}
		if r.Len() > 1+n {
			t.Fatalf("Load added %d but the mirror holds %d", n, r.Len())
		}
		for _, rec := range r.Records() {
			if !rec.IP.IsValid() || len(rec.MAC) != 6 {
				t.Fatalf("invalid binding %+v", rec)
			}
		}
	})
}
