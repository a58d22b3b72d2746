package link

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"net/netip"
	"slices"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

// eqPrefix compares netip values by value (they have unexported fields).
var eqPrefix = cmp.Options{
	cmp.Comparer(func(x, y netip.Prefix) bool { return x == y }),
	cmp.Comparer(func(x, y netip.Addr) bool { return x == y }),
}

func hw(last byte) net.HardwareAddr { return net.HardwareAddr{2, 0, 0, 0, 0, last} }

// leaf is a Linux leaf with every interface kind the port rule (Eligible)
// distinguishes: a traditional bridge with its members, tunnels, an anycast
// gateway and an SVI; a routed port with a subinterface; bonds, a team, a
// VRF, and a member of a bridge the table does not hold.
func leaf() *Table {
	t := NewTable()
	t.Replace([]Link{
		{Index: 1, Name: "lo", Kind: "device", Loopback: true, MAC: make(net.HardwareAddr, 6)},
		{Index: 2, Name: "br10", Kind: "bridge", MAC: hw(2), Addrs: []netip.Prefix{netip.MustParsePrefix("192.0.2.1/24"), netip.MustParsePrefix("2001:db8:10::1/64")}},
		{Index: 3, Name: "swp1", Kind: "veth", MAC: hw(3), MasterIndex: 2},
		{Index: 4, Name: "vx10", Kind: "vxlan", MAC: hw(4), MasterIndex: 2},
		{Index: 5, Name: "eth0", Kind: "device", MAC: hw(5), Addrs: []netip.Prefix{netip.MustParsePrefix("198.51.100.1/24")}},
		{Index: 6, Name: "br10-v0", Kind: "macvlan", MAC: hw(6), ParentIndex: 2},
		{Index: 7, Name: "br10.20", Kind: "vlan", MAC: hw(7), ParentIndex: 2, VLANID: 20},
		{Index: 8, Name: "eth0.30", Kind: "vlan", MAC: hw(8), ParentIndex: 5, VLANID: 30},
		{Index: 9, Name: "bond0", Kind: "bond", MAC: hw(9), MasterIndex: 2},
		{Index: 10, Name: "swp2", Kind: "device", MAC: hw(10), MasterIndex: 9},
		{Index: 11, Name: "tun0", Kind: "tun"},
		{Index: 12, Name: "vrf1", Kind: "vrf", MAC: hw(12)},
		{Index: 13, Name: "swp3", Kind: "device", MAC: hw(13), MasterIndex: 12},
		{Index: 14, Name: "tap0", Kind: "tuntap", MAC: hw(14), MasterIndex: 2},
		{Index: 15, Name: "gt0", Kind: "gretap", MAC: hw(15), MasterIndex: 2},
		{Index: 16, Name: "gn0", Kind: "geneve", MAC: hw(16), MasterIndex: 2},
		{Index: 17, Name: "vx20", Kind: "vxlan", MAC: hw(17)},
		{Index: 18, Name: "swp4", Kind: "device", MAC: hw(18), MasterIndex: 2, PortInfo: PortInfo{State: STPBlocking}},
		{Index: 19, Name: "swp5", Kind: "device", MAC: hw(19), MasterIndex: 2, PortInfo: PortInfo{State: STPLearning}},
		{Index: 20, Name: "vx30", Kind: "vxlan", MAC: hw(20), MasterIndex: 2, PortInfo: PortInfo{State: STPForwarding, Learning: true, Flood: true}},
		{Index: 21, Name: "ib0", Kind: "ipoib", MAC: make(net.HardwareAddr, 20)},
		{Index: 22, Name: "dummy0", Kind: "dummy", MAC: hw(22)},
		{Index: 23, Name: "ipvl0", Kind: "ipvlan", MAC: hw(5), ParentIndex: 5},
		{Index: 24, Name: "eth0-v0", Kind: "macvlan", MAC: hw(24), ParentIndex: 5},
		{Index: 25, Name: "team0", Kind: "team", MAC: hw(25), MasterIndex: 2},
		{Index: 26, Name: "swp6", Kind: "device", MAC: hw(26), MasterIndex: 25},
		{Index: 27, Name: "veth9", Kind: "veth", MAC: hw(27), MasterIndex: 50}, // bridge 50 is not in the table
	})
	return t
}

// ineligible returns err as an *IneligibleError: nil for nil, and one with
// the error's text as Reason for any other error (so a diff shows it).
func ineligible(err error) *IneligibleError {
	if err == nil {
		return nil
	}
	var ie *IneligibleError
	if !errors.As(err, &ie) {
		return &IneligibleError{Reason: "not an IneligibleError: " + err.Error()}
	}
	return ie
}

// ineligibleReason returns the Reason of an *IneligibleError, "" for nil.
func ineligibleReason(err error) string {
	if ie := ineligible(err); ie != nil {
		return ie.Reason
	}
	return ""
}

// TestEligible has a row for each numbered rule of Eligible's doc comment,
// more where a rule covers several kinds. The detail names the rule that
// excluded the link, so a row also fails when an earlier rule catches it.
// The table applies the same rule: AccessPort and Port (untagged, no
// VLAN-aware bridge here) must agree with Eligible on every row.
func TestEligible(t *testing.T) {
	tbl := leaf()
	get := func(i int) *Link {
		l, ok := tbl.Get(i)
		if !ok {
			return nil
		}
		return &l
	}
	tests := []struct {
		rule    int
		name    string // the link, in leaf()
		wantSVI string // "" when not eligible
		detail  string // the IneligibleError's Detail when not eligible
	}{
		{rule: 1, name: "lo", detail: "loopback"},
		{rule: 1, name: "tun0", detail: "no Ethernet address"},
		{rule: 1, name: "ib0", detail: "no Ethernet address"}, // a 20-byte InfiniBand address
		{rule: 2, name: "vx10", detail: "tunnel device (vxlan)"},
		{rule: 2, name: "vx20", detail: "tunnel device (vxlan)"}, // without a master
		{rule: 2, name: "vx30", detail: "tunnel device (vxlan)"}, // forwarding, learning, flooding: still a tunnel
		{rule: 2, name: "gt0", detail: "tunnel device (gretap)"}, // bridged
		{rule: 2, name: "gn0", detail: "tunnel device (geneve)"}, // bridged
		{rule: 3, name: "br10", detail: "bridge (it is the SVI of its members)"},
		{rule: 3, name: "vrf1", detail: "vrf device"},
		{rule: 3, name: "dummy0", detail: "dummy device"},
		{rule: 3, name: "ipvl0", detail: "ipvlan device"},
		{rule: 4, name: "br10-v0", detail: "macvlan (an anycast gateway on an SVI)"},
		{rule: 4, name: "eth0-v0", detail: "macvlan (an anycast gateway on an SVI)"}, // on a routed port too
		{rule: 5, name: "br10.20", detail: "vlan device on a bridge (an SVI)"},
		{rule: 6, name: "swp2", detail: "member of bond bond0 (the bond is the port)"},
		{rule: 6, name: "swp6", detail: "member of team team0 (the team is the port)"},
		{rule: 7, name: "swp4", detail: "bridge port in STP state blocking"},
		{rule: 8, name: "swp1", wantSVI: "br10"},  // veth
		{rule: 8, name: "tap0", wantSVI: "br10"},  // a VM's tap
		{rule: 8, name: "bond0", wantSVI: "br10"}, // the bond is the port
		{rule: 8, name: "team0", wantSVI: "br10"},
		{rule: 8, name: "swp5", wantSVI: "br10"},       // STP learning: still the VM's way in
		{rule: 9, name: "eth0", wantSVI: "eth0"},       // a routed port
		{rule: 9, name: "eth0.30", wantSVI: "eth0.30"}, // vlan subinterface of a routed port
		{rule: 9, name: "swp3", wantSVI: "swp3"},       // a routed port in a VRF
	}
	for _, tt := range tests {
		t.Run(fmt.Sprintf("rule %d %s", tt.rule, tt.name), func(t *testing.T) {
			l, ok := tbl.ByName(tt.name)
			if !ok {
				t.Fatalf("no link %s in leaf()", tt.name)
			}
			var want *IneligibleError
			var wantSVI int
			if tt.wantSVI == "" {
				want = &IneligibleError{Name: tt.name, Reason: "not-access-port", Detail: tt.detail}
			} else {
				s, ok := tbl.ByName(tt.wantSVI)
				if !ok {
					t.Fatalf("no link %s in leaf()", tt.wantSVI)
				}
				wantSVI = s.Index
			}
			svi, err := Eligible(l, get(l.MasterIndex), get(l.ParentIndex))
			if diff := cmp.Diff(want, ineligible(err)); diff != "" {
				t.Fatalf("Eligible(%s) error (-want +got):\n%s", tt.name, diff)
			}
			if diff := cmp.Diff(wantSVI, svi); diff != "" {
				t.Errorf("Eligible(%s) SVI index (-want +got):\n%s", tt.name, diff)
			}
			if diff := cmp.Diff(want, ineligible(tbl.AccessPort(l.Index))); diff != "" {
				t.Errorf("AccessPort(%s) (-want +got):\n%s", tt.name, diff)
			}
			p, err := tbl.Port(l.Index, nil)
			if diff := cmp.Diff(want, ineligible(err)); diff != "" {
				t.Errorf("Port(%s) error (-want +got):\n%s", tt.name, diff)
			}
			if err == nil {
				if diff := cmp.Diff([2]string{tt.name, tt.wantSVI}, [2]string{p.Link.Name, p.SVI.Name}); diff != "" {
					t.Errorf("Port(%s) port, SVI (-want +got):\n%s", tt.name, diff)
				}
			}
		})
	}
}

// TestTablePort: what Port adds to the rule. The SVI it returns is the
// table's link (addresses included), with the anycast gateways on it and
// the tags to answer with; a link or master missing from the table is an
// unknown port, never a stand-alone one.
func TestTablePort(t *testing.T) {
	tbl := leaf()
	link := func(name string) Link {
		l, ok := tbl.ByName(name)
		if !ok {
			t.Fatalf("no link %s in leaf()", name)
		}
		return l
	}
	tests := []struct {
		name       string
		port       string // in leaf(); "" for index 99, which is not
		vlans      []uint16
		want       func() Port
		wantReason string
	}{
		{name: "bridge member: the bridge serves it, with its anycast gateway", port: "swp1",
			want: func() Port { return Port{Link: link("swp1"), SVI: link("br10"), Anycast: []Link{link("br10-v0")}} }},
		{name: "tagged frame on a traditional bridge is answered in kind", port: "swp1", vlans: []uint16{100},
			want: func() Port {
				return Port{Link: link("swp1"), SVI: link("br10"), Anycast: []Link{link("br10-v0")}, VLANs: []uint16{100}}
			}},
		{name: "routed port serves itself, with its anycast gateway", port: "eth0",
			want: func() Port { return Port{Link: link("eth0"), SVI: link("eth0"), Anycast: []Link{link("eth0-v0")}} }},
		{name: "tagged frame on a routed port: its vlan subinterface", port: "eth0", vlans: []uint16{30},
			want: func() Port { return Port{Link: link("eth0"), SVI: link("eth0.30"), VLANs: []uint16{30}} }},
		{name: "unknown index", wantReason: "unknown-port"},
		{name: "member of a bridge missing from the table", port: "veth9", wantReason: "unknown-port"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			index := 99
			if tt.port != "" {
				index = link(tt.port).Index
			}
			if diff := cmp.Diff(tt.wantReason, ineligibleReason(tbl.AccessPort(index))); diff != "" {
				t.Errorf("AccessPort(%d) reason (-want +got):\n%s", index, diff)
			}
			p, err := tbl.Port(index, tt.vlans)
			if diff := cmp.Diff(tt.wantReason, ineligibleReason(err)); diff != "" {
				t.Fatalf("Port(%d) reason (-want +got):\n%s\nerr: %v", index, diff, err)
			}
			if err != nil {
				return
			}
			if diff := cmp.Diff(tt.want(), p, eqPrefix); diff != "" {
				t.Errorf("Port(%d, %v) (-want +got):\n%s", index, tt.vlans, diff)
			}
		})
	}
}

func TestTablePortRefresh(t *testing.T) {
	veth := Link{Index: 3, Name: "swp1", Kind: "veth", MAC: hw(3), MasterIndex: 2, Up: true, Addrs: []netip.Prefix{}}
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
		{name: "read member of a bridge not known yet", index: 3, refreshed: Link{Index: 3, Name: "swp1", Kind: "veth", MAC: hw(3), MasterIndex: 20, Up: true}, wantCalls: []int{3}, wantReason: "unknown-port", wantKnown: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tbl := NewTable()
			tbl.Set(Link{Index: 2, Name: "br10", Kind: "bridge", MAC: hw(2), Up: true})
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
		// An address event between two link messages survives both: a
		// link event and a re-dump carry no addresses.
		{name: "AddAddr then Set with nil keeps both", update: func(t *Table, l Link) { t.AddAddr(2, b); t.Set(l) }, addrs: nil, want: []netip.Prefix{a, b}},
		{name: "AddAddr then Replace with nil keeps both", update: func(t *Table, l Link) { t.AddAddr(2, b); t.Replace([]Link{l}) }, addrs: nil, want: []netip.Prefix{a, b}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tbl := NewTable()
			tbl.Set(Link{Index: 2, Name: "br10", Kind: "bridge", Addrs: []netip.Prefix{a}})
			tt.update(tbl, Link{Index: 2, Name: "br10", Kind: "bridge", Up: true, Addrs: tt.addrs})
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
	tbl := leaf()
	tbl.Replace([]Link{{Index: 2, Name: "br10", Kind: "bridge"}})
	var got []string
	for _, l := range tbl.All() {
		got = append(got, l.Name)
	}
	if diff := cmp.Diff([]string{"br10"}, got); diff != "" {
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
			tbl.Set(Link{Index: 2, Name: "br10", Kind: "bridge", Addrs: []netip.Prefix{a, b}})
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
			tbl.Set(Link{Index: 2, Name: "br10", Kind: "bridge"})
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
	tbl := leaf()
	tests := []struct {
		name      string
		wantIndex int
		wantOK    bool
	}{
		{name: "swp1", wantIndex: 3, wantOK: true},
		{name: "br10", wantIndex: 2, wantOK: true},
		{name: "br10.20", wantIndex: 7, wantOK: true},
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
			svi := Link{Index: 2, Name: "br10", Kind: "bridge", MAC: hw(2), Addrs: tt.addrs}
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

// BenchmarkPort resolves a port on a VLAN-aware bridge with 100 VLANs (a
// vlan SVI and an anycast macvlan each) and 400 access ports, as on a leaf
// with EVPN on the hypervisor: what every RARP and answer costs.
func BenchmarkPort(b *testing.B) {
	t := NewTable()
	mac := func(i int) net.HardwareAddr { return net.HardwareAddr{2, 0, 0, byte(i >> 16), byte(i >> 8), byte(i)} }
	links := []Link{{Index: 1, Name: "bridge", Kind: "bridge", MAC: mac(1), Up: true, VLANFiltering: true}}
	for v := range 100 {
		svi := 1000 + 2*v
		links = append(links,
			Link{Index: svi, Name: fmt.Sprintf("vlan%d", 10+v), Kind: "vlan", MAC: mac(svi), ParentIndex: 1, VLANID: uint16(10 + v), Up: true},
			Link{Index: svi + 1, Name: fmt.Sprintf("vlan%d-v0", 10+v), Kind: "macvlan", MAC: mac(svi + 1), ParentIndex: svi, Up: true})
	}
	for p := range 400 {
		links = append(links, Link{Index: 2000 + p, Name: fmt.Sprintf("tap%d", p), Kind: "tun", MAC: mac(2000 + p), MasterIndex: 1, Up: true,
			VLANs: []PortVLAN{{VID: uint16(10 + p%100), PVID: true, Untagged: true}}})
	}
	t.Replace(links)
	if p, err := t.Port(2050, nil); err != nil || p.SVI.Name != "vlan60" || len(p.Anycast) != 1 {
		b.Fatalf("Port(2050) = %v, %v; want vlan60 and its macvlan", p, err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := t.Port(2050, nil); err != nil {
			b.Fatal(err)
		}
	}
}

// TestUppersIndex: after any sequence of Set, SetBridgePort, Delete and
// Replace, the index of vlan and macvlan devices by lower device holds
// exactly what a scan of every link finds, in index order. Random
// sequences; the seed is printed.
func TestUppersIndex(t *testing.T) {
	seed := uint64(time.Now().UnixNano())
	t.Logf("seed %d", seed)
	r := rand.New(rand.NewPCG(seed, seed))
	kinds := []string{"vlan", "macvlan", "veth", "bridge"}
	random := func(i int) Link {
		return Link{Index: i, Name: fmt.Sprintf("l%d", i), Kind: kinds[r.IntN(len(kinds))], MAC: hw(byte(i)), ParentIndex: r.IntN(6), VLANID: uint16(r.IntN(3))}
	}
	tb := NewTable()
	for step := range 2000 {
		i := 1 + r.IntN(12)
		switch op := r.IntN(10); {
		case op < 6:
			tb.Set(random(i))
		case op < 7:
			tb.SetBridgePort(i, PortInfo{State: STPForwarding}, nil)
		case op < 9:
			tb.Delete(i)
		default:
			var ls []Link
			for j := 1; j <= 12; j++ {
				if r.IntN(2) == 0 {
					ls = append(ls, random(j))
				}
			}
			tb.Replace(ls)
		}
		want := map[int][]int{}
		for _, l := range tb.All() {
			if (l.Kind == "vlan" || l.Kind == "macvlan") && l.ParentIndex != 0 {
				want[l.ParentIndex] = append(want[l.ParentIndex], l.Index)
			}
		}
		for _, us := range want {
			slices.Sort(us)
		}
		tb.mu.RLock()
		got := tb.uppers
		diff := cmp.Diff(want, got)
		tb.mu.RUnlock()
		if diff != "" {
			t.Fatalf("step %d (seed %d): uppers (-scan +index):\n%s", step, seed, diff)
		}
	}
}
