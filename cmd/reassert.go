package cmd

import (
	"context"
	"log/slog"
	"net"
	"net/netip"
	"slices"
	"sync"
	"time"

	"github.com/rarp-replay/rarp-replay/internal/engine"
)

// kernelNeigh is what the kernel holds for an address on an SVI.
type kernelNeigh struct {
	mac  net.HardwareAddr
	lost bool // FAILED or INCOMPLETE: on its way out
}

// reasserter programs verified bindings and, for a short window after,
// programs a binding again if the kernel lost it. Seen in the fabric
// benchmark (200 VMs at once, scripts/bench/fabric.sh): zebra, busy with
// the burst, processed the old leaf's withdrawal of a VM's remote binding
// after the daemon had replaced that binding with the local one, and
// deleted it (RTM_DELNEIGH some ms after the replace); 13 of 600 bindings
// never came back. An address the kernel binds to another MAC meanwhile is
// left alone: it moved again.
type reasserter struct {
	prog   engine.Programmer
	list   func(ifindex int) (map[netip.Addr]kernelNeigh, error) // the SVI's neighbors
	log    *slog.Logger
	window time.Duration // how long after programming a binding is watched
	every  time.Duration // how often the kernel is read while any is

	mu    sync.Mutex
	watch map[guardKey]guarded
	wake  chan struct{}
}

type guardKey struct {
	ifindex int
	ip      netip.Addr
}

type guarded struct {
	mac   net.HardwareAddr
	until time.Time
	again int // times programmed again
}

// maxReassert bounds how often one binding is programmed again.
const maxReassert = 3

func newReasserter(prog engine.Programmer, list func(int) (map[netip.Addr]kernelNeigh, error), log *slog.Logger) *reasserter {
	return &reasserter{prog: prog, list: list, log: log, window: 3 * time.Second, every: 50 * time.Millisecond,
		watch: make(map[guardKey]guarded), wake: make(chan struct{}, 1)}
}

// Program programs the binding and watches it for the window.
func (r *reasserter) Program(ifindex int, ip netip.Addr, mac net.HardwareAddr) error {
	if err := r.prog.Program(ifindex, ip, mac); err != nil {
		return err
	}
	r.mu.Lock()
	r.watch[guardKey{ifindex, ip}] = guarded{mac: slices.Clone(mac), until: time.Now().Add(r.window)}
	r.mu.Unlock()
	select {
	case r.wake <- struct{}{}:
	default:
	}
	return nil
}

// Run checks the watched bindings every r.every while there are any, until
// ctx ends.
func (r *reasserter) Run(ctx context.Context) {
	t := time.NewTicker(r.every)
	defer t.Stop()
	for {
		r.mu.Lock()
		idle := len(r.watch) == 0
		r.mu.Unlock()
		if idle {
			select {
			case <-ctx.Done():
				return
			case <-r.wake:
			}
		}
		select {
		case <-ctx.Done():
			return
		case now := <-t.C:
			r.check(now)
		}
	}
}

// check reads the kernel's neighbors of every SVI with watched bindings
// once, programs again those it lost, and forgets the expired ones and
// those bound to another MAC now.
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
			case there && !e.lost && !slices.Equal(e.mac, g.mac):
				r.forget(k, g) // bound elsewhere now
				continue
			case there && !e.lost:
				continue
			}
			g.again++
			r.mu.Lock()
			if cur, ok := r.watch[k]; ok && slices.Equal(cur.mac, g.mac) {
				r.watch[k] = g
			}
			r.mu.Unlock()
			if err := r.prog.Program(k.ifindex, k.ip, g.mac); err != nil {
				r.log.Error("program again", "ip", k.ip, "mac", g.mac.String(), "ifindex", k.ifindex, "err", err)
				continue
			}
			r.log.Info("binding programmed again: the kernel lost it right after it was programmed",
				"ip", k.ip, "mac", g.mac.String(), "ifindex", k.ifindex, "times", g.again)
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
