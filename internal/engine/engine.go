// Package engine is rarp-replay's decision path: given a captured frame it
// decides whether it announces a migrated VM, probes every address the
// neighbor mirror binds to the VM's MAC, matches the VM's replies, and
// programs each verified binding into the kernel. It is a state machine
// driven by explicit time, so the live daemon (wall clock) and the offline
// replay (capture timestamps) run exactly the same code.
package engine

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gopacket/gopacket/layers"
	"github.com/rarp-replay/rarp-replay/internal/link"
	"github.com/rarp-replay/rarp-replay/internal/packet"
	"golang.org/x/time/rate"
)

// Ports maps an interface index, and the VLAN tags of a frame that entered
// it, to an access port and its SVI.
type Ports interface {
	Port(ifindex int, vlans []uint16) (link.Port, error)
}

// Rereader is Ports that can read one link from the kernel again. The
// kernel announces a new link before it adds it to its bridge, so a port
// created a moment ago can be in the link table as a stand-alone link
// while the kernel already has it in the bridge.
type Rereader interface {
	Reread(ifindex int) bool // whether the link was read (and the table updated)
}

// Packet is one captured frame and where it came from.
type Packet struct {
	Data     []byte
	LinkType layers.LinkType
	IfIndex  int       // the interface the frame entered
	Time     time.Time // capture timestamp
}

// Binding is one address bound to a MAC on an interface, as a Resolver
// returns it.
type Binding struct {
	IP netip.Addr
	// Present is false when the kernel has deleted the entry and the
	// resolver only remembers it.
	Present bool
	// Remote is true when the entry was extern_learn (installed by EVPN).
	Remote bool
	// Seen is when the resolver last saw the entry in the kernel.
	Seen time.Time
}

// Resolver returns the addresses bound to a MAC on an SVI.
type Resolver interface {
	Lookup(ifindex int, mac net.HardwareAddr) []Binding
}

// Sender writes a frame out of an interface.
type Sender interface {
	Send(ifindex int, frame []byte) error
}

// Programmer installs a verified binding as a local neighbor on an SVI.
type Programmer interface {
	Program(ifindex int, ip netip.Addr, mac net.HardwareAddr) error
}

// Config tunes the probe cycle.
type Config struct {
	// ProbeTimeout is how long the first probe waits for its reply; each
	// retry waits twice as long as the one before, up to MaxProbeTimeout
	// (0: no cap).
	ProbeTimeout    time.Duration
	MaxProbeTimeout time.Duration
	// Retries is how many times an unanswered probe is sent again before
	// the binding is given up.
	Retries int
	// Window is how long after a cycle ended further RARPs for the same MAC
	// on the same SVI still belong to it (QEMU repeats its RARP for 800 ms).
	Window time.Duration
	// DryRun decides and logs but sends and programs nothing.
	DryRun bool
	// ProbeRate and ProbeBurst bound the probes sent, per second, over all
	// ports; PortProbeRate and PortProbeBurst per port. Zero rate: no limit.
	// A probe over the limit is not sent now (counted as
	// "probe-rate-limited"); its retry timer still runs.
	ProbeRate, PortProbeRate   float64
	ProbeBurst, PortProbeBurst int
	// MaxCycles bounds the probe cycles held at once (active or inside their
	// window); a RARP beyond it is dropped as "cycle-limit". Zero: no limit.
	MaxCycles int
}

// DefaultConfig is what `rarp-replay listen` uses unless told otherwise.
var DefaultConfig = Config{
	// 0.2, 0.4, 0.8, then 1 s per retry: a binding is given up 5.4 s after
	// the RARP, so a VM that answers late (a guest resuming, a saturated
	// host) is still restored; the first answers still come in within
	// milliseconds.
	ProbeTimeout: 200 * time.Millisecond, MaxProbeTimeout: time.Second, Retries: 6, Window: 2 * time.Second,
	ProbeRate: 20000, ProbeBurst: 20000, PortProbeRate: 10000, PortProbeBurst: 10000,
	MaxCycles: 100000,
}

// Verdict is what the engine did with a frame.
type Verdict string

// Verdicts.
const (
	VerdictProbe     Verdict = "probe"     // a RARP started a probe cycle
	VerdictDuplicate Verdict = "duplicate" // a RARP of a migration already being handled, or an answer already believed
	VerdictVerified  Verdict = "verified"  // a reply verified a probed binding
	VerdictDrop      Verdict = "drop"      // see Reason
)

// Decision is the outcome of one frame.
type Decision struct {
	Verdict Verdict
	Reason  string // drop reason
	Kind    packet.Kind
	MAC     net.HardwareAddr
	IP      netip.Addr // the address a reply verified
	Port    string
	SVI     string
	Probes  []netip.Addr // the addresses a RARP made the engine probe
	Err     error        // a failed send or program, if any
}

// Report summarises one migration: the probe cycle a RARP started.
type Report struct {
	MAC        net.HardwareAddr
	Port       string
	SVI        string
	Start      time.Time // the RARP's capture time
	Verified   []netip.Addr
	Failed     []netip.Addr
	Programmed []netip.Addr
	// Skipped are addresses bound to the MAC that were not probed, each
	// with the reason (SkipBusy, SkipNoSource, SkipBuild).
	Skipped []Skipped
	// Answered is, per verified address, the time from the RARP to the
	// VM's answer.
	Answered map[netip.Addr]time.Duration
	// Stages is, per programmed address, where the time from the RARP to
	// its programming went.
	Stages map[netip.Addr]Stages
	// Latency runs from the RARP to the last binding programmed; zero when
	// none was.
	Latency time.Duration
}

// Stages splits one binding's time from the RARP to its programming into
// what the daemon, the VM and the kernel each took. Live, the frames' times
// are the kernel's capture time stamps; in a replay, capture times and the
// decisions' times are the same clock.
type Stages struct {
	// Probe runs from the RARP's capture to the last probe sent before the
	// answer: the daemon's decision, or the earlier probes' waits when the
	// VM answered a retry.
	Probe time.Duration
	// Answer runs from that probe to the VM's answer as captured: the VM,
	// and the way to it and back (zero when the VM answered an earlier
	// attempt after the last was sent).
	Answer time.Duration
	// Handle runs from the answer's capture to its verification: the
	// daemon's queue.
	Handle time.Duration
	// Program runs from the verification to the kernel's acknowledgement
	// of the neighbor: the programming queue and the kernel, which takes
	// RTNL for it.
	Program time.Duration
}

// StageNames are the names of Stages' parts, in order, as metrics and
// logs call them.
var StageNames = [...]string{"probe", "answer", "handle", "program"}

// Durations returns the parts of s in StageNames' order.
func (s Stages) Durations() [len(StageNames)]time.Duration {
	return [...]time.Duration{s.Probe, s.Answer, s.Handle, s.Program}
}

// Skipped is an address bound to the migrating MAC that was not probed.
type Skipped struct {
	IP     netip.Addr
	Reason string
}

// Why an address bound to the MAC was not probed (Report.Skipped).
const (
	SkipBusy     = "another MAC's migration is probing this address"
	SkipNoSource = "the SVI has no usable source MAC for probes"
	SkipBuild    = "no probe could be built for it"
)

// Engine is the decision state machine. It is safe for concurrent use: the
// live daemon calls Process from each port's capture goroutine, so that a
// RARP is answered without a hop to another goroutine, while Run fires the
// timers; a replay drives it from one loop.
type Engine struct {
	mu   sync.Mutex
	wake chan struct{} // a timer earlier than Run's was armed

	cfg    Config
	ports  Ports
	res    Resolver
	send   Sender
	prog   Programmer
	log    *slog.Logger
	stats  *Counters
	report func(Report)
	// progq takes verified bindings to Run's programming goroutine; nil
	// when Run is not running (a replay): they are programmed at once.
	progq chan programJob

	cycles  map[cycleKey]*cycle
	pending map[pendingKey]*cycle
	// inFlight mirrors len(pending), inCycles the cycles not finished, for
	// InFlight, which status requests call without the engine's lock.
	inFlight, inCycles atomic.Int64
	timers             timerHeap
	limit              *rate.Limiter
	perPort            map[int]*rate.Limiter
}

type cycleKey struct {
	svi int
	mac [6]byte
}

type pendingKey struct {
	svi int
	ip  netip.Addr
}

type state uint8

const (
	statePending state = iota
	stateVerified
	stateFailed
)

type probe struct {
	ip       netip.Addr
	dev      int // the interface the binding was found on, where it is programmed
	srcIP    netip.Addr
	srcMAC   net.HardwareAddr // whom the answer must be addressed to
	frame    []byte
	attempts int
	sent     time.Time // the last attempt
	stages   Stages    // filled as the binding is answered, verified and programmed
	verified time.Time
	state    state
	seq      int // invalidates stale timer entries
}

type cycle struct {
	key    cycleKey
	mac    net.HardwareAddr
	port   link.Port
	start  time.Time
	probes []*probe
	open   int // probes still pending
	// programming counts verified bindings queued for Run's programming
	// goroutine.
	programming int
	ended       time.Time
	report      Report
	finished    bool
	// inline holds what a cycle of up to inlineProbes bindings needs, in
	// the cycle's own allocation (see rarp). d.Probes of the cycle's
	// Decision may point into addrs, which is written only then.
	inline struct {
		slab   [inlineProbes]probe
		probes [inlineProbes]*probe
		addrs  [inlineProbes]netip.Addr
		frames [inlineProbes * packet.MaxProbeLen]byte
	}
}

// inlineProbes is how many bindings a cycle holds without allocations of
// their own: a VM with an IPv4 address, a global IPv6 and a link-local one
// has three.
const inlineProbes = 4

// wait is how long the given attempt (1: the first probe) waits for its
// answer before the next, or before the binding is given up.
func (c Config) wait(attempt int) time.Duration {
	timeout := c.ProbeTimeout
	for i := 1; i < attempt && (c.MaxProbeTimeout == 0 || timeout < c.MaxProbeTimeout) && timeout < time.Hour; i++ {
		timeout *= 2
	}
	if c.MaxProbeTimeout > 0 {
		timeout = min(timeout, c.MaxProbeTimeout)
	}
	return timeout
}

// LongestWait is the longest any one probe waits for its answer: that of
// the last retry.
func (c Config) LongestWait() time.Duration { return c.wait(c.Retries + 1) }

// New returns an engine. report, when not nil, is called once per cycle.
func New(cfg Config, ports Ports, res Resolver, send Sender, prog Programmer, log *slog.Logger, report func(Report)) *Engine {
	return &Engine{
		cfg: cfg, ports: ports, res: res, send: send, prog: prog, log: log, report: report,
		stats:   NewCounters(),
		cycles:  make(map[cycleKey]*cycle),
		pending: make(map[pendingKey]*cycle),
		wake:    make(chan struct{}, 1),
		limit:   limiter(cfg.ProbeRate, cfg.ProbeBurst),
		perPort: make(map[int]*rate.Limiter),
	}
}

func limiter(r float64, burst int) *rate.Limiter {
	if r <= 0 {
		return rate.NewLimiter(rate.Inf, 0)
	}
	return rate.NewLimiter(rate.Limit(r), max(burst, 1))
}

// allow takes a token from the global and the port's probe budget at now.
func (e *Engine) allow(now time.Time, port int) bool {
	pl, ok := e.perPort[port]
	if !ok {
		pl = limiter(e.cfg.PortProbeRate, e.cfg.PortProbeBurst)
		e.perPort[port] = pl
	}
	if pl.Limit() != rate.Inf && pl.TokensAt(now) < 1 {
		return false
	}
	if !e.limit.AllowN(now, 1) {
		return false
	}
	return pl.AllowN(now, 1)
}

// UseCounters makes the engine count into c, shared with other parts of
// the daemon.
func (e *Engine) UseCounters(c *Counters) { e.stats = c }

// Stats returns the engine's counters; safe to read from any goroutine.
func (e *Engine) Stats() *Counters { return e.stats }

// Process decides what to do with one frame at time now (wall clock live,
// capture time in a replay), does it, and returns the decision.
func (e *Engine) Process(now time.Time, p Packet) Decision {
	// Decoding is pure: done before the lock, once.
	f, err := packet.Decode(p.Data, p.LinkType)
	if err == nil {
		e.reread(p, f)
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	e.advance(now)
	d := e.handle(now, p, f, err)
	switch d.Verdict {
	case VerdictDrop:
		e.stats.Drop(d.Reason)
		if e.debugEnabled() {
			e.log.Debug("drop", "reason", d.Reason, "kind", d.Kind, "mac", macString(d.MAC), "ip", d.IP, "port", d.Port, "svi", d.SVI, "ifindex", p.IfIndex)
		}
	case VerdictDuplicate:
		if d.Kind == packet.KindRARP {
			e.stats.Count(RARPDuplicate)
		} else {
			e.stats.Count(ReplyDuplicate)
		}
	}
	return d
}

// reread reads p's port from the kernel again, before the engine's lock
// is taken (a netlink round trip, which waits while zebra holds RTNL), when
// the any-device handle caught p and the link table sees its port as a
// stand-alone link or cannot make it a port. Such a port has no capture
// handle of its own yet: it is new, and the link table may still hold an
// earlier view than the kernel's. The kernel announces a new link before
// it adds it to its bridge, and a bridge port's VLANs in notifications of
// their own: acting on such a view, a RARP would look for bindings on the
// port itself (or find no VLAN) and find none.
func (e *Engine) reread(p Packet, f packet.Frame) {
	r, ok := e.ports.(Rereader)
	if !ok || p.LinkType != layers.LinkTypeLinuxSLL2 {
		return
	}
	port, err := e.ports.Port(p.IfIndex, f.VLANs)
	if err == nil && port.SVI.Index != port.Link.Index {
		return
	}
	debug := e.debugEnabled()
	var start time.Time
	if debug {
		start = time.Now()
	}
	read := r.Reread(p.IfIndex)
	if debug {
		why := "stand-alone"
		if err != nil {
			why = err.Error()
		}
		e.log.Debug("new port read again", "ifindex", p.IfIndex, "seen", why, "read", read,
			"took_ms", float64(time.Since(start).Microseconds())/1e3)
	}
}

// handle decides on p, which decoded to f, or failed to with err.
func (e *Engine) handle(now time.Time, p Packet, f packet.Frame, err error) Decision {
	if err != nil {
		return Decision{Verdict: VerdictDrop, Reason: packet.Reason(err), Err: err}
	}
	d := Decision{Kind: f.Kind, MAC: f.MAC, IP: f.IP}
	port, err := e.ports.Port(p.IfIndex, f.VLANs)
	if err != nil {
		d.Verdict, d.Reason, d.Err = VerdictDrop, "not-access-port", err
		var ie *link.IneligibleError
		if errors.As(err, &ie) {
			d.Reason, d.Port = ie.Reason, ie.Name
		}
		return d
	}
	d.Port, d.SVI = port.Link.Name, port.SVI.Name
	if f.Kind == packet.KindRARP {
		e.stats.RARP(port.Link.Name)
		return e.rarp(now, p.Time, f, port, d)
	}
	return e.reply(now, p.Time, f, port, d)
}

func (e *Engine) rarp(now, seen time.Time, f packet.Frame, port link.Port, d Decision) Decision {
	k := cycleKey{svi: port.SVI.Index}
	copy(k.mac[:], f.MAC)
	if c, ok := e.cycles[k]; ok && (!c.finished || now.Sub(c.ended) < e.cfg.Window) {
		d.Verdict = VerdictDuplicate
		return d
	}
	if e.cfg.MaxCycles > 0 && len(e.cycles) >= e.cfg.MaxCycles {
		d.Verdict, d.Reason = VerdictDrop, "cycle-limit"
		return d
	}
	// The SVI holds the bindings; on Cumulus-style layouts the kernel may
	// hold some on the SVI's anycast macvlan too.
	type found struct {
		Binding
		dev int
	}
	svi := e.res.Lookup(port.SVI.Index, f.MAC)
	var onStack [inlineProbes]found
	bindings := onStack[:0]
	for _, b := range svi {
		bindings = append(bindings, found{b, port.SVI.Index})
	}
	for _, dev := range port.Anycast {
		for _, b := range e.res.Lookup(dev.Index, f.MAC) {
			bindings = append(bindings, found{b, dev.Index})
		}
	}
	if len(bindings) == 0 {
		d.Verdict, d.Reason = VerdictDrop, "unknown-mac"
		return d
	}
	c := &cycle{key: k, mac: f.MAC, port: port, start: seen}
	c.report = Report{MAC: f.MAC, Port: port.Link.Name, SVI: port.SVI.Name, Start: seen}
	// This is the path from a RARP to its first probe, which runs after
	// the daemon idled, with cold caches: every allocation counts. A cycle
	// of up to inlineProbes bindings keeps its probes, their frames and the
	// two lists of them in its own allocation; a larger one takes one
	// allocation for each; each has room for every binding, so no append
	// below allocates again.
	var slab []probe
	var frames []byte
	if n := len(bindings); n <= inlineProbes {
		in := &c.inline
		c.probes, d.Probes, slab, frames = in.probes[:0:n], in.addrs[:0:n], in.slab[:0:n], in.frames[:0:n*packet.MaxProbeLen]
	} else {
		c.probes = make([]*probe, 0, n)
		d.Probes = make([]netip.Addr, 0, n)
		slab = make([]probe, 0, n)
		frames = make([]byte, 0, n*packet.MaxProbeLen)
	}
	for _, b := range bindings {
		if slices.ContainsFunc(c.probes, func(p *probe) bool { return p.ip == b.IP }) {
			continue // on both the SVI and its anycast device
		}
		srcIP, srcMAC := link.Source(port, b.IP)
		if !packet.UnicastMAC(srcMAC) {
			e.log.Error("no source MAC for probes", "svi", port.SVI.Name, "ip", b.IP)
			c.report.Skipped = append(c.report.Skipped, Skipped{b.IP, SkipNoSource})
			continue
		}
		at := len(frames)
		var err error
		frames, err = packet.AppendProbe(frames, packet.Probe{
			SrcMAC: srcMAC, SrcIP: srcIP,
			DstMAC: f.MAC, Target: b.IP, VLANs: port.VLANs,
		})
		if err != nil {
			e.log.Error("build probe", "mac", f.MAC.String(), "ip", b.IP, "err", err)
			c.report.Skipped = append(c.report.Skipped, Skipped{b.IP, SkipBuild})
			continue
		}
		if other, busy := e.pending[pendingKey{port.SVI.Index, b.IP}]; busy && other != c {
			c.report.Skipped = append(c.report.Skipped, Skipped{b.IP, SkipBusy})
			continue // another MAC's cycle is probing this address
		}
		frame := frames[at:len(frames):len(frames)]
		slab = append(slab, probe{ip: b.IP, dev: b.dev, srcIP: srcIP, srcMAC: srcMAC, frame: frame})
		c.probes = append(c.probes, &slab[len(slab)-1])
		d.Probes = append(d.Probes, b.IP)
	}
	if len(c.probes) == 0 {
		d.Probes = nil
		d.Verdict, d.Reason = VerdictDrop, "no-probe"
		return d
	}
	e.cycles[k] = c
	c.open = len(c.probes)
	if e.debugEnabled() {
		// waited_ms: from the RARP's capture to now, its time in the
		// daemon before the probes.
		e.log.Debug("probing", "mac", f.MAC.String(), "port", port.Link.Name, "svi", port.SVI.Name, "ips", d.Probes,
			"waited_ms", float64(now.Sub(seen).Microseconds())/1e3)
	}
	for _, pr := range c.probes {
		e.pending[pendingKey{port.SVI.Index, pr.ip}] = c
		if err := e.transmit(now, c, pr); err != nil {
			d.Err = err
		}
	}
	e.inFlight.Store(int64(len(e.pending)))
	e.inCycles.Add(1)
	d.Verdict = VerdictProbe
	return d
}

// transmit sends pr's probe and arms its timeout.
func (e *Engine) transmit(now time.Time, c *cycle, pr *probe) error {
	pr.attempts++
	pr.seq++
	pr.sent = now
	timeout := e.cfg.wait(pr.attempts)
	e.arm(timer{at: now.Add(timeout), c: c, p: pr, seq: pr.seq})
	if !e.allow(now, c.port.Link.Index) {
		e.stats.Count(ProbeRateLimited)
		e.debugProbe("probe not sent: rate limit", c, pr, timeout)
		return nil
	}
	if e.cfg.DryRun {
		e.stats.Count(ProbeDryRun)
		e.debugProbe("probe not sent: dry run", c, pr, timeout)
		return nil
	}
	if err := e.send.Send(c.port.Link.Index, pr.frame); err != nil {
		e.stats.Count(ProbeSendError)
		e.log.Error("send probe", "mac", c.mac.String(), "ip", pr.ip, "port", c.port.Link.Name, "err", err)
		return err
	}
	e.stats.Count(ProbeSent)
	e.debugProbe("probe sent", c, pr, timeout)
	return nil
}

// debugEnabled reports whether debug lines are logged: the callers build
// their attributes only then.
func (e *Engine) debugEnabled() bool { return e.log.Enabled(context.Background(), slog.LevelDebug) }

// debugProbe logs one step of pr's life at debug level: sent (or why not),
// retried, given up. wait is how long it waits for the answer, if it does.
func (e *Engine) debugProbe(msg string, c *cycle, pr *probe, wait time.Duration) {
	if !e.debugEnabled() {
		return
	}
	attrs := []any{"mac", c.mac.String(), "ip", pr.ip, "port", c.port.Link.Name, "svi", c.port.SVI.Name, "attempt", pr.attempts}
	if wait > 0 {
		attrs = append(attrs, "wait_ms", wait.Milliseconds())
	}
	e.log.Debug(msg, attrs...)
}

// Reasons a reply to a pending probe is not believed (counted as drops).
const (
	DropUnsolicited = "unsolicited-reply" // no probe pending for this address and MAC
	DropWrongPort   = "reply-wrong-port"  // not on the port the probe left through
	DropEthSource   = "reply-eth-source"  // Ethernet source is not the VM's MAC
	DropNotAnswer   = "reply-not-answer"  // does not answer what the probe asked
)

// reply matches an ARP reply or NA against the probe pending for its
// address. It is believed only if it arrived on the port the probe left
// through, from the VM's MAC (Ethernet source and ARP sender / NA target
// link-layer address alike), and answers exactly what was asked: an ARP
// reply from the probed address to the probe's source address and MAC; a
// solicited NA for the probed address to the probe's source address (the
// codec has already applied RFC 4861 7.1.2). Anything else is a counted
// drop and leaves the probe pending: a forged answer can neither verify a
// binding nor cancel the VM's own.
func (e *Engine) reply(now, seen time.Time, f packet.Frame, port link.Port, d Decision) Decision {
	pk := pendingKey{port.SVI.Index, f.IP}
	c, ok := e.pending[pk]
	if !ok || string(c.mac) != string(f.MAC) {
		if e.answeredAlready(f, port) {
			d.Verdict = VerdictDuplicate
			return d
		}
		d.Verdict, d.Reason = VerdictDrop, DropUnsolicited
		return d
	}
	var pr *probe
	for _, p := range c.probes {
		if p.ip == f.IP {
			pr = p
		}
	}
	switch {
	case port.Link.Index != c.port.Link.Index:
		d.Verdict, d.Reason = VerdictDrop, DropWrongPort
		d.Err = fmt.Errorf("reply for %s on %s, probe sent on %s", f.IP, port.Link.Name, c.port.Link.Name)
		return d
	case string(f.SrcMAC) != string(c.mac):
		d.Verdict, d.Reason = VerdictDrop, DropEthSource
		d.Err = fmt.Errorf("reply for %s from Ethernet source %s, VM is %s", f.IP, f.SrcMAC, c.mac)
		return d
	case !answers(f, pr):
		d.Verdict, d.Reason = VerdictDrop, DropNotAnswer
		d.Err = fmt.Errorf("%s for %s to %s %s solicited=%v, probe from %s %s", f.Kind, f.IP, f.TargetIP, f.TargetMAC, f.Solicited, pr.srcIP, pr.srcMAC)
		return d
	}
	delete(e.pending, pk)
	e.inFlight.Store(int64(len(e.pending)))
	pr.state = stateVerified
	pr.seq++ // disarm its timer
	c.open--
	e.stats.Count(Verified)
	c.report.Verified = append(c.report.Verified, f.IP)
	if c.report.Answered == nil {
		c.report.Answered = make(map[netip.Addr]time.Duration, len(c.probes))
	}
	c.report.Answered[f.IP] = now.Sub(c.start)
	pr.verified = now
	pr.stages = Stages{Probe: pr.sent.Sub(c.start), Answer: max(seen.Sub(pr.sent), 0), Handle: max(now.Sub(seen), 0)}
	d.Verdict = VerdictVerified
	if e.debugEnabled() {
		// How long the answer took, and how long of that it waited in the
		// daemon (from the kernel's capture time stamp to now).
		e.log.Debug("answer", "mac", c.mac.String(), "ip", pr.ip, "port", c.port.Link.Name, "attempt", pr.attempts,
			"after_probe_ms", float64(now.Sub(pr.sent).Microseconds())/1e3, "waited_ms", float64(now.Sub(seen).Microseconds())/1e3)
	}
	if e.cfg.DryRun {
		e.debugProbe("verified: would program (dry run)", c, pr, 0)
	} else {
		e.debugProbe("verified: programming", c, pr, 0)
		d.Err = e.program(now, c, pr)
	}
	e.maybeFinish(now, c)
	return d
}

// answeredAlready reports whether reply f repeats an answer the engine
// has already believed, in a migration still in its window: the same
// frame as the VM's answer (its port, its Ethernet source, what its probe
// asked) for a binding verified already. The VM answered a probe and its
// retry, or both the any-device handle and a new port's own handle, open
// meanwhile, saw the answer. Counted apart from unsolicited replies, which
// it would otherwise swell during every mass migration; believed no more
// than they are.
func (e *Engine) answeredAlready(f packet.Frame, port link.Port) bool {
	k := cycleKey{svi: port.SVI.Index}
	copy(k.mac[:], f.MAC)
	c, ok := e.cycles[k]
	if !ok || port.Link.Index != c.port.Link.Index || string(f.SrcMAC) != string(c.mac) {
		return false
	}
	for _, pr := range c.probes {
		if pr.ip == f.IP {
			return pr.state == stateVerified && answers(f, pr)
		}
	}
	return false
}

// answers reports whether reply f answers probe pr: addressed to the
// probe's source, and for an NA, solicited.
func answers(f packet.Frame, pr *probe) bool {
	if f.DstMAC != nil && string(f.DstMAC) != string(pr.srcMAC) && string(f.DstMAC) != string(packet.Broadcast) {
		return false
	}
	switch f.Kind {
	case packet.KindARPReply:
		return f.TargetIP == pr.srcIP && string(f.TargetMAC) == string(pr.srcMAC)
	case packet.KindNA:
		return f.Solicited && f.TargetIP == pr.srcIP
	}
	return false
}

// arm adds a timer, waking Run when it is the earliest.
func (e *Engine) arm(t timer) {
	e.timers.push(t)
	if e.timers[0] == t {
		select {
		case e.wake <- struct{}{}:
		default:
		}
	}
}

// Advance fires every retry and timeout due at or before now.
func (e *Engine) Advance(now time.Time) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.advance(now)
}

func (e *Engine) advance(now time.Time) {
	for len(e.timers) > 0 && !e.timers[0].at.After(now) {
		t := e.timers.pop()
		if t.p == nil { // end of a finished cycle's window
			if cur, ok := e.cycles[t.c.key]; ok && cur == t.c {
				delete(e.cycles, t.c.key)
			}
			continue
		}
		if t.seq != t.p.seq || t.p.state != statePending {
			continue
		}
		if t.p.attempts <= e.cfg.Retries {
			e.stats.Count(ProbeRetry)
			e.debugProbe("probe unanswered: retrying", t.c, t.p, 0)
			e.transmit(t.at, t.c, t.p)
			continue
		}
		e.debugProbe("probe unanswered: given up after every retry", t.c, t.p, 0)
		t.p.state = stateFailed
		delete(e.pending, pendingKey{t.c.key.svi, t.p.ip})
		e.inFlight.Store(int64(len(e.pending)))
		t.c.open--
		e.stats.Count(Failed)
		t.c.report.Failed = append(t.c.report.Failed, t.p.ip)
		e.maybeFinish(t.at, t.c)
	}
}

// Next returns when Advance next has work to do.
func (e *Engine) Next() (time.Time, bool) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if len(e.timers) == 0 {
		return time.Time{}, false
	}
	return e.timers[0].at, true
}

func (e *Engine) maybeFinish(now time.Time, c *cycle) {
	if c.open > 0 || c.programming > 0 || c.finished {
		return
	}
	c.finished, c.ended = true, now
	e.inCycles.Add(-1)
	e.arm(timer{at: now.Add(e.cfg.Window), c: c})
	r := c.report
	slices.SortFunc(r.Verified, netip.Addr.Compare)
	slices.SortFunc(r.Failed, netip.Addr.Compare)
	slices.SortFunc(r.Programmed, netip.Addr.Compare)
	e.stats.Count(Cycle)
	if e.report != nil {
		e.report(r)
	}
}

// String renders a report as one line for humans.
func (r Report) String() string {
	return fmt.Sprintf("mac=%s port=%s svi=%s verified=%v failed=%v programmed=%v latency=%s",
		r.MAC, r.Port, r.SVI, r.Verified, r.Failed, r.Programmed, r.Latency)
}

type timer struct {
	at  time.Time
	c   *cycle
	p   *probe // nil: the end of c's window
	seq int
}

// timerHeap is a binary min-heap of timers by time, its earliest at [0].
// It is container/heap's algorithm on the concrete type: through
// heap.Interface every push and pop boxed a timer in an interface, an
// allocation per probe sent.
type timerHeap []timer

func (h *timerHeap) push(t timer) {
	*h = append(*h, t)
	s := *h
	for i := len(s) - 1; i > 0; {
		parent := (i - 1) / 2
		if !s[i].at.Before(s[parent].at) {
			break
		}
		s[i], s[parent] = s[parent], s[i]
		i = parent
	}
}

// pop removes and returns the earliest timer; h must not be empty.
func (h *timerHeap) pop() timer {
	s := *h
	n := len(s) - 1
	s[0], s[n] = s[n], s[0]
	for i := 0; ; {
		child := 2*i + 1
		if child >= n {
			break
		}
		if r := child + 1; r < n && s[r].at.Before(s[child].at) {
			child = r
		}
		if !s[child].at.Before(s[i].at) {
			break
		}
		s[i], s[child] = s[child], s[i]
		i = child
	}
	t := s[n]
	s[n] = timer{} // let the cycle go once it is done with
	*h = s[:n]
	return t
}

func macString(m net.HardwareAddr) string {
	if m == nil {
		return ""
	}
	return m.String()
}

// InFlight returns the probes waiting for an answer and the migrations
// (probe cycles) not finished yet. It takes no lock: status requests call
// it while the engine works.
func (e *Engine) InFlight() (probes, migrations int) {
	return int(e.inFlight.Load()), int(e.inCycles.Load())
}
