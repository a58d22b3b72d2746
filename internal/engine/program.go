package engine

import (
	"context"
	"errors"
	"net"
	"net/netip"
	"sync"
	"time"
)

// Replace is a verified binding to program: IP bound to MAC as a local,
// reachable neighbor on the interface IfIndex.
type Replace struct {
	IfIndex int
	IP      netip.Addr
	MAC     net.HardwareAddr
}

// BatchProgrammer is a Programmer that programs many bindings at once (one
// system call for all: neigh.Kernel), returning one error per binding.
type BatchProgrammer interface {
	Programmer
	ProgramBatch([]Replace) []error
}

// ProgramEach programs rs one at a time through p; one error per binding.
func ProgramEach(p Programmer, rs []Replace) []error {
	errs := make([]error, len(rs))
	for i, r := range rs {
		errs[i] = p.Program(r.IfIndex, r.IP, r.MAC)
	}
	return errs
}

// ProgramAll programs rs through p, in one batch when p is a
// BatchProgrammer; one error per binding, whatever p returned.
func ProgramAll(p Programmer, rs []Replace) []error {
	bp, ok := p.(BatchProgrammer)
	if !ok {
		return ProgramEach(p, rs)
	}
	errs := bp.ProgramBatch(rs)
	for len(errs) < len(rs) {
		errs = append(errs, errShortBatch)
	}
	return errs
}

// programQueue bounds the verified bindings waiting for Run's programming
// goroutine; past it a binding is programmed by the goroutine that
// verified it, as without Run. programBatch bounds what one ProgramBatch
// call takes.
const (
	programQueue = 4096
	programBatch = 128
)

// errShortBatch is the outcome of a binding a BatchProgrammer returned no
// error slot for.
var errShortBatch = errors.New("the programmer reported fewer outcomes than bindings")

// programJob is a verified binding waiting to be programmed.
type programJob struct {
	c  *cycle
	pr *probe
	r  Replace
}

// program programs pr's verified binding, or, while Run is running, hands
// it to Run's programming goroutine and returns at once: a netlink write
// waits for the kernel's RTNL lock, which zebra holds often during a mass
// migration, and the capture goroutine that verified the binding has the
// next RARPs and answers to handle. The cycle ends (and is reported) once
// its last binding is programmed. Called with e.mu held.
func (e *Engine) program(now time.Time, c *cycle, pr *probe) error {
	j := programJob{c: c, pr: pr, r: Replace{IfIndex: pr.dev, IP: pr.ip, MAC: c.mac}}
	if e.progq != nil {
		select {
		case e.progq <- j:
			c.programming++
			return nil
		default: // full: program it here
		}
	}
	start := time.Now()
	err := e.prog.Program(j.r.IfIndex, j.r.IP, j.r.MAC)
	return e.programmed(now, c, pr, time.Since(start), err)
}

// programmed records the outcome of programming pr's binding, which took
// took since its verification. Called with e.mu held.
func (e *Engine) programmed(now time.Time, c *cycle, pr *probe, took time.Duration, err error) error {
	if err != nil {
		e.stats.Count(ProgramError)
		e.log.Error("program neighbor", "mac", c.mac.String(), "ip", pr.ip, "svi", c.port.SVI.Name, "err", err)
		return err
	}
	e.stats.Count(Programmed)
	c.report.Programmed = append(c.report.Programmed, pr.ip)
	c.report.Latency = now.Sub(c.start)
	pr.stages.Program = took
	if c.report.Stages == nil {
		c.report.Stages = make(map[netip.Addr]Stages, len(c.probes))
	}
	c.report.Stages[pr.ip] = pr.stages
	return nil
}

// startProgramming starts the goroutine that programs verified bindings in
// batches; the returned function stops it once it has programmed what was
// queued.
func (e *Engine) startProgramming(ctx context.Context) (wait func()) {
	q := make(chan programJob, programQueue)
	e.mu.Lock()
	e.progq = q
	e.mu.Unlock()
	var wg sync.WaitGroup
	wg.Go(func() {
		batch := make([]programJob, 0, programBatch)
		for {
			select {
			case j := <-q:
				batch = append(batch[:0], j)
			case <-ctx.Done():
				// No more jobs once progq is nil (it is read under e.mu);
				// program those already queued, so their cycles end.
				e.mu.Lock()
				e.progq = nil
				e.mu.Unlock()
				for {
					select {
					case j := <-q:
						e.programJobs([]programJob{j})
					default:
						return
					}
				}
			}
		fill:
			for len(batch) < programBatch {
				select {
				case j := <-q:
					batch = append(batch, j)
				default:
					break fill
				}
			}
			e.programJobs(batch)
		}
	})
	return wg.Wait
}

// programJobs programs a batch (ProgramAll), then records the outcomes and ends the cycles they complete.
func (e *Engine) programJobs(batch []programJob) {
	rs := make([]Replace, len(batch))
	for i, j := range batch {
		rs[i] = j.r
	}
	errs := ProgramAll(e.prog, rs)
	now := time.Now()
	e.mu.Lock()
	defer e.mu.Unlock()
	for i, j := range batch {
		e.programmed(now, j.c, j.pr, max(now.Sub(j.pr.verified), 0), errs[i])
		j.c.programming--
		e.maybeFinish(now, j.c)
	}
}
