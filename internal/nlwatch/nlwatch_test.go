package nlwatch

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"sync"
	"testing"
	"time"
)

// fakeKernel is a netlink group whose subscriptions the test can break.
type fakeKernel struct {
	mu      sync.Mutex
	subs    int
	dumps   int
	failSub int // fail this many Subscribe calls first
	current chan<- int
	onErr   func(error)
	applied []int
}

func (k *fakeKernel) source() Source[int] {
	return Source[int]{
		Name: "fake",
		Subscribe: func(ch chan<- int, done <-chan struct{}, onErr func(error)) error {
			k.mu.Lock()
			defer k.mu.Unlock()
			k.subs++
			if k.failSub > 0 {
				k.failSub--
				return errors.New("EPERM")
			}
			k.current, k.onErr = ch, onErr
			go func() { <-done; k.close(ch) }()
			return nil
		},
		Dump:  func() error { k.mu.Lock(); k.dumps++; k.mu.Unlock(); return nil },
		Apply: func(v int) { k.mu.Lock(); k.applied = append(k.applied, v); k.mu.Unlock() },
	}
}

// close ends a subscription as the netlink library does: once.
func (k *fakeKernel) close(ch chan<- int) {
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.current == ch {
		k.current = nil
		close(ch)
	}
}

func (k *fakeKernel) send(t *testing.T, v int) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		k.mu.Lock()
		ch := k.current
		k.mu.Unlock()
		if ch != nil {
			ch <- v
			return
		}
		if time.Now().After(deadline) {
			t.Fatal("no live subscription")
		}
		time.Sleep(time.Millisecond)
	}
}

// overflow makes the live subscription fail, as ENOBUFS does.
func (k *fakeKernel) overflow() {
	k.mu.Lock()
	ch, onErr := k.current, k.onErr
	k.mu.Unlock()
	onErr(errors.New("ENOBUFS"))
	k.close(ch)
}

func (k *fakeKernel) wait(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		k.mu.Lock()
		ok := cond()
		k.mu.Unlock()
		if ok {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("condition not met: subs %d dumps %d applied %v", k.subs, k.dumps, k.applied)
		}
		time.Sleep(time.Millisecond)
	}
}

func TestFollowResubscribesAndDumpsAfterFailure(t *testing.T) {
	k := &fakeKernel{failSub: 1}
	ctx, cancel := context.WithCancel(context.Background())
	readies := 0
	done := make(chan error)
	go func() {
		done <- Follow(ctx, slog.New(slog.NewTextHandler(io.Discard, nil)), k.source(), func() { readies++ })
	}()
	k.send(t, 1)
	k.overflow()
	k.wait(t, func() bool { return k.dumps == 2 && k.current != nil })
	k.send(t, 2)
	k.wait(t, func() bool { return len(k.applied) == 2 })
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("Follow() = %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Follow did not return after cancel")
	}
	k.mu.Lock()
	defer k.mu.Unlock()
	if readies != 1 {
		t.Errorf("ready called %d times, want 1", readies)
	}
	if k.subs != 3 {
		t.Errorf("%d subscriptions, want 3 (failed, first, after overflow)", k.subs)
	}
	if k.current != nil {
		t.Error("the last subscription was not closed")
	}
}
