package engine

import (
	"context"
	"time"
)

// Run drives the engine's timers on the wall clock (retries, give-ups, the
// end of a cycle's window) and programs verified bindings on a goroutine
// of its own, in batches, until ctx ends; the capture goroutines call
// Process with each frame themselves.
func (e *Engine) Run(ctx context.Context) error {
	wait := e.startProgramming(ctx)
	defer wait()
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
		case <-t.C:
			e.Advance(time.Now())
		case <-e.wake:
		}
	}
}
