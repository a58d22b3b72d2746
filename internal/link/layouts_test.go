package link

import (
	"errors"
	"net/netip"
	"os"
	"path/filepath"
	"testing"
)

// loadLayout loads a switch layout fixture from pcaps/layouts/NAME.
func loadLayout(t *testing.T, name string) *Table {
	t.Helper()
	dir := filepath.Join("..", "..", "pcaps", "layouts", name)
	lf, err := os.Open(filepath.Join(dir, "links.json"))
	if err != nil {
		t.Fatal(err)
	}
	defer lf.Close()
	vf, err := os.Open(filepath.Join(dir, "bridge-vlan.json"))
	if err != nil {
		t.Fatal(err)
	}
	defer vf.Close()
	tab, err := FromIPRoute2(lf, vf)
	if err != nil {
		t.Fatal(err)
	}
	return tab
}

type portCase struct {
	port    string
	tags    []uint16
	svi     string // "" when the frame must not trigger probes
	reason  string
	egress  []uint16 // tags the probes leave with
	anycast int      // anycast devices found on the SVI
	src4    string   // source for an address in the SVI's IPv4 subnet, with MAC
}

func checkPorts(t *testing.T, tab *Table, cases []portCase) {
	t.Helper()
	for _, c := range cases {
		l, ok := tab.ByName(c.port)
		if !ok {
			t.Fatalf("no link %s in the fixture", c.port)
		}
		p, err := tab.Port(l.Index, c.tags)
		if c.svi == "" {
			var ie *IneligibleError
			if !errors.As(err, &ie) || ie.Reason != c.reason {
				t.Errorf("%s %v: error %v, want reason %s", c.port, c.tags, err, c.reason)
			}
			continue
		}
		if err != nil {
			t.Errorf("%s %v: %v, want SVI %s", c.port, c.tags, err, c.svi)
			continue
		}
		if p.SVI.Name != c.svi || len(p.Anycast) != c.anycast || !equalTags(p.VLANs, c.egress) {
			t.Errorf("%s %v: SVI %s egress %v anycast %d; want %s %v %d", c.port, c.tags, p.SVI.Name, p.VLANs, len(p.Anycast), c.svi, c.egress, c.anycast)
		}
		if c.src4 != "" {
			var target netip.Addr
			for _, a := range p.SVI.Addrs {
				if a.Addr().Is4() {
					target = a.Masked().Addr().Next().Next().Next().Next().Next().Next().Next().Next().Next().Next()
				}
			}
			ip, mac := Source(p, target)
			if got := ip.String() + " " + mac.String(); got != c.src4 {
				t.Errorf("%s %v: source for %s = %s, want %s", c.port, c.tags, target, got, c.src4)
			}
		}
	}
}

func equalTags(a, b []uint16) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// TestCumulusLayout: one VLAN-aware bridge, trunk and access ports, a bond,
// VLAN SVIs (vlan10, vlan20) in a VRF, and an anycast gateway macvlan
// (vlan10-v0) on vlan10.
func TestCumulusLayout(t *testing.T) {
	tab := loadLayout(t, "cumulus")
	checkPorts(t, tab, []portCase{
		{port: "swp1", svi: "vlan10", anycast: 1, src4: "192.0.2.1 00:00:5e:00:01:01"},                                  // access port, PVID 10
		{port: "swp1", tags: []uint16{10}, svi: "vlan10", anycast: 1},                                                   // tagged with its PVID
		{port: "swp2", tags: []uint16{10}, svi: "vlan10", egress: []uint16{10}, anycast: 1},                             // trunk
		{port: "swp2", tags: []uint16{20}, svi: "vlan20", egress: []uint16{20}, src4: "198.51.100.1 02:00:00:00:01:01"}, // no anycast device
		{port: "swp2", reason: "no-vlan"},                                                                               // untagged on a trunk without PVID
		{port: "swp2", tags: []uint16{30}, reason: "no-vlan"},                                                           // not a member
		{port: "bond1", tags: []uint16{15}, reason: "no-svi"},                                                           // member, but VLAN 15 has no SVI
		{port: "bond1", tags: []uint16{20}, svi: "vlan20", egress: []uint16{20}},
		{port: "swp3", reason: "not-access-port"}, // the bond is the port
		{port: "vni10", reason: "not-access-port"},
		{port: "vlan10", reason: "not-access-port"},
		{port: "vlan10-v0", reason: "not-access-port"},
		{port: "bridge", reason: "not-access-port"},
		{port: "eth0", svi: "eth0"}, // a stand-alone port in the mgmt VRF
	})
	// An explicit source for an unusual layout.
	tab.SetOverride("vlan20", Override{IPv4: netip.MustParseAddr("198.51.100.9")})
	checkPorts(t, tab, []portCase{{port: "swp2", tags: []uint16{20}, svi: "vlan20", egress: []uint16{20}, src4: "198.51.100.9 02:00:00:00:01:01"}})
	// IPv6 prefers the anycast gateway's address too.
	l, _ := tab.ByName("swp2")
	p, _ := tab.Port(l.Index, []uint16{10})
	if ip, mac := Source(p, netip.MustParseAddr("2001:db8:10::10")); ip.String() != "2001:db8:10::1" || mac.String() != "00:00:5e:00:01:01" {
		t.Errorf("IPv6 source %s %s, want the anycast 2001:db8:10::1 00:00:5e:00:01:01", ip, mac)
	}
}

// TestSONiCLayout: Bridge with Ethernet ports and a PortChannel (team), SVIs
// Vlan1000 and Vlan2000 carrying the anycast address and MAC in a VRF.
func TestSONiCLayout(t *testing.T) {
	tab := loadLayout(t, "sonic")
	checkPorts(t, tab, []portCase{
		{port: "Ethernet0", svi: "Vlan1000", src4: "192.0.2.1 00:00:5e:00:01:01"},
		{port: "Ethernet4", tags: []uint16{1000}, svi: "Vlan1000", egress: []uint16{1000}},
		{port: "Ethernet4", tags: []uint16{2000}, svi: "Vlan2000", egress: []uint16{2000}},
		{port: "Ethernet4", reason: "no-vlan"},
		{port: "PortChannel01", svi: "Vlan2000"},
		{port: "Ethernet8", reason: "not-access-port"},
		{port: "dummy", reason: "not-access-port"},
		{port: "vtep-1000", reason: "not-access-port"},
		{port: "Vlan1000", reason: "not-access-port"},
	})
}
