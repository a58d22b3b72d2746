// Package metrics exposes the daemon's counters in the Prometheus text
// format on /metrics, and its health on /healthz.
package metrics

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/rarp-replay/rarp-replay/internal/engine"
	"github.com/rarp-replay/rarp-replay/internal/packet"
	"github.com/rarp-replay/rarp-replay/internal/version"
)

// Sources are read at every scrape.
type Sources struct {
	Counters func() engine.Snapshot   // the daemon's counters
	Bindings func() int               // bindings in the neighbor mirror
	Ports    func() int               // ports being captured
	Kernel   func() map[string][2]int // per port: packets received, dropped by the kernel
}

// DropReasons are the reasons a frame can be dropped for: the decoder's
// (packet), the link table's (a RARP on a port that cannot be served), the
// engine's and the capture manager's. rarp_replay_drops_total has a series
// for each from the start, at zero, so that alerts on its increase see the
// first drop. A reason missing here is still counted, from its first drop
// (TestDropReasonsListed keeps the list complete).
var DropReasons = []string{
	// packet.Decode
	packet.ErrTruncated.Reason, packet.ErrLinkType.Reason, packet.ErrEtherType.Reason,
	packet.ErrBadHeader.Reason, packet.ErrOpcode.Reason, packet.ErrMACMismatch.Reason,
	packet.ErrBadMAC.Reason, packet.ErrNotNA.Reason, packet.ErrTooManyVLANs.Reason,
	packet.ErrOutbound.Reason, packet.ErrChecksum.Reason, packet.ErrBadOption.Reason,
	// link: the port cannot be served
	"not-access-port", "unknown-port", "no-vlan", "no-svi",
	// engine
	"cycle-limit", "unknown-mac", "no-probe",
	engine.DropUnsolicited, engine.DropWrongPort, engine.DropEthSource, engine.DropNotAnswer,
	// capture (it counts truncated frames as "truncated", like the decoder)
	"port-rate-limit",
}

// EventMetric returns the metric name (without the rarp_replay_ prefix)
// and help of an engine event. Every engine.Event has one
// (TestEveryEventHasAMetric).
func EventMetric(e engine.Event) (name, help string) {
	switch e {
	case engine.ProbeSent:
		return "probes_sent_total", "Probes (ARP requests, Neighbor Solicitations) sent."
	case engine.ProbeRetry:
		return "probe_retries_total", "Probes sent again after no reply."
	case engine.ProbeRateLimited:
		return "probes_rate_limited_total", "Probes not sent because a probe rate limit was reached."
	case engine.ProbeSendError:
		return "probe_send_errors_total", "Probes the port's handle failed to send."
	case engine.ProbeDryRun:
		return "probes_dry_run_total", "Probes decided but not sent (--dry-run)."
	case engine.Verified:
		return "bindings_verified_total", "Bindings the VM answered for."
	case engine.Failed:
		return "bindings_failed_total", "Bindings given up after every retry."
	case engine.Programmed:
		return "bindings_programmed_total", "Verified bindings programmed as local neighbors."
	case engine.ProgramError:
		return "program_errors_total", "Verified bindings the kernel refused to program."
	case engine.Cycle:
		return "migrations_total", "Migrations handled (probe cycles completed)."
	case engine.RARPDuplicate:
		return "rarps_duplicate_total", "RARPs of a migration already being handled."
	case engine.RARPViaAny:
		return "rarps_via_any_total", "RARPs only the any-device handle caught (new ports)."
	case engine.ReplyDuplicate:
		return "replies_duplicate_total", "Answers repeating one already believed (the VM answered twice, or the any-device handle and a new port's own handle both saw it); not believed again."
	case engine.ReplyViaAny:
		return "replies_via_any_total", "ARP replies and NAs only the any-device handle caught (answers to a new port's probes, sent before its handle was open)."
	case engine.StateSaveError:
		return "state_save_errors_total", "Saves of --state-file that failed (the previous file stays)."
	case engine.StateLoadError:
		return "state_load_errors_total", "Loads of --state-file at start that failed (a refused file is moved aside)."
	}
	return "", ""
}

// Collector turns Sources into metrics.
type Collector struct {
	src     Sources
	Latency prometheus.Histogram
	// Stages splits each programmed binding's RARP → programmed time by
	// engine.Stages' parts, the label "stage".
	Stages *prometheus.HistogramVec
	// LastMigration is the Unix time the last migration was handled at;
	// set by Migrated.
	LastMigration prometheus.Gauge

	rarps, drops        *prometheus.Desc
	resyncs             *prometheus.Desc
	bindings, ports     *prometheus.Desc
	pcapRecv, pcapDrops *prometheus.Desc
	events              []*prometheus.Desc // by engine.Event
	buildInfo           *prometheus.Desc
	build               version.Info
}

// New returns a collector for src.
func New(src Sources) *Collector {
	n := func(name string) string { return "rarp_replay_" + name }
	c := &Collector{
		src: src,
		Latency: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    n("rarp_to_programmed_seconds"),
			Help:    "Time from a migration's first RARP to its last binding programmed.",
			Buckets: []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5},
		}),
		Stages: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    n("binding_stage_seconds"),
			Help:    "Where each programmed binding's time from the RARP went: probe (RARP to the probe the VM answered), answer (that probe to the answer's capture: the VM), handle (capture to verification: the daemon's queue), program (verification to the kernel's acknowledgement).",
			Buckets: []float64{.0001, .00025, .0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5},
		}, []string{"stage"}),
		LastMigration: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: n("last_migration_timestamp_seconds"),
			Help: "Unix time the last migration was handled at (its probe cycle ended, programmed or not); 0 until one is.",
		}),
		rarps:     prometheus.NewDesc(n("rarps_total"), "RARP announcements decoded, by access port.", []string{"port"}, nil),
		drops:     prometheus.NewDesc(n("drops_total"), "Frames dropped, by reason.", []string{"reason"}, nil),
		resyncs:   prometheus.NewDesc(n("netlink_resyncs_total"), "Times a netlink subscription failed (the kernel outran the reader: ENOBUFS) and its table was dumped again.", []string{"subscription"}, nil),
		bindings:  prometheus.NewDesc(n("mirrored_bindings"), "Bindings in the neighbor mirror, remembered ones included.", nil, nil),
		ports:     prometheus.NewDesc(n("captured_ports"), "Access ports with an open capture handle.", nil, nil),
		pcapRecv:  prometheus.NewDesc(n("pcap_received_total"), "Frames the kernel passed to a port's capture handle.", []string{"port"}, nil),
		pcapDrops: prometheus.NewDesc(n("pcap_kernel_drops_total"), "Frames the kernel dropped for a port's capture handle.", []string{"port"}, nil),
		buildInfo: prometheus.NewDesc(n("build_info"), "Always 1; the labels say which build of rarp-replay is running.", []string{"version", "commit", "goversion"}, nil),
		build:     version.Get(),
	}
	for _, st := range engine.StageNames { // every stage, from zero
		c.Stages.WithLabelValues(st)
	}
	for _, e := range engine.Events() {
		name, help := EventMetric(e)
		c.events = append(c.events, prometheus.NewDesc(n(name), help, nil, nil))
	}
	return c
}

// Migrated records a migration the engine handled (its report) at time
// at: the latency when something was programmed, and the time.
func (c *Collector) Migrated(r engine.Report, at time.Time) {
	if len(r.Programmed) > 0 {
		c.Latency.Observe(r.Latency.Seconds())
	}
	for _, st := range r.Stages {
		for i, d := range st.Durations() {
			c.Stages.WithLabelValues(engine.StageNames[i]).Observe(d.Seconds())
		}
	}
	c.LastMigration.Set(float64(at.UnixNano()) / 1e9)
}

// Describe implements prometheus.Collector.
func (c *Collector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{c.rarps, c.drops, c.resyncs, c.bindings, c.ports, c.pcapRecv, c.pcapDrops, c.buildInfo} {
		ch <- d
	}
	for _, d := range c.events {
		ch <- d
	}
	c.Latency.Describe(ch)
	c.Stages.Describe(ch)
	c.LastMigration.Describe(ch)
}

// Collect implements prometheus.Collector.
func (c *Collector) Collect(ch chan<- prometheus.Metric) {
	counter := func(d *prometheus.Desc, v float64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, v, labels...)
	}
	ch <- prometheus.MustNewConstMetric(c.buildInfo, prometheus.GaugeValue, 1, c.build.Version, c.build.Commit, c.build.GoVersion)
	var kernel map[string][2]int
	if c.src.Kernel != nil {
		kernel = c.src.Kernel()
	}
	if c.src.Counters != nil {
		snap := c.src.Counters()
		for _, e := range engine.Events() {
			counter(c.events[e], float64(snap.Events[e])) // every event, from zero
		}
		for _, sub := range engine.Subscriptions {
			counter(c.resyncs, float64(snap.Resyncs[sub]), sub)
		}
		for port, v := range snap.RARPs {
			counter(c.rarps, float64(v), port)
		}
		for port := range kernel { // every port captured, from zero
			if _, ok := snap.RARPs[port]; !ok {
				counter(c.rarps, 0, port)
			}
		}
		for reason, v := range snap.Drops {
			counter(c.drops, float64(v), reason)
		}
		for _, reason := range DropReasons { // every known reason, from zero
			if _, ok := snap.Drops[reason]; !ok {
				counter(c.drops, 0, reason)
			}
		}
	}
	if c.src.Bindings != nil {
		ch <- prometheus.MustNewConstMetric(c.bindings, prometheus.GaugeValue, float64(c.src.Bindings()))
	}
	if c.src.Ports != nil {
		ch <- prometheus.MustNewConstMetric(c.ports, prometheus.GaugeValue, float64(c.src.Ports()))
	}
	for port, st := range kernel {
		counter(c.pcapRecv, float64(st[0]), port)
		counter(c.pcapDrops, float64(st[1]), port)
	}
	c.Latency.Collect(ch)
	c.Stages.Collect(ch)
	c.LastMigration.Collect(ch)
}

// Options bound what clients of the metrics server can hold: time,
// header memory and connections (each one a file descriptor of the
// daemon's, which state saves and capture handles need too). Zero fields
// take DefaultOptions' values.
type Options struct {
	// ReadTimeout bounds reading a request, headers and body, from its
	// first byte; it also bounds how long a new connection may stay silent.
	// A client sending its headers byte by byte (slowloris) is disconnected
	// when it expires.
	ReadTimeout time.Duration
	// WriteTimeout bounds answering a request, from the end of its headers:
	// a client that does not read the response is disconnected.
	WriteTimeout time.Duration
	// IdleTimeout bounds how long a keep-alive connection waits for its
	// next request.
	IdleTimeout time.Duration
	// MaxHeaderBytes bounds a request's headers; larger ones are answered
	// 431 (net/http reads up to 4 KiB beyond it before deciding).
	MaxHeaderBytes int
	// MaxConns bounds the connections open at once. A connection beyond it
	// is accepted and closed at once, and counted
	// (rarp_replay_metrics_connections_refused_total).
	MaxConns int
}

// DefaultOptions suit Prometheus scrapes: one connection per scraper, a
// small request every few seconds, answered in milliseconds.
var DefaultOptions = Options{
	ReadTimeout:    5 * time.Second,
	WriteTimeout:   5 * time.Second,
	IdleTimeout:    30 * time.Second,
	MaxHeaderBytes: 8 << 10,
	MaxConns:       64,
}

func (o Options) withDefaults() Options {
	d := DefaultOptions
	if o.ReadTimeout <= 0 {
		o.ReadTimeout = d.ReadTimeout
	}
	if o.WriteTimeout <= 0 {
		o.WriteTimeout = d.WriteTimeout
	}
	if o.IdleTimeout <= 0 {
		o.IdleTimeout = d.IdleTimeout
	}
	if o.MaxHeaderBytes <= 0 {
		o.MaxHeaderBytes = d.MaxHeaderBytes
	}
	if o.MaxConns <= 0 {
		o.MaxConns = d.MaxConns
	}
	return o
}

// limitListener holds at most max connections open.
//
// At the limit it accepts the next connection and closes it at once, rather
// than leaving it in the kernel's accept queue by not calling Accept (as
// golang.org/x/net/netutil.LimitListener does). Both bound the daemon's
// file descriptors: max, plus one for the instant a refused connection is
// open. Closing at once also keeps the accept queue drained: queued
// connections cost no descriptors, but a flood of idle ones queued ahead of
// a scrape would each be served, and time out, before it (4,096 of them
// with 64 slots and a 5 s read timeout: over five minutes), whereas a
// refused scraper learns at once (the connection is closed: EOF), records
// a failed scrape and tries again at its next interval. And a refusal can
// be counted.
type limitListener struct {
	net.Listener
	max     int64
	active  atomic.Int64  // connections accepted and not yet closed
	refused atomic.Uint64 // connections closed at once because max were open
	log     *slog.Logger
	warned  time.Time // last refusal logged; only Accept's goroutine uses it
	changed func()    // tests: called after every accept, refusal and close
}

func newLimitListener(ln net.Listener, max int, log *slog.Logger) *limitListener {
	return &limitListener{Listener: ln, max: int64(max), log: log}
}

// Accept returns the next connection while fewer than max are open, and
// closes any beyond.
func (l *limitListener) Accept() (net.Conn, error) {
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			return nil, err
		}
		if l.admit() {
			l.notify()
			return &limitConn{Conn: c, l: l}, nil
		}
		// Counted before the close: a scraper that sees its connection
		// closed then finds it counted.
		n := l.refused.Add(1)
		c.Close()
		if now := time.Now(); now.Sub(l.warned) >= time.Minute {
			l.warned = now
			l.log.Warn("metrics connections refused: too many open", "max", l.max, "refused_total", n)
		}
		l.notify()
	}
}

// admit takes a slot if one is free: active never exceeds max.
func (l *limitListener) admit() bool {
	for {
		n := l.active.Load()
		if n >= l.max {
			return false
		}
		if l.active.CompareAndSwap(n, n+1) {
			return true
		}
	}
}

func (l *limitListener) notify() {
	if l.changed != nil {
		l.changed()
	}
}

// limitConn gives its slot back when closed.
type limitConn struct {
	net.Conn
	l    *limitListener
	once sync.Once
}

func (c *limitConn) Close() error {
	err := c.Conn.Close()
	c.once.Do(func() {
		c.l.active.Add(-1)
		c.l.notify()
	})
	return err
}

// CloseWrite lets net/http half-close before hanging up on a client
// (after a 431), as it does on a bare TCP connection.
func (c *limitConn) CloseWrite() error {
	if cw, ok := c.Conn.(interface{ CloseWrite() error }); ok {
		return cw.CloseWrite()
	}
	return nil
}

// Serve serves /metrics and /healthz on ln until ctx ends, within
// DefaultOptions. healthy reports whether the daemon is listening; /healthz
// answers 503 until it is.
func Serve(ctx context.Context, ln net.Listener, c *Collector, healthy *atomic.Bool, log *slog.Logger) error {
	return ServeWith(ctx, ln, c, healthy, log, DefaultOptions)
}

// ServeWith is Serve within o.
func ServeWith(ctx context.Context, ln net.Listener, c *Collector, healthy *atomic.Bool, log *slog.Logger, o Options) error {
	o = o.withDefaults()
	return serve(ctx, newLimitListener(ln, o.MaxConns, log), c, healthy, log, o)
}

// registry returns what /metrics serves: c, the metrics server's own
// connection counts (from ln), and the process_* and go_* metrics of the
// Prometheus client's collectors.
func registry(c *Collector, ln *limitListener) *prometheus.Registry {
	reg := prometheus.NewRegistry()
	reg.MustRegister(c,
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "rarp_replay_metrics_connections",
			Help: "Connections open to this metrics server.",
		}, func() float64 { return float64(ln.active.Load()) }),
		prometheus.NewCounterFunc(prometheus.CounterOpts{
			Name: "rarp_replay_metrics_connections_refused_total",
			Help: "Connections to this metrics server closed at once because the most it holds were open.",
		}, func() float64 { return float64(ln.refused.Load()) }),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		collectors.NewGoCollector(),
	)
	return reg
}

func serve(ctx context.Context, ln *limitListener, c *Collector, healthy *atomic.Bool, log *slog.Logger, o Options) error {
	reg := registry(c, ln)
	mux := http.NewServeMux()
	mux.Handle("/metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	mux.HandleFunc("/healthz", func(w http.ResponseWriter, _ *http.Request) {
		if !healthy.Load() {
			http.Error(w, "starting", http.StatusServiceUnavailable)
			return
		}
		w.Write([]byte("ok\n"))
	})
	srv := &http.Server{
		Handler:        mux,
		ReadTimeout:    o.ReadTimeout, // and ReadHeaderTimeout, which defaults to it
		WriteTimeout:   o.WriteTimeout,
		IdleTimeout:    o.IdleTimeout,
		MaxHeaderBytes: o.MaxHeaderBytes,
		ErrorLog:       slog.NewLogLogger(log.Handler(), slog.LevelWarn), // accept errors, in the daemon's log
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		<-ctx.Done()
		sctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
		defer cancel()
		if srv.Shutdown(sctx) != nil {
			srv.Close() // requests still running: drop them
		}
	}()
	log.Info("serving metrics", "addr", ln.Addr().String())
	err := srv.Serve(ln)
	<-done
	if errors.Is(err, http.ErrServerClosed) {
		return nil
	}
	return err
}
