package neigh

import (
	"encoding/binary"
	"fmt"
	"net"
	"net/netip"

	"github.com/rarp-replay/rarp-replay/internal/engine"
)

// Replace is one binding to program as a local, reachable neighbor: the
// engine's type, so that Kernel is an engine.BatchProgrammer.
type Replace = engine.Replace

// checkReplace returns ErrInvalid for an address or MAC no neighbor entry
// can hold.
func checkReplace(ip netip.Addr, mac net.HardwareAddr) error {
	if !ip.IsValid() || len(mac) != 6 {
		return fmt.Errorf("%w: %v %v", ErrInvalid, ip, mac)
	}
	return nil
}

// rtnetlink numbers (linux/rtnetlink.h, linux/neighbour.h), spelt out so
// that the encoder builds on every system.
const (
	nlmsgHdrLen     = 16
	ndmsgLen        = 12
	rtmNewNeigh     = 28
	nlmFRequest     = 0x1
	nlmFAck         = 0x4
	nlmFReplace     = 0x100
	nlmFCreate      = 0x400
	ndaDst          = 1
	ndaLLAddr       = 2
	nudReachable    = 0x02
	afInet, afInet6 = 2, 10
)

// appendReplace appends the RTM_NEWNEIGH request that makes r's address a
// local, reachable neighbor with r's MAC, replacing whatever entry is
// there: the request `ip neigh replace IP lladdr MAC dev DEV nud reachable`
// sends (no flags, so a NOARP extern_learn remote entry loses both), with
// sequence number seq and an acknowledgement asked for. The caller has
// checked r (a valid address, a 6-byte MAC).
func appendReplace(b []byte, seq uint32, r Replace) []byte {
	ip := r.IP.Unmap()
	fam, alen := byte(afInet), 4
	if ip.Is6() {
		fam, alen = afInet6, 16
	}
	total := nlmsgHdrLen + ndmsgLen + rtaSpace(alen) + rtaSpace(6)
	ne := binary.NativeEndian
	b = ne.AppendUint32(b, uint32(total))
	b = ne.AppendUint16(b, rtmNewNeigh)
	b = ne.AppendUint16(b, nlmFRequest|nlmFAck|nlmFCreate|nlmFReplace)
	b = ne.AppendUint32(b, seq)
	b = ne.AppendUint32(b, 0) // port id: the kernel fills it in
	// struct ndmsg
	b = append(b, fam, 0, 0, 0)
	b = ne.AppendUint32(b, uint32(int32(r.IfIndex)))
	b = ne.AppendUint16(b, nudReachable)
	b = append(b, 0, 0) // flags (none: not extern_learn), type
	b = appendAttr(b, ndaDst, ip.AsSlice())
	return appendAttr(b, ndaLLAddr, r.MAC[:6])
}

func rtaSpace(n int) int { return (4 + n + 3) &^ 3 }

func appendAttr(b []byte, typ uint16, data []byte) []byte {
	ne := binary.NativeEndian
	b = ne.AppendUint16(b, uint16(4+len(data)))
	b = ne.AppendUint16(b, typ)
	b = append(b, data...)
	for pad := rtaSpace(len(data)) - 4 - len(data); pad > 0; pad-- {
		b = append(b, 0)
	}
	return b
}
