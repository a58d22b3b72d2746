package neigh

import (
	"bytes"
	"io"
	"runtime"
	"runtime/metrics"
	"strconv"
	"testing"
	"time"
)

func benchMirror(n int) *Mirror {
	m := NewMirror(time.Hour)
	for i := range n {
		m.Update(Entry{IfIndex: 5, IP: benchIP(i), MAC: benchMAC(i), State: NUDNoARP, Flags: NTFExtLearned})
	}
	return m
}

// BenchmarkSaveLockHold measures what a periodic --state-file save costs
// the rest of the daemon: while Save runs, a concurrent writer updates one
// binding in a loop (as netlink events do), and the longest single
// Mirror.Update is reported as max-wait-µs (over all iterations; on few
// CPUs it includes scheduling and GC delays, not only the lock). A waiting
// writer also holds off new readers (Lookup), so this is the worst stall
// of a RARP's lookup too. snapshot-µs is the longest snapshot (the copy of
// the bindings), measured on its own: in one hold of the read lock
// (one-hold) or in holds of snapshotBatch MACs (batched, what Save does).
func BenchmarkSaveLockHold(b *testing.B) {
	for _, n := range []int{100_000, 1_000_000} {
		m := benchMirror(n)
		for _, batch := range []int{0, snapshotBatch} {
			mode := "batched"
			if batch == 0 {
				mode = "one-hold"
			}
			b.Run(mode+"/"+strconv.Itoa(n), func(b *testing.B) {
				defer func(old int) { snapshotBatch = old }(snapshotBatch)
				snapshotBatch = batch
				benchSaveLockHold(b, m, n)
			})
		}
	}
}

func benchSaveLockHold(b *testing.B, m *Mirror, n int) {
	name := func(int) string { return "br10" }
	e := Entry{IfIndex: 5, IP: benchIP(n / 2), MAC: benchMAC(n / 2), State: NUDNoARP, Flags: NTFExtLearned}
	var maxWait, maxSnap time.Duration
	for b.Loop() {
		runtime.GC()
		t0 := time.Now()
		snap := m.snapshot(m.now().UnixNano())
		maxSnap = max(maxSnap, time.Since(t0))
		if len(snap) != n {
			b.Fatalf("snapshot of %d bindings, want %d", len(snap), n)
		}
		snap = nil
		runtime.GC() // each Save starts from the same heap

		started, stop, worst := make(chan struct{}), make(chan struct{}), make(chan time.Duration)
		go func() {
			var w time.Duration
			for i := 0; ; i++ {
				t0 := time.Now()
				m.Update(e)
				w = max(w, time.Since(t0))
				if i == 0 {
					close(started)
				}
				select {
				case <-stop:
					worst <- w
					return
				default:
				}
			}
		}()
		<-started
		if err := m.Save(io.Discard, name); err != nil {
			b.Fatal(err)
		}
		close(stop)
		maxWait = max(maxWait, <-worst)
	}
	b.ReportMetric(float64(maxWait.Microseconds()), "max-wait-µs")
	b.ReportMetric(float64(maxSnap.Microseconds()), "snapshot-µs")
}

func heapObjects() uint64 {
	s := []metrics.Sample{{Name: "/memory/classes/heap/objects:bytes"}}
	metrics.Read(s)
	return s[0].Value.Uint64()
}

// heapPeak samples the heap (objects, live and not yet collected) until
// stop is closed and sends the largest value seen above base.
func heapPeak(base uint64, stop <-chan struct{}, peak chan<- uint64) {
	s := []metrics.Sample{{Name: "/memory/classes/heap/objects:bytes"}}
	var p uint64
	t := time.NewTicker(time.Millisecond)
	defer t.Stop()
	for {
		metrics.Read(s)
		p = max(p, s[0].Value.Uint64())
		select {
		case <-stop:
			peak <- p - min(p, base)
			return
		case <-t.C:
		}
	}
}

// BenchmarkStateLoad loads a state file of 100k and 1M bindings, in both
// formats, into an empty mirror (as listen does at start) and reports the
// peak heap during the load above the heap before it (peak-heap-MB: the
// mirror itself included, the file's bytes not).
func BenchmarkStateLoad(b *testing.B) {
	for _, n := range []int{100_000, 1_000_000} {
		for _, version := range []int{2, 1} {
			b.Run("v"+strconv.Itoa(version)+"/"+strconv.Itoa(n), func(b *testing.B) {
				benchLoad(b, n, version)
			})
		}
	}
}

func benchLoad(b *testing.B, n, version int) {
	var buf bytes.Buffer
	name := func(int) string { return "br10" }
	if version == 1 {
		saveV1(b, benchMirror(n), &buf, name)
	} else if err := benchMirror(n).Save(&buf, name); err != nil {
		b.Fatal(err)
	}
	file := buf.Bytes()
	index := func(string) (int, bool) { return 5, true }
	var peak uint64
	b.ReportAllocs()
	for b.Loop() {
		runtime.GC()
		stop, got := make(chan struct{}), make(chan uint64)
		go heapPeak(heapObjects(), stop, got)
		m := NewMirror(time.Hour)
		loaded, err := m.Load(bytes.NewReader(file), index)
		close(stop)
		peak = max(peak, <-got)
		if err != nil || loaded != n {
			b.Fatalf("Load() = %d, %v; want %d", loaded, err, n)
		}
	}
	b.ReportMetric(float64(peak)/(1<<20), "peak-heap-MB")
	b.ReportMetric(float64(len(file))/(1<<20), "file-MB")
}
