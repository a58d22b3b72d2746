// Package nlwatch follows a netlink multicast group: subscribe, dump the
// current state, apply events, and start over after the socket failed (for
// example ENOBUFS when the kernel outran the reader), so that a mirror of
// kernel state never silently goes stale.
package nlwatch

import (
	"context"
	"log/slog"
	"time"
)

// Source is one netlink subscription.
type Source[U any] struct {
	// Name names the subscription in logs ("neigh", "link", "addr").
	Name string
	// Subscribe starts delivering events on ch until done is closed; it calls
	// onErr and closes ch when the subscription fails.
	Subscribe func(ch chan<- U, done <-chan struct{}, onErr func(error)) error
	// Dump reads the current state and applies it. It runs after Subscribe,
	// so that no change is lost between the two; events queued meanwhile are
	// applied afterwards, which converges because each event carries the
	// object's whole state.
	Dump func() error
	// Apply applies one event.
	Apply func(U)
	// Flush, when not nil, is called whenever Apply has taken every update
	// received so far (the channel is empty), and before a refresh dump: a
	// burst of updates can be completed with one kernel read instead of one
	// per update.
	Flush func()
	// Resynced, when not nil, is called each time the subscription failed
	// after the first dump and the state was dumped again.
	Resynced func()
	// Refresh, when not nil, makes Follow dump again (keeping the
	// subscription) each time it receives: a safety net for kernel paths
	// that change state without a notification.
	Refresh <-chan struct{}
}

// Follow runs s until ctx is done. It calls ready once, after the first
// successful dump. It returns nil when ctx ends, after every goroutine it
// started (including the netlink library's reader) has exited.
func Follow[U any](ctx context.Context, log *slog.Logger, s Source[U], ready func()) error {
	log = log.With("subscription", s.Name)
	delay := 100 * time.Millisecond
	for first := true; ; first = false {
		if !first {
			select {
			case <-ctx.Done():
				return nil
			case <-time.After(delay):
			}
			delay = min(2*delay, 5*time.Second)
		}
		ch := make(chan U, 4096)
		done := make(chan struct{})
		err := s.Subscribe(ch, done, func(err error) {
			if ctx.Err() == nil {
				log.Warn("netlink subscription error", "err", err)
			}
		})
		if err != nil {
			close(done)
			log.Error("netlink subscribe", "err", err)
			continue
		}
		if err := s.Dump(); err != nil {
			close(done)
			drain(ch)
			log.Error("netlink dump", "err", err)
			continue
		}
		if ready != nil {
			ready()
			ready = nil
		} else if s.Resynced != nil {
			s.Resynced()
		}
		delay = 100 * time.Millisecond
		for alive := true; alive; {
			select {
			case u, ok := <-ch:
				if !ok {
					alive = false
					break
				}
				s.Apply(u)
				if s.Flush != nil && len(ch) == 0 {
					s.Flush()
				}
			case <-s.Refresh:
				if s.Flush != nil {
					s.Flush()
				}
				if err := s.Dump(); err != nil {
					log.Warn("netlink refresh dump", "err", err)
				}
			case <-ctx.Done():
				close(done)
				drain(ch)
				return nil
			}
		}
		close(done)
		log.Warn("netlink subscription ended, dumping again")
	}
}

// drain reads ch until the library's reader closes it, so that reader never
// blocks on a send after the subscription ended.
func drain[U any](ch <-chan U) {
	for range ch {
	}
}
