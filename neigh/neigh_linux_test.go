package neigh

import (
	"net"
	"net/netip"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// TestFromNetlink converts the neighbor values netlink's NeighList and
// NeighDeserialize produce, without a socket: the address unmapped (an
// IPv4 binding is IPv4 whichever form it came in), the MAC copied, the
// NUD state and NTF flags as the kernel set them, so that this package's
// NUD and NTF constants apply to them.
func TestFromNetlink(t *testing.T) {
	mac := func() net.HardwareAddr { return net.HardwareAddr{2, 0, 0x5e, 0x10, 0, 0x0a} }
	tests := []struct {
		name       string
		in         netlink.Neigh
		want       Entry
		wantRemote bool
	}{
		{name: "IPv4, as the kernel reports it (4 bytes)",
			in:   netlink.Neigh{LinkIndex: 7, Family: unix.AF_INET, State: netlink.NUD_REACHABLE, IP: net.IP{192, 0, 2, 10}, HardwareAddr: mac()},
			want: Entry{IfIndex: 7, IP: netip.MustParseAddr("192.0.2.10"), MAC: mac(), State: NUDReachable}},
		{name: "IPv4 in 16-byte form",
			in:   netlink.Neigh{LinkIndex: 7, Family: unix.AF_INET, State: netlink.NUD_STALE, IP: net.ParseIP("192.0.2.10"), HardwareAddr: mac()},
			want: Entry{IfIndex: 7, IP: netip.MustParseAddr("192.0.2.10"), MAC: mac(), State: NUDStale}},
		{name: "IPv6 global",
			in:   netlink.Neigh{LinkIndex: 7, Family: unix.AF_INET6, State: netlink.NUD_DELAY, IP: net.ParseIP("2001:db8:10::10"), HardwareAddr: mac()},
			want: Entry{IfIndex: 7, IP: netip.MustParseAddr("2001:db8:10::10"), MAC: mac(), State: NUDDelay}},
		{name: "IPv6 link-local: no zone",
			in:   netlink.Neigh{LinkIndex: 7, Family: unix.AF_INET6, State: netlink.NUD_PROBE, IP: net.ParseIP("fe80::10"), HardwareAddr: mac()},
			want: Entry{IfIndex: 7, IP: netip.MustParseAddr("fe80::10"), MAC: mac(), State: NUDProbe}},
		{name: "IPv4-mapped IPv6 is IPv4",
			in:   netlink.Neigh{LinkIndex: 7, Family: unix.AF_INET6, State: netlink.NUD_REACHABLE, IP: net.ParseIP("::ffff:192.0.2.10").To16(), HardwareAddr: mac()},
			want: Entry{IfIndex: 7, IP: netip.MustParseAddr("192.0.2.10"), MAC: mac(), State: NUDReachable}},
		{name: "remote binding installed by zebra (extern_learn, noarp)",
			in:   netlink.Neigh{LinkIndex: 7, Family: unix.AF_INET, State: netlink.NUD_NOARP, Flags: netlink.NTF_EXT_LEARNED, IP: net.IP{192, 0, 2, 11}, HardwareAddr: mac()},
			want: Entry{IfIndex: 7, IP: netip.MustParseAddr("192.0.2.11"), MAC: mac(), State: NUDNoARP, Flags: NTFExtLearned}, wantRemote: true},
		{name: "extern_learn among other flags (router)",
			in:   netlink.Neigh{LinkIndex: 7, Family: unix.AF_INET6, State: netlink.NUD_NOARP, Flags: netlink.NTF_EXT_LEARNED | netlink.NTF_ROUTER, IP: net.ParseIP("2001:db8:10::11"), HardwareAddr: mac()},
			want: Entry{IfIndex: 7, IP: netip.MustParseAddr("2001:db8:10::11"), MAC: mac(), State: NUDNoARP, Flags: NTFExtLearned | netlink.NTF_ROUTER}, wantRemote: true},
		{name: "permanent",
			in:   netlink.Neigh{LinkIndex: 3, Family: unix.AF_INET, State: netlink.NUD_PERMANENT, IP: net.IP{192, 0, 2, 12}, HardwareAddr: mac()},
			want: Entry{IfIndex: 3, IP: netip.MustParseAddr("192.0.2.12"), MAC: mac(), State: NUDPermanent}},
		{name: "incomplete: no MAC yet",
			in:   netlink.Neigh{LinkIndex: 7, Family: unix.AF_INET, State: netlink.NUD_INCOMPLETE, IP: net.IP{192, 0, 2, 13}},
			want: Entry{IfIndex: 7, IP: netip.MustParseAddr("192.0.2.13"), State: NUDIncomplete}},
		{name: "failed",
			in:   netlink.Neigh{LinkIndex: 7, Family: unix.AF_INET6, State: netlink.NUD_FAILED, IP: net.ParseIP("2001:db8:10::13")},
			want: Entry{IfIndex: 7, IP: netip.MustParseAddr("2001:db8:10::13"), State: NUDFailed}},
		{name: "no address", in: netlink.Neigh{LinkIndex: 7, Family: unix.AF_INET, State: netlink.NUD_REACHABLE, HardwareAddr: mac()},
			want: Entry{IfIndex: 7, MAC: mac(), State: NUDReachable}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := fromNetlink(tt.in)
			// The entry must not share the netlink value's MAC.
			clear(tt.in.HardwareAddr)
			if diff := cmp.Diff(tt.want, got, cmp.Comparer(func(a, b netip.Addr) bool { return a == b })); diff != "" {
				t.Errorf("fromNetlink (-want +got):\n%s", diff)
			}
			if got.ExternLearned() != tt.wantRemote {
				t.Errorf("ExternLearned() = %v, want %v", got.ExternLearned(), tt.wantRemote)
			}
		})
	}
}

// TestKernelConstants: the NUD and NTF values this package spells out (so
// that it builds on any OS) are the kernel's.
func TestKernelConstants(t *testing.T) {
	got := []int{NUDIncomplete, NUDReachable, NUDStale, NUDDelay, NUDProbe, NUDFailed, NUDNoARP, NUDPermanent, NTFExtLearned}
	want := []int{netlink.NUD_INCOMPLETE, netlink.NUD_REACHABLE, netlink.NUD_STALE, netlink.NUD_DELAY, netlink.NUD_PROBE,
		netlink.NUD_FAILED, netlink.NUD_NOARP, netlink.NUD_PERMANENT, netlink.NTF_EXT_LEARNED}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("NUD_* and NTF_EXT_LEARNED (-kernel +neigh):\n%s", diff)
	}
}
