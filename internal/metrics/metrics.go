// Package metrics exposes the daemon's counters in the Prometheus text
// format on /metrics, and its health on /healthz.
package metrics

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Sources are read at every scrape.
type Sources struct {
	Counters func() map[string]uint64 // engine counters: "rarp[PORT]", "drop/REASON", "probe-sent", ...
	Bindings func() int               // bindings in the neighbor mirror
	Ports    func() int               // ports being captured
	Kernel   func() map[string][2]int // per port: packets received, dropped by the kernel
}

// ResyncPrefix prefixes the counter of a netlink subscription's resyncs:
// "netlink-resync/neigh".
const ResyncPrefix = "netlink-resync/"

// Subscriptions are the netlink subscriptions whose resyncs are counted.
var Subscriptions = []string{"link", "addr", "neigh"}

// counterNames maps engine counter names to metric names and help.
var counterNames = map[string][2]string{
	"probe-sent":         {"probes_sent_total", "Probes (ARP requests, Neighbor Solicitations) sent."},
	"probe-retry":        {"probe_retries_total", "Probes sent again after no reply."},
	"probe-rate-limited": {"probes_rate_limited_total", "Probes not sent because a probe rate limit was reached."},
	"probe-send-error":   {"probe_send_errors_total", "Probes the port's handle failed to send."},
	"probe-dry-run":      {"probes_dry_run_total", "Probes decided but not sent (--dry-run)."},
	"verified":           {"bindings_verified_total", "Bindings the VM answered for."},
	"failed":             {"bindings_failed_total", "Bindings given up after every retry."},
	"programmed":         {"bindings_programmed_total", "Verified bindings programmed as local neighbors."},
	"program-error":      {"program_errors_total", "Verified bindings the kernel refused to program."},
	"cycle":              {"migrations_total", "Migrations handled (probe cycles completed)."},
	"rarp-duplicate":     {"rarps_duplicate_total", "RARPs of a migration already being handled."},
	"rarp-via-any":       {"rarps_via_any_total", "RARPs only the any-device handle caught (new ports)."},
}

// Collector turns Sources into metrics.
type Collector struct {
	src     Sources
	Latency prometheus.Histogram

	rarps, drops, events *prometheus.Desc
	resyncs              *prometheus.Desc
	bindings, ports      *prometheus.Desc
	pcapRecv, pcapDrops  *prometheus.Desc
	counters             map[string]*prometheus.Desc
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
		rarps:     prometheus.NewDesc(n("rarps_total"), "RARP announcements decoded, by access port.", []string{"port"}, nil),
		drops:     prometheus.NewDesc(n("drops_total"), "Frames dropped, by reason.", []string{"reason"}, nil),
		events:    prometheus.NewDesc(n("events_total"), "Other engine events, by name.", []string{"event"}, nil),
		resyncs:   prometheus.NewDesc(n("netlink_resyncs_total"), "Times a netlink subscription failed (the kernel outran the reader: ENOBUFS) and its table was dumped again.", []string{"subscription"}, nil),
		bindings:  prometheus.NewDesc(n("mirrored_bindings"), "Bindings in the neighbor mirror, remembered ones included.", nil, nil),
		ports:     prometheus.NewDesc(n("captured_ports"), "Access ports with an open capture handle.", nil, nil),
		pcapRecv:  prometheus.NewDesc(n("pcap_received_total"), "Frames the kernel passed to a port's capture handle.", []string{"port"}, nil),
		pcapDrops: prometheus.NewDesc(n("pcap_kernel_drops_total"), "Frames the kernel dropped for a port's capture handle.", []string{"port"}, nil),
		counters:  map[string]*prometheus.Desc{},
	}
	for k, v := range counterNames {
		c.counters[k] = prometheus.NewDesc(n(v[0]), v[1], nil, nil)
	}
	return c
}

// Describe implements prometheus.Collector.
func (c *Collector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{c.rarps, c.drops, c.events, c.resyncs, c.bindings, c.ports, c.pcapRecv, c.pcapDrops} {
		ch <- d
	}
	for _, d := range c.counters {
		ch <- d
	}
	c.Latency.Describe(ch)
}

// Collect implements prometheus.Collector.
func (c *Collector) Collect(ch chan<- prometheus.Metric) {
	counter := func(d *prometheus.Desc, v float64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, v, labels...)
	}
	if c.src.Counters != nil {
		all := c.src.Counters()
		for _, sub := range Subscriptions {
			counter(c.resyncs, float64(all[ResyncPrefix+sub]), sub)
		}
		for name, v := range all {
			switch {
			case strings.HasPrefix(name, ResyncPrefix):
			case strings.HasPrefix(name, "rarp[") && strings.HasSuffix(name, "]"):
				counter(c.rarps, float64(v), name[5:len(name)-1])
			case strings.HasPrefix(name, "drop/"):
				counter(c.drops, float64(v), name[5:])
			case name == "rarp": // the sum of rarps_total
			case c.counters[name] != nil:
				counter(c.counters[name], float64(v))
			default:
				counter(c.events, float64(v), name)
			}
		}
	}
	if c.src.Bindings != nil {
		ch <- prometheus.MustNewConstMetric(c.bindings, prometheus.GaugeValue, float64(c.src.Bindings()))
	}
	if c.src.Ports != nil {
		ch <- prometheus.MustNewConstMetric(c.ports, prometheus.GaugeValue, float64(c.src.Ports()))
	}
	if c.src.Kernel != nil {
		for port, st := range c.src.Kernel() {
			counter(c.pcapRecv, float64(st[0]), port)
			counter(c.pcapDrops, float64(st[1]), port)
		}
	}
	c.Latency.Collect(ch)
}

// Serve serves /metrics and /healthz on ln until ctx ends. healthy reports
// whether the daemon is listening; /healthz answers 503 until it is.
func Serve(ctx context.Context, ln net.Listener, c *Collector, healthy *atomic.Bool, log *slog.Logger) error {
	reg := prometheus.NewRegistry()
	reg.MustRegister(c)
	mux := http.NewServeMux()
	mux.Handle("/metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	mux.HandleFunc("/healthz", func(w http.ResponseWriter, _ *http.Request) {
		if !healthy.Load() {
			http.Error(w, "starting", http.StatusServiceUnavailable)
			return
		}
		w.Write([]byte("ok\n"))
	})
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	done := make(chan struct{})
	go func() {
		defer close(done)
		<-ctx.Done()
		sctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
		defer cancel()
		srv.Shutdown(sctx)
	}()
	log.Info("serving metrics", "addr", ln.Addr().String())
	err := srv.Serve(ln)
	<-done
	if errors.Is(err, http.ErrServerClosed) {
		return nil
	}
	return err
}
