package capture

import (
	"context"
	"encoding/binary"
	"errors"
	"io"
	"log/slog"
	"net"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"
	"github.com/rarp-replay/rarp-replay/internal/link"
)

type fakeHandle struct {
	name   string
	lt     layers.LinkType
	frames chan fakeFrame
	once   sync.Once
	closed chan struct{}
	mu     sync.Mutex
	sent   [][]byte
}

type fakeFrame struct {
	data []byte
	at   time.Time
	err  error
}

func newFakeHandle(name string, lt layers.LinkType) *fakeHandle {
	return &fakeHandle{name: name, lt: lt, frames: make(chan fakeFrame, 64), closed: make(chan struct{})}
}

func (h *fakeHandle) ReadPacketData() ([]byte, gopacket.CaptureInfo, error) {
	select {
	case <-h.closed:
		return nil, gopacket.CaptureInfo{}, io.EOF
	case f := <-h.frames:
		if f.err != nil {
			return nil, gopacket.CaptureInfo{}, f.err
		}
		return f.data, gopacket.CaptureInfo{Timestamp: f.at, CaptureLength: len(f.data), Length: len(f.data)}, nil
	case <-time.After(5 * time.Millisecond):
		return nil, gopacket.CaptureInfo{}, ErrTimeout
	}
}

func (h *fakeHandle) WritePacketData(b []byte) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.sent = append(h.sent, b)
	return nil
}

func (h *fakeHandle) LinkType() layers.LinkType { return h.lt }
func (h *fakeHandle) Close()                    { h.once.Do(func() { close(h.closed) }) }
func (h *fakeHandle) isClosed() bool {
	select {
	case <-h.closed:
		return true
	default:
		return false
	}
}

type fakeOpener struct {
	mu      sync.Mutex
	handles []*fakeHandle
	any     *fakeHandle
}

func (o *fakeOpener) Open(name string) (Handle, error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	h := newFakeHandle(name, layers.LinkTypeEthernet)
	o.handles = append(o.handles, h)
	return h, nil
}

func (o *fakeOpener) OpenAny() (Handle, error) {
	if o.any == nil {
		return nil, errors.New("no any device")
	}
	return o.any, nil
}

// open returns the newest open handle for name.
func (o *fakeOpener) open(name string) *fakeHandle {
	o.mu.Lock()
	defer o.mu.Unlock()
	for i := len(o.handles) - 1; i >= 0; i-- {
		if h := o.handles[i]; h.name == name && !h.isClosed() {
			return h
		}
	}
	return nil
}

type counts struct {
	mu sync.Mutex
	m  map[string]int
}

func (c *counts) add(name string) { c.mu.Lock(); c.m[name]++; c.mu.Unlock() }
func (c *counts) get(name string) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.m[name]
}

type managerFixture struct {
	m      *Manager
	links  *link.Table
	opener *fakeOpener
	out    chan Packet
	counts *counts
	cancel context.CancelFunc
	done   chan struct{}
}

const (
	idxBridge = 1
	idxP1     = 2
	idxVXLAN  = 3
	idxP2     = 4
)

func mac(b byte) net.HardwareAddr { return net.HardwareAddr{2, 0, 0, 0, 0, b} }

func startManager(t *testing.T, selected func(link.Link) bool, anyHandle bool, rateLimit float64) *managerFixture {
	t.Helper()
	links := link.NewTable()
	links.Replace([]link.Link{
		{Index: idxBridge, Name: "br0", Kind: "bridge", MAC: mac(1), Up: true},
		{Index: idxP1, Name: "p1", Kind: "veth", MAC: mac(2), MasterIndex: idxBridge, Up: true},
		{Index: idxVXLAN, Name: "vx0", Kind: "vxlan", MAC: mac(3), MasterIndex: idxBridge, Up: true},
		{Index: idxP2, Name: "p2", Kind: "veth", MAC: mac(4), MasterIndex: idxBridge, Up: false},
	})
	f := &managerFixture{links: links, opener: &fakeOpener{}, out: make(chan Packet, 4), counts: &counts{m: map[string]int{}}, done: make(chan struct{})}
	if anyHandle {
		f.opener.any = newFakeHandle("any", layers.LinkTypeLinuxSLL2)
	}
	if selected == nil {
		selected = func(link.Link) bool { return true }
	}
	f.m = NewManager(f.opener, links, selected, f.out, slog.New(slog.NewTextHandler(io.Discard, nil)), f.counts.add)
	f.m.PortRate, f.m.PortBurst = rateLimit, 2
	ctx, cancel := context.WithCancel(context.Background())
	f.cancel = cancel
	ready := make(chan struct{})
	go func() {
		defer close(f.done)
		f.m.Run(ctx, func() { close(ready) })
	}()
	t.Cleanup(func() { cancel(); <-f.done })
	select {
	case <-ready:
	case <-time.After(5 * time.Second):
		t.Fatal("Run never called ready")
	}
	return f
}

func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(time.Millisecond)
	}
}

func TestManagerOpensAccessPortsOnly(t *testing.T) {
	f := startManager(t, nil, false, 0)
	if diff := cmp.Diff(map[int]string{idxP1: "p1"}, f.m.Ports()); diff != "" {
		t.Errorf("ports (-want +got):\n%s", diff)
	}
	// p2 comes up: it gets a handle.
	l, _ := f.links.Get(idxP2)
	l.Up = true
	f.links.Set(l)
	eventually(t, "p2's handle", func() bool { return f.m.Ports()[idxP2] == "p2" })
	// p1 vanishes: its handle is closed.
	h1 := f.opener.open("p1")
	f.links.Delete(idxP1)
	eventually(t, "p1's handle closed", func() bool { return h1.isClosed() && f.m.Ports()[idxP1] == "" })
	// p2 moves under a bond: no longer an access port.
	h2 := f.opener.open("p2")
	f.links.Set(link.Link{Index: 9, Name: "bond0", Kind: "bond", MAC: mac(9), MasterIndex: idxBridge, Up: true})
	l.MasterIndex = 9
	f.links.Set(l)
	eventually(t, "p2's handle closed", func() bool { return h2.isClosed() })
	// Cancel: Run returns after closing everything.
	f.cancel()
	select {
	case <-f.done:
	case <-time.After(5 * time.Second):
		t.Fatal("Run did not return after cancel")
	}
	for _, h := range f.opener.handles {
		if !h.isClosed() {
			t.Errorf("handle %s left open", h.name)
		}
	}
}

func TestManagerSelection(t *testing.T) {
	f := startManager(t, func(l link.Link) bool { return l.Name == "p2" }, false, 0)
	if got := f.m.Ports(); len(got) != 0 {
		t.Errorf("ports %v, want none (p1 not selected, p2 down)", got)
	}
}

func TestManagerDeliversAndSends(t *testing.T) {
	f := startManager(t, nil, false, 0)
	at := time.Unix(1_700_000_000, 0)
	f.opener.open("p1").frames <- fakeFrame{data: []byte{1, 2, 3}, at: at}
	select {
	case p := <-f.out:
		want := Packet{Data: []byte{1, 2, 3}, LinkType: layers.LinkTypeEthernet, IfIndex: idxP1, Time: at}
		if diff := cmp.Diff(want, p); diff != "" {
			t.Errorf("packet (-want +got):\n%s", diff)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("no packet delivered")
	}
	if err := f.m.Send(idxP1, []byte{9}); err != nil {
		t.Fatal(err)
	}
	if got := f.opener.open("p1").sent; len(got) != 1 {
		t.Errorf("p1 sent %d frames, want 1", len(got))
	}
	for _, idx := range []int{idxBridge, idxVXLAN, 42} {
		if err := f.m.Send(idx, []byte{9}); err == nil {
			t.Errorf("Send on ifindex %d succeeded; it is not an access port", idx)
		}
	}
	// A port the table still has as down is opened on demand.
	if err := f.m.Send(idxP2, []byte{9}); err != nil {
		t.Fatalf("Send on a port without a handle yet: %v", err)
	}
	if h := f.opener.open("p2"); h == nil || len(h.sent) != 1 {
		t.Errorf("p2 was not opened on demand and sent through")
	}
}

// sll2 builds a Linux cooked v2 record for ifindex around payload.
func sll2(ifindex uint32, payload []byte) []byte {
	h := []byte{0x80, 0x35, 0, 0}
	h = binary.BigEndian.AppendUint32(h, ifindex)
	h = append(h, 0, 1, 0, 6, 2, 0, 0, 0, 0, 0x0a, 0, 0)
	return append(h, payload...)
}

func TestManagerAnyHandle(t *testing.T) {
	f := startManager(t, nil, true, 0)
	before := time.Now().Add(-time.Hour)
	after := time.Now().Add(time.Hour)
	f.opener.any.frames <- fakeFrame{data: sll2(idxP1, []byte("x")), at: after}      // p1's own handle saw it
	f.opener.any.frames <- fakeFrame{data: sll2(idxBridge, []byte("x")), at: before} // the bridge's copy
	f.opener.any.frames <- fakeFrame{data: []byte{1, 2, 3}, at: before}              // truncated
	f.opener.any.frames <- fakeFrame{data: sll2(idxP1, []byte("y")), at: before}     // before p1's handle opened
	f.opener.any.frames <- fakeFrame{data: sll2(idxP2, []byte("z")), at: before}     // p2: no handle (down)
	var got []int
	for range 2 {
		select {
		case p := <-f.out:
			got = append(got, p.IfIndex)
			if p.LinkType != layers.LinkTypeLinuxSLL2 {
				t.Errorf("link type %v, want SLL2", p.LinkType)
			}
		case <-time.After(5 * time.Second):
			t.Fatalf("forwarded %v, want two frames", got)
		}
	}
	select {
	case p := <-f.out:
		t.Errorf("unexpected extra frame from ifindex %d", p.IfIndex)
	case <-time.After(50 * time.Millisecond):
	}
	slices.Sort(got)
	if diff := cmp.Diff([]int{idxP1, idxP2}, got); diff != "" {
		t.Errorf("forwarded ifindexes (-want +got):\n%s", diff)
	}
	if n := f.counts.get("rarp-via-any"); n != 2 {
		t.Errorf("rarp-via-any = %d, want 2", n)
	}
	if n := f.counts.get("drop/truncated"); n != 1 {
		t.Errorf("drop/truncated = %d, want 1", n)
	}
}

func TestManagerLimitsAndQueue(t *testing.T) {
	f := startManager(t, nil, false, 0.001) // burst 2, then effectively nothing
	h := f.opener.open("p1")
	for i := range 5 {
		h.frames <- fakeFrame{data: []byte{byte(i)}, at: time.Now()}
	}
	eventually(t, "rate-limit drops", func() bool { return f.counts.get("drop/port-rate-limit") == 3 })
	if len(f.out) != 2 {
		t.Errorf("%d frames queued, want the burst of 2", len(f.out))
	}

	// A full queue drops, it does not block the reader.
	g := startManager(t, nil, false, 0)
	h = g.opener.open("p1")
	for i := range cap(g.out) + 3 {
		h.frames <- fakeFrame{data: []byte{byte(i)}, at: time.Now()}
	}
	eventually(t, "queue-full drops", func() bool { return g.counts.get("drop/queue-full") == 3 })
}

func TestManagerReopensAfterReadError(t *testing.T) {
	f := startManager(t, nil, false, 0)
	h := f.opener.open("p1")
	h.frames <- fakeFrame{err: errors.New("The interface went down")}
	eventually(t, "p1 removed", func() bool { return f.m.Ports()[idxP1] == "" })
	l, _ := f.links.Get(idxP1)
	f.links.Set(l) // any table change reconciles
	eventually(t, "p1 reopened", func() bool { h2 := f.opener.open("p1"); return h2 != nil && h2 != h })
}

func TestManagerDirectHandle(t *testing.T) {
	links := link.NewTable()
	links.Replace([]link.Link{
		{Index: idxBridge, Name: "br0", Kind: "bridge", MAC: mac(1), Up: true},
		{Index: idxP1, Name: "p1", Kind: "veth", MAC: mac(2), MasterIndex: idxBridge, Up: true},
	})
	opener := &fakeOpener{}
	out := make(chan Packet, 1)
	got := make(chan Packet, 1)
	m := NewManager(opener, links, func(link.Link) bool { return true }, out, slog.New(slog.NewTextHandler(io.Discard, nil)), func(string) {})
	m.Handle = func(p Packet) { got <- p }
	ctx, cancel := context.WithCancel(context.Background())
	ready, done := make(chan struct{}), make(chan struct{})
	go func() { defer close(done); m.Run(ctx, func() { close(ready) }) }()
	defer func() { cancel(); <-done }()
	<-ready
	opener.open("p1").frames <- fakeFrame{data: []byte{7}, at: time.Now()}
	select {
	case p := <-got:
		if p.IfIndex != idxP1 || p.Data[0] != 7 {
			t.Errorf("handled %+v", p)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Handle not called")
	}
	if len(out) != 0 {
		t.Error("the frame was queued as well")
	}
}
