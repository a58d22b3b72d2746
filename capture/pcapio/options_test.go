package pcapio

import (
	"testing"

	"github.com/rarp-replay/rarp-replay/internal/link"
)

// TestOptionsFor: a tap port (kind tuntap, or tun as ip -d link says) gets the tap ring, never more
// than the ports' ring; every other port, a bond, a veth or a physical
// NIC with thousands of VMs behind it, keeps the ports' ring; zero
// TapBufferSize leaves taps alone.
func TestOptionsFor(t *testing.T) {
	tests := []struct {
		kind      string
		o         Options
		wantBytes int
	}{
		{"tuntap", DefaultOptions, 256 << 10},
		{"tun", DefaultOptions, 256 << 10},
		{"veth", DefaultOptions, 2 << 20},
		{"bond", DefaultOptions, 2 << 20},
		{"", DefaultOptions, 2 << 20},
		{"tun", Options{BufferSize: 128 << 10, TapBufferSize: 256 << 10}, 128 << 10},
		{"tun", Options{BufferSize: 4 << 20}, 4 << 20},
	}
	for _, tt := range tests {
		got := tt.o.For(link.Link{Name: "p0", Kind: tt.kind})
		if got.BufferSize != tt.wantBytes || got.SnapLen != tt.o.SnapLen {
			t.Errorf("kind %q, %+v: ring %d bytes, snaplen %d; want %d, %d", tt.kind, tt.o, got.BufferSize, got.SnapLen, tt.wantBytes, tt.o.SnapLen)
		}
	}
}
