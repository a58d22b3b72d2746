package nlwatch

import (
	"fmt"
	"syscall"

	"github.com/vishvananda/netlink/nl"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"
)

// Socket tunes the socket Subscribe opens.
type Socket struct {
	// What names the events in errors ("neighbor events").
	What string
	// Namespace, when not nil, is the network namespace to follow.
	Namespace *netns.NsHandle
	// ReceiveBuffer, when not zero, is the socket's receive buffer, in
	// bytes; Force sets it past net.core.rmem_max (CAP_NET_ADMIN).
	ReceiveBuffer int
	Force         bool
	// Filter, when not empty, is a classic BPF program the kernel runs on
	// each message before queueing it.
	Filter []unix.SockFilter
}

// Subscribe joins the rtnetlink multicast group and, on a goroutine of its
// own, hands each message the kernel sends to decode and what decode keeps
// to ch, until done is closed or the socket fails: then it calls onErr and
// closes ch. A message decode fails on is reported to onErr and skipped.
// It is the Subscribe of a Source, for events the netlink library's own
// subscriptions would drop or not filter.
func Subscribe[U any](s Socket, group uint, ch chan<- U, done <-chan struct{}, onErr func(error), decode func(syscall.NetlinkMessage) (U, bool, error)) error {
	at := netns.None()
	if s.Namespace != nil {
		at = *s.Namespace
	}
	sock, err := nl.SubscribeAt(at, netns.None(), unix.NETLINK_ROUTE, group)
	if err != nil {
		return fmt.Errorf("subscribe to %s: %w", s.What, err)
	}
	if s.ReceiveBuffer != 0 {
		if err := sock.SetReceiveBufferSize(s.ReceiveBuffer, s.Force); err != nil {
			sock.Close()
			return fmt.Errorf("%s: receive buffer: %w", s.What, err)
		}
	}
	if len(s.Filter) > 0 {
		prog := unix.SockFprog{Len: uint16(len(s.Filter)), Filter: &s.Filter[0]}
		if err := unix.SetsockoptSockFprog(sock.GetFd(), unix.SOL_SOCKET, unix.SO_ATTACH_FILTER, &prog); err != nil {
			sock.Close()
			return fmt.Errorf("%s: socket filter: %w", s.What, err)
		}
	}
	go func() {
		<-done
		sock.Close()
	}()
	go func() {
		defer close(ch)
		for {
			msgs, from, err := sock.Receive()
			if err != nil {
				onErr(err)
				return
			}
			if from.Pid != nl.PidKernel {
				continue
			}
			for _, m := range msgs {
				u, ok, err := decode(m)
				if err != nil {
					onErr(fmt.Errorf("%s: %w", s.What, err))
					continue
				}
				if ok {
					ch <- u
				}
			}
		}
	}()
	return nil
}
