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
	var showVersion bool
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
		// With Args set, an unknown command is unknownCommand's usage error,
		// not an untyped one from cobra's command lookup; with RunE, the
		// root prints its help (or --version) instead of cobra doing so
		// whatever the arguments.
		Args:                       unknownCommand,
		SuggestionsMinimumDistance: 2,
		// The log flags are checked before any command runs.
		PersistentPreRunE: func(*cobra.Command, []string) error {
			if _, err := lo.logger(io.Discard); err != nil {
				return &UsageError{Err: err}
			}
			return nil
		},
		RunE: func(c *cobra.Command, _ []string) error {
			if showVersion {
				return writeVersion(c.OutOrStdout())
			}
			return c.Help()
		},
	}
	root.SetFlagErrorFunc(func(_ *cobra.Command, err error) error { return &UsageError{Err: err} })
	root.Flags().BoolVar(&showVersion, "version", false, "print the version, commit, Go and libpcap versions (as the version command)")
	root.PersistentFlags().StringVar(&lo.level, "log-level", "info", "log level: debug, info, warn, error")
	root.PersistentFlags().StringVar(&lo.format, "log-format", "text", "log format: text or json")
	root.AddCommand(newListen(lo), newSendRARP(), newReplay(lo), newStatus(), newVersion())
	return root
}

// UsageError is a mistake in the command line: an unknown command or
// flag, a flag value that does not parse or that validation refuses, or
// a wrong number of arguments. Execute exits 2 on it.
type UsageError struct{ Err error }

func (e *UsageError) Error() string { return e.Err.Error() }
func (e *UsageError) Unwrap() error { return e.Err }

// usageArgs makes the errors of an argument validator usage errors.
func usageArgs(args cobra.PositionalArgs) cobra.PositionalArgs {
	return func(c *cobra.Command, a []string) error {
		if err := args(c, a); err != nil {
			return &UsageError{Err: err}
		}
		return nil
	}
}

// unknownCommand refuses an argument to the root command, which can only
// be a mistyped command, suggesting the command meant.
func unknownCommand(c *cobra.Command, args []string) error {
	if len(args) == 0 {
		return nil
	}
	msg := fmt.Sprintf("unknown command %q for %q", args[0], c.CommandPath())
	if s := c.SuggestionsFor(args[0]); len(s) > 0 {
		msg += "; did you mean " + strings.Join(s, " or ") + "?"
	}
	return &UsageError{Err: errors.New(msg)}
}

// validated returns a PreRunE running validate, whose error is a usage
// error.
func validated(validate func() error) func(*cobra.Command, []string) error {
	return func(*cobra.Command, []string) error {
		if err := validate(); err != nil {
			return &UsageError{Err: err}
		}
		return nil
	}
}

// Execute runs rarp-replay with the process's arguments; SIGINT and SIGTERM
// cancel the command's context. It prints the error, if any, and returns
// the exit status (exitStatus).
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
	c, err := New().ExecuteContextC(ctx)
	if err == nil {
		return 0
	}
	fmt.Fprintln(os.Stderr, "rarp-replay:", err)
	if errors.As(err, new(*UsageError)) && c != nil {
		fmt.Fprintf(os.Stderr, "Run '%s --help' for usage.\n", c.CommandPath())
	}
	return exitStatus(err)
}

// exitStatus is the process's exit status for a command's error: 0 for
// nil; 2 for a usage error; 128 plus the signal's number (SIGINT 130,
// SIGTERM 143) when a signal stopped a command before its end (a command
// that ends on the signal as it should, like listen, returns nil and
// exits 0); 1 for any other failure.
func exitStatus(err error) int {
	var in *Interrupted
	switch {
	case err == nil:
		return 0
	case errors.As(err, new(*UsageError)):
		return 2
	case errors.As(err, &in):
		return 128 + int(in.Signal)
	}
	var ec interface{ ExitCode() int }
	if errors.As(err, &ec) {
		return ec.ExitCode()
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
