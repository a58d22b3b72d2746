package replay

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"slices"
	"strconv"
	"strings"

	"github.com/rarp-replay/rarp-replay/internal/link"
	"github.com/rarp-replay/rarp-replay/neigh"
)

// ErrSnapshot is returned for a neighbor snapshot in neither format.
var ErrSnapshot = errors.New("not a neighbor snapshot (want `ip -j neigh show` JSON or /proc/net/arp)")

// Neighbor is one entry of a neighbor snapshot.
type Neighbor struct {
	Dst         string
	Dev         string
	LLAddr      string
	State       []string
	ExternLearn bool
	// Remembered marks a binding the kernel had deleted and rarp-replay
	// still remembered (only in snapshots `listen` writes).
	Remembered bool
}

// LoadNeighbors reads a neighbor snapshot: the JSON `ip -j neigh show`
// prints (or `listen --dump-neigh` writes), or the text of /proc/net/arp.
func LoadNeighbors(r io.Reader) ([]Neighbor, error) {
	b, err := io.ReadAll(io.LimitReader(r, 256<<20))
	if err != nil {
		return nil, fmt.Errorf("neighbor snapshot: %w", err)
	}
	t := bytes.TrimSpace(b)
	switch {
	case bytes.HasPrefix(t, []byte("[")):
		return loadJSON(t)
	case bytes.HasPrefix(t, []byte("IP address")):
		return loadProcARP(t)
	}
	return nil, ErrSnapshot
}

// loadJSON reads `ip -j neigh show` JSON. Another iproute2 dump is a
// *WrongDumpError; an entry without a device (`ip neigh show dev X` leaves
// it out) or without an IP address is an error naming the entry.
func loadJSON(b []byte) ([]Neighbor, error) {
	_, raw, err := readDump(bytes.NewReader(b), DumpNeighbors)
	if err != nil {
		return nil, err
	}
	out := make([]Neighbor, 0, len(raw))
	for i, m := range raw {
		var n Neighbor
		for k, dst := range map[string]any{"dst": &n.Dst, "dev": &n.Dev, "lladdr": &n.LLAddr, "state": &n.State, "remembered": &n.Remembered} {
			if v, ok := m[k]; ok {
				if err := json.Unmarshal(v, dst); err != nil {
					var te *json.UnmarshalTypeError
					if errors.As(err, &te) {
						te.Field = k
					}
					return nil, fmt.Errorf("entry %d: %s", i+1, explainJSON(err))
				}
			}
		}
		if _, err := netip.ParseAddr(n.Dst); err != nil {
			return nil, fmt.Errorf("entry %d: \"dst\" %q is not an IP address", i+1, n.Dst)
		}
		if n.Dev == "" {
			return nil, fmt.Errorf("entry %d (%s) names no device: dump every device's neighbors, `ip -j neigh show` without `dev`", i+1, n.Dst)
		}
		_, n.ExternLearn = m["extern_learn"]
		out = append(out, n)
	}
	return out, nil
}

// loadProcARP reads /proc/net/arp: "IP address, HW type, Flags, HW address,
// Mask, Device". Incomplete entries (flags without ATF_COM, 0x2) bind
// nothing and are skipped.
func loadProcARP(b []byte) ([]Neighbor, error) {
	var out []Neighbor
	sc := bufio.NewScanner(bytes.NewReader(b))
	sc.Buffer(nil, len(b)+1) // a line as long as the file is still one line
	sc.Scan()                // header
	for line := 2; sc.Scan(); line++ {
		f := strings.Fields(sc.Text())
		if len(f) == 0 {
			continue
		}
		if len(f) != 6 {
			return nil, fmt.Errorf("%w: /proc/net/arp line %d has %d fields, want 6", ErrSnapshot, line, len(f))
		}
		flags, err := strconv.ParseUint(strings.TrimPrefix(f[2], "0x"), 16, 32)
		if err != nil {
			return nil, fmt.Errorf("%w: /proc/net/arp line %d: flags %q", ErrSnapshot, line, f[2])
		}
		if flags&0x2 == 0 {
			continue
		}
		state := []string{"REACHABLE"}
		if flags&0x4 != 0 {
			state = []string{"PERMANENT"}
		}
		out = append(out, Neighbor{Dst: f[0], Dev: f[5], LLAddr: f[3], State: state})
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("/proc/net/arp: %w", err)
	}
	return out, nil
}

// entry converts n for the mirror of the replayed switch.
func (n Neighbor) entry(links *link.Table) (neigh.Entry, bool) {
	ip, err := netip.ParseAddr(n.Dst)
	if err != nil {
		return neigh.Entry{}, false
	}
	mac, err := net.ParseMAC(n.LLAddr)
	if err != nil {
		return neigh.Entry{}, false
	}
	l, ok := links.ByName(n.Dev)
	if !ok {
		return neigh.Entry{}, false
	}
	e := neigh.Entry{IfIndex: l.Index, IP: ip, MAC: mac, State: neigh.NUDReachable}
	if slices.Contains(n.State, "NOARP") {
		e.State = neigh.NUDNoARP
	}
	if slices.Contains(n.State, "FAILED") || slices.Contains(n.State, "INCOMPLETE") {
		return neigh.Entry{}, false
	}
	if n.ExternLearn {
		e.Flags |= neigh.NTFExtLearned
	}
	return e, true
}
