// Package cmd holds rarp-replay's cobra commands. Each command returns its
// error; main prints it once.
package cmd

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"strings"
	"syscall"

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

// Execute runs rarp-replay with the process's arguments; SIGINT and SIGTERM
// cancel the command's context. It returns the exit status: 0; 1 after
// printing the error; 128 plus the signal's number (SIGINT 130, SIGTERM 143)
// when the signal stopped a command before its end (a command that ends on
// the signal as it should, like listen, returns nil and exits 0).
func Execute() int {
	ctx, cancel := context.WithCancelCause(context.Background())
	defer cancel(nil)
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, os.Interrupt, syscall.SIGTERM)
	defer signal.Stop(sigs)
	go func() {
		select {
		case s := <-sigs:
			cancel(&Interrupted{Signal: s.(syscall.Signal)})
		case <-ctx.Done():
		}
	}()
	err := New().ExecuteContext(ctx)
	if err == nil {
		return 0
	}
	fmt.Fprintln(os.Stderr, "rarp-replay:", err)
	var in *Interrupted
	if errors.As(err, &in) {
		return 128 + int(in.Signal)
	}
	return 1
}

// Interrupted is the cause of the context Execute cancels on a signal; a
// command the signal stopped early returns it.
type Interrupted struct{ Signal syscall.Signal }

func (e *Interrupted) Error() string {
	switch e.Signal {
	case syscall.SIGINT:
		return "interrupted (SIGINT)"
	case syscall.SIGTERM:
		return "interrupted (SIGTERM)"
	}
	return "interrupted (" + e.Signal.String() + ")"
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
