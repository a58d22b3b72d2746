package capture

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"time"

	"github.com/gopacket/gopacket/layers"
	"github.com/rarp-replay/rarp-replay/internal/engine"
	"github.com/rarp-replay/rarp-replay/internal/link"
	"github.com/rarp-replay/rarp-replay/internal/packet"
	"golang.org/x/time/rate"
)

// replyFilter matches what verification needs besides the RARP itself: ARP
// replies and Neighbor Advertisements.
const replyFilter = "(rarp or (arp and arp[6:2] = 2) or (icmp6 and ip6[40] = 136))"

// PortFilter is the BPF filter of a port handle: RARP, ARP replies and
// Neighbor Advertisements, untagged, 802.1Q-tagged or QinQ. In libpcap every
// "vlan" shifts the offsets of what follows it, hence the nesting.
const PortFilter = replyFilter + " or (vlan and (" + replyFilter + " or (vlan and " + replyFilter + ")))"

// AnyFilter is the BPF filter of the "any" handle while it takes answers
// too: RARPs and answers on ports whose own handle is not open yet, a new
// port's RARP and its VM's answers to the probes sent meanwhile
// (Manager.Direct). libpcap has no "vlan" for cooked (SLL2) captures; the
// kernel hands tagged frames to the any device with the tag already
// removed when the NIC or bridge strips it.
const AnyFilter = replyFilter

// AnyRARPFilter is the "any" handle's filter while no probe awaits an
// answer only it would see (AnswerSwitch): every ARP reply and NA the leaf
// receives, on each port and again on its bridge, would otherwise wake it.
const AnyRARPFilter = "rarp"

// AnswerSwitch is an any-device Handle whose kernel filter switches
// between AnyRARPFilter and AnyFilter without losing a frame both pass.
type AnswerSwitch interface {
	CaptureAnswers(on bool) error
}

// ErrTimeout is what a Handle's ReadPacketData returns when its read timeout
// expired with no frame.
var ErrTimeout = errors.New("capture: read timeout")

// Opener opens capture handles. Both kinds capture inbound frames only.
type Opener interface {
	// Open opens a handle on the port l, filtered with PortFilter, able to
	// send.
	Open(l link.Link) (Handle, error)
	// OpenAny opens a handle on all interfaces with Linux cooked (SLL2)
	// headers, which record the interface index, filtered with AnyFilter.
	OpenAny() (Handle, error)
}

// Manager keeps one handle per selected access port, opening and closing
// them as the link table changes, and hands each frame they capture to its
// callback on the goroutine that captured it: no queue and no goroutine hop
// between a RARP and its probes.
type Manager struct {
	opener   Opener
	links    *link.Table
	selected func(link.Link) bool
	deliver  func(Packet)
	log      *slog.Logger
	stats    *engine.Counters

	// PortRate and PortBurst bound the frames one port may feed the
	// decision loop, per second; beyond them frames are dropped as
	// "drop/port-rate-limit", so a flood on one port cannot starve the
	// others. Zero: no limit. Set before Run.
	PortRate  float64
	PortBurst int

	// Direct, when set, writes a frame out of a port without its handle.
	// Send uses it for a port whose handle is being opened, so that a new
	// port's probes need not wait for the open (milliseconds of RCU grace
	// periods in the kernel); the any-device handle takes the answers
	// until the port's own handle is open. Nil: such frames are queued and
	// written once the handle is open. Set before Run.
	Direct func(ifindex int, frame []byte) error

	// AnswerLease is how long the any-device handle keeps capturing
	// answers after a probe left through a port without a handle of its
	// own: the longest a probe waits for its answer
	// (engine.Config.LongestWait). Until then, and once it has passed, the
	// handle captures RARPs only, when it can switch (AnswerSwitch). Zero:
	// it captures answers throughout. Set before Run.
	AnswerLease time.Duration

	now func() time.Time // the clock of the answer lease; a test's own

	// answers is the any-device handle's filter state.
	answers struct {
		sync.Mutex
		sw    AnswerSwitch // nil: no switching, answers captured throughout
		on    bool         // answers captured
		until time.Time    // the lease's end
	}

	mu    sync.Mutex
	ports map[int]*port
	// opening holds the ports whose handle is being opened, outside mu.
	opening map[int]bool
	// queued holds the frames Send took for a port whose handle is being
	// opened; the opener writes them once it is open.
	queued map[int][][]byte
	// held keeps a copy of the frames written on a port the kernel did not
	// report running yet (a port created a moment ago, whose link-watch
	// work has not attached its queue discipline: the kernel drops what is
	// sent on it without an error). They are written again once the port
	// runs, or forgotten after holdFor.
	held    map[int]heldFrames
	rereads *rate.Limiter // servesNow's netlink reads
	ctx     context.Context
	wg      sync.WaitGroup
}

// openParallel bounds the handles opened at once. Opening one takes
// milliseconds, mostly waiting: the kernel waits for RCU grace periods
// when it binds a packet socket and sets up its ring, and gopacket lists
// every interface (one netlink dump) to find the index. Opened one after
// another under the manager's lock, the ports of 200 VMs created within a
// second took seconds, and every RARP and probe waited behind them.
const openParallel = 16

// rereadLimit bounds servesNow's reads of a link, per second.
const rereadLimit = 20

// holdFor bounds how long frames wait for their port to run (a port whose
// driver never reports an operational state stays "unknown").
const holdFor = 2 * time.Second

type heldFrames struct {
	since  time.Time
	frames [][]byte
}

type port struct {
	name  string
	h     Handle
	since time.Time // when the handle started capturing
	limit *rate.Limiter
}

// StatsHandle is a Handle that reports the kernel's counters (libpcap's).
type StatsHandle interface {
	Stats() (received, dropped int, err error)
}

// PortStats is what the kernel counted for one port's handle.
type PortStats struct {
	Received, Dropped int
}

// Stats returns the kernel's counters for every open port handle, by name.
func (m *Manager) Stats() map[string]PortStats {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := make(map[string]PortStats, len(m.ports))
	for _, p := range m.ports {
		if sh, ok := p.h.(StatsHandle); ok {
			if r, d, err := sh.Stats(); err == nil {
				out[p.name] = PortStats{Received: r, Dropped: d}
			}
		}
	}
	return out
}

// NewManager returns a manager that captures on the access ports in links
// for which selected returns true and calls deliver with every frame. It
// counts into stats the frames it discards (over a port's rate, truncated)
// and those only the any-device handle caught.
func NewManager(opener Opener, links *link.Table, selected func(link.Link) bool, deliver func(Packet), log *slog.Logger, stats *engine.Counters) *Manager {
	return &Manager{opener: opener, links: links, selected: selected, deliver: deliver, log: log, stats: stats,
		ports: make(map[int]*port), opening: make(map[int]bool), queued: make(map[int][][]byte), held: make(map[int]heldFrames),
		rereads: rate.NewLimiter(rereadLimit, rereadLimit), now: time.Now}
}

// Run captures until ctx ends, then closes every handle and returns once
// every reader goroutine has exited. It calls ready, when not nil, once the
// handles of the ports present at start are open.
func (m *Manager) Run(ctx context.Context, ready func()) error {
	m.mu.Lock()
	m.ctx = ctx
	m.mu.Unlock()
	anyHandle, err := m.opener.OpenAny()
	if err != nil {
		m.log.Warn("no capture on the any device: a RARP in the first milliseconds of a new port can be missed", "err", err)
	} else {
		m.useAnswerSwitch(anyHandle)
		m.wg.Go(func() { m.readAny(ctx, anyHandle) })
	}
	retry := time.NewTicker(time.Second)
	defer retry.Stop()
	for {
		m.reconcile()
		m.flushHeld()
		m.answersExpire(m.now())
		if ready != nil {
			ready()
			ready = nil
		}
		select {
		case <-ctx.Done():
			// Closing a packet socket waits for an RCU grace period in the
			// kernel (tens of ms): close them all at once, not one by one.
			var closing sync.WaitGroup
			m.answers.Lock()
			m.answers.sw = nil // closed below; late probes leave it be
			m.answers.Unlock()
			if anyHandle != nil {
				closing.Go(anyHandle.Close)
			}
			m.mu.Lock()
			for idx, p := range m.ports {
				closing.Go(p.h.Close)
				delete(m.ports, idx)
			}
			m.mu.Unlock()
			closing.Wait()
			m.wg.Wait()
			return nil
		case <-m.links.Changed():
		case <-retry.C:
		}
	}
}

// useAnswerSwitch takes the any-device handle h's filter switch, when it
// has one and AnswerLease is set; else h captures answers throughout.
func (m *Manager) useAnswerSwitch(h Handle) {
	sw, ok := h.(AnswerSwitch)
	if !ok {
		return
	}
	if m.AnswerLease <= 0 {
		if err := sw.CaptureAnswers(true); err != nil {
			m.log.Warn("any device: cannot capture answers: a new port's answers wait for its own handle", "err", err)
		}
		return
	}
	m.answers.Lock()
	m.answers.sw, m.answers.on = sw, false // it opens with AnyRARPFilter
	m.answers.Unlock()
}

// expectAnswers makes the any-device handle capture answers, before a
// probe leaves through a port without a handle of its own (which the
// any-device handle alone would see answered), or as a port's handle is
// closed, for AnswerLease from now.
func (m *Manager) expectAnswers(ifindex int) {
	m.answers.Lock()
	defer m.answers.Unlock()
	if m.answers.sw == nil {
		return
	}
	m.answers.until = m.now().Add(m.AnswerLease)
	if m.answers.on {
		return
	}
	if err := m.answers.sw.CaptureAnswers(true); err != nil {
		// The port's own handle takes the answers to the retries once open.
		m.log.Error("any device: cannot capture answers", "ifindex", ifindex, "err", err)
		return
	}
	m.answers.on = true
	m.log.Debug("any device: capturing answers", "ifindex", ifindex, "until", m.answers.until)
}

// answersExpire returns the any-device handle to RARPs only once the last
// lease expectAnswers gave has passed at now.
func (m *Manager) answersExpire(now time.Time) {
	m.answers.Lock()
	defer m.answers.Unlock()
	if m.answers.sw == nil || !m.answers.on || now.Before(m.answers.until) {
		return
	}
	if err := m.answers.sw.CaptureAnswers(false); err != nil {
		m.log.Warn("any device: answers captured throughout", "err", err)
		m.answers.sw = nil
		return
	}
	m.answers.on = false
	m.log.Debug("any device: RARPs only")
}

// CapturingAnswers reports whether the any-device handle captures answers
// now (always, when it cannot switch).
func (m *Manager) CapturingAnswers() bool {
	m.answers.Lock()
	defer m.answers.Unlock()
	return m.answers.sw == nil || m.answers.on
}

// Ports returns the names of the ports being captured, by ifindex.
func (m *Manager) Ports() map[int]string {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := make(map[int]string, len(m.ports))
	for idx, p := range m.ports {
		out[idx] = p.name
	}
	return out
}

// wanted reports whether l should have a handle: a selected access port
// that is up (libpcap cannot activate a handle on a down interface; the
// link-up event opens it, and the any-device handle covers the gap).
func (m *Manager) wanted(l link.Link) bool {
	return l.Up && m.serves(l)
}

// serves reports whether l is a selected access port, up or not: the link
// table may not have seen a port come up yet when its first frame arrives.
func (m *Manager) serves(l link.Link) bool {
	if !m.selected(l) {
		return false
	}
	return m.links.AccessPort(l.Index) == nil
}

// reconcile opens handles for wanted ports that have none and closes those
// of ports that vanished or stopped being access ports. It returns once the
// handles it started to open are open (or failed); up to openParallel are
// opened at once, without holding m.mu, so that frames and probes on the
// other ports go on meanwhile.
func (m *Manager) reconcile() {
	want := make(map[int]link.Link)
	for _, l := range m.links.All() {
		if m.wanted(l) {
			want[l.Index] = l
		}
	}
	m.mu.Lock()
	for idx, p := range m.ports {
		if l, ok := want[idx]; !ok || l.Name != p.name {
			m.closeLocked(idx, "no longer an access port")
		}
	}
	var todo []link.Link
	for idx, l := range want {
		if _, ok := m.ports[idx]; ok {
			continue
		}
		if m.opening[idx] {
			continue // Send is opening it
		}
		m.opening[idx] = true
		todo = append(todo, l)
	}
	m.mu.Unlock()
	var wg sync.WaitGroup
	slots := make(chan struct{}, openParallel)
	for _, l := range todo {
		wg.Go(func() {
			slots <- struct{}{}
			defer func() { <-slots }()
			_, _ = m.open(l)
		})
	}
	wg.Wait()
}

// open opens l's handle without holding m.mu, starts its reader and
// writes the frames Send queued for it meanwhile. The caller has put
// l.Index into m.opening; open removes it, whatever
// the outcome.
func (m *Manager) open(l link.Link) (*port, error) {
	m.mu.Lock()
	ctx := m.ctx
	m.mu.Unlock()
	var h Handle
	err := errors.New("capture: manager not running")
	if ctx != nil && ctx.Err() == nil {
		h, err = m.opener.Open(l)
	}
	m.mu.Lock()
	delete(m.opening, l.Index)
	queued := m.queued[l.Index]
	delete(m.queued, l.Index)
	p, err := m.addLocked(ctx, l, h, err)
	m.mu.Unlock()
	if err != nil {
		if len(queued) > 0 {
			m.log.Warn("frames not sent: no capture handle", "ifname", l.Name, "frames", len(queued))
		}
		return nil, err
	}
	for _, f := range queued {
		if werr := p.h.WritePacketData(f); werr != nil {
			m.log.Error("send queued frame", "ifname", l.Name, "err", werr)
		}
	}
	if len(queued) > 0 {
		m.log.Debug("queued frames sent", "ifname", l.Name, "frames", len(queued))
	}
	m.holdUnlessRunning(l.Index, queued...)
	return p, nil
}

// holdUnlessRunning keeps a copy of frames, just written on the port
// ifindex, when the kernel does not report the port running: they are
// written again once it does (flushHeld).
func (m *Manager) holdUnlessRunning(ifindex int, frames ...[]byte) {
	if len(frames) == 0 {
		return
	}
	if running, known := m.links.Running(ifindex); !known || running {
		return
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	h := m.held[ifindex]
	if h.frames == nil {
		h.since = time.Now()
		m.log.Debug("port not running: frames held", "ifindex", ifindex, "frames", len(frames))
	}
	for _, f := range frames {
		h.frames = append(h.frames, slices.Clone(f))
	}
	m.held[ifindex] = h
}

// flushHeld writes the held frames of the ports that now run, through
// their handles, and forgets those of ports gone or held too long.
func (m *Manager) flushHeld() {
	type write struct {
		p      *port
		frames [][]byte
		heldMS float64
	}
	var writes []write
	m.mu.Lock()
	for idx, h := range m.held {
		running, known := m.links.Running(idx)
		p, open := m.ports[idx]
		switch {
		case !known || !open || time.Since(h.since) > holdFor:
			delete(m.held, idx)
		case running:
			writes = append(writes, write{p, h.frames, float64(time.Since(h.since).Microseconds()) / 1e3})
			delete(m.held, idx)
		}
	}
	m.mu.Unlock()
	for _, w := range writes {
		for _, f := range w.frames {
			if err := w.p.h.WritePacketData(f); err != nil {
				m.log.Error("send held frame", "ifname", w.p.name, "err", err)
			}
		}
		m.log.Debug("held frames sent", "ifname", w.p.name, "frames", len(w.frames), "held_ms", w.heldMS)
	}
}

// addLocked registers the handle h open returned (or its error) for l and
// starts its reader.
func (m *Manager) addLocked(ctx context.Context, l link.Link, h Handle, err error) (*port, error) {
	if err != nil {
		m.log.Warn("open capture", "ifname", l.Name, "err", err)
		return nil, err
	}
	if m.ctx.Err() != nil { // Run closed the others (and may have returned)
		h.Close()
		return nil, errors.New("capture: manager not running")
	}
	if old, ok := m.ports[l.Index]; ok { // cannot happen while opening marks it; keep one
		m.wg.Go(h.Close)
		return old, nil
	}
	p := &port{name: l.Name, h: h, since: time.Now(), limit: rate.NewLimiter(rate.Inf, 0)}
	if m.PortRate > 0 {
		p.limit = rate.NewLimiter(rate.Limit(m.PortRate), max(m.PortBurst, 1))
	}
	m.ports[l.Index] = p
	m.log.Info("port added", "ifname", l.Name, "ifindex", l.Index)
	m.wg.Go(func() { m.readPort(ctx, l.Index, p) })
	return p, nil
}

// closeLocked forgets the port idx and closes its handle on a goroutine
// m.wg owns, so that m.mu is not held while the kernel waits for an RCU
// grace period (tens of ms): Send on other ports and the any-device reader
// (a new port's RARP) go on meanwhile.
func (m *Manager) closeLocked(idx int, why string) {
	p := m.ports[idx]
	delete(m.ports, idx)
	// A probe sent through this handle may still be answered: until a
	// handle is open again (renamed, or read again after an error), only
	// the any-device handle can see the answer.
	m.expectAnswers(idx)
	m.wg.Go(p.h.Close)
	m.log.Info("port removed", "ifname", p.name, "ifindex", idx, "reason", why)
}

// Send writes frame out of the port ifindex through its capture handle,
// opening the handle first if the port is new. While its handle is being
// opened elsewhere (a port created a moment ago), the frame is queued and
// written once it is open, and Send returns at once: the caller, a capture
// goroutine handling a RARP, goes on with the next frame (200 new ports'
// RARPs otherwise waited for the ports' opens one after another).
//
// With Direct set, such a frame is written at once instead, through Direct,
// and a port with no handle at all gets its open started aside: the frame
// waits for neither.
func (m *Manager) Send(ifindex int, frame []byte) error {
	m.mu.Lock()
	p, ok := m.ports[ifindex]
	if !ok {
		// The answer may come before this port's handle is open: only the
		// any-device handle would see it. (m.mu, then m.answers, as in
		// closeLocked.)
		m.expectAnswers(ifindex)
	}
	if !ok && m.opening[ifindex] {
		if m.direct(ifindex) {
			m.mu.Unlock()
			return m.Direct(ifindex, frame)
		}
		m.queued[ifindex] = append(m.queued[ifindex], slices.Clone(frame))
		m.mu.Unlock()
		m.log.Debug("frame queued: port opening, not running", "ifindex", ifindex)
		return nil
	}
	if !ok {
		l, known := m.links.Get(ifindex)
		if !known || !m.serves(l) {
			m.mu.Unlock()
			return fmt.Errorf("send on ifindex %d: not a captured access port", ifindex)
		}
		m.opening[ifindex] = true
		if m.ctx != nil && m.direct(ifindex) {
			m.wg.Go(func() { _, _ = m.open(l) })
			m.mu.Unlock()
			return m.Direct(ifindex, frame)
		}
		m.mu.Unlock()
		var err error
		if p, err = m.open(l); err != nil {
			return fmt.Errorf("send on %s: %w", l.Name, err)
		}
		m.mu.Lock()
	}
	m.mu.Unlock()
	if err := p.h.WritePacketData(frame); err != nil {
		return fmt.Errorf("send on %s: %w", p.name, err)
	}
	m.holdUnlessRunning(ifindex, frame)
	return nil
}

// servesNow reads again, from the kernel, a link the table holds as a
// stand-alone port that is not served (in the daemon's default mode only
// bridge members are), when a RARP entered it, and reports whether it is
// served after all. The kernel announces a new port before it enslaves it:
// the table may still hold that first view when the port's first RARP
// arrives. Bridges, SVIs and tunnels are no ports and are not read.
// Reads are rate-limited (rereadLimit): a routed uplink flooded with RARPs
// would cost a netlink read each otherwise.
func (m *Manager) servesNow(l link.Link, data []byte) bool {
	if l.MasterIndex != 0 || !packet.SLL2IsRARP(data) || m.links.AccessPort(l.Index) != nil ||
		!m.rereads.Allow() || !m.links.Reread(l.Index) {
		return false
	}
	now, known := m.links.Get(l.Index)
	served := known && m.serves(now)
	m.log.Debug("new port read again", "ifname", l.Name, "ifindex", l.Index, "served", served)
	return served
}

// direct reports whether a frame for ifindex, a port without a handle, can
// be written through Direct now: there is a Direct, and the kernel reports
// the port operationally up. Before that (a port created a moment ago,
// whose link-watch work waits for RTNL while zebra holds it under a burst
// of new ports) the kernel drops what is sent on it without an error; the
// frame is queued and written once the handle is open, as without Direct.
func (m *Manager) direct(ifindex int) bool {
	if m.Direct == nil {
		return false
	}
	running, _ := m.links.Running(ifindex)
	return running
}

func (m *Manager) readPort(ctx context.Context, ifindex int, p *port) {
	lt := p.h.LinkType()
	for {
		data, ci, err := p.h.ReadPacketData()
		switch {
		case err == nil:
			if !p.limit.Allow() {
				m.stats.Drop("port-rate-limit")
				continue
			}
			m.deliver(Packet{Data: data, LinkType: lt, IfIndex: ifindex, Time: ci.Timestamp})
		case errors.Is(err, ErrTimeout):
			if ctx.Err() != nil {
				return
			}
		default:
			// The handle was closed, or the interface vanished or broke.
			m.mu.Lock()
			if m.ports[ifindex] == p {
				m.closeLocked(ifindex, err.Error())
			}
			m.mu.Unlock()
			return
		}
	}
}

// readAny forwards RARPs and answers seen on the any device for ports that
// had no handle of their own when the frame arrived: a port that appeared
// a few milliseconds ago. Frames the port's own handle also saw are
// skipped; a frame seen by both is harmless anyway: repeated RARPs of one
// migration make one probe cycle, and an answer seen twice verifies once
// (the second is counted as reply-duplicate).
func (m *Manager) readAny(ctx context.Context, h Handle) {
	if h.LinkType() != layers.LinkTypeLinuxSLL2 {
		m.log.Warn("any device does not record interface indexes; not using it", "linktype", h.LinkType())
		return
	}
	for {
		data, ci, err := h.ReadPacketData()
		switch {
		case err == nil:
		case errors.Is(err, ErrTimeout):
			if ctx.Err() != nil {
				return
			}
			continue
		default:
			if ctx.Err() == nil {
				m.log.Error("capture on any device stopped", "err", err)
			}
			return
		}
		ifindex, ok := packet.SLL2IfIndex(data)
		if !ok {
			m.stats.Drop("truncated")
			continue
		}
		m.mu.Lock()
		p := m.ports[ifindex]
		m.mu.Unlock()
		if p != nil && !ci.Timestamp.Before(p.since) {
			continue
		}
		if l, known := m.links.Get(ifindex); known && !m.serves(l) && !m.servesNow(l, data) {
			continue // the bridge's copy of the port's RARP, a VXLAN port, ...
		}
		if packet.SLL2IsRARP(data) {
			m.stats.Count(engine.RARPViaAny)
		} else {
			m.stats.Count(engine.ReplyViaAny)
		}
		m.deliver(Packet{Data: data, LinkType: layers.LinkTypeLinuxSLL2, IfIndex: ifindex, Time: ci.Timestamp})
	}
}
