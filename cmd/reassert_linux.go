package cmd

import (
	"fmt"
	"net/netip"

	"github.com/vishvananda/netlink"
)

// kernelNeighbors reads every neighbor entry on ifindex.
// Equivalent to `ip neigh show dev IFINDEX`.
func kernelNeighbors(ifindex int) (map[netip.Addr]kernelNeigh, error) {
	out := make(map[netip.Addr]kernelNeigh)
	for _, fam := range []int{netlink.FAMILY_V4, netlink.FAMILY_V6} {
		ns, err := netlink.NeighList(ifindex, fam)
		if err != nil {
			return nil, fmt.Errorf("neighbors of ifindex %d: %w", ifindex, err)
		}
		add(out, ifindex, ns)
	}
	return out, nil
}

func add(out map[netip.Addr]kernelNeigh, ifindex int, ns []netlink.Neigh) {
	for _, n := range ns {
		a, ok := netip.AddrFromSlice(n.IP)
		if !ok || n.LinkIndex != ifindex {
			continue
		}
		out[a.Unmap()] = kernelNeigh{mac: n.HardwareAddr, lost: n.State&(netlink.NUD_FAILED|netlink.NUD_INCOMPLETE) != 0,
			remote: n.Flags&netlink.NTF_EXT_LEARNED != 0}
	}
}
