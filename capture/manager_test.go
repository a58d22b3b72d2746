package capture

import (
	"context"
	"encoding/binary"
	"errors"
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

// errStubClosed is what a closed stubHandle returns from every call.
var errStubClosed = errors.New("stub handle closed")

type stubFrame struct {
	data []byte
	at   time.Time
	err  error // returned instead of a frame: the interface vanished
}

// stubHandle is a Handle fed by the test through frames.
type stubHandle struct {
	name    string
	lt      layers.LinkType
	timeout time.Duration // 0: a read blocks until a frame or Close
	frames  chan stubFrame
	done    chan struct{}
	once    sync.Once

	mu      sync.Mutex
	closes  int
	written [][]byte
}

func newStubHandle(name string, lt layers.LinkType, timeout time.Duration) *stubHandle {
	return &stubHandle{name: name, lt: lt, timeout: timeout, frames: make(chan stubFrame, 64), done: make(chan struct{})}
}

func (h *stubHandle) ReadPacketData() ([]byte, gopacket.CaptureInfo, error) {
	select {
	case <-h.done:
		return nil, gopacket.CaptureInfo{}, errStubClosed
	default:
	}
	var expired <-chan time.Time
	if h.timeout > 0 {
		tm := time.NewTimer(h.timeout)
		defer tm.Stop()
		expired = tm.C
	}
	select {
	case <-h.done:
		return nil, gopacket.CaptureInfo{}, errStubClosed
	case f := <-h.frames:
		if f.err != nil {
			return nil, gopacket.CaptureInfo{}, f.err
		}
		return f.data, gopacket.CaptureInfo{Timestamp: f.at, CaptureLength: len(f.data), Length: len(f.data)}, nil
	case <-expired:
		return nil, gopacket.CaptureInfo{}, ErrTimeout
	}
}

func (h *stubHandle) WritePacketData(b []byte) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.closes > 0 {
		return errStubClosed
	}
	h.written = append(h.written, slices.Clone(b))
	return nil
}

func (h *stubHandle) LinkType() layers.LinkType { return h.lt }

func (h *stubHandle) Close() {
	h.mu.Lock()
	h.closes++
	h.mu.Unlock()
	h.once.Do(func() { close(h.done) })
}

func (h *stubHandle) closed() bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.closes > 0
}

func (h *stubHandle) sent() [][]byte {
	h.mu.Lock()
	defer h.mu.Unlock()
	return slices.Clone(h.written)
}

// stubOpener records every handle it opens.
type stubOpener struct {
	anyHandle *stubHandle // nil: OpenAny fails

	mu     sync.Mutex
	opened []*stubHandle
}

func (o *stubOpener) Open(name string) (Handle, error) {
	h := newStubHandle(name, layers.LinkTypeEthernet, 10*time.Millisecond)
	o.mu.Lock()
	o.opened = append(o.opened, h)
	o.mu.Unlock()
	return h, nil
}

func (o *stubOpener) OpenAny() (Handle, error) {
	if o.anyHandle == nil {
		return nil, errors.New("no any device")
	}
	return o.anyHandle, nil
}

// handles returns the handles opened for name, oldest first.
func (o *stubOpener) handles(name string) []*stubHandle {
	o.mu.Lock()
	defer o.mu.Unlock()
	var out []*stubHandle
	for _, h := range o.opened {
		if h.name == name {
			out = append(out, h)
		}
	}
	return out
}

func (o *stubOpener) names() []string {
	o.mu.Lock()
	defer o.mu.Unlock()
	var out []string
	for _, h := range o.opened {
		out = append(out, h.name)
	}
	slices.Sort(out)
	return out
}

func (o *stubOpener) all() []*stubHandle {
	o.mu.Lock()
	defer o.mu.Unlock()
	out := slices.Clone(o.opened)
	if o.anyHandle != nil {
		out = append(out, o.anyHandle)
	}
	return out
}

// stubCounter records the count func's calls in order.
type stubCounter struct {
	mu    sync.Mutex
	names []string
}

func (c *stubCounter) count(name string) {
	c.mu.Lock()
	c.names = append(c.names, name)
	c.mu.Unlock()
}

func (c *stubCounter) got() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return slices.Clone(c.names)
}

func (c *stubCounter) n(name string) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	n := 0
	for _, s := range c.names {
		if s == name {
			n++
		}
	}
	return n
}

const (
	ixBridge = 1
	ixVeth1  = 2
	ixVeth2  = 3
	ixVXLAN  = 4
	ixDown   = 5 // an eligible port the table still has as down
)

func hwAddr(b byte) net.HardwareAddr { return net.HardwareAddr{0x02, 0, 0, 0, 0x11, b} }

func harnessLinks() []link.Link {
	return []link.Link{
		{Index: ixBridge, Name: "br0", Kind: "bridge", MAC: hwAddr(1), Up: true},
		{Index: ixVeth1, Name: "veth1", Kind: "veth", MAC: hwAddr(2), MasterIndex: ixBridge, Up: true},
		{Index: ixVeth2, Name: "veth2", Kind: "veth", MAC: hwAddr(3), MasterIndex: ixBridge, Up: true},
		{Index: ixVXLAN, Name: "vxlan0", Kind: "vxlan", MAC: hwAddr(4), MasterIndex: ixBridge, Up: true},
		{Index: ixDown, Name: "veth3", Kind: "veth", MAC: hwAddr(5), MasterIndex: ixBridge},
	}
}

type harness struct {
	m       *Manager
	links   *link.Table
	opener  *stubOpener
	out     chan Packet
	counter *stubCounter
	cancel  context.CancelFunc
	runDone chan struct{} // closed when Run returned
	runErr  error         // what Run returned; read after runDone
}

type harnessOpts struct {
	selected func(link.Link) bool // nil: every link
	withAny  bool
	queue    int // capacity of out; 0 means 16
}

// startHarness runs a Manager over harnessLinks until the test ends, and
// returns once Run called ready.
func startHarness(t *testing.T, o harnessOpts) *harness {
	t.Helper()
	links := link.NewTable()
	links.Replace(harnessLinks())
	h := &harness{links: links, opener: &stubOpener{}, counter: &stubCounter{}, runDone: make(chan struct{})}
	if o.withAny {
		// Reads block until Close, so the any reader can only end through it.
		h.opener.anyHandle = newStubHandle("any", layers.LinkTypeLinuxSLL2, 0)
	}
	if o.queue == 0 {
		o.queue = 16
	}
	h.out = make(chan Packet, o.queue)
	selected := o.selected
	if selected == nil {
		selected = func(link.Link) bool { return true }
	}
	h.m = NewManager(h.opener, links, selected, h.out, slog.New(slog.DiscardHandler), h.counter.count)
	ctx, cancel := context.WithCancel(context.Background())
	h.cancel = cancel
	ready := make(chan struct{})
	go func() {
		defer close(h.runDone)
		h.runErr = h.m.Run(ctx, func() { close(ready) })
	}()
	t.Cleanup(func() {
		cancel()
		h.waitRun(t)
	})
	select {
	case <-ready:
	case <-h.runDone:
		t.Fatalf("Run returned %v before calling ready", h.runErr)
	case <-time.After(5 * time.Second):
		t.Fatal("Run did not call ready within 5 s")
	}
	return h
}

// waitRun waits for Run to return and returns its error.
func (h *harness) waitRun(t *testing.T) error {
	t.Helper()
	select {
	case <-h.runDone:
		return h.runErr
	case <-time.After(5 * time.Second):
		t.Fatal("Run did not return within 5 s of cancel")
		return nil
	}
}

// waitUntil polls cond until it holds, failing the test after 5 s.
func waitUntil(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("gave up after 5 s waiting for %s", what)
		}
		time.Sleep(time.Millisecond)
	}
}

func (h *harness) receive(t *testing.T) Packet {
	t.Helper()
	select {
	case p := <-h.out:
		return p
	case <-time.After(5 * time.Second):
		t.Fatal("no packet on the out channel within 5 s")
		return Packet{}
	}
}

// only returns the single handle opened for name.
func (h *harness) only(t *testing.T, name string) *stubHandle {
	t.Helper()
	hs := h.opener.handles(name)
	if len(hs) != 1 {
		t.Fatalf("%d handles opened for %s, want 1", len(hs), name)
	}
	return hs[0]
}

// sll2Frame is a Linux cooked v2 record of a RARP request that entered the
// interface ifindex: the 20-byte SLL2 header, then the RARP payload.
func sll2Frame(ifindex uint32) []byte {
	b := binary.BigEndian.AppendUint16(nil, 0x8035) // protocol
	b = append(b, 0, 0)                             // reserved
	b = binary.BigEndian.AppendUint32(b, ifindex)   // interface index
	b = binary.BigEndian.AppendUint16(b, 1)         // ARPHRD_ETHER
	b = append(b, 0, 6)                             // PACKET_HOST, address length
	b = append(b, hwAddr(0x77)...)                  // address, padded to 8
	b = append(b, 0, 0)
	// RARP request: Ethernet/IPv4, opcode 3, sender = target = the VM's MAC.
	b = append(b, 0, 1, 0x08, 0, 6, 4, 0, 3)
	b = append(b, hwAddr(0x77)...)
	b = append(b, 0, 0, 0, 0)
	b = append(b, hwAddr(0x77)...)
	return append(b, 0, 0, 0, 0)
}

func TestManagerOpensSelectedAccessPorts(t *testing.T) {
	tests := []struct {
		name      string
		selected  func(link.Link) bool
		wantPorts map[int]string
	}{
		{
			name:      "every link selected: the up veths, not the bridge, vxlan or down port",
			wantPorts: map[int]string{ixVeth1: "veth1", ixVeth2: "veth2"},
		},
		{
			name:      "one name selected",
			selected:  func(l link.Link) bool { return l.Name == "veth2" },
			wantPorts: map[int]string{ixVeth2: "veth2"},
		},
		{
			name:      "only ineligible links selected",
			selected:  func(l link.Link) bool { return l.Kind == "bridge" || l.Kind == "vxlan" },
			wantPorts: map[int]string{},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := startHarness(t, harnessOpts{selected: tt.selected})
			if diff := cmp.Diff(tt.wantPorts, h.m.Ports()); diff != "" {
				t.Errorf("Ports() when ready (-want +got):\n%s", diff)
			}
			var wantOpened []string
			for _, name := range tt.wantPorts {
				wantOpened = append(wantOpened, name)
			}
			slices.Sort(wantOpened)
			if diff := cmp.Diff(wantOpened, h.opener.names()); diff != "" {
				t.Errorf("handles opened (-want +got):\n%s", diff)
			}
		})
	}
}

func TestManagerFollowsTable(t *testing.T) {
	bridgeMember := func(index int, name string) link.Link {
		return link.Link{Index: index, Name: name, Kind: "veth", MAC: hwAddr(byte(index)), MasterIndex: ixBridge, Up: true}
	}
	tests := []struct {
		name       string
		change     func(*link.Table)
		wantPorts  map[int]string
		wantClosed []string // ports whose first handle must be closed
	}{
		{
			name:      "port added",
			change:    func(tb *link.Table) { tb.Set(bridgeMember(6, "veth6")) },
			wantPorts: map[int]string{ixVeth1: "veth1", ixVeth2: "veth2", 6: "veth6"},
		},
		{
			name:      "down port comes up",
			change:    func(tb *link.Table) { tb.Set(bridgeMember(ixDown, "veth3")) },
			wantPorts: map[int]string{ixVeth1: "veth1", ixVeth2: "veth2", ixDown: "veth3"},
		},
		{
			name:       "port deleted",
			change:     func(tb *link.Table) { tb.Delete(ixVeth1) },
			wantPorts:  map[int]string{ixVeth2: "veth2"},
			wantClosed: []string{"veth1"},
		},
		{
			name: "port moved under a bond",
			change: func(tb *link.Table) {
				tb.Set(link.Link{Index: 7, Name: "bond0", Kind: "bond", MAC: hwAddr(7), MasterIndex: ixBridge, Up: true})
				l := bridgeMember(ixVeth1, "veth1")
				l.MasterIndex = 7
				tb.Set(l)
			},
			wantPorts:  map[int]string{ixVeth2: "veth2", 7: "bond0"},
			wantClosed: []string{"veth1"},
		},
		{
			name: "port goes down",
			change: func(tb *link.Table) {
				l := bridgeMember(ixVeth1, "veth1")
				l.Up = false
				tb.Set(l)
			},
			wantPorts:  map[int]string{ixVeth2: "veth2"},
			wantClosed: []string{"veth1"},
		},
		{
			name:       "port renamed",
			change:     func(tb *link.Table) { tb.Set(bridgeMember(ixVeth1, "eth-vm1")) },
			wantPorts:  map[int]string{ixVeth1: "eth-vm1", ixVeth2: "veth2"},
			wantClosed: []string{"veth1"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := startHarness(t, harnessOpts{})
			veth2 := h.only(t, "veth2")
			tt.change(h.links)
			waitUntil(t, "the ports to follow the table", func() bool { return cmp.Equal(tt.wantPorts, h.m.Ports()) })
			for _, name := range tt.wantClosed {
				if hs := h.opener.handles(name); len(hs) == 0 || !hs[0].closed() {
					t.Errorf("%s's handle was not closed", name)
				}
			}
			// An unaffected port keeps its one handle.
			if diff := cmp.Diff([]*stubHandle{veth2}, h.opener.handles("veth2"), cmp.Comparer(func(a, b *stubHandle) bool { return a == b })); diff != "" {
				t.Errorf("veth2's handles (-want +got):\n%s", diff)
			}
			if veth2.closed() {
				t.Error("veth2's handle was closed")
			}
		})
	}
}

func TestManagerDeliversPortFrames(t *testing.T) {
	at := time.Date(2024, 5, 1, 12, 0, 0, 123456789, time.UTC)
	tests := []struct {
		name    string
		port    string
		ifindex int
		data    []byte
	}{
		{name: "veth1", port: "veth1", ifindex: ixVeth1, data: []byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 1, 2, 3, 4, 5, 6, 0x80, 0x35}},
		{name: "veth2", port: "veth2", ifindex: ixVeth2, data: []byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 6, 5, 4, 3, 2, 1, 0x81, 0, 0, 10, 0x80, 0x35}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := startHarness(t, harnessOpts{})
			h.only(t, tt.port).frames <- stubFrame{data: tt.data, at: at}
			want := Packet{Data: tt.data, LinkType: layers.LinkTypeEthernet, IfIndex: tt.ifindex, Time: at}
			if diff := cmp.Diff(want, h.receive(t)); diff != "" {
				t.Errorf("packet (-want +got):\n%s", diff)
			}
		})
	}
}

func TestManagerSend(t *testing.T) {
	frame := []byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 2, 0, 0, 0, 0x11, 1, 0x08, 0x06}
	tests := []struct {
		name    string
		ifindex int
		wantVia string // the port whose handle must carry the frame; "" for an error
	}{
		{name: "open port", ifindex: ixVeth1, wantVia: "veth1"},
		{name: "eligible port without a handle yet", ifindex: ixDown, wantVia: "veth3"},
		{name: "bridge", ifindex: ixBridge},
		{name: "vxlan member", ifindex: ixVXLAN},
		{name: "unknown ifindex", ifindex: 99},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := startHarness(t, harnessOpts{})
			before := h.opener.names()
			err := h.m.Send(tt.ifindex, frame)
			if tt.wantVia == "" {
				if err == nil {
					t.Fatalf("Send(%d) succeeded, want an error", tt.ifindex)
				}
				if diff := cmp.Diff(before, h.opener.names()); diff != "" {
					t.Errorf("Send(%d) opened handles (-before +after):\n%s", tt.ifindex, diff)
				}
				return
			}
			if err != nil {
				t.Fatalf("Send(%d): %v", tt.ifindex, err)
			}
			if diff := cmp.Diff([][]byte{frame}, h.only(t, tt.wantVia).sent()); diff != "" {
				t.Errorf("frames written on %s (-want +got):\n%s", tt.wantVia, diff)
			}
		})
	}
}

func TestManagerSendNotRunning(t *testing.T) {
	tests := []struct {
		name  string
		start bool // Run, then cancel it, before Send
	}{
		{name: "before Run"},
		{name: "after Run returned", start: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			links := link.NewTable()
			links.Replace(harnessLinks())
			opener := &stubOpener{}
			m := NewManager(opener, links, func(link.Link) bool { return true }, make(chan Packet, 1), slog.New(slog.DiscardHandler), func(string) {})
			if tt.start {
				ctx, cancel := context.WithCancel(context.Background())
				done := make(chan error, 1)
				go func() { done <- m.Run(ctx, cancel) }() // cancel as soon as ready
				select {
				case <-done:
				case <-time.After(5 * time.Second):
					t.Fatal("Run did not return within 5 s of cancel")
				}
			}
			before := opener.names()
			if err := m.Send(ixDown, []byte{1}); err == nil {
				t.Error("Send succeeded on a manager that is not running")
			}
			if diff := cmp.Diff(before, opener.names()); diff != "" {
				t.Errorf("Send opened handles (-before +after):\n%s", diff)
			}
		})
	}
}

func TestManagerAnyDeviceFrames(t *testing.T) {
	// Every case is followed by a marker frame for the down port, which the
	// any handle always forwards: once the marker is out, the case's frame
	// has been dealt with.
	marker := stubFrame{data: sll2Frame(ixDown), at: time.Date(2024, 5, 1, 0, 0, 0, 0, time.UTC)}
	tests := []struct {
		name        string
		frame       func() stubFrame
		wantIfIndex int // 0: the frame must be skipped
		wantCounts  []string
	}{
		{
			name:        "eligible port without a handle",
			frame:       func() stubFrame { return stubFrame{data: append(sll2Frame(ixDown), 0xaa), at: time.Now()} },
			wantIfIndex: ixDown,
			wantCounts:  []string{"rarp-via-any", "rarp-via-any"},
		},
		{
			name:        "port the table does not know yet",
			frame:       func() stubFrame { return stubFrame{data: sll2Frame(77), at: time.Now()} },
			wantIfIndex: 77,
			wantCounts:  []string{"rarp-via-any", "rarp-via-any"},
		},
		{
			name:       "port whose handle was open before the frame",
			frame:      func() stubFrame { return stubFrame{data: sll2Frame(ixVeth1), at: time.Now()} },
			wantCounts: []string{"rarp-via-any"},
		},
		{
			name:        "port whose handle opened after the frame",
			frame:       func() stubFrame { return stubFrame{data: sll2Frame(ixVeth1), at: time.Now().Add(-time.Hour)} },
			wantIfIndex: ixVeth1,
			wantCounts:  []string{"rarp-via-any", "rarp-via-any"},
		},
		{
			name:       "the bridge's copy",
			frame:      func() stubFrame { return stubFrame{data: sll2Frame(ixBridge), at: time.Now()} },
			wantCounts: []string{"rarp-via-any"},
		},
		{
			name:       "vxlan port",
			frame:      func() stubFrame { return stubFrame{data: sll2Frame(ixVXLAN), at: time.Now()} },
			wantCounts: []string{"rarp-via-any"},
		},
		{
			name:       "truncated",
			frame:      func() stubFrame { return stubFrame{data: sll2Frame(ixDown)[:7], at: time.Now()} },
			wantCounts: []string{"drop/truncated", "rarp-via-any"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := startHarness(t, harnessOpts{withAny: true})
			f := tt.frame()
			h.opener.anyHandle.frames <- f
			h.opener.anyHandle.frames <- marker
			var want []Packet
			if tt.wantIfIndex != 0 {
				want = append(want, Packet{Data: f.data, LinkType: layers.LinkTypeLinuxSLL2, IfIndex: tt.wantIfIndex, Time: f.at})
			}
			want = append(want, Packet{Data: marker.data, LinkType: layers.LinkTypeLinuxSLL2, IfIndex: ixDown, Time: marker.at})
			var got []Packet
			for range want {
				got = append(got, h.receive(t))
				if got[len(got)-1].IfIndex == ixDown && slices.Equal(got[len(got)-1].Data, marker.data) {
					break
				}
			}
			if diff := cmp.Diff(want, got); diff != "" {
				t.Errorf("forwarded packets (-want +got):\n%s", diff)
			}
			if diff := cmp.Diff(tt.wantCounts, h.counter.got()); diff != "" {
				t.Errorf("counts (-want +got):\n%s", diff)
			}
		})
	}
}

func TestManagerQueueFull(t *testing.T) {
	tests := []struct {
		name    string
		withAny bool
		feed    func(h *harness)
	}{
		{
			name: "port handle",
			feed: func(h *harness) {
				h.opener.handles("veth1")[0].frames <- stubFrame{data: []byte{1}, at: time.Now()}
			},
		},
		{
			name:    "any handle",
			withAny: true,
			feed: func(h *harness) {
				h.opener.anyHandle.frames <- stubFrame{data: sll2Frame(ixDown), at: time.Now()}
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := startHarness(t, harnessOpts{withAny: tt.withAny, queue: 1})
			// Nobody reads out: the first frame fills it, the next ones are
			// dropped, and the reader goes on reading.
			for i := 1; i <= 4; i++ {
				tt.feed(h)
				want := max(i-1, 0)
				waitUntil(t, "queue-full drops", func() bool { return h.counter.n("drop/queue-full") == want && len(h.out) == 1 })
			}
		})
	}
}

func TestManagerCancelClosesEverything(t *testing.T) {
	tests := []struct {
		name    string
		withAny bool
	}{
		{name: "with the any device", withAny: true},
		{name: "without the any device"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := startHarness(t, harnessOpts{withAny: tt.withAny})
			// A handle opened on demand must be closed too.
			if err := h.m.Send(ixDown, []byte{1}); err != nil {
				t.Fatal(err)
			}
			h.cancel()
			if err := h.waitRun(t); err != nil {
				t.Errorf("Run returned %v, want nil", err)
			}
			all := h.opener.all()
			wantHandles := 3 // veth1, veth2, veth3
			if tt.withAny {
				wantHandles++
			}
			if len(all) != wantHandles {
				t.Errorf("%d handles opened, want %d", len(all), wantHandles)
			}
			for _, sh := range all {
				if !sh.closed() {
					t.Errorf("%s's handle still open after Run returned", sh.name)
				}
			}
			if diff := cmp.Diff(map[int]string{}, h.m.Ports()); diff != "" {
				t.Errorf("Ports() after Run returned (-want +got):\n%s", diff)
			}
		})
	}
}

func TestManagerReadError(t *testing.T) {
	tests := []struct {
		name       string
		after      func(*link.Table) // the table change after the error
		wantReopen bool
	}{
		{
			name: "link still there is reopened",
			after: func(tb *link.Table) {
				tb.Set(link.Link{Index: 6, Name: "veth6", Kind: "veth", MAC: hwAddr(6), MasterIndex: ixBridge, Up: true})
			},
			wantReopen: true,
		},
		{
			name: "link gone stays closed",
			after: func(tb *link.Table) {
				tb.Delete(ixVeth1)
				tb.Set(link.Link{Index: 6, Name: "veth6", Kind: "veth", MAC: hwAddr(6), MasterIndex: ixBridge, Up: true})
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := startHarness(t, harnessOpts{})
			first := h.only(t, "veth1")
			first.frames <- stubFrame{err: errors.New("read: network is down")}
			waitUntil(t, "veth1's failed handle to be closed", first.closed)
			tt.after(h.links)
			// veth6's handle proves a reconcile ran after the change.
			waitUntil(t, "a reconcile after the table change", func() bool { return len(h.opener.handles("veth6")) == 1 })
			want := map[int]string{ixVeth2: "veth2", 6: "veth6"}
			if tt.wantReopen {
				want[ixVeth1] = "veth1"
			}
			waitUntil(t, "the ports after the reconcile", func() bool { return cmp.Equal(want, h.m.Ports()) })
			hs := h.opener.handles("veth1")
			if tt.wantReopen {
				if len(hs) != 2 || hs[1].closed() {
					t.Fatalf("veth1 has %d handles, want the failed one and an open new one", len(hs))
				}
				// The new handle works.
				at := time.Now()
				hs[1].frames <- stubFrame{data: []byte{7}, at: at}
				want := Packet{Data: []byte{7}, LinkType: layers.LinkTypeEthernet, IfIndex: ixVeth1, Time: at}
				if diff := cmp.Diff(want, h.receive(t)); diff != "" {
					t.Errorf("packet on the reopened handle (-want +got):\n%s", diff)
				}
				return
			}
			// The retry ticker may have reopened veth1 before the delete;
			// what matters is that no handle stays open on it.
			for i, sh := range hs {
				if !sh.closed() {
					t.Errorf("veth1's handle %d is open, the link is gone", i)
				}
			}
		})
	}
}
