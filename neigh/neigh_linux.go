package neigh

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"syscall"
	"time"

	"github.com/rarp-replay/rarp-replay/internal/nlwatch"
	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netlink/nl"
	"golang.org/x/sys/unix"
)

// Watch mirrors the kernel's IPv4 and IPv6 neighbor tables into m until ctx
// ends: a subscription to RTNLGRP_NEIGH, then a dump, then the events; after
// a socket error (ENOBUFS when a burst outran it) it subscribes and dumps
// again. It calls ready once the first dump is in, and prunes expired
// bindings every minute.
// Equivalent to `ip neigh show` followed by `ip monitor neigh`.
func Watch(ctx context.Context, m *Mirror, log *slog.Logger, ready func(), o WatchOptions) error {
	if o.ReceiveBuffer == 0 {
		o.ReceiveBuffer = 8 << 20
	}
	h := &netlink.Handle{}
	if o.Namespace != nil {
		var err error
		if h, err = netlink.NewHandleAt(*o.Namespace); err != nil {
			return fmt.Errorf("netlink handle in namespace: %w", err)
		}
		defer h.Close()
	}
	pruneCtx, stop := context.WithCancel(ctx)
	defer stop()
	pruned := make(chan struct{})
	go func() {
		defer close(pruned)
		t := time.NewTicker(time.Minute)
		defer t.Stop()
		for {
			select {
			case <-pruneCtx.Done():
				return
			case <-t.C:
				if n := m.Prune(); n > 0 {
					log.Debug("pruned expired bindings", "count", n)
				}
			}
		}
	}()
	force := true
	err := nlwatch.Follow(ctx, log, nlwatch.Source[netlink.NeighUpdate]{
		Name: "neigh",
		Subscribe: func(ch chan<- netlink.NeighUpdate, done <-chan struct{}, onErr func(error)) error {
			// A large buffer rides out bursts of neighbor changes. Forcing it
			// past net.core.rmem_max needs CAP_NET_ADMIN, which --dry-run
			// does without: then take what rmem_max allows.
			err := subscribe(o, force, ch, done, onErr)
			if errors.Is(err, unix.EPERM) && force {
				force = false
				err = subscribe(o, force, ch, done, onErr)
			}
			return err
		},
		Dump: func() error {
			var all []Entry
			for _, fam := range []int{netlink.FAMILY_V4, netlink.FAMILY_V6} {
				ns, err := h.NeighList(0, fam)
				if err != nil {
					return fmt.Errorf("list neighbors: %w", err)
				}
				for _, n := range ns {
					all = append(all, fromNetlink(n))
				}
			}
			m.Sync(all)
			return nil
		},
		Apply: func(u netlink.NeighUpdate) {
			if u.Family != unix.AF_INET && u.Family != unix.AF_INET6 {
				return // bridge FDB entries
			}
			e := fromNetlink(u.Neigh)
			if u.Type == unix.RTM_DELNEIGH {
				m.Delete(e)
			} else {
				m.Update(e)
			}
			if o.Changed != nil {
				o.Changed(e, u.Type == unix.RTM_DELNEIGH)
			}
		},
		Resynced: o.Resynced,
	}, ready)
	stop()
	<-pruned
	return err
}

// ipOnly is a classic BPF socket filter for an RTNLGRP_NEIGH subscription
// that keeps IPv4 and IPv6 neighbor messages (ndm_family, the byte after
// the 16-byte netlink header) and drops the rest in the kernel: above all
// the bridge's FDB notifications (AF_BRIDGE), which a MAC flood or a busy
// leaf sends by the million and which would otherwise overflow the
// socket and force a resync.
var ipOnly = []unix.SockFilter{
	{Code: unix.BPF_LD | unix.BPF_B | unix.BPF_ABS, K: 16},
	{Code: unix.BPF_JMP | unix.BPF_JEQ | unix.BPF_K, Jt: 2, Jf: 0, K: unix.AF_INET},
	{Code: unix.BPF_JMP | unix.BPF_JEQ | unix.BPF_K, Jt: 1, Jf: 0, K: unix.AF_INET6},
	{Code: unix.BPF_RET | unix.BPF_K, K: 0},
	{Code: unix.BPF_RET | unix.BPF_K, K: 0xffffffff},
}

// subscribe delivers the IPv4 and IPv6 neighbor notifications of the
// namespace on ch until done is closed or the socket fails (then it calls
// onErr and closes ch). Like netlink.NeighSubscribeWithOptions, plus the
// ipOnly filter.
func subscribe(o WatchOptions, force bool, ch chan<- netlink.NeighUpdate, done <-chan struct{}, onErr func(error)) error {
	sock := nlwatch.Socket{What: "neighbor events", Namespace: o.Namespace, ReceiveBuffer: o.ReceiveBuffer, Force: force, Filter: ipOnly}
	return nlwatch.Subscribe(sock, unix.RTNLGRP_NEIGH, ch, done, onErr, func(m syscall.NetlinkMessage) (netlink.NeighUpdate, bool, error) {
		if m.Header.Type != unix.RTM_NEWNEIGH && m.Header.Type != unix.RTM_DELNEIGH {
			return netlink.NeighUpdate{}, false, nil
		}
		n, err := netlink.NeighDeserialize(m.Data)
		if err != nil {
			return netlink.NeighUpdate{}, false, err
		}
		return netlink.NeighUpdate{Type: m.Header.Type, Neigh: *n}, true, nil
	})
}

func fromNetlink(n netlink.Neigh) Entry {
	ip, _ := netip.AddrFromSlice(n.IP)
	return Entry{
		IfIndex: n.LinkIndex,
		IP:      ip.Unmap(),
		MAC:     append(net.HardwareAddr(nil), n.HardwareAddr...),
		State:   n.State,
		Flags:   n.Flags,
	}
}

// Program makes ip a local, reachable neighbor with lladdr mac on the
// interface ifindex, replacing any entry there (a NOARP extern_learn remote
// binding included: the replace clears the extern_learn flag, which is what
// makes zebra treat the binding as local and advertise MAC+IP). With k.Log
// at debug level it logs the entry before and after.
// Equivalent to `ip neigh replace IP lladdr MAC dev SVI nud reachable`.
func (k Kernel) Program(ifindex int, ip netip.Addr, mac net.HardwareAddr) error {
	if err := checkReplace(ip, mac); err != nil {
		return err
	}
	fam := netlink.FAMILY_V4
	if ip.Is6() {
		fam = netlink.FAMILY_V6
	}
	debug := k.Log != nil && k.Log.Enabled(context.Background(), slog.LevelDebug)
	var before []any
	if debug {
		before = entryAttrs("old", ifindex, ip)
	}
	err := netlink.NeighSet(&netlink.Neigh{
		LinkIndex:    ifindex,
		Family:       fam,
		State:        netlink.NUD_REACHABLE,
		IP:           ip.AsSlice(),
		HardwareAddr: mac,
	})
	if err != nil {
		err = fmt.Errorf("replace neighbor %s lladdr %s ifindex %d: %w", ip, mac, ifindex, err)
		if debug {
			k.Log.Debug("neighbor not programmed", append([]any{"ip", ip, "mac", mac.String(), "ifindex", ifindex, "err", err}, before...)...)
		}
		return err
	}
	if debug {
		attrs := append([]any{"ip", ip, "mac", mac.String(), "ifindex", ifindex}, before...)
		k.Log.Debug("programmed neighbor", append(attrs, entryAttrs("new", ifindex, ip)...)...)
	}
	return nil
}

// entryAttrs reads the kernel's entry for ip on ifindex and returns it as
// log attributes PREFIX_state, PREFIX_flags and PREFIX_mac; the state is
// "ABSENT" when there is none.
func entryAttrs(prefix string, ifindex int, ip netip.Addr) []any {
	e, err := get(ifindex, ip)
	state, flags, mac := e.StateString(), e.FlagsString(), macOrNone(e.MAC)
	switch {
	case errors.Is(err, unix.ENOENT):
		state = "ABSENT"
	case err != nil:
		state = "unknown (" + err.Error() + ")"
	}
	return []any{prefix + "_state", state, prefix + "_flags", flags, prefix + "_mac", mac}
}

func macOrNone(mac net.HardwareAddr) string {
	if len(mac) == 0 {
		return "none"
	}
	return mac.String()
}

// Get reads the kernel's neighbor entry for ip on ifindex (one
// RTM_GETNEIGH request); an error wrapping unix.ENOENT when there is none.
// Equivalent to `ip neigh get IP dev DEV`.
func Get(ifindex int, ip netip.Addr) (Entry, error) { return get(ifindex, ip) }

// get reads the kernel's neighbor entry for ip on ifindex (an RTM_GETNEIGH
// request, not a dump); unix.ENOENT when there is none.
// Equivalent to `ip neigh get IP dev DEV`.
func get(ifindex int, ip netip.Addr) (Entry, error) {
	fam := unix.AF_INET
	if ip.Is6() {
		fam = unix.AF_INET6
	}
	req := nl.NewNetlinkRequest(unix.RTM_GETNEIGH, 0)
	req.AddData(&netlink.Ndmsg{Family: uint8(fam), Index: uint32(ifindex)})
	req.AddData(nl.NewRtAttr(unix.NDA_DST, ip.AsSlice()))
	msgs, err := req.Execute(unix.NETLINK_ROUTE, unix.RTM_NEWNEIGH)
	if err != nil {
		return Entry{}, err
	}
	if len(msgs) == 0 {
		return Entry{}, unix.ENOENT
	}
	n, err := netlink.NeighDeserialize(msgs[0])
	if err != nil {
		return Entry{}, err
	}
	return fromNetlink(*n), nil
}
