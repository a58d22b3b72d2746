package link

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"sync"
	"syscall"

	"github.com/rarp-replay/rarp-replay/internal/nlwatch"
	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netlink/nl"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"
)

// Kernel reads links from the kernel's rtnetlink, in one namespace.
type Kernel struct {
	ns netns.NsHandle // netns.None(): this process's
	h  *netlink.Handle
}

// NewKernel returns a reader for the namespace ns (nil: this process's).
func NewKernel(ns *netns.NsHandle) (*Kernel, error) {
	if ns == nil {
		return &Kernel{ns: netns.None(), h: &netlink.Handle{}}, nil
	}
	h, err := netlink.NewHandleAt(*ns)
	if err != nil {
		return nil, fmt.Errorf("netlink handle in namespace: %w", err)
	}
	return &Kernel{ns: *ns, h: h}, nil
}

// Watch mirrors the kernel's links and addresses into t until ctx ends, and
// sets t.Refresh to read a link the table does not know yet. It calls ready
// once both initial dumps are in. Equivalent to `ip monitor link address`.
//
// Link messages come in two families. AF_UNSPEC ones carry the whole link
// and replace it in t. AF_BRIDGE ones (port flags, STP state, port VLANs,
// a port leaving its bridge) carry only what the bridge says about a port,
// and nothing of its kind: they only ever update the port's bridge view
// (with what they carry, or a dump of the bridge ports where they carry
// nothing usable), and never delete the link.
func Watch(ctx context.Context, t *Table, log *slog.Logger, ready func(), o WatchOptions) error {
	k, err := NewKernel(o.Namespace)
	if err != nil {
		return err
	}
	if o.ReceiveBuffer == 0 {
		o.ReceiveBuffer = 1 << 20
	}
	resynced := func(name string) func() {
		if o.Resynced == nil {
			return nil
		}
		return func() { o.Resynced(name) }
	}
	ns := o.Namespace
	t.Refresh = k.Read
	b := newBatch()
	var wg sync.WaitGroup
	linksIn := make(chan struct{})
	wg.Go(func() {
		nlwatch.Follow(ctx, log, nlwatch.Source[linkMsg]{
			Name: "link",
			Subscribe: func(ch chan<- linkMsg, done <-chan struct{}, onErr func(error)) error {
				return subscribeLinks(ns, o.ReceiveBuffer, ch, done, onErr)
			},
			Dump: func() error {
				links, err := k.Links()
				if err != nil {
					return err
				}
				b.clear() // older than the dump
				t.Replace(links)
				return nil
			},
			Apply: func(u linkMsg) {
				k.apply(t, u, b)
				if len(b.links)+len(b.bridge) >= maxBatch { // a burst without a pause
					k.flush(t, b, log)
				}
			},
			Flush:    func() { k.flush(t, b, log) },
			Resynced: resynced("link"),
			Refresh:  o.Refresh,
		}, func() { close(linksIn) })
	})
	wg.Go(func() {
		select {
		case <-linksIn:
		case <-ctx.Done():
			return
		}
		nlwatch.Follow(ctx, log, nlwatch.Source[netlink.AddrUpdate]{
			Name: "addr",
			Subscribe: func(ch chan<- netlink.AddrUpdate, done <-chan struct{}, onErr func(error)) error {
				return netlink.AddrSubscribeWithOptions(ch, done, netlink.AddrSubscribeOptions{Namespace: ns, ErrorCallback: onErr, ReceiveBufferSize: o.ReceiveBuffer})
			},
			Dump: func() error {
				all, err := k.h.AddrList(nil, netlink.FAMILY_ALL)
				if err != nil {
					return fmt.Errorf("list addresses: %w", err)
				}
				by := make(map[int][]netip.Prefix)
				for _, a := range all {
					if p, ok := prefix(a.IPNet); ok {
						by[a.LinkIndex] = append(by[a.LinkIndex], p)
					}
				}
				for _, l := range t.All() {
					l.Addrs = by[l.Index]
					if l.Addrs == nil {
						l.Addrs = []netip.Prefix{}
					}
					t.Set(l)
				}
				return nil
			},
			Apply: func(u netlink.AddrUpdate) {
				if p, ok := prefix(&u.LinkAddress); ok {
					if u.NewAddr {
						t.AddAddr(u.LinkIndex, p)
					} else {
						t.DelAddr(u.LinkIndex, p)
					}
				}
			},
			Resynced: resynced("addr"),
		}, ready)
	})
	wg.Wait()
	return nil
}

// batch holds what a burst of link messages left to complete: the bridge
// port view and the addresses of new links (one address dump). The bridge
// port view comes from the AF_BRIDGE notifications themselves, which carry
// all of it (flags, STP state, VLANs); one AF_BRIDGE dump of every port is
// read only when a bridge member has neither a notification in the burst
// nor a view in the table for the same bridge. Read per message, a burst
// of N new ports cost N dumps of N ports each: 200 VM ports created within
// a second kept the watcher (and every port's handle, and its first RARP)
// seconds behind the kernel; with a dump per burst the dump of every port
// was still 16-19% of the daemon's CPU (fabric benchmark, model (b)).
type batch struct {
	links  map[int]Link // bridge members (or links with one pending), latest message
	bridge map[int]bool // AF_BRIDGE messages for these ports
	// ports holds the latest AF_BRIDGE notification's view of each port
	// in bridge that carried one (zero when the port left its bridge).
	ports map[int]BridgePort
	addrs map[int]bool // new links: addresses to read
}

// linkMsg is one link notification: netlink's reading of it and, for an
// AF_BRIDGE message, the bridge's view of the port it carries.
type linkMsg struct {
	netlink.LinkUpdate
	port    BridgePort
	hasPort bool // port was decoded from an AF_BRIDGE message
}

// maxBatch bounds the links a burst leaves pending before they are read.
const maxBatch = 256

func newBatch() *batch {
	return &batch{links: map[int]Link{}, bridge: map[int]bool{}, ports: map[int]BridgePort{}, addrs: map[int]bool{}}
}

func (b *batch) clear() {
	clear(b.links)
	clear(b.bridge)
	clear(b.ports)
	clear(b.addrs)
}

// apply applies one link message to t, or leaves it in b for flush when it
// needs the bridge's view of a port (a bridge member, an AF_BRIDGE
// message) or the addresses of a new link.
// subscribeLinks delivers the link notifications of the namespace ns on ch
// until done is closed or the socket fails (then it calls onErr and closes
// ch). Like netlink.LinkSubscribeWithOptions, plus the bridge's view of the
// port an AF_BRIDGE message carries, which netlink's Link drops.
func subscribeLinks(ns *netns.NsHandle, rcvbuf int, ch chan<- linkMsg, done <-chan struct{}, onErr func(error)) error {
	sock := nlwatch.Socket{What: "link events", Namespace: ns, ReceiveBuffer: rcvbuf}
	return nlwatch.Subscribe(sock, unix.RTNLGRP_LINK, ch, done, onErr, func(m syscall.NetlinkMessage) (linkMsg, bool, error) {
		if m.Header.Type != unix.RTM_NEWLINK && m.Header.Type != unix.RTM_DELLINK {
			return linkMsg{}, false, nil
		}
		header := unix.NlMsghdr(m.Header)
		l, err := netlink.LinkDeserialize(&header, m.Data)
		if err != nil {
			return linkMsg{}, false, err
		}
		u := linkMsg{LinkUpdate: netlink.LinkUpdate{IfInfomsg: *nl.DeserializeIfInfomsg(m.Data), Header: header, Link: l}}
		if u.IfInfomsg.Family == unix.AF_BRIDGE && m.Header.Type == unix.RTM_NEWLINK {
			if bp, err := DecodeBridgePort(m.Data); err == nil {
				u.port, u.hasPort = bp, true
			}
		}
		return u, true, nil
	})
}

func (k *Kernel) apply(t *Table, u linkMsg, b *batch) {
	index := int(u.IfInfomsg.Index)
	if u.IfInfomsg.Family == unix.AF_BRIDGE {
		// Whatever the message says (a port flag, an STP state, a VLAN, or
		// RTM_DELLINK for a port leaving its bridge), it carries the
		// bridge's whole view of the port: the latest one wins, at flush.
		// A DELLINK of this family deletes no link: the port itself lives
		// on (its AF_UNSPEC RTM_NEWLINK without a master follows).
		_, known := t.Get(index)
		_, pending := b.links[index]
		if known || pending {
			b.bridge[index] = true
			switch {
			case u.Header.Type == unix.RTM_DELLINK:
				b.ports[index] = BridgePort{Index: index}
			case u.hasPort && u.port.Master != 0:
				b.ports[index] = u.port
			case u.hasPort:
				b.ports[index] = BridgePort{Index: index} // the bridge device itself
			default:
				delete(b.ports, index) // undecodable: read it at flush
			}
		}
		return
	}
	if u.Header.Type == unix.RTM_DELLINK {
		delete(b.links, index)
		delete(b.bridge, index)
		delete(b.ports, index)
		delete(b.addrs, index)
		t.Delete(index)
		return
	}
	l := fromNetlink(u.LinkUpdate.Link)
	_, known := t.Get(l.Index)
	_, pending := b.links[l.Index]
	if !known && !pending {
		b.addrs[l.Index] = true
	}
	if l.MasterIndex != 0 || pending || b.addrs[l.Index] {
		b.links[l.Index] = l
		return
	}
	t.Set(l)
}

// flush completes the links left in b with one bridge port dump and one
// address dump, and applies them to t.
func (k *Kernel) flush(t *Table, b *batch, log *slog.Logger) {
	if len(b.links) == 0 && len(b.bridge) == 0 {
		return
	}
	defer b.clear()
	// The bridge's view of each port: the burst's latest notification, or
	// for a member of the same bridge as before without one (its link
	// changed, not its port: every change of the port is notified), the
	// table's; one dump of every port only for the rest (a notification
	// that could not be decoded, a port that came with none yet).
	ports := make(map[int]BridgePort, len(b.ports)+len(b.links))
	dump := false
	for idx := range b.bridge {
		if bp, ok := b.ports[idx]; ok {
			ports[idx] = bp
		} else {
			dump = true
		}
	}
	for idx, l := range b.links {
		if l.MasterIndex == 0 {
			continue
		}
		if bp, ok := b.ports[idx]; ok && bp.Master == l.MasterIndex {
			continue
		}
		if old, ok := t.Get(idx); ok && old.MasterIndex == l.MasterIndex {
			ports[idx] = BridgePort{Index: idx, Master: l.MasterIndex, Info: old.PortInfo, VLANs: old.VLANs}
			continue
		}
		dump = true
	}
	if dump {
		if all, err := k.BridgePorts(); err != nil {
			// What the loop above did not find keeps the table's view.
			log.Warn("link event: cannot read the bridge ports", "err", err)
		} else {
			for idx := range b.bridge {
				ports[idx] = all[idx]
			}
			for idx, l := range b.links {
				if l.MasterIndex != 0 {
					ports[idx] = all[idx]
				}
			}
		}
	}
	var addrs map[int][]netip.Prefix
	if len(b.addrs) > 0 {
		if all, err := k.h.AddrList(nil, netlink.FAMILY_ALL); err == nil {
			addrs = make(map[int][]netip.Prefix)
			for _, a := range all {
				if p, ok := prefix(a.IPNet); ok {
					addrs[a.LinkIndex] = append(addrs[a.LinkIndex], p)
				}
			}
		}
	}
	for idx, l := range b.links {
		if b.addrs[idx] {
			l.Addrs = addrs[idx]
			if l.Addrs == nil {
				l.Addrs = []netip.Prefix{}
			}
		}
		if l.MasterIndex != 0 {
			if bp, ok := ports[idx]; ok && bp.Master == l.MasterIndex {
				l.PortInfo, l.VLANs = bp.Info, bp.VLANs
			}
		}
		t.Set(l)
	}
	for idx := range b.bridge {
		if _, done := b.links[idx]; done {
			continue
		}
		bp, ok := ports[idx]
		if !ok {
			continue // the dump failed: the table keeps what it had
		}
		t.SetBridgePort(idx, bp.Info, bp.VLANs)
	}
}

// Links reads every link with its bridge port view (no addresses).
// Equivalent to `ip -d link show` and `bridge -d link show`.
func (k *Kernel) Links() ([]Link, error) {
	nls, err := k.h.LinkList()
	if err != nil {
		return nil, fmt.Errorf("list links: %w", err)
	}
	links := make([]Link, len(nls))
	ptrs := make([]*Link, len(nls))
	for i, n := range nls {
		links[i] = fromNetlink(n)
		ptrs[i] = &links[i]
	}
	if err := k.withBridgePorts(ptrs); err != nil {
		return nil, err
	}
	return links, nil
}

// Read reads one link, its bridge port view and its addresses.
// Equivalent to `ip -d addr show dev IFINDEX`.
func (k *Kernel) Read(index int) (Link, error) {
	nlk, err := k.h.LinkByIndex(index)
	if err != nil {
		return Link{}, fmt.Errorf("link %d: %w", index, err)
	}
	l := fromNetlink(nlk)
	if l.MasterIndex != 0 {
		if err := k.withBridgePorts([]*Link{&l}); err != nil {
			return Link{}, err
		}
	}
	l.Addrs, err = k.addrs(index)
	return l, err
}

// withBridgePorts fills in the bridge port view of the bridge members among
// links, from one AF_BRIDGE dump.
func (k *Kernel) withBridgePorts(links []*Link) error {
	ports, err := k.BridgePorts()
	if err != nil {
		return err
	}
	for _, l := range links {
		bp, ok := ports[l.Index]
		if !ok || bp.Master != l.MasterIndex {
			l.PortInfo, l.VLANs = PortInfo{}, nil
			continue
		}
		l.PortInfo, l.VLANs = bp.Info, bp.VLANs
	}
	return nil
}

// BridgePorts reads what every bridge says about its ports, by ifindex:
// STP state, flags and VLANs. Equivalent to `bridge -d link show` and
// `bridge vlan show`.
func (k *Kernel) BridgePorts() (map[int]BridgePort, error) {
	s, err := nl.GetNetlinkSocketAt(k.ns, netns.None(), unix.NETLINK_ROUTE)
	if err != nil {
		return nil, fmt.Errorf("bridge ports: %w", err)
	}
	defer s.Close()
	req := nl.NewNetlinkRequest(unix.RTM_GETLINK, unix.NLM_F_DUMP)
	req.AddData(nl.NewIfInfomsg(unix.AF_BRIDGE))
	req.AddData(nl.NewRtAttr(unix.IFLA_EXT_MASK, nl.Uint32Attr(uint32(nl.RTEXT_FILTER_BRVLAN))))
	if err := s.Send(req); err != nil {
		return nil, fmt.Errorf("bridge ports: %w", err)
	}
	out := make(map[int]BridgePort)
	for {
		msgs, _, err := s.Receive()
		if err != nil {
			return nil, fmt.Errorf("bridge ports: %w", err)
		}
		for _, m := range msgs {
			switch m.Header.Type {
			case unix.NLMSG_DONE:
				if m.Header.Flags&unix.NLM_F_DUMP_INTR != 0 {
					return nil, fmt.Errorf("bridge ports: dump interrupted")
				}
				return out, nil
			case unix.NLMSG_ERROR:
				return nil, fmt.Errorf("bridge ports: netlink error")
			case unix.RTM_NEWLINK:
				bp, err := DecodeBridgePort(m.Data)
				if err != nil {
					return nil, err
				}
				if bp.Master != 0 {
					out[bp.Index] = bp
				}
			}
		}
	}
}

func (k *Kernel) addrs(index int) ([]netip.Prefix, error) {
	all, err := k.h.AddrList(&netlink.Device{LinkAttrs: netlink.LinkAttrs{Index: index}}, netlink.FAMILY_ALL)
	if err != nil {
		return nil, fmt.Errorf("addresses of link %d: %w", index, err)
	}
	out := []netip.Prefix{}
	for _, a := range all {
		if p, ok := prefix(a.IPNet); ok {
			out = append(out, p)
		}
	}
	return out, nil
}

func fromNetlink(nlk netlink.Link) Link {
	a := nlk.Attrs()
	l := Link{
		Index:       a.Index,
		Name:        a.Name,
		Kind:        nlk.Type(),
		MAC:         append(net.HardwareAddr(nil), a.HardwareAddr...),
		MasterIndex: a.MasterIndex,
		ParentIndex: a.ParentIndex,
		Loopback:    a.Flags&net.FlagLoopback != 0,
		Up:          a.Flags&net.FlagUp != 0,
		Running:     a.OperState == netlink.OperUp,
	}
	switch v := nlk.(type) {
	case *netlink.Vlan:
		l.VLANID = uint16(v.VlanId)
	case *netlink.Bridge:
		l.VLANFiltering = v.VlanFiltering != nil && *v.VlanFiltering
	}
	return l
}

func prefix(n *net.IPNet) (netip.Prefix, bool) {
	if n == nil {
		return netip.Prefix{}, false
	}
	a, ok := netip.AddrFromSlice(n.IP)
	if !ok {
		return netip.Prefix{}, false
	}
	ones, _ := n.Mask.Size()
	return netip.PrefixFrom(a.Unmap(), ones), true
}
