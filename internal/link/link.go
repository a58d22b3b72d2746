// Package link keeps rarp-replay's model of the switch's interfaces: which
// ones are access ports (where a RARP may trigger probes), which SVI serves
// each port, and the SVI addresses a probe is sent from.
package link

import (
	"fmt"
	"net"
	"net/netip"
	"slices"
	"sync"
)

// Link is one network interface.
type Link struct {
	Index       int
	Name        string
	Kind        string // rtnetlink kind: "veth", "bridge", "vxlan", "device", "macvlan", "vlan", "vrf", "bond", ...
	MAC         net.HardwareAddr
	MasterIndex int // the bridge, bond or VRF the link is enslaved to; 0 for none
	ParentIndex int // the lower device of a vlan or macvlan; 0 for none
	Loopback    bool
	Up          bool
	Addrs       []netip.Prefix
}

// Port is an access port together with the SVI that serves it: its bridge
// for a bridge member, the port itself for a stand-alone L3 interface.
type Port struct {
	Link Link
	SVI  Link
}

// IneligibleError says why a RARP on an interface must not trigger probes.
type IneligibleError struct {
	Name   string
	Reason string // "unknown-port", "not-access-port"
	Detail string
}

func (e *IneligibleError) Error() string {
	return fmt.Sprintf("%s: %s (%s)", e.Name, e.Reason, e.Detail)
}

// Eligible decides whether l is an access port, given its master (nil when
// it has none) and its parent (nil when it has none), and returns the index
// of its SVI. Only a bridge member that is not an overlay (VXLAN) device, or
// a stand-alone L3 interface, is an access port: the same RARP also shows up
// on the bridge itself and, on the old leaf, arrives over the VXLAN port,
// and neither may trigger probes.
func Eligible(l Link, master, parent *Link) (svi int, err error) {
	no := func(detail string) (int, error) {
		return 0, &IneligibleError{Name: l.Name, Reason: "not-access-port", Detail: detail}
	}
	if l.Loopback {
		return no("loopback")
	}
	if len(l.MAC) != 6 {
		return no("no Ethernet address")
	}
	switch l.Kind {
	case "vxlan", "geneve":
		return no("overlay device")
	case "bridge":
		return no("bridge (it is the SVI of its members)")
	case "vrf", "dummy", "ipvlan":
		return no(l.Kind + " device")
	case "macvlan":
		return no("macvlan (an anycast gateway on an SVI)")
	case "vlan":
		if parent != nil && parent.Kind == "bridge" {
			return no("vlan device on a bridge (an SVI)")
		}
	}
	if master != nil {
		switch master.Kind {
		case "bridge":
			return master.Index, nil
		case "bond", "team":
			return no("member of " + master.Kind + " " + master.Name + " (the " + master.Kind + " is the port)")
		}
	}
	return l.Index, nil
}

// Table is a concurrency-safe table of links, fed by netlink on a live
// switch and by hand in tests and replays.
type Table struct {
	mu      sync.RWMutex
	links   map[int]*Link
	changed chan struct{}
	// Refresh, when set, reads one link from the kernel; Port calls it for an
	// index it does not know yet (a port whose creation event is still on
	// its way).
	Refresh func(index int) (Link, error)
}

// NewTable returns an empty table.
func NewTable() *Table {
	return &Table{links: make(map[int]*Link), changed: make(chan struct{}, 1)}
}

// Changed returns a channel that receives a value after the table changed.
// Notifications are coalesced; readers re-read the table.
func (t *Table) Changed() <-chan struct{} { return t.changed }

func (t *Table) notify() {
	select {
	case t.changed <- struct{}{}:
	default:
	}
}

// Set adds or replaces a link. A replaced link keeps its addresses when l
// carries none.
func (t *Table) Set(l Link) {
	t.mu.Lock()
	if old, ok := t.links[l.Index]; ok && l.Addrs == nil {
		l.Addrs = old.Addrs
	}
	t.links[l.Index] = &l
	t.mu.Unlock()
	t.notify()
}

// Delete removes a link.
func (t *Table) Delete(index int) {
	t.mu.Lock()
	delete(t.links, index)
	t.mu.Unlock()
	t.notify()
}

// Replace swaps the whole table for links (a fresh dump). A link that
// carries no addresses keeps those the table had for it.
func (t *Table) Replace(links []Link) {
	m := make(map[int]*Link, len(links))
	t.mu.Lock()
	for i := range links {
		l := &links[i]
		if old, ok := t.links[l.Index]; ok && l.Addrs == nil {
			l.Addrs = old.Addrs
		}
		m[l.Index] = l
	}
	t.links = m
	t.mu.Unlock()
	t.notify()
}

// AddAddr adds p to the link's addresses; DelAddr removes it.
func (t *Table) AddAddr(index int, p netip.Prefix) { t.editAddr(index, p, true) }

// DelAddr removes p from the link's addresses.
func (t *Table) DelAddr(index int, p netip.Prefix) { t.editAddr(index, p, false) }

func (t *Table) editAddr(index int, p netip.Prefix, add bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	l, ok := t.links[index]
	if !ok {
		return
	}
	addrs := slices.DeleteFunc(slices.Clone(l.Addrs), func(q netip.Prefix) bool { return q == p })
	if add {
		addrs = append(addrs, p)
	}
	l.Addrs = addrs
}

// Get returns the link with the given index.
func (t *Table) Get(index int) (Link, bool) {
	t.mu.RLock()
	defer t.mu.RUnlock()
	l, ok := t.links[index]
	if !ok {
		return Link{}, false
	}
	return *l, true
}

// ByName returns the link with the given name.
func (t *Table) ByName(name string) (Link, bool) {
	t.mu.RLock()
	defer t.mu.RUnlock()
	for _, l := range t.links {
		if l.Name == name {
			return *l, true
		}
	}
	return Link{}, false
}

// All returns every link, ordered by index.
func (t *Table) All() []Link {
	t.mu.RLock()
	out := make([]Link, 0, len(t.links))
	for _, l := range t.links {
		out = append(out, *l)
	}
	t.mu.RUnlock()
	slices.SortFunc(out, func(a, b Link) int { return a.Index - b.Index })
	return out
}

// Port returns the access port with the given index and its SVI, or an
// *IneligibleError saying why a RARP there must not trigger probes.
func (t *Table) Port(index int) (Port, error) {
	p, err, known := t.port(index)
	if !known && t.Refresh != nil {
		if l, rerr := t.Refresh(index); rerr == nil {
			t.Set(l)
			p, err, _ = t.port(index)
		}
	}
	return p, err
}

func (t *Table) port(index int) (Port, error, bool) {
	t.mu.RLock()
	defer t.mu.RUnlock()
	l, ok := t.links[index]
	if !ok {
		return Port{}, &IneligibleError{Name: fmt.Sprintf("ifindex %d", index), Reason: "unknown-port", Detail: "not in the link table"}, false
	}
	svi, err := Eligible(*l, t.links[l.MasterIndex], t.links[l.ParentIndex])
	if err != nil {
		return Port{}, err, true
	}
	s, ok := t.links[svi]
	if !ok {
		return Port{}, &IneligibleError{Name: l.Name, Reason: "unknown-port", Detail: "SVI not in the link table"}, true
	}
	return Port{Link: *l, SVI: *s}, nil, true
}

// Source picks the address a probe for target is sent from on svi: the SVI
// address whose prefix holds target; for IPv4 0.0.0.0 when there is none (an
// ARP probe, RFC 5227), for IPv6 the SVI's link-local address, or :: when it
// has none either.
func Source(svi Link, target netip.Addr) netip.Addr {
	var linkLocal netip.Addr
	for _, p := range svi.Addrs {
		a := p.Addr()
		if a.Is4() != target.Is4() {
			continue
		}
		if p.Contains(target) && (target.IsLinkLocalUnicast() || !a.IsLinkLocalUnicast()) {
			return a
		}
		if a.Is6() && a.IsLinkLocalUnicast() && !linkLocal.IsValid() {
			linkLocal = a
		}
	}
	switch {
	case target.Is4():
		return netip.IPv4Unspecified()
	case linkLocal.IsValid():
		return linkLocal
	}
	return netip.IPv6Unspecified()
}
