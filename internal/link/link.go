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
	// Running is set when the kernel reports the link operationally up
	// (IF_OPER_UP). The kernel sets that state in its link-watch work,
	// right after it attaches the link's transmit queue discipline: until
	// then a frame sent on a new port is dropped without an error.
	Running bool
	Addrs   []netip.Prefix
	// VLANID is the 802.1Q VLAN of a vlan device (an SVI such as vlan10,
	// br0.10 or Vlan10 on a VLAN-aware bridge); 0 otherwise.
	VLANID uint16
	// VLANFiltering is set on a VLAN-aware bridge.
	VLANFiltering bool
	// VLANs are a VLAN-aware bridge port's memberships (`bridge vlan show`).
	VLANs []PortVLAN
	// PortInfo is the bridge's view of a bridge member: STP state and
	// flags (`bridge -d link show`). Zero for a link that is no member.
	PortInfo PortInfo
}

// PortVLAN is one VLAN a bridge port is a member of.
type PortVLAN struct {
	VID      uint16
	PVID     bool // untagged frames entering the port belong to this VLAN
	Untagged bool // frames of this VLAN leave the port untagged
}

// Port is an access port together with the SVI that serves it: its bridge
// for a member of a traditional bridge, the vlan device for the frame's
// VLAN on a VLAN-aware bridge, the port itself (or its vlan subinterface
// for a tagged frame) for a stand-alone L3 interface.
type Port struct {
	Link Link
	SVI  Link
	// Anycast are the macvlan devices on the SVI (Cumulus vlan10-v0): the
	// anycast gateway, whose address and MAC probes prefer, and where the
	// kernel may hold bindings too.
	Anycast []Link
	// VLANs are the 802.1Q tags probes leave the port with, outermost
	// first; none: untagged.
	VLANs []uint16
	// Source, when valid, overrides the probe source address selection for
	// this SVI (for the family of the address).
	Source Override
}

// Override is an explicit probe source for an SVI (`listen --source`).
type Override struct {
	IPv4, IPv6 netip.Addr
	MAC        net.HardwareAddr
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

// Tunnels are the link kinds that carry frames between switches or
// hosts. A RARP that arrives through one was sent by a VM somewhere else
// (on the old leaf: the VM that left), so none of them is ever a port,
// whatever their master, flags or the last event said about them.
var Tunnels = map[string]bool{
	"vxlan": true, "geneve": true, "gretap": true, "ip6gretap": true,
	"erspan": true, "ip6erspan": true, "bareudp": true,
	"gre": true, "ip6gre": true, "ipip": true, "ip6tnl": true, "sit": true,
	"vti": true, "vti6": true, "wireguard": true, "ipsec": true, "xfrm": true,
}

// Eligible is the one rule for which interfaces are access ports (where a
// RARP may trigger probes), given the link, its master (nil when it has
// none) and its parent (nil when it has none). It returns the index of the
// port's SVI, or an *IneligibleError with the first rule that excludes it.
// In order:
//
//  1. a loopback, or a link without an Ethernet address: never;
//  2. a tunnel (VXLAN, GENEVE, GRE, ...; see Tunnels): never, bridged or
//     not: the old leaf's copy of the RARP arrives there;
//  3. a bridge, VRF, dummy or ipvlan device: never (a bridge is the SVI of
//     its members);
//  4. a macvlan: never (on a leaf, the anycast gateway on an SVI);
//  5. a vlan device on a bridge: never (an SVI);
//  6. a member of a bond or team: never (the bond is the port);
//  7. a bridge member in STP state blocking: never (a redundant path that
//     the bridge does not forward; the same RARP arrives on the forwarding
//     one);
//  8. any other bridge member (veth, tap, physical port, bond): a port,
//     served by its bridge (or, on a VLAN-aware bridge, by the vlan device
//     of the frame's VLAN);
//  9. any other interface, routed, in a VRF or not: a stand-alone port,
//     its own SVI (its vlan subinterfaces for tagged frames).
//
// Rule 9 serves routed interfaces by default. On a leaf those are mostly
// the underlay uplinks, but a RARP there only looks up bindings of the
// announced MAC in that interface's own neighbor table, which holds the
// spines' bindings and never a VM's, so nothing is probed; and routed
// access ports (a hypervisor on a routed port) need it. `listen -i` names
// the ports to serve where an operator wants fewer.
func Eligible(l Link, master, parent *Link) (svi int, err error) {
	no := func(detail string) (int, error) {
		return 0, &IneligibleError{Name: l.Name, Reason: "not-access-port", Detail: detail}
	}
	switch {
	case l.Loopback:
		return no("loopback")
	case len(l.MAC) != 6:
		return no("no Ethernet address")
	case Tunnels[l.Kind]:
		return no("tunnel device (" + l.Kind + ")")
	}
	switch l.Kind {
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
			if l.PortInfo.State == STPBlocking {
				return no("bridge port in STP state blocking")
			}
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
	mu    sync.RWMutex
	links map[int]*Link
	// uppers indexes the vlan and macvlan devices by their lower device
	// (ParentIndex): the SVIs of a VLAN-aware bridge, the anycast macvlans
	// of an SVI. Port looks them up for every frame; a scan of every link
	// cost 10-15 µs on a leaf with 600 links (BenchmarkPort).
	uppers    map[int][]int
	overrides map[string]Override // by SVI name
	changed   chan struct{}
	// Refresh, when set, reads one link from the kernel; Port calls it for an
	// index it does not know yet (a port whose creation event is still on
	// its way).
	Refresh func(index int) (Link, error)
}

// NewTable returns an empty table.
func NewTable() *Table {
	return &Table{links: make(map[int]*Link), uppers: make(map[int][]int), changed: make(chan struct{}, 1)}
}

// upper reports whether l is indexed in uppers.
func upper(l *Link) bool { return (l.Kind == "vlan" || l.Kind == "macvlan") && l.ParentIndex != 0 }

// unindex removes l from uppers. The caller holds t.mu.
func (t *Table) unindex(l *Link) {
	if !upper(l) {
		return
	}
	us := slices.DeleteFunc(t.uppers[l.ParentIndex], func(i int) bool { return i == l.Index })
	if len(us) == 0 {
		delete(t.uppers, l.ParentIndex)
		return
	}
	t.uppers[l.ParentIndex] = us
}

// index adds l to uppers, in index order. The caller holds t.mu.
func (t *Table) index(l *Link) {
	if !upper(l) {
		return
	}
	us := t.uppers[l.ParentIndex]
	if i, found := slices.BinarySearch(us, l.Index); !found {
		t.uppers[l.ParentIndex] = slices.Insert(us, i, l.Index)
	}
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
	if old, ok := t.links[l.Index]; ok {
		if l.Addrs == nil {
			l.Addrs = old.Addrs
		}
		t.unindex(old)
	}
	t.links[l.Index] = &l
	t.index(&l)
	t.mu.Unlock()
	t.notify()
}

// SetBridgePort updates what a bridge says about its member index: STP
// state, flags and VLAN memberships, and nothing else. It is how an
// AF_BRIDGE link message (which carries no kind, addresses or link info)
// is applied. It reports whether the link was known.
func (t *Table) SetBridgePort(index int, info PortInfo, vlans []PortVLAN) bool {
	t.mu.Lock()
	l, ok := t.links[index]
	if ok {
		c := *l
		c.PortInfo, c.VLANs = info, vlans
		t.links[index] = &c
	}
	t.mu.Unlock()
	if ok {
		t.notify()
	}
	return ok
}

// Delete removes a link.
func (t *Table) Delete(index int) {
	t.mu.Lock()
	if old, ok := t.links[index]; ok {
		t.unindex(old)
	}
	delete(t.links, index)
	t.mu.Unlock()
	t.notify()
}

// Replace swaps the whole table for links (a fresh dump). A link that
// carries no addresses keeps those the table had for it.
func (t *Table) Replace(links []Link) {
	m := make(map[int]*Link, len(links))
	t.mu.Lock()
	t.uppers = make(map[int][]int)
	for i := range links {
		l := &links[i]
		if old, ok := t.links[l.Index]; ok && l.Addrs == nil {
			l.Addrs = old.Addrs
		}
		m[l.Index] = l
	}
	t.links = m
	for _, l := range m {
		t.index(l)
	}
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

// AccessPort reports whether the link with the given index is an access
// port, whatever VLANs its frames carry: nil, or an *IneligibleError.
func (t *Table) AccessPort(index int) error {
	t.mu.RLock()
	defer t.mu.RUnlock()
	l, ok := t.links[index]
	if !ok {
		return &IneligibleError{Name: fmt.Sprintf("ifindex %d", index), Reason: "unknown-port", Detail: "not in the link table"}
	}
	master := t.links[l.MasterIndex]
	if l.MasterIndex != 0 && master == nil {
		return &IneligibleError{Name: l.Name, Reason: "unknown-port", Detail: "its master is not in the link table"}
	}
	_, err := Eligible(*l, master, t.links[l.ParentIndex])
	return err
}

// SetOverride sets the probe source of the SVI named svi.
func (t *Table) SetOverride(svi string, o Override) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.overrides == nil {
		t.overrides = make(map[string]Override)
	}
	t.overrides[svi] = o
}

// Port returns the access port with the given index, for a frame that
// carried the 802.1Q tags vlans (outermost first; none for untagged), with
// the SVI that serves it, or an *IneligibleError saying why a RARP there
// must not trigger probes.
func (t *Table) Port(index int, vlans []uint16) (Port, error) {
	p, err, known := t.port(index, vlans)
	if !known && t.Reread(index) {
		p, err, _ = t.port(index, vlans)
	}
	return p, err
}

// Running reports whether the link index is known and operationally up,
// without copying it (Get does): the capture path asks for every probe.
func (t *Table) Running(index int) (running, known bool) {
	t.mu.RLock()
	defer t.mu.RUnlock()
	l, ok := t.links[index]
	return ok && l.Running, ok
}

// Reread reads the link index from the kernel again (Refresh) and puts it
// in the table; false without Refresh or when the read failed.
func (t *Table) Reread(index int) bool {
	if t.Refresh == nil {
		return false
	}
	l, err := t.Refresh(index)
	if err != nil {
		return false
	}
	t.Set(l)
	return true
}

func (t *Table) port(index int, vlans []uint16) (Port, error, bool) {
	t.mu.RLock()
	defer t.mu.RUnlock()
	l, ok := t.links[index]
	if !ok {
		return Port{}, &IneligibleError{Name: fmt.Sprintf("ifindex %d", index), Reason: "unknown-port", Detail: "not in the link table"}, false
	}
	master := t.links[l.MasterIndex]
	if l.MasterIndex != 0 && master == nil {
		return Port{}, &IneligibleError{Name: l.Name, Reason: "unknown-port", Detail: "its master is not in the link table"}, true
	}
	sviIndex, err := Eligible(*l, master, t.links[l.ParentIndex])
	if err != nil {
		return Port{}, err, true
	}
	p := Port{Link: *l}
	switch {
	case master != nil && master.Kind == "bridge" && master.VLANFiltering:
		// A VLAN-aware bridge: the frame's VLAN (its tag on a trunk port,
		// the port's PVID when untagged) selects the SVI.
		var vid uint16
		var member *PortVLAN
		if len(vlans) > 0 {
			vid = vlans[0]
		}
		for i, v := range l.VLANs {
			if (vid != 0 && v.VID == vid) || (vid == 0 && v.PVID) {
				member = &l.VLANs[i]
			}
		}
		if member == nil {
			detail := fmt.Sprintf("not a member of VLAN %d", vid)
			if vid == 0 {
				detail = "untagged frame and no PVID"
			}
			return Port{}, &IneligibleError{Name: l.Name, Reason: "no-vlan", Detail: detail}, true
		}
		svi := t.vlanDevice(master.Index, member.VID)
		if svi == nil {
			return Port{}, &IneligibleError{Name: l.Name, Reason: "no-svi", Detail: fmt.Sprintf("no SVI for VLAN %d on %s", member.VID, master.Name)}, true
		}
		p.SVI = *svi
		if !member.Untagged {
			p.VLANs = []uint16{member.VID}
		}
	case master == nil || master.Kind != "bridge":
		// A stand-alone port: a tagged frame belongs to its vlan
		// subinterface, when there is one.
		if len(vlans) > 0 {
			if sub := t.vlanDevice(l.Index, vlans[0]); sub != nil {
				p.SVI, p.VLANs = *sub, vlans[:1]
				break
			}
		}
		p.SVI = *l
	default:
		s, ok := t.links[sviIndex]
		if !ok {
			return Port{}, &IneligibleError{Name: l.Name, Reason: "unknown-port", Detail: "SVI not in the link table"}, true
		}
		p.SVI = *s
		p.VLANs = vlans // a tagged frame on a traditional bridge: answer in kind
	}
	for _, i := range t.uppers[p.SVI.Index] {
		if m := t.links[i]; m.Kind == "macvlan" {
			p.Anycast = append(p.Anycast, *m)
		}
	}
	p.Source = t.overrides[p.SVI.Name]
	return p, nil, true
}

// vlanDevice returns the vlan device with VLAN vid on top of the link
// parent. The caller holds t.mu.
func (t *Table) vlanDevice(parent int, vid uint16) *Link {
	for _, i := range t.uppers[parent] {
		if l := t.links[i]; l.Kind == "vlan" && l.VLANID == vid {
			return l
		}
	}
	return nil
}

// Source picks the address and MAC a probe for target is sent from on the
// port's SVI: an explicit override first; then an address whose prefix
// holds target, on the anycast gateway (macvlan) before the SVI itself, with
// that device's MAC; for IPv4 0.0.0.0 when there is none (an ARP probe, RFC
// 5227); for IPv6 a link-local address, or :: when there is none either.
func Source(p Port, target netip.Addr) (netip.Addr, net.HardwareAddr) {
	mac := p.SVI.MAC
	if o := p.Source.IPv4; target.Is4() && o.IsValid() {
		return o, overrideMAC(p.Source.MAC, mac)
	}
	if o := p.Source.IPv6; !target.Is4() && o.IsValid() {
		return o, overrideMAC(p.Source.MAC, mac)
	}
	// The anycast devices first, then the SVI (no copy of the list: this
	// runs once per binding on the way to its first probe).
	var linkLocal netip.Addr
	var llMAC net.HardwareAddr
	for i := 0; i <= len(p.Anycast); i++ {
		d := &p.SVI
		if i < len(p.Anycast) {
			d = &p.Anycast[i]
		}
		for _, pf := range d.Addrs {
			a := pf.Addr()
			if a.Is4() != target.Is4() {
				continue
			}
			if pf.Contains(target) && (target.IsLinkLocalUnicast() || !a.IsLinkLocalUnicast()) {
				return a, d.MAC
			}
			if a.Is6() && a.IsLinkLocalUnicast() && !linkLocal.IsValid() {
				linkLocal, llMAC = a, d.MAC
			}
		}
	}
	switch {
	case target.Is4():
		return netip.IPv4Unspecified(), mac
	case linkLocal.IsValid():
		return linkLocal, llMAC
	}
	return netip.IPv6Unspecified(), mac
}

// overrideMAC returns override when it is a MAC, def otherwise.
func overrideMAC(override, def net.HardwareAddr) net.HardwareAddr {
	if len(override) == 6 {
		return override
	}
	return def
}
