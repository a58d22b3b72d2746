// Package neigh mirrors the kernel's neighbor table (ARP and NDP bindings)
// in memory, indexed by MAC, and remembers each MAC's bindings for a
// retention window after the kernel deleted them: on an EVPN leaf the remote
// bindings a migrated VM needs are exactly the ones zebra deletes when the
// old leaf withdraws its routes, sometimes before the VM's RARP arrives.
package neigh

import (
	"fmt"
	"net"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/rarp-replay/rarp-replay/internal/engine"
	"github.com/rarp-replay/rarp-replay/internal/packet"
)

// Neighbor states and flags (include/uapi/linux/neighbour.h).
const (
	NUDIncomplete = 0x01
	NUDReachable  = 0x02
	NUDStale      = 0x04
	NUDDelay      = 0x08
	NUDProbe      = 0x10
	NUDFailed     = 0x20
	NUDNoARP      = 0x40
	NUDPermanent  = 0x80

	NTFExtLearned = 0x10
)

// Entry is one neighbor entry as the kernel reports it.
type Entry struct {
	IfIndex int
	IP      netip.Addr
	MAC     net.HardwareAddr
	State   int // NUD_* bits
	Flags   int // NTF_* bits
}

// ExternLearned reports whether a control plane (zebra, for EVPN) installed
// the entry: on an EVPN leaf, a remote binding.
func (e Entry) ExternLearned() bool { return e.Flags&NTFExtLearned != 0 }

// StateString names e's NUD state bits as `ip neigh` does ("REACHABLE",
// "NOARP", "STALE|...") for log lines; "NONE" when no bit is set.
func (e Entry) StateString() string {
	return bitNames(e.State, []string{"INCOMPLETE", "REACHABLE", "STALE", "DELAY", "PROBE", "FAILED", "NOARP", "PERMANENT"}, "NONE")
}

// FlagsString names e's NTF flag bits as `ip neigh` does ("extern_learn",
// "router", "use|self|...") for log lines; "none" when no bit is set.
func (e Entry) FlagsString() string {
	return bitNames(e.Flags, []string{"use", "self", "master", "proxy", "extern_learn", "offload", "sticky", "router"}, "none")
}

// bitNames joins the names of the bits set in v, bit 0 first, with "|";
// bits without a name show as hexadecimal.
func bitNames(v int, names []string, zero string) string {
	if v == 0 {
		return zero
	}
	var out []string
	for i, n := range names {
		if v&(1<<i) != 0 {
			out = append(out, n)
		}
	}
	if rest := v &^ (1<<len(names) - 1); rest != 0 {
		out = append(out, fmt.Sprintf("%#x", rest))
	}
	return strings.Join(out, "|")
}

// usable reports whether e binds a unicast IP to a unicast MAC.
func (e Entry) usable() bool {
	return e.IP.IsValid() && !e.IP.IsMulticast() && !e.IP.IsUnspecified() && packet.UnicastMAC(e.MAC)
}

// Binding is one address bound to a MAC on an interface, as Lookup
// returns it: the engine's type, which the mirror serves.
type Binding = engine.Binding

// The mirror keeps bindings compact (about 40 bytes each plus two map
// entries), as a leaf may hold 100k of them: addresses as 16 bytes (IPv4
// v4-mapped), times as Unix nanoseconds.
type macKey struct {
	ifindex int32
	mac     [6]byte
}

type ipKey struct {
	ifindex int32
	ip      [16]byte
}

type binding struct {
	ip      [16]byte
	remote  bool
	present bool
	seen    int64 // Unix ns
	deleted int64 // Unix ns; meaningful when !present
}

func (b *binding) public() Binding {
	return Binding{IP: netip.AddrFrom16(b.ip).Unmap(), Present: b.present, Remote: b.remote, Seen: time.Unix(0, b.seen)}
}

// live reports whether b is present or remembered at now.
func (b *binding) live(now int64, retention time.Duration) bool {
	return b.present || time.Duration(now-b.deleted) <= retention
}

// Mirror is an in-memory copy of the neighbor table, safe for concurrent use.
// Lookup is a map access: it never scans the table.
type Mirror struct {
	retention time.Duration
	now       func() time.Time

	mu    sync.RWMutex
	byMAC map[macKey][]binding
	n     int               // bindings in byMAC, present or remembered
	nPres int               // of those, present in the kernel's table
	owner map[ipKey][6]byte // which MAC an address on an interface is bound to now
}

// NewMirror returns an empty mirror that remembers deleted bindings for
// retention.
func NewMirror(retention time.Duration) *Mirror {
	return &Mirror{
		retention: retention,
		now:       time.Now,
		byMAC:     make(map[macKey][]binding),
		owner:     make(map[ipKey][6]byte),
	}
}

func key(ifindex int, mac net.HardwareAddr) (macKey, bool) {
	k := macKey{ifindex: int32(ifindex)}
	if len(mac) != 6 {
		return k, false
	}
	copy(k.mac[:], mac)
	return k, true
}

func find(set []binding, ip [16]byte) int {
	for i := range set {
		if set[i].ip == ip {
			return i
		}
	}
	return -1
}

// Update records an entry the kernel added or changed (RTM_NEWNEIGH). An
// entry in state FAILED or INCOMPLETE no longer binds its address and is
// recorded as deleted. An address that moved to another MAC is forgotten
// for its old MAC.
func (m *Mirror) Update(e Entry) {
	if e.State&(NUDFailed|NUDIncomplete) != 0 || !e.usable() {
		m.Delete(e)
		return
	}
	k, _ := key(e.IfIndex, e.MAC)
	ip := e.IP.Unmap().As16()
	now := m.now().UnixNano()
	m.mu.Lock()
	defer m.mu.Unlock()
	ik := ipKey{k.ifindex, ip}
	if old, ok := m.owner[ik]; ok && old != k.mac {
		m.forget(macKey{k.ifindex, old}, ip)
	}
	m.owner[ik] = k.mac
	b := binding{ip: ip, remote: e.ExternLearned(), present: true, seen: now}
	set := m.byMAC[k]
	if i := find(set, ip); i >= 0 {
		if !set[i].present {
			m.nPres++
		}
		set[i] = b
		return
	}
	m.byMAC[k] = append(set, b)
	m.n++
	m.nPres++
}

// Delete records that the kernel deleted an entry (RTM_DELNEIGH). The
// binding is remembered until the retention window has passed.
func (m *Mirror) Delete(e Entry) {
	k, ok := key(e.IfIndex, e.MAC)
	ip := e.IP.Unmap().As16()
	now := m.now().UnixNano()
	m.mu.Lock()
	defer m.mu.Unlock()
	if !ok {
		// A FAILED or INCOMPLETE entry may come without a MAC: find its owner.
		mac, found := m.owner[ipKey{k.ifindex, ip}]
		if !found {
			return
		}
		k.mac = mac
	}
	set := m.byMAC[k]
	if i := find(set, ip); i >= 0 && set[i].present {
		set[i].present = false
		set[i].deleted = now
		m.nPres--
	}
}

// forget drops ip from k's bindings. The caller holds m.mu.
func (m *Mirror) forget(k macKey, ip [16]byte) {
	set := m.byMAC[k]
	if i := find(set, ip); i >= 0 {
		if set[i].present {
			m.nPres--
		}
		set = append(set[:i], set[i+1:]...)
		m.n--
	}
	if len(set) == 0 {
		delete(m.byMAC, k)
	} else {
		m.byMAC[k] = set
	}
	if m.owner[ipKey{k.ifindex, ip}] == k.mac {
		delete(m.owner, ipKey{k.ifindex, ip})
	}
}

// Sync reconciles the mirror with a full dump of the kernel's table: entries
// in the dump are updated, and present bindings missing from it are
// recorded as deleted (and so remembered).
func (m *Mirror) Sync(entries []Entry) {
	seen := make(map[ipKey]bool, len(entries))
	for _, e := range entries {
		m.Update(e)
		seen[ipKey{int32(e.IfIndex), e.IP.Unmap().As16()}] = true
	}
	now := m.now().UnixNano()
	m.mu.Lock()
	defer m.mu.Unlock()
	for k, set := range m.byMAC {
		for i := range set {
			if set[i].present && !seen[ipKey{k.ifindex, set[i].ip}] {
				set[i].present = false
				set[i].deleted = now
				m.nPres--
			}
		}
	}
}

// Lookup returns the addresses bound to mac on the interface ifindex,
// present or remembered, ordered IPv4 first.
func (m *Mirror) Lookup(ifindex int, mac net.HardwareAddr) []Binding {
	k, ok := key(ifindex, mac)
	if !ok {
		return nil
	}
	now := m.now().UnixNano()
	m.mu.RLock()
	set := m.byMAC[k]
	out := make([]Binding, 0, len(set))
	for i := range set {
		if set[i].live(now, m.retention) {
			out = append(out, set[i].public())
		}
	}
	m.mu.RUnlock()
	slices.SortFunc(out, func(a, b Binding) int { return a.IP.Compare(b.IP) })
	return out
}

// Prune forgets bindings deleted longer ago than the retention window and
// returns how many it forgot.
func (m *Mirror) Prune() int {
	now := m.now().UnixNano()
	n := 0
	m.mu.Lock()
	defer m.mu.Unlock()
	for k, set := range m.byMAC {
		for _, b := range slices.Clone(set) {
			if !b.live(now, m.retention) {
				m.forget(k, b.ip)
				n++
			}
		}
	}
	return n
}

// Len returns the number of bindings mirrored, present or remembered.
func (m *Mirror) Len() int {
	m.mu.RLock()
	defer m.mu.RUnlock()
	return m.n
}

// Counts returns how many bindings the mirror holds that are in the
// kernel's table now, and how many it only remembers (the kernel deleted
// them; they are kept for the retention window, or were loaded from the
// state file). O(1), for status requests.
func (m *Mirror) Counts() (kernel, remembered int) {
	m.mu.RLock()
	defer m.mu.RUnlock()
	return m.nPres, m.n - m.nPres
}

// saved is one binding as snapshot copies it.
type saved struct {
	k macKey
	b binding
}

// snapshotBatch is how many MACs snapshot copies per hold of the read lock
// (0: all in one hold).
var snapshotBatch = 1024

// snapshot copies the bindings live at now (Unix ns) for Save, which
// formats and writes them after, so neighbor updates never wait on the disk.
//
// The copy touches every MAC's bindings, scattered over the heap: 100 to
// 250 ns each, 150 to 250 ms at 1M bindings in one hold (PERFORMANCE.md). So the read lock is
// released every snapshotBatch MACs to let waiting writers (and the readers
// queued behind them) in; map iteration allows changes between its steps.
// Each MAC's bindings are copied at one instant, the whole map is not: an
// address moving between two MACs meanwhile may be copied for both (Load
// keeps one, the kernel's dump corrects it) or for neither (remembered
// again at the next save).
func (m *Mirror) snapshot(now int64) []saved {
	n := m.Len()
	out := make([]saved, 0, n+n/64+64) // room for bindings added meanwhile
	m.walk(func(k macKey, set []binding) {
		for i := range set {
			if set[i].live(now, m.retention) {
				out = append(out, saved{k, set[i]})
			}
		}
	})
	return out
}

// walk calls f with each MAC's bindings under the read lock, released
// every snapshotBatch MACs.
func (m *Mirror) walk(f func(macKey, []binding)) {
	m.mu.RLock()
	defer m.mu.RUnlock()
	n := 0
	for k, set := range m.byMAC {
		f(k, set)
		if n++; n == snapshotBatch {
			n = 0
			m.mu.RUnlock()
			m.mu.RLock()
		}
	}
}

// Record is one binding of the mirror, as Records returns it.
type Record struct {
	IfIndex int
	MAC     net.HardwareAddr
	Binding
}

// Records returns every binding the mirror holds, present or remembered
// within the retention window, ordered by interface, MAC and address.
func (m *Mirror) Records() []Record {
	now := m.now().UnixNano()
	m.mu.RLock()
	var out []Record
	for k, set := range m.byMAC {
		for i := range set {
			if set[i].live(now, m.retention) {
				out = append(out, Record{IfIndex: int(k.ifindex), MAC: net.HardwareAddr(append([]byte(nil), k.mac[:]...)), Binding: set[i].public()})
			}
		}
	}
	m.mu.RUnlock()
	slices.SortFunc(out, func(a, b Record) int {
		if a.IfIndex != b.IfIndex {
			return a.IfIndex - b.IfIndex
		}
		if c := strings.Compare(string(a.MAC), string(b.MAC)); c != 0 {
			return c
		}
		return a.IP.Compare(b.IP)
	})
	return out
}
