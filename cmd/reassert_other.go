//go:build !linux

package cmd

import (
	"net/netip"

	"github.com/rarp-replay/rarp-replay/neigh"
)

func kernelNeighbors(int) (map[netip.Addr]kernelNeigh, error) { return nil, neigh.ErrNotImplemented }

func kernelNeighbor(int, netip.Addr) (kernelNeigh, bool, error) {
	return kernelNeigh{}, false, neigh.ErrNotImplemented
}
