package cmd

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"net"
	"net/http"
	"net/http/pprof"
	"net/netip"
	"os"
	"os/signal"
	"path"
	"path/filepath"
	"runtime/debug"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/rarp-replay/rarp-replay/capture"
	"github.com/rarp-replay/rarp-replay/capture/pcapio"
	"github.com/rarp-replay/rarp-replay/internal/engine"
	"github.com/rarp-replay/rarp-replay/internal/link"
	"github.com/rarp-replay/rarp-replay/internal/metrics"
	"github.com/rarp-replay/rarp-replay/internal/packet"
	"github.com/rarp-replay/rarp-replay/internal/status"
	"github.com/rarp-replay/rarp-replay/internal/version"
	"github.com/rarp-replay/rarp-replay/neigh"
	"github.com/spf13/cobra"
)

type listenOptions struct {
	ifaces     string
	include    []string // with -i any: path.Match patterns of the ports to serve
	exclude    []string // with -i any: path.Match patterns of the ports not to serve
	routed     bool     // with -i any: serve interfaces that are no bridge member too
	retention  time.Duration
	dumpNeigh  string
	metrics    string
	statusSock string
	statusSet  bool // --status-socket given: failing to open it is an error
	stateFile  string
	stateEvery time.Duration
	sources    []string
	capBuffer  int
	tapBuffer  int
	portRate   float64
	portBurst  int
	cfg        engine.Config

	overrides map[string]link.Override // --source, parsed by validate
}

// validate checks every flag, naming the wrong one.
func (o *listenOptions) validate() error {
	switch {
	case o.cfg.ProbeTimeout <= 0:
		return fmt.Errorf("--probe-timeout %s: must be positive", o.cfg.ProbeTimeout)
	case o.cfg.MaxProbeTimeout < 0:
		return fmt.Errorf("--probe-timeout-max %s: must not be negative (0: no cap)", o.cfg.MaxProbeTimeout)
	case o.cfg.Retries < 0:
		return fmt.Errorf("--probe-retries %d: must not be negative", o.cfg.Retries)
	case o.cfg.Window < 0:
		return fmt.Errorf("--cycle-window %s: must not be negative", o.cfg.Window)
	case o.retention < 0:
		return fmt.Errorf("--retention %s: must not be negative", o.retention)
	case o.stateEvery <= 0:
		return fmt.Errorf("--state-interval %s: must be positive", o.stateEvery)
	case o.capBuffer < 64<<10:
		return fmt.Errorf("--capture-buffer %d: must be at least 65536", o.capBuffer)
	case o.tapBuffer != 0 && o.tapBuffer < 64<<10:
		return fmt.Errorf("--tap-capture-buffer %d: must be 0 or at least 65536", o.tapBuffer)
	case o.cfg.ProbeRate < 0, o.cfg.PortProbeRate < 0, o.portRate < 0:
		return errors.New("--probe-rate, --port-probe-rate and --port-frame-rate must not be negative (0: no limit)")
	case o.cfg.ProbeBurst < 1, o.cfg.PortProbeBurst < 1, o.portBurst < 1:
		return errors.New("--probe-burst, --port-probe-burst and --port-frame-burst must be at least 1")
	case o.cfg.MaxCycles < 0:
		return fmt.Errorf("--max-migrations %d: must not be negative (0: no limit)", o.cfg.MaxCycles)
	case len(o.include)+len(o.exclude) > 0 && o.ifaces != "any" && o.ifaces != "":
		return fmt.Errorf("--include and --exclude select among -i any; -i %q names the ports itself", o.ifaces)
	case !o.routed && o.ifaces != "any" && o.ifaces != "":
		return fmt.Errorf("--routed-ports=false selects among -i any; -i %q names the ports itself", o.ifaces)
	}
	for _, f := range []struct {
		flag     string
		patterns []string
	}{{"--include", o.include}, {"--exclude", o.exclude}} {
		for _, p := range f.patterns {
			if _, err := path.Match(p, ""); err != nil { // checks the whole pattern
				return fmt.Errorf("%s %q: %w", f.flag, p, err)
			}
		}
	}
	if o.stateFile != "" {
		if err := writableDir(filepath.Dir(o.stateFile)); err != nil {
			return fmt.Errorf("--state-file %s: %w", o.stateFile, err)
		}
	}
	var err error
	if o.overrides, err = parseSources(o.sources); err != nil {
		return err
	}
	return checkSources(o.overrides)
}

// writableDir reports why dir cannot hold the state file, if it cannot.
func writableDir(dir string) error {
	st, err := os.Stat(dir)
	if err != nil {
		return fmt.Errorf("directory: %w", err)
	}
	if !st.IsDir() {
		return fmt.Errorf("%s is not a directory", dir)
	}
	f, err := os.CreateTemp(dir, ".rarp-replay-write-test-*")
	if err != nil {
		return fmt.Errorf("directory %s is not writable: %w", dir, err)
	}
	f.Close()
	return os.Remove(f.Name())
}

// checkSources checks that each --source SVI exists and that each address
// is assigned to it or to a device stacked on it (an anycast macvlan such
// as Cumulus's vlan10-v0, which shows as SVI-*).
func checkSources(overrides map[string]link.Override) error {
	for svi, ov := range overrides {
		ifc, err := net.InterfaceByName(svi)
		if err != nil {
			return fmt.Errorf("--source %s=...: no interface %s", svi, svi)
		}
		held := map[netip.Addr]bool{}
		ifcs, _ := net.Interfaces()
		for _, other := range ifcs {
			if other.Index != ifc.Index && !strings.HasPrefix(other.Name, svi+"-") {
				continue
			}
			addrs, _ := other.Addrs()
			for _, a := range addrs {
				if p, err := netip.ParsePrefix(a.String()); err == nil {
					held[p.Addr().Unmap()] = true
				}
			}
		}
		for _, ip := range []netip.Addr{ov.IPv4, ov.IPv6} {
			if ip.IsValid() && !held[ip] {
				return fmt.Errorf("--source %s=%s: %s is not an address of %s", svi, ip, ip, svi)
			}
		}
	}
	return nil
}

func newListen(lo *logOptions) *cobra.Command {
	o := &listenOptions{cfg: engine.DefaultConfig}
	c := &cobra.Command{
		Use:   "listen",
		Short: "Run the daemon: answer RARP announcements on access ports",
		Long: `listen captures RARP frames on the leaf's access ports (bridge members that
are not VXLAN devices, and stand-alone L3 interfaces). For each announced MAC
it looks up every address bound to it on the port's SVI in a mirror of the
kernel's neighbor table (kept by netlink, remembering bindings EVPN withdrew
for --retention), probes each address with a unicast ARP request or Neighbor
Solicitation, and programs each address the VM answers for as a local,
reachable neighbor on the SVI.

SIGTERM or SIGINT stops it (exit status 0), after saving --state-file.
SIGUSR1 dumps the mirror (--dump-neigh). SIGHUP, SIGUSR2, and SIGUSR1
without --dump-neigh are logged and change nothing: settings take effect at
a restart.

Needs CAP_NET_RAW (capture and send) and CAP_NET_ADMIN (program neighbors).`,
		Args: usageArgs(cobra.NoArgs),
		// Flags are checked before any privilege or socket.
		PreRunE: validated(o.validate),
		RunE: func(c *cobra.Command, _ []string) error {
			log, err := lo.logger(os.Stderr)
			if err != nil {
				return err
			}
			o.statusSet = c.Flags().Changed("status-socket")
			return runListen(c.Context(), o, log)
		},
	}
	f := c.Flags()
	f.StringVarP(&o.ifaces, "interface", "i", "any", `access ports to serve: "any" (every eligible port, tracked live) or a comma-separated list`)
	f.StringArrayVar(&o.include, "include", nil, "with -i any: serve only ports whose name matches this glob (repeatable; * ? [a-z]; default: every port)")
	f.StringArrayVar(&o.exclude, "exclude", nil, "with -i any: never serve ports whose name matches this glob, e.g. 'swp5*' for uplinks (repeatable; wins over --include)")
	f.BoolVar(&o.routed, "routed-ports", true, "with -i any: also serve interfaces that are no bridge member (routed access ports; on a leaf also the uplinks and the management port, where a RARP finds nothing to probe); false: bridge members only")
	f.DurationVar(&o.retention, "retention", 15*time.Minute, "how long to remember a binding after the kernel deleted it")
	f.DurationVar(&o.cfg.ProbeTimeout, "probe-timeout", o.cfg.ProbeTimeout, "how long the first probe waits for a reply (doubles per retry, up to --probe-timeout-max)")
	f.DurationVar(&o.cfg.MaxProbeTimeout, "probe-timeout-max", o.cfg.MaxProbeTimeout, "the longest a retry waits for a reply (0: no cap)")
	f.IntVar(&o.cfg.Retries, "probe-retries", o.cfg.Retries, "retries of an unanswered probe before the binding is given up")
	f.DurationVar(&o.cfg.Window, "cycle-window", o.cfg.Window, "how long after a probe cycle ends further RARPs for the same MAC belong to it")
	f.BoolVar(&o.cfg.DryRun, "dry-run", false, "decide and log, but send and program nothing")
	f.Float64Var(&o.cfg.ProbeRate, "probe-rate", o.cfg.ProbeRate, "probes per second over all ports (0: no limit)")
	f.IntVar(&o.cfg.ProbeBurst, "probe-burst", o.cfg.ProbeBurst, "probes sent at once over all ports")
	f.Float64Var(&o.cfg.PortProbeRate, "port-probe-rate", o.cfg.PortProbeRate, "probes per second per port (0: no limit)")
	f.IntVar(&o.cfg.PortProbeBurst, "port-probe-burst", o.cfg.PortProbeBurst, "probes sent at once per port")
	f.IntVar(&o.capBuffer, "capture-buffer", pcapio.DefaultOptions.BufferSize, "kernel capture ring per port, in bytes: a burst waits there while the port's frames are handled")
	f.IntVar(&o.tapBuffer, "tap-capture-buffer", pcapio.DefaultOptions.TapBufferSize, "kernel capture ring of a tap port (one VM's vNIC), in bytes; at most --capture-buffer (0: --capture-buffer)")
	f.Float64Var(&o.portRate, "port-frame-rate", 20000, "captured frames per second one port may feed the daemon; beyond, dropped (0: no limit)")
	f.IntVar(&o.portBurst, "port-frame-burst", 20000, "captured frames one port may feed the daemon at once")
	f.IntVar(&o.cfg.MaxCycles, "max-migrations", o.cfg.MaxCycles, "migrations (probe cycles) held at once; beyond, RARPs are dropped (0: no limit)")
	f.StringArrayVar(&o.sources, "source", nil, "probe source for an SVI, for unusual layouts: SVI=IP[,MAC] (repeatable; one IPv4 and one IPv6 per SVI)")
	f.StringVar(&o.stateFile, "state-file", "", "keep the binding memory in this file across restarts (saved periodically and at exit, loaded at start); off when empty")
	f.DurationVar(&o.stateEvery, "state-interval", 30*time.Second, "how often to save --state-file")
	f.StringVar(&o.metrics, "metrics-addr", "", "serve Prometheus /metrics and /healthz on this address (e.g. 127.0.0.1:9465); off when empty")
	f.StringVar(&o.statusSock, "status-socket", status.DefaultSocket, "answer 'rarp-replay status' on this Unix socket (mode 0660); off when empty. The default is skipped with a warning when its directory is missing")
	f.StringVar(&o.dumpNeigh, "dump-neigh", "", "on SIGUSR1 and at exit, write the neighbor mirror (remembered bindings included) to this file, in the JSON 'replay --neigh' reads")
	return c
}

// bridgeMembersOnly narrows a port filter to bridge members
// (--routed-ports=false): the underlay uplinks, the management port and any
// other routed interface are then not served, whatever their names, also
// when they are created or enslaved later.
func bridgeMembersOnly(selected func(link.Link) bool, links *link.Table) func(link.Link) bool {
	return func(l link.Link) bool {
		m, ok := links.Get(l.MasterIndex)
		return ok && m.Kind == "bridge" && selected(l)
	}
}

// selection returns the port filter for -i, --include and --exclude,
// which the capture manager applies to every link, also to links created or
// renamed later. With -i any: every port whose name matches no exclude
// pattern and, if there are include patterns, one of them (path.Match;
// validate has checked the patterns). With a list, checking that every
// named interface exists and is an access port: those names.
func selection(ifaces string, include, exclude []string, links *link.Table) (func(link.Link) bool, error) {
	if ifaces == "any" || ifaces == "" {
		matches := func(patterns []string, name string) bool {
			for _, p := range patterns {
				if ok, _ := path.Match(p, name); ok {
					return true
				}
			}
			return false
		}
		return func(l link.Link) bool {
			return !matches(exclude, l.Name) && (len(include) == 0 || matches(include, l.Name))
		}, nil
	}
	names := make(map[string]bool)
	var errs []error
	for _, n := range strings.Split(ifaces, ",") {
		n = strings.TrimSpace(n)
		if n == "" {
			continue
		}
		names[n] = true
		l, ok := links.ByName(n)
		if !ok {
			errs = append(errs, fmt.Errorf("interface %q does not exist", n))
			continue
		}
		if err := links.AccessPort(l.Index); err != nil {
			errs = append(errs, fmt.Errorf("interface %q cannot be served: %w", n, err))
		}
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	return func(l link.Link) bool { return names[l.Name] }, nil
}

// linkRefresh is how often the link table is dumped again, for kernel
// paths that change a link without a notification.
const linkRefresh = time.Minute

// runListen wires the daemon: the link and neighbor watchers, the state
// file, the capture manager, the engine and the metrics server, each on a
// goroutine owned by ctx, and waits for ctx to end.
func runListen(ctx context.Context, o *listenOptions, log *slog.Logger) error {
	if err := requireCaps(!o.cfg.DryRun); err != nil {
		return err
	}
	var metricsLn net.Listener
	if o.metrics != "" {
		var err error
		if metricsLn, err = net.Listen("tcp", o.metrics); err != nil {
			return fmt.Errorf("--metrics-addr: %w", err)
		}
		defer metricsLn.Close()
	}
	startTime := time.Now()
	var statusLn net.Listener
	if o.statusSock != "" {
		ln, err := status.Listen(o.statusSock)
		switch {
		case err == nil:
			statusLn = ln
			defer ln.Close() // removes the socket file
		case o.statusSet:
			return fmt.Errorf("--status-socket: %w", err)
		default:
			log.Warn("status socket not opened: 'rarp-replay status' will not answer", "path", o.statusSock, "err", err)
		}
	}
	ctx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	defer func() {
		cancel()
		wg.Wait()
	}()
	if addr := os.Getenv("RARP_REPLAY_PPROF"); addr != "" {
		ln, err := net.Listen("tcp", addr)
		if err != nil {
			return fmt.Errorf("RARP_REPLAY_PPROF: %w", err)
		}
		wg.Go(func() { servePprof(ctx, ln) })
	}

	links := link.NewTable()
	for svi, ov := range o.overrides {
		links.SetOverride(svi, ov)
	}
	mirror := neigh.NewMirror(o.retention)
	stats := engine.NewCounters()
	// Caught before the start-up, which may take seconds on a large table:
	// no signal may end the daemon unlogged.
	var dump func() // SIGUSR1
	var started atomic.Bool
	if o.dumpNeigh != "" {
		dump = func() {
			if !started.Load() {
				log.Info("SIGUSR1 during start-up: the neighbor mirror is still loading; not dumped")
				return
			}
			dumpNeighbors(o.dumpNeigh, mirror, links, log)
		}
	}
	stopSignals := handleSignals(ctx, &wg, log, dump)
	defer stopSignals()
	// Programs verified bindings, and again those the kernel loses right
	// after (the neighbor watcher tells it).
	kernel := neigh.NewKernel(log)
	defer kernel.Close()
	programmer := newReasserter(kernel, kernelNeighbors, log)
	programmer.get = kernelNeighbor
	if !watch(ctx, &wg, links, mirror, stats, o.stateFile, programmer.Changed, log) {
		return nil
	}
	started.Store(true)
	// The initial dumps were read into transient copies: hand that memory
	// back rather than carry it for the daemon's life.
	debug.FreeOSMemory()
	if o.stateFile != "" {
		every(ctx, &wg, o.stateEvery, func() { saveState(o.stateFile, mirror, links, stats, log) })
		defer saveState(o.stateFile, mirror, links, stats, log)
	}
	if o.dumpNeigh != "" {
		defer dumpNeighbors(o.dumpNeigh, mirror, links, log)
	}
	selected, err := selection(o.ifaces, o.include, o.exclude, links)
	if err != nil {
		return err
	}
	if !o.routed {
		selected = bridgeMembersOnly(selected, links)
	}

	// The capture goroutines hand each frame to the engine themselves; a
	// burst waits in the port's kernel capture ring, whose drops are counted.
	var eng *engine.Engine
	popts := pcapio.DefaultOptions
	popts.BufferSize = o.capBuffer
	popts.TapBufferSize = o.tapBuffer
	mgr := capture.NewManager(pcapio.Opener{Options: popts}, links, selected,
		func(p engine.Packet) { eng.Process(time.Now(), p) }, log, stats)
	mgr.PortRate, mgr.PortBurst = o.portRate, o.portBurst
	// A probe's answer counts until its retry leaves (or the binding is
	// given up); the second covers the manager's once-a-second check.
	mgr.AnswerLease = o.cfg.LongestWait() + time.Second
	if direct, err := pcapio.OpenDirect(); err != nil {
		log.Warn("no direct packet socket: a new port's probes wait for its capture handle", "err", err)
	} else {
		defer direct.Close()
		mgr.Direct = direct.SendOn
	}
	coll := metrics.New(metrics.Sources{
		Counters: stats.Snapshot,
		Bindings: mirror.Len,
		Ports:    func() int { return len(mgr.Ports()) },
		Kernel: func() map[string][2]int {
			out := map[string][2]int{}
			for name, st := range mgr.Stats() {
				out[name] = [2]int{st.Received, st.Dropped}
			}
			return out
		},
	})
	recent := status.NewRecorder(status.DefaultMigrations)
	wg.Go(func() { programmer.Run(ctx) })
	eng = engine.New(o.cfg, links, mirror, mgr, programmer, log, func(r engine.Report) {
		coll.Migrated(r, time.Now())
		logReport(log, r, o.cfg.DryRun)
		recent.Record(r)
	})
	eng.UseCounters(stats)
	var healthy atomic.Bool
	if metricsLn != nil {
		wg.Go(func() {
			if err := metrics.Serve(ctx, metricsLn, coll, &healthy, log); err != nil {
				log.Error("metrics server stopped", "err", err)
			}
		})
	}
	if statusLn != nil {
		doc := statusSource(startTime, recent, mgr.Ports, links, mirror.Counts, eng.InFlight, stats.Snapshot)
		wg.Go(func() {
			if err := status.Serve(ctx, statusLn, doc); err != nil {
				log.Error("status server stopped", "err", err)
			}
		})
	}
	wg.Go(func() {
		mgr.Run(ctx, func() {
			healthy.Store(true)
			log.Info("listening", "interfaces", o.ifaces, "include", o.include, "exclude", o.exclude,
				"ports", len(mgr.Ports()), "bindings", mirror.Len(), "dry_run", o.cfg.DryRun, "version", version.Get().Version)
		})
	})
	eng.Run(ctx)
	cancel()
	wg.Wait()
	log.Info("stopped", "counters", counterAttrs(stats.Snapshot()))
	return nil
}

// counterAttrs is the non-zero counters as a group of attributes, sorted
// by name (counters.probe-sent=2 in text logs, an object in JSON ones),
// rather than a Go map, which a text log would print as map[...].
func counterAttrs(s engine.Snapshot) slog.Value {
	flat := s.Flat()
	attrs := make([]slog.Attr, 0, len(flat))
	for _, k := range slices.Sorted(maps.Keys(flat)) {
		attrs = append(attrs, slog.Uint64(k, flat[k]))
	}
	return slog.GroupValue(attrs...)
}

// logReport logs one migration: at INFO when something was programmed (or,
// with --dry-run, would have been), at WARN with the reason per address
// when nothing was.
func logReport(log *slog.Logger, r engine.Report, dryRun bool) {
	attrs := []any{"mac", r.MAC.String(), "port", r.Port, "svi", r.SVI,
		"verified", r.Verified, "failed", r.Failed, "programmed", r.Programmed,
		"rarp_to_programmed_ms", float64(r.Latency.Microseconds()) / 1000}
	level := slog.LevelInfo
	switch {
	case dryRun:
		attrs = append(attrs, "would_program", r.Verified)
		if len(r.Verified) == 0 {
			level = slog.LevelWarn
		}
	case len(r.Programmed) == 0:
		level = slog.LevelWarn
	}
	if level == slog.LevelWarn {
		var why []string
		for _, ip := range r.Failed {
			why = append(why, ip.String()+": no answer after every retry")
		}
		for _, ip := range r.Verified {
			if !dryRun && !slices.Contains(r.Programmed, ip) {
				why = append(why, ip.String()+": answered, but the kernel refused to program it (see the error above)")
			}
		}
		for _, s := range r.Skipped {
			why = append(why, s.IP.String()+": not probed: "+s.Reason)
		}
		attrs = append(attrs, "nothing_programmed", strings.Join(why, "; "))
	}
	log.Log(context.Background(), level, "migration handled", attrs...)
}

// watch starts the link and neighbor watchers and returns once both have
// their first dump in (false when ctx ended first). The state file, when
// there is one, is loaded in between: after the links, whose names it
// refers to, and before the kernel's neighbors, whose dump marks the
// bindings still in the kernel present again. changed gets every neighbor
// event (neigh.WatchOptions.Changed).
func watch(ctx context.Context, wg *sync.WaitGroup, links *link.Table, mirror *neigh.Mirror, stats *engine.Counters, stateFile string, changed func(neigh.Entry, bool), log *slog.Logger) bool {
	refresh := make(chan struct{})
	linksReady, neighReady := make(chan struct{}), make(chan struct{})
	wg.Go(func() {
		link.Watch(ctx, links, log, func() { close(linksReady) }, link.WatchOptions{Resynced: stats.Resync, Refresh: refresh})
	})
	every(ctx, wg, linkRefresh, func() {
		select {
		case refresh <- struct{}{}:
		case <-ctx.Done():
		}
	})
	select {
	case <-linksReady:
	case <-ctx.Done():
		return false
	}
	if stateFile != "" {
		loadState(stateFile, mirror, links, stats, log)
	}
	wg.Go(func() {
		neigh.Watch(ctx, mirror, log, func() { close(neighReady) }, neigh.WatchOptions{Resynced: func() { stats.Resync("neigh") }, Changed: changed})
	})
	select {
	case <-neighReady:
		return true
	case <-ctx.Done():
		return false
	}
}

// every runs f every d until ctx ends, on a goroutine wg owns.
func every(ctx context.Context, wg *sync.WaitGroup, d time.Duration, f func()) {
	wg.Go(func() {
		t := time.NewTicker(d)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
				f()
			}
		}
	})
}

// handleSignals keeps SIGHUP, SIGUSR1 and SIGUSR2 from ending the daemon
// (by default the Go runtime ends the process on SIGHUP and ignores the
// other two silently): until ctx ends, on a goroutine wg owns, SIGUSR1
// calls dump (nil without --dump-neigh), and the others are logged. Until
// the returned function is called, they are still caught, and dropped, so
// that one arriving while the daemon saves its state at exit does not end
// it. SIGINT and SIGTERM, which stop the daemon, are Execute's.
func handleSignals(ctx context.Context, wg *sync.WaitGroup, log *slog.Logger, dump func()) (stop func()) {
	ch := make(chan os.Signal, 1)
	signal.Notify(ch, syscall.SIGHUP, syscall.SIGUSR1, syscall.SIGUSR2)
	wg.Go(func() {
		for {
			select {
			case <-ctx.Done():
				return
			case s := <-ch:
				switch {
				case s == syscall.SIGUSR1 && dump != nil:
					dump()
				case s == syscall.SIGUSR1:
					log.Info("SIGUSR1 ignored: it dumps the neighbor mirror when --dump-neigh is set, and it is not")
				case s == syscall.SIGHUP:
					log.Info("SIGHUP: nothing to reload; --log-level and every other setting take effect at a restart")
				default:
					log.Info("SIGUSR2 ignored: it means nothing to rarp-replay")
				}
			}
		}
	})
	return func() { signal.Stop(ch) }
}

// parseSources parses the --source overrides: SVI=IP[,MAC].
func parseSources(specs []string) (map[string]link.Override, error) {
	by := map[string]link.Override{}
	for _, spec := range specs {
		svi, rest, ok := strings.Cut(spec, "=")
		ipStr, macStr, _ := strings.Cut(rest, ",")
		ip, err := netip.ParseAddr(ipStr)
		if !ok || svi == "" || err != nil {
			return nil, fmt.Errorf("--source %q: want SVI=IP or SVI=IP,MAC", spec)
		}
		o := by[svi]
		if ip.Is4() {
			o.IPv4 = ip
		} else {
			o.IPv6 = ip
		}
		if macStr != "" {
			mac, err := net.ParseMAC(macStr)
			if err != nil || !packet.UnicastMAC(mac) {
				return nil, fmt.Errorf("--source %q: bad MAC %q", spec, macStr)
			}
			o.MAC = mac
		}
		by[svi] = o
	}
	return by, nil
}

// dumpNeighbors writes the mirror to path in the snapshot JSON replay reads.
func dumpNeighbors(path string, m *neigh.Mirror, links *link.Table, log *slog.Logger) {
	recs := m.Records()
	if err := writeAtomic(path, func(w io.Writer) error { return neigh.WriteSnapshot(w, recs, ifname(links)) }); err != nil {
		log.Error("dump neighbor mirror", "path", path, "err", err)
		return
	}
	log.Info("dumped neighbor mirror", "path", path, "bindings", len(recs))
}

// saveState writes the binding memory to path. A failure is logged and
// counted (state-save-error); the previous file stays.
func saveState(path string, m *neigh.Mirror, links *link.Table, stats *engine.Counters, log *slog.Logger) {
	start := time.Now()
	if err := writeAtomic(path, func(w io.Writer) error { return m.Save(w, ifname(links)) }); err != nil {
		stats.Count(engine.StateSaveError)
		log.Error("save state", "path", path, "err", err)
		return
	}
	if log.Enabled(context.Background(), slog.LevelDebug) { // Len walks the mirror
		log.Debug("saved state", "path", path, "bindings", m.Len(), "took_ms", time.Since(start).Milliseconds())
	}
}

// loadState loads the binding memory from path. A missing file is a first
// start. A file Load refuses (corrupt, foreign, over a cap) is moved aside
// to path.corrupt-<UTC time>, for the operator to inspect, rather than be
// overwritten by the next save. Failures are counted (state-load-error).
func loadState(path string, m *neigh.Mirror, links *link.Table, stats *engine.Counters, log *slog.Logger) {
	f, err := os.Open(path)
	if errors.Is(err, os.ErrNotExist) {
		log.Info("no state file yet", "path", path)
		return
	}
	if err != nil {
		stats.Count(engine.StateLoadError)
		log.Warn("state file ignored", "path", path, "err", err)
		return
	}
	n, err := m.Load(f, func(name string) (int, bool) {
		l, ok := links.ByName(name)
		return l.Index, ok
	})
	f.Close()
	if err == nil {
		log.Info("loaded state", "path", path, "bindings", n)
		return
	}
	stats.Count(engine.StateLoadError)
	if !errors.Is(err, neigh.ErrForeignState) && !errors.Is(err, neigh.ErrStateTooLarge) {
		log.Warn("state file ignored", "path", path, "err", err) // a read error: the file may be fine
		return
	}
	stamp := time.Now().UTC().Format("20060102T150405Z") // RFC 3339 basic form
	aside := path + ".corrupt-" + stamp
	for i := 2; i < 100; i++ { // never over an earlier one
		if _, serr := os.Lstat(aside); errors.Is(serr, os.ErrNotExist) {
			break
		}
		aside = fmt.Sprintf("%s.corrupt-%s-%d", path, stamp, i)
	}
	if rerr := os.Rename(path, aside); rerr != nil {
		log.Error("state file refused and could not be moved aside: the next save overwrites it", "path", path, "err", err, "rename_err", rerr)
		return
	}
	log.Warn("state file refused, moved aside", "path", path, "moved_to", aside, "err", err)
}

func ifname(links *link.Table) func(int) string {
	return func(index int) string {
		if l, ok := links.Get(index); ok {
			return l.Name
		}
		return fmt.Sprintf("ifindex%d", index)
	}
}

// writeAtomic writes path through a temporary file in the same directory,
// synced and renamed over it, so readers never see a partial file; the
// directory is synced after, so the rename survives a crash.
func writeAtomic(path string, write func(io.Writer) error) error {
	dir := filepath.Dir(path)
	f, err := os.CreateTemp(dir, "."+filepath.Base(path)+".*")
	if err != nil {
		return err
	}
	err = write(f)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(f.Name(), path)
	}
	if err != nil {
		os.Remove(f.Name())
		return err
	}
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	err = d.Sync()
	if cerr := d.Close(); err == nil {
		err = cerr
	}
	return err
}

// servePprof serves net/http/pprof's profiles and execution trace on ln
// until ctx ends. A debugging aid for performance work, switched on with
// the environment (RARP_REPLAY_PPROF=127.0.0.1:6060), not a flag:
//
//	go tool pprof http://127.0.0.1:6060/debug/pprof/profile?seconds=10
//	curl -o trace.out http://127.0.0.1:6060/debug/pprof/trace?seconds=5
func servePprof(ctx context.Context, ln net.Listener) {
	mux := http.NewServeMux()
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	var serving sync.WaitGroup
	serving.Go(func() { srv.Serve(ln) })
	<-ctx.Done()
	srv.Close()
	serving.Wait()
}
