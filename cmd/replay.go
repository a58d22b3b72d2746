package cmd

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"maps"
	"net"
	"net/netip"
	"os"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/rarp-replay/rarp-replay/internal/engine"
	"github.com/rarp-replay/rarp-replay/internal/link"
	"github.com/rarp-replay/rarp-replay/internal/packet"
	"github.com/rarp-replay/rarp-replay/replay"
	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
)

type replayOptions struct {
	opts      replay.Options    // built from the flags by validate
	neighbors []replay.Neighbor // --neigh, read by validate

	neigh  string
	svi    string
	sviMAC string
	addrs  []string
	json   bool
	write  string
	links  string
	vlans  string
	port   string
}

func newReplay(lo *logOptions) *cobra.Command {
	o := &replayOptions{}
	c := &cobra.Command{
		Use:   "replay FILE.pcap",
		Short: "Show what the daemon would do with a capture (offline, no root)",
		Long: `replay reads a pcap or pcapng capture (tcpdump -w) and runs every frame
through the daemon's decision path against a neighbor snapshot taken with
'ip -j neigh show > neigh.json' on the switch. It prints one line per frame:
frame number, time, verdict, MAC, and the addresses probed or verified, or
the reason the frame was dropped; one per binding it would program; and one
per migration when its probe cycle ends. ARP replies and Neighbor
Advertisements in the capture verify probes. Output streams as the capture
is read; SIGINT or SIGTERM stops it (exit status 130 or 143).

A capture cut short (tcpdump killed or still writing, a copy interrupted:
the file ends inside a record) is replayed up to its last complete frame,
its open probe cycles run to their end, and then a warning on standard
error says where the file ends ("warning: FILE: capture cut short: ...").

Exit status:
  0    the whole capture was replayed
  1    the capture cannot be read, or is not a pcap or pcapng capture
  2    usage error: a flag's value, or the file a flag names, is wrong: not
       found, not the dump the flag wants (--links given a neighbor dump,
       --neigh given an interface dump), or matching nothing (--svi naming
       a device the snapshot lacks, --port an interface --links lacks, a
       capture none of whose ports is in --links); the message names the
       flag
  3    the capture was cut short (the warning above; everything before the
       cut was replayed and printed)
  130  stopped by SIGINT; 143 by SIGTERM`,
		Args: usageArgs(cobra.ExactArgs(1)),
		PreRunE: func(c *cobra.Command, _ []string) error {
			if err := o.validate(c.Flags()); err != nil {
				return &UsageError{Err: err}
			}
			return nil
		},
		RunE: func(c *cobra.Command, args []string) error {
			log, err := lo.logger(c.ErrOrStderr())
			if err != nil {
				return err
			}
			return runReplay(c.Context(), o, args[0], c.OutOrStdout(), log)
		},
	}
	f := c.Flags()
	f.StringVar(&o.neigh, "neigh", "", "neighbor snapshot: 'ip -j neigh show' JSON, /proc/net/arp, or what 'listen --dump-neigh' writes")
	f.StringVar(&o.svi, "svi", "", "the snapshot's device that serves the captured port (default: its only device)")
	f.StringVar(&o.sviMAC, "svi-mac", "02:00:00:00:00:01", "the SVI's MAC, source of the probes")
	f.StringSliceVar(&o.addrs, "svi-addr", nil, "an SVI address with prefix length, source of the probes (repeatable)")
	f.StringVar(&o.links, "links", "", "the switch's interfaces: 'ip -d -j addr show' (or link show) JSON; replaces --svi, --svi-mac, --svi-addr")
	f.StringVar(&o.vlans, "bridge-vlans", "", "with --links: the bridge ports' VLANs, 'bridge -j vlan show' JSON")
	f.StringVar(&o.port, "port", "", "with --links: the port a plain pcap was captured on (pcapng interface names are used as they are)")
	f.BoolVar(&o.json, "json", false, "print one JSON object per frame, per binding programmed and per migration")
	f.StringVar(&o.write, "write", "", "write the probes the daemon would have sent to this pcap file")
	return c
}

// run replays the capture at path into out.
func (o *replayOptions) run(ctx context.Context, path string, opts replay.Options, log *slog.Logger, out *replayOutput) error {
	log.Debug("opening capture", "file", path) // a FIFO's open waits for a writer
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	// Flush what was printed before each read of the capture, which may
	// wait for a writer (a FIFO, tcpdump -w - | rarp-replay replay
	// /dev/stdin).
	in := readerFunc(func(p []byte) (int, error) {
		out.flush()
		return f.Read(p)
	})
	_, err = replay.Stream(ctx, in, o.neighbors, opts, log, out)
	var oerr outputError
	var uerr *replay.UnmatchedPortsError
	switch {
	case errors.As(err, &oerr):
		return oerr.error
	case errors.Is(err, replay.ErrNoPort):
		return &UsageError{Err: fmt.Errorf("--port: %s is a plain pcap, which does not say which port it was captured on: name the port with --port", path)}
	case errors.As(err, &uerr):
		return &UsageError{Err: fmt.Errorf("--links %s: %w (the capture's ports are its pcapng interface names, the ifindex of a 'tcpdump -i any' capture, or --port)", o.links, err)}
	case errors.Is(err, replay.ErrTruncated):
		return &truncatedWarning{path: path, err: err}
	case err != nil:
		return fmt.Errorf("%s: %w", path, err)
	}
	return nil
}

// truncatedWarning is a capture cut short and replayed up to its last
// complete frame: a warning, with exit status 3.
type truncatedWarning struct {
	path string
	err  error
}

func (w *truncatedWarning) Error() string { return "warning: " + w.path + ": " + w.err.Error() }
func (w *truncatedWarning) Unwrap() error { return w.err }

// ExitCode sets the exit status (exitStatus): a replay that was complete up
// to the cut is neither a success nor a failure to read.
func (w *truncatedWarning) ExitCode() int { return 3 }

// outputError is an error writing the replay's output, not reading it.
type outputError struct{ error }

type readerFunc func([]byte) (int, error)

func (f readerFunc) Read(p []byte) (int, error) { return f(p) }

// replayOutput is the replay's Sink: stdout, as text or JSON lines, and the
// --write pcap file (created when the first frame is decided, so that input
// which is not a capture leaves none), both buffered. A lock orders the
// replay goroutine's writes with the command's flush when a signal stops it.
type replayOutput struct {
	mu      sync.Mutex
	stdout  *bufio.Writer
	text    replay.Sink
	path    string // --write
	file    *os.File
	buf     *bufio.Writer
	probes  *replay.ProbeWriter
	stopped bool
	err     error // creating the probes file
}

var errStopped = errors.New("output closed")

func newReplayOutput(w io.Writer, json bool, path string) *replayOutput {
	o := &replayOutput{stdout: bufio.NewWriterSize(w, 64<<10), path: path}
	if json {
		o.text = replay.NewJSONWriter(o.stdout)
	} else {
		o.text = replay.NewTextWriter(o.stdout)
	}
	return o
}

// do runs f with the sinks, once the probes file exists.
func (o *replayOutput) do(f func(text, probes replay.Sink) error) error {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.stopped {
		return outputError{errStopped}
	}
	if err := o.create(); err != nil {
		return outputError{err}
	}
	var probes replay.Sink
	if o.probes != nil {
		probes = o.probes
	}
	if err := f(o.text, probes); err != nil {
		return outputError{err}
	}
	return nil
}

// create creates the --write file, once.
func (o *replayOutput) create() error {
	if o.path == "" || o.file != nil || o.err != nil {
		return o.err
	}
	f, err := os.Create(o.path)
	if err == nil {
		o.buf = bufio.NewWriterSize(f, 64<<10)
		if o.probes, err = replay.NewProbeWriter(o.buf); err != nil {
			f.Close()
		}
	}
	if err != nil {
		o.err = err
		return err
	}
	o.file = f
	return nil
}

func (o *replayOutput) Frame(l replay.Line) error {
	return o.do(func(text, _ replay.Sink) error { return text.Frame(l) })
}

func (o *replayOutput) Migration(r engine.Report) error {
	return o.do(func(text, _ replay.Sink) error { return text.Migration(r) })
}

func (o *replayOutput) Program(p replay.Programmed) error {
	return o.do(func(text, _ replay.Sink) error { return text.Program(p) })
}

func (o *replayOutput) Probe(p replay.Probe) error {
	return o.do(func(_, probes replay.Sink) error {
		if probes == nil {
			return nil
		}
		if err := probes.Probe(p); err != nil {
			return fmt.Errorf("%s: %w", o.path, err)
		}
		return nil
	})
}

// flush writes out what is buffered; an error shows at the next write.
func (o *replayOutput) flush() {
	o.mu.Lock()
	defer o.mu.Unlock()
	if !o.stopped {
		o.stdout.Flush()
		if o.buf != nil {
			o.buf.Flush()
		}
	}
}

// stop flushes and closes everything, and makes further writes fail.
func (o *replayOutput) stop() { o.close(false) }

// close flushes and closes everything (complete: after the whole capture,
// creating the probes file if no frame did), and makes further writes
// fail.
func (o *replayOutput) close(complete bool) error {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.stopped {
		return nil
	}
	var err error
	if complete {
		err = o.create()
	}
	if ferr := o.stdout.Flush(); err == nil {
		err = ferr
	}
	if o.file != nil {
		if ferr := o.buf.Flush(); err == nil && ferr != nil {
			err = fmt.Errorf("%s: %w", o.path, ferr)
		}
		if cerr := o.file.Close(); err == nil {
			err = cerr
		}
	}
	o.stopped = true
	return err
}

// readFlagFile reads the file a flag names with load, naming the flag and
// the file in any error ("--links FILE: ..."), and, for a dump another
// flag reads, that flag.
func readFlagFile[T any](flag, path string, load func(io.Reader) (T, error)) (T, error) {
	var zero T
	f, err := os.Open(path)
	if err != nil {
		var pe *fs.PathError
		if errors.As(err, &pe) {
			err = pe.Err
		}
		return zero, fmt.Errorf("%s %s: %w", flag, path, err)
	}
	defer f.Close()
	v, err := load(f)
	if err != nil {
		var we *replay.WrongDumpError
		if errors.As(err, &we) && dumpFlags[we.Got] != "" {
			return zero, fmt.Errorf("%s %s: %w: that is what %s reads", flag, path, err, dumpFlags[we.Got])
		}
		return zero, fmt.Errorf("%s %s: %w", flag, path, err)
	}
	return v, nil
}

// dumpFlags are the flags that read each kind of dump.
var dumpFlags = map[replay.Dump]string{
	replay.DumpNeighbors:   "--neigh",
	replay.DumpLinks:       "--links",
	replay.DumpBridgeVLANs: "--bridge-vlans",
}

// validate parses the flags into o.opts and reads the files they name.
// Every error names its flag.
func (o *replayOptions) validate(flags *pflag.FlagSet) error {
	o.opts = replay.Options{SVI: o.svi, Config: engine.DefaultConfig, Port: o.port}
	mac, err := net.ParseMAC(o.sviMAC)
	if err != nil || !packet.UnicastMAC(mac) {
		return fmt.Errorf("--svi-mac %q: want a unicast Ethernet address such as 02:00:5e:10:00:01", o.sviMAC)
	}
	o.opts.SVIMAC = mac
	for _, a := range o.addrs {
		p, err := netip.ParsePrefix(a)
		if err != nil {
			return fmt.Errorf("--svi-addr %q: want an address with its prefix length, such as 192.0.2.1/24 or 2001:db8:10::1/64", a)
		}
		o.opts.SVIAddrs = append(o.opts.SVIAddrs, p)
	}
	if o.neigh != "" {
		if o.neighbors, err = readFlagFile("--neigh", o.neigh, replay.LoadNeighbors); err != nil {
			return err
		}
	}
	if o.links == "" {
		for _, f := range []string{"bridge-vlans", "port"} {
			if flags.Changed(f) {
				return fmt.Errorf("--%s: only with --links", f)
			}
		}
		return o.checkSVI()
	}
	for _, f := range []string{"svi", "svi-mac", "svi-addr"} {
		if flags.Changed(f) {
			return fmt.Errorf("--%s: not with --links, which gives every SVI with its MAC and addresses", f)
		}
	}
	return o.loadLinks()
}

// devices returns the devices the --neigh snapshot names, sorted.
func (o *replayOptions) devices() []string {
	var devs []string
	for _, n := range o.neighbors {
		if !slices.Contains(devs, n.Dev) {
			devs = append(devs, n.Dev)
		}
	}
	slices.Sort(devs)
	return devs
}

// checkSVI checks --svi against the devices the --neigh snapshot names.
// Without --links each is modelled as a bridge, and --svi picks the one
// that serves the captured port (default: the only one).
func (o *replayOptions) checkSVI() error {
	devs := o.devices()
	switch {
	case o.svi != "" && o.neigh == "":
		return fmt.Errorf("--svi %s: names a device of the --neigh snapshot, and there is no --neigh", o.svi)
	case o.svi != "" && len(devs) == 0:
		return fmt.Errorf("--svi %s: the --neigh snapshot %s is empty", o.svi, o.neigh)
	case o.svi != "" && !slices.Contains(devs, o.svi):
		return fmt.Errorf("--svi %s: no such device in the --neigh snapshot %s, which names %s", o.svi, o.neigh, list(devs))
	case o.svi == "" && len(devs) > 1:
		return fmt.Errorf("--svi: the --neigh snapshot %s names %d devices (%s): say which one serves the captured port", o.neigh, len(devs), list(devs))
	}
	return nil
}

// loadLinks reads --links and --bridge-vlans into the link model, and
// checks that --bridge-vlans, --port and the --neigh snapshot name
// interfaces in it, and --port an access port.
func (o *replayOptions) loadLinks() error {
	links, err := readFlagFile("--links", o.links, replay.LoadLinks)
	if err != nil {
		return err
	}
	names := make([]string, len(links))
	for i, l := range links {
		names[i] = l.Name
	}
	known := func(name string) bool { return slices.Contains(names, name) }
	var vlans map[string][]link.PortVLAN
	if o.vlans != "" {
		if vlans, err = readFlagFile("--bridge-vlans", o.vlans, replay.LoadBridgeVLANs); err != nil {
			return err
		}
		ports := slices.Sorted(maps.Keys(vlans))
		if len(ports) > 0 && !slices.ContainsFunc(ports, known) {
			return fmt.Errorf("--bridge-vlans %s: none of its ports (%s) is in --links %s", o.vlans, list(ports), o.links)
		}
	}
	t := replay.LinkTable(links, vlans)
	if o.port != "" {
		l, ok := t.ByName(o.port)
		if !ok {
			return fmt.Errorf("--port %s: no such interface in --links %s, which has %s", o.port, o.links, list(names))
		}
		if err := t.AccessPort(l.Index); err != nil {
			var ie *link.IneligibleError
			if errors.As(err, &ie) {
				return fmt.Errorf("--port %s: not an access port: %s", o.port, ie.Detail)
			}
			return fmt.Errorf("--port %s: %w", o.port, err)
		}
	}
	if devs := o.devices(); len(devs) > 0 && !slices.ContainsFunc(devs, known) {
		return fmt.Errorf("--neigh %s: none of its devices (%s) is in --links %s", o.neigh, list(devs), o.links)
	}
	o.opts.Links = t
	return nil
}

// list joins names, the first ten of them.
func list(names []string) string {
	if len(names) > 10 {
		return strings.Join(names[:10], ", ") + fmt.Sprintf(" and %d more", len(names)-10)
	}
	return strings.Join(names, ", ")
}

// runReplay replays the capture at path to stdout. The replay runs in a
// goroutine: opening or reading a FIFO blocks in the kernel, and a signal
// must still end the command at once, flushing what was printed, even if
// that goroutine stays blocked.
func runReplay(ctx context.Context, o *replayOptions, path string, stdout io.Writer, log *slog.Logger) error {
	out := newReplayOutput(stdout, o.json, o.write)
	done := make(chan error, 1)
	go func() { done <- o.run(ctx, path, o.opts, log, out) }()
	select {
	case err := <-done:
		if ctx.Err() == nil || err == nil {
			// A capture cut short was replayed to its end all the same.
			complete := err == nil || errors.Is(err, replay.ErrTruncated)
			if cerr := out.close(complete); err == nil || complete && cerr != nil {
				err = cerr
			}
			return err
		}
	case <-ctx.Done():
	}
	// Flush unless the goroutine holds the output, blocked writing to a
	// stdout nobody reads.
	stopped := make(chan struct{})
	go func() { out.stop(); close(stopped) }()
	select {
	case <-stopped:
	case <-time.After(time.Second):
	}
	return context.Cause(ctx)
}
