//go:build linux && cgo

package pcapio

import (
	"errors"
	"fmt"
	"sync"
	"unsafe"

	"github.com/rarp-replay/rarp-replay/capture"
	"golang.org/x/sys/unix"
)

// answerSwitch swaps the any-device handle's kernel filter between RARPs
// only and RARPs and answers, with one setsockopt: the kernel replaces a
// socket's filter atomically, so no frame either filter passes is lost in
// the swap. pcap_setfilter would not do: it puts a filter that rejects
// everything on the socket first, and drains the socket, so a RARP
// arriving in between would be lost.
//
// Both programs are libpcap's own, read back from the kernel after
// pcap_setfilter installed each (SO_GET_FILTER): on the any device libpcap
// rewrites the compiled program for the kernel, whose frames carry no
// cooked header, and only the kernel's copy is what the socket runs.
type answerSwitch struct {
	fd int

	mu           sync.Mutex
	rarps, wider []unix.SockFilter
	err          error // why the filter cannot be switched (wide throughout)
	closed       bool
}

// newAnswerSwitch compiles and installs narrow then wide through libpcap,
// keeping each as the kernel holds it, then attaches narrow itself. The
// order matters: after pcap_setfilter libpcap runs the frames of the ring
// blocks in use then through its own copy of that program, in user space,
// and with narrow there the answers of those blocks would be lost after a
// switch to wide. With wide there, nothing narrow passes is lost. When the
// kernel holds no program (libpcap filters in user space), wide stays
// installed: the handle captures answers throughout, and set(false)
// reports why.
func newAnswerSwitch(h *pcapT, narrow, wide string) (*answerSwitch, error) {
	s := &answerSwitch{fd: h.fd()}
	var err error
	if err = h.setFilter(narrow); err == nil {
		s.rarps, err = kernelFilter(s.fd)
	}
	if werr := h.setFilter(wide); werr != nil {
		return nil, fmt.Errorf("filter %q: %w", wide, werr)
	}
	if err == nil {
		s.wider, err = kernelFilter(s.fd)
	}
	if err == nil {
		err = s.set(false)
	}
	if err != nil {
		s.rarps, s.wider, s.err = nil, nil, fmt.Errorf("any device: RARPs and answers captured throughout: %w", err)
	}
	return s, nil
}

// kernelFilter reads the classic BPF program the kernel runs for the
// socket fd.
func kernelFilter(fd int) ([]unix.SockFilter, error) {
	var n uint32 // in instructions, for SO_GET_FILTER
	if err := getsockopt(fd, unix.SO_GET_FILTER, nil, &n); err != nil {
		return nil, fmt.Errorf("SO_GET_FILTER: %w", err)
	}
	if n == 0 {
		return nil, errors.New("SO_GET_FILTER: the kernel holds no filter (libpcap filters in user space)")
	}
	prog := make([]unix.SockFilter, n)
	if err := getsockopt(fd, unix.SO_GET_FILTER, unsafe.Pointer(&prog[0]), &n); err != nil {
		return nil, fmt.Errorf("SO_GET_FILTER: %w", err)
	}
	return prog[:n], nil
}

func getsockopt(fd, opt int, val unsafe.Pointer, n *uint32) error {
	_, _, e := unix.Syscall6(unix.SYS_GETSOCKOPT, uintptr(fd), unix.SOL_SOCKET, uintptr(opt),
		uintptr(val), uintptr(unsafe.Pointer(n)), 0)
	if e != 0 {
		return e
	}
	return nil
}

// set installs the wide program (on) or the narrow one.
func (s *answerSwitch) set(on bool) error {
	if s.err != nil {
		if on {
			return nil // captured throughout
		}
		return s.err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return errors.New("any device: handle closed")
	}
	prog := s.rarps
	if on {
		prog = s.wider
	}
	fprog := unix.SockFprog{Len: uint16(len(prog)), Filter: &prog[0]}
	if err := unix.SetsockoptSockFprog(s.fd, unix.SOL_SOCKET, unix.SO_ATTACH_FILTER, &fprog); err != nil {
		return fmt.Errorf("SO_ATTACH_FILTER: %w", err)
	}
	return nil
}

// close makes set fail from now on: the handle's descriptor is about to be
// closed, and its number may be reused by another socket.
func (s *answerSwitch) close() {
	s.mu.Lock()
	s.closed = true
	s.mu.Unlock()
}

var _ capture.AnswerSwitch = Live{}
