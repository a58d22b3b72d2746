package neigh

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"time"
)

// stateFormat and stateVersion identify a state file.
const (
	stateFormat  = "rarp-replay-state"
	stateVersion = 1
)

// ErrForeignState is returned by Load for a file that is not a rarp-replay
// state file of a version it reads.
var ErrForeignState = errors.New("not a rarp-replay state file")

type stateFile struct {
	Format   string         `json:"format"`
	Version  int            `json:"version"`
	Saved    time.Time      `json:"saved"`
	Bindings []stateBinding `json:"bindings"`
}

type stateBinding struct {
	Dev     string    `json:"dev"`
	MAC     string    `json:"mac"`
	IP      string    `json:"ip"`
	Remote  bool      `json:"remote,omitempty"`
	Seen    time.Time `json:"seen"`
	Deleted time.Time `json:"deleted,omitzero"` // zero: still in the kernel when saved
}

// Save writes the mirror's bindings, present and remembered, so that a
// restarted daemon still knows bindings the kernel forgot. name maps an
// interface index to its name (indexes do not survive a reboot).
func (m *Mirror) Save(w io.Writer, name func(int) string) error {
	now := m.now()
	st := stateFile{Format: stateFormat, Version: stateVersion, Saved: now}
	m.mu.RLock()
	for k, set := range m.byMAC {
		for i := range set {
			b := &set[i]
			if !b.live(now.UnixNano(), m.retention) {
				continue
			}
			sb := stateBinding{
				Dev: name(int(k.ifindex)), MAC: net.HardwareAddr(k.mac[:]).String(), IP: netip.AddrFrom16(b.ip).Unmap().String(),
				Remote: b.remote, Seen: time.Unix(0, b.seen),
			}
			if !b.present {
				sb.Deleted = time.Unix(0, b.deleted)
			}
			st.Bindings = append(st.Bindings, sb)
		}
	}
	m.mu.RUnlock()
	return json.NewEncoder(w).Encode(st)
}

// Load adds the bindings of a state file to the mirror as remembered ones:
// the netlink dump that follows marks those still in the kernel present.
// Bindings deleted longer ago than the retention window, on interfaces that
// no longer exist, or for an address now bound to another MAC are skipped.
// It returns how many it added; a corrupt file is an error wrapping
// ErrForeignState, and the mirror is then unchanged.
func (m *Mirror) Load(r io.Reader, index func(name string) (int, bool)) (int, error) {
	var st stateFile
	if err := json.NewDecoder(io.LimitReader(r, 1<<30)).Decode(&st); err != nil {
		return 0, fmt.Errorf("%w: %v", ErrForeignState, err)
	}
	if st.Format != stateFormat || st.Version != stateVersion {
		return 0, fmt.Errorf("%w: format %q version %d", ErrForeignState, st.Format, st.Version)
	}
	now := m.now()
	type parsed struct {
		k  macKey
		ip netip.Addr
		b  stateBinding
	}
	var ok []parsed
	for i, b := range st.Bindings {
		ip, err := netip.ParseAddr(b.IP)
		mac, merr := net.ParseMAC(b.MAC)
		if err != nil || merr != nil || len(mac) != 6 {
			return 0, fmt.Errorf("%w: binding %d: ip %q mac %q", ErrForeignState, i+1, b.IP, b.MAC)
		}
		deleted := b.Deleted
		if deleted.IsZero() {
			deleted = st.Saved // in the kernel then; the dump tells whether it still is
		}
		if now.Sub(deleted) > m.retention {
			continue
		}
		idx, found := index(b.Dev)
		if !found {
			continue
		}
		b.Deleted = deleted
		k, _ := key(idx, mac)
		ok = append(ok, parsed{k, ip.Unmap(), b})
	}
	n := 0
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, p := range ok {
		ip := p.ip.As16()
		ik := ipKey{p.k.ifindex, ip}
		if owner, bound := m.owner[ik]; bound && owner != p.k.mac {
			continue
		}
		set := m.byMAC[p.k]
		i := find(set, ip)
		if i >= 0 && set[i].present {
			continue
		}
		b := binding{ip: ip, remote: p.b.Remote, seen: p.b.Seen.UnixNano(), deleted: p.b.Deleted.UnixNano()}
		if i >= 0 {
			set[i] = b
		} else {
			m.byMAC[p.k] = append(set, b)
		}
		m.owner[ik] = p.k.mac
		n++
	}
	return n, nil
}
