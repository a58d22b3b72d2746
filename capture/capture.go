// Package capture manages the daemon's capture handles: one libpcap handle
// per access port (capture and send), opened and closed as ports come and
// go, plus one handle on the "any" device that catches a RARP arriving on a
// port whose own handle is not open yet. The libpcap code itself lives in
// capture/pcapio; this package builds and tests without cgo.
package capture

import (
	"time"

	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"
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

// Packet is one captured frame and where it came from.
type Packet struct {
	Data     []byte
	LinkType layers.LinkType
	IfIndex  int       // the interface the frame entered
	Time     time.Time // capture timestamp
}
