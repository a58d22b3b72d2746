//go:build linux && cgo

package pcapio

import (
	"errors"
	"fmt"

	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"
	"github.com/rarp-replay/rarp-replay/capture"
	"github.com/rarp-replay/rarp-replay/internal/link"
)

// Live is a live libpcap handle.
type Live struct {
	r       *poller       // and its libpcap handle, r.h
	answers *answerSwitch // the any-device handle's filters; nil on a port
}

// ReadPacketData returns the next frame, or capture.ErrTimeout when the read
// timeout expired first, or io.EOF once the handle is closed.
func (h Live) ReadPacketData() ([]byte, gopacket.CaptureInfo, error) {
	return h.r.read()
}

// WritePacketData sends frame out of the handle's interface, waiting while
// the socket's send buffer is full.
func (h Live) WritePacketData(frame []byte) error {
	return h.r.write(frame)
}

// LinkType returns the link-layer header type of the frames read.
func (h Live) LinkType() layers.LinkType { return h.r.h.linkType() }

// Close stops reads and closes the handle. Closing it again does nothing
// (libpcap would free the handle twice).
func (h Live) Close() {
	if h.answers != nil {
		h.answers.close() // before its descriptor can be reused
	}
	if h.r.close() {
		h.r.h.close()
	}
}

// Stats returns the packets the kernel received for the handle and those
// it dropped (ring full, or dropped by the interface).
func (h Live) Stats() (received, dropped int, err error) {
	return h.r.stats()
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
	return open(ifname, o, func(h *pcapT) error {
		if filter == "" {
			return nil
		}
		if err := h.setFilter(filter); err != nil {
			return fmt.Errorf("filter %q: %w", filter, err)
		}
		return nil
	})
}

// open opens ifname as Open does, with install setting its filter.
func open(ifname string, o Options, install func(*pcapT) error) (Live, error) {
	h, err := activate(ifname, o)
	if err != nil {
		return Live{}, fmt.Errorf("capture %s: %w", ifname, err)
	}
	fail := func(what string, err error) (Live, error) {
		h.close()
		return Live{}, fmt.Errorf("capture %s: %s%w", ifname, what, err)
	}
	if ifname == "any" {
		// SLL2 headers carry the interface index the frame entered.
		if err := h.setLinkType(layers.LinkTypeLinuxSLL2); err != nil {
			return fail("SLL2: ", err)
		}
	}
	if err := h.inboundOnly(); err != nil {
		return fail("inbound only: ", err)
	}
	if err := install(h); err != nil {
		return fail("", err)
	}
	r, err := newPoller(h, o.Timeout)
	if err != nil {
		return fail("", err)
	}
	return Live{r: r}, nil
}

// OpenAny opens the any device as Open does, filtered with
// capture.AnyRARPFilter until CaptureAnswers widens it to capture.AnyFilter.
// Where the kernel cannot hold both programs, the handle captures with
// AnyFilter throughout, and CaptureAnswers says why it cannot switch.
func OpenAny(o Options) (Live, error) {
	var sw *answerSwitch
	l, err := open("any", o, func(h *pcapT) (err error) {
		sw, err = newAnswerSwitch(h, capture.AnyRARPFilter, capture.AnyFilter)
		return err
	})
	if err != nil {
		return Live{}, err
	}
	l.answers = sw
	return l, nil
}

// CaptureAnswers makes an any-device handle capture ARP replies and NAs
// too (on), or RARPs only: capture.AnswerSwitch.
func (h Live) CaptureAnswers(on bool) error {
	if h.answers == nil {
		return errors.New("not the any-device handle")
	}
	return h.answers.set(on)
}

// Opener opens the daemon's handles.
type Opener struct{ Options Options }

// Open opens a port handle (a smaller ring on a tap: Options.For).
func (o Opener) Open(l link.Link) (capture.Handle, error) {
	return Open(l.Name, capture.PortFilter, o.Options.For(l))
}

// OpenAny opens the any-device handle.
func (o Opener) OpenAny() (capture.Handle, error) {
	return OpenAny(o.Options)
}

// OpenSender opens ifname for sending only (a filter that matches nothing).
func OpenSender(ifname string) (Live, error) {
	return Open(ifname, "less 1", DefaultOptions)
}
