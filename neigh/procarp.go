package neigh

import (
	"bufio"
	"bytes"
	"fmt"
	"net"
	"net/netip"
	"os"
	"strings"
)

// ProcARP is the resolver the design card first named: it reads
// /proc/net/arp on every lookup. It is kept to measure the choice of the
// netlink mirror against (see BenchmarkResolver): it scans the whole table
// per RARP, has no IPv6, and cannot see NOARP entries, which are exactly
// the remote bindings EVPN installs.
type ProcARP struct {
	Path  string         // default /proc/net/arp
	Names map[int]string // interface index to name
}

// Lookup returns the IPv4 addresses bound to mac on the interface ifindex.
// Equivalent to `grep MAC /proc/net/arp`.
func (p ProcARP) Lookup(ifindex int, mac net.HardwareAddr) []Binding {
	path := p.Path
	if path == "" {
		path = "/proc/net/arp"
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return nil
	}
	dev, want := p.Names[ifindex], strings.ToLower(mac.String())
	var out []Binding
	sc := bufio.NewScanner(bytes.NewReader(b))
	sc.Scan() // header
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) != 6 || f[3] != want || f[5] != dev || f[2] == "0x0" {
			continue
		}
		if ip, err := netip.ParseAddr(f[0]); err == nil {
			out = append(out, Binding{IP: ip, Present: true})
		}
	}
	return out
}

// writeProcARP renders bindings in /proc/net/arp's format (for tests and
// benchmarks).
func writeProcARP(w *bytes.Buffer, dev string, n int, macOf func(int) net.HardwareAddr, ipOf func(int) netip.Addr) {
	w.WriteString("IP address       HW type     Flags       HW address            Mask     Device\n")
	for i := range n {
		fmt.Fprintf(w, "%-16s 0x1         0x2         %s     *        %s\n", ipOf(i), macOf(i), dev)
	}
}
