package neigh

import (
	"errors"
	"log/slog"

	"github.com/vishvananda/netns"
)

// ErrNotImplemented is what the kernel-facing functions return off Linux.
var ErrNotImplemented = errors.New("not implemented on this operating system: rarp-replay listens on Linux")

// ErrInvalid is returned by Program for an address or MAC it cannot program.
var ErrInvalid = errors.New("invalid neighbor")

// Kernel programs verified bindings into the kernel's neighbor table.
type Kernel struct {
	// Log, when not nil and enabled at debug level, gets one line per
	// binding programmed, with the entry's state, flags and MAC before and
	// after (read back from the kernel: two more netlink round trips, made
	// only at debug level).
	Log *slog.Logger

	conn *routeConn // ProgramBatch's socket (NewKernel); nil: one request at a time
}

// WatchOptions tune Watch. The zero value follows this process's network
// namespace with an 8 MiB receive buffer.
type WatchOptions struct {
	// Namespace, when not nil, is the network namespace to follow.
	Namespace *netns.NsHandle
	// ReceiveBuffer is the subscription socket's receive buffer, in bytes.
	// It is forced past net.core.rmem_max where CAP_NET_ADMIN allows.
	ReceiveBuffer int
	// Resynced, when not nil, is called each time the subscription failed
	// (the kernel outran the reader: ENOBUFS) and the table was dumped
	// again.
	Resynced func()
	// Changed, when not nil, is called with every IPv4 and IPv6 neighbor
	// event, after the mirror took it (deleted: RTM_DELNEIGH), on the
	// watcher's goroutine: it must not block.
	Changed func(e Entry, deleted bool)
}
