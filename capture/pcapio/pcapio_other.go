//go:build !(linux && cgo)

package pcapio

import (
	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"
	"github.com/rarp-replay/rarp-replay/capture"
	"github.com/rarp-replay/rarp-replay/internal/link"
)

// LibVersion says there is no libpcap here.
func LibVersion() string { return "unavailable (built without libpcap)" }

// Live stands for a live handle where there is none.
type Live struct{}

// ReadPacketData fails: there is no live capture here.
func (Live) ReadPacketData() ([]byte, gopacket.CaptureInfo, error) {
	return nil, gopacket.CaptureInfo{}, ErrNotImplemented
}

// WritePacketData fails: there is no live capture here.
func (Live) WritePacketData([]byte) error { return ErrNotImplemented }

// LinkType is Ethernet.
func (Live) LinkType() layers.LinkType { return layers.LinkTypeEthernet }

// Close does nothing.
func (Live) Close() {}

// Open fails: there is no live capture here.
func Open(string, string, Options) (Live, error) { return Live{}, ErrNotImplemented }

// OpenSender fails: there is no live capture here.
func OpenSender(string) (Live, error) { return Live{}, ErrNotImplemented }

// Opener opens nothing here.
type Opener struct{ Options Options }

// Open fails.
func (Opener) Open(link.Link) (capture.Handle, error) { return nil, ErrNotImplemented }

// OpenAny fails.
func (Opener) OpenAny() (capture.Handle, error) { return nil, ErrNotImplemented }

// Direct sends nothing here.
type Direct struct{}

// OpenDirect fails: there is no packet socket here.
func OpenDirect() (*Direct, error) { return nil, ErrNotImplemented }

// SendOn fails: there is no packet socket here.
func (*Direct) SendOn(int, []byte) error { return ErrNotImplemented }

// Close does nothing.
func (*Direct) Close() error { return nil }
