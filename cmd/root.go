// Package cmd holds rarp-replay's cobra commands. Each command returns its
// error; main prints it once.
package cmd

import (
	"fmt"
	"io"
	"log/slog"
	"strings"

	"github.com/spf13/cobra"
)

type logOptions struct {
	level  string
	format string
}

// New returns the rarp-replay root command.
func New() *cobra.Command {
	lo := &logOptions{}
	root := &cobra.Command{
		Use:   "rarp-replay",
		Short: "Restore a live-migrated VM's MAC+IP bindings on an EVPN leaf",
		Long: `rarp-replay runs on every leaf of an EVPN-VXLAN fabric. When a hypervisor
announces a migrated VM with RARP frames, it probes every IPv4 and IPv6
address the leaf binds to the VM's MAC, and programs each binding the VM
answers for as a local neighbor, so the routing suite advertises MAC+IP
again at once instead of when the VM next speaks.`,
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.PersistentFlags().StringVar(&lo.level, "log-level", "info", "log level: debug, info, warn, error")
	root.PersistentFlags().StringVar(&lo.format, "log-format", "text", "log format: text or json")
	root.AddCommand(newListen(lo), newSendRARP(lo), newReplay(lo))
	return root
}

func (o *logOptions) logger(w io.Writer) (*slog.Logger, error) {
	var level slog.Level
	if err := level.UnmarshalText([]byte(o.level)); err != nil {
		return nil, fmt.Errorf("--log-level %q: want debug, info, warn or error", o.level)
	}
	hopts := &slog.HandlerOptions{Level: level}
	switch strings.ToLower(o.format) {
	case "text":
		return slog.New(slog.NewTextHandler(w, hopts)), nil
	case "json":
		return slog.New(slog.NewJSONHandler(w, hopts)), nil
	}
	return nil, fmt.Errorf("--log-format %q: want text or json", o.format)
}
