//go:build !(linux && cgo)

package pcapio

import (
	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"
	"github.com/rarp-replay/rarp-replay/capture"
)

// Handle stands for a live handle where there is none.
type Handle struct{}

// ReadPacketData fails: there is no live capture here.
func (Handle) ReadPacketData() ([]byte, gopacket.CaptureInfo, error) {
	return nil, gopacket.CaptureInfo{}, ErrNotImplemented
}

// WritePacketData fails: there is no live capture here.
func (Handle) WritePacketData([]byte) error { return ErrNotImplemented }

// LinkType is Ethernet.
func (Handle) LinkType() layers.LinkType { return layers.LinkTypeEthernet }

// Close does nothing.
func (Handle) Close() {}

// Open fails: there is no live capture here.
func Open(string, string, Options) (Handle, error) { return Handle{}, ErrNotImplemented }

// OpenSender fails: there is no live capture here.
func OpenSender(string) (Handle, error) { return Handle{}, ErrNotImplemented }

// Opener opens nothing here.
type Opener struct{ Options Options }

// Open fails.
func (Opener) Open(string) (capture.Handle, error) { return nil, ErrNotImplemented }

// OpenAny fails.
func (Opener) OpenAny() (capture.Handle, error) { return nil, ErrNotImplemented }
