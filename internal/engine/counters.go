package engine

import (
	"maps"
	"sync"
)

// Event is one of the daemon's counted events. Every Event has a metric
// (internal/metrics) and a stable name in logs; the compiler ties each
// count to both.
type Event uint8

// The events, in the order metrics list them.
const (
	ProbeSent        Event = iota // a probe (ARP request, NS) written to a port
	ProbeRetry                    // a probe sent again after no reply
	ProbeRateLimited              // a probe not sent: a probe rate limit was reached
	ProbeSendError                // the port's handle failed to send a probe
	ProbeDryRun                   // a probe decided but not sent (--dry-run)
	Verified                      // a binding the VM answered for
	Failed                        // a binding given up after every retry
	Programmed                    // a verified binding programmed as a local neighbor
	ProgramError                  // the kernel refused to program a verified binding
	Cycle                         // a migration (probe cycle) completed
	RARPDuplicate                 // a RARP of a migration already being handled
	RARPViaAny                    // a RARP only the any-device handle caught (a new port)
	ReplyViaAny                   // an answer only the any-device handle caught (a new port's probes)
	ReplyDuplicate                // an answer repeating one already believed (seen twice, or the VM answered twice)
	StateSaveError                // --state-file could not be saved
	StateLoadError                // --state-file could not be loaded (moved aside)
	numEvents
)

var eventNames = [numEvents]string{
	ProbeSent: "probe-sent", ProbeRetry: "probe-retry", ProbeRateLimited: "probe-rate-limited",
	ProbeSendError: "probe-send-error", ProbeDryRun: "probe-dry-run", Verified: "verified",
	Failed: "failed", Programmed: "programmed", ProgramError: "program-error", Cycle: "cycle",
	RARPDuplicate: "rarp-duplicate", RARPViaAny: "rarp-via-any",
	ReplyViaAny: "reply-via-any", ReplyDuplicate: "reply-duplicate",
	StateSaveError: "state-save-error", StateLoadError: "state-load-error",
}

func (e Event) String() string {
	if e < numEvents {
		return eventNames[e]
	}
	return "event?"
}

// Events lists every Event.
func Events() []Event {
	out := make([]Event, numEvents)
	for i := range out {
		out[i] = Event(i)
	}
	return out
}

// Subscriptions are the netlink subscriptions whose resyncs are counted.
var Subscriptions = []string{"link", "addr", "neigh"}

// Counters counts what the daemon did: events, RARPs by port, drops by
// reason, netlink resyncs by subscription. Safe for concurrent use.
type Counters struct {
	mu      sync.Mutex
	events  [numEvents]uint64
	rarps   map[string]uint64
	drops   map[string]uint64
	resyncs map[string]uint64
}

// NewCounters returns counters at zero.
func NewCounters() *Counters {
	return &Counters{rarps: map[string]uint64{}, drops: map[string]uint64{}, resyncs: map[string]uint64{}}
}

// Count counts one e.
func (c *Counters) Count(e Event) {
	c.mu.Lock()
	c.events[e]++
	c.mu.Unlock()
}

// RARP counts a RARP decoded on an access port.
func (c *Counters) RARP(port string) { c.inc(c.rarps, port) }

// Drop counts a frame dropped for reason (a packet.DropError reason, an
// eligibility reason or one of the engine's Drop* reasons).
func (c *Counters) Drop(reason string) { c.inc(c.drops, reason) }

// Resync counts a netlink subscription that failed and was dumped again.
func (c *Counters) Resync(subscription string) { c.inc(c.resyncs, subscription) }

func (c *Counters) inc(m map[string]uint64, key string) {
	c.mu.Lock()
	m[key]++
	c.mu.Unlock()
}

// Snapshot is a copy of every counter.
type Snapshot struct {
	Events  [numEvents]uint64
	RARPs   map[string]uint64 // by port
	Drops   map[string]uint64 // by reason
	Resyncs map[string]uint64 // by subscription
}

// Snapshot returns a copy of every counter.
func (c *Counters) Snapshot() Snapshot {
	c.mu.Lock()
	defer c.mu.Unlock()
	return Snapshot{Events: c.events, RARPs: maps.Clone(c.rarps), Drops: maps.Clone(c.drops), Resyncs: maps.Clone(c.resyncs)}
}

// Get returns the count of e.
func (c *Counters) Get(e Event) uint64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.events[e]
}

// Dropped returns the count of drops for reason.
func (c *Counters) Dropped(reason string) uint64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.drops[reason]
}

// Flat returns the non-zero counters as one map for a log line:
// event names, "rarp[PORT]", "drop/REASON", "netlink-resync/SUB".
func (s Snapshot) Flat() map[string]uint64 {
	out := map[string]uint64{}
	for e, v := range s.Events {
		if v != 0 {
			out[Event(e).String()] = v
		}
	}
	var rarps uint64
	for port, v := range s.RARPs {
		out["rarp["+port+"]"] = v
		rarps += v
	}
	if rarps != 0 {
		out["rarp"] = rarps
	}
	for reason, v := range s.Drops {
		out["drop/"+reason] = v
	}
	for sub, v := range s.Resyncs {
		out["netlink-resync/"+sub] = v
	}
	return out
}

// Verdicts lists every Verdict a Decision can carry (docs/TROUBLESHOOTING.md
// explains each; TestTroubleshootingDoc checks it does, and that this list
// is complete).
func Verdicts() []Verdict {
	return []Verdict{VerdictProbe, VerdictDuplicate, VerdictVerified, VerdictDrop}
}
