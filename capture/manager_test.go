package capture

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net"
	"runtime"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"
	"github.com/rarp-replay/rarp-replay/internal/engine"
	"github.com/rarp-replay/rarp-replay/internal/link"
)

// deadline bounds every wait of this suite. Waits are on channels; nothing
// sleeps.
const deadline = 5 * time.Second

// readTimeout is the fake handles' read timeout: a reader sees ErrTimeout
// between frames, as with a live handle opened with a read timeout.
const readTimeout = 5 * time.Millisecond

// errClosed is what a closed fakeHandle's reads return.
var errClosed = errors.New("fake handle closed")

// recv waits for a value on ch and fails the test when none came within
// the deadline: the suite's one wait.
func recv[T any](t *testing.T, ch <-chan T, what string) T {
	t.Helper()
	select {
	case v := <-ch:
		return v
	case <-time.After(deadline):
		t.Fatalf("gave up after %v waiting for %s", deadline, what)
		var zero T
		return zero
	}
}

// fakeFrame is one item fed to a fakeHandle's reader.
type fakeFrame struct {
	data   []byte
	at     time.Time
	err    error // returned instead of a frame: the interface vanished
	settle bool  // taken by the reader but not returned: see fakeHandle.settle
}

// fakeHandle is a Handle the test feeds one frame at a time. The feed is
// unbuffered, so push returns once the reader took the frame, and settle
// returns once the reader finished with every frame before it.
type fakeHandle struct {
	name     string
	lt       layers.LinkType
	feed     chan fakeFrame
	counters *fakeCounters // nil: the opener hands the handle out without Stats
	gate     chan struct{} // nil, or Close returns only once it is closed: a slow close
	wrote    chan string   // nil, or told the handle's name on each write
	closing  chan struct{} // closed when Close is called; reads fail from then on
	closed   chan struct{} // closed when Close returns
	once     sync.Once

	mu    sync.Mutex
	sent  [][]byte
	reads int
}

// fakeCounters is what a fakeHandle's Stats returns.
type fakeCounters struct {
	received, dropped int
	err               error
}

func newFakeHandle(name string, lt layers.LinkType) *fakeHandle {
	return &fakeHandle{name: name, lt: lt, feed: make(chan fakeFrame), closing: make(chan struct{}), closed: make(chan struct{})}
}

func (h *fakeHandle) ReadPacketData() ([]byte, gopacket.CaptureInfo, error) {
	h.mu.Lock()
	h.reads++
	h.mu.Unlock()
	timeout := time.NewTimer(readTimeout)
	defer timeout.Stop()
	for {
		select {
		case <-h.closing:
			return nil, gopacket.CaptureInfo{}, errClosed
		case <-timeout.C:
			return nil, gopacket.CaptureInfo{}, ErrTimeout
		case f := <-h.feed:
			switch {
			case f.settle:
				continue
			case f.err != nil:
				return nil, gopacket.CaptureInfo{}, f.err
			}
			return f.data, gopacket.CaptureInfo{Timestamp: f.at, CaptureLength: len(f.data), Length: len(f.data)}, nil
		}
	}
}

func (h *fakeHandle) WritePacketData(b []byte) error {
	select {
	case <-h.closing:
		return errClosed
	default:
	}
	h.mu.Lock()
	h.sent = append(h.sent, slices.Clone(b))
	h.mu.Unlock()
	if h.wrote != nil {
		h.wrote <- h.name
	}
	return nil
}

func (h *fakeHandle) LinkType() layers.LinkType { return h.lt }

func (h *fakeHandle) Close() {
	h.once.Do(func() {
		close(h.closing)
		if h.gate != nil {
			<-h.gate
		}
		close(h.closed)
	})
}

func (h *fakeHandle) Stats() (received, dropped int, err error) {
	return h.counters.received, h.counters.dropped, h.counters.err
}

// push hands f to the handle's reader.
func (h *fakeHandle) push(t *testing.T, f fakeFrame) {
	t.Helper()
	select {
	case h.feed <- f:
	case <-time.After(deadline):
		t.Fatalf("%s's reader took no frame within %v", h.name, deadline)
	}
}

// settle returns once the reader is back for another read after every frame
// pushed before: each was delivered or dropped by then.
func (h *fakeHandle) settle(t *testing.T) {
	t.Helper()
	h.push(t, fakeFrame{settle: true})
}

func (h *fakeHandle) closeCalled() bool { return isClosed(h.closing) }

func (h *fakeHandle) closeReturned() bool { return isClosed(h.closed) }

func (h *fakeHandle) written() [][]byte {
	h.mu.Lock()
	defer h.mu.Unlock()
	return slices.Clone(h.sent)
}

func (h *fakeHandle) readCalls() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.reads
}

func isClosed(ch <-chan struct{}) bool {
	select {
	case <-ch:
		return true
	default:
		return false
	}
}

// noStats hides a fakeHandle's Stats method: a handle without kernel
// counters (a capture file).
type noStats struct{ Handle }

// fakeOpener opens fakeHandles and records them. Set its fields before
// the Manager runs.
type fakeOpener struct {
	any       *fakeHandle              // the any-device handle (SLL2)
	withAny   bool                     // false: OpenAny fails, as on a kernel without the any device
	anyHandle func(*fakeHandle) Handle // when set, wraps the any handle (a filter switch)
	counters  map[string]*fakeCounters // by port name; a port not here has a handle without Stats
	slow      map[string]bool          // handles (by name, "any" too) whose Close waits for release
	gate      chan struct{}            // what slow handles' Close waits for
	released  sync.Once

	// openGate: Open of these names waits until the channel is closed (a
	// slow open), after telling openEntered.
	openGate    map[string]chan struct{}
	openEntered chan string
	wrote       chan string // when set, every handle tells it its name on each write

	mu      sync.Mutex
	handles []*fakeHandle
	change  chan struct{} // closed and replaced at every Open
}

func newFakeOpener() *fakeOpener {
	return &fakeOpener{
		any:    newFakeHandle("any", layers.LinkTypeLinuxSLL2),
		gate:   make(chan struct{}),
		change: make(chan struct{}),
	}
}

func (o *fakeOpener) Open(l link.Link) (Handle, error) {
	name := l.Name
	if gate, ok := o.openGate[name]; ok {
		o.openEntered <- name
		<-gate
	}
	h := newFakeHandle(name, layers.LinkTypeEthernet)
	h.wrote = o.wrote
	if o.slow[name] {
		h.gate = o.gate
	}
	h.counters = o.counters[name]
	o.mu.Lock()
	o.handles = append(o.handles, h)
	close(o.change)
	o.change = make(chan struct{})
	o.mu.Unlock()
	if h.counters == nil {
		return noStats{h}, nil
	}
	return h, nil
}

func (o *fakeOpener) OpenAny() (Handle, error) {
	if !o.withAny {
		return nil, errors.New("no any device")
	}
	if o.slow["any"] {
		o.any.gate = o.gate
	}
	if o.anyHandle != nil {
		return o.anyHandle(o.any), nil
	}
	return o.any, nil
}

// fakeSwitch is the any-device handle's filter switch (AnswerSwitch): it
// records each call into the log it shares with the test's Direct.
type fakeSwitch struct {
	log     *eventLog
	failOn  bool // CaptureAnswers(true) fails
	failOff bool // CaptureAnswers(false) fails
}

func (s *fakeSwitch) CaptureAnswers(on bool) error {
	if on {
		s.log.add("answers on")
		if s.failOn {
			return errors.New("setsockopt: no memory")
		}
		return nil
	}
	s.log.add("answers off")
	if s.failOff {
		return errors.New("setsockopt: no memory")
	}
	return nil
}

// switchingAny is the any-device handle with a filter switch.
type switchingAny struct {
	*fakeHandle
	AnswerSwitch
}

// eventLog is what happened, in order, across goroutines.
type eventLog struct {
	mu     sync.Mutex
	events []string
}

func (l *eventLog) add(e string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.events = append(l.events, e)
}

func (l *eventLog) get() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return slices.Clone(l.events)
}

// release lets the slow handles' Close return.
func (o *fakeOpener) release() { o.released.Do(func() { close(o.gate) }) }

// handlesOf returns the handles opened on name, oldest first.
func (o *fakeOpener) handlesOf(name string) []*fakeHandle {
	o.mu.Lock()
	defer o.mu.Unlock()
	var out []*fakeHandle
	for _, h := range o.handles {
		if h.name == name {
			out = append(out, h)
		}
	}
	return out
}

// opened waits until n handles were opened on name and returns the nth.
func (o *fakeOpener) opened(t *testing.T, name string, n int) *fakeHandle {
	t.Helper()
	for {
		o.mu.Lock()
		change := o.change
		o.mu.Unlock()
		if hs := o.handlesOf(name); len(hs) >= n {
			return hs[n-1]
		}
		recv(t, change, fmt.Sprintf("handle %d on %s", n, name))
	}
}

// only returns the one handle opened on name.
func (o *fakeOpener) only(t *testing.T, name string) *fakeHandle {
	t.Helper()
	hs := o.handlesOf(name)
	if len(hs) != 1 {
		t.Fatalf("%d handles opened on %s, want 1", len(hs), name)
	}
	return hs[0]
}

// names returns the names of every handle opened, sorted.
func (o *fakeOpener) names() []string {
	o.mu.Lock()
	defer o.mu.Unlock()
	var out []string
	for _, h := range o.handles {
		out = append(out, h.name)
	}
	slices.Sort(out)
	return out
}

// all returns every handle opened, and the any handle if OpenAny gave it.
func (o *fakeOpener) all() []*fakeHandle {
	o.mu.Lock()
	defer o.mu.Unlock()
	out := slices.Clone(o.handles)
	if o.withAny {
		out = append(out, o.any)
	}
	return out
}

const (
	ixBridge = 1
	ixVeth1  = 2
	ixVeth2  = 3
	ixVXLAN  = 4
	ixDown   = 5 // veth3: an access port the table still has as down
)

func hwAddr(b byte) net.HardwareAddr { return net.HardwareAddr{0x02, 0, 0, 0, 0x11, b} }

// bridgeMember is an up veth on br0: an access port.
func bridgeMember(index int, name string) link.Link {
	return link.Link{Index: index, Name: name, Kind: "veth", MAC: hwAddr(byte(index)), MasterIndex: ixBridge, Up: true}
}

func testLinks() []link.Link {
	down := bridgeMember(ixDown, "veth3")
	down.Up = false
	return []link.Link{
		{Index: ixBridge, Name: "br0", Kind: "bridge", MAC: hwAddr(ixBridge), Up: true},
		bridgeMember(ixVeth1, "veth1"),
		bridgeMember(ixVeth2, "veth2"),
		{Index: ixVXLAN, Name: "vxlan0", Kind: "vxlan", MAC: hwAddr(ixVXLAN), MasterIndex: ixBridge, Up: true},
		down,
	}
}

// harness is a Manager over testLinks, fed by a fakeOpener, delivering
// onto packets and counting into stats.
type harness struct {
	m       *Manager
	links   *link.Table
	opener  *fakeOpener
	stats   *engine.Counters
	packets chan Packet
	// deliver is the Manager's callback; by default it puts the frame on
	// packets. Set before start.
	deliver func(Packet)

	cancel  context.CancelFunc
	runDone chan struct{} // closed when Run returned
	runErr  error         // what Run returned; read after runDone
}

// newHarness returns a harness whose Manager captures on the links selected
// returns true for (nil: every link). Configure it, then call start.
func newHarness(selected func(link.Link) bool) *harness {
	if selected == nil {
		selected = func(link.Link) bool { return true }
	}
	h := &harness{links: link.NewTable(), opener: newFakeOpener(), stats: engine.NewCounters(), packets: make(chan Packet, 64), runDone: make(chan struct{})}
	h.links.Replace(testLinks())
	h.deliver = func(p Packet) { h.packets <- p }
	h.m = NewManager(h.opener, h.links, selected, func(p Packet) { h.deliver(p) }, slog.New(slog.DiscardHandler), h.stats)
	return h
}

// start runs the Manager until the test ends and returns once Run called
// ready.
func (h *harness) start(t *testing.T) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	h.cancel = cancel
	ready := make(chan struct{})
	go func() {
		defer close(h.runDone)
		h.runErr = h.m.Run(ctx, func() { close(ready) })
	}()
	t.Cleanup(func() {
		cancel()
		h.opener.release()
		recv(t, h.runDone, "Run to return after cancel")
	})
	select {
	case <-ready:
	case <-h.runDone:
		t.Fatalf("Run returned %v before calling ready", h.runErr)
	case <-time.After(deadline):
		t.Fatalf("Run did not call ready within %v", deadline)
	}
}

// waitHeld returns once the manager holds n frames for ifindex, to write
// again when the port runs.
func (h *harness) waitHeld(t *testing.T, ifindex, n int) {
	t.Helper()
	for end := time.Now().Add(deadline); ; runtime.Gosched() {
		h.m.mu.Lock()
		held := len(h.m.held[ifindex].frames)
		h.m.mu.Unlock()
		if held == n {
			return
		}
		if time.Now().After(end) {
			t.Fatalf("%d frames held for ifindex %d after %v, want %d", held, ifindex, deadline, n)
		}
	}
}

// next returns the next delivered frame.
func (h *harness) next(t *testing.T) Packet {
	t.Helper()
	return recv(t, h.packets, "a delivered frame")
}

// delivered returns the frames delivered and not yet taken. Call it after
// settle, which proves every frame that would be delivered was.
func (h *harness) delivered() []Packet {
	var out []Packet
	for {
		select {
		case p := <-h.packets:
			out = append(out, p)
		default:
			return out
		}
	}
}

// counted returns the counters that are not zero, by name.
func (h *harness) counted() map[string]uint64 { return h.stats.Snapshot().Flat() }

// sll2Frame is a Linux cooked v2 record of a RARP request that entered the
// interface ifindex: the 20-byte SLL2 header, then the RARP payload.
func sll2Frame(ifindex uint32) []byte { return sll2Record(0x8035, ifindex) }

// sll2Reply is sll2Frame's record with the ARP EtherType: an answer (the
// manager reads no further than the header).
func sll2Reply(ifindex uint32) []byte { return sll2Record(0x0806, ifindex) }

func sll2Record(proto uint16, ifindex uint32) []byte {
	b := binary.BigEndian.AppendUint16(nil, proto) // protocol
	b = append(b, 0, 0)                            // reserved
	b = binary.BigEndian.AppendUint32(b, ifindex)  // interface index
	b = binary.BigEndian.AppendUint16(b, 1)        // ARPHRD_ETHER
	b = append(b, 0, 6)                            // PACKET_HOST, address length
	b = append(b, hwAddr(0x77)...)                 // address, padded to 8
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
			name:      "every link selected: the up veths, not the bridge, the vxlan member or the down port",
			wantPorts: map[int]string{ixVeth1: "veth1", ixVeth2: "veth2"},
		},
		{
			name:      "one port selected",
			selected:  func(l link.Link) bool { return l.Name == "veth2" },
			wantPorts: map[int]string{ixVeth2: "veth2"},
		},
		{
			name:      "only the down port selected",
			selected:  func(l link.Link) bool { return l.Name == "veth3" },
			wantPorts: map[int]string{},
		},
		{
			name:      "only the bridge and the vxlan member selected",
			selected:  func(l link.Link) bool { return l.Kind == "bridge" || l.Kind == "vxlan" },
			wantPorts: map[int]string{},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newHarness(tt.selected)
			h.start(t)
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
	tests := []struct {
		name       string
		change     func(*link.Table)
		wantOpened []string // ports that get their first handle
		wantClosed []string // ports whose first handle is closed
		wantPorts  map[int]string
	}{
		{
			name:       "port added",
			change:     func(tb *link.Table) { tb.Set(bridgeMember(6, "veth6")) },
			wantOpened: []string{"veth6"},
			wantPorts:  map[int]string{ixVeth1: "veth1", ixVeth2: "veth2", 6: "veth6"},
		},
		{
			name:       "down port comes up",
			change:     func(tb *link.Table) { tb.Set(bridgeMember(ixDown, "veth3")) },
			wantOpened: []string{"veth3"},
			wantPorts:  map[int]string{ixVeth1: "veth1", ixVeth2: "veth2", ixDown: "veth3"},
		},
		{
			name:       "port vanished",
			change:     func(tb *link.Table) { tb.Delete(ixVeth1) },
			wantClosed: []string{"veth1"},
			wantPorts:  map[int]string{ixVeth2: "veth2"},
		},
		{
			name: "port moved under a bond: the bond is the port",
			change: func(tb *link.Table) {
				tb.Set(link.Link{Index: 7, Name: "bond0", Kind: "bond", MAC: hwAddr(7), MasterIndex: ixBridge, Up: true})
				l := bridgeMember(ixVeth1, "veth1")
				l.MasterIndex = 7
				tb.Set(l)
			},
			wantOpened: []string{"bond0"},
			wantClosed: []string{"veth1"},
			wantPorts:  map[int]string{ixVeth2: "veth2", 7: "bond0"},
		},
		{
			name: "port goes down",
			change: func(tb *link.Table) {
				l := bridgeMember(ixVeth1, "veth1")
				l.Up = false
				tb.Set(l)
			},
			wantClosed: []string{"veth1"},
			wantPorts:  map[int]string{ixVeth2: "veth2"},
		},
		{
			name:       "port renamed",
			change:     func(tb *link.Table) { tb.Set(bridgeMember(ixVeth1, "eth-vm1")) },
			wantOpened: []string{"eth-vm1"},
			wantClosed: []string{"veth1"},
			wantPorts:  map[int]string{ixVeth1: "eth-vm1", ixVeth2: "veth2"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newHarness(nil)
			h.start(t)
			veth2 := h.opener.only(t, "veth2")
			tt.change(h.links)
			for _, name := range tt.wantOpened {
				h.opener.opened(t, name, 1)
			}
			for _, name := range tt.wantClosed {
				recv(t, h.opener.opened(t, name, 1).closing, name+"'s handle to be closed")
			}
			// Ports waits for the reconcile that made these changes to end.
			if diff := cmp.Diff(tt.wantPorts, h.m.Ports()); diff != "" {
				t.Errorf("Ports() (-want +got):\n%s", diff)
			}
			wantNames := append([]string{"veth1", "veth2"}, tt.wantOpened...)
			slices.Sort(wantNames)
			if diff := cmp.Diff(wantNames, h.opener.names()); diff != "" {
				t.Errorf("handles opened (-want +got):\n%s", diff)
			}
			// An unaffected port keeps its one handle.
			if hs := h.opener.handlesOf("veth2"); len(hs) != 1 || hs[0] != veth2 || veth2.closeCalled() {
				t.Errorf("veth2 has %d handles, the first closed: %v; want its first one, open", len(hs), veth2.closeCalled())
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
		{name: "untagged on veth1", port: "veth1", ifindex: ixVeth1, data: []byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 1, 2, 3, 4, 5, 6, 0x80, 0x35}},
		{name: "tagged on veth2", port: "veth2", ifindex: ixVeth2, data: []byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 6, 5, 4, 3, 2, 1, 0x81, 0, 0, 10, 0x80, 0x35}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newHarness(nil)
			h.start(t)
			port := h.opener.only(t, tt.port)
			port.push(t, fakeFrame{data: tt.data, at: at})
			port.settle(t)
			want := []Packet{{Data: tt.data, LinkType: layers.LinkTypeEthernet, IfIndex: tt.ifindex, Time: at}}
			if diff := cmp.Diff(want, h.delivered()); diff != "" {
				t.Errorf("delivered (-want +got):\n%s", diff)
			}
			if diff := cmp.Diff(map[string]uint64{}, h.counted()); diff != "" {
				t.Errorf("counters (-want +got):\n%s", diff)
			}
		})
	}
}

func TestManagerPortRateLimit(t *testing.T) {
	const flood = 5
	tests := []struct {
		name          string
		rate          float64
		burst         int
		wantDelivered int // of the flood on veth1, the first ones
	}{
		{name: "no limit", wantDelivered: flood},
		{name: "burst of 2", rate: 0.001, burst: 2, wantDelivered: 2},
		{name: "burst 0 lets one through", rate: 0.001, wantDelivered: 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newHarness(nil)
			h.m.PortRate, h.m.PortBurst = tt.rate, tt.burst
			h.start(t)
			veth1, veth2 := h.opener.only(t, "veth1"), h.opener.only(t, "veth2")
			at := time.Now()
			var want []Packet
			for i := range flood {
				veth1.push(t, fakeFrame{data: []byte{byte(i)}, at: at})
				if i < tt.wantDelivered {
					want = append(want, Packet{Data: []byte{byte(i)}, LinkType: layers.LinkTypeEthernet, IfIndex: ixVeth1, Time: at})
				}
			}
			veth1.settle(t)
			// The flood on veth1 does not use up veth2's budget.
			veth2.push(t, fakeFrame{data: []byte{0xee}, at: at})
			veth2.settle(t)
			want = append(want, Packet{Data: []byte{0xee}, LinkType: layers.LinkTypeEthernet, IfIndex: ixVeth2, Time: at})
			if diff := cmp.Diff(want, h.delivered()); diff != "" {
				t.Errorf("delivered (-want +got):\n%s", diff)
			}
			wantCounted := map[string]uint64{}
			if drops := flood - tt.wantDelivered; drops > 0 {
				wantCounted["drop/port-rate-limit"] = uint64(drops)
			}
			if diff := cmp.Diff(wantCounted, h.counted()); diff != "" {
				t.Errorf("counters (-want +got):\n%s", diff)
			}
		})
	}
}

// arrivingNow is a fakeFrame of data captured when the test case runs.
func arrivingNow(data []byte) func() fakeFrame {
	return func() fakeFrame { return fakeFrame{data: data, at: time.Now()} }
}

func TestManagerAnyDeviceFrames(t *testing.T) {
	tests := []struct {
		name        string
		selected    func(link.Link) bool // nil: every link
		frame       func() fakeFrame
		wantIfIndex int // 0: the frame is not delivered
		wantCounted map[string]uint64
	}{
		{
			name:        "access port without a handle: down in the table",
			frame:       arrivingNow(sll2Frame(ixDown)),
			wantIfIndex: ixDown,
			wantCounted: map[string]uint64{"rarp-via-any": 1},
		},
		{
			name:        "port the table does not know yet",
			frame:       arrivingNow(sll2Frame(77)),
			wantIfIndex: 77,
			wantCounted: map[string]uint64{"rarp-via-any": 1},
		},
		{
			name:        "port whose handle was open before the frame",
			frame:       arrivingNow(sll2Frame(ixVeth1)),
			wantCounted: map[string]uint64{},
		},
		{
			name:        "port whose handle opened after the frame",
			frame:       func() fakeFrame { return fakeFrame{data: sll2Frame(ixVeth1), at: time.Now().Add(-time.Hour)} },
			wantIfIndex: ixVeth1,
			wantCounted: map[string]uint64{"rarp-via-any": 1},
		},
		{
			name:        "answer on an access port without a handle",
			frame:       arrivingNow(sll2Reply(ixDown)),
			wantIfIndex: ixDown,
			wantCounted: map[string]uint64{"reply-via-any": 1},
		},
		{
			name:        "answer on a port whose handle was open before it",
			frame:       arrivingNow(sll2Reply(ixVeth1)),
			wantCounted: map[string]uint64{},
		},
		{
			name:        "answer on the bridge",
			frame:       arrivingNow(sll2Reply(ixBridge)),
			wantCounted: map[string]uint64{},
		},
		{
			name:        "access port not selected",
			selected:    func(l link.Link) bool { return l.Name != "veth3" },
			frame:       arrivingNow(sll2Frame(ixDown)),
			wantCounted: map[string]uint64{},
		},
		{
			name:        "the bridge's copy",
			frame:       arrivingNow(sll2Frame(ixBridge)),
			wantCounted: map[string]uint64{},
		},
		{
			name:        "vxlan member",
			frame:       arrivingNow(sll2Frame(ixVXLAN)),
			wantCounted: map[string]uint64{},
		},
		{
			name:        "truncated before the interface index",
			frame:       arrivingNow(sll2Frame(ixDown)[:7]),
			wantCounted: map[string]uint64{"drop/truncated": 1},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newHarness(tt.selected)
			h.opener.withAny = true
			h.start(t)
			f := tt.frame()
			h.opener.any.push(t, f)
			h.opener.any.settle(t)
			var want []Packet
			if tt.wantIfIndex != 0 {
				want = append(want, Packet{Data: f.data, LinkType: layers.LinkTypeLinuxSLL2, IfIndex: tt.wantIfIndex, Time: f.at})
			}
			if diff := cmp.Diff(want, h.delivered()); diff != "" {
				t.Errorf("delivered (-want +got):\n%s", diff)
			}
			if diff := cmp.Diff(tt.wantCounted, h.counted()); diff != "" {
				t.Errorf("counters (-want +got):\n%s", diff)
			}
		})
	}
}

func TestManagerAnyDeviceWithoutInterfaceIndexes(t *testing.T) {
	h := newHarness(nil)
	h.opener.any = newFakeHandle("any", layers.LinkTypeEthernet)
	h.opener.withAny = true
	h.start(t)
	h.cancel()
	recv(t, h.runDone, "Run to return after cancel")
	// Once Run returned, its any reader has exited.
	if n := h.opener.any.readCalls(); n != 0 {
		t.Errorf("the any handle was read %d times; without SLL2 headers its frames name no interface", n)
	}
}

func TestManagerSend(t *testing.T) {
	frame := []byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 2, 0, 0, 0, 0x11, 1, 0x08, 0x06}
	tests := []struct {
		name     string
		selected func(link.Link) bool // nil: every link
		ifindex  int
		wantVia  string // the port whose handle carries the frame; "": Send fails
	}{
		{name: "port with a handle", ifindex: ixVeth1, wantVia: "veth1"},
		{name: "access port without a handle yet is opened", ifindex: ixDown, wantVia: "veth3"},
		{name: "access port not selected", selected: func(l link.Link) bool { return l.Name != "veth3" }, ifindex: ixDown},
		{name: "bridge", ifindex: ixBridge},
		{name: "vxlan member", ifindex: ixVXLAN},
		{name: "unknown ifindex", ifindex: 99},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newHarness(tt.selected)
			h.start(t)
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
			if diff := cmp.Diff([][]byte{frame}, h.opener.only(t, tt.wantVia).written()); diff != "" {
				t.Errorf("frames written on %s (-want +got):\n%s", tt.wantVia, diff)
			}
		})
	}
}

// directFrame is a frame Manager.Direct was given.
type directFrame struct {
	ifindex int
	frame   []byte
}

// TestManagerSendWhileOpening: a port created a moment ago is having its
// handle opened (slowly: RCU grace periods) when its RARP's probes are
// sent. Send returns at once, so that the capture goroutine goes on with
// the next RARP. With Direct, and the kernel reporting the port running,
// the probes leave at once through Direct; else they are queued and leave
// once the handle is open, through it (before the kernel runs the port's
// link-watch work, what is sent on it is dropped).
func TestManagerSendWhileOpening(t *testing.T) {
	tests := []struct {
		name       string
		direct     bool
		running    bool
		wantDirect bool
	}{
		{name: "no Direct", running: true},
		{name: "Direct, port running", direct: true, running: true, wantDirect: true},
		{name: "Direct, port not running yet", direct: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newHarness(nil)
			gate := make(chan struct{})
			h.opener.openGate = map[string]chan struct{}{"veth6": gate}
			h.opener.openEntered = make(chan string, 1)
			h.opener.wrote = make(chan string, 4)
			direct := make(chan directFrame, 4)
			if tt.direct {
				h.m.Direct = func(ifindex int, frame []byte) error {
					direct <- directFrame{ifindex, frame}
					return nil
				}
			}
			h.start(t)
			released := false
			t.Cleanup(func() {
				if !released {
					close(gate)
				}
			})
			veth6 := bridgeMember(6, "veth6")
			veth6.Running = tt.running
			h.links.Set(veth6)
			recv(t, h.opener.openEntered, "veth6's handle to be opening")
			probes := [][]byte{{1, 2, 3}, {4, 5, 6}}
			done := make(chan error, 1)
			go func() {
				for _, f := range probes {
					if err := h.m.Send(6, f); err != nil {
						done <- err
						return
					}
				}
				done <- nil
			}()
			if err := recv(t, done, "Send to return while veth6's handle is being opened"); err != nil {
				t.Fatalf("Send: %v", err)
			}
			var want []directFrame
			if tt.wantDirect {
				for _, f := range probes {
					want = append(want, directFrame{6, f})
				}
			}
			close(gate)
			released = true
			var viaHandle [][]byte
			if !tt.wantDirect {
				viaHandle = probes
				for range probes {
					if name := recv(t, h.opener.wrote, "a queued probe to be written"); name != "veth6" {
						t.Fatalf("a frame was written on %s, want veth6", name)
					}
				}
			}
			var got []directFrame
			for len(got) < len(want) {
				got = append(got, recv(t, direct, "a frame through Direct"))
			}
			h.opener.opened(t, "veth6", 1)
			if diff := cmp.Diff(want, got, cmp.AllowUnexported(directFrame{})); diff != "" {
				t.Errorf("frames through Direct (-want +got):\n%s", diff)
			}
			if diff := cmp.Diff(viaHandle, h.opener.only(t, "veth6").written()); diff != "" {
				t.Errorf("frames written on veth6's handle (-want +got):\n%s", diff)
			}
			if !tt.running {
				// Written while the port did not run: again once it does.
				// The open holds them just after writing them; wait for
				// that, or the port runs first and nothing is held.
				h.waitHeld(t, 6, len(probes))
				veth6.Running = true
				h.links.Set(veth6)
				for range probes {
					recv(t, h.opener.wrote, "a held probe to be written again")
				}
				if diff := cmp.Diff(append(slices.Clone(probes), probes...), h.opener.only(t, "veth6").written()); diff != "" {
					t.Errorf("frames written on veth6's handle once it runs (-want +got):\n%s", diff)
				}
			}
			select {
			case f := <-direct:
				t.Errorf("one more frame through Direct: %v", f)
			default:
			}
		})
	}
}

// TestManagerSendDirectOpensAside: Send for a running access port that has
// no handle and none being opened (the any-device handle caught its RARP
// before the manager saw the port) writes through Direct at once and opens
// the handle aside; the next frames, once it is open, go through it.
func TestManagerSendDirectOpensAside(t *testing.T) {
	var selectVeth6 atomic.Bool
	h := newHarness(func(l link.Link) bool { return l.Name != "veth6" || selectVeth6.Load() })
	direct := make(chan directFrame, 4)
	h.m.Direct = func(ifindex int, frame []byte) error {
		direct <- directFrame{ifindex, frame}
		return nil
	}
	h.start(t)
	veth6 := bridgeMember(6, "veth6")
	veth6.Running = true
	h.links.Set(veth6) // not selected yet: no handle, none opening
	// A port opened after veth6 was set: the manager has reconciled the
	// table with veth6 in it, so it will not open veth6 on its own now.
	h.links.Set(bridgeMember(7, "veth7"))
	h.opener.opened(t, "veth7", 1)
	selectVeth6.Store(true)
	if err := h.m.Send(6, []byte{1, 2, 3}); err != nil {
		t.Fatalf("Send: %v", err)
	}
	if diff := cmp.Diff(directFrame{6, []byte{1, 2, 3}}, recv(t, direct, "the frame through Direct"), cmp.AllowUnexported(directFrame{})); diff != "" {
		t.Errorf("frame through Direct (-want +got):\n%s", diff)
	}
	hv := h.opener.opened(t, "veth6", 1)
	// Its reader runs, so the port is registered.
	at := time.Now()
	hv.push(t, fakeFrame{data: []byte{7}, at: at})
	if diff := cmp.Diff(Packet{Data: []byte{7}, LinkType: layers.LinkTypeEthernet, IfIndex: 6, Time: at}, h.next(t)); diff != "" {
		t.Errorf("frame on veth6's handle (-want +got):\n%s", diff)
	}
	if err := h.m.Send(6, []byte{4, 5, 6}); err != nil {
		t.Fatalf("Send: %v", err)
	}
	if diff := cmp.Diff([][]byte{{4, 5, 6}}, hv.written()); diff != "" {
		t.Errorf("frames written on veth6's handle (-want +got):\n%s", diff)
	}
}

func TestManagerSendNotRunning(t *testing.T) {
	tests := []struct {
		name string
		ran  bool // Run, then cancel it, before Send
	}{
		{name: "before Run"},
		{name: "after Run returned", ran: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newHarness(nil)
			if tt.ran {
				h.start(t)
				h.cancel()
				recv(t, h.runDone, "Run to return after cancel")
			}
			before := h.opener.names()
			if err := h.m.Send(ixDown, []byte{1}); err == nil {
				t.Error("Send succeeded on a manager that is not running")
			}
			if diff := cmp.Diff(before, h.opener.names()); diff != "" {
				t.Errorf("Send opened handles (-before +after):\n%s", diff)
			}
		})
	}
}

func TestManagerReadError(t *testing.T) {
	veth6 := bridgeMember(6, "veth6")
	tests := []struct {
		name       string
		change     func(*link.Table) // after the error; nil: none
		wantReopen bool
		wantPorts  map[int]string
	}{
		{
			name:       "link still there: reopened on the next table change",
			change:     func(tb *link.Table) { tb.Set(veth6) },
			wantReopen: true,
			wantPorts:  map[int]string{ixVeth1: "veth1", ixVeth2: "veth2", 6: "veth6"},
		},
		{
			name:       "link still there: reopened by the retry tick",
			wantReopen: true,
			wantPorts:  map[int]string{ixVeth1: "veth1", ixVeth2: "veth2"},
		},
		{
			name: "link gone: stays closed",
			change: func(tb *link.Table) {
				tb.Delete(ixVeth1)
				tb.Set(veth6)
			},
			wantPorts: map[int]string{ixVeth2: "veth2", 6: "veth6"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newHarness(nil)
			h.start(t)
			first := h.opener.only(t, "veth1")
			first.push(t, fakeFrame{err: errors.New("read: network is down")})
			recv(t, first.closing, "veth1's failed handle to be closed")
			if tt.change != nil {
				tt.change(h.links)
				// veth6's handle proves a reconcile ran after the change.
				h.opener.opened(t, "veth6", 1)
			}
			if !tt.wantReopen {
				if diff := cmp.Diff(tt.wantPorts, h.m.Ports()); diff != "" {
					t.Errorf("Ports() (-want +got):\n%s", diff)
				}
				// The retry tick may have reopened veth1 before the delete;
				// no handle may stay open on it.
				for i, sh := range h.opener.handlesOf("veth1") {
					if !sh.closeCalled() {
						t.Errorf("veth1's handle %d is open, the link is gone", i)
					}
				}
				return
			}
			second := h.opener.opened(t, "veth1", 2)
			at := time.Now()
			second.push(t, fakeFrame{data: []byte{7}, at: at})
			want := Packet{Data: []byte{7}, LinkType: layers.LinkTypeEthernet, IfIndex: ixVeth1, Time: at}
			if diff := cmp.Diff(want, h.next(t)); diff != "" {
				t.Errorf("frame on the reopened handle (-want +got):\n%s", diff)
			}
			// Its reader runs, so the port is registered (Open returning
			// is not enough: the manager registers the handle after).
			if diff := cmp.Diff(tt.wantPorts, h.m.Ports()); diff != "" {
				t.Errorf("Ports() (-want +got):\n%s", diff)
			}
		})
	}
}

func TestManagerShutdown(t *testing.T) {
	tests := []struct {
		name    string
		withAny bool
		slow    []string // port handles whose Close blocks until released
	}{
		{name: "without the any device"},
		{name: "with the any device", withAny: true},
		// Not veth3: its handle, opened on demand while the table has the
		// port as down, may be closed by a reconcile before the cancel.
		{name: "port handles close in parallel", withAny: true, slow: []string{"veth1", "veth2"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newHarness(nil)
			h.opener.withAny = tt.withAny
			h.opener.slow = map[string]bool{}
			for _, name := range tt.slow {
				h.opener.slow[name] = true
			}
			h.start(t)
			// A handle opened on demand is closed too. A reconcile (the
			// table's notification from before Run, or the ticker) may
			// close it, as the port is down, before the frame is written:
			// then Send fails, and the handle was still opened and closed.
			if err := h.m.Send(ixDown, []byte{1}); err != nil && !errors.Is(err, errClosed) {
				t.Fatal(err)
			}
			h.cancel()
			// Closing a packet socket waits for an RCU grace period: every
			// slow Close is under way at once, none waits for another.
			for _, name := range tt.slow {
				recv(t, h.opener.only(t, name).closing, name+"'s Close while the other slow ones are under way")
			}
			h.opener.release()
			recv(t, h.runDone, "Run to return after cancel")
			if h.runErr != nil {
				t.Errorf("Run returned %v, want nil", h.runErr)
			}
			// The any handle is TestManagerRunWaits's.
			var ports []string
			for _, sh := range h.opener.all() {
				if sh == h.opener.any {
					continue
				}
				ports = append(ports, sh.name)
				if !sh.closeReturned() {
					t.Errorf("%s's handle not closed when Run returned", sh.name)
				}
			}
			slices.Sort(ports)
			if diff := cmp.Diff([]string{"veth1", "veth2", "veth3"}, ports); diff != "" {
				t.Errorf("port handles opened (-want +got):\n%s", diff)
			}
			if diff := cmp.Diff(map[int]string{}, h.m.Ports()); diff != "" {
				t.Errorf("Ports() after Run returned (-want +got):\n%s", diff)
			}
		})
	}
}

// TestManagerRunWaits runs in a synctest bubble: synctest.Wait returns once
// every other goroutine of the test is blocked, which proves that Run, were
// it to return without waiting for what is still under way, would have
// returned by then. (A goroutine waiting for a mutex is not blocked in that
// sense: were the Manager to hold its lock across a blocked call, the test
// would end at go test's -timeout instead.)
func TestManagerRunWaits(t *testing.T) {
	tests := []struct {
		name    string
		hold    bool // veth1's reader is inside deliver at cancel
		slowAny bool // the any handle's Close blocks until released
	}{
		{name: "for a reader inside deliver", hold: true},
		{name: "for the any handle to close", slowAny: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				h := newHarness(nil)
				h.opener.withAny = true
				h.opener.slow = map[string]bool{"any": tt.slowAny}
				hold := make(chan struct{})
				if tt.hold {
					h.deliver = func(Packet) { <-hold }
				}
				h.start(t)
				if tt.hold {
					h.opener.only(t, "veth1").push(t, fakeFrame{data: []byte{1}, at: time.Now()})
				}
				h.cancel()
				synctest.Wait()
				if isClosed(h.runDone) {
					t.Error("Run returned while a reader was inside deliver or a handle was closing")
				}
				close(hold)
				h.opener.release()
				recv(t, h.runDone, "Run to return after cancel")
				for _, sh := range h.opener.all() {
					if !sh.closeReturned() {
						t.Errorf("%s's handle not closed when Run returned", sh.name)
					}
				}
			})
		})
	}
}

// TestManagerSlowPortClose: closing a packet socket waits for an RCU grace
// period (tens of ms, see Run), so a port that vanishes must not hold up
// the other ports' sends or a new port's RARP meanwhile.
func TestManagerSlowPortClose(t *testing.T) {
	tests := []struct {
		name string
		do   func(t *testing.T, h *harness)
	}{
		{
			name: "Send on another port",
			do: func(t *testing.T, h *harness) {
				done := make(chan error, 1)
				go func() { done <- h.m.Send(ixVeth2, []byte{1}) }()
				if err := recv(t, done, "Send on veth2 while veth1 closes"); err != nil {
					t.Errorf("Send on veth2: %v", err)
				}
			},
		},
		{
			name: "a new port's RARP on the any device",
			do: func(t *testing.T, h *harness) {
				h.opener.any.push(t, fakeFrame{data: sll2Frame(ixDown), at: time.Now()})
				if p := h.next(t); p.IfIndex != ixDown {
					t.Errorf("delivered a frame from ifindex %d, want %d", p.IfIndex, ixDown)
				}
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newHarness(nil)
			h.opener.withAny = true
			h.opener.slow = map[string]bool{"veth1": true}
			h.start(t)
			h.links.Delete(ixVeth1)
			recv(t, h.opener.only(t, "veth1").closing, "veth1's handle to be closing")
			tt.do(t, h)
		})
	}
}

func TestManagerStats(t *testing.T) {
	tests := []struct {
		name  string
		veth2 *fakeCounters // nil: a handle without kernel counters
		want  map[string]PortStats
	}{
		{
			name:  "every port with counters",
			veth2: &fakeCounters{received: 7, dropped: 1},
			want:  map[string]PortStats{"veth1": {Received: 10, Dropped: 2}, "veth2": {Received: 7, Dropped: 1}},
		},
		{
			name:  "a handle whose counters fail is left out",
			veth2: &fakeCounters{err: errors.New("stats: no such device")},
			want:  map[string]PortStats{"veth1": {Received: 10, Dropped: 2}},
		},
		{
			name: "a handle without counters is left out",
			want: map[string]PortStats{"veth1": {Received: 10, Dropped: 2}},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newHarness(nil)
			h.opener.counters = map[string]*fakeCounters{"veth1": {received: 10, dropped: 2}}
			if tt.veth2 != nil {
				h.opener.counters["veth2"] = tt.veth2
			}
			h.start(t)
			if diff := cmp.Diff(tt.want, h.m.Stats()); diff != "" {
				t.Errorf("Stats() (-want +got):\n%s", diff)
			}
			// A port that vanished leaves the counters with its handle.
			h.links.Delete(ixVeth1)
			recv(t, h.opener.only(t, "veth1").closing, "veth1's handle to be closed")
			delete(tt.want, "veth1")
			if diff := cmp.Diff(tt.want, h.m.Stats()); diff != "" {
				t.Errorf("Stats() after veth1 vanished (-want +got):\n%s", diff)
			}
		})
	}
}

// TestManagerHoldsUntilRunning: a frame written on a port the kernel does
// not report running yet (its link-watch work pending: the kernel drops
// what is sent on it) is written again once the port runs, and only then;
// a frame written on a running port is not held.
func TestManagerHoldsUntilRunning(t *testing.T) {
	h := newHarness(nil)
	h.opener.wrote = make(chan string, 8)
	h.start(t)
	veth6 := bridgeMember(6, "veth6")
	h.links.Set(veth6)
	hv := h.opener.opened(t, "veth6", 1)
	if err := h.m.Send(6, []byte{1}); err != nil {
		t.Fatalf("Send: %v", err)
	}
	recv(t, h.opener.wrote, "the frame written")
	veth6.Running = true
	h.links.Set(veth6)
	recv(t, h.opener.wrote, "the held frame written again once veth6 runs")
	if err := h.m.Send(6, []byte{2}); err != nil {
		t.Fatalf("Send: %v", err)
	}
	recv(t, h.opener.wrote, "the second frame written")
	// Another change of the table flushes nothing more: the second frame
	// left a running port and was not held.
	veth6.Running = false
	h.links.Set(veth6)
	veth6.Running = true
	h.links.Set(veth6)
	// Two more reconciliations: the second starts after the first's flush.
	h.links.Set(bridgeMember(7, "veth7"))
	h.opener.opened(t, "veth7", 1)
	h.links.Set(bridgeMember(8, "veth8"))
	h.opener.opened(t, "veth8", 1)
	if diff := cmp.Diff([][]byte{{1}, {1}, {2}}, hv.written()); diff != "" {
		t.Errorf("frames written on veth6 (-want +got):\n%s", diff)
	}
}

// TestManagerAnyDeviceNewPortFirstView: only bridge members are served (the
// daemon's default), and the table still holds a new port as the kernel
// first announced it, not yet enslaved. A RARP on it is not skipped: the
// manager reads the port again and delivers the RARP when the kernel has it
// in the bridge by then. Only RARPs on such stand-alone ports are worth the
// read; not the bridge's copy, not an answer.
func TestManagerAnyDeviceNewPortFirstView(t *testing.T) {
	const ix = 9
	standalone := link.Link{Index: ix, Name: "veth9", Kind: "veth", MAC: hwAddr(ix), Up: true}
	tests := []struct {
		name        string
		frame       []byte
		kernel      link.Link
		wantIfIndex int
		wantReads   int
	}{
		{name: "enslaved in the kernel", frame: sll2Frame(ix), kernel: bridgeMember(ix, "veth9"), wantIfIndex: ix, wantReads: 1},
		{name: "stand-alone in the kernel too", frame: sll2Frame(ix), kernel: standalone, wantReads: 1},
		{name: "the bridge's copy", frame: sll2Frame(ixBridge), kernel: bridgeMember(ix, "veth9")},
		{name: "an answer", frame: sll2Reply(ix), kernel: bridgeMember(ix, "veth9")},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var h *harness
			h = newHarness(func(l link.Link) bool {
				m, ok := h.links.Get(l.MasterIndex)
				return ok && m.Kind == "bridge"
			})
			h.opener.withAny = true
			h.links.Set(standalone)
			var reads atomic.Int32
			h.links.Refresh = func(index int) (link.Link, error) {
				reads.Add(1)
				if index != ix {
					return link.Link{}, errors.New("no such link")
				}
				return tt.kernel, nil
			}
			h.start(t)
			f := fakeFrame{data: tt.frame, at: time.Now()}
			h.opener.any.push(t, f)
			h.opener.any.settle(t)
			var want []Packet
			if tt.wantIfIndex != 0 {
				want = append(want, Packet{Data: f.data, LinkType: layers.LinkTypeLinuxSLL2, IfIndex: tt.wantIfIndex, Time: f.at})
			}
			if diff := cmp.Diff(want, h.delivered()); diff != "" {
				t.Errorf("delivered (-want +got):\n%s", diff)
			}
			if got := int(reads.Load()); got != tt.wantReads {
				t.Errorf("links read again %d times, want %d", got, tt.wantReads)
			}
		})
	}
}

// TestManagerAnswerLease: the any-device handle captures answers only
// while a probe that left through a port without a handle of its own may
// be answered. It is switched before that probe leaves (else the answer
// could come first), and once per lease, not per probe; a probe through a
// port's own handle needs no switch; the lease ends AnswerLease after the
// last such probe, and a later probe starts a new one. A switch that fails
// on is tried again with the next probe; one that fails off leaves the
// handle capturing answers for good. Without a lease the handle captures
// answers throughout.
func TestManagerAnswerLease(t *testing.T) {
	const lease = time.Hour
	tests := []struct {
		name            string
		lease           time.Duration
		failOn, failOff bool
		// events after two probes on a new port, and whether the handle
		// captures answers then
		sends     []string
		capturing bool
		// events after the lease passed and a retry left, and whether the
		// handle captures answers then, and after that retry's lease
		after                  []string
		capturingAfter, atLast bool
	}{
		{name: "lease", lease: lease,
			sends: []string{"answers on", "direct", "direct"}, capturing: true,
			after: []string{"answers on", "direct", "direct", "answers off", "answers on", "direct"}, capturingAfter: true},
		{name: "switching on fails", lease: lease, failOn: true,
			sends: []string{"answers on", "direct", "answers on", "direct"},
			after: []string{"answers on", "direct", "answers on", "direct", "answers on", "direct"}},
		{name: "switching off fails", lease: lease, failOff: true,
			sends: []string{"answers on", "direct", "direct"}, capturing: true,
			after: []string{"answers on", "direct", "direct", "answers off", "direct"}, capturingAfter: true, atLast: true},
		{name: "no lease",
			sends: []string{"answers on", "direct", "direct"}, capturing: true,
			after: []string{"answers on", "direct", "direct", "direct"}, capturingAfter: true, atLast: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newHarness(nil)
			events := &eventLog{}
			h.opener.withAny = true
			fs := &fakeSwitch{log: events, failOn: tt.failOn, failOff: tt.failOff}
			h.opener.anyHandle = func(any *fakeHandle) Handle { return switchingAny{any, fs} }
			gate := make(chan struct{})
			h.opener.openGate = map[string]chan struct{}{"veth6": gate}
			h.opener.openEntered = make(chan string, 1)
			h.m.AnswerLease = tt.lease
			var clock atomic.Pointer[time.Time] // Run checks the lease too
			clock.Store(new(time.Now()))
			now := func() time.Time { return *clock.Load() }
			advance := func(d time.Duration) { clock.Store(new(now().Add(d))) }
			h.m.now = now
			h.m.Direct = func(int, []byte) error {
				events.add("direct")
				return nil
			}
			h.start(t)
			t.Cleanup(func() { close(gate) }) // before Run's end is awaited
			send := func(ifindex int) {
				t.Helper()
				if err := h.m.Send(ifindex, []byte{byte(ifindex)}); err != nil {
					t.Fatal(err)
				}
			}
			// A port with a handle of its own: no switch.
			h.opener.opened(t, "veth1", 1)
			send(ixVeth1)
			veth6 := bridgeMember(6, "veth6")
			veth6.Running = true
			h.links.Set(veth6)
			recv(t, h.opener.openEntered, "veth6's handle to be opening")
			send(6)
			advance(lease / 2)
			send(6) // renews the lease
			if diff := cmp.Diff(tt.sends, events.get()); diff != "" {
				t.Errorf("after two probes on veth6 (-want +got):\n%s", diff)
			}
			if got := h.m.CapturingAnswers(); got != tt.capturing {
				t.Errorf("CapturingAnswers after two probes on veth6: %v, want %v", got, tt.capturing)
			}
			h.m.answersExpire(now().Add(lease - time.Second)) // within the renewed lease: nothing
			if diff := cmp.Diff(tt.sends, events.get()); diff != "" {
				t.Errorf("within the lease the second probe renewed (-want +got):\n%s", diff)
			}
			h.m.answersExpire(now().Add(lease + time.Second))
			h.m.answersExpire(now().Add(2 * lease)) // nothing more
			advance(2 * lease)
			send(6) // a retry
			if diff := cmp.Diff(tt.after, events.get()); diff != "" {
				t.Errorf("after the lease and a retry (-want +got):\n%s", diff)
			}
			if got := h.m.CapturingAnswers(); got != tt.capturingAfter {
				t.Errorf("CapturingAnswers after the retry: %v, want %v", got, tt.capturingAfter)
			}
			h.m.answersExpire(now().Add(lease + time.Second))
			if got := h.m.CapturingAnswers(); got != tt.atLast {
				t.Errorf("CapturingAnswers after the retry's lease: %v, want %v", got, tt.atLast)
			}
		})
	}
}

// TestManagerAnswerLeaseRandom drives the answer lease through random
// sequences of probes on a port with a handle and on one without, clock
// steps and lease checks, and holds it to what the any-device handle must
// do: capture answers whenever a probe leaves without its port's handle
// (checked as Direct is called), and exactly while the last such probe is
// less than AnswerLease old (checked after each lease check); and switch
// only when the state changes.
func TestManagerAnswerLeaseRandom(t *testing.T) {
	seed := uint64(time.Now().UnixNano())
	t.Logf("seed %d", seed)
	r := rand.New(rand.NewPCG(seed, 2))
	const lease = 2 * time.Second
	h := newHarness(nil)
	sw := &stateSwitch{}
	h.opener.withAny = true
	h.opener.anyHandle = func(any *fakeHandle) Handle { return switchingAny{any, sw} }
	gate := make(chan struct{})
	h.opener.openGate = map[string]chan struct{}{"veth6": gate}
	h.opener.openEntered = make(chan string, 1)
	h.m.AnswerLease = lease
	var clock atomic.Pointer[time.Time]
	clock.Store(new(time.Unix(1_700_000_000, 0)))
	now := func() time.Time { return *clock.Load() }
	h.m.now = now
	var violations atomic.Int64
	h.m.Direct = func(int, []byte) error {
		if !sw.isOn() {
			violations.Add(1)
		}
		return nil
	}
	h.start(t)
	t.Cleanup(func() { close(gate) })
	h.opener.opened(t, "veth1", 1)
	veth6 := bridgeMember(6, "veth6")
	veth6.Running = true
	h.links.Set(veth6)
	recv(t, h.opener.openEntered, "veth6's handle to be opening")
	var last time.Time // the last probe without a handle
	for step := range 2000 {
		switch op := r.IntN(4); op {
		case 0: // a probe through veth1's handle
			if err := h.m.Send(ixVeth1, []byte{1}); err != nil {
				t.Fatal(err)
			}
		case 1: // a probe on veth6, whose handle is still opening
			if err := h.m.Send(6, []byte{6}); err != nil {
				t.Fatal(err)
			}
			last = now()
		case 2:
			clock.Store(new(now().Add(time.Duration(r.Int64N(int64(3 * lease / 2))))))
		case 3:
			h.m.answersExpire(now())
			want := !last.IsZero() && now().Before(last.Add(lease))
			if got := sw.isOn(); got != want {
				t.Fatalf("step %d (seed %d): answers captured %v at %v, last probe without a handle at %v, lease %v",
					step, seed, got, now(), last, lease)
			}
		}
		if v := violations.Load(); v > 0 {
			t.Fatalf("step %d (seed %d): a probe left without its port's handle while the any-device handle took no answers", step, seed)
		}
	}
	if sw.redundant.Load() > 0 {
		t.Errorf("seed %d: %d switches to the state the handle was in", seed, sw.redundant.Load())
	}
	if sw.switches.Load() == 0 {
		t.Errorf("seed %d: never switched: the sequence proves nothing", seed)
	}
}

// stateSwitch is a filter switch that keeps its state, and counts
// switches and switches to the state it was in.
type stateSwitch struct {
	mu                  sync.Mutex
	on                  bool
	switches, redundant atomic.Int64
}

func (s *stateSwitch) CaptureAnswers(on bool) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.on == on {
		s.redundant.Add(1)
	}
	s.on = on
	s.switches.Add(1)
	return nil
}

func (s *stateSwitch) isOn() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.on
}

// TestManagerAnswersWhenHandleCloses: a port's handle that closes (here, a
// read error; a renamed port is closed the same way) may leave a probe it
// sent unanswered but for the any-device handle, which takes answers from
// then on, for a lease.
func TestManagerAnswersWhenHandleCloses(t *testing.T) {
	h := newHarness(nil)
	sw := &stateSwitch{}
	h.opener.withAny = true
	h.opener.anyHandle = func(any *fakeHandle) Handle { return switchingAny{any, sw} }
	h.m.AnswerLease = time.Hour
	h.start(t)
	veth1 := h.opener.opened(t, "veth1", 1)
	if err := h.m.Send(ixVeth1, []byte{1}); err != nil {
		t.Fatal(err)
	}
	if sw.isOn() {
		t.Fatal("answers captured after a probe through veth1's own handle")
	}
	veth1.push(t, fakeFrame{err: errors.New("read: network is down")})
	recv(t, veth1.closing, "veth1's handle to be closed after its read error")
	h.opener.opened(t, "veth1", 2) // read again, and the manager has moved on
	if !sw.isOn() {
		t.Error("veth1's handle closed, and the any-device handle takes no answers")
	}
}
