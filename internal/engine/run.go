package engine

import (
	"context"
	"errors"
	"maps"
	"sync"
	"time"

	"github.com/rarp-replay/rarp-replay/capture"
	"github.com/rarp-replay/rarp-replay/internal/link"
)

// Run drives the engine on the wall clock, firing its timers and handling
// the packets from in (nil when the capture goroutines call Handle
// themselves), until ctx ends or in is closed.
func (e *Engine) Run(ctx context.Context, in <-chan capture.Packet) error {
	t := time.NewTimer(time.Hour)
	defer t.Stop()
	for {
		wait := time.Hour
		if next, ok := e.Next(); ok {
			wait = max(time.Until(next), 0)
		}
		t.Reset(wait)
		select {
		case <-ctx.Done():
			return nil
		case p, ok := <-in:
			if !ok {
				return nil
			}
			e.Handle(time.Now(), p)
		case <-t.C:
			e.Advance(time.Now())
		case <-e.wake:
		}
	}
}

// Counters counts what the engine did, by name ("rarp", "probe-sent",
// "drop/<reason>", ...). Safe for concurrent use.
type Counters struct {
	mu sync.Mutex
	m  map[string]uint64
}

// NewCounters returns empty counters.
func NewCounters() *Counters { return &Counters{m: make(map[string]uint64)} }

// Add increments the counter name.
func (c *Counters) Add(name string) {
	c.mu.Lock()
	c.m[name]++
	c.mu.Unlock()
}

// Get returns the counter name.
func (c *Counters) Get(name string) uint64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.m[name]
}

// Snapshot returns a copy of every counter.
func (c *Counters) Snapshot() map[string]uint64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	return maps.Clone(c.m)
}

func asIneligible(err error, target **link.IneligibleError) bool { return errors.As(err, target) }
