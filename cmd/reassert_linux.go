package cmd

import (
	"errors"
	"fmt"
	"net/netip"

	"github.com/rarp-replay/rarp-replay/neigh"
	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// kernelNeighbor reads the kernel's entry for ip on ifindex; false when
// there is none.
func kernelNeighbor(ifindex int, ip netip.Addr) (kernelNeigh, bool, error) {
	e, err := neigh.Get(ifindex, ip)
	switch {
	case errors.Is(err, unix.ENOENT):
		return kernelNeigh{}, false, nil
	case err != nil:
		return kernelNeigh{}, false, err
	}
	return kernelNeigh{mac: e.MAC, lost: e.State&(neigh.NUDFailed|neigh.NUDIncomplete) != 0, remote: e.ExternLearned()}, true, nil
}

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
