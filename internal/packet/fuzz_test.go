package packet

import (
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/gopacket/gopacket/pcapgo"

	"github.com/gopacket/gopacket/layers"
)

// FuzzDecode feeds arbitrary bytes to Decode for every link type it reads.
// It must never panic, and every frame it accepts must carry a unicast MAC
// (and, for replies, a valid address).
func FuzzDecode(f *testing.F) {
	f.Add(qemuRARP(vmMAC), uint8(0))
	f.Add(qemuRARP(vmMAC)[:30], uint8(0))
	na, _ := buildTestNA(vmMAC, netip.MustParseAddr("2001:db8:10::10"), 255)
	f.Add(na, uint8(0))
	tagged, _ := BuildRARP(vmMAC, []uint16{100, 10})
	f.Add(tagged, uint8(0))
	f.Add(append([]byte{0x80, 0x35, 0, 0, 0, 0, 0, 7, 0, 1, 0, 6, 2, 0, 0x5e, 0x10, 0, 0x0a, 0, 0}, qemuRARP(vmMAC)[14:]...), uint8(1))
	types := []layers.LinkType{layers.LinkTypeEthernet, layers.LinkTypeLinuxSLL2, layers.LinkTypeLinuxSLL}
	// Every frame of the capture corpus, with its link type.
	caps, _ := filepath.Glob("../../pcaps/corpus/*.pcap")
	for _, c := range caps {
		fh, err := os.Open(c)
		if err != nil {
			f.Fatal(err)
		}
		r, err := pcapgo.NewReader(fh)
		if err != nil {
			f.Fatalf("%s: %v", c, err)
		}
		which := uint8(slices.Index(types, r.LinkType()))
		for {
			data, _, err := r.ReadPacketData()
			if err != nil {
				break
			}
			f.Add(data, which)
		}
		fh.Close()
	}
	f.Fuzz(func(t *testing.T, data []byte, which uint8) {
		fr, err := Decode(data, types[int(which)%len(types)])
		if err != nil {
			if Reason(err) == "error" {
				t.Fatalf("Decode returned an error without a drop reason: %v", err)
			}
			return
		}
		if !UnicastMAC(fr.MAC) {
			t.Fatalf("accepted frame with MAC %s", fr.MAC)
		}
		if fr.Kind != KindRARP && !fr.IP.IsValid() {
			t.Fatalf("accepted %v without an address", fr.Kind)
		}
	})
}
