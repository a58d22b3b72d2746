package cmd

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"sync"
	"time"

	"github.com/rarp-replay/rarp-replay/internal/engine"
	"github.com/rarp-replay/rarp-replay/internal/link"
	"github.com/rarp-replay/rarp-replay/replay"
	"github.com/spf13/cobra"
)

type replayOptions struct {
	opts replay.Options // built from the flags by validate

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
is read; SIGINT or SIGTERM stops it (exit status 130 or 143).`,
		Args:    usageArgs(cobra.ExactArgs(1)),
		PreRunE: validated(o.validate),
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
	if o.links != "" {
		var err error
		if opts.Links, err = loadLinks(o.links, o.vlans); err != nil {
			return err
		}
	}
	var neighbors []replay.Neighbor
	if o.neigh != "" {
		f, err := os.Open(o.neigh)
		if err != nil {
			return err
		}
		neighbors, err = replay.LoadNeighbors(f)
		f.Close()
		if err != nil {
			return fmt.Errorf("%s: %w", o.neigh, err)
		}
	}
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
	_, err = replay.Stream(ctx, in, neighbors, opts, log, out)
	var oerr outputError
	if errors.As(err, &oerr) {
		return oerr.error
	}
	if err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	return nil
}

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

func loadLinks(linksPath, vlansPath string) (*link.Table, error) {
	lf, err := os.Open(linksPath)
	if err != nil {
		return nil, err
	}
	defer lf.Close()
	var vr io.Reader
	if vlansPath != "" {
		vf, err := os.Open(vlansPath)
		if err != nil {
			return nil, err
		}
		defer vf.Close()
		vr = vf
	}
	t, err := link.FromIPRoute2(lf, vr)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", linksPath, err)
	}
	return t, nil
}

// validate parses the flags into o.opts.
func (o *replayOptions) validate() error {
	o.opts = replay.Options{SVI: o.svi, Config: engine.DefaultConfig, Port: o.port}
	var err error
	if o.opts.SVIMAC, err = net.ParseMAC(o.sviMAC); err != nil {
		return fmt.Errorf("--svi-mac: %w", err)
	}
	for _, a := range o.addrs {
		p, err := netip.ParsePrefix(a)
		if err != nil {
			return fmt.Errorf("--svi-addr: %w", err)
		}
		o.opts.SVIAddrs = append(o.opts.SVIAddrs, p)
	}
	return nil
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
			if cerr := out.close(err == nil); err == nil {
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
