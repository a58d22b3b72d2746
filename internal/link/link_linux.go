package link

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"sync"

	"github.com/rarp-replay/rarp-replay/internal/nlwatch"
	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netlink/nl"
	"golang.org/x/sys/unix"
)

// Watch mirrors the kernel's links and addresses into t until ctx ends, and
// sets t.Refresh to read a link the table does not know yet. It calls ready
// once both initial dumps are in. Equivalent to `ip monitor link address`.
func Watch(ctx context.Context, t *Table, log *slog.Logger, ready func()) error {
	t.Refresh = Read
	var wg sync.WaitGroup
	linksIn := make(chan struct{})
	wg.Go(func() {
		nlwatch.Follow(ctx, log, nlwatch.Source[netlink.LinkUpdate]{
			Name: "link",
			Subscribe: func(ch chan<- netlink.LinkUpdate, done <-chan struct{}, onErr func(error)) error {
				return netlink.LinkSubscribeWithOptions(ch, done, netlink.LinkSubscribeOptions{ErrorCallback: onErr, ReceiveBufferSize: 1 << 20})
			},
			Dump: func() error {
				nls, err := netlink.LinkList()
				if err != nil {
					return fmt.Errorf("list links: %w", err)
				}
				links := make([]Link, 0, len(nls))
				for _, n := range nls {
					links = append(links, fromNetlink(n))
				}
				t.Replace(withVLANs(links))
				return nil
			},
			Apply: func(u netlink.LinkUpdate) {
				if u.Header.Type == unix.RTM_DELLINK {
					t.Delete(u.Attrs().Index)
					return
				}
				l := fromNetlink(u.Link)
				if _, known := t.Get(l.Index); !known {
					l.Addrs, _ = addrs(l.Index)
				}
				if l.MasterIndex != 0 {
					// VLAN membership changes come as link events of the port.
					l = withVLANs([]Link{l})[0]
				}
				t.Set(l)
			},
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
				return netlink.AddrSubscribeWithOptions(ch, done, netlink.AddrSubscribeOptions{ErrorCallback: onErr, ReceiveBufferSize: 1 << 20})
			},
			Dump: func() error {
				all, err := netlink.AddrList(nil, netlink.FAMILY_ALL)
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
		}, ready)
	})
	wg.Wait()
	return nil
}

// Read reads one link and its addresses from the kernel.
// Equivalent to `ip -d addr show dev IFINDEX`.
func Read(index int) (Link, error) {
	nlk, err := netlink.LinkByIndex(index)
	if err != nil {
		return Link{}, fmt.Errorf("link %d: %w", index, err)
	}
	l := fromNetlink(nlk)
	l.Addrs, err = addrs(index)
	return l, err
}

func addrs(index int) ([]netip.Prefix, error) {
	all, err := netlink.AddrList(&netlink.Device{LinkAttrs: netlink.LinkAttrs{Index: index}}, netlink.FAMILY_ALL)
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
	}
	switch v := nlk.(type) {
	case *netlink.Vlan:
		l.VLANID = uint16(v.VlanId)
	case *netlink.Bridge:
		l.VLANFiltering = v.VlanFiltering != nil && *v.VlanFiltering
	}
	return l
}

// bridgeVLANs reads every bridge port's VLAN memberships.
// Equivalent to `bridge vlan show`.
func bridgeVLANs() (map[int][]PortVLAN, error) {
	all, err := netlink.BridgeVlanList()
	if err != nil {
		return nil, fmt.Errorf("bridge vlan list: %w", err)
	}
	out := make(map[int][]PortVLAN, len(all))
	for idx, vs := range all {
		for _, v := range vs {
			out[int(idx)] = append(out[int(idx)], PortVLAN{
				VID:      v.Vid,
				PVID:     v.Flags&nl.BRIDGE_VLAN_INFO_PVID != 0,
				Untagged: v.Flags&nl.BRIDGE_VLAN_INFO_UNTAGGED != 0,
			})
		}
	}
	return out, nil
}

// withVLANs fills in the VLAN memberships of the bridge ports among links.
func withVLANs(links []Link) []Link {
	vlans, err := bridgeVLANs()
	if err != nil {
		return links
	}
	for i := range links {
		links[i].VLANs = vlans[links[i].Index]
	}
	return links
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
