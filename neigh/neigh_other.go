//go:build !linux

package neigh

import (
	"context"
	"log/slog"
	"net"
	"net/netip"
)

// Watch needs Linux's rtnetlink.
func Watch(context.Context, *Mirror, *slog.Logger, func(), WatchOptions) error {
	return ErrNotImplemented
}

// Get needs Linux's rtnetlink.
func Get(int, netip.Addr) (Entry, error) { return Entry{}, ErrNotImplemented }

// Program needs Linux's rtnetlink.
func (Kernel) Program(int, netip.Addr, net.HardwareAddr) error { return ErrNotImplemented }
