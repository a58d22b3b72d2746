package neigh

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"syscall"

	"github.com/rarp-replay/rarp-replay/internal/engine"
	"golang.org/x/sys/unix"
)

// MaxBatch bounds the bindings ProgramBatch sends in one system call: the
// kernel queues one acknowledgement per request on the socket before the
// call returns, and 128 of them (error ones carry the request back) stay far
// below the default 208 KiB receive buffer.
const MaxBatch = 128

// routeConn is a NETLINK_ROUTE socket kept open for programming, opened on
// first use in the network namespace of the calling thread.
type routeConn struct {
	mu  sync.Mutex
	fd  int // -1: not open
	seq uint32
	out []byte
	in  []byte
}

// NewKernel returns a Kernel whose ProgramBatch writes through one netlink
// socket kept open (opened on first use, in the daemon's network
// namespace), every binding of a batch in one system call.
func NewKernel(log *slog.Logger) Kernel {
	return Kernel{Log: log, conn: &routeConn{fd: -1, in: make([]byte, 64<<10)}}
}

// ProgramBatch programs each binding in bs as Program does and returns one
// error per binding (nil: programmed). The requests go to the kernel in one
// sendmsg on a socket kept open, and are acknowledged one by one: a refused
// binding does not stop the others. At debug level, or on a Kernel not
// made by NewKernel, it calls Program for each (its log lines read the
// entries before and after).
func (k Kernel) ProgramBatch(bs []Replace) []error {
	debug := k.Log != nil && k.Log.Enabled(context.Background(), slog.LevelDebug)
	if k.conn == nil || debug {
		return engine.ProgramEach(k, bs)
	}
	errs := make([]error, 0, len(bs))
	for len(bs) > 0 {
		n := min(len(bs), MaxBatch)
		errs = append(errs, k.conn.replace(bs[:n])...)
		bs = bs[n:]
	}
	return errs
}

// Close closes the socket ProgramBatch keeps open.
func (k Kernel) Close() {
	if k.conn == nil {
		return
	}
	k.conn.mu.Lock()
	defer k.conn.mu.Unlock()
	k.conn.closeLocked()
}

func (c *routeConn) closeLocked() {
	if c.fd >= 0 {
		unix.Close(c.fd)
		c.fd = -1
	}
}

func (c *routeConn) open() error {
	fd, err := unix.Socket(unix.AF_NETLINK, unix.SOCK_RAW|unix.SOCK_CLOEXEC, unix.NETLINK_ROUTE)
	if err != nil {
		return fmt.Errorf("netlink socket: %w", err)
	}
	// Every acknowledgement is queued before sendmsg returns; the timeout
	// only guards against waiting for one that can never come.
	tv := unix.Timeval{Sec: 2}
	if err := unix.SetsockoptTimeval(fd, unix.SOL_SOCKET, unix.SO_RCVTIMEO, &tv); err != nil {
		unix.Close(fd)
		return fmt.Errorf("netlink socket: receive timeout: %w", err)
	}
	if err := unix.Bind(fd, &unix.SockaddrNetlink{Family: unix.AF_NETLINK}); err != nil {
		unix.Close(fd)
		return fmt.Errorf("netlink socket: bind: %w", err)
	}
	c.fd = fd
	return nil
}

// replace sends one RTM_NEWNEIGH per binding in one sendmsg and collects
// the kernel's acknowledgements.
func (c *routeConn) replace(bs []Replace) []error {
	c.mu.Lock()
	defer c.mu.Unlock()
	errs := make([]error, len(bs))
	fail := func(err error) []error {
		for i := range errs {
			if errs[i] == nil {
				errs[i] = err
			}
		}
		return errs
	}
	if c.fd < 0 {
		if err := c.open(); err != nil {
			return fail(err)
		}
	}
	c.out = c.out[:0]
	first := c.seq + 1
	waiting := 0
	for i, b := range bs {
		c.seq++
		if err := checkReplace(b.IP, b.MAC); err != nil {
			errs[i] = err
			continue
		}
		c.out = appendReplace(c.out, c.seq, b)
		waiting++
	}
	if waiting == 0 {
		return errs
	}
	if err := unix.Sendto(c.fd, c.out, 0, &unix.SockaddrNetlink{Family: unix.AF_NETLINK}); err != nil {
		c.closeLocked()
		return fail(fmt.Errorf("replace neighbors: send: %w", err))
	}
	done := make([]bool, len(bs))
	for waiting > 0 {
		n, _, err := unix.Recvfrom(c.fd, c.in, 0)
		if errors.Is(err, unix.EINTR) {
			continue
		}
		if err != nil {
			// ENOBUFS (acknowledgements lost) or the timeout: the state of
			// the rest is unknown; a fresh socket for the next batch.
			c.closeLocked()
			return fail(fmt.Errorf("replace neighbors: acknowledgement: %w", err))
		}
		msgs, err := syscall.ParseNetlinkMessage(c.in[:n])
		if err != nil {
			c.closeLocked()
			return fail(fmt.Errorf("replace neighbors: acknowledgement: %w", err))
		}
		for _, m := range msgs {
			i := int(m.Header.Seq - first)
			if m.Header.Type != unix.NLMSG_ERROR || i < 0 || i >= len(bs) || done[i] || len(m.Data) < 4 {
				continue
			}
			done[i] = true
			waiting--
			if errno := -int32(binary.NativeEndian.Uint32(m.Data[:4])); errno != 0 {
				errs[i] = fmt.Errorf("replace neighbor %s lladdr %s ifindex %d: %w", bs[i].IP, bs[i].MAC, bs[i].IfIndex, syscall.Errno(errno))
			}
		}
	}
	return errs
}
