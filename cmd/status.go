package cmd

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"net"
	"os"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/rarp-replay/rarp-replay/internal/engine"
	"github.com/rarp-replay/rarp-replay/internal/link"
	"github.com/rarp-replay/rarp-replay/internal/status"
	"github.com/rarp-replay/rarp-replay/internal/version"
	"github.com/spf13/cobra"
)

type statusOptions struct {
	socket string
	json   bool
	mac    string

	hw net.HardwareAddr // --mac, parsed by validate
}

func (o *statusOptions) validate() error {
	if o.socket == "" {
		return errors.New("--socket: must not be empty")
	}
	if o.mac != "" {
		hw, err := net.ParseMAC(o.mac)
		if err != nil || len(hw) != 6 {
			return fmt.Errorf("--mac %q: want a MAC address such as 02:00:5e:10:00:0a", o.mac)
		}
		o.hw = hw
	}
	return nil
}

func newStatus() *cobra.Command {
	o := &statusOptions{}
	c := &cobra.Command{
		Use:   "status",
		Short: "Ask the running daemon what it serves and what it did lately",
		Long: `status asks the running daemon (listen) over its Unix socket for its version,
uptime, the ports it serves, the size of its neighbor mirror, its counters and
the last ` + fmt.Sprint(status.DefaultMigrations) + ` migrations it handled, with what became of each address:
"programmed", "verified" (answered, not programmed: --dry-run, or the kernel
refused it) or "unanswered".

The socket is readable by root and the daemon's group only (mode 0660).`,
		Args:    usageArgs(cobra.NoArgs),
		PreRunE: validated(o.validate),
		RunE: func(c *cobra.Command, _ []string) error {
			return runStatus(c.Context(), o, c.OutOrStdout())
		},
	}
	f := c.Flags()
	f.StringVar(&o.socket, "socket", status.DefaultSocket, "the daemon's status socket (listen --status-socket)")
	f.BoolVar(&o.json, "json", false, "print the daemon's answer as JSON, for machines")
	f.StringVar(&o.mac, "mac", "", "show only this VM's migrations")
	return c
}

// maxStatus bounds the answer read; a Doc with 100 migrations and
// thousands of ports is well below it.
const maxStatus = 64 << 20

// runStatus reads one document from the daemon's socket and prints it.
func runStatus(ctx context.Context, o *statusOptions, w io.Writer) error {
	d, err := fetchStatus(ctx, o.socket)
	if err != nil {
		return err
	}
	if o.hw != nil {
		d = d.Filter(o.hw)
	}
	if o.json {
		e := json.NewEncoder(w)
		e.SetIndent("", "  ")
		return e.Encode(d)
	}
	return writeStatus(w, d)
}

func fetchStatus(ctx context.Context, path string) (status.Doc, error) {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	var dialer net.Dialer
	c, err := dialer.DialContext(ctx, "unix", path)
	if err != nil {
		hint := "is the daemon running, with --status-socket " + path + "?"
		if errors.Is(err, os.ErrPermission) {
			hint = "the socket is for root and the daemon's group only"
		}
		return status.Doc{}, fmt.Errorf("status: %w (%s)", err, hint)
	}
	defer c.Close()
	stop := context.AfterFunc(ctx, func() { c.SetReadDeadline(time.Now()) })
	defer stop()
	b, err := io.ReadAll(io.LimitReader(c, maxStatus))
	if err != nil {
		return status.Doc{}, fmt.Errorf("status: reading %s: %w", path, err)
	}
	var d status.Doc
	if err := json.Unmarshal(b, &d); err != nil {
		return status.Doc{}, fmt.Errorf("status: the answer on %s: %w", path, err)
	}
	return d, nil
}

// writeStatus prints d for humans:
//
//	version     0.1.0 (commit 1a2b3c4d5e6f)
//	uptime      1h2m3s (since 2025-01-02T03:04:05Z)
//	ports       2: l3p (7), vm1 (4)
//	bindings    12
//	counters    cycle=1 programmed=1 probe-sent=2 rarp=5 rarp[vm1]=5 verified=1
//
//	START                     MAC                PORT  SVI  LATENCY  ADDRESSES
//	2025-01-02T03:04:05.123Z  02:00:5e:10:00:0a  vm1   br0  1.2ms    192.0.2.10 programmed, 192.0.2.99 unanswered
func writeStatus(w io.Writer, d status.Doc) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	commit := d.Commit
	if len(commit) > 12 {
		commit = commit[:12]
	}
	fmt.Fprintf(tw, "version\t%s (commit %s)\n", d.Version, commit)
	fmt.Fprintf(tw, "uptime\t%s (since %s)\n", (time.Duration(d.UptimeSeconds) * time.Second).String(), d.Started.Format(time.RFC3339))
	fmt.Fprintf(tw, "ports\t%d\n", len(d.Ports))
	for _, p := range d.Ports {
		fmt.Fprintf(tw, "  %s (%d)\t%s\n", p.Name, p.IfIndex, portLine(p))
	}
	fmt.Fprintf(tw, "bindings\t%d: %d in the kernel, %d remembered\n", d.Bindings, d.BindingsKernel, d.BindingsRemembered)
	fmt.Fprintf(tw, "in flight\t%d probes, %d migrations\n", d.ProbesInFlight, d.MigrationsInFlight)
	var counters []string
	for _, k := range slices.Sorted(maps.Keys(d.Counters)) {
		counters = append(counters, fmt.Sprintf("%s=%d", k, d.Counters[k]))
	}
	fmt.Fprintf(tw, "counters\t%s\n", strings.Join(counters, " "))
	if err := tw.Flush(); err != nil {
		return err
	}
	fmt.Fprintln(w)
	if len(d.Migrations) == 0 {
		_, err := fmt.Fprintln(w, "no migrations recorded")
		return err
	}
	tw = tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "START\tMAC\tPORT\tSVI\tLATENCY\tADDRESSES")
	for _, m := range d.Migrations {
		latency := "-"
		if m.LatencyMS > 0 {
			latency = fmt.Sprintf("%.1fms", m.LatencyMS)
		}
		var as []string
		for _, a := range m.Addresses {
			s := a.IP.String() + " " + string(a.Verdict)
			switch {
			case a.Reason != "":
				s += " (" + a.Reason + ")"
			case a.Stages != nil:
				st := a.Stages
				s += fmt.Sprintf(" (answered after %.1fms; probe/answer/queue/program %.1f/%.1f/%.1f/%.1fms)",
					a.AnsweredMS, st.Probe, st.Answer, st.Handle, st.Program)
			case a.AnsweredMS > 0:
				s += fmt.Sprintf(" (answered after %.1fms)", a.AnsweredMS)
			}
			as = append(as, s)
		}
		if len(as) == 0 {
			as = []string{"(none bound)"}
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", m.Start.UTC().Format("2006-01-02T15:04:05.000Z"),
			m.MAC, m.Port, m.SVI, latency, strings.Join(as, ", "))
	}
	return tw.Flush()
}

// portLine says why a port is served, in one line: its kind, what it is a
// member of and which SVI serves each VLAN.
func portLine(p status.Port) string {
	var b strings.Builder
	if p.Kind != "" {
		b.WriteString(p.Kind + ", ")
	}
	b.WriteString(p.Why)
	if p.STP != "" {
		b.WriteString(", STP " + p.STP)
	}
	if p.Bridge != "" && len(p.VLANs) == 0 && p.SVI != "" {
		b.WriteString(": SVI " + p.SVI)
	}
	var vs []string
	for _, v := range p.VLANs {
		s := fmt.Sprintf("%d", v.VID)
		switch {
		case v.PVID && v.Untagged:
			s += " (PVID, untagged)"
		case v.PVID:
			s += " (PVID)"
		case v.Untagged:
			s += " (untagged)"
		}
		vs = append(vs, s+" -> "+cmp.Or(v.SVI, "no SVI"))
	}
	if len(vs) > 0 {
		b.WriteString(": VLAN " + strings.Join(vs, ", "))
	}
	return b.String()
}

// statusSource is the daemon's answer to a status request: the Recorder's
// migrations and what the daemon serves now. It never takes the engine's
// lock: the mirror's counts and the probes in flight are O(1) reads, and
// the link table is read under its own read lock.
func statusSource(started time.Time, rec *status.Recorder, ports func() map[int]string, links *link.Table,
	bindings func() (kernel, remembered int), inFlight func() (probes, migrations int), counters func() engine.Snapshot) func() status.Doc {
	v := version.Get()
	return func() status.Doc {
		kernel, remembered := bindings()
		probes, migrations := inFlight()
		d := status.Doc{
			Version: v.Version, Commit: v.Commit, Started: started,
			UptimeSeconds:      time.Since(started).Seconds(),
			Ports:              []status.Port{},
			Bindings:           kernel + remembered,
			BindingsKernel:     kernel,
			BindingsRemembered: remembered,
			ProbesInFlight:     probes,
			MigrationsInFlight: migrations,
			Counters:           counters().Flat(),
			Migrations:         rec.Snapshot(),
		}
		for idx, name := range ports() {
			d.Ports = append(d.Ports, describePort(links, idx, name))
		}
		slices.SortFunc(d.Ports, func(a, b status.Port) int { return strings.Compare(a.Name, b.Name) })
		return d
	}
}

// describePort says why the port idx is served and by which SVI, asking
// the link table the way the engine does for a RARP (link.Table.Port).
func describePort(links *link.Table, idx int, name string) status.Port {
	p := status.Port{Name: name, IfIndex: idx}
	l, ok := links.Get(idx)
	if !ok {
		p.Why = "not in the link table (it is going away)"
		return p
	}
	p.Kind = l.Kind
	if untagged, err := links.Port(idx, nil); err == nil {
		p.SVI = untagged.SVI.Name
	}
	master, ok := links.Get(l.MasterIndex)
	if !ok || master.Kind != "bridge" {
		p.Why = "stand-alone L3 interface (its own SVI; its vlan subinterfaces for tagged RARPs)"
		return p
	}
	p.Bridge, p.STP = master.Name, l.PortInfo.State.String()
	if !master.VLANFiltering {
		p.Why = "member of bridge " + master.Name + " (the bridge is the SVI)"
		return p
	}
	p.Why = "member of VLAN-aware bridge " + master.Name + " (each VLAN's SVI)"
	for _, v := range l.VLANs {
		pv := status.PortVLAN{VID: v.VID, PVID: v.PVID, Untagged: v.Untagged}
		if sp, err := links.Port(idx, []uint16{v.VID}); err == nil {
			pv.SVI = sp.SVI.Name
		}
		p.VLANs = append(p.VLANs, pv)
	}
	return p
}
