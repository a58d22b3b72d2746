//go:build linux && cgo

package pcapio

import (
	"fmt"

	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"
	"github.com/gopacket/gopacket/pcap"
	"github.com/rarp-replay/rarp-replay/capture"
)

// LibVersion returns the version of the libpcap the binary runs with, as
// pcap_lib_version(3) reports it ("libpcap version 1.10.3 (with
// TPACKET_V3)").
func LibVersion() string { return pcap.Version() }

// Live is a live libpcap handle.
type Live struct {
	*pcap.Handle
	r *poller
}

// ReadPacketData returns the next frame, or capture.ErrTimeout when the read
// timeout expired first, or io.EOF once the handle is closed.
func (h Live) ReadPacketData() ([]byte, gopacket.CaptureInfo, error) {
	return h.r.read()
}

// WritePacketData sends frame out of the handle's interface
// (pcap_sendpacket), waiting while the socket's send buffer is full.
func (h Live) WritePacketData(frame []byte) error {
	return h.r.write(h.Handle, frame)
}

// Close stops reads and closes the handle.
func (h Live) Close() {
	h.r.close()
	h.Handle.Close()
}

// Stats returns the packets the kernel received for the handle and those
// it dropped (ring full, or dropped by the interface).
func (h Live) Stats() (received, dropped int, err error) {
	st, err := h.Handle.Stats()
	if err != nil {
		return 0, 0, err
	}
	return st.PacketsReceived, st.PacketsDropped + st.PacketsIfDropped, nil
}

// Open opens ifname for inbound capture with the BPF filter (none when
// empty). The direction is enforced in the kernel with the packet socket
// option PACKET_IGNORE_OUTGOING (Linux 4.20+), so the copies of a
// broadcast flood the bridge sends out of every other port never reach
// those ports' capture rings; pcap_setdirection alone drops them in user
// space, after the copy. (A filter "inbound and (...)" would do it too, but
// libpcap runs the first ring block after a filter change through its
// user-space interpreter, which cannot evaluate "inbound": the first frames
// a new handle sees, a new port's RARP among them, would be lost.)
// Equivalent to `tcpdump -i IFNAME -Q in --immediate-mode FILTER`.
func Open(ifname, filter string, o Options) (Live, error) {
	in, err := pcap.NewInactiveHandle(ifname)
	if err != nil {
		return Live{}, fmt.Errorf("capture %s: %w", ifname, err)
	}
	defer in.CleanUp()
	for _, set := range []func() error{
		func() error { return in.SetSnapLen(o.SnapLen) },
		func() error {
			if o.Timeout <= 0 {
				return nil // reads are bounded by the poller, if at all
			}
			return in.SetTimeout(o.Timeout)
		},
		func() error { return in.SetImmediateMode(true) },
		func() error { return in.SetBufferSize(o.BufferSize) },
	} {
		if err := set(); err != nil {
			return Live{}, fmt.Errorf("capture %s: %w", ifname, err)
		}
	}
	h, err := in.Activate()
	if err != nil {
		return Live{}, fmt.Errorf("capture %s: %w", ifname, err)
	}
	if ifname == "any" {
		// SLL2 headers carry the interface index the frame entered.
		if err := h.SetLinkType(layers.LinkTypeLinuxSLL2); err != nil {
			h.Close()
			return Live{}, fmt.Errorf("capture any: SLL2: %w", err)
		}
	}
	if err := h.SetDirection(pcap.DirectionIn); err != nil {
		h.Close()
		return Live{}, fmt.Errorf("capture %s: inbound only: %w", ifname, err)
	}
	if err := ignoreOutgoing(h); err != nil {
		h.Close()
		return Live{}, fmt.Errorf("capture %s: inbound only in the kernel: %w", ifname, err)
	}
	if filter != "" {
		if err := h.SetBPFFilter(filter); err != nil {
			h.Close()
			return Live{}, fmt.Errorf("capture %s: filter %q: %w", ifname, filter, err)
		}
	}
	r, err := newPoller(h, o.Timeout)
	if err != nil {
		h.Close()
		return Live{}, fmt.Errorf("capture %s: %w", ifname, err)
	}
	return Live{Handle: h, r: r}, nil
}

// Opener opens the daemon's handles.
type Opener struct{ Options Options }

// Open opens a port handle.
func (o Opener) Open(ifname string) (capture.Handle, error) {
	return Open(ifname, capture.PortFilter, o.Options)
}

// OpenAny opens the any-device handle.
func (o Opener) OpenAny() (capture.Handle, error) {
	return Open("any", capture.AnyFilter, o.Options)
}

// OpenSender opens ifname for sending only (a filter that matches nothing).
func OpenSender(ifname string) (Live, error) {
	h, err := Open(ifname, "", DefaultOptions)
	if err != nil {
		return h, err
	}
	if err := h.SetBPFFilter("less 1"); err != nil {
		h.Close()
		return Live{}, fmt.Errorf("capture %s: %w", ifname, err)
	}
	return h, nil
}
