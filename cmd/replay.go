package cmd

import (
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"

	"github.com/rarp-replay/rarp-replay/internal/engine"
	"github.com/rarp-replay/rarp-replay/internal/link"
	"github.com/rarp-replay/rarp-replay/replay"
	"github.com/spf13/cobra"
)

type replayOptions struct {
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
the reason the frame was dropped; then one line per migration. ARP replies
and Neighbor Advertisements in the capture verify probes.`,
		Args: cobra.ExactArgs(1),
		RunE: func(c *cobra.Command, args []string) error {
			log, err := lo.logger(c.ErrOrStderr())
			if err != nil {
				return err
			}
			opts := replay.Options{SVI: o.svi, Config: engine.DefaultConfig, Port: o.port}
			if o.links != "" {
				if opts.Links, err = loadLinks(o.links, o.vlans); err != nil {
					return err
				}
			}
			if opts.SVIMAC, err = net.ParseMAC(o.sviMAC); err != nil {
				return fmt.Errorf("--svi-mac: %w", err)
			}
			for _, a := range o.addrs {
				p, err := netip.ParsePrefix(a)
				if err != nil {
					return fmt.Errorf("--svi-addr: %w", err)
				}
				opts.SVIAddrs = append(opts.SVIAddrs, p)
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
			f, err := os.Open(args[0])
			if err != nil {
				return err
			}
			defer f.Close()
			res, err := replay.Run(f, neighbors, opts, log)
			if err != nil {
				return fmt.Errorf("%s: %w", args[0], err)
			}
			if o.write != "" {
				pf, err := os.Create(o.write)
				if err != nil {
					return err
				}
				if err := res.WriteProbes(pf); err != nil {
					pf.Close()
					return fmt.Errorf("%s: %w", o.write, err)
				}
				if err := pf.Close(); err != nil {
					return err
				}
			}
			if o.json {
				return res.WriteJSON(c.OutOrStdout())
			}
			return res.WriteText(c.OutOrStdout())
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
	f.BoolVar(&o.json, "json", false, "print one JSON object per frame and per migration")
	f.StringVar(&o.write, "write", "", "write the probes the daemon would have sent to this pcap file")
	return c
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
