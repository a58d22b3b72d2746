// Command rarp-replay restores a live-migrated VM's MAC+IP bindings on an
// EVPN-VXLAN leaf. See `rarp-replay --help`.
package main

import (
	"os"

	"github.com/rarp-replay/rarp-replay/cmd"
)

func main() { os.Exit(cmd.Execute()) }
