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

	// The callbacks the poller runs, made once, and what they return: a
	// closure made per call would cost four allocations per frame read and
	// two per probe written, the latter before the sendto, after the
	// daemon idled (docs/PERFORMANCE.md, BenchmarkProcessRARPCold).
	rmu     sync.Mutex // one read at a time: data, ci, rerr
	readFn  func(uintptr) bool
	data    []byte
	ci      gopacket.CaptureInfo
	rerr    error
	wmu     sync.Mutex // one write at a time: wframe, werr
	wframe  []byte
	writeFn func(uintptr) bool
	werr    error
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
	r := &poller{h: h, f: f, rc: rc, timeout: timeout}
	r.readFn, r.writeFn = r.tryRead, r.tryWrite
	return r, nil
}

// read returns the next frame, capture.ErrTimeout when none arrived within
// the timeout, io.EOF once closed.
func (r *poller) read() ([]byte, gopacket.CaptureInfo, error) {
	r.rmu.Lock()
	defer r.rmu.Unlock()
	if r.timeout > 0 {
		if err := r.f.SetReadDeadline(time.Now().Add(r.timeout)); err != nil {
			return nil, gopacket.CaptureInfo{}, io.EOF
		}
	}
	r.data, r.ci, r.rerr = nil, gopacket.CaptureInfo{}, nil
	err := r.rc.Read(r.readFn)
	data, ci, rerr := r.data, r.ci, r.rerr
	r.data = nil
	switch {
	case errors.Is(err, os.ErrDeadlineExceeded):
		return nil, ci, capture.ErrTimeout
	case err != nil:
		return nil, ci, io.EOF
	}
	return data, ci, rerr
}

// tryRead takes one frame out of libpcap's ring into r.data, r.ci, or an
// error into r.rerr, and reports whether it is done: false when the ring
// is empty, and the poller is to wait for the socket.
func (r *poller) tryRead(uintptr) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed {
		r.rerr = io.EOF
		return true
	}
	switch C.pcap_next_ex(r.h.p, &r.hdr, &r.pkt) {
	case 1:
		n := int(r.hdr.caplen)
		r.data = C.GoBytes(unsafe.Pointer(r.pkt), C.int(n))
		ns := int64(r.hdr.ts.tv_usec)
		if !r.h.nsec {
			ns *= 1000
		}
		r.ci = gopacket.CaptureInfo{Timestamp: time.Unix(int64(r.hdr.ts.tv_sec), ns), CaptureLength: n, Length: int(r.hdr.len)}
		return true
	case 0: // nothing in the ring: wait for the socket
		return false
	default:
		r.rerr = r.h.err()
		return true
	}
}

// write sends frame out of the handle's interface: a write on the packet
// socket, which is all pcap_sendpacket does on Linux, without a cgo call;
// it waits in the poller while the socket's send buffer is full (the
// descriptor is non-blocking).
func (r *poller) write(frame []byte) error {
	r.wmu.Lock()
	defer r.wmu.Unlock()
	r.wframe, r.werr = frame, nil
	err := r.rc.Write(r.writeFn)
	werr := r.werr
	r.wframe = nil
	if err != nil {
		return fmt.Errorf("send: %w", err)
	}
	if werr != nil {
		return fmt.Errorf("send: %w", werr)
	}
	return nil
}

// tryWrite writes r.wframe, the error into r.werr, and reports whether it
// is done: false when the socket's buffer is full (the poller waits).
func (r *poller) tryWrite(fd uintptr) bool {
	_, r.werr = unix.Write(int(fd), r.wframe)
	return r.werr != unix.EAGAIN
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
