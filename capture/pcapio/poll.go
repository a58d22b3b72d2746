//go:build linux && cgo

package pcapio

/*
#include <pcap/pcap.h>
*/
import "C"

import (
	"errors"
	"fmt"
	"io"
	"os"
	"sync"
	"syscall"
	"time"
	"unsafe"

	"github.com/gopacket/gopacket"
	"github.com/rarp-replay/rarp-replay/capture"
	"golang.org/x/sys/unix"
)

// poller reads a live handle's frames with the goroutine parked in Go's
// network poller while the port is idle, instead of inside a cgo poll(2)
// as gopacket's ReadPacketData does. A goroutine blocked in cgo holds an
// OS thread in a system call: the runtime's sysmon watches it, takes its P
// away after a while and hands it back on the way out, waking sysmon, and
// on 2 CPUs that bookkeeping competed with the probe path (profile in
// docs/PERFORMANCE.md). Here the handle's packet socket (libpcap's
// selectable descriptor, duplicated) is registered with the poller; a
// readable socket wakes the goroutine, which takes the frame out of
// libpcap's ring with one non-blocking pcap_next_ex call.
type poller struct {
	h       *pcapT
	f       *os.File // the duplicated descriptor, registered with the poller
	rc      syscall.RawConn
	timeout time.Duration

	mu     sync.Mutex // serialises pcap_next_ex with closing
	closed bool
	hdr    *C.struct_pcap_pkthdr
	pkt    *C.u_char
}

// newPoller puts h in non-blocking mode and registers its packet socket
// with Go's poller. The descriptor becomes non-blocking; write waits in the
// poller for room.
func newPoller(h *pcapT, timeout time.Duration) (*poller, error) {
	var errbuf [C.PCAP_ERRBUF_SIZE]C.char
	if C.pcap_setnonblock(h.p, 1, &errbuf[0]) < 0 {
		return nil, fmt.Errorf("pcap_setnonblock: %s", C.GoString(&errbuf[0]))
	}
	fd := h.fd()
	if fd < 0 {
		return nil, errors.New("pcap_get_selectable_fd: no descriptor")
	}
	dup, err := unix.FcntlInt(uintptr(fd), unix.F_DUPFD_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("dup: %w", err)
	}
	if err := unix.SetNonblock(dup, true); err != nil {
		unix.Close(dup)
		return nil, fmt.Errorf("non-blocking: %w", err)
	}
	f, rc, err := pollable(dup, "pcap")
	if err != nil {
		return nil, err
	}
	// A descriptor the poller refused (it would block a thread instead)
	// has no deadlines.
	if err := f.SetReadDeadline(time.Time{}); err != nil {
		f.Close()
		return nil, fmt.Errorf("packet socket not pollable: %w", err)
	}
	return &poller{h: h, f: f, rc: rc, timeout: timeout}, nil
}

// read returns the next frame, capture.ErrTimeout when none arrived within
// the timeout, io.EOF once closed.
func (r *poller) read() ([]byte, gopacket.CaptureInfo, error) {
	var ci gopacket.CaptureInfo
	if r.timeout > 0 {
		if err := r.f.SetReadDeadline(time.Now().Add(r.timeout)); err != nil {
			return nil, ci, io.EOF
		}
	}
	var data []byte
	var rerr error
	err := r.rc.Read(func(uintptr) bool {
		r.mu.Lock()
		defer r.mu.Unlock()
		if r.closed {
			rerr = io.EOF
			return true
		}
		switch C.pcap_next_ex(r.h.p, &r.hdr, &r.pkt) {
		case 1:
			n := int(r.hdr.caplen)
			data = C.GoBytes(unsafe.Pointer(r.pkt), C.int(n))
			ns := int64(r.hdr.ts.tv_usec)
			if !r.h.nsec {
				ns *= 1000
			}
			ci = gopacket.CaptureInfo{Timestamp: time.Unix(int64(r.hdr.ts.tv_sec), ns), CaptureLength: n, Length: int(r.hdr.len)}
			return true
		case 0: // nothing in the ring: wait for the socket
			return false
		default:
			rerr = r.h.err()
			return true
		}
	})
	switch {
	case errors.Is(err, os.ErrDeadlineExceeded):
		return nil, ci, capture.ErrTimeout
	case err != nil:
		return nil, ci, io.EOF
	}
	return data, ci, rerr
}

// write sends frame out of the handle's interface: a write on the packet
// socket, which is all pcap_sendpacket does on Linux, without a cgo call;
// it waits in the poller while the socket's send buffer is full (the
// descriptor is non-blocking).
func (r *poller) write(frame []byte) error {
	var werr error
	err := r.rc.Write(func(fd uintptr) bool {
		_, werr = unix.Write(int(fd), frame)
		return !errors.Is(werr, unix.EAGAIN)
	})
	if err != nil {
		return fmt.Errorf("send: %w", err)
	}
	if werr != nil {
		return fmt.Errorf("send: %w", werr)
	}
	return nil
}

// stats reads the kernel's counters, serialised with reads.
func (r *poller) stats() (received, dropped int, err error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed {
		return 0, 0, io.EOF
	}
	return r.h.stats()
}

// close wakes a reader parked in the poller and keeps pcap_next_ex from
// running again; the pcap handle itself is closed after it.
func (r *poller) close() (first bool) {
	r.f.Close()
	r.mu.Lock()
	defer r.mu.Unlock()
	first = !r.closed
	r.closed = true
	return first
}

// pollable registers the non-blocking descriptor fd with Go's poller: the
// file that owns it (closing it closes fd) and its raw connection.
func pollable(fd int, name string) (*os.File, syscall.RawConn, error) {
	f := os.NewFile(uintptr(fd), name)
	rc, err := f.SyscallConn()
	if err != nil {
		f.Close()
		return nil, nil, err
	}
	return f, rc, nil
}
