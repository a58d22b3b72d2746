//go:build linux && cgo

package pcapio

/*
#cgo LDFLAGS: -lpcap
#include <stdlib.h>
#include <pcap/pcap.h>
*/
import "C"

import (
	"errors"
	"fmt"
	"time"
	"unsafe"

	"github.com/gopacket/gopacket/layers"
	"golang.org/x/sys/unix"
)

// pcapT is a libpcap handle, driven through libpcap's C API directly
// rather than gopacket's pcap.Handle: gopacket's constructors look the
// device's index up with net.InterfaceByName, one RTM_GETLINK dump of
// every link on the machine per handle opened, which was 28% of the
// daemon's CPU with 200 ports created in a second (fabric benchmark,
// model (b); docs/PERFORMANCE.md), and its handle hides the packet socket
// this package needs. Decoding stays gopacket's (layers).
type pcapT struct {
	p    *C.pcap_t
	nsec bool // timestamps in nanoseconds
}

func cerr(errbuf *C.char) error { return errors.New(C.GoString(errbuf)) }

// activate creates and activates a handle on device: snapshot length,
// read timeout, immediate mode and ring size from o.
func activate(device string, o Options) (*pcapT, error) {
	var errbuf [C.PCAP_ERRBUF_SIZE]C.char
	cdev := C.CString(device)
	defer C.free(unsafe.Pointer(cdev))
	p := C.pcap_create(cdev, &errbuf[0])
	if p == nil {
		return nil, cerr(&errbuf[0])
	}
	h := &pcapT{p: p}
	set := func(what string, rc C.int) error {
		if rc != 0 {
			return fmt.Errorf("%s: %s", what, C.GoString(C.pcap_statustostr(rc)))
		}
		return nil
	}
	err := errors.Join(
		set("snapshot length", C.pcap_set_snaplen(p, C.int(o.SnapLen))),
		set("immediate mode", C.pcap_set_immediate_mode(p, 1)),
		set("buffer size", C.pcap_set_buffer_size(p, C.int(o.BufferSize))),
	)
	if err == nil && o.Timeout > 0 {
		err = set("timeout", C.pcap_set_timeout(p, C.int(o.Timeout/time.Millisecond)))
	}
	if err != nil {
		C.pcap_close(p)
		return nil, err
	}
	if rc := C.pcap_activate(p); rc < 0 {
		// The status says what kind of failure; pcap_geterr the details,
		// when libpcap left any.
		msg := C.GoString(C.pcap_statustostr(rc))
		if detail := C.GoString(C.pcap_geterr(p)); detail != "" {
			msg += ": " + detail
		}
		C.pcap_close(p)
		return nil, errors.New(msg)
	}
	h.nsec = C.pcap_get_tstamp_precision(p) == C.PCAP_TSTAMP_PRECISION_NANO
	return h, nil
}

func (h *pcapT) err() error { return errors.New(C.GoString(C.pcap_geterr(h.p))) }

// linkType returns the handle's link-layer header type.
func (h *pcapT) linkType() layers.LinkType { return layers.LinkType(C.pcap_datalink(h.p)) }

// setLinkType selects the link-layer header type (SLL2 on "any").
func (h *pcapT) setLinkType(lt layers.LinkType) error {
	if C.pcap_set_datalink(h.p, C.int(lt)) < 0 {
		return h.err()
	}
	return nil
}

// inboundOnly makes the handle capture inbound frames only: libpcap's
// direction, and the packet socket option PACKET_IGNORE_OUTGOING (Linux
// 4.20+), with which the kernel no longer queues outgoing frames on the
// socket at all (libpcap's direction drops them in user space, after the
// copy). An older kernel lacks the option: libpcap's check stays.
func (h *pcapT) inboundOnly() error {
	if C.pcap_setdirection(h.p, C.PCAP_D_IN) < 0 {
		return h.err()
	}
	err := unix.SetsockoptInt(h.fd(), unix.SOL_PACKET, unix.PACKET_IGNORE_OUTGOING, 1)
	if err != nil && !errors.Is(err, unix.ENOPROTOOPT) {
		return fmt.Errorf("PACKET_IGNORE_OUTGOING: %w", err)
	}
	return nil
}

// setFilter compiles expr (optimised) and installs it in the kernel.
func (h *pcapT) setFilter(expr string) error {
	cexpr := C.CString(expr)
	defer C.free(unsafe.Pointer(cexpr))
	var prog C.struct_bpf_program
	if C.pcap_compile(h.p, &prog, cexpr, 1, C.PCAP_NETMASK_UNKNOWN) < 0 {
		return h.err()
	}
	defer C.pcap_freecode(&prog)
	if C.pcap_setfilter(h.p, &prog) < 0 {
		return h.err()
	}
	return nil
}

// fd returns the handle's packet socket.
func (h *pcapT) fd() int { return int(C.pcap_get_selectable_fd(h.p)) }

// stats returns what the kernel counted for the socket: received, and
// dropped (ring full, or by the interface).
func (h *pcapT) stats() (received, dropped int, err error) {
	var st C.struct_pcap_stat
	if C.pcap_stats(h.p, &st) < 0 {
		return 0, 0, h.err()
	}
	return int(st.ps_recv), int(st.ps_drop) + int(st.ps_ifdrop), nil
}

func (h *pcapT) close() { C.pcap_close(h.p) }

// LibVersion returns the version of the libpcap the binary runs with, as
// pcap_lib_version(3) reports it ("libpcap version 1.10.3 (with
// TPACKET_V3)").
func LibVersion() string { return C.GoString(C.pcap_lib_version()) }
