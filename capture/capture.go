// Package capture manages the daemon's capture handles: one libpcap handle
// per access port (capture and send), opened and closed as ports come and
// go, plus one handle on the "any" device that catches a RARP arriving on a
// port whose own handle is not open yet. The libpcap code itself lives in
// capture/pcapio; this package builds and tests without cgo.
package capture

import (
	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"
	"github.com/rarp-replay/rarp-replay/internal/engine"
)

// Handle is one capture handle: a live libpcap handle, a capture file, or a
// test fake.
type Handle interface {
	// ReadPacketData returns the next frame. A handle opened with a read
	// timeout returns ErrTimeout when none arrived in time.
	ReadPacketData() ([]byte, gopacket.CaptureInfo, error)
	WritePacketData([]byte) error
	LinkType() layers.LinkType
	Close()
}

// Packet is one captured frame and where it came from: the engine's type.
type Packet = engine.Packet
