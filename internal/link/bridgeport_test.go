package link

import (
	"encoding/binary"
	"errors"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// msg builds an rtnetlink link message body: a struct ifinfomsg of the
// given family and index, then attrs.
func msg(family byte, index int32, attrs ...[]byte) []byte {
	b := make([]byte, ifinfoLen)
	b[0] = family
	binary.NativeEndian.PutUint32(b[4:], uint32(index))
	for _, a := range attrs {
		b = append(b, a...)
	}
	return b
}

// attr builds one netlink attribute, padded to 4 bytes.
func attr(typ uint16, v ...[]byte) []byte {
	var val []byte
	for _, p := range v {
		val = append(val, p...)
	}
	b := make([]byte, 4, 4+len(val)+3)
	binary.NativeEndian.PutUint16(b, uint16(4+len(val)))
	binary.NativeEndian.PutUint16(b[2:], typ)
	b = append(b, val...)
	for len(b)%4 != 0 {
		b = append(b, 0)
	}
	return b
}

func u32(v uint32) []byte { return binary.NativeEndian.AppendUint32(nil, v) }

func vlanInfo(flags, vid uint16) []byte {
	return attr(bridgeVLANInfo, binary.NativeEndian.AppendUint16(binary.NativeEndian.AppendUint16(nil, flags), vid))
}

const nested = 1 << 15 // NLA_F_NESTED

func TestDecodeBridgePort(t *testing.T) {
	tests := []struct {
		name string
		in   []byte
		want BridgePort
		err  bool
	}{{
		name: "STP state and flags of a port",
		in: msg(afBridge, 5, attr(iflaMaster, u32(2)), attr(iflaProtinfo|nested,
			attr(brportState, []byte{byte(STPBlocking)}), attr(brportLearning, []byte{0}),
			attr(brportUnicastFlood, []byte{1}), attr(brportNeighSuppress, []byte{1}), attr(brportLocked, []byte{1}),
			attr(2, []byte{32}), // priority: ignored
			attr(26))),          // IFLA_BRPORT_PAD: empty, ignored
		want: BridgePort{Index: 5, Master: 2, HasInfo: true, Info: PortInfo{State: STPBlocking, Flood: true, NeighSuppress: true, Locked: true}},
	}, {
		name: "VLANs one by one (a dump with RTEXT_FILTER_BRVLAN)",
		in: msg(afBridge, 7, attr(iflaMaster, u32(2)), attr(iflaAFSpec|nested,
			vlanInfo(vlanInfoPVID|vlanInfoUntagged, 1), vlanInfo(0, 10), vlanInfo(vlanInfoUntagged, 20))),
		want: BridgePort{Index: 7, Master: 2, HasVLANs: true, VLANs: []PortVLAN{{VID: 1, PVID: true, Untagged: true}, {VID: 10}, {VID: 20, Untagged: true}}},
	}, {
		name: "VLAN ranges (notifications, RTEXT_FILTER_BRVLAN_COMPRESSED)",
		in: msg(afBridge, 7, attr(iflaMaster, u32(2)), attr(iflaAFSpec|nested,
			vlanInfo(vlanInfoRangeBegin, 10), vlanInfo(vlanInfoRangeEnd, 12), vlanInfo(vlanInfoPVID, 30))),
		want: BridgePort{Index: 7, Master: 2, HasVLANs: true, VLANs: []PortVLAN{{VID: 10}, {VID: 11}, {VID: 12}, {VID: 30, PVID: true}}},
	}, {
		name: "the bridge itself: no master",
		in:   msg(afBridge, 2),
		want: BridgePort{Index: 2},
	}, {
		name: "range end without its begin",
		in:   msg(afBridge, 7, attr(iflaAFSpec|nested, vlanInfo(vlanInfoRangeEnd, 12))),
		err:  true,
	}, {
		name: "VLAN 4095",
		in:   msg(afBridge, 7, attr(iflaAFSpec|nested, vlanInfo(0, 4095))),
		err:  true,
	}, {
		name: "attribute running past the message",
		in:   append(msg(afBridge, 7), 0xff, 0x00, byte(iflaMaster), 0),
		err:  true,
	}, {
		name: "short IFLA_MASTER",
		in:   msg(afBridge, 7, attr(iflaMaster, []byte{1})),
		err:  true,
	}, {
		name: "empty STP state",
		in:   msg(afBridge, 7, attr(iflaProtinfo|nested, attr(brportState))),
		err:  true,
	}, {
		name: "truncated ifinfomsg",
		in:   []byte{afBridge, 0, 0},
		err:  true,
	}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := DecodeBridgePort(tt.in)
			if tt.err {
				if err == nil {
					t.Fatalf("DecodeBridgePort = %+v, want an error", got)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if d := cmp.Diff(tt.want, got); d != "" {
				t.Errorf("(-want +got):\n%s", d)
			}
		})
	}
	if _, err := DecodeBridgePort(msg(0, 5, attr(iflaMaster, u32(2)))); !errors.Is(err, ErrNotBridge) {
		t.Errorf("AF_UNSPEC message: err = %v, want ErrNotBridge", err)
	}
}

// FuzzDecodeBridgePort: any bytes give a port or an error, never a panic;
// a decoded port holds only valid VLANs.
func FuzzDecodeBridgePort(f *testing.F) {
	f.Add(msg(afBridge, 5, attr(iflaMaster, u32(2)), attr(iflaProtinfo|nested, attr(brportState, []byte{3}))))
	f.Add(msg(afBridge, 7, attr(iflaAFSpec|nested, vlanInfo(vlanInfoRangeBegin, 10), vlanInfo(vlanInfoRangeEnd, 4094))))
	f.Fuzz(func(t *testing.T, b []byte) {
		bp, err := DecodeBridgePort(b)
		if err != nil {
			return
		}
		for _, v := range bp.VLANs {
			if v.VID < 1 || v.VID > 4094 {
				t.Fatalf("VLAN %d decoded", v.VID)
			}
		}
	})
}

// TestSetBridgePort: a bridge port message changes the port's STP state,
// flags and VLANs, and nothing else of the link; the VXLAN device it
// describes stays a tunnel, never a port.
func TestSetBridgePort(t *testing.T) {
	tab := leaf()
	before, _ := tab.Get(4)
	<-tab.Changed()
	info := PortInfo{State: STPForwarding, Flood: true}
	vlans := []PortVLAN{{VID: 10, PVID: true, Untagged: true}}
	if !tab.SetBridgePort(4, info, vlans) {
		t.Fatal("SetBridgePort(vx10) = false, want true")
	}
	after, _ := tab.Get(4)
	want := before
	want.PortInfo, want.VLANs = info, vlans
	if d := cmp.Diff(want, after); d != "" {
		t.Errorf("vx10 after a bridge port message (-want +got):\n%s", d)
	}
	if _, err := tab.Port(4, nil); err == nil {
		t.Error("the VXLAN device became a port")
	}
	select {
	case <-tab.Changed():
	default:
		t.Error("no change signalled")
	}
	if tab.SetBridgePort(99, info, nil) {
		t.Error("SetBridgePort of an unknown link = true")
	}
	if _, ok := tab.Get(99); ok {
		t.Error("a bridge port message created a link")
	}
}
