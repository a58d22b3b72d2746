package link

import (
	"encoding/binary"
	"errors"
	"fmt"
)

// STPState is a bridge port's spanning-tree state (IFLA_BRPORT_STATE,
// BR_STATE_* in include/uapi/linux/if_bridge.h).
type STPState uint8

// The states, as the kernel numbers them.
const (
	STPDisabled STPState = iota
	STPListening
	STPLearning
	STPForwarding
	STPBlocking
)

func (s STPState) String() string {
	switch s {
	case STPDisabled:
		return "disabled"
	case STPListening:
		return "listening"
	case STPLearning:
		return "learning"
	case STPForwarding:
		return "forwarding"
	case STPBlocking:
		return "blocking"
	}
	return fmt.Sprintf("state-%d", uint8(s))
}

// ParseSTPState reads a state as iproute2 prints it ("forwarding").
func ParseSTPState(s string) (STPState, bool) {
	for st := STPDisabled; st <= STPBlocking; st++ {
		if st.String() == s {
			return st, true
		}
	}
	return 0, false
}

// PortInfo is what a bridge says about one of its ports
// (`bridge -d link show`): its spanning-tree state and the flags an EVPN
// leaf toggles. Meaningful only for a link whose master is a bridge.
type PortInfo struct {
	State         STPState
	Learning      bool
	Flood         bool // unicast flood
	NeighSuppress bool
	Locked        bool
}

// BridgePort is one AF_BRIDGE link message decoded: a bridge port's
// attributes as its bridge reports them (a notification of family
// AF_BRIDGE, or one record of an AF_BRIDGE dump). Unlike an AF_UNSPEC link
// message it says nothing about the link's kind, addresses or other
// attributes, so it must never stand in for the whole link.
type BridgePort struct {
	Index   int
	Master  int // the bridge; 0 for the bridge device itself
	Info    PortInfo
	HasInfo bool // the message carried IFLA_PROTINFO (ports only)
	VLANs   []PortVLAN
	// HasVLANs is set when the message carried IFLA_AF_SPEC VLAN records.
	HasVLANs bool
}

// rtnetlink numbers (include/uapi/linux/if_link.h, if_bridge.h), spelled
// out so that this decoder builds on any OS.
const (
	afBridge = 7

	iflaMaster   = 10
	iflaProtinfo = 12
	iflaAFSpec   = 26

	brportState         = 1
	brportLearning      = 8
	brportUnicastFlood  = 9
	brportNeighSuppress = 32
	brportLocked        = 39

	bridgeVLANInfo = 2

	vlanInfoPVID       = 1 << 1
	vlanInfoUntagged   = 1 << 2
	vlanInfoRangeBegin = 1 << 3
	vlanInfoRangeEnd   = 1 << 4

	nlaTypeMask = 0x3fff // clears NLA_F_NESTED and NLA_F_NET_BYTEORDER
	ifinfoLen   = 16
)

// ErrNotBridge is returned by DecodeBridgePort for a message whose family
// is not AF_BRIDGE.
var ErrNotBridge = errors.New("not an AF_BRIDGE link message")

// DecodeBridgePort decodes the body of an RTM_NEWLINK or RTM_DELLINK
// message of family AF_BRIDGE (the struct ifinfomsg and its attributes,
// without the netlink header). VLAN ranges (BRIDGE_VLAN_INFO_RANGE_BEGIN
// .. _END, as notifications send them) are expanded.
func DecodeBridgePort(b []byte) (BridgePort, error) {
	if len(b) < ifinfoLen {
		return BridgePort{}, fmt.Errorf("bridge port message: %d bytes, want at least %d", len(b), ifinfoLen)
	}
	if b[0] != afBridge {
		return BridgePort{}, ErrNotBridge
	}
	bp := BridgePort{Index: int(int32(binary.NativeEndian.Uint32(b[4:8])))}
	err := walkAttrs(b[ifinfoLen:], func(typ uint16, v []byte) error {
		switch typ {
		case iflaMaster:
			if len(v) < 4 {
				return fmt.Errorf("IFLA_MASTER: %d bytes", len(v))
			}
			bp.Master = int(int32(binary.NativeEndian.Uint32(v)))
		case iflaProtinfo:
			bp.HasInfo = true
			return walkAttrs(v, func(typ uint16, v []byte) error {
				switch typ {
				case brportState, brportLearning, brportUnicastFlood, brportNeighSuppress, brportLocked:
					if len(v) < 1 {
						return fmt.Errorf("IFLA_PROTINFO attribute %d: empty", typ)
					}
				default:
					return nil // others, IFLA_BRPORT_PAD (empty) among them
				}
				switch typ {
				case brportState:
					bp.Info.State = STPState(v[0])
				case brportLearning:
					bp.Info.Learning = v[0] != 0
				case brportUnicastFlood:
					bp.Info.Flood = v[0] != 0
				case brportNeighSuppress:
					bp.Info.NeighSuppress = v[0] != 0
				case brportLocked:
					bp.Info.Locked = v[0] != 0
				}
				return nil
			})
		case iflaAFSpec:
			var begin *PortVLAN
			return walkAttrs(v, func(typ uint16, v []byte) error {
				if typ != bridgeVLANInfo {
					return nil
				}
				if len(v) < 4 {
					return fmt.Errorf("IFLA_BRIDGE_VLAN_INFO: %d bytes", len(v))
				}
				bp.HasVLANs = true
				flags, vid := binary.NativeEndian.Uint16(v), binary.NativeEndian.Uint16(v[2:])
				if vid < 1 || vid > 4094 {
					return fmt.Errorf("IFLA_BRIDGE_VLAN_INFO: VLAN %d", vid)
				}
				pv := PortVLAN{VID: vid, PVID: flags&vlanInfoPVID != 0, Untagged: flags&vlanInfoUntagged != 0}
				switch {
				case flags&vlanInfoRangeBegin != 0:
					begin = &pv
				case flags&vlanInfoRangeEnd != 0:
					if begin == nil || begin.VID > vid {
						return fmt.Errorf("IFLA_BRIDGE_VLAN_INFO: range end %d without its begin", vid)
					}
					for id := begin.VID; id <= vid; id++ {
						bp.VLANs = append(bp.VLANs, PortVLAN{VID: id, Untagged: pv.Untagged})
					}
					begin = nil
				default:
					bp.VLANs = append(bp.VLANs, pv)
				}
				return nil
			})
		}
		return nil
	})
	if err != nil {
		return BridgePort{}, fmt.Errorf("bridge port message of ifindex %d: %w", bp.Index, err)
	}
	return bp, nil
}

// walkAttrs calls f with the type and value of every netlink attribute in b.
func walkAttrs(b []byte, f func(typ uint16, v []byte) error) error {
	for len(b) >= 4 {
		l := int(binary.NativeEndian.Uint16(b))
		typ := binary.NativeEndian.Uint16(b[2:]) & nlaTypeMask
		if l < 4 || l > len(b) {
			return fmt.Errorf("attribute %d: length %d runs past the message (%d bytes left)", typ, l, len(b))
		}
		if err := f(typ, b[4:l]); err != nil {
			return err
		}
		b = b[min((l+3)&^3, len(b)):]
	}
	return nil
}
