package link

import (
	"net"
	"net/netip"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/vishvananda/netlink"
)

// TestFromNetlink converts the link values netlink's LinkList and link
// events carry, without a socket: the kind is the rtnetlink kind, the
// flags give Up and Loopback, and only a vlan device and a bridge carry
// their own attribute (VLAN ID, VLAN filtering). The bridge port view
// and the addresses come from elsewhere: never from here.
func TestFromNetlink(t *testing.T) {
	yes, no := true, false
	mac := func() net.HardwareAddr { return hw(9) }
	attrs := func(index int, name string, flags net.Flags) netlink.LinkAttrs {
		return netlink.LinkAttrs{Index: index, Name: name, HardwareAddr: mac(), Flags: flags, MTU: 1500, TxQLen: 1000}
	}
	up := net.FlagUp | net.FlagBroadcast | net.FlagMulticast | net.FlagRunning
	withMaster := func(a netlink.LinkAttrs, master int) netlink.LinkAttrs { a.MasterIndex = master; return a }
	withParent := func(a netlink.LinkAttrs, parent int) netlink.LinkAttrs { a.ParentIndex = parent; return a }
	tests := []struct {
		name string
		in   netlink.Link
		want Link
	}{
		{name: "veth on a bridge", in: &netlink.Veth{LinkAttrs: withMaster(attrs(3, "swp1", up), 2), PeerName: "vm1"},
			want: Link{Index: 3, Name: "swp1", Kind: "veth", MAC: hw(9), MasterIndex: 2, Up: true}},
		{name: "VLAN-aware bridge", in: &netlink.Bridge{LinkAttrs: attrs(2, "br10", up), VlanFiltering: &yes},
			want: Link{Index: 2, Name: "br10", Kind: "bridge", MAC: hw(9), Up: true, VLANFiltering: true}},
		{name: "bridge with VLAN filtering off", in: &netlink.Bridge{LinkAttrs: attrs(2, "br10", up), VlanFiltering: &no},
			want: Link{Index: 2, Name: "br10", Kind: "bridge", MAC: hw(9), Up: true}},
		{name: "bridge without the VLAN filtering attribute", in: &netlink.Bridge{LinkAttrs: attrs(2, "br10", up)},
			want: Link{Index: 2, Name: "br10", Kind: "bridge", MAC: hw(9), Up: true}},
		{name: "vlan device: its VLAN ID and parent", in: &netlink.Vlan{LinkAttrs: withParent(attrs(7, "vlan20", up), 2), VlanId: 20, VlanProtocol: netlink.VLAN_PROTOCOL_8021Q},
			want: Link{Index: 7, Name: "vlan20", Kind: "vlan", MAC: hw(9), ParentIndex: 2, Up: true, VLANID: 20}},
		{name: "vlan device 4094", in: &netlink.Vlan{LinkAttrs: withParent(attrs(8, "eth0.4094", up), 5), VlanId: 4094},
			want: Link{Index: 8, Name: "eth0.4094", Kind: "vlan", MAC: hw(9), ParentIndex: 5, Up: true, VLANID: 4094}},
		{name: "vxlan on a bridge", in: &netlink.Vxlan{LinkAttrs: withMaster(attrs(4, "vni10", up), 2), VxlanId: 10, Port: 4789, Learning: false},
			want: Link{Index: 4, Name: "vni10", Kind: "vxlan", MAC: hw(9), MasterIndex: 2, Up: true}},
		{name: "macvlan on an SVI", in: &netlink.Macvlan{LinkAttrs: withParent(attrs(6, "vlan10-v0", up), 7), Mode: netlink.MACVLAN_MODE_PRIVATE},
			want: Link{Index: 6, Name: "vlan10-v0", Kind: "macvlan", MAC: hw(9), ParentIndex: 7, Up: true}},
		{name: "loopback", in: &netlink.Device{LinkAttrs: netlink.LinkAttrs{Index: 1, Name: "lo", HardwareAddr: make(net.HardwareAddr, 6), Flags: net.FlagUp | net.FlagLoopback | net.FlagRunning}},
			want: Link{Index: 1, Name: "lo", Kind: "device", MAC: make(net.HardwareAddr, 6), Loopback: true, Up: true}},
		{name: "device down", in: &netlink.Device{LinkAttrs: attrs(5, "eth0", net.FlagBroadcast|net.FlagMulticast)},
			want: Link{Index: 5, Name: "eth0", Kind: "device", MAC: hw(9)}},
		{name: "tun: no hardware address", in: &netlink.Tuntap{LinkAttrs: netlink.LinkAttrs{Index: 11, Name: "tun0", Flags: net.FlagUp | net.FlagPointToPoint}, Mode: netlink.TUNTAP_MODE_TUN},
			want: Link{Index: 11, Name: "tun0", Kind: "tuntap", Up: true}},
		{name: "bond member", in: &netlink.Device{LinkAttrs: withMaster(attrs(10, "swp2", up), 9)},
			want: Link{Index: 10, Name: "swp2", Kind: "device", MAC: hw(9), MasterIndex: 9, Up: true}},
		{name: "bond", in: netlink.NewLinkBond(withMaster(attrs(9, "bond0", up), 2)),
			want: Link{Index: 9, Name: "bond0", Kind: "bond", MAC: hw(9), MasterIndex: 2, Up: true}},
		{name: "VRF", in: &netlink.Vrf{LinkAttrs: attrs(12, "vrf1", up), Table: 1001},
			want: Link{Index: 12, Name: "vrf1", Kind: "vrf", MAC: hw(9), Up: true}},
		// netlink names a GRE tap by its local address's family.
		{name: "gretap", in: &netlink.Gretap{LinkAttrs: withMaster(attrs(15, "gt0", up), 2), Local: net.IP{192, 0, 2, 1}},
			want: Link{Index: 15, Name: "gt0", Kind: "gretap", MAC: hw(9), MasterIndex: 2, Up: true}},
		{name: "ip6gretap", in: &netlink.Gretap{LinkAttrs: withMaster(attrs(15, "gt0", up), 2), Local: net.ParseIP("2001:db8::1")},
			want: Link{Index: 15, Name: "gt0", Kind: "ip6gretap", MAC: hw(9), MasterIndex: 2, Up: true}},
		{name: "geneve", in: &netlink.Geneve{LinkAttrs: attrs(16, "gn0", up), ID: 7},
			want: Link{Index: 16, Name: "gn0", Kind: "geneve", MAC: hw(9), Up: true}},
		// A kind netlink has no type for (team, ...) arrives as a
		// GenericLink whose LinkType is the rtnetlink kind.
		{name: "team, as a generic link", in: &netlink.GenericLink{LinkAttrs: withMaster(attrs(25, "team0", up), 2), LinkType: "team"},
			want: Link{Index: 25, Name: "team0", Kind: "team", MAC: hw(9), MasterIndex: 2, Up: true}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := fromNetlink(tt.in)
			// The Link must not share the netlink value's MAC: netlink
			// reuses nothing today, but the table hands Links to readers.
			clear(tt.in.Attrs().HardwareAddr)
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("fromNetlink (-want +got):\n%s", diff)
			}
		})
	}
}

// TestPrefix converts the address netlink reports (IFA_ADDRESS with the
// prefix length) to a netip.Prefix that keeps the host part: the SVI's own
// address is the probe source.
func TestPrefix(t *testing.T) {
	tests := []struct {
		name   string
		in     *net.IPNet
		want   string
		wantOK bool
	}{
		{name: "IPv4 as netlink reports it (4 bytes)", in: &net.IPNet{IP: net.IP{192, 0, 2, 1}, Mask: net.CIDRMask(24, 32)}, want: "192.0.2.1/24", wantOK: true},
		{name: "IPv4 in 16-byte form", in: &net.IPNet{IP: net.ParseIP("192.0.2.1"), Mask: net.CIDRMask(24, 32)}, want: "192.0.2.1/24", wantOK: true},
		{name: "IPv4 host route", in: &net.IPNet{IP: net.IP{10, 0, 0, 1}, Mask: net.CIDRMask(32, 32)}, want: "10.0.0.1/32", wantOK: true},
		{name: "IPv6 global", in: &net.IPNet{IP: net.ParseIP("2001:db8:10::1"), Mask: net.CIDRMask(64, 128)}, want: "2001:db8:10::1/64", wantOK: true},
		{name: "IPv6 link-local", in: &net.IPNet{IP: net.ParseIP("fe80::1"), Mask: net.CIDRMask(64, 128)}, want: "fe80::1/64", wantOK: true},
		{name: "IPv6 /128", in: &net.IPNet{IP: net.ParseIP("2001:db8::7"), Mask: net.CIDRMask(128, 128)}, want: "2001:db8::7/128", wantOK: true},
		{name: "nil", in: nil},
		{name: "no address", in: &net.IPNet{Mask: net.CIDRMask(24, 32)}},
		{name: "address of 3 bytes", in: &net.IPNet{IP: net.IP{10, 0, 0}, Mask: net.CIDRMask(24, 32)}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, ok := prefix(tt.in)
			if ok != tt.wantOK {
				t.Fatalf("prefix(%v) ok = %v, want %v", tt.in, ok, tt.wantOK)
			}
			if !ok {
				return
			}
			want := netip.MustParsePrefix(tt.want)
			if got != want || !got.IsValid() {
				t.Errorf("prefix(%v) = %v (valid %v), want %v", tt.in, got, got.IsValid(), want)
			}
		})
	}
}

// TestFromNetlinkTunnels: every tunnel type netlink decodes converts to a
// kind in Tunnels, whatever its local address family (netlink names GRE
// and VTI devices by it), so Eligible never takes one for a port, even
// bridged and with an Ethernet address.
func TestFromNetlinkTunnels(t *testing.T) {
	v4, v6 := net.IP{192, 0, 2, 1}, net.ParseIP("2001:db8::1")
	a := func() netlink.LinkAttrs {
		return netlink.LinkAttrs{Index: 40, Name: "tnl0", HardwareAddr: hw(40), MasterIndex: 2, Flags: net.FlagUp}
	}
	tests := []struct {
		in   netlink.Link
		want string
	}{
		{&netlink.Vxlan{LinkAttrs: a(), VxlanId: 10}, "vxlan"},
		{&netlink.Geneve{LinkAttrs: a(), ID: 10}, "geneve"},
		{&netlink.Gretap{LinkAttrs: a(), Local: v4}, "gretap"},
		{&netlink.Gretap{LinkAttrs: a(), Local: v6}, "ip6gretap"},
		{&netlink.Gretap{LinkAttrs: a()}, "ip6gretap"}, // no local address
		{&netlink.Gretun{LinkAttrs: a(), Local: v4}, "gre"},
		{&netlink.Gretun{LinkAttrs: a(), Local: v6}, "ip6gre"},
		{&netlink.Iptun{LinkAttrs: a()}, "ipip"},
		{&netlink.Ip6tnl{LinkAttrs: a()}, "ip6tnl"},
		{&netlink.Sittun{LinkAttrs: a()}, "sit"},
		{&netlink.Vti{LinkAttrs: a(), Local: v4}, "vti"},
		{&netlink.Vti{LinkAttrs: a(), Local: v6}, "vti6"},
		{&netlink.Wireguard{LinkAttrs: a()}, "wireguard"},
		{&netlink.Xfrmi{LinkAttrs: a()}, "xfrm"},
		{&netlink.BareUDP{LinkAttrs: a()}, "bareudp"},
		{&netlink.GenericLink{LinkAttrs: a(), LinkType: "erspan"}, "erspan"},
	}
	bridge := &Link{Index: 2, Name: "br10", Kind: "bridge", MAC: hw(2)}
	for _, tt := range tests {
		t.Run(tt.want, func(t *testing.T) {
			l := fromNetlink(tt.in)
			if l.Kind != tt.want || !Tunnels[l.Kind] {
				t.Fatalf("kind %q (in Tunnels: %v), want %q, a tunnel", l.Kind, Tunnels[l.Kind], tt.want)
			}
			if svi, err := Eligible(l, bridge, nil); ineligibleReason(err) != "not-access-port" {
				t.Errorf("Eligible(bridged %s) = %d, %v; want not-access-port", l.Kind, svi, err)
			}
		})
	}
}
