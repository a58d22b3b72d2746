// Command rarp-replay restores a live-migrated VM's MAC+IP bindings on an
// EVPN-VXLAN leaf. See `rarp-replay --help`.
package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/rarp-replay/rarp-replay/cmd"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := cmd.New().ExecuteContext(ctx)
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, "rarp-replay:", err)
		os.Exit(1)
	}
}
