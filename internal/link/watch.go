package link

import (
	"errors"

	"github.com/vishvananda/netns"
)

// ErrNotImplemented is what the kernel-facing functions return off Linux.
var ErrNotImplemented = errors.New("not implemented on this operating system: rarp-replay listens on Linux")

// WatchOptions tune Watch. The zero value follows this process's network
// namespace with a 1 MiB receive buffer per subscription.
type WatchOptions struct {
	// Namespace, when not nil, is the network namespace to follow.
	Namespace *netns.NsHandle
	// ReceiveBuffer is each subscription socket's receive buffer, in bytes.
	ReceiveBuffer int
	// Resynced, when not nil, is called with the subscription's name
	// ("link", "addr") each time it failed (the kernel outran the reader:
	// ENOBUFS) and the table was dumped again.
	Resynced func(subscription string)
	// Refresh, when not nil, makes Watch dump the links again each time it
	// receives. Some kernel paths change a link without a notification
	// (seen: a bond whose first enslave failed takes a random MAC, with
	// eth_hw_addr_random, and says nothing), so the daemon refreshes
	// periodically.
	Refresh <-chan struct{}
}
