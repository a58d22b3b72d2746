package cmd

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"time"

	"github.com/rarp-replay/rarp-replay/capture/pcapio"
	"github.com/rarp-replay/rarp-replay/internal/packet"
	"github.com/spf13/cobra"
)

type sendOptions struct {
	mac      string
	iface    string
	count    int
	interval time.Duration
	vlan     uint16

	hw    net.HardwareAddr // --mac, parsed by validate
	frame []byte           // the RARP, built by validate
}

// validate checks the flags, naming the wrong one, and builds the frame.
func (o *sendOptions) validate() error {
	var err error
	o.hw, err = net.ParseMAC(o.mac)
	if err != nil || !packet.UnicastMAC(o.hw) {
		return fmt.Errorf("--mac %q: want a unicast Ethernet address such as 02:00:5e:10:00:0a", o.mac)
	}
	if o.iface == "" {
		return errors.New("-i: name the interface to send on")
	}
	if o.count < 1 {
		return fmt.Errorf("--count %d: want at least 1", o.count)
	}
	var vlans []uint16
	if o.vlan != 0 {
		vlans = []uint16{o.vlan}
	}
	o.frame, err = packet.BuildRARP(o.hw, vlans)
	if err != nil {
		return fmt.Errorf("--vlan %d: %w", o.vlan, err)
	}
	return nil
}

func newSendRARP() *cobra.Command {
	o := &sendOptions{}
	c := &cobra.Command{
		Use:   "send-rarp --mac MAC -i IFACE",
		Short: "Announce a MAC with RARP frames, as a hypervisor does after a live migration",
		Long: `send-rarp sends hypervisor-style RARP announcements (EtherType 0x8035,
broadcast, opcode 3, sender and target hardware address MAC, no IP address).
By default it mimics QEMU: five frames at about 0, 50, 200, 450 and 800 ms.
--interval sends them at a fixed interval instead. Needs CAP_NET_RAW.`,
		Args:    usageArgs(cobra.NoArgs),
		PreRunE: validated(o.validate),
		RunE: func(c *cobra.Command, _ []string) error {
			return runSendRARP(c.Context(), o, c.OutOrStdout())
		},
	}
	f := c.Flags()
	f.StringVar(&o.mac, "mac", "", "MAC address to announce (required)")
	f.StringVarP(&o.iface, "interface", "i", "", "interface to send on (required)")
	f.IntVar(&o.count, "count", 5, "number of RARP frames")
	f.DurationVar(&o.interval, "interval", 0, "fixed interval between frames (default: QEMU's 50 ms, growing by 100 ms per round)")
	f.Uint16Var(&o.vlan, "vlan", 0, "802.1Q VLAN ID to tag the frames with (0: untagged)")
	return c
}

// runSendRARP sends o.count copies of o.frame on o.iface, stopping early
// (without an error) when ctx ends.
func runSendRARP(ctx context.Context, o *sendOptions, out io.Writer) error {
	h, err := pcapio.OpenSender(o.iface)
	if err != nil {
		return err
	}
	defer h.Close()
	start := time.Now()
	for i := range o.count {
		if i > 0 {
			select {
			case <-ctx.Done():
				return nil
			case <-time.After(gap(i, o.interval)):
			}
		}
		if err := h.WritePacketData(o.frame); err != nil {
			return fmt.Errorf("send on %s: %w", o.iface, err)
		}
		fmt.Fprintf(out, "sent RARP %d/%d for %s on %s at +%d ms\n", i+1, o.count, o.hw, o.iface, time.Since(start).Milliseconds())
	}
	return nil
}

// gap is the wait before frame i (1-based after the first): a fixed
// interval, or QEMU's announce schedule (initial 50 ms, step 100 ms).
func gap(i int, interval time.Duration) time.Duration {
	if interval > 0 {
		return interval
	}
	return 50*time.Millisecond + time.Duration(i-1)*100*time.Millisecond
}
