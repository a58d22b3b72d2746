package link

import (
	"errors"
	"net"
	"net/netip"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func hw(b byte) net.HardwareAddr { return net.HardwareAddr{2, 0, 0, 0, 0, b} }

// leaf is a switch with the interface kinds a Linux leaf has.
func leaf() *Table {
	t := NewTable()
	t.Replace([]Link{
		{Index: 1, Name: "lo", Kind: "device", Loopback: true, MAC: make(net.HardwareAddr, 6)},
		{Index: 2, Name: "br10", Kind: "bridge", MAC: hw(2)},
		{Index: 3, Name: "swp1", Kind: "veth", MAC: hw(3), MasterIndex: 2},
		{Index: 4, Name: "vx10", Kind: "vxlan", MAC: hw(4), MasterIndex: 2},
		{Index: 5, Name: "eth0", Kind: "device", MAC: hw(5)},
		{Index: 6, Name: "br10-v0", Kind: "macvlan", MAC: hw(6), ParentIndex: 2},
		{Index: 7, Name: "br10.20", Kind: "vlan", MAC: hw(7), ParentIndex: 2},
		{Index: 8, Name: "eth0.30", Kind: "vlan", MAC: hw(8), ParentIndex: 5},
		{Index: 9, Name: "bond0", Kind: "bond", MAC: hw(9), MasterIndex: 2},
		{Index: 10, Name: "swp2", Kind: "device", MAC: hw(10), MasterIndex: 9},
		{Index: 11, Name: "tun0", Kind: "tun"},
		{Index: 12, Name: "vrf1", Kind: "vrf", MAC: hw(12)},
		{Index: 13, Name: "swp3", Kind: "device", MAC: hw(13), MasterIndex: 12},
		{Index: 14, Name: "tap0", Kind: "tuntap", MAC: hw(14), MasterIndex: 2},
		{Index: 15, Name: "gt0", Kind: "gretap", MAC: hw(15), MasterIndex: 2},
		{Index: 16, Name: "gn0", Kind: "geneve", MAC: hw(16), MasterIndex: 2},
		{Index: 17, Name: "vx20", Kind: "vxlan", MAC: hw(17)}, // bridged or not
		{Index: 18, Name: "swp4", Kind: "device", MAC: hw(18), MasterIndex: 2, PortInfo: PortInfo{State: STPBlocking}},
		{Index: 19, Name: "swp5", Kind: "device", MAC: hw(19), MasterIndex: 2, PortInfo: PortInfo{State: STPLearning}},
		{Index: 20, Name: "vx30", Kind: "vxlan", MAC: hw(20), MasterIndex: 2, PortInfo: PortInfo{State: STPForwarding, Learning: true, Flood: true}},
	})
	return t
}

func TestPortEligibility(t *testing.T) {
	tests := []struct {
		index  int
		svi    string // "" for not eligible
		reason string
	}{
		{1, "", "not-access-port"},  // loopback
		{2, "", "not-access-port"},  // the bridge is the SVI, not a port
		{3, "br10", ""},             // veth bridge member
		{4, "", "not-access-port"},  // VXLAN member: the old leaf's RARP arrives here
		{5, "eth0", ""},             // stand-alone L3 interface
		{6, "", "not-access-port"},  // anycast macvlan on the SVI
		{7, "", "not-access-port"},  // VLAN device on a bridge: an SVI
		{8, "eth0.30", ""},          // VLAN subinterface of a stand-alone port
		{9, "br10", ""},             // a bond as a bridge member
		{10, "", "not-access-port"}, // a bond's member: the bond is the port
		{11, "", "not-access-port"}, // no Ethernet address
		{12, "", "not-access-port"}, // the VRF device
		{13, "swp3", ""},            // a routed port in a VRF
		{14, "br10", ""},            // a VM's tap
		{15, "", "not-access-port"}, // a bridged GRE tap: a tunnel
		{16, "", "not-access-port"}, // a bridged GENEVE device: a tunnel
		{17, "", "not-access-port"}, // a VXLAN device without a master
		{18, "", "not-access-port"}, // STP blocking: a redundant path
		{19, "br10", ""},            // STP learning: still the VM's way in
		{20, "", "not-access-port"}, // a VXLAN port whatever its bridge flags
		{99, "", "unknown-port"},    // not in the table
	}
	tab := leaf()
	for _, tt := range tests {
		p, err := tab.Port(tt.index, nil)
		if tt.svi != "" {
			if err != nil || p.SVI.Name != tt.svi || p.Link.Index != tt.index {
				t.Errorf("Port(%d) = %s/%s, %v; want SVI %s", tt.index, p.Link.Name, p.SVI.Name, err, tt.svi)
			}
			continue
		}
		var ie *IneligibleError
		if !errors.As(err, &ie) || ie.Reason != tt.reason {
			t.Errorf("Port(%d) error = %v, want reason %s", tt.index, err, tt.reason)
		}
	}
}

func TestPortRefreshesUnknownIndex(t *testing.T) {
	tab := leaf()
	calls := 0
	tab.Refresh = func(index int) (Link, error) {
		calls++
		return Link{Index: index, Name: "swp9", Kind: "veth", MAC: hw(50), MasterIndex: 2}, nil
	}
	p, err := tab.Port(50, nil)
	if err != nil || p.SVI.Name != "br10" || calls != 1 {
		t.Fatalf("Port(50) = %+v, %v after %d refreshes; want br10 after 1", p, err, calls)
	}
	if _, ok := tab.Get(50); !ok {
		t.Error("the refreshed link was not kept")
	}
}

func TestTableAddresses(t *testing.T) {
	tab := NewTable()
	p1, p2 := netip.MustParsePrefix("192.0.2.1/24"), netip.MustParsePrefix("2001:db8:10::1/64")
	tab.Set(Link{Index: 2, Name: "br10", Kind: "bridge", MAC: hw(2), Addrs: []netip.Prefix{p1}})
	<-tab.Changed()
	tab.AddAddr(2, p2)
	tab.Set(Link{Index: 2, Name: "br10", Kind: "bridge", MAC: hw(2), Up: true}) // a link event carries no addresses
	tab.Replace([]Link{{Index: 2, Name: "br10", Kind: "bridge", MAC: hw(2)}})   // nor does a re-dump
	l, _ := tab.Get(2)
	if diff := cmp.Diff([]netip.Prefix{p1, p2}, l.Addrs, cmp.Comparer(func(a, b netip.Prefix) bool { return a == b })); diff != "" {
		t.Errorf("addresses (-want +got):\n%s", diff)
	}
	tab.DelAddr(2, p1)
	l, _ = tab.Get(2)
	if len(l.Addrs) != 1 || l.Addrs[0] != p2 {
		t.Errorf("after DelAddr: %v", l.Addrs)
	}
	// Changes are signalled, coalesced.
	select {
	case <-tab.Changed():
	default:
		t.Error("no change signalled")
	}
	select {
	case <-tab.Changed():
		t.Error("changes not coalesced")
	default:
	}
	if l, ok := tab.ByName("br10"); !ok || l.Index != 2 {
		t.Errorf("ByName(br10) = %v, %v", l, ok)
	}
}
