package neigh

import (
	"net"
	"net/netip"
	"strconv"
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

func BenchmarkLookup(b *testing.B) {
	for _, n := range []int{1_000, 10_000, 100_000} {
		m := NewMirror(time.Minute)
		for i := range n {
			mac := net.HardwareAddr{2, 0, byte(i >> 24), byte(i >> 16), byte(i >> 8), byte(i)}
			m.Update(remote(5, netip.AddrFrom4([4]byte{198, 18 + byte(i>>16), byte(i >> 8), byte(i)}), mac))
		}
		b.Run(strconv.Itoa(n), func(b *testing.B) {
			mac := net.HardwareAddr{2, 0, 0, 0, 0, 7}
			for b.Loop() {
				if len(m.Lookup(5, mac)) != 1 {
					b.Fatal("lookup missed")
				}
			}
		})
	}
}
