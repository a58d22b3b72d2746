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
	ns := vethPair(t, "pcapio")
	rarp, reply, na := vmFrames(t)
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
		// The daemon's any-device handle, capturing answers (as while a
		// new port's probes await theirs): the program the kernel runs is
		// libpcap's, read back and attached again.
		if any, err = OpenAny(DefaultOptions); err != nil {
			t.Fatal(err)
		}
		if err := any.CaptureAnswers(true); err != nil {
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
	for _, f := range [][]byte{request, rarp, reply, na} {
		if err := peer.WritePacketData(f); err != nil {
			t.Fatal(err)
		}
	}
	for i, want := range [][]byte{rarp, reply, na} {
		got, ci, err := port.ReadPacketData()
		if err != nil {
			t.Fatalf("read %d: %v", i, err)
		}
		if string(got) != string(want) || ci.CaptureLength != len(want) || ci.Timestamp.IsZero() {
			t.Errorf("read %d: % x (%d bytes at %v), want % x", i, got, ci.CaptureLength, ci.Timestamp, want)
		}
	}
	// The any device: the RARP and the answers (a new port's, before its
	// own handle is open), each with the interface it entered (the reply
	// a0 sent entered b0); not the request.
	a0, b0 := ifindex(t, ns, "a0"), ifindex(t, ns, "b0")
	for i, want := range []struct {
		kind    packet.Kind
		ifindex int
	}{{packet.KindARPReply, b0}, {packet.KindRARP, a0}, {packet.KindARPReply, a0}, {packet.KindNA, a0}} {
		got, _, err := any.ReadPacketData()
		if err != nil {
			t.Fatal(err)
		}
		f, err := packet.Decode(got, layers.LinkTypeLinuxSLL2)
		if err != nil || f.Kind != want.kind || string(f.SrcMAC) != string(vm) {
			t.Errorf("any device, frame %d: %v from %v (%v), want %v from %v", i, f.Kind, f.SrcMAC, err, want.kind, vm)
		}
		if idx, ok := packet.SLL2IfIndex(got); !ok || idx != want.ifindex {
			t.Errorf("any device, frame %d: from ifindex %d (ok %v), want %d", i, idx, ok, want.ifindex)
		}
	}
	if received, _, err := port.Stats(); err != nil || received != 3 {
		t.Errorf("Stats: received %d (%v), want the 3 frames the filter passed", received, err)
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
	port.Close() // again: nothing (libpcap would abort on a double free)
}

// TestAnswerSwitch switches the any-device handle's kernel filter. Two
// handles see the same frames: one as opened (RARPs only), one switched to
// answers at once (libpcap still filters the frames of its first ring
// block in user space then, with the last program it installed itself),
// then back to RARPs only and to answers again; each state is proven by
// answers sent before a RARP and read, or not, before it. No RARP is lost
// while the filter is switched back and forth under a stream of them
// (libpcap's pcap_setfilter rejects everything for a moment).
func TestAnswerSwitch(t *testing.T) {
	ns := vethPair(t, "answers")
	rarp, reply, na := vmFrames(t)
	var opened, any, peer Live
	var err error
	nstest.InNamespace(t, ns, func() {
		o := DefaultOptions
		o.Timeout = 10 * time.Second // a lost frame fails the test, not hangs it
		if opened, err = OpenAny(o); err != nil {
			t.Fatal(err)
		}
		if any, err = OpenAny(o); err != nil {
			t.Fatal(err)
		}
		if peer, err = OpenSender("b0"); err != nil {
			t.Fatal(err)
		}
	})
	defer peer.Close()
	defer opened.Close()
	defer any.Close()
	send := func(frames ...[]byte) {
		t.Helper()
		for _, f := range frames {
			if err := peer.WritePacketData(f); err != nil {
				t.Fatal(err)
			}
		}
	}
	// next returns the kind of h's next frame from the VM (the kernel's
	// own, from b0 coming up, are skipped).
	next := func(h Live) packet.Kind {
		t.Helper()
		for {
			got, _, err := h.ReadPacketData()
			if err != nil {
				t.Fatalf("read: %v", err)
			}
			if f, err := packet.Decode(got, layers.LinkTypeLinuxSLL2); err == nil && string(f.SrcMAC) == string(vm) {
				return f.Kind
			}
		}
	}
	expect := func(h Live, phase string, want ...packet.Kind) {
		t.Helper()
		for i, w := range want {
			if got := next(h); got != w {
				t.Errorf("%s: frame %d is %v, want %v (answers then the RARP sent)", phase, i, got, w)
			}
		}
	}
	answers := func(on bool) {
		t.Helper()
		if err := any.CaptureAnswers(on); err != nil {
			t.Fatal(err)
		}
	}
	answers(true)
	send(reply, na, rarp)
	expect(opened, "as opened", packet.KindRARP)
	expect(any, "answers on at once", packet.KindARPReply, packet.KindNA, packet.KindRARP)
	answers(false)
	send(reply, na, rarp)
	expect(any, "answers off", packet.KindRARP)
	answers(true)
	send(reply, na, rarp)
	expect(any, "answers on again", packet.KindARPReply, packet.KindNA, packet.KindRARP)

	const rarps, switches = 3000, 1000
	sent := make(chan error, 1)
	go func() {
		for range rarps {
			if err := peer.WritePacketData(rarp); err != nil {
				sent <- err
				return
			}
		}
		sent <- nil
	}()
	for i := range switches {
		answers(i%2 == 0)
	}
	if err := <-sent; err != nil {
		t.Fatal(err)
	}
	for i := range rarps {
		if k := next(any); k != packet.KindRARP {
			t.Fatalf("frame %d while switching: %v, want only RARPs", i, k)
		}
	}
	if received, dropped, err := any.Stats(); err != nil || dropped != 0 {
		t.Errorf("Stats: %d received, %d dropped (%v): the ring overflowed, the test proves nothing", received, dropped, err)
	}
	any.Close()
	if err := any.CaptureAnswers(true); err == nil {
		t.Error("CaptureAnswers on a closed handle: no error")
	}
}

// vmFrames returns what the VM sends in the tests here: its RARP, and its
// ARP reply and NA to the leaf.
func vmFrames(t *testing.T) (rarp, reply, na []byte) {
	t.Helper()
	rarp, err := packet.BuildRARP(vm, nil)
	if err != nil {
		t.Fatal(err)
	}
	reply, err = packet.BuildReply(packet.Reply{MAC: vm, IP: netip.MustParseAddr("192.0.2.10"), DstMAC: gw, DstIP: netip.MustParseAddr("192.0.2.1")})
	if err != nil {
		t.Fatal(err)
	}
	na, err = packet.BuildReply(packet.Reply{MAC: vm, IP: netip.MustParseAddr("2001:db8::10"), DstMAC: gw, DstIP: netip.MustParseAddr("2001:db8::1")})
	if err != nil {
		t.Fatal(err)
	}
	return rarp, reply, na
}

// The VM's and the leaf's MACs in the tests here.
var (
	vm = net.HardwareAddr{2, 0x52, 0x53, 0, 0, 1}
	gw = net.HardwareAddr{2, 0x52, 0x53, 0, 0, 0xfe}
)

// vethPair returns a namespace of its own (removed when the test ends) with
// the veth pair a0 (the leaf's port) - b0 (the VM's side), both up. It
// needs root.
func vethPair(t *testing.T, name string) string {
	t.Helper()
	nstest.RequireRoot(t)
	ns := nstest.Namespace(t, name)
	nstest.Run(t, "ip", "-n", ns, "link", "add", "a0", "type", "veth", "peer", "name", "b0")
	nstest.Run(t, "ip", "-n", ns, "link", "set", "a0", "up")
	nstest.Run(t, "ip", "-n", ns, "link", "set", "b0", "up")
	return ns
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

// TestDirect sends through the direct socket, which needs no handle on the
// port: the frame leaves the interface named by its index as it was given;
// a frame too short to name its EtherType and an unknown interface fail.
func TestDirect(t *testing.T) {
	ns := vethPair(t, "direct")
	var frames [][]byte
	for _, target := range []string{"192.0.2.10", "2001:db8::10"} {
		src := "192.0.2.1"
		if strings.Contains(target, ":") {
			src = "2001:db8::1"
		}
		f, err := packet.Build(packet.Probe{SrcMAC: gw, SrcIP: netip.MustParseAddr(src), DstMAC: vm, Target: netip.MustParseAddr(target), VLANs: []uint16{10}})
		if err != nil {
			t.Fatal(err)
		}
		frames = append(frames, f)
	}
	var d *Direct
	var vmSide Live
	var err error
	nstest.InNamespace(t, ns, func() {
		if d, err = OpenDirect(); err != nil {
			t.Fatal(err)
		}
		// Only the test's frames: not what the kernel sends itself when a0
		// comes up (IPv6 multicast listener reports, router solicitations).
		if vmSide, err = Open("b0", "ether src "+gw.String(), DefaultOptions); err != nil {
			t.Fatal(err)
		}
	})
	defer d.Close()
	defer vmSide.Close()
	a0 := ifindex(t, ns, "a0")
	for _, f := range frames {
		if err := d.SendOn(a0, f); err != nil {
			t.Fatalf("SendOn(a0): %v", err)
		}
	}
	for i, want := range frames {
		got, _, err := vmSide.ReadPacketData()
		if err != nil {
			t.Fatal(err)
		}
		if string(got) != string(want) {
			t.Errorf("frame %d on b0: % x, want % x", i, got, want)
		}
	}
	if err := d.SendOn(a0, frames[0][:13]); err == nil {
		t.Error("SendOn with a 13-byte frame: no error")
	}
	if err := d.SendOn(1<<30, frames[0]); err == nil {
		t.Error("SendOn on an interface that does not exist: no error")
	}
}
