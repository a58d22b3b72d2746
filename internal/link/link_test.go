package link

import (
	"errors"
	"net"
	"net/netip"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// eqPrefix compares netip values by value (they have unexported fields).
var eqPrefix = cmp.Options{
	cmp.Comparer(func(x, y netip.Prefix) bool { return x == y }),
	cmp.Comparer(func(x, y netip.Addr) bool { return x == y }),
}

func testMAC(last byte) net.HardwareAddr { return net.HardwareAddr{0x02, 0, 0, 0, 0, last} }

// switchLinks is a switch with a bridge and the kinds of links that hang off it.
func switchLinks() []Link {
	return []Link{
		{Index: 1, Name: "lo", Kind: "device", MAC: net.HardwareAddr{0, 0, 0, 0, 0, 0}, Loopback: true, Up: true},
		{Index: 2, Name: "br0", Kind: "bridge", MAC: testMAC(2), Up: true, Addrs: []netip.Prefix{netip.MustParsePrefix("10.0.0.1/24")}},
		{Index: 3, Name: "veth0", Kind: "veth", MAC: testMAC(3), MasterIndex: 2, Up: true},
		{Index: 4, Name: "vxlan0", Kind: "vxlan", MAC: testMAC(4), MasterIndex: 2, Up: true},
		{Index: 5, Name: "eth0", Kind: "device", MAC: testMAC(5), Up: true, Addrs: []netip.Prefix{netip.MustParsePrefix("192.0.2.1/24")}},
		{Index: 6, Name: "mv0", Kind: "macvlan", MAC: testMAC(6), ParentIndex: 2, Up: true},
		{Index: 7, Name: "br0.10", Kind: "vlan", MAC: testMAC(7), ParentIndex: 2, Up: true},
		{Index: 8, Name: "eth0.20", Kind: "vlan", MAC: testMAC(8), ParentIndex: 5, Up: true},
		{Index: 9, Name: "bond0", Kind: "bond", MAC: testMAC(9), MasterIndex: 2, Up: true},
		{Index: 10, Name: "eth1", Kind: "device", MAC: testMAC(10), MasterIndex: 9, Up: true},
		{Index: 11, Name: "tun0", Kind: "tun", Up: true},
		{Index: 12, Name: "vrf0", Kind: "vrf", MAC: testMAC(12), Up: true},
		{Index: 13, Name: "eth2", Kind: "device", MAC: testMAC(13), MasterIndex: 12, Up: true},
		{Index: 14, Name: "ib0", Kind: "ipoib", MAC: make(net.HardwareAddr, 20), Up: true},
		{Index: 15, Name: "veth9", Kind: "veth", MAC: testMAC(15), MasterIndex: 50, Up: true},
	}
}

func switchTable() *Table {
	t := NewTable()
	t.Replace(switchLinks())
	return t
}

// ineligibleReason returns the Reason of an *IneligibleError, "" for nil, and the
// error text for any other error.
func ineligibleReason(err error) string {
	if err == nil {
		return ""
	}
	var ie *IneligibleError
	if !errors.As(err, &ie) {
		return "not an IneligibleError: " + err.Error()
	}
	return ie.Reason
}

func TestTablePort(t *testing.T) {
	tbl := switchTable()
	tests := []struct {
		name       string
		index      int
		wantSVI    int // the SVI's index when eligible
		wantReason string
	}{
		{name: "veth bridge member is served by the bridge", index: 3, wantSVI: 2},
		{name: "vxlan bridge member", index: 4, wantReason: "not-access-port"},
		{name: "bridge itself", index: 2, wantReason: "not-access-port"},
		{name: "stand-alone physical device is its own SVI", index: 5, wantSVI: 5},
		{name: "loopback", index: 1, wantReason: "not-access-port"},
		{name: "macvlan", index: 6, wantReason: "not-access-port"},
		{name: "vlan on a bridge is an SVI", index: 7, wantReason: "not-access-port"},
		{name: "vlan on a stand-alone device is its own SVI", index: 8, wantSVI: 8},
		{name: "member of a bond", index: 10, wantReason: "not-access-port"},
		{name: "bond as a bridge member", index: 9, wantSVI: 2},
		{name: "no Ethernet address", index: 11, wantReason: "not-access-port"},
		{name: "20-byte hardware address", index: 14, wantReason: "not-access-port"},
		{name: "vrf device itself", index: 12, wantReason: "not-access-port"},
		{name: "vrf member is its own SVI", index: 13, wantSVI: 13},
		{name: "unknown index", index: 99, wantReason: "unknown-port"},
		// A bridge member whose bridge is not in the table must not be
		// taken for a stand-alone L3 port serving itself.
		{name: "member of a bridge missing from the table", index: 15, wantReason: "unknown-port"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			// AccessPort (what the capture manager asks) must agree with
			// Port for an untagged frame: no VLAN-aware bridge here.
			aerr := tbl.AccessPort(tt.index)
			if diff := cmp.Diff(tt.wantReason, ineligibleReason(aerr)); diff != "" {
				t.Errorf("AccessPort(%d) reason (-want +got):\n%s\nerr: %v", tt.index, diff, aerr)
			}
			p, err := tbl.Port(tt.index, nil)
			if diff := cmp.Diff(tt.wantReason, ineligibleReason(err)); diff != "" {
				t.Fatalf("Port(%d) reason (-want +got):\n%s\nerr: %v", tt.index, diff, err)
			}
			if err != nil {
				return
			}
			l, _ := tbl.Get(tt.index)
			svi, _ := tbl.Get(tt.wantSVI)
			if diff := cmp.Diff(Port{Link: l, SVI: svi}, Port{Link: p.Link, SVI: p.SVI}, eqPrefix); diff != "" {
				t.Errorf("Port(%d) (-want +got):\n%s", tt.index, diff)
			}
		})
	}
}

func TestEligible(t *testing.T) {
	links := switchTable()
	get := func(i int) *Link {
		l, ok := links.Get(i)
		if !ok {
			return nil
		}
		return &l
	}
	tests := []struct {
		name       string
		index      int
		wantSVI    int
		wantReason string
	}{
		{name: "veth bridge member", index: 3, wantSVI: 2},
		{name: "vxlan bridge member", index: 4, wantReason: "not-access-port"},
		{name: "bridge", index: 2, wantReason: "not-access-port"},
		{name: "stand-alone device", index: 5, wantSVI: 5},
		{name: "vlan on bridge", index: 7, wantReason: "not-access-port"},
		{name: "vlan on device", index: 8, wantSVI: 8},
		{name: "bond member", index: 10, wantReason: "not-access-port"},
		{name: "vrf member", index: 13, wantSVI: 13},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			l := get(tt.index)
			svi, err := Eligible(*l, get(l.MasterIndex), get(l.ParentIndex))
			if diff := cmp.Diff(tt.wantReason, ineligibleReason(err)); diff != "" {
				t.Fatalf("reason (-want +got):\n%s", diff)
			}
			if diff := cmp.Diff(tt.wantSVI, svi); diff != "" {
				t.Errorf("SVI (-want +got):\n%s", diff)
			}
		})
	}
}

func TestTablePortRefresh(t *testing.T) {
	veth := Link{Index: 3, Name: "veth0", Kind: "veth", MAC: testMAC(3), MasterIndex: 2, Up: true, Addrs: []netip.Prefix{}}
	tests := []struct {
		name       string
		index      int
		refreshed  Link
		refreshErr error
		wantCalls  []int
		wantSVI    int
		wantReason string
		wantKnown  bool
	}{
		{name: "unknown index is read and used", index: 3, refreshed: veth, wantCalls: []int{3}, wantSVI: 2, wantKnown: true},
		{name: "known index is not read", index: 2, wantReason: "not-access-port", wantKnown: true},
		{name: "read fails", index: 3, refreshErr: errors.New("no such device"), wantCalls: []int{3}, wantReason: "unknown-port"},
		// The bridge's own creation event may be on its way too: a member
		// of an unknown bridge must not become a stand-alone port.
		{name: "read member of a bridge not known yet", index: 3, refreshed: Link{Index: 3, Name: "veth0", Kind: "veth", MAC: testMAC(3), MasterIndex: 20, Up: true}, wantCalls: []int{3}, wantReason: "unknown-port", wantKnown: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tbl := NewTable()
			tbl.Set(Link{Index: 2, Name: "br0", Kind: "bridge", MAC: testMAC(2), Up: true})
			var calls []int
			tbl.Refresh = func(index int) (Link, error) {
				calls = append(calls, index)
				return tt.refreshed, tt.refreshErr
			}
			p, err := tbl.Port(tt.index, nil)
			if diff := cmp.Diff(tt.wantCalls, calls); diff != "" {
				t.Errorf("Refresh calls (-want +got):\n%s", diff)
			}
			if diff := cmp.Diff(tt.wantReason, ineligibleReason(err)); diff != "" {
				t.Fatalf("reason (-want +got):\n%s", diff)
			}
			if _, known := tbl.Get(tt.index); known != tt.wantKnown {
				t.Errorf("Get(%d) known = %v after Port, want %v", tt.index, known, tt.wantKnown)
			}
			if err != nil {
				return
			}
			if diff := cmp.Diff(tt.refreshed, p.Link, eqPrefix); diff != "" {
				t.Errorf("port link (-want +got):\n%s", diff)
			}
			if diff := cmp.Diff(tt.wantSVI, p.SVI.Index); diff != "" {
				t.Errorf("SVI index (-want +got):\n%s", diff)
			}
		})
	}
}

func TestTableKeepsAddresses(t *testing.T) {
	a := netip.MustParsePrefix("10.0.0.1/24")
	b := netip.MustParsePrefix("2001:db8::1/64")
	tests := []struct {
		name   string
		update func(*Table, Link)
		addrs  []netip.Prefix // the addresses the update carries
		want   []netip.Prefix
	}{
		{name: "Set with nil keeps", update: func(t *Table, l Link) { t.Set(l) }, addrs: nil, want: []netip.Prefix{a}},
		{name: "Set with empty clears", update: func(t *Table, l Link) { t.Set(l) }, addrs: []netip.Prefix{}, want: []netip.Prefix{}},
		{name: "Set with new replaces", update: func(t *Table, l Link) { t.Set(l) }, addrs: []netip.Prefix{b}, want: []netip.Prefix{b}},
		{name: "Replace with nil keeps", update: func(t *Table, l Link) { t.Replace([]Link{l}) }, addrs: nil, want: []netip.Prefix{a}},
		{name: "Replace with empty clears", update: func(t *Table, l Link) { t.Replace([]Link{l}) }, addrs: []netip.Prefix{}, want: []netip.Prefix{}},
		{name: "Replace with new replaces", update: func(t *Table, l Link) { t.Replace([]Link{l}) }, addrs: []netip.Prefix{b}, want: []netip.Prefix{b}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tbl := NewTable()
			tbl.Set(Link{Index: 2, Name: "br0", Kind: "bridge", Addrs: []netip.Prefix{a}})
			tt.update(tbl, Link{Index: 2, Name: "br0", Kind: "bridge", Up: true, Addrs: tt.addrs})
			got, ok := tbl.Get(2)
			if !ok {
				t.Fatal("link 2 gone")
			}
			if !got.Up {
				t.Error("update did not replace the link's other fields")
			}
			if diff := cmp.Diff(tt.want, got.Addrs, eqPrefix); diff != "" {
				t.Errorf("addresses (-want +got):\n%s", diff)
			}
		})
	}
}

func TestTableReplaceDropsMissing(t *testing.T) {
	tbl := switchTable()
	tbl.Replace([]Link{{Index: 2, Name: "br0", Kind: "bridge"}})
	var got []string
	for _, l := range tbl.All() {
		got = append(got, l.Name)
	}
	if diff := cmp.Diff([]string{"br0"}, got); diff != "" {
		t.Errorf("links after Replace (-want +got):\n%s", diff)
	}
}

func TestTableEditAddr(t *testing.T) {
	a := netip.MustParsePrefix("10.0.0.1/24")
	b := netip.MustParsePrefix("10.0.1.1/24")
	c := netip.MustParsePrefix("fe80::1/64")
	tests := []struct {
		name  string
		edit  func(*Table)
		index int
		want  []netip.Prefix
	}{
		{name: "add", edit: func(t *Table) { t.AddAddr(2, c) }, index: 2, want: []netip.Prefix{a, b, c}},
		{name: "add existing does not duplicate", edit: func(t *Table) { t.AddAddr(2, a) }, index: 2, want: []netip.Prefix{b, a}},
		{name: "delete", edit: func(t *Table) { t.DelAddr(2, a) }, index: 2, want: []netip.Prefix{b}},
		{name: "delete absent", edit: func(t *Table) { t.DelAddr(2, c) }, index: 2, want: []netip.Prefix{a, b}},
		{name: "add to unknown link is ignored", edit: func(t *Table) { t.AddAddr(7, c) }, index: 2, want: []netip.Prefix{a, b}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tbl := NewTable()
			tbl.Set(Link{Index: 2, Name: "br0", Kind: "bridge", Addrs: []netip.Prefix{a, b}})
			before, _ := tbl.Get(2)
			tt.edit(tbl)
			got, _ := tbl.Get(tt.index)
			if diff := cmp.Diff(tt.want, got.Addrs, eqPrefix); diff != "" {
				t.Errorf("addresses (-want +got):\n%s", diff)
			}
			// A Link already handed out must not change under its reader.
			if diff := cmp.Diff([]netip.Prefix{a, b}, before.Addrs, eqPrefix); diff != "" {
				t.Errorf("earlier Get result changed (-want +got):\n%s", diff)
			}
			if _, known := tbl.Get(7); known {
				t.Error("AddAddr created a link")
			}
		})
	}
}

func TestTableChanged(t *testing.T) {
	tests := []struct {
		name   string
		change func(*Table)
	}{
		{name: "Set", change: func(t *Table) { t.Set(Link{Index: 3, Name: "veth0"}) }},
		{name: "Delete", change: func(t *Table) { t.Delete(2) }},
		{name: "Replace", change: func(t *Table) { t.Replace(nil) }},
		{name: "many changes coalesce", change: func(t *Table) {
			t.Set(Link{Index: 3, Name: "veth0"})
			t.Set(Link{Index: 4, Name: "veth1"})
			t.Delete(3)
			t.Replace([]Link{{Index: 5, Name: "eth0"}})
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tbl := NewTable()
			tbl.Set(Link{Index: 2, Name: "br0", Kind: "bridge"})
			<-tbl.Changed() // drain the setup's notification
			select {
			case <-tbl.Changed():
				t.Fatal("signalled before any change")
			default:
			}
			tt.change(tbl)
			select {
			case <-tbl.Changed():
			default:
				t.Fatal("not signalled after a change")
			}
			select {
			case <-tbl.Changed():
				t.Fatal("signalled twice: notifications are not coalesced")
			default:
			}
		})
	}
}

func TestTableByName(t *testing.T) {
	tbl := switchTable()
	tests := []struct {
		name      string
		wantIndex int
		wantOK    bool
	}{
		{name: "veth0", wantIndex: 3, wantOK: true},
		{name: "br0.10", wantIndex: 7, wantOK: true},
		{name: "br", wantOK: false},
		{name: "", wantOK: false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			l, ok := tbl.ByName(tt.name)
			if diff := cmp.Diff([2]any{tt.wantIndex, tt.wantOK}, [2]any{l.Index, ok}); diff != "" {
				t.Errorf("ByName(%q) index, ok (-want +got):\n%s", tt.name, diff)
			}
		})
	}
}

func TestTableAllOrdered(t *testing.T) {
	tbl := NewTable()
	for _, i := range []int{42, 3, 17, 1, 1000, 8} {
		tbl.Set(Link{Index: i})
	}
	tbl.Delete(17)
	var got []int
	for _, l := range tbl.All() {
		got = append(got, l.Index)
	}
	if diff := cmp.Diff([]int{1, 3, 8, 42, 1000}, got); diff != "" {
		t.Errorf("All indexes (-want +got):\n%s", diff)
	}
}

func TestSource(t *testing.T) {
	pfx := func(ss ...string) []netip.Prefix {
		var out []netip.Prefix
		for _, s := range ss {
			out = append(out, netip.MustParsePrefix(s))
		}
		return out
	}
	dual := pfx("10.0.0.1/24", "10.0.1.1/24", "2001:db8:1::1/64", "fe80::1/64", "169.254.7.1/16")
	tests := []struct {
		name   string
		addrs  []netip.Prefix
		target string
		want   string
	}{
		{name: "IPv4 in prefix", addrs: dual, target: "10.0.0.7", want: "10.0.0.1"},
		{name: "IPv4 in second prefix", addrs: dual, target: "10.0.1.7", want: "10.0.1.1"},
		{name: "IPv4 outside every prefix", addrs: dual, target: "198.51.100.7", want: "0.0.0.0"},
		{name: "IPv4 with only IPv6 addresses", addrs: pfx("2001:db8:1::1/64", "fe80::1/64"), target: "10.0.0.7", want: "0.0.0.0"},
		{name: "IPv4 with no address", target: "10.0.0.7", want: "0.0.0.0"},
		{name: "IPv4 link-local target", addrs: dual, target: "169.254.9.9", want: "169.254.7.1"},
		{name: "IPv6 global in prefix", addrs: dual, target: "2001:db8:1::7", want: "2001:db8:1::1"},
		{name: "IPv6 global outside prefix falls back to link-local", addrs: dual, target: "2001:db8:2::7", want: "fe80::1"},
		{name: "IPv6 link-local listed first is not used for in-prefix global", addrs: pfx("fe80::1/64", "2001:db8:1::1/64"), target: "2001:db8:1::7", want: "2001:db8:1::1"},
		{name: "IPv6 with no address", target: "2001:db8:1::7", want: "::"},
		{name: "IPv6 with only IPv4 addresses", addrs: pfx("10.0.0.1/24"), target: "2001:db8:1::7", want: "::"},
		{name: "IPv6 global only, outside prefix", addrs: pfx("2001:db8:1::1/64"), target: "2001:db8:2::7", want: "::"},
		{name: "IPv6 link-local target", addrs: dual, target: "fe80::7", want: "fe80::1"},
		{name: "IPv6 link-local target with zone", addrs: dual, target: "fe80::7%br0", want: "fe80::1"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			svi := Link{Index: 2, Name: "br0", Kind: "bridge", MAC: testMAC(2), Addrs: tt.addrs}
			got, gotMAC := Source(Port{SVI: svi}, netip.MustParseAddr(tt.target))
			if diff := cmp.Diff(tt.want, got.String()); diff != "" {
				t.Errorf("Source(%s) address (-want +got):\n%s", tt.target, diff)
			}
			if diff := cmp.Diff(svi.MAC, gotMAC); diff != "" {
				t.Errorf("Source(%s) MAC (-want +got):\n%s", tt.target, diff)
			}
		})
	}
}
