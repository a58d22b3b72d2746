package cmd

import (
	"context"
	"log/slog"
	"net"
	"net/netip"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/rarp-replay/rarp-replay/internal/engine"
	"github.com/rarp-replay/rarp-replay/neigh"
)

// kernelNeigh is what the kernel holds for an address on an SVI.
type kernelNeigh struct {
	mac    net.HardwareAddr
	lost   bool // FAILED or INCOMPLETE: on its way out
	remote bool // extern_learn: the fabric's (zebra's) binding again
}

// newKernelNeigh reads an entry's MAC, NUD state and NTF flags.
func newKernelNeigh(mac net.HardwareAddr, state, flags int) kernelNeigh {
	return kernelNeigh{mac: mac, lost: state&(neigh.NUDFailed|neigh.NUDIncomplete) != 0, remote: flags&neigh.NTFExtLearned != 0}
}

// reasserter programs verified bindings and, for a short window after,
// programs a binding again if the kernel loses it. Seen in the fabric
// benchmark (200 VMs at once, scripts/bench/fabric.sh): zebra, busy with
// the burst, processed the old leaf's withdrawal of a VM's remote binding
// after the daemon had replaced that binding with the local one, and
// deleted it (RTM_DELNEIGH some ms after the replace); 13 of 600 bindings
// never came back. The neighbor watcher reports such losses (Lost); if its
// reports overflow, the kernel's table is read instead (check). An address
// the kernel binds to another MAC meanwhile is left alone: it moved again.
// So is one zebra installs as a remote (extern_learn) binding again, even
// to the same MAC: the VM moved on to another leaf, which advertised it,
// and the deletion that may follow (that leaf's withdrawal) must not make
// this leaf claim the VM back. (In the race above zebra deletes the entry
// the daemon programmed without installing a remote one first.)
type reasserter struct {
	prog engine.Programmer
	list func(ifindex int) (map[netip.Addr]kernelNeigh, error) // the SVI's neighbors
	// get, when not nil, reads one entry before it is programmed again:
	// a loss is reported twice (FAILED, then deleted), and the second
	// report may come after the binding was programmed again.
	get    func(ifindex int, ip netip.Addr) (kernelNeigh, bool, error)
	log    *slog.Logger
	window time.Duration // how long after programming a binding is watched

	mu       sync.Mutex
	watch    map[guardKey]guarded
	lost     chan guardKey // from the neighbor watcher
	overflow atomic.Bool   // lost was full: read the kernel
}

type guardKey struct {
	ifindex int
	ip      netip.Addr
}

type guarded struct {
	mac   net.HardwareAddr
	until time.Time
	again int // times programmed again
	// queued: a loss is queued for Run. A deletion is two events (the
	// kernel reports the entry FAILED, then deleted); one reprogramming
	// answers both.
	queued bool
	// seen: an event showed the binding as programmed (local, this MAC).
	// Events before it describe the entry the programming replaced (the
	// remote one, from before the write reached the kernel): they say
	// nothing about where the VM went next.
	seen bool
}

// movedOn reports whether e, the kernel's entry for g's address, says the
// VM is elsewhere now: bound to another MAC, or remote again.
func (g guarded) movedOn(e kernelNeigh) bool {
	return e.remote || !e.lost && len(e.mac) > 0 && !slices.Equal(e.mac, g.mac)
}

// maxReassert bounds how often one binding is programmed again.
const maxReassert = 3

func newReasserter(prog engine.Programmer, list func(int) (map[netip.Addr]kernelNeigh, error), log *slog.Logger) *reasserter {
	return &reasserter{prog: prog, list: list, log: log, window: 3 * time.Second,
		watch: make(map[guardKey]guarded), lost: make(chan guardKey, 4096)}
}

// Program programs the binding and watches it for the window.
func (r *reasserter) Program(ifindex int, ip netip.Addr, mac net.HardwareAddr) error {
	return r.ProgramBatch([]engine.Replace{{IfIndex: ifindex, IP: ip, MAC: mac}})[0]
}

// ProgramBatch programs the bindings, in one batch when the programmer
// can, and watches each one programmed for the window.
func (r *reasserter) ProgramBatch(bs []engine.Replace) []error {
	until := time.Now().Add(r.window)
	r.mu.Lock()
	for _, b := range bs {
		r.watch[guardKey{b.IfIndex, b.IP}] = guarded{mac: slices.Clone(b.MAC), until: until}
	}
	r.mu.Unlock()
	errs := engine.ProgramAll(r.prog, bs)
	r.mu.Lock()
	for i, err := range errs {
		if err != nil {
			delete(r.watch, guardKey{bs[i].IfIndex, bs[i].IP})
		}
	}
	r.mu.Unlock()
	return errs
}

// Changed takes the neighbor watcher's events (neigh.WatchOptions.Changed):
// a watched binding deleted, FAILED or INCOMPLETE is queued to be
// programmed again. It never blocks.
func (r *reasserter) Changed(e neigh.Entry, deleted bool) {
	kn := newKernelNeigh(e.MAC, e.State, e.Flags)
	lost := deleted || kn.lost
	k := guardKey{e.IfIndex, e.IP}
	r.mu.Lock()
	g, ok := r.watch[k]
	if ok && !lost && !kn.remote && slices.Equal(kn.mac, g.mac) && !g.seen {
		g.seen = true
		r.watch[k] = g
	}
	if ok && g.seen && !deleted && g.movedOn(kn) {
		delete(r.watch, k) // bound elsewhere now, or remote again
		ok = false
	}
	if !ok || !lost || g.queued {
		r.mu.Unlock()
		return
	}
	g.queued = true
	r.watch[k] = g
	r.mu.Unlock()
	select {
	case r.lost <- k:
	default:
		r.overflow.Store(true)
	}
}

// Run programs again what Changed queued, and reads the kernel (check) at
// the next 200 ms tick after Changed overflowed, until ctx ends.
func (r *reasserter) Run(ctx context.Context) {
	t := time.NewTicker(200 * time.Millisecond)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case k := <-r.lost:
			r.again(k, time.Now())
		case now := <-t.C:
			if r.overflow.Swap(false) {
				r.check(now)
			} else {
				r.expire(now)
			}
		}
	}
}

// again programs the watched binding k again, unless its window is over
// or it was programmed again maxReassert times.
func (r *reasserter) again(k guardKey, now time.Time) {
	r.mu.Lock()
	g, ok := r.watch[k]
	if ok && (now.After(g.until) || g.again >= maxReassert) {
		delete(r.watch, k)
		ok = false
	}
	if ok {
		g.again++
		g.queued = false
		r.watch[k] = g
	}
	r.mu.Unlock()
	if !ok {
		return
	}
	if r.get != nil {
		e, there, err := r.get(k.ifindex, k.ip)
		switch {
		case err != nil:
			r.log.Warn("cannot read the neighbor before programming it again", "ip", k.ip, "ifindex", k.ifindex, "err", err)
		case there && g.movedOn(e):
			r.forget(k, g) // bound elsewhere now, or remote again
			return
		case there && !e.lost:
			r.undo(k) // back already: nothing to do
			return
		}
	}
	if err := r.prog.Program(k.ifindex, k.ip, g.mac); err != nil {
		r.log.Error("program again", "ip", k.ip, "mac", g.mac.String(), "ifindex", k.ifindex, "err", err)
		return
	}
	r.log.Info("binding programmed again: the kernel lost it right after it was programmed",
		"ip", k.ip, "mac", g.mac.String(), "ifindex", k.ifindex, "times", g.again)
}

// undo takes back the attempt again counted for k: the binding was there.
func (r *reasserter) undo(k guardKey) {
	r.mu.Lock()
	if g, ok := r.watch[k]; ok && g.again > 0 {
		g.again--
		r.watch[k] = g
	}
	r.mu.Unlock()
}

func (r *reasserter) expire(now time.Time) {
	r.mu.Lock()
	for k, g := range r.watch {
		if now.After(g.until) {
			delete(r.watch, k)
		}
	}
	r.mu.Unlock()
}

// check reads the kernel's neighbors of every SVI with watched bindings
// once, programs again those it lost, and forgets the expired ones and
// those bound to another MAC now: what Changed would have reported.
func (r *reasserter) check(now time.Time) {
	r.mu.Lock()
	by := make(map[int][]guardKey)
	for k, g := range r.watch {
		if now.After(g.until) || g.again >= maxReassert {
			delete(r.watch, k)
			continue
		}
		by[k.ifindex] = append(by[k.ifindex], k)
	}
	r.mu.Unlock()
	for ifindex, keys := range by {
		kn, err := r.list(ifindex)
		if err != nil {
			r.log.Warn("cannot read the neighbors to check programmed bindings", "ifindex", ifindex, "err", err)
			r.overflow.Store(true) // try again
			continue
		}
		for _, k := range keys {
			r.mu.Lock()
			g, ok := r.watch[k]
			r.mu.Unlock()
			if !ok {
				continue
			}
			e, there := kn[k.ip]
			switch {
			case there && g.movedOn(e):
				r.forget(k, g) // bound elsewhere now, or remote again
				continue
			case there && !e.lost:
				continue
			}
			r.again(k, now)
		}
	}
}

func (r *reasserter) forget(k guardKey, g guarded) {
	r.mu.Lock()
	if cur, ok := r.watch[k]; ok && slices.Equal(cur.mac, g.mac) {
		delete(r.watch, k)
	}
	r.mu.Unlock()
}
