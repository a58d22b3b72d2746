package cmd

import (
	"fmt"
	"strings"

	"golang.org/x/sys/unix"
)

// requireCaps returns an error naming every capability listen needs and
// the process lacks in its effective set: CAP_NET_RAW, and CAP_NET_ADMIN
// unless nothing is to be programmed (--dry-run).
func requireCaps(program bool) error {
	hdr := unix.CapUserHeader{Version: unix.LINUX_CAPABILITY_VERSION_3}
	var data [2]unix.CapUserData
	if err := unix.Capget(&hdr, &data[0]); err != nil {
		return fmt.Errorf("read capabilities: %w", err)
	}
	var missing []string
	for _, c := range []struct {
		bit  uint
		name string
		why  string
	}{
		{unix.CAP_NET_RAW, "CAP_NET_RAW", "to capture and send frames"},
		{unix.CAP_NET_ADMIN, "CAP_NET_ADMIN", "to program neighbors"},
	} {
		if c.bit == unix.CAP_NET_ADMIN && !program {
			continue
		}
		if data[c.bit/32].Effective&(1<<(c.bit%32)) == 0 {
			missing = append(missing, c.name+" ("+c.why+")")
		}
	}
	if len(missing) > 0 {
		return fmt.Errorf("missing capability %s: run as root, or grant them (systemd AmbientCapabilities=CAP_NET_RAW CAP_NET_ADMIN)", strings.Join(missing, " and "))
	}
	return nil
}
