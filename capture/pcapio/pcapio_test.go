//go:build linux && cgo

package pcapio

import (
	"errors"
	"io"
	"net"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/gopacket/gopacket/layers"
	"github.com/rarp-replay/rarp-replay/capture"
	"github.com/rarp-replay/rarp-replay/internal/nstest"
	"github.com/rarp-replay/rarp-replay/internal/packet"
)

// TestLive opens real handles on a veth pair in a namespace of its own:
// a port handle takes the RARP and the ARP reply sent to it, not the
// other frames, and not what it sends itself (inbound only, in the
// kernel); the kernel counts what it received; an unknown device fails
// with its name and libpcap's reason; the any device gives SLL2 headers
// with the interface index; Close ends a read waiting in the poller.
func TestLive(t *testing.T) {
	nstest.RequireRoot(t)
	ns := nstest.Namespace(t, "pcapio")
	nstest.Run(t, "ip", "-n", ns, "link", "add", "a0", "type", "veth", "peer", "name", "b0")
	nstest.Run(t, "ip", "-n", ns, "link", "set", "a0", "up")
	nstest.Run(t, "ip", "-n", ns, "link", "set", "b0", "up")
	vm := net.HardwareAddr{2, 0x52, 0x53, 0, 0, 1}
	gw := net.HardwareAddr{2, 0x52, 0x53, 0, 0, 0xfe}
	rarp, err := packet.BuildRARP(vm, nil)
	if err != nil {
		t.Fatal(err)
	}
	reply, err := packet.BuildReply(packet.Reply{MAC: vm, IP: netip.MustParseAddr("192.0.2.10"), DstMAC: gw, DstIP: netip.MustParseAddr("192.0.2.1")})
	if err != nil {
		t.Fatal(err)
	}
	request, err := packet.Build(packet.Probe{SrcMAC: gw, SrcIP: netip.MustParseAddr("192.0.2.1"), DstMAC: vm, Target: netip.MustParseAddr("192.0.2.10")})
	if err != nil {
		t.Fatal(err)
	}
	var port, any, peer Live
	nstest.InNamespace(t, ns, func() {
		if _, err := Open("rr-nosuch0", capture.PortFilter, DefaultOptions); err == nil || !strings.Contains(err.Error(), "rr-nosuch0") {
			t.Errorf("Open on a missing device: %v, want an error naming it", err)
		}
		if port, err = Open("a0", capture.PortFilter, DefaultOptions); err != nil {
			t.Fatal(err)
		}
		if any, err = Open("any", capture.AnyFilter, DefaultOptions); err != nil {
			t.Fatal(err)
		}
		if peer, err = OpenSender("b0"); err != nil {
			t.Fatal(err)
		}
	})
	defer peer.Close()
	defer any.Close()
	if port.LinkType() != layers.LinkTypeEthernet || any.LinkType() != layers.LinkTypeLinuxSLL2 {
		t.Errorf("link types: port %v, any %v; want Ethernet, Linux SLL2", port.LinkType(), any.LinkType())
	}
	// Out of a0: a frame its filter passes, which a0's own handle must
	// not see (outgoing). Into a0: an ARP request (not for a port
	// handle), the RARP and the reply.
	if err := port.WritePacketData(reply); err != nil {
		t.Fatal(err)
	}
	for _, f := range [][]byte{request, rarp, reply} {
		if err := peer.WritePacketData(f); err != nil {
			t.Fatal(err)
		}
	}
	for i, want := range [][]byte{rarp, reply} {
		got, ci, err := port.ReadPacketData()
		if err != nil {
			t.Fatalf("read %d: %v", i, err)
		}
		if string(got) != string(want) || ci.CaptureLength != len(want) || ci.Timestamp.IsZero() {
			t.Errorf("read %d: % x (%d bytes at %v), want % x", i, got, ci.CaptureLength, ci.Timestamp, want)
		}
	}
	got, _, err := any.ReadPacketData()
	if err != nil {
		t.Fatal(err)
	}
	if idx, ok := packet.SLL2IfIndex(got); !ok || idx != ifindex(t, ns, "a0") {
		t.Errorf("any device: RARP from ifindex %d (ok %v), want a0's %d", idx, ok, ifindex(t, ns, "a0"))
	}
	if received, _, err := port.Stats(); err != nil || received != 2 {
		t.Errorf("Stats: received %d (%v), want the 2 frames the filter passed", received, err)
	}
	done := make(chan error, 1)
	go func() {
		_, _, err := port.ReadPacketData()
		done <- err
	}()
	port.Close()
	select {
	case err := <-done:
		if !errors.Is(err, io.EOF) {
			t.Errorf("read after Close: %v, want io.EOF", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Close did not end a read waiting for a frame")
	}
	if _, _, err := port.Stats(); err == nil {
		t.Error("Stats on a closed handle: no error")
	}
}

func ifindex(t *testing.T, ns, name string) int {
	t.Helper()
	var idx int
	nstest.InNamespace(t, ns, func() {
		ifi, err := net.InterfaceByName(name)
		if err != nil {
			t.Fatal(err)
		}
		idx = ifi.Index
	})
	return idx
}
