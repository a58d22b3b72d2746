// Package pcapio opens libpcap capture handles for the daemon and for
// send-rarp. It is the only package that needs cgo; built without cgo or
// off Linux it has stubs that return ErrNotImplemented, so the rest of
// rarp-replay (replay above all) builds anywhere.
package pcapio

import (
	"errors"
	"time"

	"github.com/rarp-replay/rarp-replay/internal/link"
)

// ErrNotImplemented is what Open returns without cgo or off Linux.
var ErrNotImplemented = errors.New("live capture needs Linux and libpcap (built with cgo)")

// Options tune a live handle.
type Options struct {
	SnapLen int // bytes kept of each frame
	// Timeout bounds a read: ReadPacketData returns capture.ErrTimeout
	// when no frame arrived within it. Zero: no bound; a read waits until
	// a frame arrives or the handle is closed (Close ends it with io.EOF).
	Timeout    time.Duration
	BufferSize int // kernel ring size in bytes
	// TapBufferSize, when not zero, is the ring of a tap port (link kind
	// "tuntap" as netlink names it, "tun" in `ip -d link`): one VM's vNIC, a handful of frames per migration, where
	// BufferSize's 2 MiB would cost 2 MiB of memory per VM (455 MB with
	// 200 ports, docs/PERFORMANCE.md). Never more than BufferSize.
	TapBufferSize int
}

// For returns the options of a handle on the port l.
func (o Options) For(l link.Link) Options {
	if (l.Kind == "tuntap" || l.Kind == "tun") && o.TapBufferSize > 0 {
		o.BufferSize = min(o.BufferSize, o.TapBufferSize)
	}
	return o
}

// DefaultOptions keep whole ARP and NDP frames, give each port a 2 MiB ring
// (2,000 VMs x 5 RARPs in 0.8 s on one port: no kernel drops; 1 MiB
// dropped some) and each tap 256 KiB (some 700 frames of one VM), and read without a timeout: an idle port's reader stays
// parked in Go's poller (a 100 ms timeout woke every port's reader ten
// times a second, and each wake-up kept the runtime's sysmon busy for a
// millisecond). Immediate mode is always on: without it libpcap may hold a
// frame in its ring.
var DefaultOptions = Options{SnapLen: 256, BufferSize: 2 << 20, TapBufferSize: 256 << 10}
