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
	return newKernelNeigh(e.MAC, e.State, e.Flags), true, nil
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
		out[a.Unmap()] = newKernelNeigh(n.HardwareAddr, n.State, n.Flags)
	}
}
