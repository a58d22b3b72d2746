//go:build linux && cgo

package pcapio

import (
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"syscall"

	"golang.org/x/sys/unix"
)

// Direct writes frames out of any interface, named by index, through one
// packet socket that captures nothing (protocol 0: the kernel delivers it
// no frame, and it has no ring). It serves a port whose capture handle is
// still being opened: opening a libpcap handle waits for RCU grace periods
// in the kernel (binding the socket, setting up its ring; 6-18 ms each,
// docs/PERFORMANCE.md), and a new port's probes need not wait for them.
// Safe for concurrent use.
type Direct struct {
	f  *os.File
	rc syscall.RawConn
}

// OpenDirect opens the socket (CAP_NET_RAW).
func OpenDirect() (*Direct, error) {
	fd, err := unix.Socket(unix.AF_PACKET, unix.SOCK_RAW|unix.SOCK_CLOEXEC|unix.SOCK_NONBLOCK, 0)
	if err != nil {
		return nil, fmt.Errorf("packet socket: %w", err)
	}
	f, rc, err := pollable(fd, "packet")
	if err != nil {
		return nil, err
	}
	return &Direct{f: f, rc: rc}, nil
}

// SendOn writes the Ethernet frame out of the interface ifindex, waiting in
// Go's poller while the socket's send buffer is full.
func (d *Direct) SendOn(ifindex int, frame []byte) error {
	if len(frame) < 14 {
		return fmt.Errorf("send on ifindex %d: %d-byte frame", ifindex, len(frame))
	}
	sa := &unix.SockaddrLinklayer{
		Ifindex: ifindex,
		// The frame's own EtherType (the outer one when tagged), kept in
		// network byte order as the socket address holds it.
		Protocol: binary.NativeEndian.Uint16(frame[12:14]),
		Halen:    6,
	}
	copy(sa.Addr[:], frame[:6])
	var werr error
	err := d.rc.Write(func(fd uintptr) bool {
		werr = unix.Sendto(int(fd), frame, 0, sa)
		return !errors.Is(werr, unix.EAGAIN)
	})
	if err == nil {
		err = werr
	}
	if err != nil {
		return fmt.Errorf("send on ifindex %d: %w", ifindex, err)
	}
	return nil
}

// Close closes the socket.
func (d *Direct) Close() error { return d.f.Close() }
